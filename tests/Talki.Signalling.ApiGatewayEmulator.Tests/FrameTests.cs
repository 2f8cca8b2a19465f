using System.Net.WebSockets;
using System.Text;
using Microsoft.Extensions.Time.Testing;

namespace Talki.Signalling.Emulator.Tests;

/// <summary>Messages to <c>$default</c>, closes to <c>$disconnect</c>, frame and message quotas, idle timeout.</summary>
public sealed class FrameTests
{
    [Fact]
    public async Task TextMessage_IsPostedToDefault_WithTheMappedAndForwardedHeaders_AndTheResponseStaysWithTheGateway()
    {
        await using var fixture = await EmulatorFixture.StartAsync();
        var (socket, id) = await fixture.ConnectWithIdAsync();
        using var _ = socket;

        await socket.SendTextAsync("{\"type\":\"hello\",\"text\":\"h\u00e9\"}");
        var call = await fixture.Backend.NextAsync(FakeBackend.Default);

        Assert.Equal("{\"type\":\"hello\",\"text\":\"h\u00e9\"}", call.Body);
        Assert.Equal(id, call.ConnectionId);
        Assert.Equal(EmulatorFixture.Secret, call.Headers["x-talki-gateway-secret"]);
        Assert.Equal("0", call.Headers["sec-websocket-version"]);
        Assert.Equal("AmazonAPIGateway_emu0api001", call.Headers["user-agent"]);
        Assert.Equal("emu0api001", call.Headers["x-amzn-apigateway-api-id"]);
        Assert.StartsWith("Root=1-", call.Headers["x-amzn-trace-id"], StringComparison.Ordinal);
        Assert.False(call.Headers.ContainsKey("upgrade"));

        // The backend's response body is not sent to the client: the next frame it sees is a push.
        await fixture.Connections.PushAsync(id, "{\"type\":\"pushed\"}"u8.ToArray());
        Assert.Equal("{\"type\":\"pushed\"}", (await socket.ReceiveAsync()).Message);
        Assert.Equal(1, fixture.Emulator.Counters.InboundMessages);
        Assert.Equal(1, fixture.Emulator.Counters.DefaultRouteCalls);
    }

    [Fact]
    public async Task SlowIntegrationCall_DoesNotHoldBackTheConnectionsNextFrame()
    {
        await using var fixture = await EmulatorFixture.StartAsync();
        using var socket = await fixture.ConnectAsync();
        var secondArrived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var firstFinishedAfterSecond = false;
        fixture.Backend.OnDefault = async call =>
        {
            if (call.Body == "{\"n\":1}")
            {
                // The first frame's call stays open until the second frame's call has arrived.
                await secondArrived.Task.WaitAsync(TimeSpan.FromSeconds(10));
                firstFinishedAfterSecond = true;
            }
            else
            {
                secondArrived.TrySetResult();
            }
        };

        await socket.SendTextAsync("{\"n\":1}");
        await socket.SendTextAsync("{\"n\":2}");
        await TemplateModeTests.WaitUntilAsync(() => fixture.Emulator.Counters.Integrations.Count == 2);

        Assert.True(firstFinishedAfterSecond); // serialised, the first call would have waited for a second that never came
    }

    [Fact]
    public async Task FrameJitter_ReordersTheIntegrationCallsOfOneConnection_AndLosesNone()
    {
        await using var fixture = await EmulatorFixture.StartAsync();
        using var socket = await fixture.ConnectAsync();
        fixture.Emulator.Faults.FrameJitter = TimeSpan.FromMilliseconds(200);
        var sent = Enumerable.Range(0, 40).Select(i => $"{{\"n\":{i}}}").ToList();

        foreach (var frame in sent)
        {
            await socket.SendTextAsync(frame);
        }

        await TemplateModeTests.WaitUntilAsync(() => fixture.Backend.CallsTo(FakeBackend.Default).Count == sent.Count);
        var arrived = fixture.Backend.CallsTo(FakeBackend.Default).Select(c => c.Body).ToList();

        Assert.Equal(sent.Order(), arrived.Order());
        Assert.NotEqual(sent, arrived); // 40 frames, each delayed 0-200 ms at random: in order only by a vanishing chance
    }

    [Fact]
    public async Task IntegrationAnswering500_DecidesNothingForTheClient_NoFrameIsSent()
    {
        await using var fixture = await EmulatorFixture.StartAsync();
        var (socket, id) = await fixture.ConnectWithIdAsync();
        using var _ = socket;
        fixture.Backend.DefaultStatus = 500;

        await socket.SendTextAsync("{\"type\":\"hello\"}");
        await fixture.Backend.NextAsync(FakeBackend.Default);
        await TemplateModeTests.WaitUntilAsync(() => fixture.Emulator.Counters.Integrations.Count == 1);
        await fixture.Connections.PushAsync(id, "{\"type\":\"next\"}"u8.ToArray());

        Assert.Equal(500, Assert.Single(fixture.Emulator.Counters.Integrations).Status);
        Assert.Equal("{\"type\":\"next\"}", (await socket.ReceiveAsync()).Message); // the first frame the client sees is the push
    }

