using Talki.Signalling.Client.Negotiation;

namespace Talki.Signalling.Client.Tests.Negotiation;

/// <summary>One link's failure stays in that link, and the mesh never calls out (to the peer-connection factory) under its lock.</summary>
public sealed class MeshIsolationTests
{
    [Fact]
    public async Task FactoryThrowsForOnePeer_OtherLinkConverges_FailureReportedForThatPeerOnly()
    {
        var h = new MeshHarness(3);
        var (m0, m1, m2) = (h.Members[0], h.Members[1], h.Members[2]);
        m0.Factory.BeforeCreate = plan =>
        {
            if (plan.Peer == m2.Id)
            {
                throw new InvalidOperationException("The browser refused a new RTCPeerConnection.");
            }
        };

        h.PlanAll();
        await h.DrainAsync();

        var link = Assert.Single(m0.Mesh.Links);
        Assert.Equal(m1.Id, link.Peer);
        Assert.Equal(PeerConnectionState.Connected, link.ConnectionState);
        Assert.Equal(PeerSignalingState.Stable, link.SignalingState);
        Assert.Contains(m1.Mesh.Links, l => l.Peer == m0.Id && l.ConnectionState == PeerConnectionState.Connected);
        Assert.Contains(m1.Mesh.Links, l => l.Peer == m2.Id && l.ConnectionState == PeerConnectionState.Connected);
        var error = Assert.Single(h.Errors);
        Assert.Equal(NegotiationErrorKind.ConnectionCreationFailed, error.Kind);
        Assert.Equal(m2.Id, error.Peer);
        Assert.IsType<InvalidOperationException>(error.Exception);
    }

    [Fact]
    public async Task FactoryThrowsOnce_NextPlanForThatPeerCreatesTheLink()
    {
        var h = new MeshHarness(2);
        var (m0, m1) = (h.Members[0], h.Members[1]);
        var fail = true;
        m1.Factory.BeforeCreate = _ =>
        {
            if (fail)
            {
                fail = false;
                throw new InvalidOperationException("transient");
            }
        };

        h.PlanAll();
        await h.DrainAsync();
        Assert.Empty(m1.Mesh.Links);

        h.Reconnect(0); // the server plans the pair again with m0's new epoch
        await h.DrainAsync();

        h.AssertConverged();
    }

    [Fact]
    public async Task FactoryReentersTheMeshFromAnotherThread_DoesNotWaitForTheMeshLock()
    {
        var h = new MeshHarness(2);
        var m0 = h.Members[0];
        var reentered = new List<bool>();
        m0.Factory.BeforeCreate = _ =>
        {
            // A JS interop call marshalled to another thread that reads the mesh back (a render reading Links).
            var read = Task.Run(() => m0.Mesh.Links.Count);
            reentered.Add(read.Wait(TimeSpan.FromSeconds(5)));
        };

        h.PlanAll();
        await Task.Run(() => h.DrainAsync()).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.NotEmpty(reentered);
        Assert.All(reentered, Assert.True);
        h.AssertConverged();
    }
}
