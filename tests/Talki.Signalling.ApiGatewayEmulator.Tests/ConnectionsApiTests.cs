using System.Diagnostics;
using System.Net;
using System.Net.WebSockets;
using System.Text;
using Amazon;
using Amazon.Runtime;
using Amazon.Runtime.Signing;
using Microsoft.Extensions.DependencyInjection;
using Talki.Signalling.Aws.ApiGateway;
using Talki.Signalling.Ports;

namespace Talki.Signalling.Emulator.Tests;

/// <summary>The <c>@connections</c> API, driven by the real <c>AddApiGatewayPush</c> client where possible.</summary>
public sealed class ConnectionsApiTests
{
    private static readonly byte[] Welcome = Encoding.UTF8.GetBytes("{\"type\":\"welcome\",\"text\":\"h\u00e9 + = /\"}");

    [Fact]
    public async Task SignedPush_FromTheRealClient_IsDeliveredAsATextFrame()
    {
        await using var fixture = await EmulatorFixture.StartAsync();
        var (socket, id) = await fixture.ConnectWithIdAsync();
        using var _ = socket;

        var outcome = await fixture.Connections.PushAsync(id, Welcome);
        var received = await socket.ReceiveAsync();

        Assert.Equal(PushOutcome.Delivered, outcome);
        Assert.Equal(WebSocketMessageType.Text, received.Type);
        Assert.Equal(Encoding.UTF8.GetString(Welcome), received.Message);
        Assert.Equal(1, fixture.Emulator.Counters.OutboundMessages);
        Assert.Equal(1, fixture.Emulator.Counters.ConnectionsApiCallCount("POST", 200));
    }

    [Fact]
    public async Task PushOf128KB_IsDelivered_InFramesOfAtMost32KB()
    {
        await using var fixture = await EmulatorFixture.StartAsync();
        var (socket, id) = await fixture.ConnectWithIdAsync();
        using var _ = socket;
        var payload = Encoding.UTF8.GetBytes(new string('z', 128 * 1024));

        Assert.Equal(PushOutcome.Delivered, await fixture.Connections.PushAsync(id, payload));

        var buffer = new byte[64 * 1024];
        var frames = 0;
        var total = 0;
        ValueWebSocketReceiveResult result;
        do
        {
            result = await socket.ReceiveAsync(buffer.AsMemory(), CancellationToken.None);
            Assert.True(result.Count <= 32 * 1024);
            total += result.Count;
            frames++;
        }
        while (!result.EndOfMessage);

        Assert.Equal(payload.Length, total);
        Assert.True(frames >= 4);
    }

    [Fact]
    public async Task PushOver128KB_Is413_PayloadTooLarge()
    {
        await using var fixture = await EmulatorFixture.StartAsync();
        var (socket, id) = await fixture.ConnectWithIdAsync();
        using var _ = socket;

        var outcome = await fixture.Connections.PushAsync(id, new byte[(128 * 1024) + 1]);

        Assert.Equal(PushOutcome.PayloadTooLarge, outcome);
        Assert.Equal(1, fixture.Emulator.Counters.ConnectionsApiCallCount("POST", 413));
        Assert.Equal(0, fixture.Emulator.Counters.OutboundMessages);
    }

    [Fact]
    public async Task UnknownConnection_Is410_WithTheAwsErrorShape()
    {
        await using var fixture = await EmulatorFixture.StartAsync();

        Assert.Equal(PushOutcome.Gone, await fixture.Connections.PushAsync("R0oXAdfD0kwCH6w=", Welcome));
        Assert.Null(await fixture.Connections.GetConnectionAsync("R0oXAdfD0kwCH6w="));
        await fixture.Connections.CloseAsync("R0oXAdfD0kwCH6w="); // 410 is not an error for close

        // The raw shape, through the bare signer.
        using var http = SignedClient(fixture, EmulatorOptions.DefaultSecretAccessKey);
        using var response = await http.PostAsync($"/{fixture.Emulator.Stage}/@connections/R0oXAdfD0kwCH6w%3D", new ByteArrayContent(Welcome));
        Assert.Equal(HttpStatusCode.Gone, response.StatusCode);
        Assert.Equal("GoneException", Assert.Single(response.Headers.GetValues("x-amzn-ErrorType")));
        Assert.False(string.IsNullOrEmpty(Assert.Single(response.Headers.GetValues("x-amzn-RequestId"))));
        Assert.Equal("{}", await response.Content.ReadAsStringAsync());
        Assert.Equal(2, fixture.Emulator.Counters.ConnectionsApiCallCount("POST", 410));
        Assert.Equal(1, fixture.Emulator.Counters.ConnectionsApiCallCount("GET", 410));
        Assert.Equal(1, fixture.Emulator.Counters.ConnectionsApiCallCount("DELETE", 410));
    }

