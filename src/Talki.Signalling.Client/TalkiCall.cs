using System.Net.WebSockets;
using Microsoft.Extensions.Logging;
using Talki.Signalling.Client.Connection;
using Talki.Signalling.Client.Negotiation;
using Talki.Signalling.Http;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Client;

/// <summary>
/// One member's call: gets a ticket (create or join), keeps the signalling socket (reconnecting with a fresh ticket when it drops;
/// the approval is remembered), answers admission for the admin, and drives the WebRTC mesh (one perfect-negotiation link per
/// remote member over an <see cref="IPeerConnectionFactory"/>). When the room seals the socket closes and the mesh goes on
/// peer to peer, renegotiating in-band over each link's data channel. State changes raise <see cref="Changed"/> and problems
/// raise <see cref="Error"/>, on any thread; nothing from the wire throws into the application.
/// Create it with <see cref="TalkiCallFactory"/>.
/// </summary>
public sealed partial class TalkiCall : IAsyncDisposable, ISignallingConnectionHandler
{
    private readonly TalkiApiClient _api;
    private readonly IPeerConnectionFactory _peers;
    private readonly TalkiClientOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Func<Uri, CancellationToken, Task<WebSocket>>? _connect;
    private readonly object _sync = new();
    private readonly Dictionary<MemberId, MemberView> _members = [];
    private readonly Dictionary<MemberId, MemberView> _pending = [];
    private SignallingConnection? _connection;
    private MeshNegotiator? _mesh;
    private MemberId _self;
    private IReadOnlyList<IceServer> _iceServers = [];
    private bool _admitted;

    internal TalkiCall(TalkiApiClient api, IPeerConnectionFactory peers, TalkiClientOptions options, TimeProvider time, ILogger logger, Func<Uri, CancellationToken, Task<WebSocket>>? connect = null)
    {
        _api = api;
        _peers = peers;
        _options = options;
        _time = time;
        _logger = logger;
        _connect = connect;
    }

    /// <summary>Raised when <see cref="State"/>, the members, the pending admissions or a link changed.</summary>
    public event EventHandler? Changed;

    /// <summary>
    /// Raised for every message from the server once the call has applied it (typed: <see cref="AdmissionRequestMessage"/>,
    /// <see cref="AdmittedMessage"/>, <see cref="PeerLeftMessage"/>, <see cref="RoomSealedMessage"/>…). Errors go to <see cref="Error"/>.
    /// </summary>
    public event EventHandler<ServerMessage>? MessageReceived;

    /// <summary>Raised for a problem: a refusal from the server, a malformed frame, a failed negotiation, a dropped connection.</summary>
    public event EventHandler<TalkiCallErrorEventArgs>? Error;

    /// <summary>Gets where the call stands.</summary>
    public TalkiCallState State { get; private set; }

    /// <summary>Gets why the call failed, was denied or closed, when it did.</summary>
    public SignallingError? FailureReason { get; private set; }

    /// <summary>Gets a value indicating whether the signalling socket is connected now.</summary>
    public bool IsSignallingConnected => _connection?.State == SignallingConnectionState.Open;

    /// <summary>Gets the room, once welcomed.</summary>
    public RoomView? Room { get; private set; }

    /// <summary>Gets this member as the room sees it, once welcomed.</summary>
    public MemberView? Self { get; private set; }

    /// <summary>Gets when the room seals (no more joins or reconnects; the call goes on peer to peer).</summary>
    public DateTimeOffset? SealsAt => Room?.SealsAt;

    /// <summary>Gets the admitted members, this one included.</summary>
    public IReadOnlyList<MemberView> Members
    {
        get
        {
            lock (_sync)
            {
                return [.. _members.Values];
            }
        }
    }

    /// <summary>Gets the members waiting for the admin's answer (for the admin).</summary>
    public IReadOnlyList<MemberView> PendingAdmissions
    {
        get
        {
            lock (_sync)
            {
                return [.. _pending.Values];
            }
        }
    }

    /// <summary>Gets the links of the mesh, one per remote member.</summary>
    public IReadOnlyList<PeerLinkState> Links => _mesh?.Links ?? [];

    /// <summary>Gets how many outbound messages were dropped (the reconnect queue overflowed, or they belonged to links replaced by a rejoin).</summary>
    public int DroppedMessages => _connection?.DroppedMessages ?? 0;

