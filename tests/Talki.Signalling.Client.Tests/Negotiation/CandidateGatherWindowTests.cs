using System.Diagnostics;
using System.Text.Json;
using Microsoft.Extensions.Time.Testing;
using Talki.Signalling.Client.Negotiation;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Client.Tests.Negotiation;

/// <summary>
/// The candidate gather window (<see cref="TalkiClientOptions.CandidateGatherWindow"/>): a local description waits until
/// gathering completes or the window ends, then leaves in one signal with the candidates gathered meanwhile.
/// </summary>
public sealed class CandidateGatherWindowTests
{
    /// <summary>Two members on a fake clock, gathering by hand, the window on; the plan reached m0, which offers.</summary>
    private static async Task<(FakeTimeProvider Time, MeshHarness H, SimulatedPeerConnection Offerer)> OfferWithManualGatheringAsync()
    {
        var time = new FakeTimeProvider();
        var h = new MeshHarness(2, time, candidateGatherWindow: Window);
        h.Fabric.Gathering = GatheringMode.Manual;
        h.PlanAll();
        await h.DeliverAsync(0, false);
        return (time, h, h.Members[0].Pc(h.Members[1]));
    }

    private static readonly TimeSpan Window = TimeSpan.FromMilliseconds(50);

    /// <summary>The offer left with its one candidate at its window's end, then gathering completed: the lone end-of-candidates waits.</summary>
    private static async Task<(FakeTimeProvider Time, MeshHarness H, SimulatedPeerConnection Offerer)> OfferLeftThenGatheringCompletedAsync()
    {
        var (time, h, offerer) = await OfferWithManualGatheringAsync();
        offerer.EmitCandidate();
        time.Advance(Window); // the offer leaves with its candidate
        offerer.CompleteGathering(); // nothing to ride with: it waits for the link to connect
        Assert.Single(SentBy(h, 0));
        return (time, h, offerer);
    }

    [Fact]
    public async Task CandidatesGatheredWithinTheWindow_RideWithTheOffer_InOneSignal_AndTheAnswererAppliesBoth()
    {
        var time = new FakeTimeProvider();
        var h = new MeshHarness(2, time, candidateGatherWindow: Window);
        h.Fabric.Gathering = GatheringMode.Manual;
        h.PlanAll();
        await h.DeliverAsync(0, false); // the plan to m0: it offers, and holds the offer for its window
        var offerer = h.Members[0].Pc(h.Members[1]);
        Assert.Equal(PeerSignalingState.HaveLocalOffer, offerer.SignalingState);
        Assert.Empty(SentBy(h, 0));

        offerer.EmitCandidate();
        offerer.EmitCandidate();
        offerer.EmitCandidate();
        time.Advance(Window - TimeSpan.FromMilliseconds(1));
        Assert.Empty(SentBy(h, 0));

        time.Advance(TimeSpan.FromMilliseconds(1));
        var signal = Assert.Single(SentBy(h, 0));
        Assert.Equal(SdpType.Offer, signal.Description?.Type);
        Assert.Equal(offerer.EmittedCandidates, signal.Candidates);

        await h.DeliverAsync(0, false); // the plan to m1
        await h.DeliverAsync(0, false); // the offer and its candidates, one message
        var answerer = h.Members[1].Pc(h.Members[0]);
        Assert.Equal(["srd:offer", "sld:answer"], answerer.History);
        Assert.Equal(offerer.EmittedCandidates, answerer.RemoteCandidates);

        answerer.EmitCandidate();
        answerer.CompleteGathering();
        await SettleAsync(h, time);
        h.AssertConverged();
        h.AssertCurrentCandidatesDelivered();
        Assert.Single(SentBy(h, 1));
        Assert.Empty(h.Errors);
    }

    [Theory]
    [InlineData(false)] // the W3C order: icegatheringstatechange, then the null candidate
    [InlineData(true)]
    public async Task GatheringComplete_EndsTheWindowEarly_WithOneEndOfCandidates(bool nullCandidateFirst)
    {
        var order = nullCandidateFirst ? GatheringMode.CompletesNullCandidateFirst : GatheringMode.Completes;
        var (time, h, offerer) = await OfferWithManualGatheringAsync();
        offerer.Gathering = order;

        offerer.EmitCandidate();
        offerer.EmitCandidate();
        offerer.CompleteGathering(); // no time passes

        var signal = Assert.Single(SentBy(h, 0));
        Assert.Equal(SdpType.Offer, signal.Description?.Type);
        Assert.Equal(3, signal.Candidates!.Count);
        Assert.Equal(offerer.EmittedCandidates.Where(c => c.Candidate.Length > 0), signal.Candidates.Take(2));
        Assert.Equal(string.Empty, signal.Candidates[2].Candidate);

        time.Advance(Window * 4);
        Assert.Single(SentBy(h, 0)); // the null candidate was not sent a second time, and the timer did nothing
    }

    [Fact]
    public async Task HeldAnswer_LeavesWhenItsWindowEnds_EvenWhileTheOffersCandidatesAreStillBeingAdded()
    {
        // In Chromium each addIceCandidate takes a few ms; the candidates that came with the offer are added after the
        // answer is set, on the link's queue. The answer's window must not wait for them.
        var (time, h, offerer) = await OfferWithManualGatheringAsync();
        offerer.EmitCandidate();
        offerer.EmitCandidate();
        offerer.CompleteGathering();
        await h.DeliverAsync(0, false); // the plan to m1
        var answerer = h.Members[1].Pc(h.Members[0]);
        answerer.HoldNextCandidate = true;

        var handling = h.DeliverAsync(0, false); // the offer with its candidates: the first addIceCandidate stays in flight
        Assert.False(handling.IsCompleted);
        Assert.Equal(PeerSignalingState.Stable, answerer.SignalingState);
        answerer.EmitCandidate();
        Assert.Empty(SentBy(h, 1));

        time.Advance(Window);
        var answer = Assert.Single(SentBy(h, 1));
        Assert.Equal(SdpType.Answer, answer.Description?.Type);
        Assert.Equal(answerer.EmittedCandidates[^1], Assert.Single(answer.Candidates!));

        answerer.ReleaseHeld();
        await handling;
        answerer.CompleteGathering();
        await SettleAsync(h, time);
        h.AssertConverged();
        Assert.Equal(3, answerer.RemoteCandidates.Count);
        Assert.Empty(h.Errors);
    }

