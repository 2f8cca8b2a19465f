using System.Text.Json;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Client.Negotiation;

/// <summary>
/// W3C perfect negotiation for one remote member. Every operation (negotiation needed, a remote signal, ICE restart,
/// sending a local candidate) runs through one serialized queue, so the connection never sees two operations at once
/// and no handler is <c>async void</c>. The queue is drained by whichever caller finds it idle.
/// </summary>
internal sealed class PeerNegotiator
{
    /// <summary>The label of the data channel the offerer creates (it starts the first negotiation).</summary>
    public const string ControlChannelLabel = "talki";

    /// <summary>
    /// A session-level attribute the negotiator adds to the answers it sends (<c>a=x-talki-answer-to:{offer session id} {offer version}</c>)
    /// and removes from those it receives, so an answer to an offer of a replaced connection is recognised and dropped.
    /// </summary>
    internal const string AnswerToAttribute = "x-talki-answer-to";

    private const int MaxBufferedCandidates = 256;

    /// <summary>The most local candidates one signal carries (the server refuses more than 64; about 200 bytes each).</summary>
    internal const int MaxCandidatesPerSignal = 32;

    /// <summary>
    /// The largest signal, in UTF-8 JSON bytes, a batch is built up to: the gateways' 32 KB inbound frame limit
    /// (<c>Hosting.MaxInboundMessageBytes</c>, API Gateway's own), less room for the correlation id the connection adds.
    /// A description held for its candidates never makes its signal larger than that: the candidates that do not fit follow.
    /// </summary>
    internal const int MaxSignalBytes = (32 * 1024) - 256;

    /// <summary>
    /// The longest a description with no candidate yet is held, in gather windows: one window, then up to this many in all
    /// while nothing is gathered (a busy device gathers its host candidates late, and a description without one starts no
    /// connectivity check and is followed by a signal of its own); its first candidate ends the wait a fifth of a window later.
    /// </summary>
    internal const int MaxHoldWindows = 4;

    /// <summary>
    /// How long, with the gather window on, candidates that no remote check starts from wait for the link to connect when
    /// they have nothing else to ride with: dropped if it does, sent if not. They are:
    /// <list type="bullet">
    /// <item>the end-of-candidates marker: the remote ICE agent needs it only to conclude that checking failed (RFC 8838,
    /// Trickle ICE, end-of-candidates; W3C webrtc-pc, <c>RTCIceTransportState</c>: "failed" and "completed" require an
    /// indication that no more remote candidates come), which matters for a link still checking after this long;</item>
    /// <item>active TCP candidates (<c>tcptype active</c>, port 9, which Chromium gathers about 110 ms after its UDP host
    /// candidates): an active candidate only opens connections and pairs only with a passive one (RFC 6544, sections 4.5
    /// and 6.2). This side's agent pairs its own active candidates with the remote passive ones it receives and connects
    /// from them; the remote agent, which cannot connect to port 9, learns the address from the incoming check as a
    /// peer-reflexive candidate (RFC 8445, section 7.3.1.3): a link that connects has no use for them, and one that does
    /// not still gets them at the end of the delay.</item>
    /// </list>
    /// Sent at once, either is a signal of its own, handled by the remote side's busy thread while its links come up
    /// (and, on AWS, a billed message); with a candidate that does start checks, they ride along at once.
    /// </summary>
    internal static readonly TimeSpan DeferredCandidatesDelay = TimeSpan.FromSeconds(1);

    private readonly IPeerConnection _pc;
    private readonly Func<SignalMessage, ValueTask> _send;
    private readonly Action<PeerNegotiator, NegotiationErrorKind, Exception?> _onError;
    private readonly Action<PeerNegotiator>? _onRemoteLeft;
    private readonly Action<PeerNegotiator, SessionDescription, IReadOnlyList<IceCandidate>?>? _onRemoteReplaced;
    private readonly object _sync = new();
    private readonly Queue<(Func<ValueTask> Operation, TaskCompletionSource Done)> _queue = new();
    private readonly List<(IceCandidate Candidate, bool SuppressErrors)> _pendingCandidates = [];
    private readonly Queue<IceCandidate> _receivedCandidates = new();
    private readonly HashSet<string> _seenRemoteUfrags = new(StringComparer.Ordinal);
    private readonly HashSet<string> _retiredSessions = new(StringComparer.Ordinal);
    private readonly List<IceCandidate> _outgoingCandidates = [];
    private bool _candidateFlushQueued;
    private ITimer? _trickleTimer; // the window of candidates gathered after their description left
    private ITimer? _deferredTimer; // the wait of deferred candidates alone (see DeferredCandidatesDelay) for the link to connect
    private bool _hasConnected;
    private bool _draining;
    private TaskCompletionSource? _running;
    private bool _closed;
    private bool _makingOffer;
    private bool _ignoreOffer;
    private bool _isSettingRemoteAnswerPending;
    private SdpOrigin? _lastRemoteOrigin;
    private readonly bool _offerOnStart;
    private readonly TimeProvider? _time;
    private readonly TimeSpan _gatherWindow;
    private HeldDescription? _held;
    private string? _gatheredUfrag;
    private bool _endOfCandidatesSent;
    private int _describing;
    private string? _inheritedSession;
    private volatile IPeerDataChannel? _control;
    private volatile bool _inBand;

