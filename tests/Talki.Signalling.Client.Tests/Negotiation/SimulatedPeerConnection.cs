using System.Collections.Concurrent;
using System.Globalization;
using Talki.Signalling.Client.Negotiation;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Client.Tests.Negotiation;

/// <summary>
/// Holds the simulated peer connections of one test and decides connectivity: two connections are connected when both are
/// stable, each one's current local description is the other's current remote description, and, after an injected failure,
/// both have new ICE credentials (an ICE restart was negotiated); and a candidate pair can form: at least one of the two
/// holds a remote candidate of the other's current ICE credentials. As in ICE (RFC 8445 §6.1.2 and §7.3.1.3), the side
/// with a remote candidate sends connectivity checks; the other learns a peer-reflexive candidate from those checks, so one
/// direction is enough, and none is not: two connections that never exchanged a candidate stay <c>connecting</c>.
/// </summary>
internal sealed class SimulatedFabric
{
    private readonly ConcurrentDictionary<string, SimulatedPeerConnection> _byId = new(StringComparer.Ordinal);
    private int _next;

    public IReadOnlyCollection<SimulatedPeerConnection> All => [.. _byId.Values];

    /// <summary>Gets or sets how many candidates each new connection emits per gathering.</summary>
    public int CandidatesPerGathering { get; set; } = 1;

    /// <summary>Gets or sets how new connections gather (see <see cref="SimulatedPeerConnection.Gathering"/>).</summary>
    public GatheringMode Gathering { get; set; } = GatheringMode.Completes;

    /// <summary>Gets or sets a value indicating whether every connection refuses to set a local description (a browser in a broken state).</summary>
    public bool RefuseLocalDescriptions { get; set; }

    /// <summary>Gets how many connections were created.</summary>
    public int Created => Volatile.Read(ref _next);

    public SimulatedPeerConnection Create(string owner, PeerLinkPlan plan)
    {
        var pc = new SimulatedPeerConnection(this, $"{Interlocked.Increment(ref _next)}", owner, plan) { CandidatesPerGathering = CandidatesPerGathering, Gathering = Gathering };
        _byId[pc.Id] = pc;
        return pc;
    }

    public SimulatedPeerConnection? PartnerOf(SimulatedPeerConnection pc)
    {
        var remoteSession = SimulatedPeerConnection.SessionOf(pc.CurrentRemote);
        return remoteSession is not null && _byId.TryGetValue(remoteSession, out var other) && other != pc ? other : null;
    }

    public void Evaluate(SimulatedPeerConnection pc)
    {
        // Each side's operations run on its own client's thread: what changed on this side (a description, a candidate)
        // is written before this fence and the other side's state read after it, and the other side does the same, so
        // two changes that complete a pair at the same moment cannot both miss each other.
        Interlocked.MemoryBarrier();
        var other = PartnerOf(pc);
        if (other is null || PartnerOf(other) != pc)
        {
            return;
        }

        if (pc.SignalingState == PeerSignalingState.Stable && other.SignalingState == PeerSignalingState.Stable
            && pc.CurrentLocal == other.CurrentRemote && other.CurrentLocal == pc.CurrentRemote
            && pc.IceHealthy && other.IceHealthy
            && (pc.HoldsCandidateOf(other) || other.HoldsCandidateOf(pc)))
        {
            pc.SetConnectionState(PeerConnectionState.Connected);
            other.SetConnectionState(PeerConnectionState.Connected);
        }
    }

    /// <summary>Fails the transport under <paramref name="pc"/> and its partner (both see <c>failed</c>).</summary>
    public bool InjectFailure(SimulatedPeerConnection pc)
    {
        // ICE can only fail on a transport that was up: both ends connected to each other.
        var other = PartnerOf(pc);
        if (other is null || PartnerOf(other) != pc
            || pc.ConnectionState != PeerConnectionState.Connected || other.ConnectionState != PeerConnectionState.Connected)
        {
            return false;
        }

        pc.MarkFailed();
        other.MarkFailed();

        return true;
    }
}

/// <summary>How a simulated connection gathers its candidates after a local description is set.</summary>
internal enum GatheringMode
{
    /// <summary>
    /// As a browser whose gathering completes: <c>gathering</c>, the candidates, then <c>complete</c> and the null candidate,
    /// in the W3C order (the state change first, https://w3c.github.io/webrtc-pc/#update-ice-gathering-state).
    /// </summary>
    Completes = 0,