    [Fact]
    public async Task UnsignedRequest_Is403_Forbidden()
    {
        await using var fixture = await EmulatorFixture.StartAsync();
        var (socket, id) = await fixture.ConnectWithIdAsync();
        using var _ = socket;
        using var http = new HttpClient { BaseAddress = fixture.Emulator.ManagementEndpoint };

        using var response = await http.PostAsync($"/{fixture.Emulator.Stage}/@connections/{Uri.EscapeDataString(id)}", new ByteArrayContent(Welcome));

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Equal("ForbiddenException", Assert.Single(response.Headers.GetValues("x-amzn-ErrorType")));
        Assert.Equal(0, fixture.Emulator.Counters.OutboundMessages);
    }

    [Fact]
    public async Task WrongSecret_Is403_AndTheRealClientThrows()
    {
        await using var fixture = await EmulatorFixture.StartAsync();
        var (socket, id) = await fixture.ConnectWithIdAsync();
        using var _ = socket;
        await using var services = fixture.PushClient(o => o.Credentials = new BasicAWSCredentials(EmulatorOptions.DefaultAccessKeyId, "not-the-secret"));

        var exception = await Assert.ThrowsAsync<HttpRequestException>(async () => await services.GetRequiredService<IApiGatewayConnections>().PushAsync(id, Welcome));

        Assert.Equal(HttpStatusCode.Forbidden, exception.StatusCode);
        Assert.Equal(1, fixture.Emulator.Counters.ConnectionsApiCallCount("POST", 403));
    }

    [Fact]
    public async Task WrongRegion_Is403()
    {
        await using var fixture = await EmulatorFixture.StartAsync();
        var (socket, id) = await fixture.ConnectWithIdAsync();
        using var _ = socket;
        await using var services = fixture.PushClient(o => o.Region = "eu-west-1");

        var exception = await Assert.ThrowsAsync<HttpRequestException>(async () => await services.GetRequiredService<IApiGatewayConnections>().PushAsync(id, Welcome));

        Assert.Equal(HttpStatusCode.Forbidden, exception.StatusCode);
    }

    [Fact]
    public async Task TamperedBody_AfterSigning_Is403()
    {
        await using var fixture = await EmulatorFixture.StartAsync();
        var (socket, id) = await fixture.ConnectWithIdAsync();
        using var _ = socket;
        using var http = SignedClient(fixture, EmulatorOptions.DefaultSecretAccessKey, tamper: true);

        using var response = await http.PostAsync($"/{fixture.Emulator.Stage}/@connections/{Uri.EscapeDataString(id)}", new ByteArrayContent(Welcome));

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Equal(0, fixture.Emulator.Counters.OutboundMessages);
    }

    [Fact]
    public async Task GetConnection_ReportsConnectedAtIdentityAndLastActiveAt()
    {
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(new DateTimeOffset(2025, 1, 2, 3, 4, 5, TimeSpan.Zero));
        await using var fixture = await EmulatorFixture.StartAsync(o => o.TimeProvider = time);
        var (socket, id) = await fixture.ConnectWithIdAsync();
        using var _ = socket;
        time.Advance(TimeSpan.FromSeconds(61));
        await socket.SendTextAsync("{}");
        await fixture.Backend.NextAsync(FakeBackend.Default);

        var info = await fixture.Connections.GetConnectionAsync(id);

        Assert.NotNull(info);
        Assert.Equal(new DateTimeOffset(2025, 1, 2, 3, 4, 5, TimeSpan.Zero), info.ConnectedAt);
        Assert.Equal(new DateTimeOffset(2025, 1, 2, 3, 5, 6, TimeSpan.Zero), info.LastActiveAt);
        Assert.Equal("127.0.0.1", info.SourceIp);
        Assert.Equal("EmulatorTests/1.0", info.UserAgent);

        using var http = SignedClient(fixture, EmulatorOptions.DefaultSecretAccessKey);
        var json = await http.GetStringAsync($"/{fixture.Emulator.Stage}/@connections/{Uri.EscapeDataString(id)}");
        Assert.Equal("""{"connectedAt":"2025-01-02T03:04:05.000Z","identity":{"sourceIp":"127.0.0.1","userAgent":"EmulatorTests/1.0"},"lastActiveAt":"2025-01-02T03:05:06.000Z"}""", json);
    }