    /// <summary>Creates a room (this member is its admin) and connects.</summary>
    /// <param name="cancellationToken">Cancels the start (not the call).</param>
    /// <returns>The room, or why the call could not start.</returns>
    /// <exception cref="InvalidOperationException">The call was started already.</exception>
    public Task<SignallingResult<RoomId>> CreateRoomAsync(CancellationToken cancellationToken = default) =>
        StartAsync(_api.CreateRoomAsync, cancellationToken);

    /// <summary>Joins a room (knocks, or rejoins without a new approval) and connects.</summary>
    /// <param name="room">The room.</param>
    /// <param name="cancellationToken">Cancels the start (not the call).</param>
    /// <returns>The room, or why the call could not start (<see cref="SignallingErrorCode.RoomSealed"/>, <see cref="SignallingErrorCode.Denied"/>…).</returns>
    /// <exception cref="InvalidOperationException">The call was started already.</exception>
    public Task<SignallingResult<RoomId>> JoinRoomAsync(RoomId room, CancellationToken cancellationToken = default) =>
        StartAsync(ct => _api.JoinRoomAsync(room, ct), cancellationToken);

    /// <summary>Lets a waiting member in (admin only; the server refuses others with <see cref="SignallingErrorCode.NotAdmin"/>, reported through <see cref="Error"/>).</summary>
    /// <param name="member">The member.</param>
    /// <returns>A task that completes when the answer was sent or queued.</returns>
    public async ValueTask AdmitAsync(MemberId member)
    {
        if (_connection is { } connection)
        {
            await connection.SendAsync(new AdmitMessage { Member = member }).ConfigureAwait(false);
        }
    }

    /// <summary>Refuses a waiting member (admin only).</summary>
    /// <param name="member">The member.</param>
    /// <returns>A task that completes when the answer was sent or queued.</returns>
    public async ValueTask DenyAsync(MemberId member)
    {
        if (_connection is { } connection)
        {
            await connection.SendAsync(new DenyMessage { Member = member }).ConfigureAwait(false);
        }
    }

    /// <summary>Leaves: tells the room (through the server, or in-band once sealed) and tears every link down.</summary>
    /// <returns>A task that completes when the call is over.</returns>
    public async Task LeaveAsync()
    {
        if (State is TalkiCallState.Left)
        {
            return;
        }

        var mesh = _mesh;
        if (mesh is not null && State == TalkiCallState.Sealed)
        {
            await mesh.SayGoodbyeAsync().ConfigureAwait(false);
        }

        SetState(TalkiCallState.Left, null);
        if (_connection is { } connection)
        {
            await connection.CloseAsync(leave: true).ConfigureAwait(false);
        }

        mesh?.CloseAll();
        RaiseChanged();
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (State is not (TalkiCallState.Idle or TalkiCallState.Left))
        {
            await LeaveAsync().ConfigureAwait(false);
        }

        if (_connection is { } connection)
        {
            await connection.DisposeAsync().ConfigureAwait(false);
        }

        _mesh?.Dispose();
    }

    Task ISignallingConnectionHandler.OnMessageAsync(ServerMessage message, bool rejoined)
    {
        Task work = Task.CompletedTask;
        switch (message)
        {
            case WelcomeMessage welcome:
                OnWelcome(welcome, rejoined);
                break;
            case AdmissionRequestMessage request:
                lock (_sync)
                {
                    _pending[request.Member.Id] = request.Member;
                }

                break;
            case AdmittedMessage admitted:
                lock (_sync)
                {
                    _pending.Remove(admitted.Member.Id);
                    _members[admitted.Member.Id] = admitted.Member;
                }

                if (admitted.Member.Id == _self)
                {
                    Self = admitted.Member;
                    _admitted = true;
                    SetState(TalkiCallState.InCall, null);
                }

                break;
            case DeniedMessage denied:
                lock (_sync)
                {
                    _pending.Remove(denied.Member.Id);
                    _members.Remove(denied.Member.Id);
                }

                if (denied.Member.Id == _self)
                {
                    SetState(TalkiCallState.Denied, new SignallingError(SignallingErrorCode.Denied, "The admin denied the request to join."));
                }

                work = _mesh?.HandleAsync(denied) ?? Task.CompletedTask;
                break;
            case ConnectToPeerMessage plan:
                lock (_sync)
                {
                    _members[plan.Peer.Id] = plan.Peer with { Online = true };
                }

                work = _mesh?.HandleAsync(plan) ?? Task.CompletedTask;
                break;
            case PeerLeftMessage left:
                lock (_sync)
                {
                    if (_members.TryGetValue(left.Member, out var view) && view.Epoch <= left.Epoch)
                    {
                        _members[left.Member] = view with { Online = false };
                    }
                }

                work = _mesh?.HandleAsync(left) ?? Task.CompletedTask;
                break;
            case SignalRelayMessage signal:
                RaiseMessage(signal);
                return _mesh?.HandleAsync(signal) ?? Task.CompletedTask; // links report their own changes
            case RoomSealedMessage:
                OnSealed();
                break;
        }

        RaiseChanged();
        RaiseMessage(message);
        return work;
    }

