using Talki.Signalling.Client.Negotiation;
using Talki.Signalling.Client.Tests.Negotiation;
using Talki.Signalling.Client.Tests.Support;

namespace Talki.Signalling.Client.Tests;

/// <summary>
/// <see cref="TalkiClientOptions.CandidateGatherWindow"/> through the real call: real server, real WebSockets, the system clock,
/// simulated peer connections. Each side of a new link sends its description and candidates in one <c>signal</c>.
/// </summary>
public sealed class TalkiCallGatherWindowTests
{
    [Theory]
    [InlineData(50, false, 1)] // the default window, gathering completes at once: one signal per side
    [InlineData(0, false, 2)] // no window: the description, then its candidates
    [InlineData(50, true, 1)] // gathering never completes: the window's end sends it
    [InlineData(0, true, 2)]
    public async Task PairLinksUp_SignalsSentPerSide_OneWithTheWindow_TwoWithout(int windowMs, bool gatheringNeverCompletes, int signalsPerSide)
    {
        await using var world = await CallWorld.StartAsync();
        world.Fabric.Gathering = gatheringNeverCompletes ? GatheringMode.NeverCompletes : GatheringMode.Completes;
        world.Fabric.CandidatesPerGathering = 3;
        var options = () => new TalkiClientOptions { CandidateGatherWindow = TimeSpan.FromMilliseconds(windowMs) };
        var a = await world.SignInAsync("Ada", options());
        var created = await a.Call.CreateRoomAsync();
        Assert.True(created.IsSuccess, created.ToString());
        var b = await world.SignInAsync("Bob", options());
        Assert.True((await b.Call.JoinRoomAsync(created.Value)).IsSuccess);
        await CallWorld.EventuallyAsync(() => a.Call.PendingAdmissions.Count == 1, "Ada sees Bob");
        await a.Call.AdmitAsync(b.Call.Self!.Id);

        await CallWorld.EventuallyAsync(() => a.ConnectedLinks.Count == 1 && b.ConnectedLinks.Count == 1, "the pair links up");

        Assert.Equal(signalsPerSide, Signals(a));
        Assert.Equal(signalsPerSide, Signals(b));
        var toA = a.Factory.Live(b.Id);
        var toB = b.Factory.Live(a.Id);
        Assert.Equal(3, toA.RemoteCandidates.Count(c => c.Candidate.Length > 0));
        Assert.Equal(3, toB.RemoteCandidates.Count(c => c.Candidate.Length > 0));
        Assert.DoesNotContain(a.Errors, e => e.Negotiation is not null);
        Assert.DoesNotContain(b.Errors, e => e.Negotiation is not null);
    }

    private static int Signals(Participant p) =>
        p.Sockets.SelectMany(s => s.Sent).Count(f => f.Contains("\"type\":\"signal\"", StringComparison.Ordinal));
}
