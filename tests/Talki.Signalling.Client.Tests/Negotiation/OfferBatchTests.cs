using Microsoft.Extensions.Time.Testing;
using Talki.Signalling.Client.Negotiation;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Client.Tests.Negotiation;

/// <summary>
/// <see cref="OfferBatch"/> on a fake clock: the first offers of links planned together leave in one <c>signals</c> message,
/// never later than the window after the first one, never out of order with what follows them on the same link. The
/// window once more on the system clock, whose timers a fake clock cannot stand for.
/// </summary>
public sealed class OfferBatchTests
{
    private static readonly TimeSpan Window = TimeSpan.FromMilliseconds(50);
    private static readonly MemberId A = MemberId.New();
    private static readonly MemberId B = MemberId.New();
    private static readonly MemberId C = MemberId.New();

    private readonly FakeTimeProvider _time = new();
    private readonly List<ClientMessage> _sent = [];
    private bool _open = true;

    private OfferBatch Batch(TimeSpan? window = null) => new(
        m =>
        {
            lock (_sent)
            {
                _sent.Add(m);
            }

            return ValueTask.FromResult(_open);
        },
        _time,
        window ?? Window);

    private static SignalMessage Offer(MemberId to, int sdpBytes = 10) =>
        new() { To = to, ToEpoch = 1, Description = new SessionDescription { Type = SdpType.Offer, Sdp = new string('x', sdpBytes) } };

    private static SignalMessage Candidates(MemberId to) =>
        new() { To = to, Candidates = [new IceCandidate { Candidate = "candidate:1 1 udp 1 192.0.2.1 5000 typ host", SdpMid = "0", SdpMLineIndex = 0 }] };

    [Fact]
    public async Task ThreeOffersExpectedTogether_LeaveAsOneSignalsMessage_InTheOrderTheyWereReady()
    {
        using var batch = Batch();
        batch.Expect([A, B, C]);

        var toB = batch.SendAsync(Offer(B)).AsTask();
        var toA = batch.SendAsync(Offer(A)).AsTask();
        Assert.Empty(_sent);
        Assert.False(toB.IsCompleted);
        var toC = batch.SendAsync(Offer(C)).AsTask();

        Assert.True(await toA && await toB && await toC);
        var signals = Assert.IsType<SignalsMessage>(Assert.Single(_sent));
        Assert.Equal([B, A, C], signals.Signals.Select(s => s.To));
    }

    [Fact]
    public async Task AnOfferThatIsLate_DoesNotHoldTheOthersPastTheWindow_AndThenGoesAlone()
    {
        using var batch = Batch();
        batch.Expect([A, B]);
        var toA = batch.SendAsync(Offer(A)).AsTask();

        _time.Advance(Window - TimeSpan.FromMilliseconds(1));
        Assert.Empty(_sent);
        _time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.True(await toA);
        Assert.Equal(A, Assert.IsType<SignalMessage>(Assert.Single(_sent)).To); // alone: a plain signal

        Assert.True(await batch.SendAsync(Offer(B)));
        Assert.Equal(2, _sent.Count); // not held: the window is over
        Assert.IsType<SignalMessage>(_sent[1]);
    }

    [Fact]
    public async Task CandidatesForAHeldLink_RideInItsHeldOffer_AndTheBatchStillWaitsForTheOthers()
    {
        using var batch = Batch();
        batch.Expect([A, B]);
        var toA = batch.SendAsync(Offer(A)).AsTask();
        var candidates = batch.SendAsync(Candidates(A)).AsTask();
        Assert.Empty(_sent);
        Assert.False(candidates.IsCompleted);

        var toB = batch.SendAsync(Offer(B)).AsTask();

        Assert.True(await toA && await toB && await candidates);
        var signals = Assert.IsType<SignalsMessage>(Assert.Single(_sent));
        Assert.Equal([A, B], signals.Signals.Select(s => s.To));
        Assert.Equal(SdpType.Offer, signals.Signals[0].Description!.Type); // the description first, then its candidates
        Assert.Single(signals.Signals[0].Candidates!);
    }

