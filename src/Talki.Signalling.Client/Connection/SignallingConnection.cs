using System.Buffers;
using System.Net;
using System.Net.WebSockets;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Polly;
using Polly.Retry;
using Talki.Signalling.Http;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Client.Connection;

/// <summary>What the connection reports to its owner; called in order, never concurrently.</summary>
internal interface ISignallingConnectionHandler
{
    /// <summary>A message from the server (the <c>welcome</c> of every (re)connection included).</summary>
    Task OnMessageAsync(ServerMessage message, bool rejoined);

    /// <summary>
    /// A (re)connection of a member that waits for admission opened (and said hello in protocol version 3; in version 4 the
    /// connect stands for it): the server tells it nothing until the admin decides; its <c>welcome</c> comes with the
    /// admission, through <see cref="OnMessageAsync"/>.
    /// </summary>
    void OnAwaitingAdmission(TicketResponse ticket);

    /// <summary>The socket's state changed; <paramref name="reason"/> says why it closed or is reconnecting.</summary>
    void OnStateChanged(TalkiConnectionState state, SignallingError? reason);

    /// <summary>A frame that is not valid protocol JSON; <paramref name="concerning"/> is the member it came from, when readable.</summary>
    void OnMalformedFrame(string detail, MemberId? concerning);

    /// <summary>The server refused a message we sent (<paramref name="requestType"/> from the correlation id, when known).</summary>
    void OnServerError(ErrorMessage error, string? requestType);

    /// <summary>Whether a message queued before a rejoin is still worth sending after it.</summary>
    bool ShouldSendAfterRejoin(ClientMessage message);
}

/// <summary>
/// The signalling WebSocket (<see cref="ClientWebSocket"/>, in .NET and in the browser): <c>hello</c>/<c>welcome</c>, typed
/// messages in order, correlation ids on everything sent, a <c>ping</c> well before the gateways' 10-minute idle limit, and
/// automatic reconnect with jittered exponential backoff (Polly) that fetches a fresh ticket for every attempt. Messages sent
/// while the socket is not open are queued (bounded) and flushed after the next <c>welcome</c>. Bad frames never throw: an
/// unknown message type is logged and skipped, a malformed frame is reported to the handler.
/// </summary>
internal sealed partial class SignallingConnection : IAsyncDisposable
{
    private const int MaxTrackedRequests = 256;

    /// <summary>How many recently sent messages are kept for a replay after a resume.</summary>
    private const int MaxReplayed = 128;

    /// <summary>
    /// How far back before a drop was noticed sent messages are replayed after a resume: a socket that dies does not say so
    /// at once, and what was written into it meanwhile is lost (the server's default grace period: a drop noticed later
    /// than that cannot resume anyway).
    /// </summary>
    private static readonly TimeSpan ReplayWindow = TimeSpan.FromSeconds(20);

    /// <summary>The longest suspension a <c>peer_resumed</c> is taken to report (the server's grace period is at most 10 minutes).</summary>
    private static readonly TimeSpan MaxSuspension = TimeSpan.FromHours(1);
    private static readonly HashSet<string> KnownServerTypes = TalkiJsonContext.Default.ServerMessage.PolymorphismOptions!.DerivedTypes
        .Select(d => (string)d.TypeDiscriminator!).ToHashSet(StringComparer.Ordinal);

    private readonly Func<CancellationToken, Task<SignallingResult<TicketResponse>>> _tickets;
    private readonly ISignallingConnectionHandler _handler;
    private readonly TalkiClientOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Func<Uri, CancellationToken, Task<WebSocket>> _connect;
    private readonly ResiliencePipeline _reconnect;
    private readonly object _sync = new();
    private readonly LinkedList<Queued> _queue = new();
    private readonly LinkedList<Sent> _recent = new();
    private readonly SemaphoreSlim _sendLock = new(1, 1);
    private readonly CancellationTokenSource _stop = new();
    private readonly Dictionary<string, string> _requestTypes = new(StringComparer.Ordinal);
    private readonly Queue<string> _requestOrder = new();
    private readonly DeliveryIds _delivered = new();
    private readonly TaskCompletionSource<SignallingError?> _firstWelcome = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private WebSocket? _socket;
    private ITimer? _ping;
    private bool _welcomed; // whether the current socket has had its welcome (read and written by the receive loop only)
    private SignallingError? _terminal;
    private MemberId _self;
    private long? _resumeEpoch;
    private long _droppedAt;
    private long _nextId;
    private long _generation;
    private Task _run = Task.CompletedTask;
    private int _disposed;

