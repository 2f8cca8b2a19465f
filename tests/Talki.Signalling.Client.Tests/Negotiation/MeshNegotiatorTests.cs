using Talki.Signalling.Client.Negotiation;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Client.Tests.Negotiation;

public sealed class MeshNegotiatorTests
{
    [Fact]
    public async Task ConnectToPeer_Offerer_SendsOfferToPeerEpoch()
    {
        var h = new MeshHarness(2);
        h.PlanAll();
        await h.DeliverAsync(0, false); // plan to m0 (the offerer)

        var pc = h.Members[0].Pc(h.Members[1]);
        Assert.Equal(PeerSignalingState.HaveLocalOffer, pc.SignalingState);
        var offer = Assert.Single(h.Pool, e => e.Message is SignalRelayMessage { Description: not null });
        var relay = (SignalRelayMessage)offer.Message;
        Assert.Equal(SdpType.Offer, relay.Description!.Type);
        Assert.Equal(h.Members[1].Epoch, offer.ToEpoch);
        Assert.Equal(h.Members[0].Epoch, relay.FromEpoch);
    }

    [Fact]
    public async Task ConnectionThatAlwaysRefusesItsLocalDescription_IsReplacedThreeTimes_NotForEver()
    {
        // Each replacement starts inline: without a bound this was an endless chain of links, and an endless recursion.
        var h = new MeshHarness(2);
        h.Fabric.RefuseLocalDescriptions = true;
        h.PlanAll();
        await h.DeliverAsync(0, false); // the plan to m0: it offers, fails, and is replaced

        Assert.Equal(4, h.Fabric.Created); // the first link and three replacements
        Assert.Equal(4, h.Errors.Count(e => e.Kind == NegotiationErrorKind.LocalDescriptionFailed));
        Assert.Equal(4, h.Errors.Count);
    }

    [Fact]
    public async Task RemoteOffer_Answerer_AnswersAndBothConnect()
    {
        var h = new MeshHarness(2);
        h.PlanAll();
        await h.DrainAsync();

        h.AssertConverged();
        var answerer = h.Members[1].Pc(h.Members[0]);
        Assert.Equal(["srd:offer", "sld:answer"], answerer.History);
        Assert.Equal(["sld:offer", "srd:answer"], h.Members[0].Pc(h.Members[1]).History);
        Assert.Empty(h.Errors);
    }

