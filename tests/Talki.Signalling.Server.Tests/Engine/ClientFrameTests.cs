using System.Text;
using System.Text.Json;
using Talki.Signalling.Server.Engine;

namespace Talki.Signalling.Server.Tests.Engine;

public sealed class ClientFrameTests
{
    private static readonly string Sdp = string.Concat(Enumerable.Range(0, 30).Select(i => $"a=candidate:{i} 1 udp 2122260223 192.168.1.{i} 5{i:D4} typ host generation 0\\r\\n"));

    private static readonly MemberId To = MemberId.New();

    private static string Offer(string sdp) => $$$"""{"type":"signal","id":"c1","to":"{{{To}}}","toEpoch":3,"description":{"type":"offer","sdp":"{{{sdp}}}"},"candidates":[{"candidate":"{{{sdp}}}","sdpMid":"0"}]}""";

    [Fact]
    public void LongEscapedSdp_IsBlankedInTheCopy_AndTheRangesPointAtTheOriginal()
    {
        var json = Encoding.UTF8.GetBytes(Offer(Sdp));
        var copy = JsonEscapes.BlankLongEscapedStrings(json);
        Assert.NotNull(copy);
        Assert.Equal(-1, copy.AsSpan(0, json.Length).IndexOf("\\r\\n"u8));
        System.Buffers.ArrayPool<byte>.Shared.Return(copy);

        var frame = ClientFrame.Parse(json);
        Assert.Equal(ClientFrameKind.Signal, frame.Kind);
        Assert.Equal(To, frame.To);
        Assert.Equal(3, frame.ToEpoch);
        Assert.Equal("c1", frame.CorrelationId);
        using var description = JsonDocument.Parse(json.AsMemory()[frame.Description]);
        Assert.Equal(Sdp.Replace("\\r\\n", "\r\n", StringComparison.Ordinal), description.RootElement.GetProperty("sdp").GetString());
    }

    [Fact]
    public void ShortFrames_AreNotCopied()
    {
        Assert.Null(JsonEscapes.BlankLongEscapedStrings("""{"type":"signal","to":"abc","candidates":[{"candidate":"a\r\nb"}]}"""u8));
        Assert.Null(JsonEscapes.BlankLongEscapedStrings(Encoding.UTF8.GetBytes(Offer(new string('a', 500)))));
    }

    /// <summary>
    /// Differential check: over many mutations of a realistic frame (escapes, quotes, control characters,
    /// brackets), the pre-pass never changes the outcome: same kind, error, ranges and fields as parsing
    /// the original bytes directly, and invalid JSON is always refused.
    /// </summary>
    [Fact]
    public void EscapePrePass_NeverChangesTheOutcome_UnderRandomMutations()
    {
        var random = new Random(20261127);
        var seeds = new[]
        {
            Offer(Sdp),
            Offer(Sdp.Replace("\\r\\n", "\\u000d\\u000a", StringComparison.Ordinal)),
            Offer(Sdp + "\\\"quoted\\\" \\\\ back\\/slash \\t\\b\\f"),
            $$$"""{"type":"ping","pad":"{{{Sdp}}}","id":"x"}""",
        };
        var alphabet = "\"\\{}[],:ux0 \r\n\t\u0001"u8.ToArray();
        for (var n = 0; n < 20_000; n++)
        {
            var bytes = Encoding.UTF8.GetBytes(seeds[n % seeds.Length]).ToList();
            var mutations = random.Next(0, 4);
            for (var m = 0; m < mutations; m++)
            {
                var at = random.Next(bytes.Count);
                switch (random.Next(3))
                {
                    case 0: bytes.RemoveAt(at); break;
                    case 1: bytes.Insert(at, alphabet[random.Next(alphabet.Length)]); break;
                    default: bytes[at] = alphabet[random.Next(alphabet.Length)]; break;
                }
            }

            var json = bytes.ToArray();
            var actual = ClientFrame.Parse(json);
            var reference = ClientFrame.ParseValidUtf8(json);
            Assert.Equal(Describe(reference), Describe(actual));
            if (!IsValidJson(json))
            {
                Assert.Equal(ClientFrameKind.Invalid, actual.Kind);
            }
        }
    }

    private static string Describe(ClientFrame f)
        => $"{f.Kind}|{f.ErrorCode}|{f.ErrorMessage}|{f.CorrelationId}|{f.To}|{f.ToEpoch}|{f.Description}|{f.Candidates}|{f.Version}|{f.Member}";

    private static bool IsValidJson(byte[] json)
    {
        try
        {
            using var _ = JsonDocument.Parse(json);
            return true;
        }
        catch (JsonException)
        {
            return false;
        }
    }
}
