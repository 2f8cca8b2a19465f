using System.Text.Json;
using System.Text.Json.Nodes;
using Amazon.CDK;
using Amazon.CDK.Assertions;
using Talki.Samples.AwsCdk;

namespace Talki.Signalling.Testing;

/// <summary>
/// The CloudFormation template the CDK app's <see cref="TalkiStack"/> synthesizes (stack <c>TalkiTest</c>, stage <c>test</c>,
/// the gateway secret as a <c>GatewaySecret</c> template parameter), synthesized once per test run: the jsii runtime makes
/// synthesis take seconds. Link this file into a test project that references <c>samples/Talki.Samples.AwsCdk</c>.
/// </summary>
internal static class SynthesizedTalkiTemplate
{
    /// <summary>The stack name (the root of every <c>aws:cdk:path</c>).</summary>
    public const string StackName = "TalkiTest";

    /// <summary>The stage of the synthesized API.</summary>
    public const string Stage = "test";

    private static readonly Lazy<string> Template = new(Synthesize, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>Gets a fresh, mutable copy of the template (tests may delete or change resources).</summary>
    public static JsonObject Json() => JsonNode.Parse(Template.Value)!.AsObject();

    /// <summary>Gets the template text.</summary>
    public static string Text => Template.Value;

    private static string Synthesize()
    {
        // Stand in for the published host and authorizer: synth only hashes and copies the directories.
        var asset = Directory.CreateTempSubdirectory("talki-cdk-assets-");
        try
        {
            var host = Directory.CreateDirectory(Path.Combine(asset.FullName, "host")).FullName;
            File.WriteAllText(Path.Combine(host, "bootstrap"), "#!/bin/sh\nexec ./Talki.Samples.Host\n");
            var authorizer = Directory.CreateDirectory(Path.Combine(asset.FullName, "authorizer")).FullName;
            File.WriteAllText(Path.Combine(authorizer, "bootstrap"), "\u007fELF stands in for the authorizer's executable\n");
            var app = new App();
            var stack = new TalkiStack(app, StackName, new TalkiStackProps { StageName = Stage, HostAssetPath = host, AuthorizerAssetPath = authorizer });
            return JsonSerializer.Serialize(Amazon.CDK.Assertions.Template.FromStack(stack).ToJSON());
        }
        finally
        {
            try
            {
                asset.Delete(recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}