    [Fact]
    public async Task CandidatesGatheredTogether_LeaveAsOneSignal_AfterTheDescription_AndAllArrive()
    {
        // A browser gathers its host candidates right after setting the local description: they fire one by one, and one
        // message each would cost an API Gateway message and a relay each.
        var h = new MeshHarness(2);
        h.Fabric.CandidatesPerGathering = 5;
        h.PlanAll();
        await h.DeliverAsync(0, false); // plan to m0: it offers and gathers

        var fromOfferer = h.Pool.Select(e => e.Message).OfType<SignalRelayMessage>().ToList();
        Assert.Equal(2, fromOfferer.Count);
        Assert.NotNull(fromOfferer[0].Description); // the offer first
        Assert.Equal(6, fromOfferer[1].Candidates!.Count); // then its five candidates and the end of gathering in one signal
        Assert.Equal(string.Empty, fromOfferer[1].Candidates![^1].Candidate);
        await h.DrainAsync();
        h.AssertConverged();
        Assert.Equal(5, h.Members[1].Pc(h.Members[0]).RemoteCandidates.Count(c => c.Candidate.Length > 0));
        Assert.Equal(5, h.Members[0].Pc(h.Members[1]).RemoteCandidates.Count(c => c.Candidate.Length > 0));
        Assert.Empty(h.Errors);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Glare_BothOffer_PoliteSideRollsBackAndBothConverge(bool offererIsPolite)
    {
        var h = new MeshHarness(2);
        h.PlanAll((_, _) => offererIsPolite);
        await h.DrainAsync();
        var pc0 = h.Members[0].Pc(h.Members[1]);
        var pc1 = h.Members[1].Pc(h.Members[0]);

        pc0.AddTrack();
        pc1.AddTrack();
        Assert.Equal(PeerSignalingState.HaveLocalOffer, pc0.SignalingState);
        Assert.Equal(PeerSignalingState.HaveLocalOffer, pc1.SignalingState);
        await h.DrainAsync();

        var (polite, impolite) = offererIsPolite ? (pc0, pc1) : (pc1, pc0);
        Assert.Equal(1, polite.ImplicitRollbacks);
        Assert.Equal(0, impolite.ImplicitRollbacks);
        h.AssertConverged();
        Assert.Empty(h.Errors);
    }

    [Fact]
    public async Task Candidates_BeforeRemoteDescription_AreBufferedThenApplied()
    {
        var h = new MeshHarness(2);
        h.PlanAll();
        await h.DeliverAsync(0, false); // m0 plan: offer + candidate in flight
        await h.DeliverAsync(0, false); // m1 plan
        var candidateIndex = h.Deliverable().First(i => h.Pool[i].Message is SignalRelayMessage { Description: null });
        await h.DeliverAsync(h.Deliverable().IndexOf(candidateIndex), false);

        var pc1 = h.Members[1].Pc(h.Members[0]);
        Assert.Null(pc1.RemoteDescription);
        Assert.Empty(pc1.RemoteCandidates);

        await h.DrainAsync();
        Assert.NotEmpty(pc1.RemoteCandidates);
        Assert.Empty(h.Errors); // no InvalidStateError surfaced
        h.AssertConverged();
    }

    [Fact]
    public void SimulatedPeerConnection_CandidateWithoutRemoteDescription_ThrowsInvalidState()
    {
        var pc = new SimulatedFabric().Create("a", new PeerLinkPlan(default, 1, true, false));
        var ex = Assert.Throws<PeerConnectionException>(() => pc.AddIceCandidateAsync(new IceCandidate { Candidate = "candidate:1" }).AsTask().GetAwaiter().GetResult());
        Assert.Equal(PeerConnectionErrorKind.InvalidState, ex.Kind);
    }

    [Fact]
    public async Task SimulatedPeerConnection_AnswerInStable_ThrowsAndRollbackReturnsToStable()
    {
        var fabric = new SimulatedFabric();
        var a = fabric.Create("a", new PeerLinkPlan(default, 1, true, false));
        var b = fabric.Create("b", new PeerLinkPlan(default, 1, false, true));
        await a.SetLocalDescriptionAsync();
        var ex = await Assert.ThrowsAsync<PeerConnectionException>(() => b.SetRemoteDescriptionAsync(new SessionDescription { Type = SdpType.Answer, Sdp = a.LocalDescription!.Sdp }).AsTask());
        Assert.Equal(PeerConnectionErrorKind.InvalidState, ex.Kind);

        await b.SetRemoteDescriptionAsync(a.LocalDescription!);
        Assert.Equal(PeerSignalingState.HaveRemoteOffer, b.SignalingState);
        await b.SetRemoteDescriptionAsync(new SessionDescription { Type = SdpType.Rollback });
        Assert.Equal(PeerSignalingState.Stable, b.SignalingState);
        Assert.Null(b.RemoteDescription);
    }

    [Fact]
    public async Task Signal_FromStaleEpoch_IsDropped()
    {
        var h = new MeshHarness(2);
        h.PlanAll();
        await h.DrainAsync();
        var m0 = h.Members[0];
        var m1 = h.Members[1];
        var pc = m1.Pc(m0);
        var before = pc.History.Count;

        await m1.Mesh.HandleAsync(new SignalRelayMessage
        {
            From = m0.Id,
            FromEpoch = m0.Epoch - 1,
            Description = new SessionDescription { Type = SdpType.Offer, Sdp = "v=0\r\no=- 999 1 IN IP4 0.0.0.0\r\na=ice-ufrag:x\r\n" },
        });

        Assert.Equal(before, pc.History.Count);
        Assert.Empty(h.Pool);
        h.AssertConverged();
    }

    [Fact]
    public async Task PeerLeft_MatchingEpoch_TearsDownLink_OtherEpochIgnored()
    {
        var h = new MeshHarness(3);
        h.PlanAll();
        await h.DrainAsync();
        var m0 = h.Members[0];
        var m1 = h.Members[1];

        await m0.Mesh.HandleAsync(new PeerLeftMessage { Member = m1.Id, Epoch = m1.Epoch + 1 });
        Assert.Equal(2, m0.Mesh.Links.Count);

        await m0.Mesh.HandleAsync(new PeerLeftMessage { Member = m1.Id, Epoch = m1.Epoch });
        var remaining = Assert.Single(m0.Mesh.Links);
        Assert.Equal(h.Members[2].Id, remaining.Peer);
        Assert.Equal(PeerSignalingState.Closed, m0.Pc(m1).SignalingState);
        Assert.Equal(PeerConnectionState.Connected, remaining.ConnectionState);
    }

    [Fact]
    public async Task Denied_Self_TearsDownAllLinks()
    {
        var h = new MeshHarness(3);
        h.PlanAll();
        await h.DrainAsync();
        var m0 = h.Members[0];

        await m0.Mesh.HandleAsync(new DeniedMessage { Member = m0.View });

        Assert.Empty(m0.Mesh.Links);
        Assert.All(m0.Factory.Created, pc => Assert.Equal(PeerSignalingState.Closed, pc.SignalingState));
    }

    [Fact]
    public async Task ConnectFailed_BothSidesRestartIce_AndReconnectWithNewCredentials()
    {
        var h = new MeshHarness(2);
        h.PlanAll();
        await h.DrainAsync();
        var pc0 = h.Members[0].Pc(h.Members[1]);
        var pc1 = h.Members[1].Pc(h.Members[0]);
        var oldUfrag = SdpOrigin.ReadAttribute(pc0.CurrentLocal!.Sdp, "ice-ufrag");

        Assert.True(h.Fabric.InjectFailure(pc0));
        Assert.Equal(PeerConnectionState.Failed, pc0.ConnectionState);
        Assert.Contains("restartIce", pc0.History);
        Assert.Contains("restartIce", pc1.History);
        await h.DrainAsync();

        h.AssertConverged();
        Assert.NotEqual(oldUfrag, SdpOrigin.ReadAttribute(pc0.CurrentLocal!.Sdp, "ice-ufrag"));
        Assert.Same(pc0, h.Members[0].Pc(h.Members[1])); // restarted in place, not replaced
    }

    [Fact]
    public async Task ConnectToPeer_DuplicateIgnored_NewerEpochReplacesLink()
    {
        var h = new MeshHarness(2);
        h.PlanAll();
        await h.DrainAsync();
        var m0 = h.Members[0];
        var m1 = h.Members[1];
        var first = m0.Pc(m1);

        await m0.Mesh.HandleAsync(new ConnectToPeerMessage { Peer = m1.View, PeerEpoch = m1.Epoch, Offerer = true });
        Assert.Single(m0.Factory.Created);

        h.Reconnect(1);
        await h.DrainAsync();

        Assert.Equal(2, m0.Factory.Created.Count);
        Assert.Equal(PeerSignalingState.Closed, first.SignalingState);
        h.AssertConverged();
    }

    [Fact]
    public async Task RejectedRemoteDescription_ResetsOnlyThatLink_AndRaisesTypedError()
    {
        var h = new MeshHarness(3);
        h.PlanAll();
        // m2 is the answerer for both m0 and m1; make its link to m0 reject the offer.
        await h.DeliverAsync(0, false); // plans to m0
        await h.DeliverAsync(0, false);
        while (h.Pool.Any(e => e.To == 2 && e.Message is ConnectToPeerMessage))
        {
            var i = h.Deliverable().First(x => h.Pool[x].To == 2 && h.Pool[x].Message is ConnectToPeerMessage);
            await h.DeliverAsync(h.Deliverable().IndexOf(i), false);
        }

        var m0 = h.Members[0];
        var m2 = h.Members[2];
        var doomed = m2.Pc(m0);
        doomed.RejectNextRemoteDescription = true;
        await h.DrainAsync();

        var error = Assert.Single(h.Errors);
        Assert.Equal(NegotiationErrorKind.RemoteDescriptionRejected, error.Kind);
        Assert.Equal(m0.Id, error.Peer);
        Assert.Equal(PeerSignalingState.Closed, doomed.SignalingState);
        var fresh = m2.Pc(m0);
        Assert.NotSame(doomed, fresh);
        Assert.Equal(PeerSignalingState.Stable, fresh.SignalingState);
        Assert.Equal(2, m2.Mesh.Links.Count);
        h.AssertConverged(); // the fresh link offers; m0, still waiting for an answer, resends its offer; both converge
        Assert.Equal(PeerConnectionState.Connected, Assert.Single(m2.Mesh.Links, l => l.Peer == h.Members[1].Id).ConnectionState);
    }

    [Fact]
    public async Task MalformedRemoteDescription_ResetsLink()
    {
        var h = new MeshHarness(2);
        h.PlanAll();
        await h.DrainAsync();
        var m0 = h.Members[0];
        var m1 = h.Members[1];
        var old = m1.Pc(m0);

        await m1.Mesh.HandleAsync(new SignalRelayMessage { From = m0.Id, FromEpoch = m0.Epoch, Description = new SessionDescription { Type = SdpType.Offer, Sdp = "garbage" } });

        Assert.Equal(NegotiationErrorKind.RemoteDescriptionRejected, Assert.Single(h.Errors).Kind);
        Assert.Equal(PeerSignalingState.Closed, old.SignalingState);
        Assert.Single(m1.Mesh.Links);
    }

    [Fact]
    public async Task DuplicateDescription_IsDropped()
    {
        var h = new MeshHarness(2);
        h.PlanAll();
        await h.DeliverAsync(0, false);
        await h.DeliverAsync(0, false);
        var offerIndex = h.Deliverable().First(i => h.Pool[i].Message is SignalRelayMessage { Description: not null });
        await h.DeliverAsync(h.Deliverable().IndexOf(offerIndex), duplicate: true);
        await h.DrainAsync();

        Assert.Equal(["srd:offer", "sld:answer"], h.Members[1].Pc(h.Members[0]).History);
        h.AssertConverged();
    }
}

public sealed class MeshNegotiatorEdgeTests
{
    [Fact]
    public async Task Signal_FromNewerEpochBeforeItsPlan_IsHeldAndReplayed_EvenAcrossAnOlderPlan()
    {
        var h = new MeshHarness(2);
        var m0 = h.Members[0];
        var m1 = h.Members[1];
        var fabric = new SimulatedFabric();
        var remote = fabric.Create("m1", new PeerLinkPlan(m0.Id, m0.Epoch, true, false));
        remote.AddTrack();
        await remote.SetLocalDescriptionAsync();
        var offer = new SignalRelayMessage { From = m1.Id, FromEpoch = 2, Description = remote.LocalDescription };

        await m0.Mesh.HandleAsync(offer);
        Assert.Empty(m0.Mesh.Links);

        await m0.Mesh.HandleAsync(new ConnectToPeerMessage { Peer = m1.View, PeerEpoch = 1, Offerer = false, Polite = true });
        var stale = m0.Pc(m1);
        Assert.Empty(stale.History);

        await m0.Mesh.HandleAsync(new ConnectToPeerMessage { Peer = m1.View with { Epoch = 2 }, PeerEpoch = 2, Offerer = false, Polite = true });
        var current = m0.Pc(m1);
        Assert.Equal(PeerSignalingState.Closed, stale.SignalingState);
        Assert.Equal(["srd:offer", "sld:answer"], current.History);
        Assert.Equal(2, Assert.Single(m0.Mesh.Links).PeerEpoch);
    }

