using CsCheck;
using Talki.Signalling.Client.Negotiation;

namespace Talki.Signalling.Client.Tests.Negotiation;

public sealed class InFlightSignalsTests
{
    [Fact]
    public void UpToTheLimit_TheReceiveLoopGoesOn_WhileEachSignalIsStillBeingApplied()
    {
        var inFlight = new InFlightSignals(3);
        var applying = Enumerable.Range(0, 3).Select(_ => new TaskCompletionSource()).ToList();

        Assert.All(applying, a => Assert.True(inFlight.Track(a.Task).IsCompleted));
        Assert.Equal(3, inFlight.Count);

        applying[1].SetResult();
        Assert.Equal(2, inFlight.Count);
        applying[0].SetResult();
        applying[2].SetResult();
        Assert.Equal(0, inFlight.Count);
    }

    [Fact]
    public void BeyondTheLimit_TheLoopWaitsForTheSignalItHandsOn_UntilThatOneIsApplied()
    {
        var inFlight = new InFlightSignals(2);
        var first = new TaskCompletionSource();
        var second = new TaskCompletionSource();
        var third = new TaskCompletionSource();
        _ = inFlight.Track(first.Task);
        _ = inFlight.Track(second.Task);

        var waited = inFlight.Track(third.Task);
        Assert.False(waited.IsCompleted);
        first.SetResult();
        second.SetResult();
        Assert.False(waited.IsCompleted); // the loop waits for the one it handed on, not for a free slot
        third.SetResult();
        Assert.True(waited.IsCompleted);
        Assert.Equal(0, inFlight.Count);

        Assert.True(inFlight.Track(new TaskCompletionSource().Task).IsCompleted); // slots free again
    }

    [Fact]
    public void AnAlreadyAppliedSignal_PassesThrough_AndTakesNoSlot()
    {
        var inFlight = new InFlightSignals(1);
        Assert.Same(Task.CompletedTask, inFlight.Track(Task.CompletedTask));
        Assert.Equal(0, inFlight.Count);
    }

    /// <summary>
    /// Hostile: a member floods signals at a link whose operations never settle (or a browser that stalls). The receive
    /// loop hands on at most the limit and then waits: memory stays bounded and the socket is no longer read.
    /// </summary>
    [Fact]
    public void AFloodAtALinkThatNeverSettles_TheLoopStopsAfterTheLimit_HoldingNoMore()
    {
        var inFlight = new InFlightSignals(TalkiCall.MaxSignalsInFlight);
        var handedOn = 0;
        while (handedOn < 10_000)
        {
            var wait = inFlight.Track(new TaskCompletionSource().Task);
            handedOn++;
            if (!wait.IsCompleted)
            {
                break; // the receive loop awaits this: it reads nothing more
            }
        }

        Assert.Equal(TalkiCall.MaxSignalsInFlight + 1, handedOn);
        Assert.Equal(TalkiCall.MaxSignalsInFlight + 1, inFlight.Count);
    }

    /// <summary>
    /// A receive loop over the bound, the browser applying signals in any order: the loop never has more than the limit
    /// in flight besides the one it waits for, each wait ends exactly when its own signal is applied, and the count
    /// returns to zero.
    /// </summary>
    [Fact]
    public void AnyOrderOfApplying_EveryWaitEndsWithItsOwnSignal_AndTheCountReturnsToZero()
    {
        Gen.Select(Gen.Int[1, 5], Gen.Int[1, 30].SelectMany(n => Gen.Shuffle(Enumerable.Range(0, n).ToArray()))).Sample((limit, order) =>
        {
            var inFlight = new InFlightSignals(limit);
            var applying = order.Select(_ => new TaskCompletionSource()).ToArray();
            var browser = new Queue<int>(order); // the order the browser settles the operations in
            for (var i = 0; i < applying.Length; i++)
            {
                var wait = inFlight.Track(applying[i].Task);
                if (inFlight.Count > limit + 1)
                {
                    return false;
                }

                while (!wait.IsCompleted)
                {
                    // The loop waits; the browser settles what it was handed, in its own order.
                    var next = browser.Where(j => j <= i && !applying[j].Task.IsCompleted).Cast<int?>().FirstOrDefault();
                    if (next is not { } settle)
                    {
                        return false; // the loop waits for nothing it handed on
                    }

                    var waitedBefore = wait.IsCompleted;
                    applying[settle].SetResult();
                    if (wait.IsCompleted != (settle == i) && !waitedBefore)
                    {
                        return false;
                    }
                }
            }

            foreach (var j in order)
            {
                applying[j].TrySetResult();
            }

            return inFlight.Count == 0;
        });
    }
}
