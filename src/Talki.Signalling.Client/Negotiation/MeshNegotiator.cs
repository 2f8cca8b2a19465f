using Talki.Signalling.Protocol;

namespace Talki.Signalling.Client.Negotiation;

/// <summary>
/// The client's side of the mesh: one <c>PeerNegotiator</c> (W3C perfect negotiation) per remote member, driven by the
/// server's messages. <c>connect_to_peer</c> creates the link for a peer and epoch (a duplicate plan is ignored, a newer
/// epoch replaces the link, an older one is ignored); <c>signal</c> is routed to the link of the sender's epoch (older epochs
/// are dropped; a signal from a newer epoch whose plan has not arrived yet is held until it does); <c>peer_left</c> tears the
/// link down when its epoch matches; <c>denied</c> for this member, and <see cref="CloseAll"/>, tear everything down.
/// A rejected remote description resets only that link and raises <see cref="NegotiationError"/>.
/// </summary>
internal sealed class MeshNegotiator : IDisposable
{
    private const int MaxEarlySignalsPerPeer = 64;
    private const int MaxWatchdogResets = 3;
    private const int MaxErrorResets = 3;

    private readonly IPeerConnectionFactory _factory;
    private readonly TimeProvider? _time;
    private readonly TimeSpan _linkUpTimeout;
    private readonly TimeProvider _gatherTime;
    private readonly TimeSpan _candidateGatherWindow;
    private readonly Func<SignalMessage, ValueTask> _send;
    private readonly MemberId _self;
    private readonly object _sync = new();
    private readonly Dictionary<MemberId, PeerNegotiator> _links = [];
    private readonly Dictionary<MemberId, (long Epoch, List<SignalRelayMessage> Signals)> _early = [];
    private bool _closed;
    private bool _inBand;
    private IReadOnlyList<IceServer> _iceServers = [];

    /// <summary>Initializes a new instance of the <see cref="MeshNegotiator"/> class.</summary>
    /// <param name="self">This member's id (a <c>denied</c> for it tears the mesh down).</param>
    /// <param name="factory">Creates the peer connections.</param>
    /// <param name="send">Sends a signal to the server; called in order per link.</param>
    /// <exception cref="ArgumentNullException"><paramref name="factory"/> or <paramref name="send"/> is <see langword="null"/>.</exception>
    public MeshNegotiator(MemberId self, IPeerConnectionFactory factory, Func<SignalMessage, ValueTask> send)
        : this(self, factory, send, null, Timeout.InfiniteTimeSpan)
    {
    }

    /// <summary>Initializes a new instance of the <see cref="MeshNegotiator"/> class with a link-up watchdog.</summary>
    /// <param name="self">This member's id (a <c>denied</c> for it tears the mesh down).</param>
    /// <param name="factory">Creates the peer connections.</param>
    /// <param name="send">Sends a signal to the server; called in order per link.</param>
    /// <param name="timeProvider">The clock of the watchdog.</param>
    /// <param name="linkUpTimeout">
    /// How long a new link may take to connect before it is reset (a fresh connection that re-offers; the peer replaces its
    /// side too), at most three times in a row; <see cref="Timeout.InfiniteTimeSpan"/> turns the watchdog off. It covers a
    /// link that never reaches <c>failed</c> (ICE stuck in <c>new</c>), which an ICE restart on failure cannot.
    /// </param>
    /// <exception cref="ArgumentNullException"><paramref name="factory"/> or <paramref name="send"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="linkUpTimeout"/> is not positive and not infinite.</exception>
    public MeshNegotiator(MemberId self, IPeerConnectionFactory factory, Func<SignalMessage, ValueTask> send, TimeProvider? timeProvider, TimeSpan linkUpTimeout)
        : this(self, factory, send, timeProvider, linkUpTimeout, TimeSpan.Zero)
    {
    }

