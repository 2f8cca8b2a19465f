using System.Net.WebSockets;

namespace Talki.Signalling.Emulator;

/// <summary>One emulated WebSocket connection: its identity, its socket (once <c>$connect</c> completed) and its timers.</summary>
internal sealed class EmulatorConnection : IDisposable
{
    private const int Connecting = 0;
    private const int Open = 1;
    private const int Closing = 2;

    /// <summary>How long a server-initiated close waits for the client's close frame before aborting (a transport bound, on the real clock).</summary>
    private static readonly TimeSpan CloseHandshakeTimeout = TimeSpan.FromSeconds(5);

    private readonly SemaphoreSlim _sendLock = new(1, 1);
    private readonly TimeProvider _time;
    private int _state = Connecting;
    private long _lastActiveTicks;
    private WebSocket? _socket;
    private ITimer? _idleTimer;
    private ITimer? _durationTimer;
    private TimeSpan _idleTimeout;
    private readonly List<Task> _inFlight = [];

    public EmulatorConnection(string id, DateTimeOffset connectedAt, string sourceIp, string? userAgent, TimeProvider time)
    {
        Id = id;
        ConnectedAt = connectedAt;
        _lastActiveTicks = connectedAt.UtcTicks;
        SourceIp = sourceIp;
        UserAgent = userAgent;
        _time = time;
    }

    public string Id { get; }

    public DateTimeOffset ConnectedAt { get; }

    public string SourceIp { get; }

    public string? UserAgent { get; }

    /// <summary>Gets or sets the authorizer's context, stringified (<c>$context.authorizer.*</c>; <c>principalId</c> included).</summary>
    public IReadOnlyDictionary<string, string> AuthorizerContext { get; set; } = new Dictionary<string, string>(StringComparer.Ordinal);

    /// <summary>Tracks an integration call in flight for this connection (frames are dispatched concurrently).</summary>
    public void Track(Task call)
    {
        lock (_inFlight)
        {
            _inFlight.RemoveAll(t => t.IsCompleted);
            _inFlight.Add(call);
        }
    }

    /// <summary>Completes when every tracked integration call has ended.</summary>
    public Task InFlightAsync()
    {
        lock (_inFlight)
        {
            return Task.WhenAll(_inFlight);
        }
    }

    public DateTimeOffset LastActiveAt => new(Interlocked.Read(ref _lastActiveTicks), TimeSpan.Zero);

    /// <summary>Gets whether <c>$connect</c> completed and the connection has not started closing.</summary>
    public bool IsOpen => Volatile.Read(ref _state) == Open;

    /// <summary>Gets the close status reported to <c>$disconnect</c>.</summary>
    public WebSocketCloseStatus? DisconnectStatus { get; private set; }

    /// <summary>Gets the close reason reported to <c>$disconnect</c>.</summary>
    public string DisconnectReason { get; private set; } = string.Empty;

    /// <summary>Completes when the connection's handler has finished, <c>$disconnect</c> included.</summary>
    public TaskCompletionSource Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Marks the connection open on its accepted socket and starts the idle and duration timers.</summary>
    public void Opened(WebSocket socket, TimeSpan idleTimeout, TimeSpan maxDuration)
    {
        _socket = socket;
        _idleTimeout = idleTimeout;
        Volatile.Write(ref _state, Open);
        _idleTimer = _time.CreateTimer(static s => _ = ((EmulatorConnection)s!).CloseAsync(WebSocketCloseStatus.EndpointUnavailable, "Going away"), this, idleTimeout, Timeout.InfiniteTimeSpan);
        _durationTimer = _time.CreateTimer(static s => _ = ((EmulatorConnection)s!).CloseAsync(WebSocketCloseStatus.EndpointUnavailable, "Going away"), this, maxDuration, Timeout.InfiniteTimeSpan);
    }

    /// <summary>Records a data message: updates <see cref="LastActiveAt"/> and, when asked, restarts the idle timer.</summary>
    public void Active(bool resetIdle)
    {
        Interlocked.Exchange(ref _lastActiveTicks, _time.GetUtcNow().UtcTicks);
        if (resetIdle && IsOpen)
        {
            _idleTimer?.Change(_idleTimeout, Timeout.InfiniteTimeSpan);
        }
    }

