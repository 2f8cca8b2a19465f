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
        // The simulated links connect as soon as one side holds one candidate of the other (as ICE does); the rest of the
        // candidates that rode with the last description are added after that, so a loaded runner can see "connected"
        // before all three are in (a CI run saw 0 of 3 at that instant, when the links connected on the descriptions alone).
        await CallWorld.EventuallyAsync(
            () => toA.RemoteCandidates.Count(c => c.Candidate.Length > 0) == 3 && toB.RemoteCandidates.Count(c => c.Candidate.Length > 0) == 3,
            "every candidate reaches the other side");
        Assert.Equal(signalsPerSide, Signals(a)); // and no signal more came with them
        Assert.Equal(signalsPerSide, Signals(b));
        Assert.DoesNotContain(a.Errors, e => e.Negotiation is not null);
        Assert.DoesNotContain(b.Errors, e => e.Negotiation is not null);
    }

    /// <summary>
    /// Protocol 2, four members joining one by one: each newcomer offers to every member already there, and its first offers
    /// leave together in one <c>signals</c> message (the third member's two, the fourth's three). Without a window each
    /// offer goes alone. Every link comes up either way, with every candidate.
    /// </summary>
    [Theory]
    [InlineData(50, false)]
    [InlineData(50, true)] // gathering never completes: the gather windows end together, and so does the batch
    [InlineData(0, false)]
    public async Task FourMembers_EachNewcomersFirstOffers_LeaveInOneMessage_AndEveryLinkComesUp(int windowMs, bool gatheringNeverCompletes)
    {
        await using var world = await CallWorld.StartAsync();
        world.Fabric.Gathering = gatheringNeverCompletes ? GatheringMode.NeverCompletes : GatheringMode.Completes;
        world.Fabric.CandidatesPerGathering = 2;
        var options = () => new TalkiClientOptions { CandidateGatherWindow = TimeSpan.FromMilliseconds(windowMs) };
        var admin = await world.SignInAsync("Ada", options());
        var created = await admin.Call.CreateRoomAsync();
        Assert.True(created.IsSuccess, created.ToString());
        var members = new List<Participant> { admin };
        foreach (var name in new[] { "Bob", "Cy", "Dee" })
        {
            var newcomer = await world.SignInAsync(name, options());
            Assert.True((await newcomer.Call.JoinRoomAsync(created.Value)).IsSuccess);
            await CallWorld.EventuallyAsync(() => admin.Call.PendingAdmissions.Count == 1, $"Ada sees {name}");
            await admin.Call.AdmitAsync(newcomer.Call.Self!.Id);
            members.Add(newcomer);
            var size = members.Count;
            await CallWorld.EventuallyAsync(() => members.All(m => m.ConnectedLinks.Count == size - 1), $"{size} members link up");
        }

        for (var i = 1; i < members.Count; i++)
        {
            var batches = Frames(members[i], "signals");
            var offers = members[i].Sockets.SelectMany(s => s.Sent).Count(f => f.Contains("\"type\":\"offer\"", StringComparison.Ordinal) && f.Contains("\"type\":\"signal\"", StringComparison.Ordinal));
            if (windowMs > 0 && i > 1)
            {
                var batch = Assert.Single(batches);
                Assert.Equal(i, CountOf(batch, "\"type\":\"offer\""));
                Assert.Equal(0, offers);
            }
            else
            {
                Assert.Empty(batches);
                Assert.Equal(i, offers);
            }
        }

        foreach (var member in members)
        {
            foreach (var other in members.Where(o => o != member))
            {
                Assert.Equal(2, member.Factory.Live(other.Id).RemoteCandidates.Count(c => c.Candidate.Length > 0));
            }

            Assert.DoesNotContain(member.Errors, e => e.Negotiation is not null || e.Code is not null);
        }
    }

    private static List<string> Frames(Participant p, string type) =>
        [.. p.Sockets.SelectMany(s => s.Sent).Where(f => f.Contains($"\"type\":\"{type}\"", StringComparison.Ordinal))];

    private static int CountOf(string text, string value)
    {
        var count = 0;
        for (var at = text.IndexOf(value, StringComparison.Ordinal); at >= 0; at = text.IndexOf(value, at + value.Length, StringComparison.Ordinal))
        {
            count++;
        }

        return count;
    }

    private static int Signals(Participant p) =>
        p.Sockets.SelectMany(s => s.Sent).Count(f => f.Contains("\"type\":\"signal\"", StringComparison.Ordinal));
}
