using System.Text.Json;
using CsCheck;
using Talki.Signalling.Client.Negotiation;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Client.Tests.Negotiation;

/// <summary>
/// Signals are sized by bounds on their strings instead of being serialized to be measured (<see cref="SignalSize"/>). The
/// upper bound must never be below the real size and the lower never above it, whatever the text (escapes, HTML-sensitive
/// characters, non-ASCII, lone surrogates: an SDP is whatever the browser wrote), and the frames and batches cut with them
/// must be the ones the exact sizes make.
/// </summary>
public sealed class SignalSizeProperties
{
    // Text as SDP looks, and as it must not break the bound: every escape class of the default encoder.
    private static readonly Gen<string> Text = Gen.OneOf(
        Gen.String[Gen.Char["abcxyz019 =:/.-_"], 0, 400],
        Gen.String[Gen.Char["\r\n\t\"\\<>&'+`\u0001\u007f"], 0, 80],
        Gen.String[Gen.Char["\r\n"], 0, 1000],
        Gen.String[Gen.Char["\r\n\t"], 0, 1000],
        Gen.String[Gen.Char, 0, 200],
        Gen.Select(Gen.String[Gen.Char["a=candidate 1 udp"], 0, 300], Gen.String[Gen.Char["é€\ud83d\ude00\ud800"], 0, 40], (a, b) => a + b));

    private static readonly Gen<IceCandidate> Candidate =
        Gen.Select(Text, Text.Null(), Gen.Int.Nullable(), Text.Null(), (c, mid, index, ufrag) => new IceCandidate { Candidate = c, SdpMid = mid, SdpMLineIndex = index, UsernameFragment = ufrag });

    private static readonly Gen<SignalMessage> Signal =
        Gen.Select(Text.Null(), Gen.Long.Nullable(), Gen.Enum<SdpType>(), Text.Null(), Candidate.Array[0, 6].Null(), Gen.Bool)
            .Select(t => new SignalMessage
            {
                Id = t.Item1,
                To = MemberId.New(),
                ToEpoch = t.Item2,
                Description = t.Item6 ? new SessionDescription { Type = t.Item3, Sdp = t.Item4 } : null,
                Candidates = t.Item5,
            });

    [Fact]
    public void TheBound_IsNeverBelowTheSerializedSize_AsAMessageOrAsAnEntry() =>
        Signal.Sample(signal =>
        {
            var bound = SignalSize.AtMost(signal);
            return bound >= SignalSize.Exact(signal) && bound >= SignalSize.ExactEntry(signal);
        }, iter: 3000);

    [Fact]
    public void TheLowerBound_IsNeverAboveTheSerializedSize_AsAnEntryOrAMessage() =>
        Signal.Sample(signal =>
        {
            var bound = SignalSize.AtLeast(signal);
            return bound <= SignalSize.ExactEntry(signal) && bound <= SignalSize.Exact(signal);
        }, iter: 3000);

    [Fact]
    public void Fits_AgreesWithTheSerializedSize_AtEveryLimit() =>
        Gen.Select(Signal, Gen.Int[0, 4000]).Sample((signal, limit) =>
            SignalSize.Fits(signal, limit) == (SignalSize.Exact(signal) <= limit), iter: 3000);

    [Fact]
    public void Frames_AreTheOnesTheExactSizesMake_AndEachFitsTheGatewaysFrame() =>
        Gen.Select(Gen.Int[1, 12_000], Gen.Int[0, 3], Text).Array[1, 20].Sample(shapes =>
        {
            // Offers of various sizes, some with escapes, some with candidates.
            var signals = shapes.Select(s => new SignalMessage
            {
                To = MemberId.New(),
                ToEpoch = 1,
                Description = new SessionDescription { Type = SdpType.Offer, Sdp = new string('v', s.Item1) + s.Item3 },
                Candidates = s.Item2 == 0 ? null : [.. Enumerable.Range(0, s.Item2).Select(i => new IceCandidate { Candidate = $"candidate:{i} 1 udp 2122260223 192.0.2.{i} 5000 typ host", SdpMid = "0", SdpMLineIndex = 0 })],
            }).ToList();

            var frames = OfferBatch.Frames(signals);

            Assert.Equal(ExactFrames(signals).Select(f => f.Count), frames.Select(f => f.Count));
            Assert.Equal(signals, frames.SelectMany(f => f));
            foreach (var frame in frames)
            {
                ClientMessage message = frame is [var only] ? only : new SignalsMessage { Signals = frame };
                var bytes = JsonSerializer.SerializeToUtf8Bytes(message with { Id = "c" + long.MaxValue }, TalkiJsonContext.Default.ClientMessage);
                Assert.True(bytes.Length <= 32 * 1024, $"{bytes.Length} bytes");
            }
        }, iter: 300);

    [Fact]
    public void ADescriptionWithItsCandidates_IsCutWhereTheExactSizesCutIt() =>
        Gen.Select(Gen.Int[0, 33_000], Gen.Int[0, 40], Gen.Int[20, 2_000]).Sample((sdpBytes, count, candidateBytes) =>
        {
            var description = new SessionDescription { Type = SdpType.Offer, Sdp = new string('s', sdpBytes) + "\r\n" };
            var candidates = Enumerable.Range(0, count).Select(i => new IceCandidate { Candidate = $"candidate:{i} " + new string('c', candidateBytes), SdpMid = "0" }).ToArray();

            var signals = PeerNegotiator.Batch(MemberId.New(), 3, description, candidates);

            Assert.Same(description, signals[0].Description);
            Assert.Equal(candidates, signals.SelectMany(s => s.Candidates ?? []));
            // Within a frame, or too large alone: a description without candidates, or one candidate without a description.
            Assert.All(signals, s => Assert.True(
                SignalSize.Exact(s) <= PeerNegotiator.MaxSignalBytes
                || (s.Description is not null && s.Candidates is null)
                || (s.Description is null && s.Candidates is { Count: 1 })));
            // Each signal took as many candidates as fit: one more would not have.
            var next = 0;
            for (var i = 0; i < signals.Count; i++)
            {
                next += signals[i].Candidates?.Count ?? 0;
                if (i + 1 < signals.Count && next < candidates.Length && (signals[i].Candidates?.Count ?? 0) < PeerNegotiator.MaxCandidatesPerSignal)
                {
                    var more = signals[i] with { Candidates = [.. signals[i].Candidates ?? [], candidates[next]] };
                    Assert.True(SignalSize.Exact(more) > PeerNegotiator.MaxSignalBytes);
                }
            }
        }, iter: 200);

    /// <summary>The frames as the batch cut them before the bound: every entry serialized to be measured.</summary>
    private static List<List<SignalMessage>> ExactFrames(IReadOnlyList<SignalMessage> signals)
    {
        const int Envelope = 64;
        var frames = new List<List<SignalMessage>>();
        List<SignalMessage>? current = null;
        var size = 0;
        foreach (var signal in signals)
        {
            var length = SignalSize.ExactEntry(signal) + 1;
            if (current is null || size + length > OfferBatch.MaxFrameBytes || current.Count == OfferBatch.MaxEntriesPerFrame)
            {
                current = [];
                frames.Add(current);
                size = Envelope;
            }

            current.Add(signal);
            size += length;
        }

        return frames;
    }
}