    public SignallingConnection(
        Func<CancellationToken, Task<SignallingResult<TicketResponse>>> tickets,
        ISignallingConnectionHandler handler,
        TalkiClientOptions options,
        TimeProvider time,
        ILogger logger,
        Func<Uri, CancellationToken, Task<WebSocket>>? connect = null)
    {
        _tickets = tickets;
        _handler = handler;
        _options = options;
        _time = time;
        _logger = logger;
        _connect = connect ?? ConnectClientWebSocketAsync;
        var builder = new ResiliencePipelineBuilder { TimeProvider = time };
        if (options.MaxReconnectAttempts > 0)
        {
            builder.AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = new PredicateBuilder().Handle<TransientConnectException>(),
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = options.ReconnectBaseDelay,
                MaxDelay = options.ReconnectMaxDelay,
                MaxRetryAttempts = options.MaxReconnectAttempts,
                OnRetry = args =>
                {
                    LogRetry(_logger, args.AttemptNumber + 1, args.RetryDelay, args.Outcome.Exception?.Message);
                    return default;
                },
            });
        }

        _reconnect = builder.Build();
    }

    /// <summary>Gets the socket's state (written under the lock; the owner's public state follows <see cref="ISignallingConnectionHandler.OnStateChanged"/>).</summary>
    public TalkiConnectionState State { get; private set; } = TalkiConnectionState.Connecting;

    /// <summary>Gets how many queued messages were dropped (queue full, or stale after a rejoin).</summary>
    public int DroppedMessages { get; private set; }

    /// <summary>
    /// Connects with the first ticket and completes with <see langword="null"/> at the first <c>welcome</c>, or once a member
    /// that waits for admission (protocol version 3 or later: no welcome until it is admitted) is connected; or with the
    /// reason it failed.
    /// </summary>
    public async Task<SignallingError?> StartAsync(TicketResponse first, CancellationToken cancellationToken)
    {
        _self = first.Member;
        _run = Task.Run(() => RunAsync(first), CancellationToken.None);
        using var registration = cancellationToken.Register(() => _firstWelcome.TrySetCanceled(cancellationToken));
        return await _firstWelcome.Task.ConfigureAwait(false);
    }

    /// <summary>Sends a message, or queues it while the socket is not open. Returns <see langword="false"/> once closed for good.</summary>
    public ValueTask<bool> SendAsync(ClientMessage message) => SendAsync(message, copy: false);

    /// <summary>Sends or queues a message; a <paramref name="copy"/> (a signal sent again to a resumed peer) is never replayed itself.</summary>
    private async ValueTask<bool> SendAsync(ClientMessage message, bool copy)
    {
        if (message.Id is null)
        {
            message = message with { Id = "c" + Interlocked.Increment(ref _nextId).ToString(System.Globalization.CultureInfo.InvariantCulture) };
        }

        var queued = new Queued(message, JsonSerializer.SerializeToUtf8Bytes(message, TalkiJsonContext.Default.ClientMessage), Interlocked.Read(ref _generation), copy);
        lock (_sync)
        {
            if (State == TalkiConnectionState.Disconnected)
            {
                return false;
            }

            if (State != TalkiConnectionState.Connected || _queue.Count > 0)
            {
                Enqueue(queued);
                return true;
            }
        }

        await SendNowAsync(queued).ConfigureAwait(false);
        return true;
    }

    /// <summary>Closes the socket for good (after sending <c>leave</c> when <paramref name="leave"/>).</summary>
    public async Task CloseAsync(bool leave)
    {
        if (leave && State == TalkiConnectionState.Connected)
        {
            await SendAsync(new LeaveMessage()).ConfigureAwait(false);
        }

        lock (_sync)
        {
            _terminal ??= new SignallingError(SignallingErrorCode.Internal, "Closed by the application.");
        }

        var socket = _socket;
        if (socket is { State: WebSocketState.Open })
        {
            try
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2), _time);
                await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "bye", timeout.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or ObjectDisposedException)
            {
                // Already gone.
            }
        }

        await _stop.CancelAsync().ConfigureAwait(false);
        try
        {
            await _run.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Stopped.
        }
    }

    /// <summary>Aborts the socket without a close handshake (a network drop); the connection reconnects.</summary>
    internal void AbortSocket() => _socket?.Abort();

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await CloseAsync(leave: false).ConfigureAwait(false);
        _stop.Dispose();
        _sendLock.Dispose();
    }

    private static async Task<WebSocket> ConnectClientWebSocketAsync(Uri url, CancellationToken cancellationToken)
    {
        var socket = new ClientWebSocket();
        if (!OperatingSystem.IsBrowser())
        {
            socket.Options.CollectHttpResponseDetails = true;
        }

        try
        {
            await socket.ConnectAsync(url, cancellationToken).ConfigureAwait(false);
            return socket;
        }
        catch (WebSocketException ex)
        {
            var status = OperatingSystem.IsBrowser() ? 0 : (int)socket.HttpStatusCode;
            socket.Dispose();
            throw status switch
            {
                (int)HttpStatusCode.Gone => new TerminalConnectException(new SignallingError(SignallingErrorCode.RoomSealed, "The room is sealed.")),
                // A refusal says nothing of why on API Gateway (its authorizer can only deny): a new ticket tells whether
                // the member was denied (final), or only admitted since its ticket said it waits (protocol version 4).
                (int)HttpStatusCode.Forbidden => new TransientConnectException($"The server refused the connection (403); asking for a new ticket: {ex.Message}", ex),
                _ => new TransientConnectException($"The WebSocket could not be opened{(status == 0 ? string.Empty : $" ({status})")}: {ex.Message}", ex),
            };
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private async Task RunAsync(TicketResponse first)
    {
        var stop = _stop.Token;
        TicketResponse? ticket = first;
        var rejoin = false;
        SignallingError? reason = null;
        try
        {
            while (!stop.IsCancellationRequested)
            {
                (WebSocket Socket, WelcomeMessage? Welcome, TicketResponse Ticket) opened;
                try
                {
                    opened = await _reconnect.ExecuteAsync(
                        async ct =>
                        {
                            var t = ticket ?? await NextTicketAsync(ct).ConfigureAwait(false);
                            ticket = null;
                            return await OpenAsync(t, ct).ConfigureAwait(false);
                        },
                        stop).ConfigureAwait(false);
                }
                catch (TerminalConnectException ex)
                {
                    reason = ex.Error;
                    return;
                }
                catch (TransientConnectException ex)
                {
                    reason = new SignallingError(SignallingErrorCode.ServiceUnavailable, $"Gave up reconnecting: {ex.Message}");
                    return;
                }

                reason = await RunSessionAsync(opened.Socket, opened.Welcome, opened.Ticket, rejoin, stop).ConfigureAwait(false);
                if (reason is not null)
                {
                    return;
                }

                rejoin = true;
                SetState(TalkiConnectionState.Reconnecting, new SignallingError(SignallingErrorCode.ServiceUnavailable, "The signalling socket dropped; reconnecting."));
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            // Closed by the application.
        }
#pragma warning disable CA1031 // The loop must never fault into the app; the failure closes the connection with a reason.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            LogUnexpected(_logger, ex);
            reason = new SignallingError(SignallingErrorCode.Internal, ex.Message);
        }
        finally
        {
            lock (_sync)
            {
                reason ??= _terminal;
                DroppedMessages += _queue.Count;
                _queue.Clear();
            }

            _firstWelcome.TrySetResult(reason ?? new SignallingError(SignallingErrorCode.Internal, "The connection closed."));
            SetState(TalkiConnectionState.Disconnected, reason);
        }
    }

    private async Task<TicketResponse> NextTicketAsync(CancellationToken cancellationToken)
    {
        var result = await _tickets(cancellationToken).ConfigureAwait(false);
        if (result.TryGetValue(out var ticket, out var error))
        {
            return ticket;
        }

        // A server or transport hiccup, or a ticket that aged during the backoff, is worth another attempt; a refusal is final.
        throw error.Code is SignallingErrorCode.ServiceUnavailable or SignallingErrorCode.Internal or SignallingErrorCode.TicketExpired
            or SignallingErrorCode.TicketInvalid or SignallingErrorCode.KnockRateLimited
            ? new TransientConnectException($"{error.Code.ToWireName()}: {error.Message}")
            : new TerminalConnectException(error);
    }

    private async Task<(WebSocket, WelcomeMessage?, TicketResponse)> OpenAsync(TicketResponse ticket, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_options.ConnectTimeout);
        WebSocket? socket = null;
        try
        {
            var version = NegotiatedVersion(ticket.WebSocketUrl);
            if (ticket.Status == AdmissionStatus.Pending && version >= ProtocolVersion.WaitingConnect)
            {
                // Version 4: the connect stands for the hello (wait=1); nothing is sent until the welcome (the admission) or
                // denied comes. A member admitted since its ticket was issued is refused at the connect and asks again.
                socket = await _connect(WithWait(ticket.WebSocketUrl), timeout.Token).ConfigureAwait(false);
                return (socket, null, ticket);
            }

            socket = await _connect(WithResume(ticket.WebSocketUrl, _resumeEpoch), timeout.Token).ConfigureAwait(false);
            var hello = JsonSerializer.SerializeToUtf8Bytes<ClientMessage>(new HelloMessage { Version = version, Id = "hello" }, TalkiJsonContext.Default.ClientMessage);
            await socket.SendAsync(hello, WebSocketMessageType.Text, true, timeout.Token).ConfigureAwait(false);
            if (ticket.Status == AdmissionStatus.Pending)
            {
                // Version 3 (a server that says so in the ticket speaks it): a waiting member's hello is answered when the admin
                // decides, by its welcome or by denied; the session reads them, and any refusal, as they come.
                return (socket, null, ticket);
            }

            var first = await ReceiveFrameAsync(socket, timeout.Token).ConfigureAwait(false);
            switch (first is null ? null : Parse(first.Value))
            {
                case WelcomeMessage welcome:
                    return (socket, welcome, ticket);
                case ErrorMessage { Code: SignallingErrorCode.UnsupportedVersion or SignallingErrorCode.Denied or SignallingErrorCode.RoomSealed } refusal:
                    socket.Dispose();
                    throw new TerminalConnectException(new SignallingError(refusal.Code, refusal.Message));
                default:
                    socket.Dispose();
                    throw new TransientConnectException("The server did not answer hello with welcome.");
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            socket?.Dispose();
            throw new TransientConnectException("Opening the signalling socket timed out.");
        }
        catch (Exception ex) when (ex is WebSocketException or HttpRequestException or IOException)
        {
            socket?.Dispose();
            throw new TransientConnectException($"The signalling socket failed while opening: {ex.Message}", ex);
        }
    }

    /// <summary>
    /// Runs one connected session; returns the final reason, or <see langword="null"/> to reconnect. Without a
    /// <paramref name="welcome"/> the member waits for admission: its welcome comes later, as a message of the session.
    /// </summary>
    private async Task<SignallingError?> RunSessionAsync(WebSocket socket, WelcomeMessage? welcome, TicketResponse ticket, bool rejoin, CancellationToken stop)
    {
        _socket = socket;
        Interlocked.Increment(ref _generation);
        var pingInterval = welcome is null ? _options.PingInterval : PingIntervalFor(_options.PingInterval, welcome);
        using var ping = _time.CreateTimer(static state => ((SignallingConnection)state!).Ping(), this, pingInterval, pingInterval);
        _ping = ping;
        _delivered.Clear(); // delivery ids are per connection: a gateway only duplicates on the socket it pushed to
        _welcomed = welcome is not null;
        try
        {
            if (welcome is not null)
            {
                _delivered.IsNew(welcome.MessageId);

                // A resumed connection continues the epoch the server knows (the next reconnect asks for it again): every
                // message queued while the socket was down is still valid, its links were never replaced.
                _resumeEpoch = welcome.You.Epoch;
                ReplayOrForget(rejoin && welcome.Resumed);
                await _handler.OnMessageAsync(welcome, rejoin).ConfigureAwait(false);
                await FlushQueueAsync(rejoin && !welcome.Resumed).ConfigureAwait(false);
            }
            else
            {
                // Waiting for admission: the server gave this connection no epoch to resume; a drop rejoins with a new ticket.
                _resumeEpoch = null;
                ReplayOrForget(resumed: false);
                _handler.OnAwaitingAdmission(ticket);
                await FlushQueueAsync(rejoin).ConfigureAwait(false);
            }

            // Connected first: whoever awaits the first welcome (JoinRoomAsync, CreateRoomAsync) continues on another thread
            // and must find the call connected, not still connecting.
            _handler.OnStateChanged(TalkiConnectionState.Connected, null);
            _firstWelcome.TrySetResult(null);

            // Nothing to do until the frames that set up links arrive: meanwhile, once per process, take their first-run costs.
            _ = ProtocolWarmUp.RunOnceAsync();
            while (!stop.IsCancellationRequested)
            {
                ReadOnlyMemory<byte>? frame;
                try
                {
                    frame = await ReceiveFrameAsync(socket, stop).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is WebSocketException or IOException or ObjectDisposedException
                    || (ex is OperationCanceledException && !stop.IsCancellationRequested))
                {
                    LogDropped(_logger, ex.Message);
                    break;
                }

                if (frame is null)
                {
                    break; // closed by the server
                }

                if (frame.Value.IsEmpty)
                {
                    continue; // skipped (too large, binary): already reported
                }

                await DispatchAsync(frame.Value).ConfigureAwait(false);
            }
        }
        finally
        {
            lock (_sync)
            {
                if (State == TalkiConnectionState.Connected)
                {
                    State = TalkiConnectionState.Reconnecting; // sends from now on are queued
                }
            }

            _socket = null;
            _ping = null;
            Interlocked.Exchange(ref _droppedAt, _time.GetTimestamp());
            socket.Dispose();
        }

        lock (_sync)
        {
            return _terminal ?? (stop.IsCancellationRequested ? new SignallingError(SignallingErrorCode.Internal, "Closed by the application.") : null);
        }
    }

    /// <summary>
    /// The version to speak with the server that issued <paramref name="url"/>: its <c>v</c> (the version that server speaks
    /// at most) when lower than this package's, else this package's. A URL without one says nothing: this package's.
    /// </summary>
    internal static int NegotiatedVersion(Uri url)
    {
        foreach (var pair in url.Query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            if (pair.StartsWith("v=", StringComparison.Ordinal)
                && int.TryParse(pair.AsSpan(2), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var server)
                && server >= ProtocolVersion.Minimum)
            {
                return Math.Min(server, ProtocolVersion.Current);
            }
        }

        return ProtocolVersion.Current;
    }

    /// <summary>The URL of a waiting member's connect (protocol version 4): <c>wait=1</c> added.</summary>
    internal static Uri WithWait(Uri url)
    {
        var builder = new UriBuilder(url);
        var query = builder.Query.TrimStart('?');
        builder.Query = (query.Length == 0 ? string.Empty : query + "&") + ProtocolVersion.WaitParameter + "=1";
        return builder.Uri;
    }

    /// <summary>The WebSocket URL with <c>resume={epoch}</c> appended when this connection had a welcome before (the server decides whether it resumes).</summary>
    internal static Uri WithResume(Uri url, long? epoch)
    {
        if (epoch is not { } resume)
        {
            return url;
        }

        var builder = new UriBuilder(url);
        var query = builder.Query.TrimStart('?');
        builder.Query = (query.Length == 0 ? string.Empty : query + "&") + "resume=" + resume.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return builder.Uri;
    }

    private async Task DispatchAsync(ReadOnlyMemory<byte> frame)
    {
        var message = Parse(frame);
        if (message is not null && !_delivered.IsNew(message.MessageId))
        {
            LogDuplicate(_logger, message.GetType().Name);
            return; // a retried push delivered twice: the first copy was handled
        }

        switch (message)
        {
            case null:
                return;
            case RoomSealedMessage:
                lock (_sync)
                {
                    _terminal ??= new SignallingError(SignallingErrorCode.RoomSealed, "The room sealed; the call goes on peer to peer.");
                }

                break;
            case WelcomeMessage welcome when !_welcomed:
                // Protocol version 3: the admission of a member that waited (its hello had no answer until now). The
                // connection now has an epoch to resume, and the server's idle limit.
                _welcomed = true;
                _resumeEpoch = welcome.You.Epoch;
                var interval = PingIntervalFor(_options.PingInterval, welcome);
                _ping?.Change(interval, interval);
                break;
            case ErrorMessage { Code: SignallingErrorCode.UnsupportedVersion or SignallingErrorCode.Denied or SignallingErrorCode.RoomSealed } refusal when !_welcomed:
                // A waiting member's hello refused (the answer a welcome-first connection gets while opening): final.
                lock (_sync)
                {
                    _terminal ??= new SignallingError(refusal.Code, refusal.Message);
                }

                return; // the session's end reports it, as a refusal while opening is
            case DeniedMessage denied when denied.Member.Id == _self:
                lock (_sync)
                {
                    _terminal ??= new SignallingError(SignallingErrorCode.Denied, "The admin denied the request to join.");
                }

                break;
            case ErrorMessage error:
                string? requestType = null;
                if (error.Id is not null)
                {
                    lock (_sync)
                    {
                        _requestTypes.TryGetValue(error.Id, out requestType);
                    }
                }

                _handler.OnServerError(error, requestType);
                return;
            case PongMessage:
                return;
            case PeerResumedMessage resumed:
                await ReplayToAsync(resumed).ConfigureAwait(false);
                return;
        }

        await _handler.OnMessageAsync(message, rejoined: false).ConfigureAwait(false);
    }

    private ServerMessage? Parse(ReadOnlyMemory<byte> frame)
    {
        try
        {
            return JsonSerializer.Deserialize(frame.Span, TalkiJsonContext.Default.ServerMessage)
                ?? throw new JsonException("null message");
        }
        catch (JsonException ex)
        {
            var (type, from) = Peek(frame.Span);
            if (type is not null && !KnownServerTypes.Contains(type))
            {
                LogUnknownType(_logger, type.Length > 64 ? type[..64] : type);
                return null;
            }

            _handler.OnMalformedFrame($"A {(type is null ? "frame" : $"'{type}' message")} from the server is not valid protocol JSON: {ex.Message}", from);
            return null;
        }
    }

    private static (string? Type, MemberId? From) Peek(ReadOnlySpan<byte> frame)
    {
        try
        {
            var reader = new Utf8JsonReader(frame);
            using var document = JsonDocument.ParseValue(ref reader);
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                return (null, null);
            }

            string? type = document.RootElement.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
            MemberId? from = document.RootElement.TryGetProperty("from", out var f) && f.ValueKind == JsonValueKind.String && MemberId.TryParse(f.GetString(), out var id) ? id : null;
            return (type, from);
        }
        catch (JsonException)
        {
            return (null, null);
        }
    }

    /// <summary>Receives one text message; <see langword="null"/> when the socket closed; empty when the message was skipped.</summary>
    private async Task<ReadOnlyMemory<byte>?> ReceiveFrameAsync(WebSocket socket, CancellationToken cancellationToken)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(16 * 1024);
        try
        {
            var length = 0;
            var skipping = false;
            while (true)
            {
                if (length == buffer.Length && !skipping)
                {
                    var larger = ArrayPool<byte>.Shared.Rent(buffer.Length * 2);
                    buffer.AsSpan(0, length).CopyTo(larger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = larger;
                }

                var result = await socket.ReceiveAsync(skipping ? buffer.AsMemory() : buffer.AsMemory(length), cancellationToken).ConfigureAwait(false);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    if (socket.State == WebSocketState.CloseReceived)
                    {
                        try
                        {
                            await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, cancellationToken).ConfigureAwait(false);
                        }
                        catch (WebSocketException)
                        {
                            // The server is gone already.
                        }
                    }

                    LogClosedByServer(_logger, socket.CloseStatus, socket.CloseStatusDescription);
                    return null;
                }

                if (!skipping)
                {
                    length += result.Count;
                    if (length > _options.MaxInboundMessageBytes || result.MessageType == WebSocketMessageType.Binary)
                    {
                        skipping = true;
                    }
                }

                if (result.EndOfMessage)
                {
                    if (skipping)
                    {
                        _handler.OnMalformedFrame(result.MessageType == WebSocketMessageType.Binary ? "A binary frame from the server was skipped." : $"A message over {_options.MaxInboundMessageBytes} bytes from the server was skipped.", null);
                        return ReadOnlyMemory<byte>.Empty;
                    }

                    return buffer.AsSpan(0, length).ToArray();
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Sends what was queued, then opens the connection atomically with the queue found empty.</summary>
    private async Task FlushQueueAsync(bool rejoin)
    {
        while (true)
        {
            Queued next;
            lock (_sync)
            {
                if (_queue.Count == 0)
                {
                    State = TalkiConnectionState.Connected; // later sends go straight out
                    return;
                }

                next = _queue.First!.Value;
                _queue.RemoveFirst();
            }

            if (rejoin && next.Generation < Interlocked.Read(ref _generation) && !_handler.ShouldSendAfterRejoin(next.Message))
            {
                lock (_sync)
                {
                    DroppedMessages++;
                }

                LogStaleDropped(_logger, next.Message.GetType().Name);
                continue;
            }

            await SendNowAsync(next).ConfigureAwait(false);
        }
    }

    private async Task SendNowAsync(Queued item)
    {
        await _sendLock.WaitAsync().ConfigureAwait(false);
        try
        {
            var socket = _socket;
            if (socket is null)
            {
                lock (_sync)
                {
                    Enqueue(item);
                }

                return;
            }

            Track(item.Message);
            await socket.SendAsync(item.Bytes, WebSocketMessageType.Text, true, _stop.Token).ConfigureAwait(false);
            Remember(item);
        }
        catch (Exception ex) when (ex is WebSocketException or IOException or ObjectDisposedException or OperationCanceledException)
        {
            // The socket is going down: keep the message for the next connection.
            lock (_sync)
            {
                if (State != TalkiConnectionState.Disconnected)
                {
                    _queue.AddFirst(item);
                }
            }
        }
        finally
        {
            _sendLock.Release();
        }
    }

    /// <summary>Keeps a sent signal or admission decision for a replay after a resume (what a dying socket swallowed).</summary>
    private void Remember(Queued item)
    {
        if (item.Copy || item.Message is not (SignalMessage or SignalsMessage or AdmitMessage or DenyMessage))
        {
            return;
        }

        lock (_sync)
        {
            _recent.AddLast(new Sent(item, _time.GetTimestamp()));
            while (_recent.Count > MaxReplayed)
            {
                _recent.RemoveFirst();
            }
        }
    }

    /// <summary>
    /// After a resume, puts what was sent on the dropped socket within <see cref="ReplayWindow"/> of the drop back at the
    /// head of the queue, oldest first: a socket swallows what is written into it between its death and its close. What
    /// did arrive arrives twice, which is harmless: a peer drops a description it has seen (its SDP version does not grow)
    /// and a candidate it already has, and the server treats a repeated decision as done. After a fresh rejoin they
    /// belonged to replaced links and are forgotten.
    /// </summary>
    private void ReplayOrForget(bool resumed)
    {
        var droppedAt = Interlocked.Read(ref _droppedAt);
        var replayed = 0;
        lock (_sync)
        {
            if (resumed)
            {
                for (var node = _recent.Last; node is not null; node = node.Previous)
                {
                    if (_time.GetElapsedTime(node.Value.SentAt, droppedAt) <= ReplayWindow)
                    {
                        _queue.AddFirst(node.Value.Item);
                        replayed++;
                    }
                }
            }

            _recent.Clear();
        }

        if (replayed > 0)
        {
            LogReplayed(_logger, replayed);
        }
    }

    /// <summary>
    /// A peer resumed its epoch (<c>peer_resumed</c>): sends it again every signal sent to that epoch since its suspension
    /// began, and within <see cref="ReplayWindow"/> before it (what the server relayed into its dying socket is lost). A
    /// batch's entries for that peer go as signals of their own. What did arrive arrives twice, which the peer drops.
    /// Each signal is sent again once at most, and a copy is never replayed itself: a member that drops and resumes over
    /// and over gets at most one extra copy of what was sent to it, never a stream that would spend this side's rate limit.
    /// </summary>
    private async Task ReplayToAsync(PeerResumedMessage resumed)
    {
        var now = _time.GetTimestamp();
        // A suspension never outlasts the grace period; the clamp only keeps a nonsensical figure from throwing.
        var since = TimeSpan.FromMilliseconds(Math.Clamp(resumed.SuspendedMilliseconds, 0, (long)MaxSuspension.TotalMilliseconds)) + ReplayWindow;
        List<SignalMessage> again = [];
        lock (_sync)
        {
            foreach (var sent in _recent)
            {
                if (_time.GetElapsedTime(sent.SentAt, now) > since || sent.ResentTo?.Contains(resumed.Member) == true)
                {
                    continue;
                }

                var count = again.Count;
                switch (sent.Item.Message)
                {
                    case SignalMessage signal when IsFor(signal, resumed):
                        again.Add(signal);
                        break;
                    case SignalsMessage batch:
                        again.AddRange(batch.Signals.Where(entry => IsFor(entry, resumed)));
                        break;
                }

                if (again.Count > count)
                {
                    (sent.ResentTo ??= []).Add(resumed.Member);
                }
            }
        }

        if (again.Count > 0)
        {
            LogReplayedToPeer(_logger, again.Count, resumed.Member.Value);
        }

        foreach (var signal in again)
        {
            await SendAsync(signal, copy: true).ConfigureAwait(false);
        }

        static bool IsFor(SignalMessage signal, PeerResumedMessage resumed)
            => signal.To == resumed.Member && (signal.ToEpoch is null || signal.ToEpoch == resumed.Epoch);
    }

    private void Enqueue(Queued item)
    {
        _queue.AddLast(item);
        while (_queue.Count > _options.MaxQueuedMessages)
        {
            _queue.RemoveFirst();
            DroppedMessages++;
        }
    }

    private void Track(ClientMessage message)
    {
        if (message.Id is null || message is PingMessage)
        {
            return;
        }

        lock (_sync)
        {
            _requestTypes[message.Id] = message switch
            {
                SignalMessage => "signal",
                AdmitMessage => "admit",
                DenyMessage => "deny",
                LeaveMessage => "leave",
                _ => message.GetType().Name,
            };
            _requestOrder.Enqueue(message.Id);
            while (_requestOrder.Count > MaxTrackedRequests)
            {
                _requestTypes.Remove(_requestOrder.Dequeue());
            }
        }
    }

    /// <summary>
    /// How often a session pings: the configured interval, at most four fifths of the idle limit the server's welcome gives
    /// (a gateway closes a socket silent that long; a timer in a throttled background tab may fire a minute late). A socket
    /// the room's seal closes before its first ping sends none: with the defaults (8 minutes, a 5-minute join window) a call
    /// pings only if its window is longer, and each ping and its pong is a billed message on API Gateway.
    /// </summary>
    /// <param name="configured">The client's <see cref="TalkiClientOptions.PingInterval"/>.</param>
    /// <param name="welcome">The session's welcome.</param>
    /// <returns>The interval.</returns>
    internal static TimeSpan PingIntervalFor(TimeSpan configured, WelcomeMessage welcome)
    {
        if (welcome.IdleTimeoutSeconds is not { } idle || idle <= 0)
        {
            return configured; // an older server: the gateways' documented 10 minutes, which the options' check keeps the interval under
        }

        var cap = TimeSpan.FromSeconds(idle * 0.8);
        return cap < configured ? cap : configured;
    }

    private void Ping()
    {
        if (State == TalkiConnectionState.Connected)
        {
            _ = SendAsync(new PingMessage()).AsTask();
        }
    }

    private void SetState(TalkiConnectionState state, SignallingError? reason)
    {
        lock (_sync)
        {
            if (State == state && state != TalkiConnectionState.Reconnecting)
            {
                return;
            }

            State = state;
        }

        _handler.OnStateChanged(state, reason);
    }

    [LoggerMessage(EventId = 4001, Level = LogLevel.Information, Message = "Reconnecting to the signalling server (attempt {Attempt}) in {Delay}: {Reason}")]
    private static partial void LogRetry(ILogger logger, int attempt, TimeSpan delay, string? reason);

    [LoggerMessage(EventId = 4002, Level = LogLevel.Debug, Message = "Ignored a server message of unknown type '{Type}' (a newer server).")]
    private static partial void LogUnknownType(ILogger logger, string type);

    [LoggerMessage(EventId = 4003, Level = LogLevel.Information, Message = "The signalling socket dropped: {Reason}")]
    private static partial void LogDropped(ILogger logger, string reason);

    [LoggerMessage(EventId = 4004, Level = LogLevel.Information, Message = "The server closed the signalling socket ({Status}: {Description}).")]
    private static partial void LogClosedByServer(ILogger logger, WebSocketCloseStatus? status, string? description);

    [LoggerMessage(EventId = 4009, Level = LogLevel.Debug, Message = "A peer resumed: sending {Count} signals again to {Member} (its dying socket may have swallowed them).")]
    private static partial void LogReplayedToPeer(ILogger logger, int count, string member);

    [LoggerMessage(EventId = 4008, Level = LogLevel.Debug, Message = "Resumed: replaying the {Count} messages sent just before the socket dropped (a dying socket may have swallowed them).")]
    private static partial void LogReplayed(ILogger logger, int count);

    [LoggerMessage(EventId = 4005, Level = LogLevel.Debug, Message = "Dropped a queued {Type}: its link was replaced when the member rejoined.")]
    private static partial void LogStaleDropped(ILogger logger, string type);

    [LoggerMessage(EventId = 4007, Level = LogLevel.Debug, Message = "Dropped a duplicate {Type}: a retried push delivered it twice.")]
    private static partial void LogDuplicate(ILogger logger, string type);

    [LoggerMessage(EventId = 4006, Level = LogLevel.Error, Message = "The signalling connection failed unexpectedly.")]
    private static partial void LogUnexpected(ILogger logger, Exception exception);

    private sealed record Queued(ClientMessage Message, byte[] Bytes, long Generation, bool Copy = false);

    /// <summary>A message kept for replays, and the peers it was sent again to (each gets one copy at most).</summary>
    private sealed class Sent(Queued item, long sentAt)
    {
        public Queued Item { get; } = item;

        public long SentAt { get; } = sentAt;

        public List<MemberId>? ResentTo { get; set; }
    }
}

/// <summary>A connection attempt failed in a way another attempt may fix.</summary>
internal sealed class TransientConnectException : Exception
{
    public TransientConnectException()
    {
    }

    public TransientConnectException(string message)
        : base(message)
    {
    }

    public TransientConnectException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>A connection attempt was refused for good (room sealed, denied, room not found…).</summary>
internal sealed class TerminalConnectException : Exception
{
    public TerminalConnectException()
        : this(new SignallingError(SignallingErrorCode.Internal, "Refused."))
    {
    }

    public TerminalConnectException(string message)
        : this(new SignallingError(SignallingErrorCode.Internal, message))
    {
    }

    public TerminalConnectException(string message, Exception innerException)
        : base(message, innerException) => Error = new SignallingError(SignallingErrorCode.Internal, message);

    public TerminalConnectException(SignallingError error)
        : base(error.Message) => Error = error;

    public SignallingError Error { get; }
}