    void ISignallingConnectionHandler.OnStateChanged(SignallingConnectionState state, SignallingError? reason)
    {
        switch (state)
        {
            case SignallingConnectionState.Reconnecting when State is TalkiCallState.InCall or TalkiCallState.WaitingForApproval:
                SetState(TalkiCallState.Reconnecting, reason);
                RaiseError(new TalkiCallErrorEventArgs(TalkiCallErrorKind.Connection, reason?.Code, reason?.Message ?? "The signalling socket dropped; reconnecting."));
                break;
            case SignallingConnectionState.Open when State is TalkiCallState.Reconnecting or TalkiCallState.Connecting:
                SetState(_admitted ? TalkiCallState.InCall : TalkiCallState.WaitingForApproval, null);
                break;
            case SignallingConnectionState.Closed:
                if (reason?.Code == SignallingErrorCode.RoomSealed && _admitted)
                {
                    OnSealed();
                }
                else if (reason?.Code == SignallingErrorCode.Denied)
                {
                    SetState(TalkiCallState.Denied, reason);
                    _mesh?.CloseAll();
                }
                else if (State is not (TalkiCallState.Left or TalkiCallState.Denied or TalkiCallState.Sealed))
                {
                    SetState(TalkiCallState.Failed, reason);
                    RaiseError(new TalkiCallErrorEventArgs(TalkiCallErrorKind.Connection, reason?.Code, reason?.Message ?? "The signalling connection closed."));
                }

                break;
        }

        RaiseChanged();
    }

    void ISignallingConnectionHandler.OnMalformedFrame(string detail, MemberId? concerning)
    {
        LogMalformed(_logger, detail);
        if (concerning is { } peer)
        {
            _mesh?.ResetLink(peer, new FormatException(detail));
        }

        RaiseError(new TalkiCallErrorEventArgs(TalkiCallErrorKind.MalformedMessage, SignallingErrorCode.MalformedMessage, detail) { Peer = concerning });
    }

    void ISignallingConnectionHandler.OnServerError(ErrorMessage error, string? requestType)
    {
        LogServerError(_logger, error.Code.ToWireName(), error.Message, requestType ?? "?");
        RaiseError(new TalkiCallErrorEventArgs(TalkiCallErrorKind.ServerError, error.Code, error.Message)
        {
            CorrelationId = error.Id,
            RequestType = requestType,
            Reference = error.Reference,
        });
    }

    // Signals queued before a rejoin belong to links the rejoin replaced (the server gave this member a new epoch).
    bool ISignallingConnectionHandler.ShouldSendAfterRejoin(ClientMessage message) => message is not SignalMessage;

    private async Task<SignallingResult<RoomId>> StartAsync(Func<CancellationToken, Task<SignallingResult<TicketResponse>>> firstTicket, CancellationToken cancellationToken)
    {
        lock (_sync)
        {
            if (State != TalkiCallState.Idle)
            {
                throw new InvalidOperationException("A TalkiCall is started once; create another one for another call.");
            }

            State = TalkiCallState.Connecting;
        }

        RaiseChanged();
        var ticket = await firstTicket(cancellationToken).ConfigureAwait(false);
        if (!ticket.TryGetValue(out var granted, out var refusal))
        {
            SetState(refusal.Code == SignallingErrorCode.Denied ? TalkiCallState.Denied : TalkiCallState.Failed, refusal);
            RaiseChanged();
            return refusal;
        }

        _self = granted.Member;
        _admitted = granted.Admin;
        var room = granted.Room;
        _connection = new SignallingConnection(ct => _api.JoinRoomAsync(room, ct), this, _options, _time, _logger, _connect);
        var welcome = await _connection.StartAsync(granted, cancellationToken).ConfigureAwait(false);
        return welcome.TryGetValue(out _, out var error) ? room : error;
    }