    [Fact]
    public async Task CandidatesThatWouldOverflowAHeldOffersSignal_SendTheBatchFirst()
    {
        using var batch = Batch();
        batch.Expect([A, B]);
        var toA = batch.SendAsync(Offer(A)).AsTask();
        var many = new SignalMessage
        {
            To = A,
            Candidates = [.. Enumerable.Range(0, PeerNegotiator.MaxCandidatesPerSignal).Select(i => new IceCandidate { Candidate = $"candidate:{i} 1 udp 1 192.0.2.1 5000 typ host" })],
        };

        var one = batch.SendAsync(Candidates(A)).AsTask(); // rides in the held offer
        Assert.True(await batch.SendAsync(many)); // one candidate is held already: 33 would be one too many

        Assert.True(await toA && await one);
        Assert.Equal(2, _sent.Count);
        Assert.Single(Assert.IsType<SignalMessage>(_sent[0]).Candidates!); // the offer with its one candidate went alone, first
        Assert.Equal(PeerNegotiator.MaxCandidatesPerSignal, Assert.IsType<SignalMessage>(_sent[1]).Candidates!.Count);
    }

    [Fact]
    public async Task ANewDescriptionForAHeldLink_SendsTheBatchFirst_SoTheLinksOrderIsKept()
    {
        using var batch = Batch();
        batch.Expect([A, B, C]);
        var toA = batch.SendAsync(Offer(A)).AsTask();
        var toB = batch.SendAsync(Offer(B)).AsTask();

        Assert.True(await batch.SendAsync(Offer(A, sdpBytes: 20))); // a newer offer to A (a restart): after the first

        Assert.True(await toA && await toB);
        Assert.Equal(2, _sent.Count);
        Assert.Equal([A, B], Assert.IsType<SignalsMessage>(_sent[0]).Signals.Select(s => s.To));
        Assert.Equal(20, Assert.IsType<SignalMessage>(_sent[1]).Description!.Sdp!.Length);

        // C's offer is no longer awaited with anything: it goes at once.
        Assert.True(await batch.SendAsync(Offer(C)));
        Assert.Equal(3, _sent.Count);
    }

    [Fact]
    public async Task SignalsToOtherPeers_AndAnswers_AreNeverHeld()
    {
        using var batch = Batch();
        batch.Expect([A, B]);
        var toA = batch.SendAsync(Offer(A)).AsTask();
        var other = MemberId.New();

        Assert.True(await batch.SendAsync(Offer(other)));
        Assert.True(await batch.SendAsync(new SignalMessage { To = other, Description = new SessionDescription { Type = SdpType.Answer, Sdp = "v=0" } }));
        Assert.Equal(2, _sent.Count);
        Assert.False(toA.IsCompleted);

        Assert.True(await batch.SendAsync(Offer(B)));
        Assert.True(await toA);
        Assert.Equal([A, B], Assert.IsType<SignalsMessage>(_sent[2]).Signals.Select(s => s.To));
    }

    [Fact]
    public async Task OneExpectedPeer_OrNoWindow_NothingIsHeld()
    {
        using (var single = Batch())
        {
            single.Expect([A]);
            Assert.True(await single.SendAsync(Offer(A)));
            Assert.Single(_sent);
        }

        using var off = Batch(TimeSpan.Zero);
        off.Expect([A, B]);
        Assert.True(await off.SendAsync(Offer(A)));
        Assert.True(await off.SendAsync(Offer(B)));
        Assert.Equal(3, _sent.Count);
        Assert.All(_sent, m => Assert.IsType<SignalMessage>(m));
    }

    [Fact]
    public async Task OffersTooLargeForOneFrame_LeaveInSeveralSignalsFrames_EachWithinTheFrameLimit()
    {
        using var batch = Batch();
        var peers = Enumerable.Range(0, 5).Select(_ => MemberId.New()).ToArray();
        batch.Expect(peers);
        var sends = peers.Select(p => batch.SendAsync(Offer(p, sdpBytes: 12_000)).AsTask()).ToArray();

        Assert.All(await Task.WhenAll(sends), Assert.True);
        Assert.Equal(3, _sent.Count); // 2 + 2 + 1 of 12 KB under the 32 KB frame
        Assert.Equal(peers, _sent.SelectMany(m => m is SignalsMessage s ? s.Signals.Select(x => x.To) : [((SignalMessage)m).To]));
        foreach (var frame in _sent)
        {
            var bytes = System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(frame with { Id = "c" + long.MaxValue }, TalkiJsonContext.Default.ClientMessage);
            Assert.True(bytes.Length <= 32 * 1024, $"{bytes.Length} bytes");
        }
    }

