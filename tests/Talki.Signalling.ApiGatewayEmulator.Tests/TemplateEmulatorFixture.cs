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

    private readonly RuntimeBridge? _bridge;

    private TemplateEmulatorFixture(IReadOnlyList<FakeBackend> backends, FakeBackend authorizer, FakeBackend dynamo, ApiGatewayEmulator emulator)
    {
        Backends = backends;
        Authorizer = authorizer;
        Dynamo = dynamo;
        Emulator = emulator;
        _bridge = emulator.Deployment.Function("Authorizer").UsesWebAdapter ? null : new RuntimeBridge(emulator.RuntimeApi("Authorizer").RuntimeApi, authorizer.Address);
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
        // The stack's authorizer is a custom runtime: the emulator serves its runtime API at the instance's address, and the
        // fake (a web server) answers the events a bridge takes from there. A test that gives it the adapter layer back gets
        // the fake as the instance itself.
        var adapter = template["Resources"]!.AsObject().Single(r => r.Key.StartsWith("AuthorizerBD", StringComparison.Ordinal)).Value!["Properties"]!["Layers"]
            ?.ToJsonString().Contains("LambdaAdapterLayer", StringComparison.Ordinal) == true;
        var instance = adapter ? authorizer.Address : new Uri($"http://127.0.0.1:{LoopbackPorts.Choose()}");
        options.Functions["Authorizer"] = new FunctionInstances { Instances = { instance }, AccessKeyId = AuthorizerKey, SecretAccessKey = AuthorizerSecret };
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
        if (_bridge is not null)
        {
            await _bridge.DisposeAsync();
        }

        await Emulator.DisposeAsync();
        foreach (var backend in Backends)
        {
            await backend.DisposeAsync();
        }

        await Authorizer.DisposeAsync();
        await Dynamo.DisposeAsync();
    }
}

/// <summary>
/// A custom runtime standing in front of a fake web server: it takes each event from a runtime API and returns the body the
/// fake answers at its pass-through path (its status discarded), as the Lambda Web Adapter does for a non-HTTP event.
/// </summary>
internal sealed class RuntimeBridge : IAsyncDisposable
{
    private readonly HttpClient _http = new(new SocketsHttpHandler { UseProxy = false }) { Timeout = Timeout.InfiniteTimeSpan };
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    public RuntimeBridge(string runtimeApi, Uri fake)
    {
        _loop = Task.Run(() => LoopAsync(new Uri("http://" + runtimeApi), fake));
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        try
        {
            await _loop;
        }
        catch (Exception e) when (e is OperationCanceledException or HttpRequestException)
        {
        }

        _http.Dispose();
        _stop.Dispose();
    }

    private async Task LoopAsync(Uri runtime, Uri fake)
    {
        while (!_stop.IsCancellationRequested)
        {
            using var next = await _http.GetAsync(new Uri(runtime, "/2018-06-01/runtime/invocation/next"), _stop.Token);
            var id = next.Headers.GetValues("Lambda-Runtime-Aws-Request-Id").Single();
            var body = await next.Content.ReadAsByteArrayAsync(_stop.Token);
            using var answer = await _http.PostAsync(new Uri(fake, FakeBackend.Authorizer), new ByteArrayContent(body), _stop.Token);
            var result = await answer.Content.ReadAsByteArrayAsync(_stop.Token);
            using (await _http.PostAsync(new Uri(runtime, $"/2018-06-01/runtime/invocation/{id}/response"), new ByteArrayContent(result), _stop.Token))
            {
            }
        }
    }
}
