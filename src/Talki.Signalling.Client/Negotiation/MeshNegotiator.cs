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
public sealed class MeshNegotiator : IDisposable
{
    private const int MaxEarlySignalsPerPeer = 64;

    private readonly IPeerConnectionFactory _factory;
    private readonly Func<SignalMessage, ValueTask> _send;
    private readonly MemberId _self;
    private readonly object _sync = new();
    private readonly Dictionary<MemberId, PeerNegotiator> _links = [];
    private readonly Dictionary<MemberId, (long Epoch, List<SignalRelayMessage> Signals)> _early = [];
    private bool _closed;

    /// <summary>Initializes a new instance of the <see cref="MeshNegotiator"/> class.</summary>
    /// <param name="self">This member's id (a <c>denied</c> for it tears the mesh down).</param>
    /// <param name="factory">Creates the peer connections.</param>
    /// <param name="send">Sends a signal to the server; called in order per link.</param>
    /// <exception cref="ArgumentNullException"><paramref name="factory"/> or <paramref name="send"/> is <see langword="null"/>.</exception>
    public MeshNegotiator(MemberId self, IPeerConnectionFactory factory, Func<SignalMessage, ValueTask> send)
    {
        ArgumentNullException.ThrowIfNull(factory);
        ArgumentNullException.ThrowIfNull(send);
        _self = self;
        _factory = factory;
        _send = send;
    }

    /// <summary>Raised when a link reports an error; for <see cref="NegotiationErrorKind.RemoteDescriptionRejected"/> and <see cref="NegotiationErrorKind.LocalDescriptionFailed"/> the link was reset.</summary>
    public event EventHandler<NegotiationErrorEventArgs>? NegotiationError;

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
            link.Close();
        }
    }

    /// <inheritdoc />
    public void Dispose() => CloseAll();

    private Task CloseAllCompleted()
    {
        CloseAll();
        return Task.CompletedTask;
    }

    private Task ConnectAsync(ConnectToPeerMessage message)
    {
        var plan = new PeerLinkPlan(message.Peer.Id, message.PeerEpoch, message.Offerer, message.Polite);
        PeerNegotiator? old;
        PeerNegotiator link;
        List<SignalRelayMessage>? early = null;
        lock (_sync)
        {
            if (_closed)
            {
                return Task.CompletedTask;
            }

            if (_links.TryGetValue(plan.Peer, out old) && old.Plan.PeerEpoch >= plan.PeerEpoch)
            {
                return Task.CompletedTask; // a duplicate of the same plan, or a stale one
            }

            link = CreateLink(plan);
            _links[plan.Peer] = link;
            if (_early.TryGetValue(plan.Peer, out var held) && held.Epoch <= plan.PeerEpoch)
            {
                // Signals held for this epoch are replayed; older ones are dropped; newer ones wait for their own plan.
                _early.Remove(plan.Peer);
                early = held.Epoch == plan.PeerEpoch ? held.Signals : null;
            }
        }

        old?.Close();
        return StartAsync(link, early);
    }

    private static async Task StartAsync(PeerNegotiator link, List<SignalRelayMessage>? early)
    {
        await link.StartAsync().ConfigureAwait(false);
        foreach (var signal in early ?? [])
        {
            await link.HandleSignalAsync(signal.Description, signal.Candidates).ConfigureAwait(false);
        }
    }

    private PeerNegotiator CreateLink(PeerLinkPlan plan) => new(plan, _factory.Create(plan), _send, OnLinkError);

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

        link.Close();
        return Task.CompletedTask;
    }

    private void OnLinkError(PeerNegotiator link, NegotiationErrorKind kind, Exception? exception)
    {
        Task? restart = null;
        if (kind is NegotiationErrorKind.RemoteDescriptionRejected or NegotiationErrorKind.LocalDescriptionFailed)
        {
            PeerNegotiator? fresh = null;
            lock (_sync)
            {
                if (!_closed && _links.TryGetValue(link.Plan.Peer, out var current) && ReferenceEquals(current, link))
                {
                    fresh = CreateLink(link.Plan);
                    _links[link.Plan.Peer] = fresh;
                }
            }

            if (fresh is not null)
            {
                link.Close();
                restart = fresh.StartAsync();
            }
        }

        NegotiationError?.Invoke(this, new NegotiationErrorEventArgs(link.Plan.Peer, link.Plan.PeerEpoch, kind, exception));
        _ = restart; // completes inline or on the fresh link's queue; it never faults
    }
}