    [Fact]
    public void ManySmallOffers_AreSplitAtTheServersSixtyFourEntries()
    {
        var offers = Enumerable.Range(0, 70).Select(_ => Offer(MemberId.New(), sdpBytes: 1)).ToList();

        var frames = OfferBatch.Frames(offers);

        Assert.Equal([64, 6], frames.Select(f => f.Count));
        Assert.Equal(offers, frames.SelectMany(f => f));
    }

    [Fact]
    public async Task AClosedConnection_FailsEveryHeldSend()
    {
        using var batch = Batch();
        _open = false;
        batch.Expect([A, B]);
        var toA = batch.SendAsync(Offer(A)).AsTask();
        var toB = batch.SendAsync(Offer(B)).AsTask();

        Assert.False(await toA);
        Assert.False(await toB);
    }

    [Fact]
    public async Task DisposedWithHeldOffers_DropsThem_AndTheirSendsComplete()
    {
        var batch = Batch();
        batch.Expect([A, B]);
        var toA = batch.SendAsync(Offer(A)).AsTask();

        batch.Dispose();

        Assert.True(await toA);
        _time.Advance(Window * 2);
        Assert.Empty(_sent); // the mesh that planned them is gone: a closed link's offer is never sent
        batch.Expect([A, B]);
        Assert.True(await batch.SendAsync(Offer(A)));
        Assert.Single(_sent); // nothing is held after disposal
    }

    [Fact]
    public async Task OnTheRealClock_HeldOffersLeaveTogether_WhenTheWindowEnds_NeverEarly()
    {
        // The window on the system clock's timers, which the tests above stand in for with a fake clock that fires only
        // when advanced. Three peers expected, two offers held (the second 50 ms after the first; the window is long enough
        // for a busy machine's late delay): both leave in one message no sooner than the window after the first, less the
        // timer clock's coarseness (the runtime's timers run on a coarse millisecond count), and well within seconds.
        var window = TimeSpan.FromMilliseconds(400);
        var clock = TimeProvider.System;
        var sent = new List<(ClientMessage Message, TimeSpan At)>();
        var started = clock.GetTimestamp();
        using var batch = new OfferBatch(
            m =>
            {
                lock (sent)
                {
                    sent.Add((m, clock.GetElapsedTime(started)));
                }

                return ValueTask.FromResult(true);
            },
            clock,
            window);
        batch.Expect([A, B, C]);

        var toA = batch.SendAsync(Offer(A)).AsTask();
        await Task.Delay(TimeSpan.FromMilliseconds(50));
        var toB = batch.SendAsync(Offer(B)).AsTask();
        var heldB = clock.GetElapsedTime(started);

        Assert.True(await toA.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.True(await toB.WaitAsync(TimeSpan.FromSeconds(10)));
        var (message, at) = Assert.Single(sent);
        Assert.Equal([A, B], Assert.IsType<SignalsMessage>(message).Signals.Select(s => s.To));
        var earliest = window - TimeSpan.FromMilliseconds(15);
        Assert.True(at >= earliest, $"the batch left {at.TotalMilliseconds:F0} ms after the first offer was held ({heldB.TotalMilliseconds:F0} ms: the second): earlier than {earliest.TotalMilliseconds:F0} ms");
        Assert.True(heldB < at, $"the batch left at {at.TotalMilliseconds:F0} ms, before the second offer was held at {heldB.TotalMilliseconds:F0} ms");
        Assert.True(at < TimeSpan.FromSeconds(5), $"the batch left {at.TotalMilliseconds:F0} ms after the first offer was held");

        Assert.True(await batch.SendAsync(Offer(C))); // later than the window: it goes alone, at once
        Assert.Equal(C, Assert.IsType<SignalMessage>(sent[^1].Message).To);
    }

    [Fact]
    public async Task ANewPlan_ReleasesWhatTheEarlierOneHeld()
    {
        using var batch = Batch();
        batch.Expect([A, B]);
        var toA = batch.SendAsync(Offer(A)).AsTask();

        batch.Expect([B, C]);

        Assert.True(await toA);
        Assert.Equal(A, Assert.IsType<SignalMessage>(Assert.Single(_sent)).To);
    }
}