    [Fact]
    public async Task CandidateAfterTheWindow_WaitsForTheEndOfGathering_AndLeavesWithItInOneSignal()
    {
        var (time, h, offerer) = await OfferWithManualGatheringAsync();
        offerer.EmitCandidate();
        time.Advance(Window);

        offerer.EmitCandidate(); // a slow one (a relay candidate, say): it opens a trickle window
        Assert.Single(SentBy(h, 0));
        offerer.CompleteGathering(); // the end of gathering sends the batch at once

        var sent = SentBy(h, 0);
        Assert.Equal(2, sent.Count);
        Assert.Equal(offerer.EmittedCandidates[0], Assert.Single(sent[0].Candidates!));
        Assert.NotNull(sent[0].Description);
        Assert.Null(sent[1].Description);
        Assert.Equal([offerer.EmittedCandidates[1].Candidate, string.Empty], sent[1].Candidates!.Select(c => c.Candidate));
        await SettleAsync(h, time);
        h.AssertConverged();
    }

    [Fact]
    public async Task LoneEndOfCandidates_WaitsForTheLinkToConnect_AndIsNeverSentOnceItDid()
    {
        var (time, h, offerer) = await OfferLeftThenGatheringCompletedAsync();

        await LinkUpThenPassTheDelayAsync(h, time, offerer);
        Assert.DoesNotContain(SentBy(h, 0).Concat(SentBy(h, 1)), s => s.Candidates?.Any(c => c.Candidate.Length == 0) == true);
    }