    private void OnWelcome(WelcomeMessage welcome, bool rejoined)
    {
        MeshNegotiator? old;
        lock (_sync)
        {
            Room = welcome.Room;
            Self = welcome.You;
            _iceServers = welcome.IceServers;
            _admitted = welcome.You.Status == AdmissionStatus.Admitted;
            _members.Clear();
            _pending.Clear();
            foreach (var member in welcome.Members)
            {
                if (member.Status == AdmissionStatus.Admitted)
                {
                    _members[member.Id] = member;
                }
                else if (member.Status == AdmissionStatus.Pending && welcome.You.Admin)
                {
                    _pending[member.Id] = member;
                }
            }

            _members[welcome.You.Id] = welcome.You;

            // Every (re)connection has a new epoch: peers replace their links to it, so this side starts a fresh mesh too.
            old = _mesh;
            _mesh = CreateMesh();
        }

        old?.Dispose();
        if (rejoined)
        {
            LogRejoined(_logger, welcome.You.Epoch);
        }

        SetState(_admitted ? TalkiCallState.InCall : TalkiCallState.WaitingForApproval, null);
    }

    private MeshNegotiator CreateMesh()
    {
        var mesh = new MeshNegotiator(_self, _peers, SendSignalAsync, _time, _options.LinkUpTimeout) { IceServers = _iceServers };
        mesh.LinkStateChanged += (_, _) => RaiseChanged();
        mesh.NegotiationError += (_, e) =>
        {
            LogNegotiation(_logger, e.Kind.ToString(), e.Exception?.Message ?? string.Empty);
            RaiseError(new TalkiCallErrorEventArgs(TalkiCallErrorKind.Negotiation, null, e.Exception?.Message ?? e.Kind.ToString())
            {
                Peer = e.Peer,
                Negotiation = e.Kind,
            });
        };
        return mesh;
    }

    private async ValueTask SendSignalAsync(SignalMessage message)
    {
        var connection = _connection;
        if (connection is null || !await connection.SendAsync(message).ConfigureAwait(false))
        {
            throw new InvalidOperationException("The signalling connection is closed and the link has no open control channel.");
        }
    }

    private void OnSealed()
    {
        if (State is TalkiCallState.Left or TalkiCallState.Denied)
        {
            return;
        }

        if (!_admitted)
        {
            SetState(TalkiCallState.Failed, new SignallingError(SignallingErrorCode.RoomSealed, "The room sealed before the admin answered."));
            return;
        }

        if (_mesh is { } mesh)
        {
            mesh.SignalInBand = true;
        }

        SetState(TalkiCallState.Sealed, null);
    }

    private void SetState(TalkiCallState state, SignallingError? reason)
    {
        lock (_sync)
        {
            if (State == TalkiCallState.Left && state != TalkiCallState.Left)
            {
                return;
            }

            State = state;
            if (reason is not null)
            {
                FailureReason = reason;
            }
        }
    }

    private void RaiseChanged()
    {
        try
        {
            Changed?.Invoke(this, EventArgs.Empty);
        }
#pragma warning disable CA1031 // An application handler's failure must not break the signalling loop.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            LogHandlerFailed(_logger, ex);
        }
    }

    private void RaiseMessage(ServerMessage message)
    {
        try
        {
            MessageReceived?.Invoke(this, message);
        }
#pragma warning disable CA1031 // An application handler's failure must not break the signalling loop.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            LogHandlerFailed(_logger, ex);
        }
    }

    private void RaiseError(TalkiCallErrorEventArgs error)
    {
        try
        {
            Error?.Invoke(this, error);
        }
#pragma warning disable CA1031 // An application handler's failure must not break the signalling loop.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            LogHandlerFailed(_logger, ex);
        }
    }

    [LoggerMessage(EventId = 4101, Level = LogLevel.Warning, Message = "Skipped a malformed frame: {Detail}")]
    private static partial void LogMalformed(ILogger logger, string detail);

    [LoggerMessage(EventId = 4102, Level = LogLevel.Warning, Message = "The server refused a {RequestType}: {Code} ({Message})")]
    private static partial void LogServerError(ILogger logger, string code, string message, string requestType);

    [LoggerMessage(EventId = 4103, Level = LogLevel.Information, Message = "Rejoined the room with epoch {Epoch}; the mesh is rebuilt.")]
    private static partial void LogRejoined(ILogger logger, long epoch);

    [LoggerMessage(EventId = 4104, Level = LogLevel.Warning, Message = "A link's negotiation failed ({Kind}): {Detail}")]
    private static partial void LogNegotiation(ILogger logger, string kind, string detail);

    [LoggerMessage(EventId = 4105, Level = LogLevel.Error, Message = "An application event handler threw.")]
    private static partial void LogHandlerFailed(ILogger logger, Exception exception);
}
