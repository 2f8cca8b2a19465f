using System.Net;
using System.Net.Sockets;
using System.Text;
using Amazon;
using Amazon.Runtime;
using Amazon.Runtime.Signing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Talki.Signalling.Aws.ApiGateway;
using Talki.Signalling.Ports;

namespace Talki.Signalling.Aws.Tests.ApiGateway;

/// <summary>The <c>@connections</c> client against a fake API Gateway that verifies every SigV4 signature.</summary>
public sealed class ApiGatewayConnectionsTests : IAsyncLifetime
{
    private const string ConnectionId = "R0oXAdfD0kwCH6w=";
    private const string EncodedConnectionId = "R0oXAdfD0kwCH6w%3D";
    private static readonly byte[] Payload = Encoding.UTF8.GetBytes("{\"type\":\"welcome\",\"text\":\"h\u00e9 + = /\"}");

    private FakeConnectionsServer _server = null!;

    public async Task InitializeAsync() => _server = await FakeConnectionsServer.StartAsync();

    public async Task DisposeAsync() => await _server.DisposeAsync();

    [Fact]
    public void AddApiGatewayPush_ReplacesTheEnginesPushPort()
    {
        using var services = ApiGatewayTestHost.Create(_server.Endpoint);

        var push = services.GetRequiredService<IConnectionPush>();

        Assert.IsType<ApiGatewayConnections>(push);
        Assert.Same(push, services.GetRequiredService<IApiGatewayConnections>());
    }

