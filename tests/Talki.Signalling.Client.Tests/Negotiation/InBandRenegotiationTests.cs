using Talki.Signalling.Client.Negotiation;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Client.Tests.Negotiation;

public sealed class InBandRenegotiationTests
{
    [Fact]
    public async Task Sealed_IceRestart_RenegotiatesOverControlChannel_WithoutTheServer()
    {
        var h = new MeshHarness(3);
        h.PlanAll();
        await h.DrainAsync();
        h.AssertConverged();
        foreach (var m in h.Members)
        {
            m.Mesh.SignalInBand = true;
        }

        var pc0 = h.Members[0].Pc(h.Members[1]);
        var pc1 = h.Members[1].Pc(h.Members[0]);
        var oldUfrag0 = SdpOrigin.ReadAttribute(pc0.CurrentLocal!.Sdp, "ice-ufrag");
        var oldUfrag1 = SdpOrigin.ReadAttribute(pc1.CurrentLocal!.Sdp, "ice-ufrag");
        var sentBefore = pc0.SentOnChannels.Count + pc1.SentOnChannels.Count;

        pc0.RestartIce();
        await Task.Yield();

        Assert.Equal(0, h.InFlight); // nothing went through the server
        Assert.True(pc0.SentOnChannels.Count + pc1.SentOnChannels.Count > sentBefore);
        h.AssertConverged();
        Assert.NotEqual(oldUfrag0, SdpOrigin.ReadAttribute(pc0.CurrentLocal!.Sdp, "ice-ufrag"));
        Assert.NotEqual(oldUfrag1, SdpOrigin.ReadAttribute(pc1.CurrentLocal!.Sdp, "ice-ufrag"));
        Assert.Same(pc0, h.Members[0].Pc(h.Members[1]));
        Assert.Empty(h.Errors);
    }

    [Fact]
    public async Task Sealed_BothAddTracks_RenegotiateInBand_AndConverge()
    {
        var h = new MeshHarness(2);
        h.PlanAll();
        await h.DrainAsync();
        h.Members[0].Mesh.SignalInBand = true;
        h.Members[1].Mesh.SignalInBand = true;
        var pc0 = h.Members[0].Pc(h.Members[1]);
        var pc1 = h.Members[1].Pc(h.Members[0]);

        var revisions = pc0.History.Count + pc1.History.Count;
        pc0.AddTrack();
        pc1.AddTrack();
        await Task.Yield();

        Assert.Equal(0, h.InFlight);
        h.AssertConverged();
        Assert.True(pc0.History.Count + pc1.History.Count > revisions);
        Assert.Contains("x-media-revision:2", pc1.CurrentRemote!.Sdp, StringComparison.Ordinal);
    }

    [Fact]
    public async Task NotSealed_SignalsKeepUsingTheServer()
    {
        var h = new MeshHarness(2);
        h.PlanAll();
        await h.DrainAsync();
        var pc0 = h.Members[0].Pc(h.Members[1]);

        pc0.RestartIce();

        Assert.True(h.InFlight > 0);
        await h.DrainAsync();
        h.AssertConverged();
    }

    [Fact]
    public async Task Sealed_RemoteSaysGoodbye_LinkTornDownOnlyForThatMember()
    {
        var h = new MeshHarness(3);
        h.PlanAll();
        await h.DrainAsync();
        foreach (var m in h.Members)
        {
            m.Mesh.SignalInBand = true;
        }

        await h.Members[2].Mesh.SayGoodbyeAsync();

        Assert.DoesNotContain(h.Members[0].Mesh.Links, l => l.Peer == h.Members[2].Id);
        Assert.DoesNotContain(h.Members[1].Mesh.Links, l => l.Peer == h.Members[2].Id);
        Assert.Contains(h.Members[0].Mesh.Links, l => l.Peer == h.Members[1].Id && l.ConnectionState == PeerConnectionState.Connected);
        Assert.Equal(PeerSignalingState.Closed, h.Members[0].Pc(h.Members[2]).SignalingState);
    }

    [Fact]
    public async Task MalformedControlChannelMessage_IsReportedAndIgnored_LinkStaysUp()
    {
        var h = new MeshHarness(2);
        h.PlanAll();
        await h.DrainAsync();
        var pc0 = h.Members[0].Pc(h.Members[1]);
        var channel = Assert.Single(pc0.OpenedChannels);

        await channel.SendAsync("{not json");

        var error = Assert.Single(h.Errors);
        Assert.Equal(NegotiationErrorKind.InBandMessageMalformed, error.Kind);
        Assert.Equal(h.Members[0].Id, error.Peer);
        h.AssertConverged();
    }

    [Fact]
    public async Task ResetLink_ReplacesOnlyThatLink()
    {
        var h = new MeshHarness(3);
        h.PlanAll();
        await h.DrainAsync();
        var toOne = h.Members[0].Pc(h.Members[1]);
        var toTwo = h.Members[0].Pc(h.Members[2]);

        Assert.True(h.Members[0].Mesh.ResetLink(h.Members[1].Id));
        await h.DrainAsync();

        Assert.NotSame(toOne, h.Members[0].Pc(h.Members[1]));
        Assert.Same(toTwo, h.Members[0].Pc(h.Members[2]));
        Assert.Equal(NegotiationErrorKind.MalformedSignal, Assert.Single(h.Errors).Kind);
    }
}
