using CsCheck;
using Microsoft.Extensions.Time.Testing;
using Talki.Signalling.Client.Negotiation;

namespace Talki.Signalling.Client.Tests.Negotiation;

/// <summary>
/// The link-up watchdog under random interleavings: a pair whose first offer is lost (the offerer waits for an answer,
/// the other side for an offer, and neither ever sees <c>failed</c>) must be recovered by the watchdog, whatever the
/// order of deliveries and of the two sides' timers. Time moves in random steps between deliveries; at the end the
/// network is drained and the clock advanced one timeout at a time until the mesh quiesces.
/// </summary>
public sealed class LinkUpWatchdogProperties
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    internal static readonly Gen<(int Members, int LostPair, bool[] Polite, (int Kind, int A, int B)[] Steps)> Scenario =
        Gen.Select(
            Gen.Int[2, 4],
            Gen.Int[0, 5],
            Gen.Bool.Array[6],
            Gen.Select(Gen.Int[0, 99], Gen.Int[0, 1000], Gen.Int[0, 1000]).Array[0, 60]);

    [Fact]
    public void FirstOfferOfAPairLost_WatchdogRecoversThePair_InEveryInterleaving() =>
        Scenario.Sample(
            s => RunAsync(s).GetAwaiter().GetResult(),
            iter: 1000,
            threads: 1);

    internal static async Task<MeshHarness> RunAsync((int Members, int LostPair, bool[] Polite, (int Kind, int A, int B)[] Steps) s)
    {
        var time = new FakeTimeProvider();
        var h = new MeshHarness(s.Members, time, Timeout);
        var pairs = (from i in Enumerable.Range(0, s.Members) from j in Enumerable.Range(i + 1, s.Members - i - 1) select (i, j)).ToList();
        var (offerer, answerer) = pairs[s.LostPair % pairs.Count];
        h.LoseNextOffer.Add((offerer, answerer)); // PlanAll makes the lower index the offerer
        h.PlanAll((i, j) => s.Polite[(i + j) % s.Polite.Length]);
        foreach (var (kind, a, b) in s.Steps)
        {
            if (kind < 80)
            {
                await h.DeliverAsync(a, duplicate: b % 10 == 0);
            }
            else
            {
                // The clock moves: from a few milliseconds (the two sides' timers fire apart) to past a timeout.
                time.Advance(TimeSpan.FromMilliseconds((a * 37) + (b % 2 == 0 ? 0 : b * 40)));
            }
        }

        for (var round = 0; round < 6; round++)
        {
            await h.DrainAsync();
            time.Advance(Timeout);
        }

        await h.DrainAsync();
        h.AssertConverged();
        return h;
    }
}