    /// <summary>Sends one text message, in frames of at most <paramref name="maxFrameBytes"/>; false when the connection is not open.</summary>
    public async Task<bool> SendAsync(ReadOnlyMemory<byte> payload, int maxFrameBytes, CancellationToken cancellationToken)
    {
        if (!IsOpen || _socket is null)
        {
            return false;
        }

        await _sendLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (!IsOpen || _socket.State != WebSocketState.Open)
            {
                return false;
            }

            var offset = 0;
            do
            {
                var length = Math.Min(maxFrameBytes, payload.Length - offset);
                var last = offset + length == payload.Length;
                await _socket.SendAsync(payload.Slice(offset, length), WebSocketMessageType.Text, last, cancellationToken).ConfigureAwait(false);
                offset += length;
            }
            while (offset < payload.Length);
            return true;
        }
        catch (Exception exception) when (IsSocketGone(exception) && !(exception is OperationCanceledException && cancellationToken.IsCancellationRequested))
        {
            // Gone meanwhile; the caller's own cancellation still propagates.
            return false;
        }
        finally
        {
            _sendLock.Release();
        }
    }

    /// <summary>
    /// Starts a server-initiated close (idle, duration, DELETE, quota, shutdown): sends the close frame; the receive loop
    /// then reads the client's close frame and ends. False when the connection was not open.
    /// </summary>
    public async Task<bool> CloseAsync(WebSocketCloseStatus status, string reason)
    {
        if (Interlocked.CompareExchange(ref _state, Closing, Open) != Open)
        {
            return false;
        }

        DisconnectStatus = status;
        DisconnectReason = reason;
        StopTimers();
        var socket = _socket!;
        await _sendLock.WaitAsync().ConfigureAwait(false);
        try
        {
            await socket.CloseOutputAsync(status, reason, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception exception) when (IsSocketGone(exception))
        {
            // The socket went away meanwhile (the client's side closed or it was aborted): nothing is left to close.
            socket.Abort();
            return true;
        }
        finally
        {
            _sendLock.Release();
        }

        _ = AbortUnlessClosedAsync(socket);
        return true;
    }

    /// <summary>Records a client-initiated close; false when the server had already started closing.</summary>
    public bool ClientClosed(WebSocketCloseStatus? status, string? reason)
    {
        if (Interlocked.CompareExchange(ref _state, Closing, Open) != Open)
        {
            return false;
        }

        DisconnectStatus = status ?? WebSocketCloseStatus.Empty;
        DisconnectReason = reason ?? string.Empty;
        StopTimers();
        return true;
    }

    /// <summary>Completes the close handshake the client started.</summary>
    public async Task AcknowledgeCloseAsync()
    {
        var socket = _socket!;
        await _sendLock.WaitAsync().ConfigureAwait(false);
        try
        {
            if (socket.State == WebSocketState.CloseReceived)
            {
                await socket.CloseOutputAsync(DisconnectStatus ?? WebSocketCloseStatus.NormalClosure, DisconnectReason, CancellationToken.None).ConfigureAwait(false);
            }
        }
        catch (Exception exception) when (IsSocketGone(exception))
        {
            socket.Abort();
        }
        finally
        {
            _sendLock.Release();
        }
    }

    /// <summary>Marks the connection ended (also when the socket failed without a close frame).</summary>
    public void Ended()
    {
        if (Interlocked.Exchange(ref _state, Closing) == Open)
        {
            DisconnectStatus ??= WebSocketCloseStatus.Empty;
            DisconnectReason = "Connection lost";
        }

        StopTimers();
    }

    public void Dispose()
    {
        StopTimers();
        _socket?.Dispose();
        // _sendLock is not disposed: a racing close (idle timer, DELETE, shutdown) may still be waiting on it, and a
        // SemaphoreSlim whose wait handle is never used holds nothing to release.
    }

    private void StopTimers()
    {
        _idleTimer?.Dispose();
        _durationTimer?.Dispose();
    }

    private static async Task AbortUnlessClosedAsync(WebSocket socket)
    {
        try
        {
            await Task.Delay(CloseHandshakeTimeout, TimeProvider.System).ConfigureAwait(false);
            if (socket.State is not (WebSocketState.Closed or WebSocketState.Aborted))
            {
                socket.Abort();
            }
        }
        catch (ObjectDisposedException)
        {
            // already gone
        }
    }

    /// <summary>
    /// Whether <paramref name="exception"/> from a socket operation means the connection is gone (closed by the client, lost,
    /// or aborted). ManagedWebSocket reports an operation on an aborted socket as an <see cref="OperationCanceledException"/>
    /// around the <see cref="ObjectDisposedException"/> (dotnet/runtime, ManagedWebSocket.SendFrameLockAcquiredNonCancelableAsync;
    /// seen in CI when the fixture closed every connection at the end of a run).
    /// </summary>
    internal static bool IsSocketGone(Exception exception)
        => exception is WebSocketException or IOException or ObjectDisposedException or OperationCanceledException;
}