    [Fact]
    public async Task DeleteConnection_Is204_ClosesWith1000_AndPostsDisconnect()
    {
        await using var fixture = await EmulatorFixture.StartAsync();
        var (socket, id) = await fixture.ConnectWithIdAsync();
        using var _ = socket;

        using var http = SignedClient(fixture, EmulatorOptions.DefaultSecretAccessKey);
        using var response = await http.DeleteAsync($"/{fixture.Emulator.Stage}/@connections/{Uri.EscapeDataString(id)}");
        var (status, description) = await socket.ExpectCloseAsync();

        Assert.Equal(HttpStatusCode.NoContent, response.StatusCode);
        Assert.Equal(WebSocketCloseStatus.NormalClosure, status);
        Assert.Equal("Connection Closed Normally", description);
        Assert.Equal(id, (await fixture.Backend.NextAsync(FakeBackend.Disconnect)).ConnectionId);
        Assert.Equal(PushOutcome.Gone, await fixture.Connections.PushAsync(id, Welcome));
    }

    [Fact]
    public async Task CloseAsync_OfTheRealClient_ClosesTheSocket()
    {
        await using var fixture = await EmulatorFixture.StartAsync();
        var (socket, id) = await fixture.ConnectWithIdAsync();
        using var _ = socket;

        await fixture.Connections.CloseAsync(id);

        Assert.Equal(WebSocketCloseStatus.NormalClosure, (await socket.ExpectCloseAsync()).Status);
        Assert.Equal(1, fixture.Emulator.Counters.ConnectionsApiCallCount("DELETE", 204));
    }

    [Fact]
    public async Task ThrottledAndFailingPushes_AreRetriedByTheClient_AndDelivered()
    {
        await using var fixture = await EmulatorFixture.StartAsync();
        var (socket, id) = await fixture.ConnectWithIdAsync();
        using var _ = socket;
        fixture.Emulator.Faults.ScriptPushFailures(429, 500, 503);

        var outcome = await fixture.Connections.PushAsync(id, Welcome);

        Assert.Equal(PushOutcome.Delivered, outcome);
        Assert.Equal(Encoding.UTF8.GetString(Welcome), (await socket.ReceiveAsync()).Message);
        var counters = fixture.Emulator.Counters;
        Assert.Equal(1, counters.ConnectionsApiCallCount("POST", 429));
        Assert.Equal(1, counters.ConnectionsApiCallCount("POST", 500));
        Assert.Equal(1, counters.ConnectionsApiCallCount("POST", 503));
        Assert.Equal(1, counters.ConnectionsApiCallCount("POST", 200));
        Assert.Equal(4, counters.ConnectionsApiCallCount("POST"));
        Assert.Equal(1, counters.OutboundMessages);
    }

    [Fact]
    public async Task FaultStatuses_CarryTheAwsErrorTypes()
    {
        await using var fixture = await EmulatorFixture.StartAsync();
        var (socket, id) = await fixture.ConnectWithIdAsync();
        using var _ = socket;
        fixture.Emulator.Faults.ScriptPushFailures(429, 500, 503);
        using var http = SignedClient(fixture, EmulatorOptions.DefaultSecretAccessKey);

        var types = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            using var response = await http.PostAsync($"/{fixture.Emulator.Stage}/@connections/{Uri.EscapeDataString(id)}", new ByteArrayContent(Welcome));
            types.Add($"{(int)response.StatusCode} {Assert.Single(response.Headers.GetValues("x-amzn-ErrorType"))}");
        }