    [Fact]
    public async Task LoneEndOfCandidates_LinkStillComingUpAtTheEndOfTheDelay_LeavesThen_NotBefore()
    {
        // A link still checking (here: the answer has not come) gets its end-of-candidates: the remote agent needs it to
        // conclude that checking failed.
        var (time, h, offerer) = await OfferLeftThenGatheringCompletedAsync();

        await TheyLeaveAtTheDelayNotBeforeAsync(h, time, offerer, TimeSpan.Zero, [string.Empty]);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task DeferredCandidates_ThenAUdpCandidate_TheyLeaveTogetherWithinAWindow_NotAtTheEndOfTheDelay(bool activeTcp)
    {
        // Waiting: the end of gathering, or an active TCP candidate. A late UDP one (a network interface that came up)
        // starts checks: it does not wait for the delay, and takes the waiting one along.
        var (time, h, offerer) = await OfferWithManualGatheringAsync();
        offerer.EmitCandidate();
        time.Advance(Window); // the offer leaves with its candidate
        if (activeTcp)
        {
            offerer.EmitActiveTcpCandidate();
        }
        else
        {
            offerer.CompleteGathering();
        }

        time.Advance(TimeSpan.FromMilliseconds(100));
        offerer.EmitCandidate();

        time.Advance(Window);
        var sent = SentBy(h, 0);
        Assert.Equal(2, sent.Count);
        Assert.Equal(offerer.EmittedCandidates.Skip(1).Select(c => c.Candidate), sent[1].Candidates!.Select(c => c.Candidate));

        time.Advance(PeerNegotiator.DeferredCandidatesDelay);
        Assert.Equal(2, SentBy(h, 0).Count); // the delay's timer finds nothing left to send
        await SettleAsync(h, time);
        h.AssertConverged();
    }

    [Fact]
    public async Task LoneEndOfCandidates_OfAGatheringANewOneReplaced_IsNeverSent_NorRidesWithTheNewDescription()
    {
        // The offer leaves with no candidate at all (four windows), the answer too: the pair is stable but cannot connect,
        // and the offerer restarts ICE while its first gathering's end-of-candidates still waits. That marker must not
        // reach the remote side with the new generation's offer, or its agent would take the new generation as complete.
        var (time, h, offerer) = await StableButNotConnectedAsync(o => o.CompleteGathering()); // the lone marker waits

        await RestartIceWithACandidateAsync(h, time, offerer);

        time.Advance(PeerNegotiator.DeferredCandidatesDelay);
        Assert.DoesNotContain(SentBy(h, 0), s => s.Candidates?.Any(c => c.Candidate.Length == 0) == true);
        await AnswererGathersAndTheyConvergeAsync(h, time, offerer, offererCompletes: false);
    }

    [Fact]
    public async Task LoneEndOfCandidates_LinkClosedWhileItWaits_IsNeverSent()
    {
        var (time, h, offerer) = await OfferLeftThenGatheringCompletedAsync();
        await h.Members[0].Mesh.HandleAsync(new PeerLeftMessage { Member = h.Members[1].Id, Epoch = h.Members[1].Epoch });

        time.Advance(PeerNegotiator.DeferredCandidatesDelay * 2);
        Assert.Equal(PeerSignalingState.Closed, offerer.SignalingState);
        Assert.Single(SentBy(h, 0));
        Assert.Empty(h.Errors);
    }

    [Fact]
    public async Task RealClock_LoneEndOfCandidates_LinkNotUp_LeavesAfterTheDelay_NeverSooner()
    {
        var (h, offerer, waiting) = await RealClockOfferLeftThenGatheringCompletedAsync();

        while (SentBy(h, 0).Count < 2)
        {
            Assert.True(waiting.Elapsed < TimeSpan.FromSeconds(10), "the end-of-candidates never left");
            await Task.Delay(5);
        }

        Assert.True(waiting.Elapsed >= PeerNegotiator.DeferredCandidatesDelay - TimeSpan.FromMilliseconds(5), $"it left after {waiting.Elapsed.TotalMilliseconds:0} ms");
        Assert.Equal(string.Empty, Assert.Single(SentBy(h, 0)[1].Candidates!).Candidate);
    }

    [Fact]
    public async Task RealClock_LoneEndOfCandidates_LinkUpWithinTheDelay_IsNeverSent()
    {
        var (h, offerer, waiting) = await RealClockOfferLeftThenGatheringCompletedAsync();
        await h.DrainAsync(); // the answerer has the offer; its answer leaves with its candidate, a fifth of a window after it
        h.Members[1].Pc(h.Members[0]).EmitCandidate();
        while (offerer.ConnectionState != PeerConnectionState.Connected)
        {
            Assert.True(waiting.Elapsed < TimeSpan.FromSeconds(10), "the pair did not link up");
            await h.DrainAsync();
            await Task.Delay(5);
        }

        Assert.True(waiting.Elapsed < PeerNegotiator.DeferredCandidatesDelay, $"linked up after {waiting.Elapsed.TotalMilliseconds:0} ms, past the delay: the test proves nothing");
        await Task.Delay(PeerNegotiator.DeferredCandidatesDelay - waiting.Elapsed + TimeSpan.FromMilliseconds(300));
        await h.DrainAsync();
        Assert.Single(SentBy(h, 0));
        h.AssertConverged();
    }

    [Fact]
    public async Task ActiveTcpCandidates_AfterTheOfferLeft_WaitForTheLinkToConnect_AndAreNeverSentOnceItDid()
    {
        // Chromium gathers its active TCP host candidates about 110 ms after its UDP ones, usually after the description left.
        var (time, h, offerer) = await OfferWithManualGatheringAsync();
        offerer.EmitCandidate();
        time.Advance(Window); // the offer leaves with its UDP candidate
        offerer.EmitActiveTcpCandidate();
        offerer.EmitActiveTcpCandidate(); // IPv4 and IPv6
        time.Advance(Window * 2); // a trickle window would have sent them by now
        Assert.Single(SentBy(h, 0));

        await LinkUpThenPassTheDelayAsync(h, time, offerer);
        Assert.DoesNotContain(SentBy(h, 0), s => s.Candidates?.Any(c => PeerNegotiator.IsActiveTcp(c.Candidate)) == true);
    }

    [Fact]
    public async Task ActiveTcpCandidates_LinkStillComingUp_LeaveAtTheDelayFromTheFirst_WithTheEndOfCandidatesThatCameLater()
    {
        // A link still checking after the delay gets them (a remote agent with passive TCP candidates and no UDP path can
        // use them), and the end of gathering that joined them does not start the wait again.
        var (time, h, offerer) = await OfferWithManualGatheringAsync();
        offerer.EmitCandidate();
        time.Advance(Window); // the offer leaves; its answer never comes
        offerer.EmitActiveTcpCandidate();
        var tcp = offerer.EmittedCandidates[^1];
        time.Advance(TimeSpan.FromMilliseconds(300));
        offerer.CompleteGathering();

        await TheyLeaveAtTheDelayNotBeforeAsync(h, time, offerer, TimeSpan.FromMilliseconds(300), [tcp.Candidate, string.Empty]);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task ActiveTcpCandidates_OfAGatheringANewOneReplaced_AreNeverSent_TheNewOnesWaitAnew(bool firstGatheringCompleted)
    {
        // Flaky network: the offer leaves with no candidate at all (four windows), then only an active TCP candidate is
        // gathered (it waits; gathering completes, or is still going, as with a STUN server that does not answer), the
        // answer leaves bare: the pair is stable and cannot connect, and the offerer restarts ICE.
        IceCandidate? stale = null;
        var (time, h, offerer) = await StableButNotConnectedAsync(o =>
        {
            o.EmitActiveTcpCandidate();
            stale = o.EmittedCandidates[^1];
            if (firstGatheringCompleted)
            {
                o.CompleteGathering();
            }
        });
        Assert.NotNull(stale);

        time.Advance(TimeSpan.FromMilliseconds(500));
        await RestartIceWithACandidateAsync(h, time, offerer); // 500 ms into the old candidate's wait
        offerer.EmitActiveTcpCandidate(); // the new generation's: a wait of its own, from now

        time.Advance(PeerNegotiator.DeferredCandidatesDelay - Window - TimeSpan.FromMilliseconds(1));
        Assert.DoesNotContain(SentBy(h, 0), s => s.Candidates?.Contains(stale) == true);
        Assert.Equal(2, SentBy(h, 0).Count); // the old wait's end (500 ms ago) sent nothing
        await AnswererGathersAndTheyConvergeAsync(h, time, offerer, offererCompletes: false);
        Assert.DoesNotContain(SentBy(h, 0), s => s.Candidates?.Contains(stale) == true);
    }

    [Fact]
    public async Task RealClock_ActiveTcpCandidate_LinkNotUp_LeavesAfterTheDelay_NeverSooner()
    {
        var (h, started) = await RealClockOfferAsync(GatheringMode.Manual, Window);
        var offerer = h.Members[0].Pc(h.Members[1]);
        offerer.EmitCandidate();
        await FirstSignalAsync(h, started);
        var waiting = Stopwatch.StartNew();
        offerer.EmitActiveTcpCandidate();

        while (SentBy(h, 0).Count < 2)
        {
            Assert.True(waiting.Elapsed < TimeSpan.FromSeconds(10), "the active TCP candidate never left");
            await Task.Delay(5);
        }

        Assert.True(waiting.Elapsed >= PeerNegotiator.DeferredCandidatesDelay - TimeSpan.FromMilliseconds(5), $"it left after {waiting.Elapsed.TotalMilliseconds:0} ms");
        Assert.Equal(offerer.EmittedCandidates[^1], Assert.Single(SentBy(h, 0)[1].Candidates!));
    }

    [Theory]
    [InlineData("candidate:3709519234 1 tcp 1518280447 192.168.1.5 9 typ host tcptype active generation 0 ufrag Ab1z network-id 1", true)]
    [InlineData("candidate:2 1 TCP 1518280447 2001:db8::5 9 typ host TCPTYPE Active", true)]
    [InlineData("candidate:3 1 tcp 1 203.0.113.1 9 typ srflx raddr 10.0.0.1 rport 9 tcptype active", true)]
    [InlineData("candidate:4 1 tcp 1518280447 192.168.1.5 50001 typ host tcptype passive generation 0", false)]
    [InlineData("candidate:5 1 tcp 1518280447 192.168.1.5 50002 typ host tcptype so", false)]
    [InlineData("candidate:6 1 udp 2122260223 192.168.1.5 50003 typ host generation 0 ufrag Ab1z network-id 1", false)]
    [InlineData("candidate:7 1 udp 2122260223 192.168.1.5 50004 typ host tcptype active", false)] // not TCP: no tcptype
    [InlineData("candidate:8 1 tcp 1 10.0.0.1 9 typ host generation 0 ufrag tcptype network-id active", false)] // a value named like the attribute
    [InlineData("candidate:9 1 tcp 1 10.0.0.1 9 typ host", false)]
    [InlineData("", false)]
    public void IsActiveTcp_ReadsTheTransportAndTheTcptypeAttribute(string candidate, bool expected) =>
        Assert.Equal(expected, PeerNegotiator.IsActiveTcp(candidate));

    [Fact]
    public async Task LateCandidates_TrickleOneSignalPerWindow_InOrder()
    {
        var (time, h, offerer) = await OfferWithManualGatheringAsync();
        offerer.EmitCandidate();
        time.Advance(Window); // the offer leaves with its first candidate
        Assert.Equal(offerer.EmittedCandidates, Assert.Single(SentBy(h, 0)).Candidates);

        offerer.EmitCandidate();
        time.Advance(TimeSpan.FromMilliseconds(20));
        offerer.EmitCandidate();
        offerer.EmitCandidate();
        time.Advance(Window - TimeSpan.FromMilliseconds(21));
        Assert.Single(SentBy(h, 0)); // the window is the first late candidate's: not over yet

        time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Equal(2, SentBy(h, 0).Count);
        Assert.Equal(offerer.EmittedCandidates.Skip(1), SentBy(h, 0)[1].Candidates);

        offerer.EmitCandidate(); // the next window
        time.Advance(Window);
        Assert.Equal(3, SentBy(h, 0).Count);
        Assert.Equal(offerer.EmittedCandidates[4], Assert.Single(SentBy(h, 0)[2].Candidates!));
        await SettleAsync(h, time);
        h.AssertConverged();
    }

    [Fact]
    public async Task WindowZero_SendsTheDescriptionAtOnce_AndItsCandidatesApart_AsBefore()
    {
        var time = new FakeTimeProvider();
        var h = new MeshHarness(2, time, candidateGatherWindow: TimeSpan.Zero);
        h.Fabric.Gathering = GatheringMode.Manual;
        h.PlanAll();
        await h.DeliverAsync(0, false);
        var offerer = h.Members[0].Pc(h.Members[1]);

        var offer = Assert.Single(SentBy(h, 0));
        Assert.Equal(SdpType.Offer, offer.Description?.Type);
        Assert.Null(offer.Candidates);

        offerer.EmitCandidate();
        Assert.Equal(2, SentBy(h, 0).Count);
        Assert.Null(SentBy(h, 0)[1].Description);
        Assert.Equal(offerer.EmittedCandidates, SentBy(h, 0)[1].Candidates);

        offerer.EmitActiveTcpCandidate(); // no window, no wait: it leaves at once too
        Assert.Equal(3, SentBy(h, 0).Count);
        Assert.Equal([offerer.EmittedCandidates[^1]], SentBy(h, 0)[2].Candidates);
    }

    [Fact]
    public async Task WindowZero_WithCompletingGathering_CostsTwoSignalsPerSide_TheWindowOne()
    {
        foreach (var (window, perSide) in new[] { (TimeSpan.Zero, 2), (Window, 1) })
        {
            var time = new FakeTimeProvider();
            var h = new MeshHarness(2, time, candidateGatherWindow: window);
            h.Fabric.CandidatesPerGathering = 3;
            h.PlanAll();
            await SettleAsync(h, time);

            h.AssertConverged();
            h.AssertCurrentCandidatesDelivered();
            Assert.Equal(perSide, SentBy(h, 0).Count);
            Assert.Equal(perSide, SentBy(h, 1).Count);
        }
    }

    [Fact]
    public async Task GatheringThatNeverCompletes_DescriptionsStillLeaveAtTheWindowsEnd_AndThePairLinksUp()
    {
        var time = new FakeTimeProvider();
        var h = new MeshHarness(2, time, candidateGatherWindow: Window);
        h.Fabric.Gathering = GatheringMode.NeverCompletes;
        h.PlanAll();
        await h.DeliverAsync(0, false);
        Assert.Empty(SentBy(h, 0));

        time.Advance(Window);
        var offer = Assert.Single(SentBy(h, 0));
        Assert.Equal(SdpType.Offer, offer.Description?.Type);
        Assert.Single(offer.Candidates!);

        await SettleAsync(h, time);
        h.AssertConverged();
        h.AssertCurrentCandidatesDelivered();
        Assert.Single(SentBy(h, 1));
        Assert.Empty(h.Errors);
    }

    [Fact]
    public async Task RealClock_GatheringThatNeverCompletes_OfferLeavesWhenTheWindowEnds_NoHang_AndThePairLinksUp()
    {
        var (h, started) = await RealClockOfferAsync(GatheringMode.NeverCompletes, Window);
        var waited = await FirstSignalAsync(h, started);
        Assert.True(waited >= Window - TimeSpan.FromMilliseconds(5), $"the offer left after {waited.TotalMilliseconds:0} ms, before its {Window.TotalMilliseconds:0} ms window");
        Assert.Single(SentBy(h, 0)[0].Candidates!);

        while (h.Members.Any(m => m.Mesh.Links.Any(l => l.ConnectionState != PeerConnectionState.Connected)))
        {
            Assert.True(started.Elapsed < TimeSpan.FromSeconds(20), "the pair did not link up");
            await h.DrainAsync();
            await Task.Delay(5);
        }

        h.AssertConverged();
        h.AssertCurrentCandidatesDelivered();
        Assert.Empty(h.Errors);
    }

    [Fact]
    public async Task NoCandidateWithinTheWindow_TheOfferWaitsForItsFirst_ThenLeavesWithItAndTheOnesRightBehindIt()
    {
        // A busy device (eight members on two cores) gathers its host candidates after the window: an offer sent without
        // them cannot start a connectivity check, and its candidates would follow in a signal of their own.
        var (time, h, offerer) = await OfferWithManualGatheringAsync();
        time.Advance(Window);
        Assert.Empty(SentBy(h, 0));
        time.Advance(Window);
        Assert.Empty(SentBy(h, 0));

        offerer.EmitCandidate(); // the first: the ones gathered in the same pass follow within a fifth of the window
        time.Advance(Window / 5 - TimeSpan.FromMilliseconds(1));
        offerer.EmitCandidate();
        Assert.Empty(SentBy(h, 0));

        time.Advance(TimeSpan.FromMilliseconds(1));
        var offer = Assert.Single(SentBy(h, 0));
        Assert.Equal(SdpType.Offer, offer.Description?.Type);
        Assert.Equal(offerer.EmittedCandidates, offer.Candidates);

        await AnswererGathersAndTheyConvergeAsync(h, time, offerer);
    }

    [Fact]
    public async Task NoCandidateAtAll_TheOfferLeavesAtFourWindows_NotBefore_AndWhatIsGatheredLaterTrickles()
    {
        // A connection that gathers nothing for a long while (no usable interface yet, a firewall): the hold is bounded.
        var (time, h, offerer) = await OfferWithManualGatheringAsync();
        time.Advance(Window); // a fake clock's Advance fires a timer at its end: the wait is re-armed from here
        time.Advance(Window * 3 - TimeSpan.FromMilliseconds(1));
        Assert.Empty(SentBy(h, 0));

        time.Advance(TimeSpan.FromMilliseconds(1));
        var offer = Assert.Single(SentBy(h, 0));
        Assert.Equal(SdpType.Offer, offer.Description?.Type);
        Assert.Empty(offer.Candidates ?? []);

        offerer.EmitCandidate(); // later: it trickles, one window later, as before
        time.Advance(Window);
        var sent = SentBy(h, 0);
        Assert.Equal(2, sent.Count);
        Assert.Null(sent[1].Description);
        Assert.Equal(offerer.EmittedCandidates, sent[1].Candidates);

        await AnswererGathersAndTheyConvergeAsync(h, time, offerer);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task NoCandidate_GatheringCompletesWhileTheOfferWaits_ItLeavesAtOnce_WithTheEndOfCandidates(bool nullCandidateFirst)
    {
        // A relay-only policy with no TURN server gathers nothing and completes: nothing is worth waiting for.
        var (time, h, offerer) = await OfferWithManualGatheringAsync();
        offerer.Gathering = nullCandidateFirst ? GatheringMode.CompletesNullCandidateFirst : GatheringMode.Completes;
        time.Advance(Window + TimeSpan.FromMilliseconds(10));
        Assert.Empty(SentBy(h, 0));

        offerer.CompleteGathering();
        var offer = Assert.Single(SentBy(h, 0));
        Assert.Equal(SdpType.Offer, offer.Description?.Type);
        Assert.Equal(string.Empty, Assert.Single(offer.Candidates!).Candidate);

        time.Advance(Window * 4);
        Assert.Single(SentBy(h, 0));
    }

    [Fact]
    public async Task NoCandidateWithinTheWindow_TheAnswerWaitsForItsFirst_Too()
    {
        var (time, h, offerer) = await OfferWithManualGatheringAsync();
        offerer.EmitCandidate();
        offerer.CompleteGathering();
        await h.DeliverAsync(0, false); // the plan to m1
        await h.DeliverAsync(0, false); // the offer
        var answerer = h.Members[1].Pc(h.Members[0]);
        Assert.Equal(PeerSignalingState.Stable, answerer.SignalingState);

        time.Advance(Window * 2);
        Assert.Empty(SentBy(h, 1));
        answerer.EmitCandidate();
        time.Advance(Window / 5);
        var answer = Assert.Single(SentBy(h, 1));
        Assert.Equal(SdpType.Answer, answer.Description?.Type);
        Assert.Equal(answerer.EmittedCandidates, answer.Candidates);

        answerer.CompleteGathering();
        await SettleAsync(h, time);
        h.AssertConverged();
        Assert.Empty(h.Errors);
    }

    [Fact]
    public async Task RealClock_NoCandidateAtAll_TheOfferLeavesAtFourWindows_NeverEarlier_NoHang()
    {
        // The system clock: the window's timer is replaced by a longer one when nothing was gathered, and by a short one
        // at the first candidate; a fake clock never fires early, this one would show a replacement that did.
        var (h, started) = await RealClockOfferAsync(GatheringMode.Manual, Window);
        var waited = await FirstSignalAsync(h, started);
        Assert.True(waited >= Window * 4 - TimeSpan.FromMilliseconds(5), $"the offer left after {waited.TotalMilliseconds:0} ms, before four windows of {Window.TotalMilliseconds:0} ms");
        Assert.Empty(SentBy(h, 0)[0].Candidates ?? []);

        // With a first candidate: it leaves a fifth of a window after it, with it. A longer window here, so that a late
        // wake-up on a busy machine still emits the candidate long before the four windows are up.
        var window = TimeSpan.FromMilliseconds(200);
        var (h2, _) = await RealClockOfferAsync(GatheringMode.Manual, window);
        var offerer = h2.Members[0].Pc(h2.Members[1]);
        await Task.Delay(window * 1.5);
        Assert.Empty(SentBy(h2, 0));
        var first = Stopwatch.StartNew();
        offerer.EmitCandidate();
        var after = await FirstSignalAsync(h2, first);
        Assert.True(after >= window / 5 - TimeSpan.FromMilliseconds(5), $"the offer left {after.TotalMilliseconds:0} ms after its first candidate, before a fifth of the window");
        Assert.Equal(offerer.EmittedCandidates, SentBy(h2, 0)[0].Candidates);
    }

    [Fact]
    public async Task RemoteOfferRollsBackTheHeldOffer_OnlyTheNewestDescription_TheAnswer_IsSent_WithTheCandidates()
    {
        var time = new FakeTimeProvider();
        var h = new MeshHarness(2, time, candidateGatherWindow: Window);
        h.PlanAll((_, _) => true); // m0 is polite
        await SettleAsync(h, time);
        h.AssertConverged();
        var (m0, m1) = (h.Members[0], h.Members[1]);
        var polite = m0.Pc(m1);
        var impolite = m1.Pc(m0);
        polite.Gathering = GatheringMode.Manual;
        impolite.Gathering = GatheringMode.Manual;
        var sentBefore = SentBy(h, 0).Count;
        var rollbacksBefore = polite.ImplicitRollbacks;

        polite.AddTrack(); // glare: both add media and offer; both offers are held
        impolite.AddTrack();
        Assert.Equal(PeerSignalingState.HaveLocalOffer, polite.SignalingState);
        Assert.Equal(PeerSignalingState.HaveLocalOffer, impolite.SignalingState);
        var heldOffer = polite.LocalDescription!;
        polite.EmitCandidate(); // gathered while the polite side's own offer is held
        impolite.CompleteGathering(); // the impolite side's offer leaves

        var impoliteOffer = h.Pool.ToList().FindIndex(e => e.To == 0 && e.Message is SignalRelayMessage { Description.Type: SdpType.Offer });
        await h.DeliverAsync(h.Deliverable().IndexOf(impoliteOffer), false);
        Assert.Equal(rollbacksBefore + 1, polite.ImplicitRollbacks);

        // The held offer was rolled back and never left. The answer is the newest description; it leaves with the candidate
        // gathered meanwhile, here at once rather than at the window's end: once stable the polite side needs to offer its
        // own media, and a held answer always leaves before a new offer replaces it.
        var answer = Assert.Single(SentBy(h, 0).Skip(sentBefore));
        Assert.Equal(SdpType.Answer, answer.Description?.Type);
        Assert.Equal(polite.EmittedCandidates[^1], Assert.Single(answer.Candidates!));
        Assert.Equal(PeerSignalingState.HaveLocalOffer, polite.SignalingState); // its next offer, held

        await SettleAsync(h, time); // the polite side's own media follows in a new offer of its own
        h.AssertConverged();
        h.AssertCurrentCandidatesDelivered();
        Assert.DoesNotContain(h.Sent, s => s.From == 0 && s.Signal.Description?.Sdp == heldOffer.Sdp); // the stale offer never left
        Assert.Empty(h.Errors);
    }

    [Fact]
    public async Task ImpoliteSideIgnoresACollidingOffer_WhileItsOwnIsHeld_SendsItsOfferOnce_AtTheWindowsEnd()
    {
        var time = new FakeTimeProvider();
        var h = new MeshHarness(2, time, candidateGatherWindow: Window);
        h.PlanAll((_, _) => true); // m0 is polite, m1 impolite
        await SettleAsync(h, time);
        var (m0, m1) = (h.Members[0], h.Members[1]);
        var polite = m0.Pc(m1);
        var impolite = m1.Pc(m0);
        polite.Gathering = GatheringMode.Manual;
        impolite.Gathering = GatheringMode.Manual;
        var sentBefore = SentBy(h, 1).Count;

        polite.AddTrack();
        impolite.AddTrack();
        impolite.EmitCandidate();
        polite.CompleteGathering(); // the polite side's offer leaves and reaches the impolite side, whose offer is held
        var politeOffer = h.Pool.ToList().FindIndex(e => e.To == 1 && e.Message is SignalRelayMessage { Description.Type: SdpType.Offer });
        await h.DeliverAsync(h.Deliverable().IndexOf(politeOffer), false);
        Assert.Equal(["sld:offer"], impolite.History.TakeLast(1));
        Assert.Equal(sentBefore, SentBy(h, 1).Count); // ignored; the pending offer is not sent again while it is held

        time.Advance(Window);
        var offer = Assert.Single(SentBy(h, 1).Skip(sentBefore));
        Assert.Equal(SdpType.Offer, offer.Description?.Type);
        Assert.Equal(impolite.EmittedCandidates[^1], Assert.Single(offer.Candidates!));

        await SettleAsync(h, time);
        h.AssertConverged();
        h.AssertCurrentCandidatesDelivered();
        Assert.Equal(1, h.Sent.Count(x => x.From == 1 && x.Signal.Description?.Sdp == offer.Description!.Sdp));
        Assert.Empty(h.Errors);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task LinkClosedDuringTheWindow_PeerLeftOrMeshDisposed_TheHeldOfferIsNeverSent(bool peerLeft)
    {
        var time = new FakeTimeProvider();
        var h = new MeshHarness(2, time, candidateGatherWindow: Window);
        h.Fabric.Gathering = GatheringMode.Manual;
        h.PlanAll();
        await h.DeliverAsync(0, false);
        var (m0, m1) = (h.Members[0], h.Members[1]);
        var offerer = m0.Pc(m1);
        offerer.EmitCandidate();

        if (peerLeft)
        {
            await m0.Mesh.HandleAsync(new PeerLeftMessage { Member = m1.Id, Epoch = m1.Epoch });
        }
        else
        {
            m0.Mesh.Dispose();
        }

        time.Advance(Window * 4);
        Assert.Equal(PeerSignalingState.Closed, offerer.SignalingState);
        Assert.Empty(SentBy(h, 0));
    }

    [Fact]
    public void LargeDescription_CandidatesThatDoNotFitTheFrame_Follow_InOrder_UnderBothServerLimits()
    {
        var sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=ice-ufrag:u1\r\n" + string.Concat(Enumerable.Repeat("a=x-filler:0123456789012345678901234567890123456789012345678901234567890123456789\r\n", 370));
        var description = new SessionDescription { Type = SdpType.Offer, Sdp = sdp };
        var candidates = Enumerable.Range(0, 70)
            .Select(i => new IceCandidate { Candidate = $"candidate:{i} 1 udp 2122260223 10.0.{i / 250}.{i % 250} {50000 + i} typ host generation 0 ufrag u1 network-id 1", SdpMid = "0", SdpMLineIndex = 0, UsernameFragment = "u1" })
            .ToList();

        var signals = PeerNegotiator.Batch(MemberId.New(), 3, description, candidates);

        Assert.Same(description, signals[0].Description);
        Assert.All(signals.Skip(1), s => Assert.Null(s.Description));
        Assert.Equal(candidates, signals.SelectMany(s => s.Candidates ?? []));
        foreach (var signal in signals)
        {
            // With the correlation id the connection adds: under the gateways' 32 KB frame; at most 64 candidates (the server's limit).
            var bytes = JsonSerializer.SerializeToUtf8Bytes<ClientMessage>(signal with { Id = "c9999999999" }, TalkiJsonContext.Default.ClientMessage).Length;
            Assert.True(bytes <= 32 * 1024, $"a signal of {bytes} bytes");
            Assert.True((signal.Candidates?.Count ?? 0) <= 64);
        }

        Assert.True(signals[0].Candidates is null || signals[0].Candidates!.Count < PeerNegotiator.MaxCandidatesPerSignal, "the large description leaves room for fewer candidates");
    }

    [Fact]
    public void SmallDescription_AndItsCandidates_AreOneSignal()
    {
        var description = new SessionDescription { Type = SdpType.Answer, Sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=ice-ufrag:u1\r\n" };
        var candidates = Enumerable.Range(0, 5).Select(i => new IceCandidate { Candidate = $"candidate:{i} 1 udp 1 10.0.0.1 {i} typ host" }).ToList();

        var signal = Assert.Single(PeerNegotiator.Batch(MemberId.New(), 3, description, candidates));

        Assert.Same(description, signal.Description);
        Assert.Equal(candidates, signal.Candidates);
        Assert.Empty(PeerNegotiator.Batch(MemberId.New(), 3, null, []));
    }

    /// <summary>
    /// The offer left and deferred candidates wait on a link not up (its answer has not come), since
    /// <paramref name="waited"/> ago: they leave at the end of the delay, not a millisecond before, in one signal of their
    /// own (<paramref name="expected"/>); then the answerer gathers and the pair converges.
    /// </summary>
    private static async Task TheyLeaveAtTheDelayNotBeforeAsync(MeshHarness h, FakeTimeProvider time, SimulatedPeerConnection offerer, TimeSpan waited, string[] expected)
    {
        time.Advance(PeerNegotiator.DeferredCandidatesDelay - waited - TimeSpan.FromMilliseconds(1));
        Assert.Single(SentBy(h, 0));
        time.Advance(TimeSpan.FromMilliseconds(1));
        var sent = SentBy(h, 0);
        Assert.Equal(2, sent.Count);
        Assert.Null(sent[1].Description);
        Assert.Equal(expected, sent[1].Candidates!.Select(c => c.Candidate));

        await AnswererGathersAndTheyConvergeAsync(h, time, offerer, offererCompletes: false);
    }

    /// <summary>The offerer restarts ICE (a new offer, a new gathering) and gathers one candidate: the restart offer leaves with it alone.</summary>
    private static async Task RestartIceWithACandidateAsync(MeshHarness h, FakeTimeProvider time, SimulatedPeerConnection offerer)
    {
        offerer.RestartIce();
        await h.DrainAsync();
        offerer.EmitCandidate();
        time.Advance(Window);
        var restart = SentBy(h, 0)[^1];
        Assert.Equal(SdpType.Offer, restart.Description?.Type);
        Assert.Equal([offerer.EmittedCandidates[^1]], restart.Candidates);
    }

    /// <summary>
    /// The answerer, which has the offer, answers with a UDP candidate of its own and completes; the pair links up within
    /// <see cref="PeerNegotiator.DeferredCandidatesDelay"/>, the delay passes, and each side sent its description only.
    /// </summary>
    private static async Task LinkUpThenPassTheDelayAsync(MeshHarness h, FakeTimeProvider time, SimulatedPeerConnection offerer)
    {
        await h.DrainAsync();
        var answerer = h.Members[1].Pc(h.Members[0]);
        answerer.EmitCandidate();
        time.Advance(Window);
        await h.DrainAsync();
        answerer.CompleteGathering();
        await SettleAsync(h, time);
        h.AssertConverged();
        Assert.Equal(PeerConnectionState.Connected, offerer.ConnectionState);

        time.Advance(PeerNegotiator.DeferredCandidatesDelay);
        await SettleAsync(h, time);
        Assert.Single(SentBy(h, 0)); // the offer only
        Assert.Single(SentBy(h, 1)); // the answer only
        h.AssertConverged();
        Assert.Empty(h.Errors);
    }

    /// <summary>
    /// The offer leaves with no candidate at all (four windows), then <paramref name="gatherAfterIt"/> runs on the offerer
    /// (what it gathers waits for the link), and the answer leaves bare too: the pair is stable but cannot connect.
    /// </summary>
    private static async Task<(FakeTimeProvider Time, MeshHarness H, SimulatedPeerConnection Offerer)> StableButNotConnectedAsync(Action<SimulatedPeerConnection> gatherAfterIt)
    {
        var (time, h, offerer) = await OfferWithManualGatheringAsync();
        time.Advance(Window); // a fake clock's Advance fires a timer at its end: the wait is re-armed from here
        time.Advance(Window * (PeerNegotiator.MaxHoldWindows - 1));
        Assert.Empty(Assert.Single(SentBy(h, 0)).Candidates ?? []);
        gatherAfterIt(offerer);
        await h.DrainAsync();
        time.Advance(Window);
        time.Advance(Window * (PeerNegotiator.MaxHoldWindows - 1)); // the answer leaves bare
        await h.DrainAsync();
        Assert.Single(SentBy(h, 1));
        Assert.Equal(PeerSignalingState.Stable, offerer.SignalingState);
        Assert.NotEqual(PeerConnectionState.Connected, offerer.ConnectionState);
        return (time, h, offerer);
    }

    /// <summary>The offerer completes (unless told it did), the answerer (gathering by hand too) gathers one candidate once it answered, and the pair converges.</summary>
    private static async Task AnswererGathersAndTheyConvergeAsync(MeshHarness h, FakeTimeProvider time, SimulatedPeerConnection offerer, bool offererCompletes = true)
    {
        if (offererCompletes)
        {
            offerer.CompleteGathering();
        }

        await SettleAsync(h, time);
        var answerer = h.Members[1].Pc(h.Members[0]);
        Assert.Equal(PeerSignalingState.Stable, answerer.SignalingState);
        answerer.EmitCandidate();
        answerer.CompleteGathering();
        await SettleAsync(h, time);
        h.AssertConverged();
        h.AssertCurrentCandidatesDelivered();
        Assert.Empty(h.Errors);
    }

    /// <summary>Two members on the system clock with the given gathering; the plan reached m0, which offers and holds its offer.</summary>
    private static async Task<(MeshHarness H, Stopwatch Started)> RealClockOfferAsync(GatheringMode gathering, TimeSpan window)
    {
        var h = new MeshHarness(2, TimeProvider.System, candidateGatherWindow: window);
        h.Fabric.Gathering = gathering;
        h.PlanAll();
        var started = Stopwatch.StartNew();
        await h.DeliverAsync(0, false);
        return (h, started);
    }

    /// <summary>On the system clock: the offer left with its one candidate, then gathering completed; the time since then.</summary>
    private static async Task<(MeshHarness H, SimulatedPeerConnection Offerer, Stopwatch SinceComplete)> RealClockOfferLeftThenGatheringCompletedAsync()
    {
        var (h, started) = await RealClockOfferAsync(GatheringMode.Manual, Window);
        var offerer = h.Members[0].Pc(h.Members[1]);
        offerer.EmitCandidate();
        await FirstSignalAsync(h, started);
        var waiting = Stopwatch.StartNew();
        offerer.CompleteGathering();
        return (h, offerer, waiting);
    }

    /// <summary>Waits (10 s at most) until m0 sent its first signal; the time on <paramref name="since"/> then.</summary>
    private static async Task<TimeSpan> FirstSignalAsync(MeshHarness h, Stopwatch since)
    {
        while (SentBy(h, 0).Count == 0)
        {
            Assert.True(since.Elapsed < TimeSpan.FromSeconds(10), "the held offer never left");
            await Task.Delay(2);
        }

        return since.Elapsed;
    }

    private static List<SignalMessage> SentBy(MeshHarness h, int from)
    {
        lock (h.Sent)
        {
            return [.. h.Sent.Where(s => s.From == from).Select(s => s.Signal)];
        }
    }

    /// <summary>
    /// Delivers everything, moving the clock past every gather window, until nothing is in flight or held: a description
    /// still without a candidate is held up to <see cref="PeerNegotiator.MaxHoldWindows"/> windows, so the mesh is settled
    /// once that many windows passed with nothing in flight.
    /// </summary>
    private static async Task SettleAsync(MeshHarness h, FakeTimeProvider time)
    {
        var quiet = 0;
        for (var round = 0; round < 100; round++)
        {
            await h.DrainAsync();
            time.Advance(h.CandidateGatherWindow);
            quiet = h.InFlight == 0 ? quiet + 1 : 0;
            if (quiet >= PeerNegotiator.MaxHoldWindows)
            {
                return;
            }
        }

        Assert.Fail("the mesh did not settle");
    }
}
