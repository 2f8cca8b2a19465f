using Talki.Signalling.Client.Negotiation;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Client.Tests.Negotiation;

/// <summary>
/// A simulated room: members with a <see cref="MeshNegotiator"/> each, and a server/network that holds every message in a
/// pool until the test delivers it. The signalling path's ordering model (decided here, documented in the report):
/// <list type="bullet">
/// <item>server → member control messages (plan, peer_left) are FIFO per member (one socket);</item>
/// <item>signals carrying a description are FIFO per directed pair (one sender socket → one receiver socket, relayed in order);
/// perfect negotiation needs this — reordering two descriptions of one sender can deadlock it;</item>
/// <item>candidate-only signals may overtake or lag anything (they are small independent frames);</item>
/// <item>any message may be delivered again later (at-least-once): duplicates are unordered;</item>
/// <item>the server drops a signal whose <c>toEpoch</c> is not the receiver's current epoch (<c>stale_epoch</c>).</item>
/// </list>
/// </summary>
internal sealed class MeshHarness
{
    private readonly List<Envelope> _pool = [];
    private long _seq;

    public MeshHarness(int members, TimeProvider? time = null, TimeSpan? linkUpTimeout = null, TimeSpan? candidateGatherWindow = null)
    {
        Time = time;
        LinkUpTimeout = linkUpTimeout ?? Timeout.InfiniteTimeSpan;
        CandidateGatherWindow = candidateGatherWindow ?? TimeSpan.Zero;
        for (var i = 0; i < members; i++)
        {
            Members.Add(new Member(this, i));
        }
    }

    public SimulatedFabric Fabric { get; } = new();

    public TimeProvider? Time { get; }

    public TimeSpan LinkUpTimeout { get; }

    /// <summary>Gets the links' candidate gather window (zero: descriptions leave at once).</summary>
    public TimeSpan CandidateGatherWindow { get; }

    /// <summary>Gets the signals member <paramref name="from"/> sent to member <paramref name="to"/> that are still in flight, oldest first.</summary>
    public List<SignalRelayMessage> InFlightSignals(int from, int to)
    {
        lock (_pool)
        {
            return [.. _pool.Where(e => e.To == to && !e.IsDuplicate).Select(e => e.Message).OfType<SignalRelayMessage>().Where(m => m.From == Members[from].Id)];
        }
    }

    /// <summary>Gets every signal each member sent, in order, by (sender index, receiver index): what went over the wire.</summary>
    public List<(int From, int To, SignalMessage Signal)> Sent { get; } = [];

    /// <summary>Directed pairs (sender index, receiver index) whose next offer the network loses.</summary>
    public HashSet<(int From, int To)> LoseNextOffer { get; } = [];

    /// <summary>Loses every message in flight (a network that drops them).</summary>
    public void DropAll() => _pool.Clear();

    public List<Member> Members { get; } = [];

    public List<NegotiationErrorEventArgs> Errors { get; } = [];

    public int InFlight => _pool.Count;

    public List<string> Trace { get; } = [];

    private static string Describe(ServerMessage m) => m switch
    {
        SignalRelayMessage s => $"signal from {s.From}@{s.FromEpoch} {s.Description?.Type.ToString() ?? "cand"} {s.Description?.Sdp?.Split('\n')[1]}",
        ConnectToPeerMessage c => $"plan {c.Peer.Id}@{c.PeerEpoch} off={c.Offerer} pol={c.Polite}",
        PeerLeftMessage l => $"left {l.Member}@{l.Epoch}",
        _ => m.GetType().Name,
    };

    public IReadOnlyList<Envelope> Pool => _pool;

    /// <summary>Plans the full mesh: for each pair, both ends get connect_to_peer with complementary roles.</summary>
    public void PlanAll(Func<int, int, bool>? lowerIsPolite = null)
    {
        for (var i = 0; i < Members.Count; i++)
        {
            for (var j = i + 1; j < Members.Count; j++)
            {
                PlanPair(i, j, lowerIsPolite?.Invoke(i, j) ?? false);
            }
        }
    }