    [Fact]
    public async Task ImpoliteSide_IgnoresCollidingOffer_AndSuppressesItsCandidateErrors()
    {
        var h = new MeshHarness(2);
        h.PlanAll(); // m0 offers and is impolite
        await h.DeliverAsync(0, false);
        var m0 = h.Members[0];
        var m1 = h.Members[1];
        var pc0 = m0.Pc(m1);
        Assert.Equal(PeerSignalingState.HaveLocalOffer, pc0.SignalingState);

        var colliding = new SessionDescription { Type = SdpType.Offer, Sdp = "v=0\r\no=- 77 1 IN IP4 0.0.0.0\r\na=ice-ufrag:foreign\r\n" };
        await m0.Mesh.HandleAsync(new SignalRelayMessage
        {
            From = m1.Id,
            FromEpoch = m1.Epoch,
            Description = colliding,
            Candidates = [new IceCandidate { Candidate = "candidate:9 1 udp 1 10.9.9.9 9 typ host", UsernameFragment = "foreign" }],
        });

        Assert.Equal(["sld:offer"], pc0.History);
        Assert.Equal(PeerSignalingState.HaveLocalOffer, pc0.SignalingState);
        await h.DrainAsync();
        h.AssertConverged();
        Assert.Empty(h.Errors); // the ignored offer's candidate matches no applied description: held, never surfaced
    }

