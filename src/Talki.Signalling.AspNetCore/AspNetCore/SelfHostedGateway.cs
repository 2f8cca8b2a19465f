using System.Buffers;
using System.Buffers.Text;
using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Net.WebSockets;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text.Json;
using System.Threading.Channels;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Talki.Signalling.Ports;
using Talki.Signalling.Protocol;
using Talki.Signalling.Server.Engine;

namespace Talki.Signalling.Server.AspNetCore;

/// <summary>
/// The embedded WebSocket gateway: authorizes the upgrade with the ticket from the query string, gives
/// each connection a bounded outbound queue, and applies API Gateway's limits (message size, idle timeout).
/// It is also the <see cref="IConnectionPush"/> of the engine in self-hosted mode.
/// </summary>
/// <remarks>
/// <para>
/// The outbound queue is sized from the limits so that what peers send can never close a client that reads. Every
/// inbound message of every connection goes through the engine's token bucket (<c>Limits.MessageBurst</c> at once,
/// <c>Limits.MessagesPerSecond</c> after), and each message a peer sends causes at most one message to a given member
/// (a relay, a <c>connect_to_peer</c>, a <c>peer_left</c>…). So the most the other members of a room can put in one
/// member's queue at once is <c>(MaxMembersPerRoom − 1) × MessageBurst</c>, and after that at most
/// <c>(MaxMembersPerRoom − 1) × MessagesPerSecond</c> per second (350 with the defaults), which any client that reads
/// drains. The queue holds that worst burst plus <c>Hosting.OutboundQueueCapacity</c> for the member's own replies and
/// the server's notices, and only a client that does not read (or reads slower than its peers' sustained rate) fills it.
/// </para>
/// <para>
/// The alternatives were weighed: back-pressure on the senders would let one slow reader stall its peers' receive
/// loops (and so their own traffic with everyone else), and dropping signals toward a reader with an error to the
/// sender would lose ICE candidates of healthy links; a queue that provably holds the peers' allowed burst does
/// neither. The price is memory, only ever held for a client that is not reading: up to 1656 queued messages per
/// connection with the defaults, and at most <see cref="QueueBytesOf"/> bytes of them (about 4.1 MiB with the defaults).
/// </para>
/// <para>
/// The same reasoning holds in bytes: every inbound message also pays its size into a byte bucket
/// (<c>Limits.MessageBytesBurst</c> at once, <c>Limits.MessageBytesPerSecond</c> after), so the peers' byte burst bounds
/// the queue too. Without it, a member could send another that stopped reading 1656 messages of 32 KiB (53 MiB) within
/// its message rate, and a room of such members hold that much for each of them.
/// </para>
/// </remarks>
internal sealed class SelfHostedGateway : IConnectionPush, IPolicyClosingPush, IDisposable
{
    /// <summary>How long the gateway waits for the client's close frame after sending its own.</summary>
    internal static readonly TimeSpan CloseHandshakeTimeout = TimeSpan.FromSeconds(5);

    /// <summary>
    /// The most of a data frame the gateway waits for on the pipe before it rents a receive buffer
    /// (<see cref="DuplexPipeStream.Peek"/>): the buffer's size (the limit, a byte more, and a header's 14 bytes), at most
    /// 64 KiB. The cap keeps it well under the transport's read buffer limit (Kestrel's <c>MaxReadBufferSize</c> and
    /// <c>MaxRequestBufferSize</c>, 1 MiB by default), at which the pipe would stop reading and the wait never end. A frame
    /// longer than the wait is received once that much of it is there.
    /// </summary>
    internal static long WholeFrameWait(int limit) => Math.Min(limit + 1L + 14, 64 * 1024);

    /// <summary>How early a timer may fire, measured on <see cref="TimeProvider.GetTimestamp"/>, and still count as on time.</summary>
    /// <remarks>The system timers run on a coarser clock than the timestamps (milliseconds, and a coarse monotonic clock on Linux).</remarks>
    private static readonly TimeSpan TimerSlack = TimeSpan.FromMilliseconds(20);

    private readonly ConcurrentDictionary<string, GatewayConnection> _connections = new(StringComparer.Ordinal);

    /// <summary>
    /// The connections the engine has bound and whose sockets are not served yet: from the ticket's redemption to
    /// <see cref="GatewayConnection.RunAsync"/>'s registration the 101 goes out (and the client may act on it), the socket is
    /// made, and the engine may already push to the member (an admin who admits at the knock, a peer's signal). What is
    /// pushed then is held and sent first; a close asked for then is applied on registration. Without this the push found
    /// no socket, said the connection was gone, and the engine dropped a member that was just connecting.
    /// </summary>
    private readonly ConcurrentDictionary<string, PendingConnection> _pendingConnections = new(StringComparer.Ordinal);
    private readonly TalkiHostingOptions _options;
    private readonly int _queueCapacity;
    private readonly long _queueBytes;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly IGatewayBackplane? _backplane;

    // The idle timeout of every connection, on one timer: each connection only records when it last sent or received a
    // message (a timer per socket, re-armed on every message, cost about 120 bytes per idle member and a timer-queue lock
    // twice per relayed message). The timer is armed for the earliest deadline, no sooner than _sweepSpacing after the
    // previous sweep, and not at all while no connection is open.
    private readonly ITimer _idleSweep;
    private readonly Lock _sweepGate = new();
    private readonly long _idleTimeout;
    private readonly long _sweepSpacing;
    private readonly long _timerSlack;
    private long _sweepDue = long.MaxValue;
    private int _stoppingHooked;

    // The keep-alive of the sockets the connection-level upgrade serves on the pipe, on one timer for all of them (see
    // ServeAsync): every half interval, each socket that has not sent or received for half an interval gets an
    // unsolicited pong, so none is silent for longer than the interval. Armed by the first such socket.
    private readonly ITimer _keepAlive;
    private long _keepAliveIdle = long.MaxValue;

