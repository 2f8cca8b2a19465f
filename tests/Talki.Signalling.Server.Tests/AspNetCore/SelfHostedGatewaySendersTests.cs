using System.Collections.Concurrent;
using System.Net.WebSockets;
using System.Text;
using System.Threading.Channels;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Talki.Signalling.Ports;
using Talki.Signalling.Server.AspNetCore;

namespace Talki.Signalling.Server.Tests.AspNetCore;

/// <summary>
/// Who sends what the engine queues while it handles a message: the receiving connection's thread, once the engine's call
/// has returned, never inside it (the engine may hold a room's lock there), and never waiting on a client that does not read.
/// </summary>
public sealed class SelfHostedGatewaySendersTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task ARelayedFrame_IsSentOnTheReceivingThread_AfterTheEngineReturned_BeforeTheNextReceive()
    {
        var (gateway, engine) = NewGateway();
        var a = new ScriptedSocket();
        var b = new ScriptedSocket();
        var idA = await ConnectAsync(gateway, engine, a);
        var idB = await ConnectAsync(gateway, engine, b);
        engine.Route[idA] = idB;
        SendObservation? observed = null;
        b.OnSend = _ =>
        {
            observed = new SendObservation(Environment.CurrentManagedThreadId, engine.Inside, Volatile.Read(ref a.Receives));
            return ValueTask.CompletedTask;
        };

        a.Deliver("offer");
        var frame = await b.Sent.Reader.ReadAsync().AsTask().WaitAsync(Wait);

        Assert.Equal("offer", frame);
        var handling = Assert.Single(engine.Handled);
        Assert.Equal(PushOutcome.Delivered, handling.Outcome);
        Assert.Equal(0, handling.TargetSendsDuringTheCall); // not sent inside the engine's call
        Assert.NotNull(observed);
        Assert.False(observed.Value.InsideTheEngine);
        Assert.Equal(handling.Thread, observed.Value.Thread); // no hand-off to another thread…
        Assert.Equal(handling.ReceivesOfTheSender, observed.Value.ReceivesOfTheSender); // …and before the sender's next receive
    }

    [Fact]
    public async Task ATargetThatNeverTakesItsFrames_HoldsUpNeitherTheSenderNorAnotherTarget()
    {
        var (gateway, engine) = NewGateway();
        var sender = new ScriptedSocket();
        var stuck = new ScriptedSocket { OnSend = _ => new ValueTask(Task.Delay(Timeout.Infinite)) };
        var other = new ScriptedSocket();
        var idSender = await ConnectAsync(gateway, engine, sender);
        var idStuck = await ConnectAsync(gateway, engine, stuck);
        var idOther = await ConnectAsync(gateway, engine, other);

        for (var i = 0; i < 20; i++)
        {
            engine.Route[idSender] = i % 2 == 0 ? idStuck : idOther;
            sender.Deliver($"m{i}");
            if (i % 2 == 1)
            {
                Assert.Equal($"m{i}", await other.Sent.Reader.ReadAsync().AsTask().WaitAsync(Wait));
            }
            else
            {
                await engine.WaitHandledAsync(i + 1);
            }
        }

        Assert.Equal(20, engine.Handled.Count);
        Assert.All(engine.Handled, h => Assert.Equal(PushOutcome.Delivered, h.Outcome));
        Assert.Equal(1, stuck.SendCalls); // its sender waits on the first frame; the other nine are queued behind it
    }

    [Fact]
    public async Task AReplyQueuedByTheLastMessage_GoesOutBeforeTheCloseHandshake()
    {
        var (gateway, engine) = NewGateway();
        var a = new ScriptedSocket();
        var idA = await ConnectAsync(gateway, engine, a);
        engine.Route[idA] = idA; // the engine answers the sender itself
        var connectionEnded = engine.Disconnected.Task;

        a.Deliver("ping");
        a.DeliverClose();
        await connectionEnded.WaitAsync(Wait);

        Assert.Equal("ping", await a.Sent.Reader.ReadAsync().AsTask().WaitAsync(Wait));
        Assert.Equal("close:NormalClosure", await a.Sent.Reader.ReadAsync().AsTask().WaitAsync(Wait));
    }

    [Fact]
    public async Task APushFromOutsideAHandling_IsSentByThePool_AndAFailedSendEndsOnlyThatConnection()
    {
        var (gateway, engine) = NewGateway();
        var failing = new ScriptedSocket { OnSend = _ => throw new WebSocketException(WebSocketError.ConnectionClosedPrematurely) };
        var healthy = new ScriptedSocket();
        var idFailing = await ConnectAsync(gateway, engine, failing);
        var idHealthy = await ConnectAsync(gateway, engine, healthy);

        // No handling on this thread: nothing collects the senders, and a throwing send cannot reach the caller.
        Assert.Equal(PushOutcome.Delivered, await gateway.PushAsync(idFailing, "{}"u8.ToArray()));
        Assert.Equal(idFailing, await engine.Disconnected.Task.WaitAsync(Wait));
        Assert.Equal(PushOutcome.Delivered, await gateway.PushAsync(idHealthy, "{\"still\":true}"u8.ToArray()));
        Assert.Equal("{\"still\":true}", await healthy.Sent.Reader.ReadAsync().AsTask().WaitAsync(Wait));
    }

    private static (SelfHostedGateway Gateway, RoutingEngine Engine) NewGateway()
    {
        var gateway = new SelfHostedGateway(
            Options.Create(new TalkiSignallingOptions()),
            TimeProvider.System,
            NullLogger<SelfHostedGateway>.Instance);
        return (gateway, new RoutingEngine(gateway));
    }

    private static async Task<string> ConnectAsync(SelfHostedGateway gateway, RoutingEngine engine, ScriptedSocket socket)
    {
        var context = new DefaultHttpContext();
        context.Features.Set<IHttpWebSocketFeature>(new UpgradeFeature(socket));
        context.Request.QueryString = new QueryString("?ticket=x");
        _ = gateway.HandleAsync(context, engine);
        var id = await engine.Connected.Reader.ReadAsync().AsTask().WaitAsync(Wait);
        engine.Sockets[id] = socket;
        return id;
    }

    private readonly record struct SendObservation(int Thread, bool InsideTheEngine, int ReceivesOfTheSender);

    private sealed record Handling(PushOutcome Outcome, int TargetSendsDuringTheCall, int Thread, int ReceivesOfTheSender);

    private sealed class UpgradeFeature(WebSocket socket) : IHttpWebSocketFeature
    {
        public bool IsWebSocketRequest => true;

        public Task<WebSocket> AcceptAsync(WebSocketAcceptContext context) => Task.FromResult(socket);
    }

    /// <summary>Relays every message of a connection, unchanged, to the connection <see cref="Route"/> names for it.</summary>
    private sealed class RoutingEngine(SelfHostedGateway gateway) : GatewayTestEngine
    {
        private readonly ConcurrentQueue<Handling> _handled = new();
        private readonly SemaphoreSlim _handledSignal = new(0);

        public Channel<string> Connected { get; } = Channel.CreateUnbounded<string>();

        public TaskCompletionSource<string> Disconnected { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public ConcurrentDictionary<string, string> Route { get; } = new();

        public ConcurrentDictionary<string, ScriptedSocket> Sockets { get; } = new();

        public IReadOnlyList<Handling> Handled => [.. _handled];

        public bool Inside { get; private set; }

        public async Task WaitHandledAsync(int count)
        {
            while (_handled.Count < count)
            {
                await _handledSignal.WaitAsync(Wait);
            }
        }

        public override ValueTask<SignallingResult<ConnectionGrant>> ConnectAsync(string connectionId, string? ticket, long? resumeEpoch = null, int? waitingVersion = null, CancellationToken cancellationToken = default)
        {
            Connected.Writer.TryWrite(connectionId);
            return new(new ConnectionGrant(RoomId.New(), MemberId.New(), 1, DateTimeOffset.UtcNow.AddMinutes(5)));
        }

        public override ValueTask HandleAuthorizedMessageAsync(string connectionId, ConnectionGrant grant, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
        {
            Inside = true;
            try
            {
                var target = Route[connectionId];
                var push = gateway.PushAsync(target, payload.ToArray(), cancellationToken);
                var outcome = push.IsCompletedSuccessfully ? push.Result : PushOutcome.Gone; // a local push completes at once
                _handled.Enqueue(new Handling(outcome, Sockets[target].SendCalls, Environment.CurrentManagedThreadId, Volatile.Read(ref Sockets[connectionId].Receives)));
                _handledSignal.Release();
                return ValueTask.CompletedTask;
            }
            finally
            {
                Inside = false;
            }
        }

        public override ValueTask DisconnectAsync(string connectionId, CancellationToken cancellationToken = default)
        {
            Disconnected.TrySetResult(connectionId);
            return ValueTask.CompletedTask;
        }
    }

    /// <summary>
    /// A client whose messages the test delivers (text frames, then a close) and whose received frames the test reads, as a
    /// WebSocket shows them to its server: a zero-byte read waits for the next frame without taking it; sends are recorded
    /// (and <see cref="OnSend"/> decides how they complete); the close handshake is recorded as <c>close:STATUS</c>.
    /// </summary>
    private sealed class ScriptedSocket : WebSocket
    {
        private readonly Channel<byte[]?> _incoming = Channel.CreateUnbounded<byte[]?>();
        private byte[]? _current;
        private WebSocketState _state = WebSocketState.Open;
        private int _sendCalls;

        public int Receives;

        public Func<ReadOnlyMemory<byte>, ValueTask>? OnSend { get; set; }

        public Channel<string> Sent { get; } = Channel.CreateUnbounded<string>();

        public int SendCalls => Volatile.Read(ref _sendCalls);

        public override WebSocketCloseStatus? CloseStatus => null;

        public override string? CloseStatusDescription => null;

        public override WebSocketState State => _state;

        public override string? SubProtocol => null;

        public void Deliver(string text) => _incoming.Writer.TryWrite(Encoding.UTF8.GetBytes(text));

        public void DeliverClose() => _incoming.Writer.TryWrite(null);

        public override async ValueTask<ValueWebSocketReceiveResult> ReceiveAsync(Memory<byte> buffer, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref Receives);
            if (_current is null)
            {
                var next = await _incoming.Reader.ReadAsync(cancellationToken);
                if (next is null)
                {
                    _state = WebSocketState.CloseReceived;
                    return new ValueWebSocketReceiveResult(0, WebSocketMessageType.Close, true);
                }

                _current = next;
            }

            if (buffer.IsEmpty)
            {
                return new ValueWebSocketReceiveResult(0, WebSocketMessageType.Text, false);
            }

            var length = _current.Length;
            _current.CopyTo(buffer);
            _current = null;
            return new ValueWebSocketReceiveResult(length, WebSocketMessageType.Text, true);
        }

        public override ValueTask SendAsync(ReadOnlyMemory<byte> buffer, WebSocketMessageType messageType, bool endOfMessage, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _sendCalls);
            var sending = OnSend?.Invoke(buffer) ?? ValueTask.CompletedTask;
            Sent.Writer.TryWrite(Encoding.UTF8.GetString(buffer.Span));
            return sending;
        }

        public override Task CloseOutputAsync(WebSocketCloseStatus closeStatus, string? statusDescription, CancellationToken cancellationToken)
        {
            Sent.Writer.TryWrite($"close:{closeStatus}");
            _state = _state == WebSocketState.CloseReceived ? WebSocketState.Closed : WebSocketState.CloseSent;
            return Task.CompletedTask;
        }

        public override Task CloseAsync(WebSocketCloseStatus closeStatus, string? statusDescription, CancellationToken cancellationToken) => CloseOutputAsync(closeStatus, statusDescription, cancellationToken);

        public override void Abort() => _state = WebSocketState.Aborted;

        public override void Dispose() => _incoming.Writer.TryComplete();

        public override Task<WebSocketReceiveResult> ReceiveAsync(ArraySegment<byte> buffer, CancellationToken cancellationToken) => throw new NotSupportedException("the gateway reads through Memory<byte>");

        public override Task SendAsync(ArraySegment<byte> buffer, WebSocketMessageType messageType, bool endOfMessage, CancellationToken cancellationToken) => throw new NotSupportedException("the gateway sends through ReadOnlyMemory<byte>");
    }
}