        Assert.Equal(["429 LimitExceededException", "500 InternalServerErrorException", "503 ServiceUnavailableException"], types);
    }

    [Fact]
    public async Task PersistentThrottling_ExhaustsTheRetries_AndThePushIsUndeliverable_NotGone()
    {
        await using var fixture = await EmulatorFixture.StartAsync();
        var (socket, id) = await fixture.ConnectWithIdAsync();
        using var _ = socket;
        fixture.Emulator.Faults.FailNextPushes(10, 429);

        var outcome = await fixture.Connections.PushAsync(id, Welcome);

        Assert.Equal(PushOutcome.Undeliverable, outcome);
        Assert.Equal(4, fixture.Emulator.Counters.ConnectionsApiCallCount("POST", 429)); // 1 + 3 retries
        Assert.Equal(6, fixture.Emulator.Faults.PendingFailures);
        fixture.Emulator.Faults.Reset();
        Assert.Equal(PushOutcome.Delivered, await fixture.Connections.PushAsync(id, Welcome));
    }

    [Fact]
    public async Task DroppedPush_Answers200_ButIsNotDelivered()
    {
        await using var fixture = await EmulatorFixture.StartAsync();
        var (socket, id) = await fixture.ConnectWithIdAsync();
        using var _ = socket;
        fixture.Emulator.Faults.DropNextPushes(1);

        Assert.Equal(PushOutcome.Delivered, await fixture.Connections.PushAsync(id, "{\"n\":1}"u8.ToArray()));
        Assert.Equal(PushOutcome.Delivered, await fixture.Connections.PushAsync(id, "{\"n\":2}"u8.ToArray()));

        Assert.Equal("{\"n\":2}", (await socket.ReceiveAsync()).Message);
        Assert.Equal(1, fixture.Emulator.Counters.DroppedPushes);
        Assert.Equal(1, fixture.Emulator.Counters.OutboundMessages);
        Assert.Equal(2, fixture.Emulator.Counters.ConnectionsApiCallCount("POST", 200));
    }

    [Fact]
    public async Task Latency_DelaysEveryCall()
    {
        await using var fixture = await EmulatorFixture.StartAsync();
        var (socket, id) = await fixture.ConnectWithIdAsync();
        using var _ = socket;
        fixture.Emulator.Faults.Latency = TimeSpan.FromMilliseconds(300);

        var stopwatch = Stopwatch.StartNew();
        Assert.Equal(PushOutcome.Delivered, await fixture.Connections.PushAsync(id, Welcome));

        Assert.True(stopwatch.Elapsed >= TimeSpan.FromMilliseconds(290), stopwatch.Elapsed.ToString());
    }

    [Fact]
    public async Task Counters_CountAConversation()
    {
        await using var fixture = await EmulatorFixture.StartAsync();
        var (a, idA) = await fixture.ConnectWithIdAsync();
        var (b, idB) = await fixture.ConnectWithIdAsync();
        await a.SendTextAsync("{\"n\":1}");
        await b.SendTextAsync("{\"n\":2}");
        await fixture.Backend.NextAsync(FakeBackend.Default);
        await fixture.Backend.NextAsync(FakeBackend.Default);
        await fixture.Connections.PushAsync(idA, Welcome);
        await fixture.Connections.PushAsync(idB, Welcome);
        await fixture.Connections.PushAsync(idB, Welcome);
        await fixture.Connections.GetConnectionAsync(idA);
        await a.ReceiveAsync();
        await a.CloseAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);
        await fixture.Backend.NextAsync(FakeBackend.Disconnect);

        var counters = fixture.Emulator.Counters;
        Assert.Equal(2, counters.AuthorizerCalls);
        Assert.Equal(2, counters.InboundMessages);
        Assert.Equal(3, counters.OutboundMessages);
        Assert.Equal(5, counters.MeteredMessages);
        Assert.Equal(2, counters.DefaultRouteCalls);
        Assert.Equal(1, counters.DisconnectRouteCalls);
        Assert.Equal(3, counters.BackendCalls);
        Assert.Equal(3, counters.ConnectionsApiCalls["POST 200"]);
        Assert.Equal(1, counters.ConnectionsApiCalls["GET 200"]);
        Assert.True(counters.ConnectionTime > TimeSpan.Zero);
        Assert.Equal([idB], fixture.Emulator.OpenConnectionIds);
        a.Dispose();
        b.Dispose();
    }

    [Fact]
    public async Task UnknownRoute_Is403_MissingAuthenticationToken()
    {
        await using var fixture = await EmulatorFixture.StartAsync();
        using var http = SignedClient(fixture, EmulatorOptions.DefaultSecretAccessKey);

        using var response = await http.PostAsync("/otherstage/@connections/abc", new ByteArrayContent(Welcome));

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
    }

    /// <summary>A bare AWSSDK.Core SigV4-signed client; with <paramref name="tamper"/> the body is changed after signing.</summary>
    private static HttpClient SignedClient(EmulatorFixture fixture, string secret, bool tamper = false)
    {
        HttpMessageHandler transport = new SocketsHttpHandler { AllowAutoRedirect = false };
        if (tamper)
        {
            transport = new TamperingHandler { InnerHandler = transport };
        }

        var signer = new SigV4SigningHandler(new BasicAWSCredentials(EmulatorOptions.DefaultAccessKeyId, secret), RegionEndpoint.USEast1, "execute-api", transport);
        return new HttpClient(signer) { BaseAddress = fixture.Emulator.ManagementEndpoint };
    }

    private sealed class TamperingHandler : DelegatingHandler
    {
        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var body = await request.Content!.ReadAsByteArrayAsync(cancellationToken);
            body[^2] ^= 0x01;
            var content = new ByteArrayContent(body);
            foreach (var header in request.Content.Headers.Where(h => h.Key != "Content-Length"))
            {
                content.Headers.TryAddWithoutValidation(header.Key, header.Value);
            }

            request.Content = content;
            return await base.SendAsync(request, cancellationToken);
        }
    }
}