    public SelfHostedGateway(IOptions<TalkiSignallingOptions> options, TimeProvider time, ILogger<SelfHostedGateway> logger, IGatewayBackplane? backplane = null)
    {
        _backplane = backplane;
        _options = options.Value.Hosting;
        _queueCapacity = QueueCapacityOf(options.Value);
        _queueBytes = QueueBytesOf(options.Value);
        _time = time;
        _logger = logger;
        _idleTimeout = _time.ToTimestampUnits(_options.IdleTimeout);
        _sweepSpacing = _time.ToTimestampUnits(SweepSpacingOf(_options.IdleTimeout));
        _timerSlack = _time.ToTimestampUnits(TimerSlack);

        // The gateway is built on the first upgrade: its timers must not keep that request's execution context (its
        // Activity and logging scopes) alive for the life of the process.
        _idleSweep = time.CreateContextFreeTimer(static state => ((SelfHostedGateway)state!).SweepIdle(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        _keepAlive = time.CreateContextFreeTimer(static state => ((SelfHostedGateway)state!).SendKeepAlives(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    /// <summary>Gets the capacity of each connection's outbound queue: the peers' allowed burst plus <c>Hosting.OutboundQueueCapacity</c>.</summary>
    internal int QueueCapacity => _queueCapacity;

    /// <summary>Gets the most bytes each connection's outbound queue holds (<see cref="QueueBytesOf"/>).</summary>
    internal long QueueBytes => _queueBytes;

    /// <summary>Gets the number of open connections.</summary>
    internal int ConnectionCount => _connections.Count;

    /// <summary>Gets the number of connections authorized and not served yet (nor released).</summary>
    internal int PendingConnectionCount => _pendingConnections.Count;

    /// <summary>Gets how many open connections hold a receive buffer now (one while a message is read or handled; none while idle).</summary>
    internal int ReceiveBuffersHeld => _connections.Values.Count(c => c.HoldsBuffer);

    /// <summary>Gets the ids of the open connections (for tests that prove they never reach a client).</summary>
    internal IReadOnlyCollection<string> ConnectionIds => [.. _connections.Keys];

    public ValueTask<PushOutcome> PushAsync(string connectionId, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
    {
        if (_backplane is null || IsLocal(connectionId))
        {
            return new(PushLocal(connectionId, payload.Span));
        }

        // Held by another instance, or by none (Gone everywhere): the backplane knows.
        return payload.Length > _options.MaxOutboundMessageBytes ? new(PushOutcome.PayloadTooLarge) : _backplane.PushAsync(connectionId, payload, cancellationToken);
    }

    public ValueTask CloseAsync(string connectionId, CancellationToken cancellationToken = default)
        => CloseAsync(connectionId, WebSocketCloseStatus.NormalClosure, "closed by the server", cancellationToken);

    public ValueTask ClosePolicyViolationAsync(string connectionId, string reason, CancellationToken cancellationToken = default)
        => CloseAsync(connectionId, WebSocketCloseStatus.PolicyViolation, reason, cancellationToken);

    /// <summary>Delivers to a socket of this instance (the backplane's delivery of a push from another instance).</summary>
    /// <returns><see cref="PushOutcome.Gone"/> when this instance does not hold the socket (any more).</returns>
    internal PushOutcome PushLocal(string connectionId, ReadOnlySpan<byte> payload)
    {
        if (!_connections.TryGetValue(connectionId, out var connection))
        {
            if (!_pendingConnections.TryGetValue(connectionId, out var pending))
            {
                return PushOutcome.Gone;
            }

            if (payload.Length > _options.MaxOutboundMessageBytes)
            {
                return PushOutcome.PayloadTooLarge;
            }

            lock (pending)
            {
                if (!pending.Ended)
                {
                    if (pending.Hold(payload, _queueCapacity, _queueBytes))
                    {
                        return PushOutcome.Delivered;
                    }

                    HostingLog.SlowConsumer(_logger);
                    return PushOutcome.Gone;
                }
            }

            // Served meanwhile (or released): as any connection of this instance.
            if (!_connections.TryGetValue(connectionId, out connection))
            {
                return PushOutcome.Gone;
            }
        }

        if (payload.Length > _options.MaxOutboundMessageBytes)
        {
            return PushOutcome.PayloadTooLarge;
        }

        return connection.TryEnqueue(payload) ? PushOutcome.Delivered : PushOutcome.Gone;
    }

    /// <summary>Closes a socket of this instance after what is queued (no-op when it is not here).</summary>
    internal void CloseLocal(string connectionId, WebSocketCloseStatus status, string reason)
    {
        if (!_connections.TryGetValue(connectionId, out var connection) && _pendingConnections.TryGetValue(connectionId, out var pending))
        {
            lock (pending)
            {
                if (!pending.Ended)
                {
                    pending.Close ??= (status, reason); // the first close asked for wins, as RequestClose's
                    return;
                }
            }

            _ = _connections.TryGetValue(connectionId, out connection);
        }

        connection?.RequestClose(status, reason);
    }

    /// <summary>Whether the connection is served by this instance, or authorized here and about to be.</summary>
    private bool IsLocal(string connectionId) => _connections.ContainsKey(connectionId) || _pendingConnections.ContainsKey(connectionId);

    /// <summary>
    /// Serves <paramref name="connection"/> under <paramref name="connectionId"/>: what was pushed to it while it was
    /// pending goes first, in order, then a close asked for meanwhile; only then does it take pushes directly.
    /// </summary>
    private void Register(string connectionId, GatewayConnection connection)
    {
        if (!_pendingConnections.TryGetValue(connectionId, out var pending))
        {
            _connections[connectionId] = connection;
            return;
        }

        lock (pending)
        {
            if (pending.Messages is { } messages)
            {
                foreach (var message in messages)
                {
                    _ = connection.TryEnqueue(message);
                }
            }

            if (pending.Close is { } close)
            {
                connection.RequestClose(close.Status, close.Reason);
            }

            // Published inside the lock: a push that found the pending entry waits for it, then finds the connection.
            _connections[connectionId] = connection;
            pending.End();
        }

        _pendingConnections.TryRemove(new KeyValuePair<string, PendingConnection>(connectionId, pending));
    }

    /// <summary>Ends a connection's pending state without serving it (refused, or its socket never made).</summary>
    private void EndPending(string connectionId)
    {
        if (_pendingConnections.TryRemove(connectionId, out var pending))
        {
            lock (pending)
            {
                pending.End();
            }
        }
    }

    /// <summary>What is pushed to, or asked of, a connection between its bind and its registration (guarded by its own lock).</summary>
    private sealed class PendingConnection
    {
        private long _bytes;

        public List<byte[]>? Messages { get; private set; }

        public (WebSocketCloseStatus Status, string Reason)? Close { get; set; }

        public bool Ended { get; private set; }

        /// <summary>Holds a copy of <paramref name="payload"/>; past the connection's queue bounds, asks for the slow consumer's close instead.</summary>
        public bool Hold(ReadOnlySpan<byte> payload, int capacity, long bytes)
        {
            if ((Messages?.Count ?? 0) + 1 > capacity || _bytes + payload.Length > bytes)
            {
                Close ??= (WebSocketCloseStatus.PolicyViolation, "slow consumer");
                return false;
            }

            (Messages ??= []).Add(payload.ToArray());
            _bytes += payload.Length;
            return true;
        }

        public void End()
        {
            Ended = true;
            Messages = null;
        }
    }

    private ValueTask CloseAsync(string connectionId, WebSocketCloseStatus status, string reason, CancellationToken cancellationToken)
    {
        if (_backplane is not null && !IsLocal(connectionId))
        {
            return _backplane.CloseAsync(connectionId, status, reason, cancellationToken);
        }

        CloseLocal(connectionId, status, reason);
        return ValueTask.CompletedTask;
    }

    /// <summary>Stops the idle sweep and the keep-alive timers; the connections themselves end with their requests.</summary>
    public void Dispose()
    {
        _idleSweep.Dispose();
        _keepAlive.Dispose();
    }

    /// <summary>
    /// The least time between two sweeps of the idle connections: a sixteenth of the idle timeout, at most a second. A
    /// connection is closed at its idle timeout, or at most this much later when another connection's deadline was
    /// swept just before (a second after ten minutes with the defaults).
    /// </summary>
    internal static TimeSpan SweepSpacingOf(TimeSpan idleTimeout) => TimeSpan.FromTicks(Math.Min(TimeSpan.TicksPerSecond, idleTimeout.Ticks / 16));

    /// <summary>The outbound queue's capacity for the options (see the remarks of <see cref="SelfHostedGateway"/>).</summary>
    internal static int QueueCapacityOf(TalkiSignallingOptions options)
    {
        var peersBurst = (long)(options.Limits.MaxMembersPerRoom - 1) * options.Limits.MessageBurst;
        return (int)Math.Min(int.MaxValue, options.Hosting.OutboundQueueCapacity + peersBurst);
    }

    /// <summary>
    /// The most bytes of frames each connection's outbound queue holds for the options: the peers' allowed byte burst, with
    /// <see cref="RelayAllowance"/> for each message of their message burst (a relayed signal is a little larger than the
    /// signal sent, and a notice a peer's message causes, such as <c>connect_to_peer</c>, larger than that message), plus
    /// <see cref="OwnReplyAllowance"/> for each message of <c>Hosting.OutboundQueueCapacity</c> (the member's own replies
    /// and the server's notices). See the remarks of <see cref="SelfHostedGateway"/>.
    /// </summary>
    internal static long QueueBytesOf(TalkiSignallingOptions options)
    {
        var peers = (long)(options.Limits.MaxMembersPerRoom - 1);
        return (peers * (options.Limits.MessageBytesBurst + ((long)options.Limits.MessageBurst * RelayAllowance)))
            + ((long)options.Hosting.OutboundQueueCapacity * OwnReplyAllowance);
    }

    /// <summary>What a peer's message may add to the frame it causes for a member, beyond the bytes the message paid for.</summary>
    internal const int RelayAllowance = 1024;

    /// <summary>The bytes counted for each of a member's own replies and the server's notices (a welcome with a full room's roster is about 2 KB).</summary>
    internal const int OwnReplyAllowance = 4096;

    /// <summary>The endpoint: <c>GET {prefix}/ws?ticket=…[&amp;v=1]</c>.</summary>
    public async Task HandleAsync(HttpContext context, ISignallingEngine engine)
    {
        if (!context.WebSockets.IsWebSocketRequest)
        {
            await HttpErrors.WriteAsync(context, StatusCodes.Status400BadRequest, SignallingErrorCode.InvalidRequest, "Expected a WebSocket upgrade.").ConfigureAwait(false);
            return;
        }

        var upgrade = await AuthorizeAsync(context.Request.QueryString.Value, engine, context.RequestAborted).ConfigureAwait(false);
        if (upgrade.Refusal is { } refusal)
        {
            if (refusal.RetryLater)
            {
                context.Response.Headers.RetryAfter = "1";
            }

            await HttpErrors.WriteAsync(context, refusal.Status, refusal.Code, refusal.Message, refusal.Reference).ConfigureAwait(false);
            return;
        }

        WebSocket socket;
        try
        {
            socket = await context.WebSockets.AcceptWebSocketAsync().ConfigureAwait(false);
        }
        catch
        {
            await ReleaseAsync(upgrade.ConnectionId, engine).ConfigureAwait(false);
            throw;
        }

        var stopping = context.RequestServices?.GetService<IHostApplicationLifetime>()?.ApplicationStopping ?? CancellationToken.None;
        await ServeAsync(socket, transport: null, upgrade.ConnectionId, upgrade.Grant!, engine, stopping).ConfigureAwait(false);
    }

    /// <summary>
    /// Authorizes an upgrade from its query string (<c>?ticket=…[&amp;v=…][&amp;resume=…]</c>): the engine takes the ticket and
    /// binds a new connection id, and the backplane (when there is one) registers it. On success the caller owns the
    /// connection: it accepts the socket and calls <see cref="ServeAsync"/>, or <see cref="ReleaseAsync"/> when it cannot.
    /// </summary>
    /// <exception cref="OperationCanceledException"><paramref name="aborted"/> was cancelled: the client went away.</exception>
    internal async Task<Upgrade> AuthorizeAsync(string? queryString, ISignallingEngine engine, CancellationToken aborted)
    {
        // Parsed here, not through Request.Query: the request's query feature (a dictionary, the ticket's strings) would
        // stay with the request, so with the socket, for the connection's life (about 450 bytes per idle member). The
        // parse is the same (QueryHelpers: names without regard to case, repeated names' values kept in order, decoded).
        var query = new QueryCollection(QueryHelpers.ParseQuery(queryString));
        if (query.TryGetValue("v", out var version) && !IsSupportedVersion(version.ToString()))
        {
            return Upgrade.Refused(StatusCodes.Status400BadRequest, SignallingErrorCode.UnsupportedVersion, $"This server speaks protocol versions {ProtocolVersion.Minimum} to {ProtocolVersion.Current}.");
        }

        if (!TryReadWaiting(query, out var waitingVersion))
        {
            return Upgrade.Refused(StatusCodes.Status400BadRequest, SignallingErrorCode.MalformedMessage, $"The '{ProtocolVersion.WaitParameter}' parameter is 0 or 1.");
        }

        var connectionId = NewConnectionId();
        _pendingConnections[connectionId] = new PendingConnection(); // before the bind: the engine may push as soon as it has bound
        SignallingResult<ConnectionGrant> grant;
        try
        {
            grant = await engine.ConnectAsync(connectionId, query["ticket"].ToString(), ResumeEpoch(query), waitingVersion, aborted).ConfigureAwait(false);
        }
        catch (RoomStoreUnavailableException exception)
        {
            EndPending(connectionId);
            HostingLog.StoreUnavailable(_logger, exception);
            return Upgrade.StoreUnavailable;
        }
        catch (OperationCanceledException) when (aborted.IsCancellationRequested)
        {
            // The client went away: the engine may have bound the connection before it noticed.
            EndPending(connectionId);
            await engine.DisconnectAsync(connectionId, CancellationToken.None).ConfigureAwait(false);
            throw;
        }
        catch (Exception exception)
        {
            EndPending(connectionId);
            var reference = SignallingEngine.NewCorrelationId();
            HostingLog.GatewayFailure(_logger, exception, reference);
            return Upgrade.Refused(StatusCodes.Status500InternalServerError, SignallingErrorCode.Internal, "An unexpected error occurred; quote the reference to the operator.", reference);
        }

        if (!grant.IsSuccess)
        {
            EndPending(connectionId);
            return Upgrade.Refused(HttpErrors.StatusOf(grant.Error.Code), grant.Error.Code, grant.Error.Message);
        }

        if (_backplane is not null)
        {
            try
            {
                await _backplane.RegisterAsync(connectionId, aborted).ConfigureAwait(false);
            }
            catch (RoomStoreUnavailableException exception)
            {
                // A socket no other instance could reach would be half a connection: refuse it, the client retries.
                HostingLog.StoreUnavailable(_logger, exception);
                await ReleaseAsync(connectionId, engine).ConfigureAwait(false);
                return Upgrade.StoreUnavailable;
            }
            catch
            {
                // The client went away (or the backplane failed otherwise): no half connection is left behind.
                await ReleaseAsync(connectionId, engine).ConfigureAwait(false);
                throw;
            }
        }

        return new Upgrade(connectionId, grant.Value, null);
    }

    /// <summary>Undoes a successful <see cref="AuthorizeAsync"/> whose socket could not be accepted.</summary>
    internal async Task ReleaseAsync(string connectionId, ISignallingEngine engine)
    {
        EndPending(connectionId); // never served: what was held for it is dropped, and pushes say it is gone
        if (_backplane is not null)
        {
            await _backplane.UnregisterAsync(connectionId).ConfigureAwait(false);
        }

        await engine.DisconnectAsync(connectionId, CancellationToken.None).ConfigureAwait(false);
    }

    /// <summary>
    /// Runs an accepted socket of an authorized connection until it ends, then releases the connection. The socket is
    /// disposed here.
    /// </summary>
    /// <param name="socket">The accepted WebSocket.</param>
    /// <param name="transport">
    /// The stream under <paramref name="socket"/> when the gateway made it over the connection's pipes (the connection-level
    /// upgrade), and no read of the WebSocket's own runs while it idles (no keep-alive timeout): between messages the
    /// connection then waits on the pipe itself. Null otherwise.
    /// </param>
    /// <param name="connectionId">The connection id <see cref="AuthorizeAsync"/> bound.</param>
    /// <param name="grant">The grant <see cref="AuthorizeAsync"/> returned.</param>
    /// <param name="engine">The engine.</param>
    /// <param name="stopping">The application's stopping token: shutting down closes the socket.</param>
    /// <param name="keepAlive">
    /// With <paramref name="transport"/>, the WebSocket keep-alive interval the gateway keeps for the socket (the
    /// WebSocket itself was made without one); zero or negative: none.
    /// </param>
    /// <remarks>Not an asynchronous method: the connection's one frame for its whole life is <see cref="GatewayConnection.RunAsync"/>.</remarks>
    internal Task ServeAsync(WebSocket socket, DuplexPipeStream? transport, string connectionId, ConnectionGrant grant, ISignallingEngine engine, CancellationToken stopping, TimeSpan keepAlive = default)
    {
        if (transport is not null && keepAlive > TimeSpan.Zero)
        {
            EnsureKeepAlive(keepAlive);
        }

        return new GatewayConnection(socket, transport, _options, _queueCapacity, _queueBytes, _time, _logger).RunAsync(this, connectionId, engine, grant, stopping);
    }

    /// <summary>Arms the shared keep-alive for <paramref name="interval"/> (the first call's: a host has one WebSocketOptions).</summary>
    private void EnsureKeepAlive(TimeSpan interval)
    {
        var idle = _time.ToTimestampUnits(interval / 2);
        if (Interlocked.CompareExchange(ref _keepAliveIdle, idle, long.MaxValue) == long.MaxValue)
        {
            _keepAlive.Change(interval / 2, interval / 2);
        }
    }

    /// <summary>An unsolicited pong to each socket served on the pipe that has been silent both ways for half an interval.</summary>
    private void SendKeepAlives()
    {
        var idle = Interlocked.Read(ref _keepAliveIdle);
        var now = _time.GetTimestamp() + _timerSlack; // the timer's clock is coarser than the timestamps
        foreach (var (_, connection) in _connections)
        {
            connection.KeepAlive(now, idle);
        }
    }

    /// <summary>Closes every socket of this instance when <paramref name="stopping"/> is cancelled, with one registration for all of them.</summary>
    private void HookStopping(CancellationToken stopping)
    {
        // One registration for every connection (not one per socket): shutting down closes what is open then, and a
        // connection added after that sees the token cancelled by its caller.
        if (stopping.CanBeCanceled && Interlocked.CompareExchange(ref _stoppingHooked, 1, 0) == 0)
        {
            stopping.UnsafeRegister(static state => ((SelfHostedGateway)state!).CloseAllLocal(WebSocketCloseStatus.EndpointUnavailable, "server shutting down"), this);
        }
    }

    /// <summary>Closes every socket of this instance after what is queued.</summary>
    private void CloseAllLocal(WebSocketCloseStatus status, string reason)
    {
        foreach (var (_, connection) in _connections)
        {
            connection.RequestClose(status, reason);
        }
    }

    /// <summary>Arms the idle sweep for <paramref name="due"/> (a timestamp) unless it is armed for earlier already.</summary>
    private void ScheduleIdleSweep(long due)
    {
        lock (_sweepGate)
        {
            if (due >= _sweepDue)
            {
                return;
            }

            _sweepDue = due;
            var delay = Math.Max(0, due - _time.GetTimestamp());
            _idleSweep.Change(TimeSpan.FromTicks((long)Math.Ceiling(delay * ((double)TimeSpan.TicksPerSecond / _time.TimestampFrequency))), Timeout.InfiniteTimeSpan);
        }
    }

    /// <summary>Closes the connections idle for <see cref="TalkiHostingOptions.IdleTimeout"/>, and arms the sweep for the next deadline.</summary>
    private void SweepIdle()
    {
        long due;
        lock (_sweepGate)
        {
            due = _sweepDue;
            _sweepDue = long.MaxValue; // a connection that opens from now on arms the timer itself
        }

        var now = _time.GetTimestamp();
        if (due != long.MaxValue && due > now && due - now <= _timerSlack)
        {
            now = due; // the timer fired for this instant, on its coarser clock
        }

        var next = long.MaxValue;
        foreach (var (_, connection) in _connections)
        {
            if (connection.IsClosing)
            {
                continue;
            }

            var deadline = connection.LastActivity + _idleTimeout;
            if (deadline <= now)
            {
                connection.RequestClose(WebSocketCloseStatus.EndpointUnavailable, "idle timeout");
            }
            else
            {
                next = Math.Min(next, deadline);
            }
        }

        if (next != long.MaxValue)
        {
            ScheduleIdleSweep(Math.Max(next, now + _sweepSpacing));
        }
    }

    /// <summary>
    /// The epoch the client asks to resume (<c>resume</c> in the query string: a positive decimal integer), or
    /// <see langword="null"/>. It is only a request: anything else is ignored, and the engine decides.
    /// </summary>
    internal static long? ResumeEpoch(IQueryCollection query)
        => query.TryGetValue("resume", out var values) && values.Count == 1
            && long.TryParse(values[0], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var epoch) && epoch > 0
            ? epoch
            : null;

    /// <summary>Reads the URL's <c>wait</c> (see <see cref="TryReadWaiting(string?, string?, out int?)"/>); given twice, it is malformed.</summary>
    internal static bool TryReadWaiting(IQueryCollection query, out int? waitingVersion)
    {
        waitingVersion = null;
        var wait = query.TryGetValue(ProtocolVersion.WaitParameter, out var values) ? values : default;
        return wait.Count <= 1 && TryReadWaiting(wait.Count == 0 ? null : wait[0], query.TryGetValue("v", out var version) ? version.ToString() : null, out waitingVersion);
    }

    /// <summary>
    /// Reads a connect's <c>wait</c> (protocol version 4: a waiting member's connect stands for its hello), for the
    /// self-hosted upgrade and API Gateway's authorizer alike: absent (<see langword="null"/>) or <c>0</c>, an ordinary
    /// connect (<paramref name="waitingVersion"/> <see langword="null"/>); <c>1</c>, the URL's <paramref name="version"/>
    /// (1 when absent or not a number: the engine then refuses it as too old to wait). Anything else is malformed.
    /// </summary>
    internal static bool TryReadWaiting(string? wait, string? version, out int? waitingVersion)
    {
        waitingVersion = null;
        switch (wait)
        {
            case null or "0":
                return true;
            case "1":
                waitingVersion = int.TryParse(version, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var asked) ? asked : 1;
                return true;
            default:
                return false;
        }
    }

    /// <summary>Whether the URL's <c>v</c> names a version this server serves (digits only; the hello says the same again).</summary>
    private static bool IsSupportedVersion(string text) =>
        int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var version) && ProtocolVersion.IsSupported(version);

    private static string NewConnectionId()
    {
        Span<byte> bytes = stackalloc byte[16];
        RandomNumberGenerator.Fill(bytes);
        return Base64Url.EncodeToString(bytes);
    }

    /// <summary>An authorized upgrade (<see cref="ConnectionId"/> and <see cref="Grant"/>), or its <see cref="Refusal"/>.</summary>
    internal readonly record struct Upgrade(string ConnectionId, ConnectionGrant? Grant, UpgradeRefusal? Refusal)
    {
        /// <summary>Gets the refusal when the room store is throttled or failing: 503 with <c>Retry-After: 1</c>.</summary>
        public static Upgrade StoreUnavailable => Refused(StatusCodes.Status503ServiceUnavailable, SignallingErrorCode.ServiceUnavailable, HttpErrors.StoreUnavailableMessage, retryLater: true);

        public static Upgrade Refused(int status, SignallingErrorCode code, string message, string? reference = null, bool retryLater = false)
            => new(string.Empty, null, new UpgradeRefusal(status, code, message, reference, retryLater));
    }

    /// <summary>Why an upgrade is refused: the HTTP status, the stable code and message, an error reference, and whether to send <c>Retry-After: 1</c>.</summary>
    internal sealed record UpgradeRefusal(int Status, SignallingErrorCode Code, string Message, string? Reference, bool RetryLater);

    /// <summary>One WebSocket: a receive loop feeding the engine and a send loop draining the bounded queue.</summary>
    private sealed class GatewayConnection : IDisposable
    {
        private readonly WebSocket _socket;
        private readonly DuplexPipeStream? _transport;
        private readonly TalkiHostingOptions _options;
        private readonly int _capacity;
        private readonly long _byteCapacity;
        private readonly ILogger _logger;
        // The outbound queue exists only while there is something to send, and so does its sender: an idle connection holds
        // neither (a channel and its reader loop cost about 1.8 KB per socket, measured with dotnet-gcdump at 10,000).
        private readonly Lock _gate = new();
        // The next frame to send when it is the only one (the common case: one relayed frame at a time), so that a busy
        // connection does not make a queue per frame; the queue holds what comes after it, and close frames.
        private byte[]? _nextBuffer;
        private int _nextLength;
        private Queue<Outbound>? _pending;
        private bool _draining;
        private bool _completed;
        // Set only when the connection ends while its sender runs: the receive loop waits on it before the close handshake.
        private TaskCompletionSource? _drained;
        private readonly CancellationTokenSource _receiveAbort;
        private readonly TimeProvider _time;
        private long _lastActivity;
        private int _queued;
        private long _queuedBytes;
        private volatile bool _holdsBuffer;
        private int _closing;
        private int _abortArmed;

        public GatewayConnection(WebSocket socket, DuplexPipeStream? transport, TalkiHostingOptions options, int capacity, long byteCapacity, TimeProvider time, ILogger logger)
        {
            _socket = socket;
            _transport = transport;
            _options = options;
            _capacity = capacity;
            _byteCapacity = byteCapacity;
            _logger = logger;
            _time = time;
            _lastActivity = time.GetTimestamp();

            // On the system clock a plain source: CancelAfter uses the same timer, created only when closing (a source
            // bound to TimeProvider.System holds an unarmed timer from the start, 96 bytes per socket). Another clock
            // (the tests' fake one) is bound as before, so that the close handshake timeout follows it.
            _receiveAbort = time == TimeProvider.System ? new CancellationTokenSource() : new CancellationTokenSource(Timeout.InfiniteTimeSpan, time);
        }

        /// <summary>
        /// Gets what the WebSocket's receives and sends are given: on the pipe no token (the abort ends them through the
        /// stream, <see cref="DuplexPipeStream.Abort"/>), otherwise the abort's. A cancellable token costs ManagedWebSocket a
        /// registration per call and sends it down its slower path (dotnet/runtime, <c>ManagedWebSocket.SendFrameAsync</c>:
        /// "If a cancelable cancellation token was provided ... just immediately go to the fallback path"): about 1.5 % of a
        /// saturated server's CPU in a profile (docs/performance.md). A property, not a field: nothing more per connection.
        /// </summary>
        private CancellationToken Io => _transport is null ? _receiveAbort.Token : CancellationToken.None;

        /// <summary>Gets the timestamp (<see cref="TimeProvider.GetTimestamp"/>) of the last message received or sent, or of the opening.</summary>
        public long LastActivity => Volatile.Read(ref _lastActivity);

        /// <summary>
        /// Writes an unsolicited pong when this socket is served on the pipe (the gateway's shared keep-alive) and has
        /// neither sent nor received since <paramref name="idle"/> before <paramref name="now"/>. It does not count as
        /// activity: the idle timeout still closes a socket that only gets keep-alives.
        /// </summary>
        public void KeepAlive(long now, long idle)
        {
            if (_transport is { } transport && Volatile.Read(ref _closing) == 0 && now - LastActivity >= idle)
            {
                transport.TryWriteKeepAlive();
            }
        }

        /// <summary>Gets whether the receive loop holds a rented buffer (a message is being read or handled).</summary>
        public bool HoldsBuffer => _holdsBuffer;

        /// <summary>Gets whether the connection is closing (a close was requested, or it has ended).</summary>
        public bool IsClosing => Volatile.Read(ref _closing) != 0;

        public bool TryEnqueue(ReadOnlySpan<byte> payload)
        {
            if (Volatile.Read(ref _closing) != 0)
            {
                return false;
            }

            var full = Interlocked.Increment(ref _queued) > _capacity;
            full |= Interlocked.Add(ref _queuedBytes, payload.Length) > _byteCapacity;
            if (full)
            {
                Interlocked.Decrement(ref _queued);
                Interlocked.Add(ref _queuedBytes, -payload.Length);
                HostingLog.SlowConsumer(_logger);
                RequestClose(WebSocketCloseStatus.PolicyViolation, "slow consumer");
                return false;
            }

            var buffer = ArrayPool<byte>.Shared.Rent(payload.Length);
            payload.CopyTo(buffer);
            if (!Write(new Outbound(buffer, payload.Length, null, null), complete: false))
            {
                ArrayPool<byte>.Shared.Return(buffer);
                Interlocked.Decrement(ref _queued);
                Interlocked.Add(ref _queuedBytes, -payload.Length);
                return false;
            }

            return true;
        }

        /// <summary>Closes after what is queued already; the client has <see cref="CloseHandshakeTimeout"/> to answer.</summary>
        public void RequestClose(WebSocketCloseStatus status, string description)
        {
            if (Interlocked.Exchange(ref _closing, 1) == 0)
            {
                Write(new Outbound(null, 0, status, description), complete: true);
                try
                {
                    // Covers a send loop stuck behind a client that stopped reading.
                    ArmReceiveAbort();
                    _receiveAbort.CancelAfter(CloseHandshakeTimeout * 2);
                }
                catch (ObjectDisposedException)
                {
                    // The connection has ended already.
                }
            }
        }

        /// <summary>
        /// Serves the connection for its whole life in one asynchronous frame (this one is about 300 bytes; the three it
        /// replaced, serve, run and receive loop, were about 510): registers it with <paramref name="gateway"/>, feeds its
        /// messages to the engine, sends what is queued, closes, and releases it.
        /// </summary>
        public async Task RunAsync(SelfHostedGateway gateway, string connectionId, ISignallingEngine engine, ConnectionGrant grant, CancellationToken stopping)
        {
            try
            {
                gateway.Register(connectionId, this);
                gateway.ScheduleIdleSweep(LastActivity + gateway._idleTimeout);
                HostingLog.GatewayConnectionOpened(_logger);
                gateway.HookStopping(stopping);
                if (stopping.IsCancellationRequested)
                {
                    RequestClose(WebSocketCloseStatus.EndpointUnavailable, "server shutting down");
                }

                string reason;
                try
                {
                    // The receive loop is inline: an awaited method of its own would be one more frame for the socket's life.
                    var limit = _options.MaxInboundMessageBytes;
                    var largest = WholeFrameWait(limit);
                    while (true)
                    {
                        // Idle, a socket holds no receive buffer, and none is rented until the message can be read without
                        // waiting for the client: a member that sends a frame's header and a byte of it, and then nothing,
                        // holds what it sent and no 32 KiB (64 KiB from the pool's bucket).
                        var next = NextFrame.Receivable;
                        if (_transport is { } transport)
                        {
                            next = transport.Peek(largest);
                            if (next != NextFrame.WholeDataFrame)
                            {
                                // No whole message is waiting: what the last ones relayed leaves now (see Cork below).
                                DuplexPipeStream.FlushCorked();
                            }

                            // Idle on the connection's pipe itself, until the next frame is there (or the end), before the
                            // WebSocket is asked. The WebSocket holds nothing of the connection between messages
                            // (DuplexPipeStream stops every read at its frame's end), and a pending pipe read holds no state
                            // of its own, where a pending receive holds the WebSocket's and the stream's (about 400 bytes per
                            // idle member). Closing cancels it (ArmReceiveAbort). Inline: no frame of its own while idle.
                            while (next == NextFrame.NotThere)
                            {
                                var waited = await transport.Input.ReadAsync(CancellationToken.None).ConfigureAwait(false);
                                transport.Input.AdvanceTo(waited.Buffer.Start);
                                _receiveAbort.Token.ThrowIfCancellationRequested();
                                next = transport.Peek(largest);
                            }
                        }

                        // Off the pipe, and on it before anything but a whole data frame (nearly every message is one), a
                        // zero-byte read waits for the next data frame's header with no buffer (ManagedWebSocket supports
                        // it; dotnet/runtime#87329 keeps it from touching a buffer underneath), handling control frames on
                        // its way.
                        var emptyMessage = false;
                        if (next != NextFrame.WholeDataFrame)
                        {
                            var header = await _socket.ReceiveAsync(Memory<byte>.Empty, Io).ConfigureAwait(false);
                            if (header.MessageType == WebSocketMessageType.Close)
                            {
                                reason = "closed by the client";
                                break;
                            }

                            if (header.MessageType == WebSocketMessageType.Binary)
                            {
                                // API Gateway closes on binary frames with 1003.
                                RequestClose(WebSocketCloseStatus.InvalidMessageType, "binary frames are not supported");
                                reason = "binary frame";
                                break;
                            }

                            emptyMessage = header.EndOfMessage;
                            if (!emptyMessage && _transport is { AtFrameBoundary: false } onPipe)
                            {
                                // The rest of the frame it read the header of. (At a boundary the WebSocket read all of it, header
                                // and payload, into its own small header buffer: nothing to wait for.)
                                await WaitOnPipeAsync(onPipe, largest).ConfigureAwait(false);
                            }
                        }

                        byte[]? buffer = null;
                        try
                        {
                            var receiving = ReceiveMessageAsync(limit, largest, emptyMessage);
                            if (!receiving.IsCompleted)
                            {
                                DuplexPipeStream.FlushCorked(); // nothing corked may wait behind a wait for the client
                            }

                            var outcome = await receiving.ConfigureAwait(false);
                            buffer = outcome.Buffer; // ours to return from here
                            if (outcome.Ended is { } ended)
                            {
                                reason = ended;
                                break;
                            }

                            Volatile.Write(ref _lastActivity, _time.GetTimestamp());
                            if (Volatile.Read(ref _closing) != 0)
                            {
                                // Closing (rate limit, hello timeout, seal…): what the client still sends is read to reach
                                // its close frame, but no longer handled.
                                continue;
                            }

                            var length = outcome.Length;
                            if (outcome.TooLarge > 0)
                            {
                                // The engine refuses it as it refuses any message over the limit: it pays the largest allowed
                                // message to the sender's rate limiter and is answered message_too_large, or rate_limited
                                // (closing the connection as a flood does). Answering here instead let a member send
                                // oversized messages without end, each read whole and answered. The engine reads only the
                                // length of a message over the limit; the buffer holds a byte more than the limit.
                                HostingLog.MessageTooLarge(_logger, outcome.TooLarge);
                                length = limit + 1;
                            }

                            // The engine copies what it keeps (relayed frames are written into their own buffers): the
                            // rented buffer goes back to the pool when the handling is over. The connection's grant names
                            // its member: the engine reads that member instead of the binding and the room.
                            ValueTask handled;
                            var senders = SendersToStart.Collect();
                            try
                            {
                                handled = engine.HandleAuthorizedMessageAsync(connectionId, grant, buffer.AsMemory(0, length), CancellationToken.None);
                            }
                            finally
                            {
                                // Outside the engine's call (no lock of it on this stack): the senders of what this message
                                // queued run on this thread, where a relayed frame would otherwise wait for a pool thread.
                                // On the pipe they are corked: their frames go into their sockets' pipes unflushed, and
                                // leave when no whole message is waiting in this one (above), so that what a batch of
                                // pipelined messages relays to one socket leaves in one flush. Off the pipe nothing tells
                                // whether another message is waiting: the frames leave at once.
                                DuplexPipeStream.Cork(_transport is not null);
                                try
                                {
                                    SendersToStart.Start(senders);
                                }
                                finally
                                {
                                    DuplexPipeStream.Cork(false);
                                }
                            }

                            if (!handled.IsCompleted)
                            {
                                DuplexPipeStream.FlushCorked(); // the thread is given up: nothing corked may be left behind on it
                            }

                            await handled.ConfigureAwait(false);
                        }
                        finally
                        {
                            if (buffer is not null)
                            {
                                ArrayPool<byte>.Shared.Return(buffer);
                            }

                            _holdsBuffer = false;
                        }
                    }
                }
                catch (OperationCanceledException)
                {
                    reason = "close handshake timed out";
                }
                catch (WebSocketException exception)
                {
                    reason = exception.WebSocketErrorCode.ToString();
                }
                catch (IOException)
                {
                    // The wait on the pipe sees what the transport ended the connection with (a reset, for one); inside a
                    // receive the WebSocket reports the same as a WebSocketException.
                    reason = nameof(WebSocketError.ConnectionClosedPrematurely);
                }
                finally
                {
                    DuplexPipeStream.FlushCorked(); // the loop ended with what it relayed last still corked
                }

                var sending = Task.CompletedTask;
                lock (_gate)
                {
                    _completed = true; // what is queued still goes out; nothing more is queued
                    if (_draining)
                    {
                        sending = (_drained = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;
                    }
                }

                Volatile.Write(ref _closing, 1);
                await sending.ConfigureAwait(false);
                if (_socket.State == WebSocketState.CloseReceived)
                {
                    try
                    {
                        await _socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None).ConfigureAwait(false);
                    }
                    catch (WebSocketException)
                    {
                        // The client went away mid-handshake.
                    }
                    catch (OperationCanceledException)
                    {
                        // Aborted on the pipe (a client that closed but stopped reading, past the close handshake's
                        // timeout): the stream refuses the write; the WebSocket itself was never aborted, so its state
                        // still says the client's close is to be answered.
                    }
                }

                HostingLog.GatewayConnectionClosed(_logger, reason);
            }
            finally
            {
                gateway._connections.TryRemove(connectionId, out _);
                try
                {
                    await gateway.ReleaseAsync(connectionId, engine).ConfigureAwait(false);
                }
                finally
                {
                    Dispose();
                }
            }
        }

        public void Dispose()
        {
            Volatile.Write(ref _closing, 1);
            _receiveAbort.Dispose();
            lock (_gate)
            {
                _completed = true;
                if (_nextBuffer is not null)
                {
                    ArrayPool<byte>.Shared.Return(_nextBuffer);
                    _nextBuffer = null;
                }

                while (_pending?.TryDequeue(out var item) == true)
                {
                    if (item.Buffer is not null)
                    {
                        ArrayPool<byte>.Shared.Return(item.Buffer);
                    }
                }
            }

            _socket.Dispose();
        }

        /// <summary>
        /// Lets <see cref="_receiveAbort"/> end what waits on the pipe: the connection's wait for data, a pending receive, a
        /// send waiting for the client to read (none of which is given the token, see <see cref="Io"/>). Registered once,
        /// when the abort is first armed (closing, or a failed send), so that an open connection holds no registration.
        /// </summary>
        private void ArmReceiveAbort()
        {
            if (_transport is { } transport && Interlocked.Exchange(ref _abortArmed, 1) == 0)
            {
                try
                {
                    _receiveAbort.Token.UnsafeRegister(static state => ((DuplexPipeStream)state!).Abort(), transport);
                }
                catch (ObjectDisposedException)
                {
                    // The connection has ended already.
                }
            }
        }

        /// <summary>
        /// Rents the receive buffer and reads one message into it (at most <paramref name="limit"/> bytes kept; a longer one
        /// is read to its end and reported). The buffer is the caller's once this returns; if it throws, nothing is held.
        /// Between the frames of a fragmented message (RFC 6455 §5.4) the buffer is held only while the next frame is there:
        /// otherwise what was received moves to a buffer of its own size until it is.
        /// </summary>
        [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))] // one per message: a Task<T> each time, even when it completes at once
        private async ValueTask<(byte[] Buffer, int Length, long TooLarge, string? Ended)> ReceiveMessageAsync(int limit, long largest, bool emptyMessage)
        {
            var buffer = ArrayPool<byte>.Shared.Rent(limit + 1);
            _holdsBuffer = true;
            var handedOver = false;
            try
            {
                if (emptyMessage)
                {
                    handedOver = true;
                    return (buffer, 0, 0, null); // the zero-byte read already consumed an empty message
                }

                var total = 0;
                long discarded = 0;
                var end = false;
                do
                {
                    if (total == limit + 1)
                    {
                        // Over the limit: keep reading to the end of the message, discarding it.
                        discarded += total;
                        total = 0;
                    }

                    var result = await _socket.ReceiveAsync(buffer.AsMemory(total, limit + 1 - total), Io).ConfigureAwait(false);
                    if (result.MessageType == WebSocketMessageType.Close)
                    {
                        handedOver = true;
                        return (buffer, 0, 0, "closed by the client");
                    }

                    if (result.MessageType == WebSocketMessageType.Binary)
                    {
                        RequestClose(WebSocketCloseStatus.InvalidMessageType, "binary frames are not supported");
                        handedOver = true;
                        return (buffer, 0, 0, "binary frame");
                    }

                    total += result.Count;
                    end = result.EndOfMessage;
                    if (!end && total <= limit && _transport is { AtFrameBoundary: true } transport && transport.Peek(largest) != NextFrame.WholeDataFrame)
                    {
                        // A fragment ended and the next is not all there: keep what came, not the whole buffer, meanwhile.
                        var kept = ArrayPool<byte>.Shared.Rent(Math.Max(total, 1));
                        buffer.AsSpan(0, total).CopyTo(kept);
                        ArrayPool<byte>.Shared.Return(buffer);
                        buffer = kept;
                        _holdsBuffer = false;
                        (var ended, end) = await NextFragmentAsync(transport, largest).ConfigureAwait(false);
                        var whole = ArrayPool<byte>.Shared.Rent(limit + 1);
                        kept.AsSpan(0, total).CopyTo(whole);
                        buffer = whole;
                        ArrayPool<byte>.Shared.Return(kept);
                        _holdsBuffer = true;
                        if (ended is not null)
                        {
                            handedOver = true;
                            return (buffer, 0, 0, ended);
                        }
                    }
                }
                while (!end);

                handedOver = true;
                return discarded > 0 || total > limit ? (buffer, 0, discarded + total, null) : (buffer, total, 0, null);
            }
            finally
            {
                if (!handedOver)
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                    _holdsBuffer = false;
                }
            }
        }

        /// <summary>
        /// Waits, with no receive buffer, until the next frame of a fragmented message can be received without waiting for
        /// the client: a whole continuation frame, or (after the control frames before it, which a zero-byte receive handles)
        /// the rest of the one whose header the WebSocket has read. Returns why the connection ends (or null), and whether
        /// the message ended already (an empty last fragment, which the zero-byte receive consumed).
        /// </summary>
        private async Task<(string? Ended, bool MessageEnded)> NextFragmentAsync(DuplexPipeStream transport, long largest)
        {
            if (await WaitOnPipeAsync(transport, largest).ConfigureAwait(false) == NextFrame.WholeDataFrame)
            {
                return (null, false);
            }

            var header = await _socket.ReceiveAsync(Memory<byte>.Empty, Io).ConfigureAwait(false);
            if (header.MessageType == WebSocketMessageType.Close)
            {
                return ("closed by the client", false);
            }

            if (header.EndOfMessage)
            {
                return (null, true);
            }

            if (!transport.AtFrameBoundary)
            {
                await WaitOnPipeAsync(transport, largest).ConfigureAwait(false); // at a boundary the WebSocket holds all of the frame
            }

            return (null, false);
        }

        /// <summary>
        /// Waits on the pipe until <see cref="DuplexPipeStream.Peek"/> finds what the next receive needs, and returns what it
        /// found; closing ends the wait.
        /// </summary>
        private async ValueTask<NextFrame> WaitOnPipeAsync(DuplexPipeStream transport, long largest)
        {
            NextFrame next;
            while ((next = transport.Peek(largest)) == NextFrame.NotThere)
            {
                var waited = await transport.Input.ReadAsync(CancellationToken.None).ConfigureAwait(false);
                transport.Input.AdvanceTo(waited.Buffer.Start);
                _receiveAbort.Token.ThrowIfCancellationRequested();
            }

            return next;
        }

        /// <summary>Queues an outbound item and starts the sender when none runs; false once the connection completed.</summary>
        private bool Write(Outbound item, bool complete)
        {
            lock (_gate)
            {
                if (_completed)
                {
                    return false;
                }

                if (item.Buffer is not null && _nextBuffer is null && (_pending is null || _pending.Count == 0))
                {
                    _nextBuffer = item.Buffer;
                    _nextLength = item.Length;
                }
                else
                {
                    (_pending ??= new Queue<Outbound>(4)).Enqueue(item);
                }

                _completed = complete;
                if (_draining)
                {
                    return true;
                }

                _draining = true;
            }

            // Never inline here: the writer may be inside the engine, holding a room's lock. A receive loop's handling
            // starts the sender once the engine's call returns; any other writer (a timer, the backplane, a continuation
            // of the engine) hands it to the pool.
            if (!SendersToStart.Defer(this))
            {
                _ = Task.Run(DrainAsync);
            }

            return true;
        }

        /// <summary>Sends what is queued, in order, and ends when the queue is empty (dropping it) or after the close frame.</summary>
        private async Task DrainAsync()
        {
            var ended = false;
            try
            {
                while (true)
                {
                    Outbound item;
                    lock (_gate)
                    {
                        if (_nextBuffer is not null)
                        {
                            item = new Outbound(_nextBuffer, _nextLength, null, null);
                            _nextBuffer = null;
                        }
                        else if (_pending is null || !_pending.TryDequeue(out item))
                        {
                            // Nothing left to send: an idle connection keeps no queue and no task.
                            _pending = null;
                            EndDraining();
                            ended = true; // from here another sender may start: the finally below must not end it
                            return;
                        }
                    }

                    if (item.Buffer is null)
                    {
                        if (_socket.State is WebSocketState.Open or WebSocketState.CloseReceived)
                        {
                            await _socket.CloseOutputAsync(item.CloseStatus!.Value, item.CloseDescription, _receiveAbort.Token).ConfigureAwait(false);
                        }

                        ArmReceiveAbort();
                        _receiveAbort.CancelAfter(CloseHandshakeTimeout);
                        return; // the close is the last frame (what follows is returned to the pool by Dispose)
                    }

                    try
                    {
                        Interlocked.Decrement(ref _queued);
                        Interlocked.Add(ref _queuedBytes, -item.Length);
                        if (_socket.State == WebSocketState.Open)
                        {
                            // Active from the moment the frame is handed to the socket: recorded after the send, it could
                            // land after the client had the frame and moved on (a continuation run late on a busy machine),
                            // so a client could not tell from what it received when the connection was last active.
                            Volatile.Write(ref _lastActivity, _time.GetTimestamp());
                            await _socket.SendAsync(item.Buffer.AsMemory(0, item.Length), WebSocketMessageType.Text, true, Io).ConfigureAwait(false);
                        }
                    }
                    finally
                    {
                        ArrayPool<byte>.Shared.Return(item.Buffer);
                    }
                }
            }
            catch (WebSocketException)
            {
                ArmReceiveAbort();
                await _receiveAbort.CancelAsync().ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // Aborted: the receive loop ends too.
            }
            catch (ObjectDisposedException)
            {
                // The socket is gone.
            }
            finally
            {
                if (!ended)
                {
                    lock (_gate)
                    {
                        EndDraining(); // after the close frame, or a failed or aborted send
                    }
                }
            }
        }

        /// <summary>Marks the sender ended (under <see cref="_gate"/>) and releases a receive loop waiting for it.</summary>
        private void EndDraining()
        {
            _draining = false;
            _drained?.TrySetResult();
        }

        private readonly record struct Outbound(byte[]? Buffer, int Length, WebSocketCloseStatus? CloseStatus, string? CloseDescription);

        /// <summary>
        /// The senders a receive loop's handling of one message started, collected on its thread and run there once the
        /// engine's call has returned: relaying a frame costs no hand-off to the thread pool, and a reply is out before the
        /// loop reads the client's next frame (docs/performance.md, "Senders started by the receive loop"). One list per
        /// thread, reused.
        /// </summary>
        private static class SendersToStart
        {
            [ThreadStatic]
            private static List<GatewayConnection>? t_collecting;

            [ThreadStatic]
            private static List<GatewayConnection>? t_spare;

            /// <summary>Collects on this thread until <see cref="Start"/>; returns what was collecting before (a nested handling).</summary>
            public static List<GatewayConnection>? Collect()
            {
                var outer = t_collecting;
                var list = t_spare ?? [];
                t_spare = null;
                t_collecting = list;
                return outer;
            }

            /// <summary>Defers <paramref name="connection"/>'s sender to the handling on this thread's stack, if any.</summary>
            public static bool Defer(GatewayConnection connection)
            {
                if (t_collecting is not { } list)
                {
                    return false;
                }

                list.Add(connection);
                return true;
            }

            /// <summary>Stops collecting, restores <paramref name="outer"/>, and runs the collected senders on this thread.</summary>
            public static void Start(List<GatewayConnection>? outer)
            {
                var list = t_collecting!;
                t_collecting = outer;
                foreach (var connection in list)
                {
                    // Until its first asynchronous wait (a send the socket does not take at once); what is written while
                    // it runs is not collected here (t_collecting is the outer handling's, usually none).
                    _ = connection.DrainAsync();
                }

                list.Clear();
                t_spare ??= list;
            }
        }
    }
}
