using System.Text.Json;
using System.Text.Json.Nodes;
using Amazon.CDK;
using Amazon.CDK.Assertions;
using Constructs;
using Talki.Samples.AwsCdk;

namespace Talki.Samples.AwsCdk.Tests;

/// <summary>A synthesized <see cref="TalkiStack"/> with its template, as JSON too.</summary>
public sealed class SynthesizedTemplate
{
    /// <param name="assets">A directory with the stand-ins of the published assets: <c>host/</c> and <c>authorizer/</c>.</param>
    public SynthesizedTemplate(string assets, string stageName, string? gatewaySecretParameterName, string? redisParameterName = null, bool accessLogs = true)
    {
        var app = new App();
        Stack = new TalkiStack(app, "TalkiTest", new TalkiStackProps
        {
            StageName = stageName,
            HostAssetPath = Path.Combine(assets, "host"),
            AuthorizerAssetPath = Path.Combine(assets, "authorizer"),
            GatewaySecretParameterName = gatewaySecretParameterName,
            RedisConnectionParameterName = redisParameterName,
            AccessLogs = accessLogs,
        });
        Template = Template.FromStack(Stack);
        Json = JsonNode.Parse(JsonSerializer.Serialize(Template.ToJSON()))!.AsObject();
    }

    public TalkiStack Stack { get; }

    public Template Template { get; }

    public JsonObject Json { get; }

    public string LogicalId(IConstruct construct) =>
        Stack.GetLogicalId(construct as CfnElement ?? (CfnElement)construct.Node.DefaultChild!);

    public IEnumerable<(string Id, JsonObject Resource)> Resources(string type) =>
        Json["Resources"]!.AsObject()
            .Where(r => (string?)r.Value!["Type"] == type)
            .Select(r => (r.Key, r.Value!.AsObject()));
}

/// <summary>Synthesizes the stacks once per test run (the jsii runtime makes synth the slow part).</summary>
public sealed class StackFixture : IDisposable
{
    private readonly string _hostAssetPath;

    public StackFixture()
    {
        // Stand in for the published host and authorizer: synth only hashes and copies the directories.
        _hostAssetPath = Directory.CreateTempSubdirectory("talki-cdk-assets-").FullName;
        Directory.CreateDirectory(Path.Combine(_hostAssetPath, "host"));
        File.WriteAllText(Path.Combine(_hostAssetPath, "host", "bootstrap"), "#!/bin/sh\nexec ./Talki.Samples.Host\n");
        Directory.CreateDirectory(Path.Combine(_hostAssetPath, "authorizer"));
        File.WriteAllText(Path.Combine(_hostAssetPath, "authorizer", "bootstrap"), "\u007fELF stands in for the authorizer's executable\n");

        var started = System.Diagnostics.Stopwatch.StartNew();
        Default = new SynthesizedTemplate(_hostAssetPath, "dev", gatewaySecretParameterName: null);
        WithSsmSecret = new SynthesizedTemplate(_hostAssetPath, "prod", gatewaySecretParameterName: "/talki/gateway-secret", redisParameterName: "/talki/redis");
        SynthDuration = started.Elapsed;
        _withoutAccessLogs = new Lazy<SynthesizedTemplate>(() => new SynthesizedTemplate(_hostAssetPath, "dev", gatewaySecretParameterName: null, accessLogs: false));
    }

    private readonly Lazy<SynthesizedTemplate> _withoutAccessLogs;

    /// <summary>Stage <c>dev</c>, secret from a NoEcho CfnParameter.</summary>
    public SynthesizedTemplate Default { get; }

    /// <summary>Stage <c>prod</c>, secret from the SSM parameter <c>/talki/gateway-secret</c>, sessions in the Redis named by <c>/talki/redis</c>.</summary>
    public SynthesizedTemplate WithSsmSecret { get; }

    /// <summary>As <see cref="Default"/>, with <see cref="TalkiStackProps.AccessLogs"/> false (synthesized on first use).</summary>
    public SynthesizedTemplate WithoutAccessLogs => _withoutAccessLogs.Value;

    public TimeSpan SynthDuration { get; }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_hostAssetPath, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

[CollectionDefinition(Name)]
public sealed class SynthesizedStacks : ICollectionFixture<StackFixture>
{
    public const string Name = "synthesized TalkiStack";
}
