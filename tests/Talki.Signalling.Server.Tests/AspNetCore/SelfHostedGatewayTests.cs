using System.Diagnostics;
using System.Globalization;
using System.Net.WebSockets;
using System.Text;
using System.Threading.Channels;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Talki.Signalling.Ports;
using Talki.Signalling.Server.AspNetCore;

namespace Talki.Signalling.Server.Tests.AspNetCore;

public sealed class SelfHostedGatewayTests
{
    private readonly FakeTimeProvider _time = new();

    /// <summary>A gateway whose queue holds <paramref name="capacity"/> + 1 messages: the one peer of a room of 2, with a burst of 1, adds one.</summary>
    private SelfHostedGateway NewGateway(int capacity) => new(
        Options.Create(new TalkiSignallingOptions { Hosting = { OutboundQueueCapacity = capacity }, Limits = { MaxMembersPerRoom = 2, MessageBurst = 1 } }),
        _time,
        NullLogger<SelfHostedGateway>.Instance);

    [Fact]
    public async Task Push_ToAClientThatStopsReading_FillsTheBoundedQueue_ThenGoneAndClosed()
    {
        var gateway = NewGateway(capacity: 4);
        var socket = new StuckSocket();
        var engine = new GrantingEngine();
        var run = gateway.HandleAsync(UpgradeContext(socket), engine);
        var connection = await engine.Connected.Task.WaitAsync(TimeSpan.FromSeconds(10));

        // The send loop takes the first message and blocks in SendAsync; five more fit in the queue.
        Assert.Equal(5, gateway.QueueCapacity);
        var outcomes = new List<PushOutcome>();
        for (var i = 0; i < 8; i++)
        {
            outcomes.Add(await gateway.PushAsync(connection, Encoding.UTF8.GetBytes($$"""{"type":"pong","id":"{{i}}"}""")));
            await socket.FirstSend.Task.WaitAsync(TimeSpan.FromSeconds(10));
        }

        Assert.Equal(6, outcomes.Count(o => o == PushOutcome.Delivered));
        Assert.Equal(PushOutcome.Gone, outcomes[^1]);

        // The close frame cannot get past the stuck send; the gateway aborts after its grace period.
        _time.Advance(SelfHostedGateway.CloseHandshakeTimeout * 2);
        await run.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(socket.Aborted);
        Assert.Equal(PushOutcome.Gone, await gateway.PushAsync(connection, "{}"u8.ToArray()));
        Assert.Equal(connection, Assert.Single(engine.Disconnected));
    }

