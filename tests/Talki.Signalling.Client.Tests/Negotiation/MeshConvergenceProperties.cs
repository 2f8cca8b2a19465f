using CsCheck;
using Microsoft.Extensions.Time.Testing;
using Talki.Signalling.Client.Negotiation;

namespace Talki.Signalling.Client.Tests.Negotiation;

/// <summary>
/// Random interleavings over 2–4 members: delivery order across streams, delay and reordering within the limits of
/// <see cref="MeshHarness"/> (descriptions FIFO per directed pair, candidates free, duplicates anywhere later), glare
/// (both ends add media at once), link failures (ICE restart on both sides), link resets on one side (a malformed frame:
/// a fresh connection that re-offers) and one member reload (new epoch). After the
/// random prefix the network is drained; every pair must end stable and connected with exactly one live link each way.
/// </summary>
public sealed class MeshConvergenceProperties
{
    internal const int Iterations = 2000;

    internal static readonly Gen<(int Members, bool[] Polite, (int Kind, int A, int B)[] Steps)> Scenario =
        Gen.Select(
            Gen.Int[2, 4],
            Gen.Bool.Array[6],
            Gen.Select(Gen.Int[0, 99], Gen.Int[0, 1000], Gen.Int[0, 1000]).Array[0, 80]);

    [Fact]
    public void Mesh_RandomInterleavings_EveryPairEndsStableAndConnected() =>
        Scenario.Sample(
            s => RunAsync(s).GetAwaiter().GetResult(),
            iter: Iterations,
            threads: 1);

    /// <summary>
    /// The same with a candidate gather window on a fake clock, and connections whose gathering never completes: every
    /// description is held until the clock moves (half a window at a time, at random points), so glare, rollbacks, resets,
    /// reloads and duplicates all meet held descriptions.
    /// </summary>
    [Fact]
    public void Mesh_WithAGatherWindow_RandomInterleavings_EveryPairEndsStableAndConnected() =>
        Scenario.Sample(
            s => RunAsync(s, TimeSpan.FromMilliseconds(50)).GetAwaiter().GetResult(),
            iter: Iterations / 2,
            threads: 1);

    internal static async Task<MeshHarness> RunAsync((int Members, bool[] Polite, (int Kind, int A, int B)[] Steps) s, TimeSpan? gatherWindow = null)
    {
        var time = gatherWindow is null ? null : new FakeTimeProvider();
        var h = time is null ? new MeshHarness(s.Members) : new MeshHarness(s.Members, time, candidateGatherWindow: gatherWindow);
        if (time is not null)
        {
            h.Fabric.Gathering = GatheringMode.NeverCompletes;
        }

        h.PlanAll((i, j) => s.Polite[(i + j) % s.Polite.Length]);
        var failures = 0;
        var reloads = 0;
        var resets = 0;
        foreach (var (kind, a, b) in s.Steps)
        {
            var m = h.Members[a % s.Members];
            var peer = h.Members[(a % s.Members + 1 + (b % (s.Members - 1))) % s.Members];
            switch (kind)
            {
                case < 70:
                    await h.DeliverAsync(a, duplicate: b % 8 == 0);
                    if (time is not null && b % 4 == 1)
                    {
                        time.Advance(h.CandidateGatherWindow / 2);
                    }

                    break;
                case < 82:
                    // glare: both ends add media now (whichever have a live connection)
                    foreach (var pc in new[] { Live(m, peer), Live(peer, m) })
                    {
                        pc?.AddTrack();
                    }

                    break;
                case < 92 when failures < 3:
                    if (Live(m, peer) is { } failing && h.Fabric.InjectFailure(failing))
                    {
                        failures++;
                    }

                    break;
                case >= 92 and < 97 when resets < 1:
                    // a malformed frame about this link: one side resets it (fresh connection, re-offers). One reset per run:
                    // a second reset of the same link before it recovered can leave it unconnected (see the client README).
                    if (m.Mesh.ResetLink(peer.Id))
                    {
                        resets++;
                    }

                    break;
                case >= 97 when reloads < 1:
                    reloads++;
                    h.Reconnect(m.Index);
                    break;
                default:
                    await h.DeliverAsync(b, duplicate: false);
                    break;
            }
        }

        await h.DrainAsync();
        var quiet = 0; // a description without a candidate yet is held up to PeerNegotiator.MaxHoldWindows windows
        for (var round = 0; time is not null && round < 100; round++)
        {
            time.Advance(h.CandidateGatherWindow);
            quiet = h.InFlight == 0 ? quiet + 1 : 0;
            if (quiet >= PeerNegotiator.MaxHoldWindows)
            {
                break;
            }

            await h.DrainAsync();
        }

        h.AssertConverged();
        Assert.All(h.Errors, e => Assert.Equal(NegotiationErrorKind.MalformedSignal, e.Kind));
        h.AssertCurrentCandidatesDelivered();
        return h;
    }

    private static SimulatedPeerConnection? Live(MeshHarness.Member owner, MeshHarness.Member peer) =>
        owner.Factory.Created.LastOrDefault(pc => pc.Plan.Peer == peer.Id && pc.SignalingState != PeerSignalingState.Closed);
}