    [Fact]
    public async Task Push_IsASignedPost_WithTheRawBody_TheEncodedId_AndTheUserAgentSuffix()
    {
        using var services = ApiGatewayTestHost.Create(_server.Endpoint);
        var push = services.GetRequiredService<IConnectionPush>();

        var outcome = await push.PushAsync(ConnectionId, Payload);

        Assert.Equal(PushOutcome.Delivered, outcome);
        var request = Assert.Single(_server.Requests);
        Assert.Null(request.SignatureError);
        Assert.Equal("POST", request.Method);
        Assert.Equal($"/{FakeConnectionsServer.Stage}/@connections/{EncodedConnectionId}", request.RawTarget);
        Assert.Equal(ConnectionId, request.ConnectionId);
        AssertStamped(request.Body);
        Assert.Equal("binary/octet-stream", request.Headers["content-type"]);
        Assert.Contains(AwsPackage.UserAgentSuffix, request.Headers["user-agent"], StringComparison.Ordinal);
        var authorization = Assert.Single(request.AuthorizationValues);
        Assert.Contains($"Credential={FakeConnectionsServer.AccessKey}/", authorization, StringComparison.Ordinal);
        Assert.Contains($"/{FakeConnectionsServer.Region}/execute-api/aws4_request", authorization, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Push_ThrottledAndFailing_IsRetried_ReSigned_AndDelivered()
    {
        using var services = ApiGatewayTestHost.Create(_server.Endpoint);
        var push = services.GetRequiredService<IConnectionPush>();
        _server.Enqueue(429, 500, 503);

        var outcome = await push.PushAsync(ConnectionId, Payload);

        Assert.Equal(PushOutcome.Delivered, outcome);
        Assert.Equal([429, 500, 503, 200], _server.Requests.Select(r => r.Status));
        var first = _server.Requests[0].Body;
        AssertStamped(first);
        Assert.All(_server.Requests, r =>
        {
            Assert.True(r.SignatureValid, r.SignatureError);
            Assert.Single(r.AuthorizationValues); // re-signed, not signed twice
            Assert.Equal(first, r.Body); // every attempt carries the same delivery id: a copy that got through is dropped by the client
            Assert.Equal(1, CountOccurrences(r.Headers["user-agent"], AwsPackage.UserAgentSuffix));
        });
    }

    [Fact]
    public async Task Pushes_CarryDistinctDeliveryIds_AndAPayloadThatIsNotAnObjectIsSentAsIs()
    {
        using var services = ApiGatewayTestHost.Create(_server.Endpoint);
        var push = services.GetRequiredService<IConnectionPush>();

        await push.PushAsync(ConnectionId, Payload);
        await push.PushAsync(ConnectionId, Payload);
        await push.PushAsync(ConnectionId, Encoding.UTF8.GetBytes("[1,2]"));
        await push.PushAsync(ConnectionId, Encoding.UTF8.GetBytes("{}"));

        var ids = _server.Requests.Take(2).Select(r => AssertStamped(r.Body)).ToArray();
        Assert.NotEqual(ids[0], ids[1]);
        Assert.Equal("[1,2]", Encoding.UTF8.GetString(_server.Requests[2].Body));
        Assert.Equal("{}", Encoding.UTF8.GetString(_server.Requests[3].Body));
    }

    /// <summary>The pushed body is the payload with a delivery id added: the same message for a client, plus its <c>mid</c>.</summary>
    private static string AssertStamped(byte[] body)
    {
        var message = Assert.IsType<WelcomeMessageProbe>(System.Text.Json.JsonSerializer.Deserialize<WelcomeMessageProbe>(body));
        Assert.Equal("welcome", message.type);
        Assert.Equal("h\u00e9 + = /", message.text);
        Assert.Matches("^[A-Za-z0-9_-]{12}\\.[0-9a-f]+$", message.mid);
        Assert.Equal(Payload.Length + ",\"mid\":\"\"".Length + message.mid!.Length, body.Length);
        return message.mid;
    }

#pragma warning disable IDE1006, SA1300, CA1812 // mirrors the JSON names
    private sealed record WelcomeMessageProbe(string type, string text, string? mid);
#pragma warning restore IDE1006, SA1300, CA1812

    [Fact]
    public async Task Push_RetriesStopAtTheCap_AndTheMessageIsUndeliverable_NotAGoneConnection()
    {
        using var services = ApiGatewayTestHost.Create(_server.Endpoint, o => o.Retry.MaxRetryAttempts = 2);
        var push = services.GetRequiredService<IConnectionPush>();
        _server.Default = new FakeReply(503);

        var outcome = await push.PushAsync(ConnectionId, Payload);

        Assert.Equal(PushOutcome.Undeliverable, outcome);
        Assert.Equal(3, _server.Requests.Count); // the first attempt and two retries
    }

    [Fact]
    public async Task Push_Throttled_WithoutRetries_IsTriedOnce()
    {
        using var services = ApiGatewayTestHost.Create(_server.Endpoint, o => o.Retry.MaxRetryAttempts = 0);
        var push = services.GetRequiredService<IConnectionPush>();
        _server.Enqueue(429);

        Assert.Equal(PushOutcome.Undeliverable, await push.PushAsync(ConnectionId, Payload));
        Assert.Single(_server.Requests);
    }

    [Fact]
    public async Task Push_Gone_IsNotRetried()
    {
        using var services = ApiGatewayTestHost.Create(_server.Endpoint);
        var push = services.GetRequiredService<IConnectionPush>();
        _server.Enqueue(410);

        var outcome = await push.PushAsync(ConnectionId, Payload);

        Assert.Equal(PushOutcome.Gone, outcome);
        Assert.Equal(410, Assert.Single(_server.Requests).Status);
    }

    [Fact]
    public async Task Push_TooLarge_IsTyped_AndNotRetried()
    {
        using var services = ApiGatewayTestHost.Create(_server.Endpoint);
        var push = services.GetRequiredService<IConnectionPush>();
        _server.Enqueue(413);

        var outcome = await push.PushAsync(ConnectionId, Payload);

        Assert.Equal(PushOutcome.PayloadTooLarge, outcome);
        Assert.Equal(413, Assert.Single(_server.Requests).Status);
    }

    [Fact]
    public async Task Push_ToASlowServer_IsBoundedByTheTimeouts_AndAnswersUndeliverable()
    {
        // Warm up with the default timeouts first: the first signing loads and JIT-compiles the AWS SDK, which on a
        // loaded 2-core machine can take longer than the tight timeouts under test (that made this test flaky).
        using (var warm = ApiGatewayTestHost.Create(_server.Endpoint))
        {
            Assert.Equal(PushOutcome.Delivered, await warm.GetRequiredService<IConnectionPush>().PushAsync(ConnectionId, Payload));
        }

        using var services = ApiGatewayTestHost.Create(_server.Endpoint, o =>
        {
            o.Timeouts.Attempt = TimeSpan.FromMilliseconds(300);
            o.Timeouts.Total = TimeSpan.FromMilliseconds(1500);
        });
        var push = services.GetRequiredService<IConnectionPush>();
        var warmed = PushOutcome.Gone;
        for (var i = 0; i < 5 && warmed != PushOutcome.Delivered; i++)
        {
            warmed = await push.PushAsync(ConnectionId, Payload); // this container's own first request (handler chain, pool)
        }

        Assert.Equal(PushOutcome.Delivered, warmed);
        var before = _server.Requests.Count;
        _server.Default = FakeReply.Slow(TimeSpan.FromSeconds(30));

        var outcome = await push.PushAsync(ConnectionId, Payload);

        // No wall-clock assertion (the machine may be loaded): the exact timing is proven on the fake clock below.
        Assert.Equal(PushOutcome.Undeliverable, outcome);
        Assert.InRange(_server.Requests.Count - before, 1, 4); // at most 1 + 3 attempts, never more than the cap
    }

    [Fact]
    public async Task Push_AttemptAndTotalTimeouts_RunOnTheInjectedTimeProvider()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero));
        using var services = ApiGatewayTestHost.Create(_server.Endpoint, o =>
        {
            o.Retry.MaxRetryAttempts = 5;
            o.Retry.BaseDelay = TimeSpan.FromSeconds(1);
            o.Retry.MaxDelay = TimeSpan.FromSeconds(1);
            o.Timeouts.Attempt = TimeSpan.FromSeconds(4);
            o.Timeouts.Total = TimeSpan.FromSeconds(10);
        }, time);
        var push = services.GetRequiredService<IConnectionPush>();
        _server.Default = FakeReply.Slow(TimeSpan.FromMinutes(2));
        var started = time.GetUtcNow();

