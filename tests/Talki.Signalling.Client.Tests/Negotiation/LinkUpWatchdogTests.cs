using Microsoft.Extensions.Time.Testing;
using Talki.Signalling.Client.Negotiation;

namespace Talki.Signalling.Client.Tests.Negotiation;

public sealed class LinkUpWatchdogTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task LinkNotConnectedInTime_IsResetOnBothSides_AndConvergesOnceMessagesFlow()
    {
        var time = new FakeTimeProvider();
        var h = new MeshHarness(2, time, Timeout);
        h.PlanAll();
        await h.DeliverAsync(0, false);
        await h.DeliverAsync(0, false);
        h.DropAll(); // the first offer is lost: neither side will ever see failed

        time.Advance(Timeout - TimeSpan.FromSeconds(1));
        Assert.Empty(h.Errors);
        time.Advance(TimeSpan.FromSeconds(1));
        await h.DrainAsync();

        Assert.Equal(2, h.Errors.Count(e => e.Kind == NegotiationErrorKind.LinkUpTimedOut));
        h.AssertConverged();
        Assert.All(h.Members, m => Assert.Equal(2, m.Factory.Created.Count));
    }

    [Fact]
    public async Task ConnectedLink_IsLeftAlone_WhenTheTimeoutPasses()
    {
        var time = new FakeTimeProvider();
        var h = new MeshHarness(3, time, Timeout);
        h.PlanAll();
        await h.DrainAsync();
        h.AssertConverged();

        time.Advance(Timeout * 3);

        Assert.Empty(h.Errors);
        Assert.All(h.Members, m => Assert.Equal(2, m.Factory.Created.Count));
    }

    [Fact]
    public async Task LinkThatNeverConnects_IsResetThreeTimes_ThenReportedAndLeft()
    {
        var time = new FakeTimeProvider();
        var h = new MeshHarness(2, time, Timeout);
        h.PlanAll();
        await h.DeliverAsync(0, false);
        await h.DeliverAsync(0, false);
        for (var i = 0; i < 5; i++)
        {
            h.DropAll();
            time.Advance(Timeout);
        }

        var m0 = h.Members[0];
        Assert.Equal(4, m0.Factory.Created.Count); // the first link and three resets
        Assert.Equal(4, h.Errors.Count(e => e.Peer == h.Members[1].Id && e.Kind == NegotiationErrorKind.LinkUpTimedOut));
        Assert.Single(m0.Mesh.Links);
    }

    [Fact]
    public void NonPositiveTimeout_IsMisuse()
    {
        var fabric = new SimulatedFabric();
        Assert.Throws<ArgumentOutOfRangeException>(() => new MeshNegotiator(MemberId.New(), new SimulatedPeerConnectionFactory(fabric, "a"), _ => ValueTask.CompletedTask, TimeProvider.System, TimeSpan.Zero));
    }
}
