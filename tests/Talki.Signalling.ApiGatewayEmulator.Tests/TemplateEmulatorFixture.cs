using System.Text.Json.Nodes;
using Amazon.DynamoDBv2;
using Amazon.Runtime;
using Talki.Signalling.Testing;

namespace Talki.Signalling.Emulator.Tests;

/// <summary>
/// The emulator in template mode, from the template the CDK app synthesizes (optionally altered by the test), with fake
/// backends as the instances of both functions and as the DynamoDB behind the emulator's IAM-checking endpoint.
/// </summary>
internal sealed class TemplateEmulatorFixture : IAsyncDisposable
{
    public const string Secret = "template-gateway-secret-0123456789abcdef";
    public const string BackendKey = "AKIABACKEND000000001";
    public const string BackendSecret = "backend-secret-access-key-000000000000000";
    public const string AuthorizerKey = "AKIAAUTHORIZER000001";
    public const string AuthorizerSecret = "authorizer-secret-access-key-00000000000";

    private TemplateEmulatorFixture(IReadOnlyList<FakeBackend> backends, FakeBackend authorizer, FakeBackend dynamo, ApiGatewayEmulator emulator)
    {
        Backends = backends;
        Authorizer = authorizer;
        Dynamo = dynamo;
        Emulator = emulator;
    }

    /// <summary>Gets the backend function's instances.</summary>
    public IReadOnlyList<FakeBackend> Backends { get; }

    public FakeBackend Backend => Backends[0];

    /// <summary>Gets the authorizer function's instance.</summary>
    public FakeBackend Authorizer { get; }

    /// <summary>Gets what stands behind the emulator's DynamoDB endpoint.</summary>
    public FakeBackend Dynamo { get; }

    public ApiGatewayEmulator Emulator { get; }

    public static async Task<TemplateEmulatorFixture> StartAsync(Action<JsonObject>? alterTemplate = null, int backendInstances = 1, Action<EmulatorOptions>? configure = null)
    {
        var template = SynthesizedTalkiTemplate.Json();
        alterTemplate?.Invoke(template);
        var backends = new List<FakeBackend>();
        for (var i = 0; i < backendInstances; i++)
        {
            backends.Add(await FakeBackend.StartAsync());
        }

        var authorizer = await FakeBackend.StartAsync();
        var dynamo = await FakeBackend.StartAsync();
        var options = new EmulatorOptions { Template = template, StackName = "unit", DynamoDb = dynamo.Address };
        options.TemplateParameters["GatewaySecret"] = Secret;
        var backend = new FunctionInstances { AccessKeyId = BackendKey, SecretAccessKey = BackendSecret };
        foreach (var b in backends)
        {
            backend.Instances.Add(b.Address);
        }

        options.Functions["Backend"] = backend;
        options.Functions["Authorizer"] = new FunctionInstances { Instances = { authorizer.Address }, AccessKeyId = AuthorizerKey, SecretAccessKey = AuthorizerSecret };
        configure?.Invoke(options);
        var emulator = await ApiGatewayEmulator.StartAsync(options);
        return new TemplateEmulatorFixture(backends, authorizer, dynamo, emulator);
    }

    /// <summary>Removes a resource (by the start of its logical id) from a template.</summary>
    public static void Remove(JsonObject template, string logicalIdPrefix)
    {
        var resources = template["Resources"]!.AsObject();
        var id = Assert.Single(resources, r => r.Key.StartsWith(logicalIdPrefix, StringComparison.Ordinal)).Key;
        resources.Remove(id);
    }

    /// <summary>A DynamoDB client signing with a function's key, pointed at the emulator's DynamoDB endpoint.</summary>
    public AmazonDynamoDBClient DynamoDbClient(string accessKey, string secretKey) => new(
        new BasicAWSCredentials(accessKey, secretKey),
        new AmazonDynamoDBConfig { ServiceURL = Emulator.DynamoDbEndpoint!.ToString(), AuthenticationRegion = "us-east-1", MaxErrorRetry = 0 });

    /// <summary>Connects a client (the fake authorizer allows by default) and returns the socket with its connection id.</summary>
    public async Task<(System.Net.WebSockets.ClientWebSocket Socket, string ConnectionId)> ConnectAsync()
    {
        var client = new System.Net.WebSockets.ClientWebSocket();
        client.Options.CollectHttpResponseDetails = true;
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await client.ConnectAsync(new Uri(Emulator.WebSocketUrl + "?v=1&ticket=t-1"), cts.Token);
        var call = Authorizer.CallsTo(FakeBackend.Authorizer)[^1];
        return (client, JsonNode.Parse(call.Body)!["requestContext"]!["connectionId"]!.GetValue<string>());
    }

    public async ValueTask DisposeAsync()
    {
        await Emulator.DisposeAsync();
        foreach (var backend in Backends)
        {
            await backend.DisposeAsync();
        }

        await Authorizer.DisposeAsync();
        await Dynamo.DisposeAsync();
    }
}