    /// <summary>Initializes a new instance of the <see cref="MeshNegotiator"/> class with a link-up watchdog and a candidate gather window.</summary>
    /// <param name="self">This member's id (a <c>denied</c> for it tears the mesh down).</param>
    /// <param name="factory">Creates the peer connections.</param>
    /// <param name="send">Sends a signal to the server; called in order per link.</param>
    /// <param name="timeProvider">The clock of the watchdog and of the gather window.</param>
    /// <param name="linkUpTimeout">How long a new link may take to connect before it is reset; <see cref="Timeout.InfiniteTimeSpan"/> turns the watchdog off.</param>
    /// <param name="candidateGatherWindow">
    /// How long a link holds a local description it just set so that the candidates gathered meanwhile ride in its signal
    /// (<see cref="TalkiClientOptions.CandidateGatherWindow"/>); <see cref="TimeSpan.Zero"/> sends descriptions at once.
    /// </param>
    /// <exception cref="ArgumentNullException"><paramref name="factory"/> or <paramref name="send"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="linkUpTimeout"/> is not positive and not infinite, or <paramref name="candidateGatherWindow"/> is negative.</exception>
    public MeshNegotiator(MemberId self, IPeerConnectionFactory factory, Func<SignalMessage, ValueTask> send, TimeProvider? timeProvider, TimeSpan linkUpTimeout, TimeSpan candidateGatherWindow)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(candidateGatherWindow, TimeSpan.Zero);
        _gatherTime = timeProvider ?? TimeProvider.System;
        _candidateGatherWindow = candidateGatherWindow;
        if (linkUpTimeout <= TimeSpan.Zero && linkUpTimeout != Timeout.InfiniteTimeSpan)
        {
            throw new ArgumentOutOfRangeException(nameof(linkUpTimeout), linkUpTimeout, "The link-up timeout must be positive, or infinite to turn the watchdog off.");
        }