    public PeerNegotiator(
        PeerLinkPlan plan,
        IPeerConnection pc,
        Func<SignalMessage, ValueTask> send,
        Action<PeerNegotiator, NegotiationErrorKind, Exception?> onError,
        Action<PeerNegotiator>? onRemoteLeft = null,
        Action<PeerNegotiator, SessionDescription, IReadOnlyList<IceCandidate>?>? onRemoteReplaced = null,
        bool? offerOnStart = null,
        IEnumerable<string>? retiredSessions = null,
        string? inheritedSession = null,
        TimeProvider? timeProvider = null,
        TimeSpan candidateGatherWindow = default)
    {
        _inheritedSession = inheritedSession;
        _gatherWindow = candidateGatherWindow > TimeSpan.Zero ? candidateGatherWindow : TimeSpan.Zero;
        _time = _gatherWindow > TimeSpan.Zero ? timeProvider ?? TimeProvider.System : null;
        Plan = plan;
        _onRemoteReplaced = onRemoteReplaced;
        _offerOnStart = offerOnStart ?? plan.Offerer;
        _retiredSessions.UnionWith(retiredSessions ?? []);
        _pc = pc;
        _send = send;
        _onError = onError;
        _onRemoteLeft = onRemoteLeft;
        _pc.NegotiationNeeded += OnNegotiationNeeded;
        _pc.LocalIceCandidate += OnLocalIceCandidate;
        _pc.IceGatheringStateChanged += OnIceGatheringStateChanged;
        _pc.ConnectionStateChanged += OnConnectionStateChanged;
        _pc.DataChannelOpened += OnDataChannelOpened;
        _pc.DataChannelMessageReceived += OnDataChannelMessage;
    }

    /// <summary>
    /// Gets or sets a value indicating whether signals go over the link's control data channel instead of the server
    /// (after the room sealed). Signals still go to the server while the channel is not open.
    /// </summary>
    public bool SignalInBand
    {
        get => _inBand;
        set => _inBand = value;
    }

    /// <summary>Gets the remote SDP sessions this link retired (a fresh link inherits them to drop late signals).</summary>
    public IEnumerable<string> RetiredSessions => [.. _retiredSessions];

    /// <summary>Gets the remote session this link last applied (a fresh link after a local reset still accepts it until it moves on).</summary>
    public string? CurrentRemoteSession => _lastRemoteOrigin?.SessionId;

    /// <summary>Gets the retired sessions plus the current remote one (for a fresh link replacing this one because the peer replaced its connection).</summary>
    public IEnumerable<string> AllRemoteSessions => _lastRemoteOrigin is { } last ? [.. _retiredSessions, last.SessionId] : [.. _retiredSessions];

    /// <summary>
    /// Gets the remote candidates this link received (the latest ones, bounded): a fresh link replacing this one gets them
    /// again, since the remote side may not gather new ones; candidates of another ICE generation are held or dropped there.
    /// </summary>
    public IReadOnlyList<IceCandidate> ReceivedCandidates => [.. _receivedCandidates];

    public PeerLinkPlan Plan { get; }

    /// <summary>Gets or sets the link-up watchdog's timer (disposed once connected or closed).</summary>
    public ITimer? Watchdog { get; set; }

    /// <summary>Gets or sets how many times in a row the watchdog has reset this peer's link.</summary>
    public int WatchdogResets { get; set; }

    /// <summary>Gets or sets how many links to this peer in a row were replaced after an error without ever connecting.</summary>
    public int ErrorResets { get; set; }

    /// <summary>Gets a value indicating whether this link's connection has been <c>connected</c> at least once.</summary>
    public bool HasConnected => Volatile.Read(ref _hasConnected);

    /// <summary>Stops the link-up watchdog.</summary>
    public void StopWatchdog() => Watchdog?.Dispose();

    public IPeerConnection Connection => _pc;

    /// <summary>Gets a value indicating whether the link's control data channel is open (in-band signalling works).</summary>
    public bool ControlChannelOpen => _control is { IsOpen: true };

    public bool IsClosed
    {
        get
        {
            lock (_sync)
            {
                return _closed;
            }
        }
    }

    public PeerLinkState Snapshot() => new(Plan.Peer, Plan.PeerEpoch, Plan.Offerer, Plan.Polite, _pc.SignalingState, _pc.ConnectionState);

    /// <summary>
    /// Starts the link: the offerer creates the control data channel, which raises negotiation needed. A link that replaces a
    /// reset one offers whatever its role, since the remote side still holds the old connection and will not offer.
    /// </summary>
    public Task StartAsync() => EnqueueAsync(() =>
    {
        if (_offerOnStart)
        {
            _pc.CreateDataChannel(ControlChannelLabel);
        }

        return ValueTask.CompletedTask;
    });

    /// <summary>Handles a signal relayed from the remote member (the epoch was checked by the mesh).</summary>
    public Task HandleSignalAsync(SessionDescription? description, IReadOnlyList<IceCandidate>? candidates) =>
        EnqueueAsync(() => HandleSignalCoreAsync(description, candidates));

    public void Close()
    {
        (Func<ValueTask> Operation, TaskCompletionSource Done)[] dropped;
        TaskCompletionSource? running;
        HeldDescription? held;
        ITimer? trickle;
        ITimer? deferred;
        lock (_sync)
        {
            _closed = true;
            dropped = [.. _queue];
            _queue.Clear();
            running = _running;
            held = _held;
            _held = null; // a description held for its candidates dies with the link: it is never sent
            trickle = _trickleTimer;
            _trickleTimer = null;
            deferred = _deferredTimer;
            _deferredTimer = null;
        }

        held?.Timer?.Dispose();
        trickle?.Dispose();
        deferred?.Dispose();

        foreach (var item in dropped)
        {
            item.Done.TrySetResult();
        }

        // The operation in flight too: closing aborts it and the browser never settles it (the W3C operations chain),
        // and whoever awaits it (the socket's receive loop, for a signal past InFlightSignals' bound) must not wait for ever.
        running?.TrySetResult();

        _pc.NegotiationNeeded -= OnNegotiationNeeded;
        _pc.LocalIceCandidate -= OnLocalIceCandidate;
        _pc.IceGatheringStateChanged -= OnIceGatheringStateChanged;
        _pc.ConnectionStateChanged -= OnConnectionStateChanged;
        _pc.DataChannelOpened -= OnDataChannelOpened;
        _pc.DataChannelMessageReceived -= OnDataChannelMessage;
        StopWatchdog();
        _pc.Close();
        _pc.Dispose();
    }