    [Fact]
    public async Task FragmentedMessage_IsForwardedOnce_Whole()
    {
        await using var fixture = await EmulatorFixture.StartAsync();
        using var socket = await fixture.ConnectAsync();
        var part = new string('a', 30 * 1024);

        for (var i = 0; i < 4; i++)
        {
            await socket.SendTextAsync(part, endOfMessage: i == 3); // 120 KB in four 30 KB frames
        }

        var call = await fixture.Backend.NextAsync(FakeBackend.Default);
        Assert.Equal(4 * part.Length, call.Body.Length);
        Assert.Equal(1, fixture.Emulator.Counters.InboundMessages);
        Assert.Equal(4, fixture.Emulator.Counters.MeteredMessages); // metered in 32 KB increments
    }

    [Fact]
    public async Task UnreachableIntegration_SendsApiGatewaysInternalServerErrorFrame()
    {
        await using var fixture = await EmulatorFixture.StartAsync();
        var (socket, id) = await fixture.ConnectWithIdAsync();
        using var _ = socket;
        await fixture.Backend.DisposeAsync();

        await socket.SendTextAsync("{}");
        using var error = System.Text.Json.JsonDocument.Parse((await socket.ReceiveAsync()).Text);

        Assert.Equal("Internal server error", error.RootElement.GetProperty("message").GetString());
        Assert.Equal(id, error.RootElement.GetProperty("connectionId").GetString());
        Assert.True(error.RootElement.TryGetProperty("requestId", out var _));
    }

    [Fact]
    public async Task ClientClose_IsPostedToDisconnect_WithTheHeaders()
    {
        await using var fixture = await EmulatorFixture.StartAsync();
        var (socket, id) = await fixture.ConnectWithIdAsync();

        await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", CancellationToken.None);
        var call = await fixture.Backend.NextAsync(FakeBackend.Disconnect);

        Assert.Equal(WebSocketState.Closed, socket.State);
        Assert.Equal(id, call.ConnectionId);
        Assert.Equal(EmulatorFixture.Secret, call.Headers["x-talki-gateway-secret"]);
        Assert.Equal("0", call.Headers["sec-websocket-version"]);
        Assert.Equal("AmazonAPIGateway_emu0api001", call.Headers["user-agent"]);
        Assert.Equal(1, fixture.Emulator.Counters.DisconnectRouteCalls);
        Assert.Equal(Ports.PushOutcome.Gone, await fixture.Connections.PushAsync(id, "x"u8.ToArray()));
        socket.Dispose();
    }

    [Fact]
    public async Task AbortedClient_IsPostedToDisconnect()
    {
        await using var fixture = await EmulatorFixture.StartAsync();
        var (socket, id) = await fixture.ConnectWithIdAsync();

        socket.Abort();
        socket.Dispose();

        Assert.Equal(id, (await fixture.Backend.NextAsync(FakeBackend.Disconnect)).ConnectionId);
    }

    [Fact]
    public async Task FrameOver32KB_ClosesWith1009()
    {
        await using var fixture = await EmulatorFixture.StartAsync();
        var (socket, id) = await fixture.ConnectWithIdAsync();
        using var _ = socket;

        await socket.SendTextAsync(new string('a', (32 * 1024) + 1));
        var (status, _) = await socket.ExpectCloseAsync();

        Assert.Equal(WebSocketCloseStatus.MessageTooBig, status);
        Assert.Equal(id, (await fixture.Backend.NextAsync(FakeBackend.Disconnect)).ConnectionId);
        Assert.Empty(fixture.Backend.CallsTo(FakeBackend.Default));
    }

    [Fact]
    public async Task FrameOfExactly32KB_IsAccepted()
    {
        await using var fixture = await EmulatorFixture.StartAsync();
        using var socket = await fixture.ConnectAsync();

        await socket.SendTextAsync(new string('a', 32 * 1024));

        Assert.Equal(32 * 1024, (await fixture.Backend.NextAsync(FakeBackend.Default)).Body.Length);
    }