    [Fact]
    public async Task Push_BetweenTheBindAndTheSocketsRegistration_IsHeldAndSentFirst_InOrder_NotReportedGone()
    {
        // The engine has bound the connection (the admin of a version 2 room heard of the knock at the ticket, and admits at
        // once); the 101 is on its way and the socket not served yet. Before the fix these pushes were Gone, and the engine
        // dropped the member that was just connecting.
        var (gateway, socket, engine, upgrade, run, connection) = await BoundNotServedAsync();

        Assert.Equal(PushOutcome.Delivered, await gateway.PushAsync(connection, """{"type":"admitted"}"""u8.ToArray()));
        Assert.Equal(PushOutcome.Delivered, await gateway.PushAsync(connection, """{"type":"signal","n":1}"""u8.ToArray()));
        Assert.Equal(PushOutcome.PayloadTooLarge, await gateway.PushAsync(connection, new byte[(128 * 1024) + 1]));
        Assert.Equal(0, gateway.ConnectionCount);
        Assert.Equal(1, gateway.PendingConnectionCount);

        upgrade.Release();
        Assert.Equal("""{"type":"admitted"}""", await socket.NextSentAsync());
        Assert.Equal("""{"type":"signal","n":1}""", await socket.NextSentAsync());
        Assert.Equal(PushOutcome.Delivered, await gateway.PushAsync(connection, """{"type":"signal","n":2}"""u8.ToArray()));
        Assert.Equal("""{"type":"signal","n":2}""", await socket.NextSentAsync());
        Assert.Equal(0, gateway.PendingConnectionCount);
        Assert.Equal(1, gateway.ConnectionCount);
        Assert.Empty(engine.Disconnected);

        socket.Abort();
        await run.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task Pushes_FromFourThreadsAtOnce_AllArriveOnce_InEachSendersOrder_AndACloseAfterThemComesLast()
    {
        // The sender keeps the next frame outside its queue when it is the only one (no queue per frame on a busy
        // connection): whatever the interleaving of writers and sender, a frame may not be lost, doubled or overtaken.
        var gateway = NewGateway(capacity: 4096);
        var socket = new RecordingSocket { SendYields = true }; // the queue fills behind each send, and empties while pushes come
        var engine = new GrantingEngine();
        var run = gateway.HandleAsync(UpgradeContext(socket), engine);
        var connection = await engine.Connected.Task.WaitAsync(TimeSpan.FromSeconds(10));
        const int Writers = 4, Each = 500;
        using var start = new Barrier(Writers);
        var pushes = Enumerable.Range(0, Writers).Select(w => Task.Run(async () =>
        {
            start.SignalAndWait();
            for (var i = 0; i < Each; i++)
            {
                Assert.Equal(PushOutcome.Delivered, await gateway.PushAsync(connection, Encoding.UTF8.GetBytes($$"""{"type":"pong","id":"{{w}}-{{i}}"}""")));
            }
        })).ToArray();
        await Task.WhenAll(pushes).WaitAsync(TimeSpan.FromSeconds(30));
        await gateway.CloseAsync(connection);

        var next = new int[Writers];
        for (var n = 0; n < Writers * Each; n++)
        {
            var id = (await socket.NextSentAsync())[21..^2].Split('-');
            var (writer, index) = (int.Parse(id[0], CultureInfo.InvariantCulture), int.Parse(id[1], CultureInfo.InvariantCulture));
            Assert.Equal(next[writer]++, index);
        }

        Assert.All(next, count => Assert.Equal(Each, count));
        Assert.Equal(WebSocketCloseStatus.NormalClosure, await socket.ClosedWith.Task.WaitAsync(TimeSpan.FromSeconds(10)));
        await run.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task Close_BetweenTheBindAndTheSocketsRegistration_IsAppliedOnceServed_AfterWhatWasPushedBefore()
    {
        // A deny (or a seal) in that instant closed nothing: the socket was served afterwards and stayed open.
        var (gateway, socket, engine, upgrade, run, connection) = await BoundNotServedAsync();

        Assert.Equal(PushOutcome.Delivered, await gateway.PushAsync(connection, """{"type":"denied"}"""u8.ToArray()));
        await gateway.CloseAsync(connection);
        await gateway.ClosePolicyViolationAsync(connection, "a later close"); // the first close asked for wins
        upgrade.Release();

        Assert.Equal("""{"type":"denied"}""", await socket.NextSentAsync());
        Assert.Equal(WebSocketCloseStatus.NormalClosure, await socket.ClosedWith.Task.WaitAsync(TimeSpan.FromSeconds(10)));
        await run.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(connection, Assert.Single(engine.Disconnected));
        Assert.Equal(0, gateway.ConnectionCount);
    }

    [Fact]
    public async Task Push_BeforeTheSocketIsServed_PastTheQueueBound_IsGone_AndTheConnectionClosesAsASlowConsumerOnceServed()
    {
        var (gateway, socket, _, upgrade, run, connection) = await BoundNotServedAsync(); // five messages wait for a connection (QueueCapacity)

        var outcomes = new List<PushOutcome>();
        for (var i = 0; i < 7; i++)
        {
            outcomes.Add(await gateway.PushAsync(connection, Encoding.UTF8.GetBytes($$"""{"n":{{i}}}""")));
        }

        Assert.Equal(gateway.QueueCapacity, outcomes.Count(o => o == PushOutcome.Delivered));
        Assert.All(outcomes[gateway.QueueCapacity..], o => Assert.Equal(PushOutcome.Gone, o));
        upgrade.Release();
        for (var i = 0; i < gateway.QueueCapacity; i++)
        {
            Assert.Equal($$"""{"n":{{i}}}""", await socket.NextSentAsync());
        }

        Assert.Equal(WebSocketCloseStatus.PolicyViolation, await socket.ClosedWith.Task.WaitAsync(TimeSpan.FromSeconds(10)));
        await run.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task ASocketThatCannotBeAccepted_AfterPushesWereHeld_LeavesNothingPending_AndLaterPushesAreGone()
    {
        var (gateway, _, engine, upgrade, run, connection) = await BoundNotServedAsync();
        Assert.Equal(PushOutcome.Delivered, await gateway.PushAsync(connection, "{}"u8.ToArray()));

        upgrade.Fail(new IOException("the client went away mid-handshake"));
        await Assert.ThrowsAsync<IOException>(() => run.WaitAsync(TimeSpan.FromSeconds(10)));

        Assert.Equal(0, gateway.PendingConnectionCount);
        Assert.Equal(0, gateway.ConnectionCount);
        Assert.Equal(connection, Assert.Single(engine.Disconnected));
        Assert.Equal(PushOutcome.Gone, await gateway.PushAsync(connection, "{}"u8.ToArray()));
    }

    [Fact]
    public async Task ARefusedTicket_LeavesNothingPending()
    {
        var gateway = NewGateway(capacity: 4);
        var context = UpgradeContext(new StuckSocket());
        context.Response.Body = new MemoryStream();

        await gateway.HandleAsync(context, new RefusingEngine());

        Assert.Equal(StatusCodes.Status401Unauthorized, context.Response.StatusCode);
        Assert.Equal(0, gateway.PendingConnectionCount);
    }

    [Theory]
    [InlineData("?ticket=x&v=4&wait=1", 4)]
    [InlineData("?ticket=x&wait=1", 1)]
    [InlineData("?ticket=x&v=4&wait=0", null)]
    [InlineData("?ticket=x&v=4", null)]
    public async Task Connect_TheWaitParameter_ReachesTheEngineWithTheUrlsVersion(string query, int? expected)
    {
        var gateway = NewGateway(capacity: 4);
        var engine = new RecordingRefusingEngine();
        var context = UpgradeContext(new StuckSocket());
        context.Request.QueryString = new QueryString(query);
        context.Response.Body = new MemoryStream();

        await gateway.HandleAsync(context, engine);

        Assert.Equal(expected, Assert.Single(engine.WaitingVersions));
    }

    [Theory]
    [InlineData("?ticket=x&v=4&wait=2")]
    [InlineData("?ticket=x&v=4&wait=yes")]
    [InlineData("?ticket=x&v=4&wait=1&wait=1")]
    public async Task Connect_AMalformedWaitParameter_Is400Malformed_AndTheEngineIsNotAsked(string query)
    {
        var gateway = NewGateway(capacity: 4);
        var engine = new RecordingRefusingEngine();
        var context = UpgradeContext(new StuckSocket());
        context.Request.QueryString = new QueryString(query);
        context.Response.Body = new MemoryStream();

        await gateway.HandleAsync(context, engine);

        Assert.Equal(StatusCodes.Status400BadRequest, context.Response.StatusCode);
        Assert.Contains("malformed_message", Encoding.UTF8.GetString(((MemoryStream)context.Response.Body).ToArray()), StringComparison.Ordinal);
        Assert.Empty(engine.WaitingVersions);
        Assert.Equal(0, gateway.PendingConnectionCount);
    }

    [Fact]
    public void QueueCapacity_HoldsTheBurstOfEveryPeerOfAFullRoom_PlusTheConfiguredCapacity()
    {
        // 256 + (8 − 1) × 200: seven peers at their full burst cannot overflow a member that reads.
        Assert.Equal(1656, SelfHostedGateway.QueueCapacityOf(new TalkiSignallingOptions()));
        var options = new TalkiSignallingOptions { Hosting = { OutboundQueueCapacity = 10 }, Limits = { MaxMembersPerRoom = 1000, MessageBurst = 100_000 } };
        Assert.Equal(10 + (999 * 100_000), SelfHostedGateway.QueueCapacityOf(options));
    }

    [Fact]
    public void QueueBytes_HoldTheByteBurstOfEveryPeerOfAFullRoom_WithAnAllowancePerMessage_PlusTheOwnReplies()
    {
        // 7 × (256 KiB + 200 × 1 KiB) + 256 × 4 KiB: about 4.1 MiB, where 1656 messages of 32 KiB were 53 MiB.
        Assert.Equal((7 * ((256 * 1024) + (200 * 1024))) + (256 * 4096), SelfHostedGateway.QueueBytesOf(new TalkiSignallingOptions()));
        var options = new TalkiSignallingOptions
        {
            Hosting = { OutboundQueueCapacity = 65_536 },
            Limits = { MaxMembersPerRoom = 1000, MessageBurst = 100_000, MessageBytesBurst = 64 * 1024 * 1024 },
        };
        Assert.Equal((999L * ((64L * 1024 * 1024) + (100_000L * 1024))) + (65_536L * 4096), SelfHostedGateway.QueueBytesOf(options)); // no overflow
    }

    [Fact]
    public async Task Push_ToAClientThatStopsReading_IsClosedOnceTheQueuedBytesPassTheirBound_LongBeforeTheMessageCount()
    {
        // Room for 101 messages, but 1 × (32 KiB + 1 × 1 KiB) + 100 × 4 KiB = 443,392 bytes: 14 frames of 30,000 bytes wait
        // behind the one being sent, the 15th is one too many.
        var gateway = new SelfHostedGateway(
            Options.Create(new TalkiSignallingOptions
            {
                Hosting = { OutboundQueueCapacity = 100 },
                Limits = { MaxMembersPerRoom = 2, MessageBurst = 1, MessageBytesBurst = 32 * 1024 },
            }),
            _time,
            NullLogger<SelfHostedGateway>.Instance);
        Assert.Equal(443_392, gateway.QueueBytes);
        var socket = new StuckSocket();
        var engine = new GrantingEngine();
        var run = gateway.HandleAsync(UpgradeContext(socket), engine);
        var connection = await engine.Connected.Task.WaitAsync(TimeSpan.FromSeconds(10));

        var frame = new byte[30_000];
        var outcomes = new List<PushOutcome>();
        for (var i = 0; i < 17; i++)
        {
            outcomes.Add(await gateway.PushAsync(connection, frame));
            await socket.FirstSend.Task.WaitAsync(TimeSpan.FromSeconds(10));
        }

        Assert.Equal(15, outcomes.Count(o => o == PushOutcome.Delivered));
        Assert.All(outcomes[15..], o => Assert.Equal(PushOutcome.Gone, o));

        _time.Advance(SelfHostedGateway.CloseHandshakeTimeout * 2);
        await run.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(socket.Aborted);
        Assert.Equal(connection, Assert.Single(engine.Disconnected));
    }

    [Fact]
    public async Task Push_OverTheOutboundLimit_PayloadTooLarge()
    {
        var gateway = NewGateway(capacity: 4);
        var socket = new StuckSocket();
        var engine = new GrantingEngine();
        _ = gateway.HandleAsync(UpgradeContext(socket), engine);
        var connection = await engine.Connected.Task.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal(PushOutcome.PayloadTooLarge, await gateway.PushAsync(connection, new byte[(128 * 1024) + 1]));
        Assert.Equal(PushOutcome.Gone, await gateway.PushAsync("unknown", "{}"u8.ToArray()));
    }

    [Fact]
    public async Task Connect_EngineThrows_500InternalWithReference_AndNoSocket()
    {
        var gateway = NewGateway(capacity: 4);
        var socket = new StuckSocket();
        var context = UpgradeContext(socket);
        context.Response.Body = new MemoryStream();

        await gateway.HandleAsync(context, new ThrowingEngine());

        Assert.Equal(StatusCodes.Status500InternalServerError, context.Response.StatusCode);
        context.Response.Body.Position = 0;
        var error = System.Text.Json.JsonSerializer.Deserialize(context.Response.Body, Talki.Signalling.Protocol.TalkiJsonContext.Default.ErrorResponse)!;
        Assert.Equal(SignallingErrorCode.Internal, error.Code);
        Assert.False(string.IsNullOrEmpty(error.Reference));
        Assert.DoesNotContain("store down", error.Detail, StringComparison.Ordinal);
        Assert.Equal(0, gateway.ConnectionCount);
    }

    [Fact]
    public async Task ClientGoneWhileTheEngineBinds_TheBindingIsUndone_AndNoSocketIsAccepted()
    {
        var gateway = NewGateway(capacity: 4);
        var engine = new BindsThenWaitsEngine();
        using var aborted = new CancellationTokenSource();
        var socket = new StuckSocket();
        var context = UpgradeContext(socket);
        context.RequestAborted = aborted.Token;

        var run = gateway.HandleAsync(context, engine);
        var bound = await engine.Bound.Task.WaitAsync(TimeSpan.FromSeconds(10));
        await aborted.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(bound, Assert.Single(engine.Disconnected));
        Assert.Equal(0, gateway.ConnectionCount);
        Assert.False(((UpgradeFeature)context.Features.Get<IHttpWebSocketFeature>()!).Accepted);
    }

    /// <summary>An upgrade the engine has authorized (the connection bound) and whose socket is not served yet: its accept is held.</summary>
    private async Task<(SelfHostedGateway Gateway, RecordingSocket Socket, GrantingEngine Engine, HeldUpgradeFeature Upgrade, Task Run, string Connection)> BoundNotServedAsync()
    {
        var gateway = NewGateway(capacity: 4);
        var socket = new RecordingSocket();
        var engine = new GrantingEngine();
        var upgrade = new HeldUpgradeFeature(socket);
        var run = gateway.HandleAsync(UpgradeContext(upgrade), engine);
        var connection = await engine.Connected.Task.WaitAsync(TimeSpan.FromSeconds(10));
        await upgrade.AcceptStarted.Task.WaitAsync(TimeSpan.FromSeconds(10));
        return (gateway, socket, engine, upgrade, run, connection);
    }

    private static DefaultHttpContext UpgradeContext(WebSocket socket) => UpgradeContext(new UpgradeFeature(socket));

    private static DefaultHttpContext UpgradeContext(IHttpWebSocketFeature feature)
    {
        var context = new DefaultHttpContext();
        context.Features.Set(feature);
        context.Request.QueryString = new QueryString("?ticket=x");
        return context;
    }

    /// <summary>An upgrade whose accept waits for the test: the connection is bound and the socket not yet served.</summary>
    private sealed class HeldUpgradeFeature(WebSocket socket) : IHttpWebSocketFeature
    {
        private readonly TaskCompletionSource<WebSocket> _accept = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource AcceptStarted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public bool IsWebSocketRequest => true;

        public Task<WebSocket> AcceptAsync(WebSocketAcceptContext context)
        {
            AcceptStarted.TrySetResult();
            return _accept.Task;
        }

        public void Release() => _accept.TrySetResult(socket);

        public void Fail(Exception exception) => _accept.TrySetException(exception);
    }

    /// <summary>A client that reads everything: records each text frame sent, and answers the server's close with its own.</summary>
    private sealed class RecordingSocket : WebSocket
    {
        private readonly Channel<string> _sent = Channel.CreateUnbounded<string>();
        private readonly CancellationTokenSource _aborted = new();
        private WebSocketState _state = WebSocketState.Open;

        public TaskCompletionSource<WebSocketCloseStatus> ClosedWith { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public override WebSocketCloseStatus? CloseStatus => ClosedWith.Task.IsCompletedSuccessfully ? ClosedWith.Task.Result : null;

        public override string? CloseStatusDescription => null;

        public override WebSocketState State => _state;

        public override string? SubProtocol => null;

        public async Task<string> NextSentAsync() => await _sent.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10));

        public override void Abort()
        {
            _state = WebSocketState.Aborted;
            _aborted.Cancel();
        }

        public override Task CloseAsync(WebSocketCloseStatus closeStatus, string? statusDescription, CancellationToken cancellationToken) => CloseOutputAsync(closeStatus, statusDescription, cancellationToken);

        public override Task CloseOutputAsync(WebSocketCloseStatus closeStatus, string? statusDescription, CancellationToken cancellationToken)
        {
            _state = _state == WebSocketState.CloseReceived ? WebSocketState.Closed : WebSocketState.CloseSent;
            ClosedWith.TrySetResult(closeStatus);
            return Task.CompletedTask;
        }

        public override void Dispose() => _aborted.Cancel();

        public override async Task<WebSocketReceiveResult> ReceiveAsync(ArraySegment<byte> buffer, CancellationToken cancellationToken)
        {
            // Nothing to say until the server closes; then the client's answering close frame.
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _aborted.Token);
            try
            {
                await ClosedWith.Task.WaitAsync(linked.Token);
            }
            catch (OperationCanceledException) when (_aborted.IsCancellationRequested)
            {
                throw new WebSocketException(WebSocketError.ConnectionClosedPrematurely);
            }

            _state = _state == WebSocketState.CloseSent ? WebSocketState.Closed : WebSocketState.CloseReceived;
            return new WebSocketReceiveResult(0, WebSocketMessageType.Close, true, WebSocketCloseStatus.NormalClosure, null);
        }

        /// <summary>Gets a value indicating whether a send completes later (on the pool), as a socket whose buffer is full does.</summary>
        public bool SendYields { get; init; }

        public override async Task SendAsync(ArraySegment<byte> buffer, WebSocketMessageType messageType, bool endOfMessage, CancellationToken cancellationToken)
        {
            _sent.Writer.TryWrite(Encoding.UTF8.GetString(buffer)); // in the order the gateway sends
            if (SendYields)
            {
                await Task.Yield();
            }
        }
    }

    /// <summary>Refuses every connect, recording the waiting version each one asked with.</summary>
    private sealed class RecordingRefusingEngine : GatewayTestEngine
    {
        public List<int?> WaitingVersions { get; } = [];

        public override ValueTask<SignallingResult<ConnectionGrant>> ConnectAsync(string connectionId, string? ticket, long? resumeEpoch = null, int? waitingVersion = null, CancellationToken cancellationToken = default)
        {
            WaitingVersions.Add(waitingVersion);
            return new(SignallingResult<ConnectionGrant>.Failure(SignallingErrorCode.TicketInvalid, "That ticket was used or never issued."));
        }
    }

    private sealed class RefusingEngine : GatewayTestEngine
    {
        public override ValueTask<SignallingResult<ConnectionGrant>> ConnectAsync(string connectionId, string? ticket, long? resumeEpoch = null, int? waitingVersion = null, CancellationToken cancellationToken = default) =>
            new(SignallingResult<ConnectionGrant>.Failure(SignallingErrorCode.TicketInvalid, "That ticket was used or never issued."));
    }

    private sealed class UpgradeFeature(WebSocket socket) : IHttpWebSocketFeature
    {
        public bool IsWebSocketRequest => true;

        public bool Accepted { get; private set; }

        public Task<WebSocket> AcceptAsync(WebSocketAcceptContext context)
        {
            Accepted = true;
            return Task.FromResult(socket);
        }
    }

    private sealed class GrantingEngine : GatewayTestEngine
    {
        public TaskCompletionSource<string> Connected { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public List<string> Disconnected { get; } = [];

        public override ValueTask<SignallingResult<ConnectionGrant>> ConnectAsync(string connectionId, string? ticket, long? resumeEpoch = null, int? waitingVersion = null, CancellationToken cancellationToken = default)
        {
            Connected.TrySetResult(connectionId);
            return new(new ConnectionGrant(RoomId.New(), MemberId.New(), 1, DateTimeOffset.UtcNow.AddMinutes(5)));
        }

        public override ValueTask DisconnectAsync(string connectionId, CancellationToken cancellationToken = default)
        {
            lock (Disconnected)
            {
                Disconnected.Add(connectionId);
            }

            return ValueTask.CompletedTask;
        }
    }

    /// <summary>Binds the connection, then waits for the request to be aborted (a store call the client does not wait for).</summary>
    private sealed class BindsThenWaitsEngine : GatewayTestEngine
    {
        public TaskCompletionSource<string> Bound { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public List<string> Disconnected { get; } = [];

        public override async ValueTask<SignallingResult<ConnectionGrant>> ConnectAsync(string connectionId, string? ticket, long? resumeEpoch = null, int? waitingVersion = null, CancellationToken cancellationToken = default)
        {
            Bound.TrySetResult(connectionId);
            await Task.Delay(Timeout.Infinite, cancellationToken);
            throw new InvalidOperationException("unreachable");
        }

        public override ValueTask DisconnectAsync(string connectionId, CancellationToken cancellationToken = default)
        {
            lock (Disconnected)
            {
                Disconnected.Add(connectionId);
            }

            return ValueTask.CompletedTask;
        }
    }

    private sealed class ThrowingEngine : GatewayTestEngine
    {
        public override ValueTask<SignallingResult<ConnectionGrant>> ConnectAsync(string connectionId, string? ticket, long? resumeEpoch = null, int? waitingVersion = null, CancellationToken cancellationToken = default) => throw new InvalidOperationException("store down");
    }

    /// <summary>A client that never reads: sends never complete; receives wait until the socket is aborted.</summary>
    private sealed class StuckSocket : WebSocket
    {
        private readonly CancellationTokenSource _aborted = new();

        public TaskCompletionSource FirstSend { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public bool Aborted => _aborted.IsCancellationRequested;

        public override WebSocketCloseStatus? CloseStatus => null;

        public override string? CloseStatusDescription => null;

        public override WebSocketState State => Aborted ? WebSocketState.Aborted : WebSocketState.Open;

        public override string? SubProtocol => null;

        public override void Abort() => _aborted.Cancel();

        public override Task CloseAsync(WebSocketCloseStatus closeStatus, string? statusDescription, CancellationToken cancellationToken) => Task.CompletedTask;

        public override async Task CloseOutputAsync(WebSocketCloseStatus closeStatus, string? statusDescription, CancellationToken cancellationToken)
            => await Task.Delay(Timeout.Infinite, cancellationToken);

        public override void Dispose() => _aborted.Cancel();

        public override async Task<WebSocketReceiveResult> ReceiveAsync(ArraySegment<byte> buffer, CancellationToken cancellationToken)
        {
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _aborted.Token);
            await Task.Delay(Timeout.Infinite, linked.Token);
            throw new UnreachableException();
        }

        public override async Task SendAsync(ArraySegment<byte> buffer, WebSocketMessageType messageType, bool endOfMessage, CancellationToken cancellationToken)
        {
            FirstSend.TrySetResult();
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _aborted.Token);
            await Task.Delay(Timeout.Infinite, linked.Token);
        }
    }
}