    /// <summary>Tells the remote member over the control channel that this side leaves (used once the server is gone).</summary>
    public async Task SayGoodbyeAsync()
    {
        if (_control is { IsOpen: true } control)
        {
            try
            {
                await SendInBandAsync(control, new LeaveMessage()).ConfigureAwait(false);
            }
            catch (PeerConnectionException)
            {
                // The channel closed meanwhile: the peer notices the link going down anyway.
            }
        }
    }

    private void OnNegotiationNeeded(object? sender, EventArgs e) => _ = EnqueueAsync(MakeOfferAsync);

    private void OnDataChannelOpened(object? sender, IPeerDataChannel channel)
    {
        if (channel.Label == ControlChannelLabel)
        {
            _control = channel;
        }
    }

    private void OnDataChannelMessage(object? sender, DataChannelMessage message)
    {
        if (message.Label != ControlChannelLabel || IsClosed)
        {
            return;
        }

        ClientMessage? parsed;
        try
        {
            parsed = JsonSerializer.Deserialize(message.Text, TalkiJsonContext.Default.ClientMessage);
        }
        catch (JsonException ex)
        {
            _onError(this, NegotiationErrorKind.InBandMessageMalformed, ex);
            return;
        }

        switch (parsed)
        {
            case SignalMessage signal:
                _ = HandleSignalAsync(signal.Description, signal.Candidates);
                break;
            case LeaveMessage:
                _onRemoteLeft?.Invoke(this);
                break;
            default:
                // Forward compatibility: other in-band messages are ignored.
                break;
        }
    }

    /// <summary>
    /// Local candidates are batched. While a description is held for its gather window, they wait for it and leave in its
    /// signal; the null candidate (the end of gathering) ends the window at once. After it, a candidate opens a trickle
    /// window of the same length and the candidates gathered within it leave as one signal (the null candidate sends the
    /// batch at once); with the window off, each joins the batch the link's queue sends next, as before.
    /// </summary>
    private void OnLocalIceCandidate(object? sender, IceCandidate candidate)
    {
        HeldDescription? complete = null;
        ITimer? trickle = null;
        var flush = false;
        lock (_sync)
        {
            if (IsEndOfGathering(candidate))
            {
                _gatheredUfrag = LocalUfrag();
                if (_endOfCandidatesSent)
                {
                    // The gathering state reported complete first (the W3C order) and the description left with an
                    // end-of-candidates marker in its place: this one was signalled already.
                    _endOfCandidatesSent = false;
                    return;
                }

                complete = _held;
            }

            _outgoingCandidates.Add(candidate);
            if (_held is { Phase: HoldPhase.AwaitingCandidate, Ending: null } awaiting && complete is null)
            {
                awaiting.Phase = HoldPhase.Straggler;
                awaiting.Rearm(_gatherWindow / 5);
            }

            if (_held is null && !_candidateFlushQueued)
            {
                if (_time is not null && IsDeferred(candidate) && _outgoingCandidates.TrueForAll(IsDeferred))
                {
                    // Only candidates no remote check starts from (the end of gathering, active TCP ones), after the
                    // description left: dropped on a connected link, else they wait for it to connect (see DeferredCandidatesDelay)
                    // from the first of them, unless a candidate that starts checks comes to take them along.
                    if (_pc.ConnectionState == PeerConnectionState.Connected)
                    {
                        _outgoingCandidates.Clear();
                        return;
                    }

                    // A trickle window still running has nothing left of its own (its candidates left with a description).
                    trickle = _trickleTimer;
                    _trickleTimer = null;
                    _deferredTimer ??= _time.CreateTimer(static state => ((PeerNegotiator)state!).OnDeferredCandidatesDelayEnded(), this, DeferredCandidatesDelay, Timeout.InfiniteTimeSpan);
                }
                else if (_time is null || IsEndOfGathering(candidate))
                {
                    // No window, or nothing more will come: the batch leaves now.
                    _candidateFlushQueued = true;
                    flush = true;
                    trickle = _trickleTimer;
                    _trickleTimer = null;
                }
                else
                {
                    // Candidates gathered after their description left trickle in batches, one per window.
                    _trickleTimer ??= _time.CreateTimer(static state => ((PeerNegotiator)state!).OnTrickleWindowEnded(), this, _gatherWindow, Timeout.InfiniteTimeSpan);
                }
            }
        }

        trickle?.Dispose();
        complete?.EndedBy(EndOfWindow.NullCandidate);
        if (flush)
        {
            _ = EnqueueAsync(SendCandidatesAsync);
        }
    }

    /// <summary>
    /// The connection's gathering state: <c>complete</c> ends the gather window of a held description. The W3C update of the
    /// gathering state fires <c>icegatheringstatechange</c> and then the null candidate
    /// (https://w3c.github.io/webrtc-pc/#update-ice-gathering-state; MDN:
    /// https://developer.mozilla.org/en-US/docs/Web/API/RTCPeerConnection/icegatheringstatechange_event), so the description then
    /// carries an end-of-candidates marker in the null candidate's place and the null candidate that follows is not sent again.
    /// </summary>
    private void OnIceGatheringStateChanged(object? sender, PeerIceGatheringState state)
    {
        HeldDescription? held = null;
        ITimer? stale = null;
        lock (_sync)
        {
            if (state != PeerIceGatheringState.Complete)
            {
                // A new gathering (a new generation, or a new interface): descriptions wait for it, and its null candidate is sent.
                // Deferred candidates of the gathering before, still waiting, are dropped: its end-of-candidates must not
                // ride with the new generation's description or candidates and tell the remote agent that this one is
                // over, and its active TCP candidates are no use to the new one.
                _gatheredUfrag = null;
                _endOfCandidatesSent = false;
                _outgoingCandidates.RemoveAll(IsDeferred);
                stale = _deferredTimer;
                _deferredTimer = null;
            }
            else
            {
                _gatheredUfrag = LocalUfrag();
                held = _held;
            }
        }

        stale?.Dispose();
        held?.EndedBy(EndOfWindow.GatheringComplete);
    }