    /// <summary>As <see cref="Completes"/>, but the null candidate before the state change (an implementation that orders them the other way).</summary>
    CompletesNullCandidateFirst,

    /// <summary>The candidates, but gathering never completes (a STUN or TURN server that never answers): no state change, no null candidate.</summary>
    NeverCompletes,

    /// <summary>Nothing on its own: the test emits candidates with <see cref="SimulatedPeerConnection.EmitCandidate"/> and completes with <see cref="SimulatedPeerConnection.CompleteGathering"/> later.</summary>
    Manual,
}

/// <summary>
/// A JSEP-faithful simulated <see cref="IPeerConnection"/>: the signalling state machine (stable, have-local-offer,
/// have-remote-offer, rollback, closed), pending/current descriptions, implicit rollback of a local offer when a remote offer
/// arrives, InvalidStateError for an answer in the wrong state or a candidate without a remote description, negotiationneeded
/// (only in stable, raised again on returning to stable while still needed), ICE restart (new credentials in the next offer,
/// and in an answer to a restart offer) and failure injection. Operations complete synchronously; events are raised inline. Gathering follows the documented
/// browser behaviour (https://developer.mozilla.org/en-US/docs/Web/API/RTCPeerConnection/icegatheringstatechange_event):
/// <c>iceGatheringState</c> goes to <c>gathering</c> when a local description starts a gathering, each candidate is an
/// <c>icecandidate</c>, and at the end the state goes to <c>complete</c> and the null candidate follows (an empty line
/// naming no m-line; see <see cref="GatheringMode"/>). It gathers again after every local description.
/// </summary>
internal sealed class SimulatedPeerConnection : IPeerConnection
{
    private readonly SimulatedFabric _fabric;
    private readonly List<IceCandidate> _remoteCandidates = [];
    private ulong _version;
    private int _iceGen;
    private int _failedAtGen = -1;
    private bool _restartPending;
    private bool _restartInPendingOffer;
    private int _mediaRevision;
    private int _negotiatedRevision;
    private int _pendingOfferRevision;
    private SessionDescription? _pendingLocal;
    private SessionDescription? _pendingRemote;
    private bool _channelsOpened;

    public SimulatedPeerConnection(SimulatedFabric fabric, string id, string owner, PeerLinkPlan plan)
    {
        _fabric = fabric;
        Id = id;
        Owner = owner;
        Plan = plan;
    }

    public event EventHandler? NegotiationNeeded;

    public event EventHandler<IceCandidate>? LocalIceCandidate;

    public event EventHandler<PeerSignalingState>? SignalingStateChanged;

    public event EventHandler<PeerIceGatheringState>? IceGatheringStateChanged;

    public event EventHandler<PeerConnectionState>? ConnectionStateChanged;

    public event EventHandler<DataChannelMessage>? DataChannelMessageReceived;

    public event EventHandler<IPeerDataChannel>? DataChannelOpened;

    public PeerIceGatheringState IceGatheringState { get; private set; }

    /// <summary>Gets or sets how this connection gathers after each local description.</summary>
    public GatheringMode Gathering { get; set; }

    /// <summary>Gets the local candidates emitted, null candidates included, in order.</summary>
    public List<IceCandidate> EmittedCandidates { get; } = [];

    /// <summary>Gets the labels of the data channels created on this side.</summary>
    public List<string> ChannelLabels { get; } = [];

    /// <summary>Gets the data channels that opened on this side.</summary>
    public List<IPeerDataChannel> OpenedChannels { get; } = [];

    /// <summary>Gets the data channel messages sent from this side (label, text).</summary>
    public List<DataChannelMessage> SentOnChannels { get; } = [];

    public string Id { get; }

    public string Owner { get; }

    public PeerLinkPlan Plan { get; }

    public PeerSignalingState SignalingState { get; private set; }

    public PeerConnectionState ConnectionState { get; private set; }

    public SessionDescription? LocalDescription => _pendingLocal ?? CurrentLocal;

    public SessionDescription? RemoteDescription => _pendingRemote ?? CurrentRemote;

    public SessionDescription? CurrentLocal { get; private set; }

    public SessionDescription? CurrentRemote { get; private set; }

    public IReadOnlyList<IceCandidate> RemoteCandidates => _remoteCandidates;

