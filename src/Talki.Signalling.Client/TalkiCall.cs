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
/// peer to peer, renegotiating in-band over each link's data channel.
/// Two explicit state machines describe it: <see cref="ConnectionState"/> (the signalling socket) and <see cref="AdmissionState"/>
/// (whether this member is in the call); each change is checked against its transition table and raises
/// <see cref="ConnectionStateChanged"/> or <see cref="AdmissionStateChanged"/>. Room events are typed (<see cref="AdmissionRequested"/>,
/// <see cref="MemberJoined"/>, <see cref="MemberLeft"/>, <see cref="Sealed"/>, <see cref="Disconnected"/>), problems raise
/// <see cref="Error"/>, and <see cref="Changed"/> says "something changed, render again". Events are raised on any thread;
/// nothing from the wire throws into the application, and an exception thrown by an application handler is logged and
/// does not end the call. Create it with <see cref="TalkiCallFactory"/>.
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
    private OfferBatch? _offers; // the mesh's: its first offers in one message (protocol 2)
    private readonly InFlightSignals _signalsInFlight = new(MaxSignalsInFlight);
    private MemberId _self;
    private readonly StateMachine<TalkiConnectionState> _connectionState;
    private readonly StateMachine<TalkiAdmissionState> _admissionState;
    private IReadOnlyList<IceServer> _iceServers = [];
    private bool _admitted;
    private const string AdmitPrefix = "admit:";
    private readonly Dictionary<MemberId, MemberView> _admitting = []; // v2: admissions sent, not yet seen joining
    private int _protocolVersion = 1; // the welcome's: what the server speaks with this member
    private bool _started;
    /// <summary>How long after the seal (by the server's clock) this side closes its socket: timer and clock jitter.</summary>
    private static readonly TimeSpan SealMargin = TimeSpan.FromMilliseconds(500);

    /// <summary>How often the seal timer looks again while a link's control channel is not open yet.</summary>
    private static readonly TimeSpan SealCheckInterval = TimeSpan.FromSeconds(1);

    /// <summary>How long past the seal the socket stays for a link whose control channel is not open yet.</summary>
    private static readonly TimeSpan SealGrace = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How many relayed signals are applied at once (each on its own link's queue) before the socket's receive loop waits
    /// for one (<see cref="InFlightSignals"/>): every link of the largest rooms, several signals each.
    /// </summary>
    internal const int MaxSignalsInFlight = 64;

    private TalkiDisconnectReason? _closing;
    private ITimer? _sealTimer;
    private DateTimeOffset _localSealAt;
    private DateTimeOffset? _waitingSealsAt; // from the ticket, while a version 3 member waits without a welcome
    private bool _sealedLocally;
    private int _disposed;

    internal TalkiCall(TalkiApiClient api, IPeerConnectionFactory peers, TalkiClientOptions options, TimeProvider time, ILogger logger, Func<Uri, CancellationToken, Task<WebSocket>>? connect = null)
    {
        _api = api;
        _peers = peers;
        _options = options;
        _time = time;
        _logger = logger;
        _connect = connect;
        _connectionState = new StateMachine<TalkiConnectionState>("connection", TalkiConnectionState.Disconnected, ConnectionTransitions, logger);
        _admissionState = new StateMachine<TalkiAdmissionState>("admission", TalkiAdmissionState.None, AdmissionTransitions, logger);
    }

    /// <summary>Raised after anything the call shows changed (a state, the members, the pending admissions, a link): render again.</summary>
    public event EventHandler? Changed;

    /// <summary>Raised when <see cref="ConnectionState"/> changed (after the change).</summary>
    public event EventHandler<TalkiConnectionStateChangedEventArgs>? ConnectionStateChanged;

    /// <summary>Raised when <see cref="AdmissionState"/> changed (after the change).</summary>
    public event EventHandler<TalkiAdmissionStateChangedEventArgs>? AdmissionStateChanged;

    /// <summary>Raised for the admin when a member asks to join; answer with <see cref="AdmitAsync"/> or <see cref="DenyAsync"/>. The member is in <see cref="PendingAdmissions"/>.</summary>
    public event EventHandler<TalkiMemberEventArgs>? AdmissionRequested;

    /// <summary>Raised when a remote member joined the call: admitted, or back online after its connection dropped.</summary>
    public event EventHandler<TalkiMemberEventArgs>? MemberJoined;

    /// <summary>Raised when a remote member left the call or went offline (it may come back, raising <see cref="MemberJoined"/>).</summary>
    public event EventHandler<TalkiMemberEventArgs>? MemberLeft;

    /// <summary>Raised once when the room sealed while this member was admitted: the server is gone, the call goes on peer to peer.</summary>
    public event EventHandler? Sealed;

    /// <summary>Raised once when the signalling connection ended (<see cref="ConnectionState"/> became <see cref="TalkiConnectionState.Disconnected"/>), with why.</summary>
    public event EventHandler<TalkiDisconnectedEventArgs>? Disconnected;

    /// <summary>Raised for a problem: a refusal from the server, a malformed frame, a failed negotiation, a dropped connection.</summary>
    public event EventHandler<TalkiCallErrorEventArgs>? Error;

    /// <summary>Gets the state of the signalling connection.</summary>
    public TalkiConnectionState ConnectionState => _connectionState.State;

    /// <summary>Gets whether this member is in the call.</summary>
    public TalkiAdmissionState AdmissionState => _admissionState.State;

    /// <summary>Gets why the call could not start, was denied, or its connection ended without the application asking, when it did.</summary>
    public SignallingError? FailureReason { get; private set; }

    /// <summary>Gets the room, once welcomed.</summary>
    public RoomView? Room { get; private set; }

    /// <summary>
    /// Gets this member as the room sees it, once welcomed. While it waits for admission without a welcome (protocol
    /// version 3), as its ticket describes it: epoch 0 until the welcome at its admission.
    /// </summary>
    public MemberView? Self { get; private set; }

    /// <summary>Gets when the room seals (no more joins or reconnects; the call goes on peer to peer).</summary>
    public DateTimeOffset? SealsAt => Room?.SealsAt ?? _waitingSealsAt;

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

    /// <summary>Gets the transitions <see cref="ConnectionState"/> may take; any other is refused.</summary>
    internal static IReadOnlyList<(TalkiConnectionState From, TalkiConnectionState To)> ConnectionTransitions { get; } =
    [
        (TalkiConnectionState.Disconnected, TalkiConnectionState.Connecting),
        (TalkiConnectionState.Connecting, TalkiConnectionState.Connected),
        (TalkiConnectionState.Connecting, TalkiConnectionState.Disconnected),
        (TalkiConnectionState.Connected, TalkiConnectionState.Reconnecting),
        (TalkiConnectionState.Connected, TalkiConnectionState.Disconnected),
        (TalkiConnectionState.Reconnecting, TalkiConnectionState.Connected),
        (TalkiConnectionState.Reconnecting, TalkiConnectionState.Disconnected),
    ];

    /// <summary>Gets the transitions <see cref="AdmissionState"/> may take; any other is refused.</summary>
    internal static IReadOnlyList<(TalkiAdmissionState From, TalkiAdmissionState To)> AdmissionTransitions { get; } =
    [
        (TalkiAdmissionState.None, TalkiAdmissionState.Waiting),
        (TalkiAdmissionState.None, TalkiAdmissionState.Admitted),
        (TalkiAdmissionState.None, TalkiAdmissionState.Denied),
        (TalkiAdmissionState.None, TalkiAdmissionState.Left),
        (TalkiAdmissionState.Waiting, TalkiAdmissionState.Admitted),
        (TalkiAdmissionState.Waiting, TalkiAdmissionState.Denied),
        (TalkiAdmissionState.Waiting, TalkiAdmissionState.Left),
        (TalkiAdmissionState.Admitted, TalkiAdmissionState.Sealed),
        (TalkiAdmissionState.Admitted, TalkiAdmissionState.Left),
        (TalkiAdmissionState.Sealed, TalkiAdmissionState.Left),
    ];

    /// <summary>Gets the links of the mesh, one per remote member.</summary>
    public IReadOnlyList<PeerLinkState> Links => _mesh?.Links ?? [];

    /// <summary>Gets how many outbound messages were dropped (the reconnect queue overflowed, or they belonged to links replaced by a rejoin).</summary>
    public int DroppedMessages => _connection?.DroppedMessages ?? 0;

    /// <summary>Creates a room (this member is its admin) and connects.</summary>
    /// <param name="cancellationToken">Cancels the start (not the call): the attempt stops and the connection ends with <see cref="TalkiDisconnectReason.Cancelled"/>.</param>
    /// <returns>The room, or why the call could not start.</returns>
    /// <exception cref="InvalidOperationException">The call was started already.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled before the server welcomed this member.</exception>
    public Task<SignallingResult<RoomId>> CreateRoomAsync(CancellationToken cancellationToken = default) =>
        StartAsync(_api.CreateRoomAsync, cancellationToken);

    /// <summary>Joins a room (knocks, or rejoins without a new approval) and connects.</summary>
    /// <param name="room">The room.</param>
    /// <param name="cancellationToken">Cancels the start (not the call): the attempt stops and the connection ends with <see cref="TalkiDisconnectReason.Cancelled"/>.</param>
    /// <returns>The room, or why the call could not start (<see cref="SignallingErrorCode.RoomSealed"/>, <see cref="SignallingErrorCode.Denied"/>…).</returns>
    /// <exception cref="InvalidOperationException">The call was started already.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled before the server welcomed this member.</exception>
    public Task<SignallingResult<RoomId>> JoinRoomAsync(RoomId room, CancellationToken cancellationToken = default) =>
        StartAsync(ct => _api.JoinRoomAsync(room, ct), cancellationToken);

    /// <summary>Lets a waiting member in (admin only; the server refuses others with <see cref="SignallingErrorCode.NotAdmin"/>, reported through <see cref="Error"/>).</summary>
    /// <param name="member">The member.</param>
    /// <returns>A task that completes when the answer was sent or queued.</returns>
    public async ValueTask AdmitAsync(MemberId member)
    {
        if (_connection is not { } connection)
        {
            return;
        }

        // Protocol 2 echoes no admission to the admin: the request is answered once it is sent, and the newcomer joins with
        // its first offer. A refusal that leaves the newcomer waiting (room_full, a busy server) puts the request back.
        MemberView? answered = null;
        if (_protocolVersion >= 2)
        {
            lock (_sync)
            {
                if (_pending.Remove(member, out var view))
                {
                    answered = _admitting[member] = view;
                }
            }
        }

        var sent = await connection.SendAsync(new AdmitMessage { Member = member, Id = AdmitPrefix + member.Value }).ConfigureAwait(false);
        if (!sent && answered is not null)
        {
            RestoreRequest(member);
        }
        else if (answered is not null)
        {
            RaiseChanged();
        }
    }

    /// <summary>Puts an answered request back among <see cref="PendingAdmissions"/>: the server refused the admission and the newcomer still waits.</summary>
    private void RestoreRequest(MemberId member)
    {
        bool restored;
        lock (_sync)
        {
            restored = _admitting.Remove(member, out var view) && _pending.TryAdd(member, view);
        }

        if (restored)
        {
            RaiseChanged();
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

    /// <summary>Leaves: tells the room (through the server, or in-band once sealed) and tears every link down. A second call does nothing.</summary>
    /// <returns>A task that completes when the call is over.</returns>
    public async Task LeaveAsync()
    {
        lock (_sync)
        {
            if (_closing is not null)
            {
                return;
            }

            _closing = TalkiDisconnectReason.Left;
            _sealTimer?.Dispose();
            _sealTimer = null;
        }

        var mesh = _mesh;
        if (mesh is not null && AdmissionState == TalkiAdmissionState.Sealed)
        {
            await mesh.SayGoodbyeAsync().ConfigureAwait(false);
        }

        if (AdmissionState is not (TalkiAdmissionState.Denied or TalkiAdmissionState.Left))
        {
            TrySetAdmissionState(TalkiAdmissionState.Left, null);
        }

        if (_connection is { } connection)
        {
            await connection.CloseAsync(leave: true).ConfigureAwait(false); // reports Disconnected through OnStateChanged
        }
        else if (ConnectionState != TalkiConnectionState.Disconnected)
        {
            TrySetConnectionState(TalkiConnectionState.Disconnected, null, TalkiDisconnectReason.Left); // left while getting the first ticket
        }

        mesh?.CloseAll();
        RaiseChanged();
    }

    /// <summary>Leaves (when the call was started and is not over) and releases the connection and the links. A second call does nothing.</summary>
    /// <returns>A task that completes when the call is disposed.</returns>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        bool started;
        lock (_sync)
        {
            started = _started;
        }

        if (started)
        {
            await LeaveAsync().ConfigureAwait(false);
        }

        if (_connection is { } connection)
        {
            await connection.DisposeAsync().ConfigureAwait(false);
        }

        lock (_sync)
        {
            _sealTimer?.Dispose();
            _sealTimer = null;
        }

        _mesh?.Dispose();
        _offers?.Dispose();
    }

    Task ISignallingConnectionHandler.OnMessageAsync(ServerMessage message, bool rejoined)
    {
        Task work = Task.CompletedTask;
        switch (message)
        {
            case WelcomeMessage welcome:
                var (departed, links) = OnWelcome(welcome, rejoined);
                work = departed.Count == 0 ? PlanLinksAsync(links) : LeftWhileAwayThenPlanAsync(departed, links);
                break;
            case AdmissionRequestMessage request:
                bool fresh;
                lock (_sync)
                {
                    fresh = _pending.TryAdd(request.Member.Id, request.Member);
                    _pending[request.Member.Id] = request.Member;
                }

                if (fresh)
                {
                    Raise(AdmissionRequested, ToArgs(request.Member));
                }

                break;
            case AdmittedMessage admitted:
                bool joined;
                lock (_sync)
                {
                    _pending.Remove(admitted.Member.Id);
                    joined = !_members.TryGetValue(admitted.Member.Id, out var known) || !known.Online;
                    _members[admitted.Member.Id] = admitted.Member;
                }

                if (admitted.Member.Id == _self)
                {
                    Self = admitted.Member;
                    lock (_sync)
                    {
                        _admitted = true;
                    }

                    TrySetAdmissionState(TalkiAdmissionState.Admitted, null);
                    work = PlanLinksAsync(admitted.Links);
                }
                else if (joined)
                {
                    Raise(MemberJoined, ToArgs(admitted.Member));
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
                    var reason = new SignallingError(SignallingErrorCode.Denied, "The admin denied the request to join.");
                    FailureReason = reason;
                    TrySetAdmissionState(TalkiAdmissionState.Denied, reason);
                }

                work = _mesh?.HandleAsync(denied) ?? Task.CompletedTask;
                break;
            case ConnectToPeerMessage plan:
                work = PlanAsync(plan);
                break;
            case PeerLeftMessage left:
                MarkOffline(left.Member, left.Epoch);
                work = _mesh?.HandleAsync(left) ?? Task.CompletedTask;
                break;
            case SignalRelayMessage { Link: { } link } signal:
                // Protocol 2: a newcomer's first offer carries this side of the link (there was no connect_to_peer).
                return PlanThenRouteAsync(ToPlan(link with { Peer = link.Peer with { Id = signal.From } }, signal.FromEpoch), signal);
            case SignalRelayMessage signal:
                // Applied on its link's queue while the socket reads on (bounded): links report their own changes.
                return _mesh is { } mesh ? _signalsInFlight.Track(mesh.HandleAsync(signal)) : Task.CompletedTask;
            case RoomSealedMessage:
                OnSealed();
                break;
        }

        RaiseChanged();
        return work;
    }

    /// <summary>Records a planned peer as in the call (raising <see cref="MemberJoined"/> when it is new or back) and hands the plan to the mesh.</summary>
    private Task PlanAsync(ConnectToPeerMessage plan)
    {
        bool back;
        lock (_sync)
        {
            _admitting.Remove(plan.Peer.Id);
            back = !_members.TryGetValue(plan.Peer.Id, out var known) || !known.Online;
            _members[plan.Peer.Id] = plan.Peer with { Online = true };
        }

        if (back)
        {
            Raise(MemberJoined, ToArgs(plan.Peer));
        }

        return _mesh?.HandleAsync(plan) ?? Task.CompletedTask;
    }

    /// <summary>Plans every link a version 2 welcome or admission carries, in order.</summary>
    private async Task PlanLinksAsync(IReadOnlyList<PeerLink>? links)
    {
        if (links is { Count: > 1 } && _protocolVersion >= 2)
        {
            _offers?.Expect(links.Where(l => l.Offerer).Select(l => l.Peer.Id));
        }

        foreach (var link in links ?? [])
        {
            await PlanAsync(ToPlan(link, link.PeerEpoch)).ConfigureAwait(false);
        }
    }

    private async Task PlanThenRouteAsync(ConnectToPeerMessage plan, SignalRelayMessage signal)
    {
        await PlanAsync(plan).ConfigureAwait(false); // a link to this epoch already there (a glare, a renegotiation) is kept
        RaiseChanged();
        if (_mesh is { } mesh)
        {
            await _signalsInFlight.Track(mesh.HandleAsync(signal)).ConfigureAwait(false);
        }
    }

    private static ConnectToPeerMessage ToPlan(PeerLink link, long epoch) =>
        new() { Peer = link.Peer with { Epoch = epoch }, PeerEpoch = epoch, Offerer = link.Offerer, Polite = link.Polite };

    void ISignallingConnectionHandler.OnAwaitingAdmission(TicketResponse ticket)
    {
        lock (_sync)
        {
            if (_admitted)
            {
                return; // an admitted member is never pending again
            }

            _waitingSealsAt = ticket.SealsAt;

            // What this member knows of itself from its ticket: the server's view (its epoch among it) comes with the welcome.
            Self = new MemberView { Id = ticket.Member, DisplayName = ticket.DisplayName ?? string.Empty, Verified = ticket.Verified, Admin = ticket.Admin, Status = AdmissionStatus.Pending, Online = true };
            _members.Clear();
            _members[ticket.Member] = Self;
        }

        // The server says nothing to a waiting member (protocol version 3): the ticket tells when the room seals, and what
        // the server's clock read when it issued it (read here later than that: this side acts late, never early). The
        // welcome re-arms the timer at its admission.
        ArmSealTimer(ticket.SealsAt, ticket.ServerTime);
        if (AdmissionState != TalkiAdmissionState.Waiting)
        {
            TrySetAdmissionState(TalkiAdmissionState.Waiting, null);
        }

        RaiseChanged();
    }

    void ISignallingConnectionHandler.OnStateChanged(TalkiConnectionState state, SignallingError? reason)
    {
        switch (state)
        {
            case TalkiConnectionState.Reconnecting:
                if (TrySetConnectionState(TalkiConnectionState.Reconnecting, reason, null))
                {
                    RaiseError(new TalkiCallErrorEventArgs(TalkiCallErrorKind.Connection, reason?.Code, reason?.Message ?? "The signalling socket dropped; reconnecting."));
                }

                break;
            case TalkiConnectionState.Connected:
                TrySetConnectionState(TalkiConnectionState.Connected, null, null);
                break;
            case TalkiConnectionState.Disconnected:
                OnConnectionClosed(reason);
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
        if (error.Id is { } id && id.StartsWith(AdmitPrefix, StringComparison.Ordinal) && MemberId.TryParse(id[AdmitPrefix.Length..], out var member))
        {
            if (error.Code is SignallingErrorCode.MemberNotFound or SignallingErrorCode.MemberNotPending or SignallingErrorCode.NotAdmin)
            {
                lock (_sync)
                {
                    _admitting.Remove(member); // nobody to wait for
                }
            }
            else
            {
                RestoreRequest(member); // room_full, service_unavailable…: the newcomer keeps waiting
            }
        }

        LogServerError(_logger, error.Code.ToWireName(), error.Message, requestType ?? "?");
        RaiseError(new TalkiCallErrorEventArgs(TalkiCallErrorKind.ServerError, error.Code, error.Message)
        {
            CorrelationId = error.Id,
            RequestType = requestType,
            Reference = error.Reference,
        });
    }

    // Signals queued before a rejoin belong to links the rejoin replaced (the server gave this member a new epoch).
    bool ISignallingConnectionHandler.ShouldSendAfterRejoin(ClientMessage message) => message is not (SignalMessage or SignalsMessage);

    private async Task<SignallingResult<RoomId>> StartAsync(Func<CancellationToken, Task<SignallingResult<TicketResponse>>> firstTicket, CancellationToken cancellationToken)
    {
        lock (_sync)
        {
            if (_started || _disposed != 0)
            {
                throw new InvalidOperationException("A TalkiCall is started once; create another one for another call.");
            }

            _started = true;
        }

        TrySetConnectionState(TalkiConnectionState.Connecting, null, null);
        RaiseChanged();
        SignallingResult<TicketResponse> ticket;
        try
        {
            ticket = await firstTicket(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            EndStart(TalkiDisconnectReason.Cancelled, null);
            throw;
        }

        if (!ticket.TryGetValue(out var granted, out var refusal))
        {
            FailureReason = refusal;
            if (refusal.Code == SignallingErrorCode.Denied)
            {
                TrySetAdmissionState(TalkiAdmissionState.Denied, refusal);
            }

            EndStart(refusal.Code switch
            {
                SignallingErrorCode.Denied => TalkiDisconnectReason.Denied,
                SignallingErrorCode.RoomSealed => TalkiDisconnectReason.RoomSealed,
                _ => TalkiDisconnectReason.Failed,
            }, refusal);
            return refusal;
        }

        _self = granted.Member;
        var room = granted.Room;
        SignallingConnection connection;
        lock (_sync)
        {
            if (_closing is { } closing)
            {
                // Left (or disposed) while the ticket was on its way: no socket.
                return new SignallingError(SignallingErrorCode.Internal, closing == TalkiDisconnectReason.Left ? "The call was left before it connected." : "The call ended before it connected.");
            }

            _admitted = granted.Admin;
            connection = _connection = new SignallingConnection(ct => _api.JoinRoomAsync(room, ct), this, _options, _time, _logger, _connect);
        }

        SignallingError? failed;
        try
        {
            failed = await connection.StartAsync(granted, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            lock (_sync)
            {
                _closing ??= TalkiDisconnectReason.Cancelled;
            }

            await connection.CloseAsync(leave: true).ConfigureAwait(false); // stops the attempt; reports Disconnected
            throw;
        }

        return failed is null ? room : failed;
    }

    /// <summary>Ends a start that never got a connection.</summary>
    private void EndStart(TalkiDisconnectReason reason, SignallingError? error)
    {
        lock (_sync)
        {
            _closing ??= reason;
        }

        TrySetConnectionState(TalkiConnectionState.Disconnected, error, reason);
        RaiseChanged();
    }

    private void OnConnectionClosed(SignallingError? reason)
    {
        TalkiDisconnectReason? asked;
        bool admitted;
        lock (_sync)
        {
            asked = _closing;
            admitted = _admitted;
        }

        bool sealedLocally;
        lock (_sync)
        {
            sealedLocally = _sealedLocally;
        }

        TalkiDisconnectReason kind;
        if (asked is { } byApplication)
        {
            kind = byApplication;
            reason = null;
        }
        else if (sealedLocally)
        {
            kind = TalkiDisconnectReason.RoomSealed; // this side closed the socket at the seal
            reason = null;
        }
        else if (reason?.Code == SignallingErrorCode.RoomSealed)
        {
            kind = TalkiDisconnectReason.RoomSealed;
            if (admitted)
            {
                OnSealed();
            }
            else
            {
                FailureReason = new SignallingError(SignallingErrorCode.RoomSealed, "The room sealed before the admin answered.");
            }
        }
        else if (reason?.Code == SignallingErrorCode.Denied)
        {
            kind = TalkiDisconnectReason.Denied;
            FailureReason = reason;
            TrySetAdmissionState(TalkiAdmissionState.Denied, reason);
            _mesh?.CloseAll();
        }
        else
        {
            kind = TalkiDisconnectReason.Failed;
            FailureReason = reason;
            RaiseError(new TalkiCallErrorEventArgs(TalkiCallErrorKind.Connection, reason?.Code, reason?.Message ?? "The signalling connection closed."));
        }

        TrySetConnectionState(TalkiConnectionState.Disconnected, reason, kind);
    }

    /// <returns>
    /// After a resume, the peers that were online before it and are no longer in the room at the same epoch (and whether
    /// they are gone, not only at a newer epoch): their <c>peer_left</c> may have gone into the dying socket (the server
    /// queues only what comes after it noticed the drop). And the links to plan: a resumed welcome repeats the plan of an
    /// admission that may have gone into the dying socket too, which a member admitted before the drop has already.
    /// </returns>
    private (List<(MemberView Peer, bool Gone)> Departed, IReadOnlyList<PeerLink>? Links) OnWelcome(WelcomeMessage welcome, bool rejoined)
    {
        MeshNegotiator? old;
        OfferBatch? oldOffers = null;
        List<MemberView> newRequests = [];
        List<(MemberView Peer, bool Gone)> departed = [];
        bool admitted;
        bool admittedBefore;
        lock (_sync)
        {
            admittedBefore = _admitted;
            var onlineBefore = rejoined && welcome.Resumed ? _members.Values.Where(m => m.Online && m.Id != _self).ToList() : [];
            Room = welcome.Room;
            Self = welcome.You;
            _protocolVersion = welcome.ProtocolVersion;
            _iceServers = welcome.IceServers;
            _admitted = welcome.You.Status == AdmissionStatus.Admitted;
            var pendingBefore = _pending.Keys.ToHashSet();
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
                    if (!pendingBefore.Contains(member.Id))
                    {
                        newRequests.Add(member);
                    }
                }
            }

            _members[welcome.You.Id] = welcome.You;
            foreach (var before in onlineBefore)
            {
                var gone = !_members.TryGetValue(before.Id, out var now) || !now.Online;
                if (gone || now!.Epoch != before.Epoch)
                {
                    departed.Add((before, gone));
                }
            }

            if (welcome.Resumed && _mesh is { } kept)
            {
                // The server resumed this member's epoch: peers kept their links to it, so this side keeps its own.
                old = null;
                kept.IceServers = _iceServers;
            }
            else
            {
                // A new epoch: peers replace their links to it, so this side starts a fresh mesh too.
                old = _mesh;
                oldOffers = _offers;
                _mesh = CreateMesh();
            }

            admitted = _admitted;
        }

        old?.Dispose();
        oldOffers?.Dispose();
        ArmSealTimer(welcome);
        if (rejoined && welcome.Resumed)
        {
            LogResumed(_logger, welcome.You.Epoch, welcome.Missed);
            if (welcome.Missed > 0)
            {
                RaiseError(new TalkiCallErrorEventArgs(TalkiCallErrorKind.Connection, SignallingErrorCode.DeliveryFailed, $"{welcome.Missed} messages for this member were dropped while its socket was down (the server's queue was full); links still negotiating recover through their link-up timeout."));
            }
        }
        else if (rejoined)
        {
            LogRejoined(_logger, welcome.You.Epoch);
        }

        var admission = admitted ? TalkiAdmissionState.Admitted : TalkiAdmissionState.Waiting;
        if (AdmissionState != admission)
        {
            TrySetAdmissionState(admission, null);
        }

        foreach (var request in newRequests)
        {
            Raise(AdmissionRequested, ToArgs(request));
        }

        return (departed, welcome.Resumed && admittedBefore ? null : welcome.Links);
    }

    /// <summary>Closes the links to peers that left while this member's socket was dying (as their <c>peer_left</c> would have), then plans.</summary>
    private async Task LeftWhileAwayThenPlanAsync(List<(MemberView Peer, bool Gone)> departed, IReadOnlyList<PeerLink>? links)
    {
        foreach (var (peer, gone) in departed)
        {
            LogLeftWhileAway(_logger, peer.Id.Value, peer.Epoch);
            if (gone)
            {
                Raise(MemberLeft, ToArgs(peer)); // one back at a newer epoch stays in the call: its new link comes with its offer
            }

            if (_mesh is { } mesh)
            {
                await mesh.HandleAsync(new PeerLeftMessage { Member = peer.Id, Epoch = peer.Epoch }).ConfigureAwait(false);
            }
        }

        await PlanLinksAsync(links).ConfigureAwait(false);
    }

    /// <summary>Creates a mesh, and its offer batch in <see cref="_offers"/> (under <see cref="_sync"/>).</summary>
    private MeshNegotiator CreateMesh()
    {
        var offers = _offers = new OfferBatch(SendNowAsync, _time, _options.CandidateGatherWindow);
        var mesh = new MeshNegotiator(_self, _peers, message => SendSignalAsync(offers, message), _time, _options.LinkUpTimeout, _options.CandidateGatherWindow) { IceServers = _iceServers };
        mesh.LinkStateChanged += (_, _) => RaiseChanged();
        mesh.RemoteLeft += (_, peer) =>
        {
            MarkOffline(peer, long.MaxValue); // said goodbye in-band after the seal
            RaiseChanged();
        };
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

    private ValueTask<bool> SendNowAsync(ClientMessage message) => _connection is { } connection ? connection.SendAsync(message) : ValueTask.FromResult(false);

    private static async ValueTask SendSignalAsync(OfferBatch offers, SignalMessage message)
    {
        if (!await offers.SendAsync(message).ConfigureAwait(false))
        {
            throw new InvalidOperationException("The signalling connection is closed and the link has no open control channel.");
        }
    }

    /// <summary>
    /// Arms the seal timer at the room's <see cref="RoomView.SealsAt"/> by the server's clock: the welcome's
    /// <see cref="WelcomeMessage.ServerTime"/> gives the offset (its one-way latency only makes this side act later).
    /// </summary>
    private void ArmSealTimer(WelcomeMessage welcome) => ArmSealTimer(welcome.Room.SealsAt, welcome.ServerTime);

    /// <summary>Arms the seal timer at <paramref name="sealsAt"/> by the server's clock, read at <paramref name="serverTime"/> (when known).</summary>
    private void ArmSealTimer(DateTimeOffset sealsAt, DateTimeOffset? serverTime)
    {
        var now = _time.GetUtcNow();
        var offset = serverTime is { } server ? server - now : TimeSpan.Zero;
        var sealAt = sealsAt - offset + SealMargin;
        var due = sealAt - now;
        lock (_sync)
        {
            if (_closing is not null || _disposed != 0)
            {
                return;
            }

            _localSealAt = sealAt;
            _sealTimer?.Dispose();
            _sealTimer = _time.CreateTimer(static state => ((TalkiCall)state!).OnSealDue(), this, due > TimeSpan.Zero ? due : TimeSpan.Zero, SealCheckInterval);
        }
    }

    /// <summary>
    /// At the seal, this side closes its own socket (the server has nothing more to do for the call), once every link's
    /// control channel is open so that renegotiation goes on in-band; a link still coming up keeps the socket for at most
    /// <see cref="SealGrace"/>. A member still waiting for the admin was never let in: its call ends.
    /// </summary>
    private void OnSealDue()
    {
        SignallingConnection? connection;
        bool admitted;
        lock (_sync)
        {
            var now = _time.GetUtcNow();
            if (now < _localSealAt)
            {
                return; // an early tick: timers may fire before the wall clock reaches the due instant
            }

            if (_closing is not null || _sealedLocally || _disposed != 0 || _connection is null)
            {
                _sealTimer?.Dispose();
                _sealTimer = null;
                return;
            }

            admitted = _admitted;
            if (admitted && _mesh is { InBandReady: false } && now < _localSealAt + SealGrace)
            {
                return; // a link is still coming up through the server; look again at the next tick
            }

            _sealedLocally = true;
            _sealTimer?.Dispose();
            _sealTimer = null;
            connection = _connection;
        }

        LogSealedLocally(_logger, admitted);
        if (admitted)
        {
            OnSealed();
        }
        else
        {
            FailureReason = new SignallingError(SignallingErrorCode.RoomSealed, "The room sealed before the admin answered.");
        }

        _ = CloseAtSealAsync(connection);
    }

    private async Task CloseAtSealAsync(SignallingConnection connection)
    {
        try
        {
            await connection.CloseAsync(leave: false).ConfigureAwait(false); // reports Disconnected (RoomSealed)
        }
#pragma warning disable CA1031 // A timer callback must not throw; the socket is gone either way.
        catch (Exception exception)
#pragma warning restore CA1031
        {
            LogSealCloseFailed(_logger, exception);
        }

        RaiseChanged();
    }

    private void OnSealed()
    {
        bool admitted;
        lock (_sync)
        {
            admitted = _admitted;
        }

        if (!admitted || AdmissionState != TalkiAdmissionState.Admitted)
        {
            return; // a waiting member was never let in: the connection's end reports it
        }

        if (_mesh is { } mesh)
        {
            mesh.SignalInBand = true;
        }

        if (TrySetAdmissionState(TalkiAdmissionState.Sealed, null))
        {
            Raise(Sealed, EventArgs.Empty);
        }
    }

    private void MarkOffline(MemberId member, long epoch)
    {
        MemberView? view;
        lock (_sync)
        {
            if (!_members.TryGetValue(member, out view) || !view.Online || view.Epoch > epoch)
            {
                return;
            }

            _members[member] = view with { Online = false };
        }

        Raise(MemberLeft, ToArgs(view));
    }

    private static TalkiMemberEventArgs ToArgs(MemberView member) => new(member.Id, member.DisplayName, member.Verified);

    /// <summary>The connection state machine's one entry: applies the transition if the table allows it, then raises the events.</summary>
    private bool TrySetConnectionState(TalkiConnectionState next, SignallingError? error, TalkiDisconnectReason? reason)
    {
        if (!_connectionState.TrySetState(next, out var previous))
        {
            return false;
        }

        Raise(ConnectionStateChanged, new TalkiConnectionStateChangedEventArgs(previous, next, error));
        if (next == TalkiConnectionState.Disconnected)
        {
            Raise(Disconnected, new TalkiDisconnectedEventArgs(reason ?? TalkiDisconnectReason.Failed, error));
        }

        return true;
    }

    /// <summary>The admission state machine's one entry: applies the transition if the table allows it, then raises the event.</summary>
    private bool TrySetAdmissionState(TalkiAdmissionState next, SignallingError? error)
    {
        if (!_admissionState.TrySetState(next, out var previous))
        {
            return false;
        }

        Raise(AdmissionStateChanged, new TalkiAdmissionStateChangedEventArgs(previous, next, error));
        return true;
    }

    private void RaiseChanged() => Raise(Changed, EventArgs.Empty);

    private void RaiseError(TalkiCallErrorEventArgs error) => Raise(Error, error);

    /// <summary>Raises an event; a handler that throws is logged and does not reach the signalling loop or the mesh.</summary>
    private void Raise<TArgs>(EventHandler<TArgs>? handler, TArgs args)
    {
        try
        {
            handler?.Invoke(this, args);
        }
#pragma warning disable CA1031 // An application handler's failure must not break the signalling loop.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            LogHandlerFailed(_logger, ex);
        }
    }

    private void Raise(EventHandler? handler, EventArgs args)
    {
        try
        {
            handler?.Invoke(this, args);
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

    [LoggerMessage(EventId = 4108, Level = LogLevel.Information, Message = "Resumed epoch {Epoch} after the socket dropped; every link kept ({Missed} messages missed).")]
    private static partial void LogResumed(ILogger logger, long epoch, int missed);

    [LoggerMessage(EventId = 4109, Level = LogLevel.Information, Message = "Resumed: {Member} (epoch {Epoch}) left the room meanwhile; its link is closed.")]
    private static partial void LogLeftWhileAway(ILogger logger, string member, long epoch);

    [LoggerMessage(EventId = 4104, Level = LogLevel.Warning, Message = "A link's negotiation failed ({Kind}): {Detail}")]
    private static partial void LogNegotiation(ILogger logger, string kind, string detail);

    [LoggerMessage(EventId = 4105, Level = LogLevel.Error, Message = "An application event handler threw.")]
    private static partial void LogHandlerFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 4106, Level = LogLevel.Information, Message = "The room sealed: closing the signalling socket (admitted: {Admitted}).")]
    private static partial void LogSealedLocally(ILogger logger, bool admitted);

    [LoggerMessage(EventId = 4107, Level = LogLevel.Warning, Message = "Closing the signalling socket at the seal failed.")]
    private static partial void LogSealCloseFailed(ILogger logger, Exception exception);
}