        var pushing = push.PushAsync(ConnectionId, Payload).AsTask();
        await _server.NextArrivalAsync(TimeSpan.FromSeconds(10));
        await Task.Delay(300);
        Assert.False(pushing.IsCompleted); // the real clock does not time it out
        while (!pushing.IsCompleted && time.GetUtcNow() - started < TimeSpan.FromMinutes(1))
        {
            time.Advance(TimeSpan.FromMilliseconds(500));
            await Task.WhenAny(pushing, Task.Delay(20));
        }

        Assert.Equal(PushOutcome.Undeliverable, await pushing);
        Assert.InRange(time.GetUtcNow() - started, TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(11)); // the total limit
        Assert.InRange(_server.Requests.Count, 2, 3); // 4 s attempts with 1 s delays fit 2 or 3 in 10 s
    }

    [Fact]
    public async Task Push_RetryDelays_RunOnTheInjectedTimeProvider()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero));
        using var services = ApiGatewayTestHost.Create(_server.Endpoint, o =>
        {
            o.Retry.BaseDelay = TimeSpan.FromSeconds(30);
            o.Retry.MaxDelay = TimeSpan.FromSeconds(30);
            o.Timeouts.Attempt = TimeSpan.FromMinutes(2);
            o.Timeouts.Total = TimeSpan.FromMinutes(5);
        }, time);
        var push = services.GetRequiredService<IConnectionPush>();
        _server.Enqueue(429);

        var pushing = push.PushAsync(ConnectionId, Payload).AsTask();
        await _server.NextArrivalAsync(TimeSpan.FromSeconds(10));
        await Task.Delay(300);
        Assert.False(pushing.IsCompleted); // waiting on the injected clock
        Assert.Single(_server.Requests);
        while (!pushing.IsCompleted && _server.Requests.Count < 2)
        {
            time.Advance(TimeSpan.FromSeconds(1));
            await Task.WhenAny(pushing, Task.Delay(20));
        }

        Assert.Equal(PushOutcome.Delivered, await pushing);
        Assert.Equal([429, 200], _server.Requests.Select(r => r.Status));
    }

    [Fact]
    public async Task Push_ToAnUnreachableEndpoint_IsRetried_ThenAnswersUndeliverable()
    {
        var closedPort = FreePort();
        using var services = ApiGatewayTestHost.Create(new Uri($"http://127.0.0.1:{closedPort}"), o => o.Retry.MaxRetryAttempts = 2);
        var push = services.GetRequiredService<IConnectionPush>();

        Assert.Equal(PushOutcome.Undeliverable, await push.PushAsync(ConnectionId, Payload));
    }

    [Fact]
    public async Task Push_CallerCancellation_Throws()
    {
        using var services = ApiGatewayTestHost.Create(_server.Endpoint);
        var push = services.GetRequiredService<IConnectionPush>();
        _server.Default = FakeReply.Slow(TimeSpan.FromSeconds(30));
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));

        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await push.PushAsync(ConnectionId, Payload, cts.Token));
    }

    [Fact]
    public async Task Push_WithTheWrongSecret_IsRejectedByTheFake_AndThrowsWithoutRetry()
    {
        using var services = ApiGatewayTestHost.Create(_server.Endpoint, o => o.Credentials = new BasicAWSCredentials(FakeConnectionsServer.AccessKey, "not-the-secret"));
        var push = services.GetRequiredService<IConnectionPush>();

        var error = await Assert.ThrowsAsync<HttpRequestException>(async () => await push.PushAsync(ConnectionId, Payload));

        Assert.Equal(HttpStatusCode.Forbidden, error.StatusCode);
        var request = Assert.Single(_server.Requests);
        Assert.Equal("signature mismatch", request.SignatureError);
    }

    [Fact]
    public async Task Close_SendsASignedDelete()
    {
        using var services = ApiGatewayTestHost.Create(_server.Endpoint);
        var push = services.GetRequiredService<IConnectionPush>();

        await push.CloseAsync(ConnectionId);

        var request = Assert.Single(_server.Requests);
        Assert.Equal("DELETE", request.Method);
        Assert.Equal($"/{FakeConnectionsServer.Stage}/@connections/{EncodedConnectionId}", request.RawTarget);
        Assert.True(request.SignatureValid, request.SignatureError);
        Assert.Equal(204, request.Status);
        Assert.Contains(AwsPackage.UserAgentSuffix, request.Headers["user-agent"], StringComparison.Ordinal);
    }

    [Fact]
    public async Task Close_OfAGoneConnection_IsANoOp()
    {
        using var services = ApiGatewayTestHost.Create(_server.Endpoint);
        var push = services.GetRequiredService<IConnectionPush>();
        _server.Enqueue(410);

        await push.CloseAsync(ConnectionId);

        Assert.Single(_server.Requests);
    }

    [Fact]
    public async Task GetConnection_ReadsTheConnection_OrNullWhenGone()
    {
        using var services = ApiGatewayTestHost.Create(_server.Endpoint);
        var connections = services.GetRequiredService<IApiGatewayConnections>();

        var info = await connections.GetConnectionAsync(ConnectionId);
        _server.Enqueue(410);
        var gone = await connections.GetConnectionAsync(ConnectionId);

        Assert.Equal(new ApiGatewayConnectionInfo(
            new DateTimeOffset(2025, 1, 2, 3, 4, 5, TimeSpan.Zero),
            new DateTimeOffset(2025, 1, 2, 3, 5, 6, TimeSpan.Zero),
            "203.0.113.7",
            "Mozilla/5.0"), info);
        Assert.Null(gone);
        Assert.All(_server.Requests, r =>
        {
            Assert.Equal("GET", r.Method);
            Assert.True(r.SignatureValid, r.SignatureError);
        });
    }

    [Fact]
    public async Task Fake_RejectsTamperedSignatures_AndAcceptsTheSignersOwn()
    {
        var uri = new Uri(_server.Endpoint, $"/{FakeConnectionsServer.Stage}/@connections/{EncodedConnectionId}");
        async Task<HttpStatusCode> SendAsync(Action<HttpRequestMessage>? tamper)
        {
            var credentials = new BasicAWSCredentials(FakeConnectionsServer.AccessKey, FakeConnectionsServer.SecretKey);
            using var client = new HttpClient(new SigV4SigningHandler(credentials, RegionEndpoint.USEast1, "execute-api", new TamperingHandler(tamper)));
            using var response = await client.PostAsync(uri, new ByteArrayContent(Payload));
            return response.StatusCode;
        }

        Assert.Equal(HttpStatusCode.OK, await SendAsync(null));
        Assert.Equal(HttpStatusCode.Forbidden, await SendAsync(FlipLastSignatureCharacter));
        Assert.Equal(HttpStatusCode.Forbidden, await SendAsync(r => r.Content = new ByteArrayContent([.. Payload, (byte)' '])));
        Assert.Equal(HttpStatusCode.Forbidden, await SendAsync(r => r.RequestUri = new Uri(_server.Endpoint, $"/{FakeConnectionsServer.Stage}/@connections/other")));

        var requests = _server.Requests;
        Assert.Null(requests[0].SignatureError);
        Assert.Equal("signature mismatch", requests[1].SignatureError);
        Assert.Equal("x-amz-content-sha256 does not match the body", requests[2].SignatureError);
        Assert.Equal("signature mismatch", requests[3].SignatureError);
    }

    private static void FlipLastSignatureCharacter(HttpRequestMessage request)
    {
        var value = Assert.Single(request.Headers.GetValues("Authorization"));
        var flipped = value[..^1] + (value[^1] == '0' ? '1' : '0');
        request.Headers.Remove("Authorization");
        request.Headers.TryAddWithoutValidation("Authorization", flipped);
    }

    private static int CountOccurrences(string text, string value)
    {
        var count = 0;
        for (var i = text.IndexOf(value, StringComparison.Ordinal); i >= 0; i = text.IndexOf(value, i + value.Length, StringComparison.Ordinal))
        {
            count++;
        }

        return count;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>Changes a request after it was signed, before it reaches the wire.</summary>
    private sealed class TamperingHandler(Action<HttpRequestMessage>? tamper) : DelegatingHandler(new SocketsHttpHandler { AllowAutoRedirect = false })
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            tamper?.Invoke(request);
            return base.SendAsync(request, cancellationToken);
        }
    }
}