        _time = linkUpTimeout == Timeout.InfiniteTimeSpan ? null : timeProvider ?? TimeProvider.System;
        _linkUpTimeout = linkUpTimeout;
        ArgumentNullException.ThrowIfNull(factory);
        ArgumentNullException.ThrowIfNull(send);
        _self = self;
        _factory = factory;
        _send = send;
    }

    /// <summary>Raised when a link reports an error; for <see cref="NegotiationErrorKind.RemoteDescriptionRejected"/> and <see cref="NegotiationErrorKind.LocalDescriptionFailed"/> the link was reset.</summary>
    public event EventHandler<NegotiationErrorEventArgs>? NegotiationError;

    /// <summary>Raised when a link's connection state changes (after the snapshot in <see cref="Links"/> changed).</summary>
    public event EventHandler<PeerLinkState>? LinkStateChanged;

    /// <summary>Raised when a remote member said goodbye over its link's control channel (after the seal) and the link was torn down.</summary>
    public event EventHandler<MemberId>? RemoteLeft;

    /// <summary>Gets or sets the STUN/TURN servers given to links created from now on (from the server's <c>welcome</c>).</summary>
    public IReadOnlyList<IceServer> IceServers
    {
        get
        {
            lock (_sync)
            {
                return _iceServers;
            }
        }

        set
        {
            lock (_sync)
            {
                _iceServers = value ?? [];
            }
        }
    }

    /// <summary>
    /// Gets or sets a value indicating whether links renegotiate in-band, over their control data channel, instead of
    /// through the server. Set it once the room sealed: ICE restarts and added tracks keep working without the server.
    /// A link whose channel is not open keeps using the server path.
    /// </summary>
    public bool SignalInBand
    {
        get
        {
            lock (_sync)
            {
                return _inBand;
            }
        }

        set
        {
            PeerNegotiator[] links;
            lock (_sync)
            {
                _inBand = value;
                links = [.. _links.Values];
            }

            foreach (var link in links)
            {
                link.SignalInBand = value;
            }
        }
    }

    /// <summary>Gets a value indicating whether every link's control data channel is open (true with no links): the mesh no longer needs the server.</summary>
    public bool InBandReady
    {
        get
        {
            lock (_sync)
            {
                return _links.Values.All(l => l.ControlChannelOpen);
            }
        }
    }

    /// <summary>Gets a snapshot of the links, one per remote member.</summary>
    public IReadOnlyList<PeerLinkState> Links
    {
        get
        {
            lock (_sync)
            {
                return [.. _links.Values.Select(l => l.Snapshot())];
            }
        }
    }

    /// <summary>Handles a message from the server. Messages the mesh does not care about are ignored.</summary>
    /// <param name="message">The message.</param>
    /// <returns>A task that completes when the message was handled (including the work it started on a link).</returns>
    /// <exception cref="ArgumentNullException"><paramref name="message"/> is <see langword="null"/>.</exception>
    public Task HandleAsync(ServerMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        return message switch
        {
            ConnectToPeerMessage plan => ConnectAsync(plan),
            SignalRelayMessage signal => RouteAsync(signal),
            PeerLeftMessage left => Left(left),
            DeniedMessage denied when denied.Member.Id == _self => CloseAllCompleted(),
            DeniedMessage denied => Left(new PeerLeftMessage { Member = denied.Member.Id, Epoch = denied.Member.Epoch }),
            _ => Task.CompletedTask,
        };
    }

    /// <summary>
    /// Resets the link to <paramref name="peer"/> (a fresh peer connection under the same plan) after a malformed frame
    /// concerning it; other links are untouched.
    /// </summary>
    /// <param name="peer">The remote member.</param>
    /// <param name="cause">The cause, reported through <see cref="NegotiationError"/>.</param>
    /// <returns><see langword="true"/> when a link to the member existed and was reset.</returns>
    public bool ResetLink(MemberId peer, Exception? cause = null)
    {
        PeerNegotiator? link;
        lock (_sync)
        {
            if (!_links.TryGetValue(peer, out link))
            {
                return false;
            }
        }

        OnLinkError(link, NegotiationErrorKind.MalformedSignal, cause);
        return true;
    }

    /// <summary>Tells every remote member over its link's control channel that this member leaves (used once the server is gone).</summary>
    /// <returns>A task that completes when the goodbyes were queued.</returns>
    public Task SayGoodbyeAsync()
    {
        PeerNegotiator[] links;
        lock (_sync)
        {
            links = [.. _links.Values];
        }

        return Task.WhenAll(links.Select(SayGoodbyeQuietlyAsync));
    }

    /// <summary>Tears all links down (on leave or when denied). The mesh accepts no more plans afterwards.</summary>
    public void CloseAll()
    {
        PeerNegotiator[] links;
        lock (_sync)
        {
            _closed = true;
            links = [.. _links.Values];
            _links.Clear();
            _early.Clear();
        }

        foreach (var link in links)
        {
            CloseQuietly(link); // one connection failing to close does not keep the others open
        }
    }

    /// <inheritdoc />
    public void Dispose() => CloseAll();

    private static async Task SayGoodbyeQuietlyAsync(PeerNegotiator link)
    {
        try
        {
            await link.SayGoodbyeAsync().ConfigureAwait(false);
        }
#pragma warning disable CA1031 // One link's failure stays in that link: the others still say goodbye.
        catch (Exception)
#pragma warning restore CA1031
        {
            // The peer notices the link going down anyway.
        }
    }

    private Task CloseAllCompleted()
    {
        CloseAll();
        return Task.CompletedTask;
    }

    private Task ConnectAsync(ConnectToPeerMessage message)
    {
        PeerLinkPlan plan;
        lock (_sync)
        {
            if (_closed || IsCurrentOrNewer(message.Peer.Id, message.PeerEpoch))
            {
                return Task.CompletedTask; // a duplicate of the same plan, or a stale one
            }

            plan = new PeerLinkPlan(message.Peer.Id, message.PeerEpoch, message.Offerer, message.Polite) { IceServers = _iceServers };
        }

        // The factory is called out of the lock (in the browser it is a JS interop call, and it may call back into the mesh).
        var link = TryCreateLink(plan);
        if (link is null)
        {
            return Task.CompletedTask;
        }

        PeerNegotiator? old = null;
        List<SignalRelayMessage>? early = null;
        var published = false;
        lock (_sync)
        {
            if (!_closed && !IsCurrentOrNewer(plan.Peer, plan.PeerEpoch))
            {
                _links.TryGetValue(plan.Peer, out old);
                Publish(link);
                published = true;
                if (_early.TryGetValue(plan.Peer, out var held) && held.Epoch <= plan.PeerEpoch)
                {
                    // Signals held for this epoch are replayed; older ones are dropped; newer ones wait for their own plan.
                    _early.Remove(plan.Peer);
                    early = held.Epoch == plan.PeerEpoch ? held.Signals : null;
                }
            }
        }

        if (!published)
        {
            CloseQuietly(link); // another plan for this peer won the race meanwhile (or the mesh closed)
            return Task.CompletedTask;
        }

        CloseQuietly(old);
        ArmWatchdog(link);
        return StartAsync(link, early);
    }

    /// <summary>Whether a link to <paramref name="peer"/> of <paramref name="epoch"/> or newer exists; call under the lock.</summary>
    private bool IsCurrentOrNewer(MemberId peer, long epoch) =>
        _links.TryGetValue(peer, out var existing) && existing.Plan.PeerEpoch >= epoch;

    /// <summary>Whether <paramref name="link"/> is still the mesh's link to its peer; call under the lock.</summary>
    private bool IsCurrent(PeerNegotiator link) =>
        !_closed && _links.TryGetValue(link.Plan.Peer, out var current) && ReferenceEquals(current, link);

    /// <summary>Makes <paramref name="link"/> the link to its peer; call under the lock.</summary>
    private void Publish(PeerNegotiator link)
    {
        link.SignalInBand = _inBand;
        _links[link.Plan.Peer] = link;
    }

    /// <summary>Publishes <paramref name="fresh"/> in place of <paramref name="link"/> if that is still current; otherwise closes it (out of the lock).</summary>
    private bool TryReplace(PeerNegotiator link, PeerNegotiator fresh)
    {
        lock (_sync)
        {
            if (IsCurrent(link))
            {
                Publish(fresh);
                return true;
            }
        }

        CloseQuietly(fresh); // the link was replaced or removed meanwhile: the fresh one lost the race
        return false;
    }

    /// <summary>Closes a link; a connection that throws while closing does not stop the caller (nor the other links).</summary>
    private static void CloseQuietly(PeerNegotiator? link)
    {
        if (link is null)
        {
            return;
        }

        try
        {
            link.Close();
        }
#pragma warning disable CA1031 // One link's failure stays in that link.
        catch (Exception)
#pragma warning restore CA1031
        {
            // The connection is gone either way.
        }
    }

    private async Task StartAsync(PeerNegotiator link, List<SignalRelayMessage>? early)
    {
        await link.StartAsync().ConfigureAwait(false);
        foreach (var signal in early ?? [])
        {
            // Routed again for each signal: one of them may have replaced the link (the peer had reset its connection).
            await RouteAsync(signal).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Creates a link and its peer connection, out of the lock. A factory that throws fails this link only: the failure is
    /// reported through <see cref="NegotiationError"/> and <see langword="null"/> is returned.
    /// </summary>
    private PeerNegotiator? TryCreateLink(PeerLinkPlan plan, bool? offerOnStart = null, IEnumerable<string>? retiredSessions = null, string? inheritedSession = null)
    {
        IPeerConnection pc;
        try
        {
            pc = _factory.Create(plan);
        }
#pragma warning disable CA1031 // The factory's failure is this link's failure; it is reported, never thrown into the mesh.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            RaiseError(new NegotiationErrorEventArgs(plan.Peer, plan.PeerEpoch, NegotiationErrorKind.ConnectionCreationFailed, ex));
            return null;
        }

        var link = new PeerNegotiator(plan, pc, _send, OnLinkError, OnRemoteLeft, OnRemoteReplaced, offerOnStart, retiredSessions, inheritedSession, _gatherTime, _candidateGatherWindow);
        pc.ConnectionStateChanged += (_, state) =>
        {
            if (state == PeerConnectionState.Connected)
            {
                link.StopWatchdog();
            }

            RaiseLinkStateChanged(link);
        };
        return link;
    }

    /// <summary>Starts the link-up watchdog of a link just published.</summary>
    private void ArmWatchdog(PeerNegotiator link)
    {
        if (_time is not null)
        {
            link.Watchdog = _time.CreateTimer(static state => ((Watch)state!).Fire(), new Watch(this, link), _linkUpTimeout, Timeout.InfiniteTimeSpan);
        }
    }

    private void RaiseError(NegotiationErrorEventArgs error)
    {
        try
        {
            NegotiationError?.Invoke(this, error);
        }
#pragma warning disable CA1031 // A handler's failure must not break the link that reported, nor the others.
        catch (Exception)
#pragma warning restore CA1031
        {
            // The owner's handlers report their own failures.
        }
    }

    private void RaiseLinkStateChanged(PeerNegotiator link)
    {
        try
        {
            LinkStateChanged?.Invoke(this, link.Snapshot());
        }
#pragma warning disable CA1031 // A handler's failure must not break the link that reported, nor the others.
        catch (Exception)
#pragma warning restore CA1031
        {
            // The owner's handlers report their own failures.
        }
    }

    private void OnWatchdog(PeerNegotiator link)
    {
        int resets;
        lock (_sync)
        {
            if (!IsCurrent(link) || link.IsClosed)
            {
                return;
            }

            resets = link.WatchdogResets;
        }

        // The connection's state is read out of the lock: in the browser it may be an interop call.
        if (link.Connection.ConnectionState == PeerConnectionState.Connected)
        {
            return;
        }

        if (resets >= MaxWatchdogResets)
        {
            RaiseError(new NegotiationErrorEventArgs(link.Plan.Peer, link.Plan.PeerEpoch, NegotiationErrorKind.LinkUpTimedOut, null));
            return;
        }

        OnLinkError(link, NegotiationErrorKind.LinkUpTimedOut, null);
    }

    private void OnRemoteReplaced(PeerNegotiator link, SessionDescription offer, IReadOnlyList<IceCandidate>? candidates)
    {
        lock (_sync)
        {
            if (!IsCurrent(link))
            {
                return;
            }
        }

        var fresh = TryCreateLink(link.Plan, offerOnStart: false, link.AllRemoteSessions);
        if (fresh is null || !TryReplace(link, fresh))
        {
            return;
        }

        CloseQuietly(link);
        ArmWatchdog(fresh);
        _ = fresh.StartAsync();
        _ = fresh.HandleSignalAsync(offer, [.. link.ReceivedCandidates, .. candidates ?? []]);
    }

    private void OnRemoteLeft(PeerNegotiator link)
    {
        lock (_sync)
        {
            if (!_links.TryGetValue(link.Plan.Peer, out var current) || !ReferenceEquals(current, link))
            {
                return;
            }

            _links.Remove(link.Plan.Peer);
        }

        CloseQuietly(link);
        RaiseLinkStateChanged(link);
        RemoteLeft?.Invoke(this, link.Plan.Peer);
    }

    private Task RouteAsync(SignalRelayMessage signal)
    {
        PeerNegotiator? link;
        lock (_sync)
        {
            if (_closed)
            {
                return Task.CompletedTask;
            }

            _links.TryGetValue(signal.From, out link);
            var knownEpoch = link?.Plan.PeerEpoch ?? long.MinValue;
            if (signal.FromEpoch < knownEpoch)
            {
                return Task.CompletedTask; // stale epoch
            }

            if (signal.FromEpoch > knownEpoch)
            {
                // The plan for this epoch has not arrived yet: hold the signal (latest epoch only, bounded).
                if (!_early.TryGetValue(signal.From, out var held) || held.Epoch < signal.FromEpoch)
                {
                    held = (signal.FromEpoch, []);
                    _early[signal.From] = held;
                }

                if (held.Epoch == signal.FromEpoch && held.Signals.Count < MaxEarlySignalsPerPeer)
                {
                    held.Signals.Add(signal);
                }

                return Task.CompletedTask;
            }
        }

        return link!.HandleSignalAsync(signal.Description, signal.Candidates);
    }

    private Task Left(PeerLeftMessage message)
    {
        PeerNegotiator? link;
        lock (_sync)
        {
            if (_early.TryGetValue(message.Member, out var held) && held.Epoch <= message.Epoch)
            {
                _early.Remove(message.Member);
            }

            if (!_links.TryGetValue(message.Member, out link) || link.Plan.PeerEpoch != message.Epoch)
            {
                return Task.CompletedTask;
            }

            _links.Remove(message.Member);
        }

        CloseQuietly(link);
        RaiseLinkStateChanged(link);
        return Task.CompletedTask;
    }

    private void OnLinkError(PeerNegotiator link, NegotiationErrorKind kind, Exception? exception)
    {
        lock (_sync)
        {
            if (!IsCurrent(link))
            {
                // A link already replaced or removed (reset, rejoined, or its peer left): what it still reports is an
                // operation aborted by its close, which Blazor faults later, when the browser's never-settled promise is
                // collected. The link that replaced it, or the peer's departure, is what counts.
                return;
            }
        }

        Task? restart = null;
        if (kind is NegotiationErrorKind.RemoteDescriptionRejected or NegotiationErrorKind.LocalDescriptionFailed or NegotiationErrorKind.MalformedSignal or NegotiationErrorKind.LinkUpTimedOut)
        {
            int resets;
            lock (_sync)
            {
                resets = IsCurrent(link) ? link.WatchdogResets : -1;
            }

            // A link that fails again and again before it ever connects (a description its own connection refuses, say)
            // is replaced a few times, not for ever: each replacement starts inline, so an endless chain would also be an
            // endless recursion. The watchdog may still reset it later.
            var errorResets = kind == NegotiationErrorKind.LinkUpTimedOut || link.HasConnected ? 0 : link.ErrorResets + 1;
            var fresh = resets < 0 || errorResets > MaxErrorResets ? null : TryCreateLink(link.Plan, offerOnStart: true, link.RetiredSessions, link.CurrentRemoteSession);
            if (fresh is not null)
            {
                fresh.WatchdogResets = kind == NegotiationErrorKind.LinkUpTimedOut ? resets + 1 : 0;
                fresh.ErrorResets = errorResets;
            }

            if (fresh is not null && TryReplace(link, fresh))
            {
                CloseQuietly(link);
                ArmWatchdog(fresh);
                restart = fresh.StartAsync();
                if (link.ReceivedCandidates is { Count: > 0 } received)
                {
                    _ = fresh.HandleSignalAsync(null, received); // held until a description with their ufrag is applied
                }
            }
        }

        RaiseError(new NegotiationErrorEventArgs(link.Plan.Peer, link.Plan.PeerEpoch, kind, exception));
        _ = restart; // completes inline or on the fresh link's queue; it never faults
    }

    private sealed class Watch(MeshNegotiator mesh, PeerNegotiator link)
    {
        public void Fire() => mesh.OnWatchdog(link);
    }
}