    public List<string> History { get; } = [];

    public int ImplicitRollbacks { get; private set; }

    public bool RejectNextRemoteDescription { get; set; }

    public bool IceHealthy => _iceGen > _failedAtGen;

    public static string? SessionOf(SessionDescription? description) =>
        description is not null && SdpOrigin.TryParse(description.Sdp, out var origin) ? origin.SessionId : null;

    public ValueTask SetLocalDescriptionAsync(CancellationToken cancellationToken = default)
    {
        ThrowIfClosed();
        if (_fabric.RefuseLocalDescriptions)
        {
            throw new PeerConnectionException(PeerConnectionErrorKind.OperationError, "setLocalDescription failed (simulated).");
        }

        if (SignalingState is PeerSignalingState.Stable or PeerSignalingState.HaveLocalOffer)
        {
            if (_restartPending)
            {
                _iceGen++;
                _restartPending = false;
                _restartInPendingOffer = true;
            }

            _pendingOfferRevision = _mediaRevision;
            _pendingLocal = new SessionDescription { Type = SdpType.Offer, Sdp = MakeSdp() };
            SetSignalingState(PeerSignalingState.HaveLocalOffer);
            History.Add("sld:offer");
        }
        else
        {
            // have-remote-offer: create the answer. An ICE restart offer (new remote ufrag) forces new local credentials.
            var restartOffer = CurrentRemote is not null && Ufrag(_pendingRemote) != Ufrag(CurrentRemote);
            if (restartOffer || _restartPending)
            {
                _iceGen++;
                _restartPending = false;
            }

            CurrentLocal = new SessionDescription { Type = SdpType.Answer, Sdp = MakeSdp() };
            CurrentRemote = _pendingRemote;
            _pendingRemote = null;
            History.Add("sld:answer");
            SetSignalingState(PeerSignalingState.Stable);
            Gather();
            OnStable();
            return ValueTask.CompletedTask;
        }

        Gather();
        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// Gets or sets a value indicating whether the next <see cref="SetRemoteDescriptionAsync"/> is held in flight until
    /// <see cref="ReleaseHeld"/> (a loaded browser taking its time). As in the W3C operations chain, an operation still in
    /// flight when the connection closes never settles.
    /// </summary>
    public bool HoldNextRemoteDescription { get; set; }

    /// <summary>Gets a value indicating whether an operation is held in flight.</summary>
    public bool IsHolding => _held is not null;

    /// <summary>Lets the held operation run (it never settles if the connection closed meanwhile).</summary>
    public void ReleaseHeld() => _held?.TrySetResult();

    /// <summary>
    /// What Blazor WebAssembly does, some time later, with an operation the closed connection never settled: the browser
    /// drops the promise (the W3C operations chain aborts it on close: https://w3c.github.io/webrtc-pc/#operations-chain),
    /// the JS garbage collector releases its holder, and .NET's JS interop faults the awaiting task with a
    /// <see cref="TaskCanceledException"/> "WebWorker which is origin of the Promise is being terminated." (dotnet/runtime,
    /// System.Runtime.InteropServices.JavaScript, <c>JSMarshalerArgument.ToManaged(out Task)</c>: the promise holder's
    /// callback called without arguments). Seen in Chromium as a link's negotiation failure after its link was reset.
    /// </summary>
    public void CollectAbandonedOperations() =>
        _abandoned.TrySetException(new TaskCanceledException("WebWorker which is origin of the Promise is being terminated."));

    /// <summary>Gets a value indicating whether an operation was left unsettled by the close and has been faulted since.</summary>
    public bool AbandonedOperationsCollected => Volatile.Read(ref _abandonedOperations) > 0 && _abandoned.Task.IsFaulted;

    private int _abandonedOperations;

    private TaskCompletionSource? _held;
    private readonly TaskCompletionSource _abandoned = new(); // continuations inline: faulted and handled by the time the call returns

    public ValueTask SetRemoteDescriptionAsync(SessionDescription description, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(description);
        ThrowIfClosed();
        if (HoldNextRemoteDescription)
        {
            HoldNextRemoteDescription = false;
            _held = new TaskCompletionSource();
            return new ValueTask(HeldAsync(description));
        }

        return ApplyRemoteDescription(description);
    }

    private async Task HeldAsync(SessionDescription description)
    {
        await _held!.Task;
        _held = null;
        if (SignalingState == PeerSignalingState.Closed)
        {
            Interlocked.Increment(ref _abandonedOperations);
            await _abandoned.Task; // closed meanwhile: the operation is aborted and its promise never settles (until collected)
        }

        await ApplyRemoteDescription(description);
    }

    private ValueTask ApplyRemoteDescription(SessionDescription description)
    {
        if (description.Type == SdpType.Rollback)
        {
            if (SignalingState != PeerSignalingState.HaveRemoteOffer)
            {
                throw new PeerConnectionException(PeerConnectionErrorKind.InvalidState, $"Cannot roll back a remote offer in {SignalingState}.");
            }

            _pendingRemote = null;
            History.Add("srd:rollback");
            SetSignalingState(PeerSignalingState.Stable);
            OnStable();
            return ValueTask.CompletedTask;
        }

        if (RejectNextRemoteDescription || !SdpOrigin.TryParse(description.Sdp, out _) || Ufrag(description) is null)
        {
            RejectNextRemoteDescription = false;
            throw new PeerConnectionException(PeerConnectionErrorKind.InvalidDescription, "sdp-syntax-error");
        }

        if (description.Type == SdpType.Offer)
        {
            if (SignalingState == PeerSignalingState.HaveLocalOffer)
            {
                // Implicit rollback (JSEP 5.7.1 / W3C setRemoteDescription step): the local offer is discarded.
                ImplicitRollbacks++;
                RollbackLocalOffer();
            }

            _pendingRemote = description;
            History.Add("srd:offer");
            SetSignalingState(PeerSignalingState.HaveRemoteOffer);
            return ValueTask.CompletedTask;
        }

        if (SignalingState != PeerSignalingState.HaveLocalOffer)
        {
            throw new PeerConnectionException(PeerConnectionErrorKind.InvalidState, $"Cannot apply a remote answer in {SignalingState}.");
        }

        CurrentRemote = description;
        CurrentLocal = _pendingLocal;
        _pendingLocal = null;
        _negotiatedRevision = _pendingOfferRevision;
        _restartInPendingOffer = false;
        History.Add("srd:answer");
        SetSignalingState(PeerSignalingState.Stable);
        OnStable();
        return ValueTask.CompletedTask;
    }

    /// <summary>Gets or sets a value indicating whether the next <see cref="AddIceCandidateAsync"/> is held in flight until <see cref="ReleaseHeld"/>.</summary>
    public bool HoldNextCandidate { get; set; }

    public ValueTask AddIceCandidateAsync(IceCandidate candidate, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(candidate);
        ThrowIfClosed();
        if (HoldNextCandidate)
        {
            HoldNextCandidate = false;
            _held = new TaskCompletionSource();
            return new ValueTask(HeldCandidateAsync(candidate));
        }

        return AddCandidate(candidate);
    }

    private async Task HeldCandidateAsync(IceCandidate candidate)
    {
        await _held!.Task;
        _held = null;
        if (SignalingState == PeerSignalingState.Closed)
        {
            await new TaskCompletionSource().Task; // closed meanwhile: the operation never settles
        }

        await AddCandidate(candidate);
    }

    private ValueTask AddCandidate(IceCandidate candidate)
    {
        if (RemoteDescription is null)
        {
            throw new PeerConnectionException(PeerConnectionErrorKind.InvalidState, "No remote description.");
        }

        if (candidate.Candidate.Length > 0 && candidate.UsernameFragment is not null && candidate.UsernameFragment != Ufrag(RemoteDescription))
        {
            throw new PeerConnectionException(PeerConnectionErrorKind.OperationError, "The candidate's ufrag matches no remote description.");
        }

        lock (_remoteCandidates)
        {
            _remoteCandidates.Add(candidate); // the partner reads them (HoldsCandidateOf) from its own thread
        }

        if (SignalingState == PeerSignalingState.Stable)
        {
            _fabric.Evaluate(this); // a candidate can be what completes the pair
        }

        return ValueTask.CompletedTask;
    }

    public void RestartIce()
    {
        ThrowIfClosed();
        _restartPending = true;
        History.Add("restartIce");
        if (SignalingState == PeerSignalingState.Stable)
        {
            NegotiationNeeded?.Invoke(this, EventArgs.Empty);
        }
    }

    public IPeerDataChannel CreateDataChannel(string label)
    {
        AddTrack();
        ChannelLabels.Add(label);
        return new Channel(this, label);
    }

    /// <summary>Adds local media: negotiation is needed until an offer of ours carrying it is answered.</summary>
    public void AddTrack()
    {
        ThrowIfClosed();
        _mediaRevision++;
        if (SignalingState == PeerSignalingState.Stable)
        {
            NegotiationNeeded?.Invoke(this, EventArgs.Empty);
        }
    }

    public void Close()
    {
        if (SignalingState == PeerSignalingState.Closed)
        {
            return;
        }

        SignalingState = PeerSignalingState.Closed;
        ConnectionState = PeerConnectionState.Closed;
    }

    public void Dispose() => Close();

    internal void SetConnectionState(PeerConnectionState state)
    {
        if (ConnectionState != state && SignalingState != PeerSignalingState.Closed)
        {
            ConnectionState = state;
            ConnectionStateChanged?.Invoke(this, state);
            if (state == PeerConnectionState.Connected && !_channelsOpened)
            {
                // The data channels created on either side open with the first connection (SCTP over DTLS).
                _channelsOpened = true;
                var labels = ChannelLabels.Concat(_fabric.PartnerOf(this)?.ChannelLabels ?? []).Distinct(StringComparer.Ordinal).ToArray();
                foreach (var label in labels)
                {
                    var channel = new Channel(this, label);
                    OpenedChannels.Add(channel);
                    DataChannelOpened?.Invoke(this, channel);
                }
            }
        }
    }

    /// <summary>
    /// Gets whether this connection holds a remote candidate of <paramref name="other"/>'s current ICE credentials that a
    /// check can use: not an active TCP one, which pairs only with a passive candidate (RFC 6544, section 6.2; none here).
    /// </summary>
    internal bool HoldsCandidateOf(SimulatedPeerConnection other)
    {
        var ufrag = Ufrag(other.CurrentLocal);
        var ours = Ufrag(CurrentRemote);
        lock (_remoteCandidates)
        {
            return ufrag is not null && _remoteCandidates.Exists(c => c.Candidate.Length > 0 && !c.Candidate.Contains(" tcptype active", StringComparison.Ordinal) && (c.UsernameFragment ?? ours) == ufrag);
        }
    }

    internal void MarkFailed()
    {
        _failedAtGen = _iceGen;
        SetConnectionState(PeerConnectionState.Failed);
    }

    private static string? Ufrag(SessionDescription? description) => SdpOrigin.ReadAttribute(description?.Sdp, "ice-ufrag");

    private void RollbackLocalOffer()
    {
        _pendingLocal = null;
        if (_restartInPendingOffer)
        {
            _restartPending = true;
            _restartInPendingOffer = false;
        }

        History.Add("rollback");
        SetSignalingState(PeerSignalingState.Stable);
    }

    private void OnStable()
    {
        if (ConnectionState == PeerConnectionState.New)
        {
            SetConnectionState(PeerConnectionState.Connecting);
        }

        _fabric.Evaluate(this);
        if (SignalingState == PeerSignalingState.Stable && (_restartPending || _mediaRevision != _negotiatedRevision))
        {
            NegotiationNeeded?.Invoke(this, EventArgs.Empty);
        }
    }

    /// <summary>Gets or sets how many candidates each gathering emits, one event each, as a browser does for its host candidates.</summary>
    public int CandidatesPerGathering { get; set; } = 1;

    private int _emitted;

    private void Gather()
    {
        if (Gathering == GatheringMode.Manual)
        {
            SetGatheringState(PeerIceGatheringState.Gathering);
            return;
        }

        SetGatheringState(PeerIceGatheringState.Gathering);
        for (var i = 0; i < CandidatesPerGathering; i++)
        {
            EmitCandidate();
        }

        if (Gathering != GatheringMode.NeverCompletes)
        {
            CompleteGathering();
        }
    }

    /// <summary>Emits one host candidate of the current ICE generation (an <c>icecandidate</c> event).</summary>
    public void EmitCandidate() =>
        EmitHostCandidate(i => string.Create(CultureInfo.InvariantCulture, $"udp 2122260223 10.0.0.{Id} {50000 + _iceGen + (1000 * (i % 10))} typ host"));

    /// <summary>
    /// Emits one active TCP host candidate of the current ICE generation, as Chromium gathers them after its UDP host
    /// candidates: <c>tcptype active</c> on port 9 (RFC 6544, section 4.5). An active candidate pairs only with a passive
    /// one (section 6.2), and these connections gather none (neither does Chromium), so it never links a pair up here
    /// (<see cref="HoldsCandidateOf"/>).
    /// </summary>
    public void EmitActiveTcpCandidate() =>
        EmitHostCandidate(_ => string.Create(CultureInfo.InvariantCulture, $"tcp 1518280447 10.0.0.{Id} 9 typ host tcptype active generation 0"));

    /// <summary>Emits a candidate of this connection's first m-line: its line from the transport on is <paramref name="transportOnwards"/> of the candidate's number.</summary>
    private void EmitHostCandidate(Func<int, string> transportOnwards)
    {
        var i = _emitted++;
        Raise(new IceCandidate
        {
            Candidate = string.Create(CultureInfo.InvariantCulture, $"candidate:{Id}-{i} 1 {transportOnwards(i)}"),
            SdpMid = "0",
            SdpMLineIndex = 0,
            UsernameFragment = Ufrag(LocalDescription),
        });
    }

    /// <summary>Ends the gathering: <c>complete</c> and the null candidate, in the order <see cref="Gathering"/> says.</summary>
    public void CompleteGathering()
    {
        if (Gathering == GatheringMode.CompletesNullCandidateFirst)
        {
            Raise(new IceCandidate { Candidate = string.Empty });
            SetGatheringState(PeerIceGatheringState.Complete);
            return;
        }

        SetGatheringState(PeerIceGatheringState.Complete);
        Raise(new IceCandidate { Candidate = string.Empty });
    }

    private void Raise(IceCandidate candidate)
    {
        if (SignalingState == PeerSignalingState.Closed)
        {
            return;
        }

        EmittedCandidates.Add(candidate);
        LocalIceCandidate?.Invoke(this, candidate);
    }

    private void SetGatheringState(PeerIceGatheringState state)
    {
        if (IceGatheringState != state && SignalingState != PeerSignalingState.Closed)
        {
            IceGatheringState = state;
            IceGatheringStateChanged?.Invoke(this, state);
        }
    }

    private string MakeSdp()
    {
        _version++;
        return string.Create(CultureInfo.InvariantCulture, $"v=0\r\no=- {Id} {_version} IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=ice-ufrag:u{Id}g{_iceGen}\r\na=ice-pwd:p{Id}g{_iceGen}\r\na=x-media-revision:{_mediaRevision}\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n");
    }

    private void SetSignalingState(PeerSignalingState state)
    {
        if (SignalingState != state)
        {
            SignalingState = state;
            SignalingStateChanged?.Invoke(this, state);
        }
    }

    private void ThrowIfClosed()
    {
        if (SignalingState == PeerSignalingState.Closed)
        {
            throw new PeerConnectionException(PeerConnectionErrorKind.InvalidState, "The connection is closed.");
        }
    }

    private sealed class Channel(SimulatedPeerConnection owner, string label) : IPeerDataChannel
    {
        public string Label => label;

        public bool IsOpen => owner.ConnectionState == PeerConnectionState.Connected;

        public ValueTask SendAsync(string text, CancellationToken cancellationToken = default)
        {
            if (!IsOpen)
            {
                throw new PeerConnectionException(PeerConnectionErrorKind.InvalidState, "The channel is not open.");
            }

            owner.SentOnChannels.Add(new DataChannelMessage(label, text));
            owner._fabric.PartnerOf(owner)?.DataChannelMessageReceived?.Invoke(owner, new DataChannelMessage(label, text));
            return ValueTask.CompletedTask;
        }
    }
}

internal sealed class SimulatedPeerConnectionFactory(SimulatedFabric fabric, string owner) : IPeerConnectionFactory
{
    public List<SimulatedPeerConnection> Created { get; } = [];

    /// <summary>Gets or sets what runs first in <see cref="Create"/> (a test makes it throw, or call back into the mesh).</summary>
    public Action<PeerLinkPlan>? BeforeCreate { get; set; }

    public IPeerConnection Create(PeerLinkPlan plan)
    {
        BeforeCreate?.Invoke(plan);
        var pc = fabric.Create(owner, plan);
        Created.Add(pc);
        return pc;
    }

    public SimulatedPeerConnection Latest(MemberId peer) => Created.Last(pc => pc.Plan.Peer == peer);
}