    /// <summary>
    /// Deferred candidates waited <see cref="DeferredCandidatesDelay"/>: they leave now (or are dropped by
    /// <see cref="SendCandidatesAsync"/> if the link connected meanwhile), unless they left already with a later signal.
    /// </summary>
    private void OnDeferredCandidatesDelayEnded() => FlushWaitingCandidates(ref _deferredTimer);

    /// <summary>The trickle window of candidates gathered after their description ended: they leave as one signal.</summary>
    private void OnTrickleWindowEnded() => FlushWaitingCandidates(ref _trickleTimer);

    /// <summary>
    /// The timer <paramref name="timer"/> holds ended: the candidates waiting after their description left go as one signal,
    /// unless the link closed, a held description takes them, or a batch is already queued.
    /// </summary>
    private void FlushWaitingCandidates(ref ITimer? timer)
    {
        ITimer? ended;
        lock (_sync)
        {
            ended = timer;
            timer = null;
            if (_closed || _held is not null || _candidateFlushQueued || _outgoingCandidates.Count == 0)
            {
                ended?.Dispose();
                return;
            }

            _candidateFlushQueued = true;
        }

        ended?.Dispose();
        _ = EnqueueAsync(SendCandidatesAsync);
    }

    private async ValueTask SendCandidatesAsync()
    {
        IceCandidate[] batch;
        lock (_sync)
        {
            _candidateFlushQueued = false;
            if (_held is not null)
            {
                return; // they leave with the held description
            }

            batch = [.. _outgoingCandidates];
            _outgoingCandidates.Clear();
        }

        if (_time is not null && Array.TrueForAll(batch, IsDeferred) && _pc.ConnectionState == PeerConnectionState.Connected)
        {
            // Only deferred candidates once the link is up (see DeferredCandidatesDelay): the remote agent needs the end of
            // candidates to give up on pairs sooner and active TCP ones not at all. With the gather window on, not worth a message.
            return;
        }

        foreach (var signal in Batch(null, batch))
        {
            await SendAsync(signal).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Sends a local description just set (an offer, an answer, or a pending offer sent again): at once when the gather
    /// window is off or this ICE generation has gathered already, else held until gathering completes or the window ends,
    /// then sent in one signal with the candidates gathered meanwhile (see <see cref="TalkiClientOptions.CandidateGatherWindow"/>).
    /// </summary>
    /// <param name="applied">The description as the connection reports it (to tell later whether it is still current).</param>
    /// <param name="toSend">The description to send (an answer carries the offer it answers).</param>
    private async ValueTask SendDescriptionAsync(SessionDescription? applied, SessionDescription? toSend)
    {
        if (_time is null || applied is null || toSend is null)
        {
            await SendAsync(new SignalMessage { To = Plan.Peer, ToEpoch = Plan.PeerEpoch, Description = toSend }).ConfigureAwait(false);
            return;
        }

        await ReleaseHeldAsync().ConfigureAwait(false); // never two held: the previous one leaves first (or is dropped if stale)
        IceCandidate[]? batch = null;
        ITimer? stale = null;
        lock (_sync)
        {
            if (_closed)
            {
                return;
            }

            var ufrag = SdpOrigin.ReadAttribute(applied.Sdp, "ice-ufrag");
            if (ufrag is not null && string.Equals(ufrag, _gatheredUfrag, StringComparison.Ordinal))
            {
                // This ICE generation finished gathering already (a renegotiation without an ICE restart gathers nothing new).
                batch = [.. _outgoingCandidates];
                _outgoingCandidates.Clear();
            }
            else
            {
                var held = new HeldDescription(this, applied, toSend);
                _held = held;
                held.Rearm(_gatherWindow);
                if (ufrag is not null)
                {
                    // An ICE restart while the gathering before had not completed (no gathering state change): its active
                    // TCP candidates still waiting are no use to the new generation, and their delay is not the new ones'.
                    _outgoingCandidates.RemoveAll(c => IsActiveTcp(c.Candidate) && c.UsernameFragment is { } of && !string.Equals(of, ufrag, StringComparison.Ordinal));
                    if (!_outgoingCandidates.Exists(IsDeferred))
                    {
                        stale = _deferredTimer;
                        _deferredTimer = null;
                    }
                }
            }
        }

        stale?.Dispose();
        foreach (var signal in batch is null ? [] : Batch(toSend, batch))
        {
            await SendAsync(signal).ConfigureAwait(false);
        }
    }

    /// <summary>Sends the held description now if it is still current, or drops it; runs on the link's queue.</summary>
    private ValueTask ReleaseHeldAsync()
    {
        HeldDescription? held;
        lock (_sync)
        {
            held = _held;
        }

        return held is null ? ValueTask.CompletedTask : FlushHeldAsync(held);
    }

    /// <summary>
    /// Sends <paramref name="held"/> now that its window ended (once, and only while it is held). Not through the link's
    /// queue: sending touches no operation of the connection, and the queue may be busy adding the remote candidates that
    /// came with the offer being answered (one <c>addIceCandidate</c> after another), which would stretch the window. Only
    /// while a description is being set is it left to the end of that operation, which may have made it stale.
    /// </summary>
    private void RequestFlush(HeldDescription held, EndOfWindow reason)
    {
        lock (_sync)
        {
            if (!ReferenceEquals(_held, held) || held.Ending is not null)
            {
                return;
            }

            if (reason == EndOfWindow.Timeout && held.Phase == HoldPhase.Window && !_outgoingCandidates.Exists(static c => !IsEndOfGathering(c)))
            {
                held.Phase = HoldPhase.AwaitingCandidate;
                held.Rearm(_gatherWindow * (MaxHoldWindows - 1));
                return;
            }

            held.Ending = reason;
            if (_describing > 0)
            {
                return; // DescribeAsync sends it when the operation ends
            }
        }

        _ = FlushHeldAsync(held).AsTask(); // SendAsync reports its own failures
    }

    private ValueTask SetLocalDescriptionAsync() => DescribeAsync(() => _pc.SetLocalDescriptionAsync());

    /// <summary>Runs a description operation of the connection; a held description whose window ended meanwhile is sent (or dropped) after it.</summary>
    private async ValueTask DescribeAsync(Func<ValueTask> operation)
    {
        lock (_sync)
        {
            _describing++;
        }

        try
        {
            await operation().ConfigureAwait(false);
        }
        finally
        {
            HeldDescription? due;
            lock (_sync)
            {
                _describing--;
                due = _describing == 0 && _held is { Ending: not null } held ? held : null;
            }

            if (due is not null)
            {
                await FlushHeldAsync(due).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// Sends a held description with the candidates gathered so far, unless it is no longer the connection's local
    /// description (rolled back by a remote offer, replaced) or the link closed: a stale description is never sent, and its
    /// candidates wait for the next one (the remote side sorts them by ICE generation).
    /// </summary>
    private async ValueTask FlushHeldAsync(HeldDescription held)
    {
        IceCandidate[] batch;
        var sendCandidatesAlone = false;
        lock (_sync)
        {
            if (!ReferenceEquals(_held, held))
            {
                return;
            }

            _held = null;
            held.Timer?.Dispose();
            if (_closed)
            {
                return;
            }

            if (IsCurrent(held.Applied))
            {
                if (held.Ending == EndOfWindow.GatheringComplete && !_outgoingCandidates.Exists(IsEndOfGathering))
                {
                    _outgoingCandidates.Add(new IceCandidate { Candidate = string.Empty });
                    _endOfCandidatesSent = true;
                }

                batch = [.. _outgoingCandidates];
                _outgoingCandidates.Clear();
            }
            else
            {
                // Stale: dropped. Its candidates go out on their own, or with the next description if one is held by then.
                batch = [];
                sendCandidatesAlone = _outgoingCandidates.Count > 0 && !_candidateFlushQueued;
                _candidateFlushQueued |= sendCandidatesAlone;
                if (!sendCandidatesAlone)
                {
                    return;
                }
            }
        }

        if (sendCandidatesAlone)
        {
            _ = EnqueueAsync(SendCandidatesAsync);
            return;
        }

        foreach (var signal in Batch(held.ToSend, batch))
        {
            await SendAsync(signal).ConfigureAwait(false);
        }
    }

    /// <summary>Whether <paramref name="applied"/> is still the connection's local description (same type and o= line: a browser adds gathered candidates to its SDP).</summary>
    private bool IsCurrent(SessionDescription applied)
    {
        var local = _pc.LocalDescription;
        return local is not null && local.Type == applied.Type && IsSameOrigin(local, applied);
    }

    private string? LocalUfrag() => SdpOrigin.ReadAttribute(_pc.LocalDescription?.Sdp, "ice-ufrag");

    /// <summary>The browser's null candidate: every transport finished gathering (an empty line naming no m-line).</summary>
    private static bool IsEndOfGathering(IceCandidate candidate) =>
        candidate.Candidate.Length == 0 && candidate.SdpMid is null && candidate.SdpMLineIndex is null;

    /// <summary>A candidate no remote connectivity check starts from, which waits for the link (see <see cref="DeferredCandidatesDelay"/>).</summary>
    private static bool IsDeferred(IceCandidate candidate) => IsEndOfGathering(candidate) || IsActiveTcp(candidate.Candidate);

    /// <summary>
    /// Whether a candidate line is an active TCP candidate: transport (the third field) <c>tcp</c> and the extension
    /// <c>tcptype active</c> (RFC 6544, section 4.5; the grammar of RFC 8839, section 5.1: foundation, component, transport,
    /// priority, address, port, <c>typ</c> type, then name-value pairs, <c>raddr</c> and <c>rport</c> among them).
    /// </summary>
    internal static bool IsActiveTcp(string candidate)
    {
        var field = 0;
        var tcp = false;
        var previous = ReadOnlySpan<char>.Empty;
        foreach (var range in candidate.AsSpan().Split(' '))
        {
            var token = candidate.AsSpan(range);
            if (token.IsEmpty)
            {
                continue;
            }

            if (field == 2)
            {
                tcp = token.Equals("tcp", StringComparison.OrdinalIgnoreCase);
                if (!tcp)
                {
                    return false;
                }
            }
            else if (field > 8 && field % 2 == 1 && previous.Equals("tcptype", StringComparison.OrdinalIgnoreCase))
            {
                return token.Equals("active", StringComparison.OrdinalIgnoreCase); // value of a name at 8, 10, …; ABNF literals ignore case
            }

            previous = token;
            field++;
        }

        return false;
    }

    /// <summary>
    /// Splits a description and candidates into signals the server relays: at most <see cref="MaxCandidatesPerSignal"/>
    /// candidates and <see cref="MaxSignalBytes"/> bytes each, the description (if any) in the first, candidates in order.
    /// </summary>
    internal IEnumerable<SignalMessage> Batch(SessionDescription? description, IReadOnlyList<IceCandidate> candidates) =>
        Batch(Plan.Peer, Plan.PeerEpoch, description, candidates);

    /// <inheritdoc cref="Batch(SessionDescription?, IReadOnlyList{IceCandidate})"/>
    internal static List<SignalMessage> Batch(MemberId to, long toEpoch, SessionDescription? description, IReadOnlyList<IceCandidate> candidates)
    {
        var signals = new List<SignalMessage>();
        var next = 0;
        var first = true;
        while (first || next < candidates.Count)
        {
            var signal = new SignalMessage { To = to, ToEpoch = toEpoch, Description = first ? description : null };
            var take = Math.Min(MaxCandidatesPerSignal, candidates.Count - next);
            while (take > 0 && !SignalSize.Fits(signal with { Candidates = Slice(candidates, next, take) }, MaxSignalBytes))
            {
                take--; // rare (a large description): fewer candidates ride with it, the rest follow
            }

            if (take == 0 && signal.Description is null && next < candidates.Count)
            {
                take = 1; // one candidate larger than a frame: sent alone, as before, for the server to judge
            }

            if (signal.Description is not null || take > 0)
            {
                signals.Add(take > 0 ? signal with { Candidates = Slice(candidates, next, take) } : signal);
            }

            next += take;
            first = false;
        }

        return signals;
    }

    private static IceCandidate[] Slice(IReadOnlyList<IceCandidate> candidates, int start, int count)
    {
        var slice = new IceCandidate[count];
        for (var i = 0; i < count; i++)
        {
            slice[i] = candidates[start + i];
        }

        return slice;
    }

    private void OnConnectionStateChanged(object? sender, PeerConnectionState state)
    {
        if (state == PeerConnectionState.Connected)
        {
            Volatile.Write(ref _hasConnected, true);
        }

        if (state == PeerConnectionState.Failed)
        {
            // The W3C recommendation: restart ICE when the connection fails; restartIce raises negotiationneeded.
            _ = EnqueueAsync(() =>
            {
                _pc.RestartIce();
                return ValueTask.CompletedTask;
            });
        }
    }

    private async ValueTask MakeOfferAsync()
    {
        // negotiationneeded was queued; if a remote offer got in first, the connection raises it again once stable.
        if (_pc.SignalingState != PeerSignalingState.Stable)
        {
            return;
        }

        // The plan names one side to start. The other side's own changes (tracks added at creation) wait for its first
        // answer: its tracks ride in that answer where the offer has room, and the connection raises negotiationneeded
        // again once stable for anything left. This avoids a glare (and a rollback) on every new link.
        if (!_offerOnStart && _pc.RemoteDescription is null)
        {
            return;
        }

        try
        {
            await ReleaseHeldAsync().ConfigureAwait(false); // a held answer leaves before the next offer replaces it
            _makingOffer = true;
            await SetLocalDescriptionAsync().ConfigureAwait(false);
            var offer = _pc.LocalDescription;
            await SendDescriptionAsync(offer, offer).ConfigureAwait(false);
        }
        catch (PeerConnectionException ex)
        {
            _onError(this, NegotiationErrorKind.LocalDescriptionFailed, ex);
        }
        finally
        {
            _makingOffer = false;
        }
    }

    private async ValueTask HandleSignalCoreAsync(SessionDescription? description, IReadOnlyList<IceCandidate>? candidates)
    {
        if (description is not null)
        {
            if (_onRemoteReplaced is not null && IsOfferFromReplacedConnection(description))
            {
                // The peer reset its side of the link (a new connection, new DTLS identity): this side starts afresh too.
                _onRemoteReplaced(this, description, candidates);
                return;
            }

            var outcome = await HandleDescriptionAsync(description).ConfigureAwait(false);
            if (outcome == DescriptionOutcome.Failed)
            {
                return;
            }
        }

        if (candidates is null)
        {
            return;
        }

        foreach (var candidate in candidates)
        {
            _receivedCandidates.Enqueue(candidate);
            if (_receivedCandidates.Count > MaxBufferedCandidates)
            {
                _receivedCandidates.Dequeue();
            }

            await OfferCandidateAsync(candidate, _ignoreOffer).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Adds a remote candidate, or holds it while no remote description exists (the spec rejects it with InvalidStateError)
    /// or while its ufrag belongs to a description not applied yet (it overtook an ICE-restart offer); a candidate of an
    /// earlier ICE generation is dropped.
    /// </summary>
    private async ValueTask OfferCandidateAsync(IceCandidate candidate, bool suppressErrors)
    {
        var remote = _pc.RemoteDescription;
        var remoteUfrag = SdpOrigin.ReadAttribute(remote?.Sdp, "ice-ufrag");
        var ufrag = candidate.UsernameFragment;
        if (remote is null || (ufrag is not null && remoteUfrag is not null && ufrag != remoteUfrag && !_seenRemoteUfrags.Contains(ufrag)))
        {
            if (_pendingCandidates.Count < MaxBufferedCandidates)
            {
                _pendingCandidates.Add((candidate, suppressErrors)); // errors stay suppressed if they belong to an ignored offer
            }

            return;
        }

        if (ufrag is not null && remoteUfrag is not null && ufrag != remoteUfrag)
        {
            return; // an earlier ICE generation
        }

        await AddCandidateAsync(candidate, suppressErrors).ConfigureAwait(false);
    }

    private bool IsOfferFromReplacedConnection(SessionDescription description) =>
        description.Type == SdpType.Offer
        && _pc.RemoteDescription is not null
        && _lastRemoteOrigin is { } last
        && SdpOrigin.TryParse(description.Sdp, out var origin)
        && origin.SessionId != last.SessionId
        && !_retiredSessions.Contains(origin.SessionId);

    private async ValueTask<DescriptionOutcome> HandleDescriptionAsync(SessionDescription description)
    {
        if (description.Type is SdpType.Answer or SdpType.Pranswer && SdpOrigin.ReadAttribute(description.Sdp, AnswerToAttribute) is { } answerTo)
        {
            // The answer names the offer it answers: one to an offer this connection did not make (a reset link, or an
            // earlier offer) is stale. The tag is ours, so it is removed before the connection sees the description.
            if (_pc.LocalDescription is not { Type: SdpType.Offer } localOffer
                || !SdpOrigin.TryParse(localOffer.Sdp, out var localOrigin)
                || !string.Equals(answerTo, $"{localOrigin.SessionId} {localOrigin.Version.ToString(System.Globalization.CultureInfo.InvariantCulture)}", StringComparison.Ordinal))
            {
                return DescriptionOutcome.Dropped;
            }

            description = description with { Sdp = SdpOrigin.RemoveAttribute(description.Sdp, AnswerToAttribute) };
        }

        SdpOrigin? appliedOffer = null;
        if (description.Type is SdpType.Offer or SdpType.Answer or SdpType.Pranswer)
        {
            if (!SdpOrigin.TryParse(description.Sdp, out var origin))
            {
                _onError(this, NegotiationErrorKind.RemoteDescriptionRejected, new PeerConnectionException(PeerConnectionErrorKind.InvalidDescription, "The remote description has no valid o= line."));
                return DescriptionOutcome.Failed;
            }

            // Duplicates and stale descriptions: the session version of the peer's o= line only grows.
            if (_retiredSessions.Contains(origin.SessionId)
                || (_lastRemoteOrigin is { } last && last.SessionId == origin.SessionId && origin.Version <= last.Version))
            {
                return DescriptionOutcome.Dropped;
            }

            if (_lastRemoteOrigin is { } previous && previous.SessionId != origin.SessionId)
            {
                _retiredSessions.Add(previous.SessionId);
            }

            if (_inheritedSession is not null && _inheritedSession != origin.SessionId)
            {
                // The remote connection the reset link talked to is superseded: late signals from it are stale now.
                _retiredSessions.Add(_inheritedSession);
                _inheritedSession = null;
            }

            _lastRemoteOrigin = origin;
            appliedOffer = origin;
        }

        var isOffer = description.Type == SdpType.Offer;
        if (!isOffer && description.Type != SdpType.Rollback && _pc.SignalingState != PeerSignalingState.HaveLocalOffer)
        {
            // An answer to an offer we no longer have (rolled back or superseded): stale, drop it.
            return DescriptionOutcome.Dropped;
        }

        var readyForOffer = !_makingOffer && (_pc.SignalingState == PeerSignalingState.Stable || _isSettingRemoteAnswerPending);
        var offerCollision = isOffer && !readyForOffer;
        _ignoreOffer = !Plan.Polite && offerCollision;
        if (_ignoreOffer)
        {
            // Send the pending offer again: if the polite side reset its connection, it never saw this offer and would wait
            // forever; in ordinary glare the copy is a duplicate (same o= version) and the polite side drops it.
            // A pending offer still held for its candidates leaves at the end of its window anyway.
            if (!_makingOffer && _pc.SignalingState == PeerSignalingState.HaveLocalOffer && _pc.LocalDescription is { Type: SdpType.Offer } pending && !IsHeld(pending))
            {
                await SendDescriptionAsync(pending, pending).ConfigureAwait(false);
            }

            return DescriptionOutcome.Ignored;
        }

        if (!isOffer || HeldType() == SdpType.Answer)
        {
            // A held answer leaves before anything else is applied, and so does a held offer before its answer (a held
            // offer that a remote offer rolls back is dropped below instead).
            await ReleaseHeldAsync().ConfigureAwait(false);
        }

        try
        {
            _isSettingRemoteAnswerPending = description.Type == SdpType.Answer;
            await DescribeAsync(() => _pc.SetRemoteDescriptionAsync(description)).ConfigureAwait(false); // implicit rollback on the polite side
        }
        catch (PeerConnectionException ex)
        {
            _onError(this, NegotiationErrorKind.RemoteDescriptionRejected, ex);
            return DescriptionOutcome.Failed;
        }
        finally
        {
            _isSettingRemoteAnswerPending = false;
        }

        if (SdpOrigin.ReadAttribute(description.Sdp, "ice-ufrag") is { } appliedUfrag)
        {
            _seenRemoteUfrags.Add(appliedUfrag);
        }

        await FlushCandidatesAsync().ConfigureAwait(false);

        if (isOffer)
        {
            await ReleaseHeldAsync().ConfigureAwait(false); // an offer of ours held for its candidates was rolled back: dropped
            try
            {
                await SetLocalDescriptionAsync().ConfigureAwait(false);
            }
            catch (PeerConnectionException ex)
            {
                _onError(this, NegotiationErrorKind.LocalDescriptionFailed, ex);
                return DescriptionOutcome.Failed;
            }

            var applied = _pc.LocalDescription;
            var answer = applied;
            if (answer is { Type: SdpType.Answer, Sdp: { } answerSdp } && appliedOffer is { } offerOrigin)
            {
                answer = answer with { Sdp = SdpOrigin.AddAttribute(answerSdp, AnswerToAttribute, $"{offerOrigin.SessionId} {offerOrigin.Version.ToString(System.Globalization.CultureInfo.InvariantCulture)}") };
            }

            await SendDescriptionAsync(applied, answer).ConfigureAwait(false);
        }

        return DescriptionOutcome.Applied;
    }

    private async ValueTask FlushCandidatesAsync()
    {
        if (_pendingCandidates.Count == 0 || _pc.RemoteDescription is null)
        {
            return;
        }

        var pending = _pendingCandidates.ToArray();
        _pendingCandidates.Clear();
        foreach (var (candidate, suppressErrors) in pending)
        {
            await OfferCandidateAsync(candidate, suppressErrors || _ignoreOffer).ConfigureAwait(false);
        }
    }

    private async ValueTask AddCandidateAsync(IceCandidate candidate, bool suppressErrors)
    {
        try
        {
            await _pc.AddIceCandidateAsync(candidate).ConfigureAwait(false);
        }
        catch (PeerConnectionException ex)
        {
            if (!suppressErrors)
            {
                _onError(this, NegotiationErrorKind.CandidateRejected, ex);
            }
        }
    }

    private async ValueTask SendAsync(SignalMessage message)
    {
        try
        {
            if (_inBand && _control is { IsOpen: true } control)
            {
                await SendInBandAsync(control, message).ConfigureAwait(false);
                return;
            }

            await _send(message).ConfigureAwait(false);
        }
#pragma warning disable CA1031 // The transport's failure must not break the link's queue; it is reported.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            _onError(this, NegotiationErrorKind.SendFailed, ex);
        }
    }

    private static ValueTask SendInBandAsync(IPeerDataChannel control, ClientMessage message) =>
        control.SendAsync(JsonSerializer.Serialize(message, TalkiJsonContext.Default.ClientMessage));

    private Task EnqueueAsync(Func<ValueTask> operation)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_sync)
        {
            if (_closed)
            {
                done.SetResult();
                return done.Task;
            }

            _queue.Enqueue((operation, done));
            if (_draining)
            {
                return done.Task;
            }

            _draining = true;
        }

        // The caller awaits its own operation only, never the drain: an operation aborted by Close never returns, and the
        // drain stays suspended on it, but Close completes every operation it holds.
        _ = DrainAsync();
        return done.Task;
    }

    private async Task DrainAsync()
    {
        var idle = false;
        try
        {
            while (true)
            {
                (Func<ValueTask> Operation, TaskCompletionSource Done) item;
                lock (_sync)
                {
                    if (_closed || !_queue.TryDequeue(out item))
                    {
                        _draining = false; // with the queue found empty, atomically: the next Enqueue drains
                        _running = null;
                        idle = true;
                        return;
                    }

                    _running = item.Done;
                }

                try
                {
                    await item.Operation().ConfigureAwait(false);
                }
#pragma warning disable CA1031 // An unexpected port failure is reported and the queue goes on.
                catch (Exception ex)
#pragma warning restore CA1031
                {
                    ReportUnexpected(ex);
                }
                finally
                {
                    item.Done.TrySetResult();
                }
            }
        }
        finally
        {
            if (!idle)
            {
                // Whatever escaped, this drain is over: the next Enqueue must start another one, not find the flag stuck.
                lock (_sync)
                {
                    _draining = false;
                }
            }
        }
    }

    private void ReportUnexpected(Exception ex)
    {
        try
        {
            _onError(this, NegotiationErrorKind.LocalDescriptionFailed, ex);
        }
#pragma warning disable CA1031 // The error path itself failing must not break the queue.
        catch (Exception)
#pragma warning restore CA1031
        {
            // Nothing more to report to.
        }
    }

    private bool IsHeld(SessionDescription description)
    {
        lock (_sync)
        {
            return _held is { } held && held.Applied.Type == description.Type && IsSameOrigin(held.Applied, description);
        }
    }

    private static bool IsSameOrigin(SessionDescription a, SessionDescription b) =>
        SdpOrigin.TryParse(a.Sdp, out var x) && SdpOrigin.TryParse(b.Sdp, out var y) ? x.SessionId == y.SessionId && x.Version == y.Version : string.Equals(a.Sdp, b.Sdp, StringComparison.Ordinal);

    private SdpType? HeldType()
    {
        lock (_sync)
        {
            return _held?.Applied.Type;
        }
    }

    private enum DescriptionOutcome
    {
        Applied,
        Ignored,
        Dropped,
        Failed,
    }

    /// <summary>What ended a gather window.</summary>
    private enum EndOfWindow
    {
        Timeout,
        GatheringComplete,
        NullCandidate,
    }

    /// <summary>Where a held description's wait stands (see <see cref="MaxHoldWindows"/>).</summary>
    private enum HoldPhase
    {
        /// <summary>Its gather window.</summary>
        Window,

        /// <summary>The window ended with no candidate gathered: waiting for the first, up to <see cref="MaxHoldWindows"/> windows in all.</summary>
        AwaitingCandidate,

        /// <summary>The first candidate came: a fifth of a window for the ones gathered right behind it.</summary>
        Straggler,
    }

    /// <summary>A local description held for its gather window, with the timer that ends the window.</summary>
    private sealed class HeldDescription(PeerNegotiator owner, SessionDescription applied, SessionDescription toSend)
    {
        public SessionDescription Applied => applied;

        public SessionDescription ToSend => toSend;

        public ITimer? Timer { get; set; }

        /// <summary>Gets or sets where the wait stands (changed under the link's lock).</summary>
        public HoldPhase Phase { get; set; }

        /// <summary>Gets or sets what ended the window (set once, under the link's lock).</summary>
        public EndOfWindow? Ending { get; set; }

        public void EndedBy(EndOfWindow reason) => owner.RequestFlush(this, reason);

        /// <summary>Ends the window <paramref name="dueTime"/> from now: a new one-shot timer replaces the current one, if any.</summary>
        public void Rearm(TimeSpan dueTime)
        {
            Timer?.Dispose();
            Timer = owner._time!.CreateTimer(static state => ((HeldDescription)state!).EndedBy(EndOfWindow.Timeout), this, dueTime, Timeout.InfiniteTimeSpan);
        }
    }
}
