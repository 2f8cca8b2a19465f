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

    private const int MaxBufferedCandidates = 256;

    private readonly IPeerConnection _pc;
    private readonly Func<SignalMessage, ValueTask> _send;
    private readonly Action<PeerNegotiator, NegotiationErrorKind, Exception?> _onError;
    private readonly object _sync = new();
    private readonly Queue<(Func<ValueTask> Operation, TaskCompletionSource Done)> _queue = new();
    private readonly List<(IceCandidate Candidate, bool SuppressErrors)> _pendingCandidates = [];
    private readonly HashSet<string> _seenRemoteUfrags = new(StringComparer.Ordinal);
    private readonly HashSet<string> _retiredSessions = new(StringComparer.Ordinal);
    private bool _draining;
    private bool _closed;
    private bool _makingOffer;
    private bool _ignoreOffer;
    private bool _isSettingRemoteAnswerPending;
    private SdpOrigin? _lastRemoteOrigin;

    public PeerNegotiator(PeerLinkPlan plan, IPeerConnection pc, Func<SignalMessage, ValueTask> send, Action<PeerNegotiator, NegotiationErrorKind, Exception?> onError)
    {
        Plan = plan;
        _pc = pc;
        _send = send;
        _onError = onError;
        _pc.NegotiationNeeded += OnNegotiationNeeded;
        _pc.LocalIceCandidate += OnLocalIceCandidate;
        _pc.ConnectionStateChanged += OnConnectionStateChanged;
    }

    public PeerLinkPlan Plan { get; }

    public IPeerConnection Connection => _pc;

    public bool IsClosed => _closed;

    /// <summary>Gets the number of remote candidates waiting for a remote description.</summary>
    public int BufferedCandidateCount => _pendingCandidates.Count;

    public PeerLinkState Snapshot() => new(Plan.Peer, Plan.PeerEpoch, Plan.Offerer, Plan.Polite, _pc.SignalingState, _pc.ConnectionState);

    /// <summary>Starts the link: the offerer creates the control data channel, which raises negotiation needed.</summary>
    public Task StartAsync() => EnqueueAsync(() =>
    {
        if (Plan.Offerer)
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
        lock (_sync)
        {
            _closed = true;
            dropped = [.. _queue];
            _queue.Clear();
        }

        foreach (var item in dropped)
        {
            item.Done.TrySetResult();
        }

        _pc.NegotiationNeeded -= OnNegotiationNeeded;
        _pc.LocalIceCandidate -= OnLocalIceCandidate;
        _pc.ConnectionStateChanged -= OnConnectionStateChanged;
        _pc.Close();
        _pc.Dispose();
    }

    private void OnNegotiationNeeded(object? sender, EventArgs e) => _ = EnqueueAsync(MakeOfferAsync);

    private void OnLocalIceCandidate(object? sender, IceCandidate candidate) =>
        _ = EnqueueAsync(() => SendAsync(new SignalMessage { To = Plan.Peer, ToEpoch = Plan.PeerEpoch, Candidates = [candidate] }));

    private void OnConnectionStateChanged(object? sender, PeerConnectionState state)
    {
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

        try
        {
            _makingOffer = true;
            await _pc.SetLocalDescriptionAsync().ConfigureAwait(false);
            await SendAsync(new SignalMessage { To = Plan.Peer, ToEpoch = Plan.PeerEpoch, Description = _pc.LocalDescription }).ConfigureAwait(false);
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

    private async ValueTask<DescriptionOutcome> HandleDescriptionAsync(SessionDescription description)
    {
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

            _lastRemoteOrigin = origin;
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
            return DescriptionOutcome.Ignored;
        }

        try
        {
            _isSettingRemoteAnswerPending = description.Type == SdpType.Answer;
            await _pc.SetRemoteDescriptionAsync(description).ConfigureAwait(false); // implicit rollback on the polite side
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
            try
            {
                await _pc.SetLocalDescriptionAsync().ConfigureAwait(false);
            }
            catch (PeerConnectionException ex)
            {
                _onError(this, NegotiationErrorKind.LocalDescriptionFailed, ex);
                return DescriptionOutcome.Failed;
            }

            await SendAsync(new SignalMessage { To = Plan.Peer, ToEpoch = Plan.PeerEpoch, Description = _pc.LocalDescription }).ConfigureAwait(false);
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
            await _send(message).ConfigureAwait(false);
        }
#pragma warning disable CA1031 // The transport's failure must not break the link's queue; it is reported.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            _onError(this, NegotiationErrorKind.SendFailed, ex);
        }
    }

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

        return DrainThenAwaitAsync(done.Task);
    }

    private async Task DrainThenAwaitAsync(Task mine)
    {
        await DrainAsync().ConfigureAwait(false);
        await mine.ConfigureAwait(false);
    }

    private async Task DrainAsync()
    {
        while (true)
        {
            (Func<ValueTask> Operation, TaskCompletionSource Done) item;
            lock (_sync)
            {
                if (_closed || !_queue.TryDequeue(out item))
                {
                    _draining = false;
                    return;
                }
            }

            try
            {
                await item.Operation().ConfigureAwait(false);
            }
#pragma warning disable CA1031 // An unexpected port failure is reported and the queue goes on.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                _onError(this, NegotiationErrorKind.LocalDescriptionFailed, ex);
            }
            finally
            {
                item.Done.TrySetResult();
            }
        }
    }

    private enum DescriptionOutcome
    {
        Applied,
        Ignored,
        Dropped,
        Failed,
    }
}