    [Fact]
    public async Task Denied_OtherMember_TearsDownOnlyItsLink()
    {
        var h = new MeshHarness(3);
        h.PlanAll();
        await h.DrainAsync();
        var m0 = h.Members[0];

        await m0.Mesh.HandleAsync(new DeniedMessage { Member = h.Members[2].View });

        Assert.Equal(h.Members[1].Id, Assert.Single(m0.Mesh.Links).Peer);
    }

    [Fact]
    public async Task Candidate_OvertakingIceRestartOffer_IsHeldUntilItsDescription_OldGenerationDropped()
    {
        var h = new MeshHarness(2);
        h.PlanAll();
        await h.DrainAsync();
        var pc0 = h.Members[0].Pc(h.Members[1]);
        var pc1 = h.Members[1].Pc(h.Members[0]);
        var oldUfrag = SdpOrigin.ReadAttribute(pc0.CurrentLocal!.Sdp, "ice-ufrag");

        pc0.RestartIce(); // only m0 restarts: it offers with new credentials, then sends the candidate
        var candidate = h.Deliverable().First(i => h.Pool[i].Message is SignalRelayMessage { Description: null, From.Value: "m0" });
        await h.DeliverAsync(h.Deliverable().IndexOf(candidate), false); // the candidate overtakes the offer
        var newUfrag = SdpOrigin.ReadAttribute(pc0.LocalDescription!.Sdp, "ice-ufrag");
        Assert.DoesNotContain(pc1.RemoteCandidates, c => c.UsernameFragment == newUfrag);

        await h.DrainAsync();
        Assert.Contains(pc1.RemoteCandidates, c => c.UsernameFragment == newUfrag);

        await h.Members[1].Mesh.HandleAsync(new SignalRelayMessage
        {
            From = h.Members[0].Id,
            FromEpoch = h.Members[0].Epoch,
            Candidates = [new IceCandidate { Candidate = "candidate:late", UsernameFragment = oldUfrag }],
        });
        Assert.DoesNotContain(pc1.RemoteCandidates, c => c.Candidate == "candidate:late");
        Assert.Empty(h.Errors);
        h.AssertConverged();
    }
}