    [Fact]
    public async Task MessageOver128KB_InSmallFrames_ClosesWith1009()
    {
        await using var fixture = await EmulatorFixture.StartAsync();
        using var socket = await fixture.ConnectAsync();

        var (status, _) = await SendThenExpectCloseAsync(socket, async () =>
        {
            for (var i = 0; i < 5; i++)
            {
                await socket.SendTextAsync(new string('a', 30 * 1024), endOfMessage: i == 4); // 150 KB
            }
        });

        Assert.Equal(WebSocketCloseStatus.MessageTooBig, status);
        Assert.Empty(fixture.Backend.CallsTo(FakeBackend.Default));
    }

    [Fact]
    public async Task BinaryFrame_ClosesWith1003()
    {
        await using var fixture = await EmulatorFixture.StartAsync();
        using var socket = await fixture.ConnectAsync();

        await socket.SendAsync(new byte[] { 1, 2, 3 }, WebSocketMessageType.Binary, true, CancellationToken.None);
        var (status, _) = await socket.ExpectCloseAsync();

        Assert.Equal(WebSocketCloseStatus.InvalidMessageType, status);
        await fixture.Backend.NextAsync(FakeBackend.Disconnect);
        Assert.Empty(fixture.Backend.CallsTo(FakeBackend.Default));
    }

    [Fact]
    public async Task IdleTimeout_OnTheTimeProvider_ClosesWith1001_AndOnlyClientMessagesResetIt()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2025, 1, 2, 3, 4, 5, TimeSpan.Zero));
        await using var fixture = await EmulatorFixture.StartAsync(o => o.TimeProvider = time);
        var (socket, id) = await fixture.ConnectWithIdAsync();
        using var _ = socket;

        time.Advance(TimeSpan.FromMinutes(9));
        await socket.SendTextAsync("{\"type\":\"ping\"}");
        await fixture.Backend.NextAsync(FakeBackend.Default);
        time.Advance(TimeSpan.FromMinutes(9));
        await fixture.Connections.PushAsync(id, "{\"type\":\"pong\"}"u8.ToArray()); // a push does not reset the timer
        Assert.Equal("{\"type\":\"pong\"}", (await socket.ReceiveAsync()).Message);
        Assert.Equal(WebSocketState.Open, socket.State);

        time.Advance(TimeSpan.FromMinutes(1));
        var (status, description) = await socket.ExpectCloseAsync();

        Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, status);
        Assert.Equal("Going away", description);
        Assert.Equal(id, (await fixture.Backend.NextAsync(FakeBackend.Disconnect)).ConnectionId);
        Assert.Equal(TimeSpan.FromMinutes(19), fixture.Emulator.Counters.ConnectionTime);
        Assert.Equal(19, fixture.Emulator.Counters.ConnectionMinutes, 6);
    }

    [Fact]
    public async Task MaxConnectionDuration_ClosesWith1001()
    {
        var time = new FakeTimeProvider();
        await using var fixture = await EmulatorFixture.StartAsync(o =>
        {
            o.TimeProvider = time;
            o.MaxConnectionDuration = TimeSpan.FromMinutes(15);
        });
        using var socket = await fixture.ConnectAsync();

        // The client's connect returns at the 101; the emulator arms the connection's timers just after. A frame that
        // reached the backend proves they exist before the clock moves (CI once advanced it first: no close came).
        await socket.SendTextAsync("{}");
        await fixture.Backend.NextAsync(FakeBackend.Default);
        for (var i = 0; i < 3; i++)
        {
            time.Advance(TimeSpan.FromMinutes(5) - TimeSpan.FromSeconds(1));
            await socket.SendTextAsync("{}");
            await fixture.Backend.NextAsync(FakeBackend.Default);
        }

        time.Advance(TimeSpan.FromSeconds(3));
        Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, (await socket.ExpectCloseAsync()).Status);
    }

    [Fact]
    public async Task Shutdown_ClosesWith1001_AndPostsDisconnect()
    {
        var fixture = await EmulatorFixture.StartAsync();
        var (socket, id) = await fixture.ConnectWithIdAsync();
        using var _ = socket;
        var close = Task.Run(socket.ExpectCloseAsync);

        await fixture.Emulator.DisposeAsync();

        Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, (await close).Status);
        Assert.Contains(fixture.Backend.CallsTo(FakeBackend.Disconnect), c => c.ConnectionId == id);
        await fixture.DisposeAsync();
    }

    /// <summary>Sends (the server may close mid-way, failing the send) and returns the close status.</summary>
    private static async Task<(WebSocketCloseStatus? Status, string? Description)> SendThenExpectCloseAsync(ClientWebSocket socket, Func<Task> send)
    {
        var close = Task.Run(socket.ExpectCloseAsync);
        try
        {
            await send();
        }
        catch (WebSocketException)
        {
            // the server closed first
        }

        return await close;
    }
}
