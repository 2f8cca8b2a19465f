using Talki.Signalling.Client.Negotiation;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Client.Tests.Negotiation;

/// <summary>
/// The simulator the negotiation tests run on connects a pair the way ICE does (RFC 8445): not on the descriptions alone,
/// only once a candidate pair can form. A simulator that connected earlier let a test pass that a browser would fail.
/// </summary>
public sealed class SimulatedFabricTests
{
    [Fact]
    public async Task DescriptionsWithoutCandidates_StayConnecting_UntilOneSideHoldsARemoteCandidate()
    {
        var fabric = new SimulatedFabric { Gathering = GatheringMode.Manual };
        var (a, b) = await NegotiateAsync(fabric);

        Assert.Equal(PeerSignalingState.Stable, a.SignalingState);
        Assert.Equal(PeerSignalingState.Stable, b.SignalingState);
        Assert.Equal(PeerConnectionState.Connecting, a.ConnectionState);
        Assert.Equal(PeerConnectionState.Connecting, b.ConnectionState);

        // One direction is enough: b checks towards a's candidate, and a learns b's address from those checks.
        var candidates = new List<IceCandidate>();
        a.LocalIceCandidate += (_, candidate) => candidates.Add(candidate);
        a.EmitCandidate();
        await b.AddIceCandidateAsync(Assert.Single(candidates));

        Assert.Equal(PeerConnectionState.Connected, a.ConnectionState);
        Assert.Equal(PeerConnectionState.Connected, b.ConnectionState);
    }

    [Fact]
    public async Task AnEndOfCandidatesAlone_FormsNoPair()
    {
        var fabric = new SimulatedFabric { Gathering = GatheringMode.Manual };
        var (a, b) = await NegotiateAsync(fabric);

        await b.AddIceCandidateAsync(new IceCandidate { Candidate = string.Empty });

        Assert.Equal(PeerConnectionState.Connecting, a.ConnectionState);
        Assert.Equal(PeerConnectionState.Connecting, b.ConnectionState);
    }

    private static async Task<(SimulatedPeerConnection A, SimulatedPeerConnection B)> NegotiateAsync(SimulatedFabric fabric)
    {
        var a = fabric.Create("a", new PeerLinkPlan(MemberId.New(), 1, Offerer: true, Polite: false));
        var b = fabric.Create("b", new PeerLinkPlan(MemberId.New(), 1, Offerer: false, Polite: true));
        await a.SetLocalDescriptionAsync();
        await b.SetRemoteDescriptionAsync(a.LocalDescription!);
        await b.SetLocalDescriptionAsync();
        await a.SetRemoteDescriptionAsync(b.LocalDescription!);
        return (a, b);
    }
}