    public void PlanPair(int existing, int newcomer, bool existingIsPolite)
    {
        var a = Members[existing];
        var b = Members[newcomer];
        Control(a, new ConnectToPeerMessage { Peer = b.View, PeerEpoch = b.Epoch, Offerer = true, Polite = existingIsPolite });
        Control(b, new ConnectToPeerMessage { Peer = a.View, PeerEpoch = a.Epoch, Offerer = false, Polite = !existingIsPolite });
    }

    public void Control(Member to, ServerMessage message) => _pool.Add(new Envelope(++_seq, to.Index, "ctl>" + to.Index, true, false, message, to.Epoch)); // a reload opens a new socket: the old one's queue is lost

    public List<int> Deliverable()
    {
        lock (_pool)
        {
            return DeliverableUnderLock();
        }
    }

    private List<int> DeliverableUnderLock()
    {
        var result = new List<int>();
        var seenStreams = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < _pool.Count; i++)
        {
            var e = _pool[i];
            if (!e.Ordered)
            {
                result.Add(i);
            }
            else if (seenStreams.Add(e.Stream))
            {
                result.Add(i);
            }
        }

        return result;
    }

    /// <summary>Delivers the <paramref name="pick"/>-th deliverable message; with <paramref name="duplicate"/> a copy stays in flight.</summary>
    public async Task DeliverAsync(int pick, bool duplicate)
    {
        var deliverable = Deliverable();
        if (deliverable.Count == 0)
        {
            return;
        }

        Envelope e;
        lock (_pool)
        {
            var index = deliverable[Math.Abs(pick) % deliverable.Count];
            e = _pool[index];
            _pool.RemoveAt(index);
            if (duplicate)
            {
                _pool.Add(e with { Seq = ++_seq, Ordered = false, IsDuplicate = true });
            }
        }

        var to = Members[e.To];
        Trace.Add($"deliver#{e.Seq} to m{e.To}@{e.ToEpoch} now@{to.Epoch} dup={e.IsDuplicate} {Describe(e.Message)}");
        if (e.ToEpoch is { } toEpoch && toEpoch != to.Epoch)
        {
            return; // the server drops it (stale_epoch), or it was queued on the socket of an earlier epoch
        }

        await to.Mesh.HandleAsync(e.Message);
    }

    public async Task<int> DrainAsync(int maxSteps = 20_000)
    {
        var steps = 0;
        while (_pool.Count > 0)
        {
            if (++steps > maxSteps)
            {
                throw new InvalidOperationException($"The mesh did not quiesce after {maxSteps} deliveries.");
            }

            await DeliverAsync(0, false);
        }

        return steps;
    }

    /// <summary>The member reloads: a new epoch, a fresh mesh; the others get peer_left(old) then a new plan.</summary>
    public void Reconnect(int index)
    {
        var m = Members[index];
        var old = m.Epoch;
        m.Renew();
        foreach (var other in Members.Where(o => o != m))
        {
            Control(other, new PeerLeftMessage { Member = m.Id, Epoch = old });
            var existingIsPolite = other.Index < m.Index;
            Control(other, new ConnectToPeerMessage { Peer = m.View, PeerEpoch = m.Epoch, Offerer = true, Polite = existingIsPolite });
            Control(m, new ConnectToPeerMessage { Peer = other.View, PeerEpoch = other.Epoch, Offerer = false, Polite = !existingIsPolite });
        }
    }

    public void AssertConverged()
    {
        foreach (var a in Members)
        {
            var links = a.Mesh.Links;
            Assert.Equal(Members.Count - 1, links.Count);
            Assert.Equal(Members.Count - 1, links.Select(l => l.Peer).Distinct().Count());
            var live = a.Factory.Created.Where(pc => pc.SignalingState != PeerSignalingState.Closed).ToList();
            Assert.Equal(Members.Count - 1, live.Count);
            foreach (var b in Members.Where(b => b != a))
            {
                var link = Assert.Single(links, l => l.Peer == b.Id);
                Assert.Equal(b.Epoch, link.PeerEpoch);
                Assert.Equal(PeerSignalingState.Stable, link.SignalingState);
                Assert.Equal(PeerConnectionState.Connected, link.ConnectionState);
                var pc = Assert.Single(live, pc => pc.Plan.Peer == b.Id);
                var partner = Fabric.PartnerOf(pc);
                Assert.NotNull(partner);
                Assert.Equal(b.Id.Value, partner.Owner);
                Assert.Equal(PeerSignalingState.Stable, partner.SignalingState);
            }
        }
    }

    /// <summary>Each live connection holds a remote candidate of its partner's current ICE generation.</summary>
    public void AssertCurrentCandidatesDelivered()
    {
        foreach (var pc in Fabric.All.Where(pc => pc.SignalingState != PeerSignalingState.Closed))
        {
            var partner = Fabric.PartnerOf(pc)!;
            var ufrag = SdpOrigin.ReadAttribute(partner.CurrentLocal!.Sdp, "ice-ufrag");
            Assert.Contains(pc.RemoteCandidates, c => c.UsernameFragment == ufrag);
        }
    }

    internal sealed record Envelope(long Seq, int To, string Stream, bool Ordered, bool IsDuplicate, ServerMessage Message, long? ToEpoch);

    internal sealed class Member
    {
        private readonly MeshHarness _harness;

        public Member(MeshHarness harness, int index)
        {
            _harness = harness;
            Index = index;
            Id = MemberId.TryParse("m" + index, out var id) ? id : throw new InvalidOperationException();
            Renew();
        }

        public int Index { get; }

        public MemberId Id { get; }

        public long Epoch { get; private set; }

        public MeshNegotiator Mesh { get; private set; } = null!;

        public SimulatedPeerConnectionFactory Factory { get; private set; } = null!;

        public MemberView View => new() { Id = Id, DisplayName = Id.Value, Epoch = Epoch, Online = true };

        public void Renew()
        {
            Mesh?.CloseAll();
            Epoch++;
            var epoch = Epoch;
            Factory = new SimulatedPeerConnectionFactory(_harness.Fabric, Id.Value);
            Mesh = _harness.Time is null
                ? new MeshNegotiator(Id, Factory, signal => Send(epoch, signal))
                : new MeshNegotiator(Id, Factory, signal => Send(epoch, signal), _harness.Time, _harness.LinkUpTimeout, _harness.CandidateGatherWindow);
            Mesh.NegotiationError += (_, e) =>
            {
                lock (_harness.Errors)
                {
                    _harness.Errors.Add(e); // a real clock's watchdog reports from a timer thread
                }
            };
        }

        public SimulatedPeerConnection Pc(Member peer) => Factory.Latest(peer.Id);

        private ValueTask Send(long fromEpoch, SignalMessage signal)
        {
            var to = _harness.Members.Single(m => m.Id == signal.To);
            lock (_harness.Sent)
            {
                _harness.Sent.Add((Index, to.Index, signal));
            }

            if (signal.Description is { Type: SdpType.Offer } && _harness.LoseNextOffer.Remove((Index, to.Index)))
            {
                _harness.Trace.Add($"lost offer m{Index}>m{to.Index}");
                return ValueTask.CompletedTask;
            }

            var relay = new SignalRelayMessage { From = Id, FromEpoch = fromEpoch, Description = signal.Description, Candidates = signal.Candidates };
            var ordered = signal.Description is not null;
            lock (_harness._pool)
            {
                _harness._pool.Add(new Envelope(++_harness._seq, to.Index, $"sig{Index}>{to.Index}", ordered, false, relay, signal.ToEpoch));
            }

            return ValueTask.CompletedTask;
        }
    }
}
