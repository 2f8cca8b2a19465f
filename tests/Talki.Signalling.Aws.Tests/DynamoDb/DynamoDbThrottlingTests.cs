using System.Net;
using System.Text;
using Amazon.DynamoDBv2;
using Amazon.Runtime;
using Microsoft.Extensions.DependencyInjection;
using Talki.Signalling.Aws.Tests.Callbacks;
using Talki.Signalling.Ports;
using Talki.Signalling.Protocol;
using Talki.Signalling.Server;

namespace Talki.Signalling.Aws.Tests.DynamoDb;

/// <summary>
/// DynamoDB throttling, injected under the SDK with a delegating handler in front of dynalite. DynamoDB answers a
/// throttled request with HTTP 400 and <c>__type</c> <c>…#ProvisionedThroughputExceededException</c>, which the SDKs retry
/// with backoff ("Error handling with DynamoDB", DynamoDB developer guide). Short throttling is absorbed by those
/// retries; throttling that outlasts them is <c>service_unavailable</c> for the caller, and nobody is evicted.
/// </summary>
[Collection(DynaliteGroup.Name)]
public sealed class DynamoDbThrottlingTests(DynaliteFixture dynalite) : IDisposable
{
    private readonly ThrottlingFactory _dynamo = new();
    private readonly RecordingPush _push = new();
    private ServiceProvider? _services;

    [Fact]
    public async Task ShortThrottling_IsAbsorbedByTheSdksRetries_TheCallGoesOnAndNothingIsLost()
    {
        var engine = await StartAsync("throttle-short");
        var (ada, bob, bobMember) = await TwoMemberCallAsync(engine);

        _dynamo.ThrottleNext(2);
        await engine.HandleMessageAsync(ada, Json($$$"""{"type":"signal","id":"s","to":"{{{bobMember}}}","description":{"type":"offer","sdp":"v=0"}}"""));

        Assert.Equal(0, _dynamo.Pending);
        Assert.True(_dynamo.Throttled >= 2);
        Assert.Contains(To(bob), f => f.Contains("\"type\":\"signal\"", StringComparison.Ordinal));
        Assert.DoesNotContain(To(ada), f => f.Contains("\"type\":\"error\"", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ThrottlingThatOutlastsTheRetries_IsServiceUnavailable_NobodyIsEvicted_AndTheCallResumes()
    {
        var engine = await StartAsync("throttle-long");
        var (ada, bob, bobMember) = await TwoMemberCallAsync(engine);

        _dynamo.ThrottleNext(1000);
        await engine.HandleMessageAsync(ada, Json($$$"""{"type":"signal","id":"busy","to":"{{{bobMember}}}","description":{"type":"offer","sdp":"v=0"}}"""));
        var answer = To(ada).Last();
        Assert.Contains("\"code\":\"service_unavailable\"", answer, StringComparison.Ordinal);
        Assert.Contains("\"id\":\"busy\"", answer, StringComparison.Ordinal);
        Assert.Empty(_push.Closes);

        _dynamo.ThrottleNext(0);
        await engine.HandleMessageAsync(ada, Json($$$"""{"type":"signal","id":"later","to":"{{{bobMember}}}","description":{"type":"offer","sdp":"v=1"}}"""));
        Assert.Contains(To(bob), f => f.Contains("v=1", StringComparison.Ordinal));
        Assert.DoesNotContain(To(bob), f => f.Contains("\"peer_left\"", StringComparison.Ordinal));
    }

    public void Dispose() => _services?.Dispose();

    private List<string> To(string connection) => [.. _push.Pushes.Where(p => p.ConnectionId == connection).Select(p => p.Json)];

    private static ReadOnlyMemory<byte> Json(string json) => Encoding.UTF8.GetBytes(json);

    private async Task<ISignallingEngine> StartAsync(string table)
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddSingleton<IAmazonDynamoDB>(new AmazonDynamoDBClient(
            new BasicAWSCredentials("test", "test"),
            new AmazonDynamoDBConfig { ServiceURL = dynalite.ServiceUrl, HttpClientFactory = _dynamo }));
        services.AddSingleton<IConnectionPush>(_push);
        services.AddTalkiSignallingCore(o => o.SealRoomsOnTimer = false).AddDynamoDbRoomStore(o =>
        {
            o.TableName = table;
            o.CreateTableIfMissing = true;
        });
        _services = services.BuildServiceProvider();
        await dynalite.EnsureTableAsync(table);
        return _services.GetRequiredService<ISignallingEngine>();
    }

    private static async Task<(string Ada, string Bob, MemberId BobMember)> TwoMemberCallAsync(ISignallingEngine engine)
    {
        var room = (await engine.CreateRoomAsync(new CallerIdentity("ada", "Ada", false))).Value;
        Assert.True((await engine.ConnectAsync("conn-ada", room.Ticket.Value)).IsSuccess);
        await engine.HandleMessageAsync("conn-ada", Json("""{"type":"hello","version":1}"""));
        var join = (await engine.IssueJoinTicketAsync(new CallerIdentity("bob", "Bob", false), room.Room)).Value;
        Assert.True((await engine.ConnectAsync("conn-bob", join.Ticket.Value)).IsSuccess);
        await engine.HandleMessageAsync("conn-bob", Json("""{"type":"hello","version":1}"""));
        await engine.HandleMessageAsync("conn-ada", Json($$$"""{"type":"admit","member":"{{{join.Member}}}"}"""));
        return ("conn-ada", "conn-bob", join.Member);
    }

    /// <summary>Answers the next N DynamoDB requests as DynamoDB does when throttled; the rest go to dynalite.</summary>
    private sealed class ThrottlingFactory : HttpClientFactory
    {
        private int _pending;
        private int _throttled;

        public int Pending => Volatile.Read(ref _pending);

        public int Throttled => Volatile.Read(ref _throttled);

        public void ThrottleNext(int count) => Volatile.Write(ref _pending, count);

        public override HttpClient CreateHttpClient(IClientConfig clientConfig) => new(new Handler(this) { InnerHandler = new SocketsHttpHandler() });

        private sealed class Handler(ThrottlingFactory owner) : DelegatingHandler
        {
            protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
            {
                var left = Interlocked.Decrement(ref owner._pending);
                if (left < 0)
                {
                    Interlocked.Increment(ref owner._pending);
                    return base.SendAsync(request, cancellationToken);
                }

                Interlocked.Increment(ref owner._throttled);
                var body = """{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API."}""";
                var response = new HttpResponseMessage(HttpStatusCode.BadRequest)
                {
                    RequestMessage = request,
                    Content = new StringContent(body, Encoding.UTF8, "application/x-amz-json-1.0"),
                };
                response.Headers.TryAddWithoutValidation("x-amzn-RequestId", Guid.NewGuid().ToString("N"));
                return Task.FromResult(response);
            }
        }
    }
}
