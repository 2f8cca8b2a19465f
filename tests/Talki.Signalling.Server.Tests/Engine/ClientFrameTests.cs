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
            var json = Mutate(random, seeds[n % seeds.Length], alphabet);
            var actual = ClientFrame.Parse(json);
            var reference = ClientFrame.ParseValidUtf8(json);
            Assert.Equal(Describe(reference), Describe(actual));
            if (!IsValidJson(json))
            {
                Assert.Equal(ClientFrameKind.Invalid, actual.Kind);
            }
        }
    }

    /// <summary>
    /// Found by the fuzzer (corpus file fuzz-long-id-lone-surrogate.json): the escape pre-pass blanked a lone surrogate
    /// escape (<c>\ud800</c>) in a long string, so the reader never saw it. For a long id that changed the decision's
    /// message ("at most 64 characters" instead of "not valid Unicode"); the pre-pass now leaves such frames to the reader.
    /// </summary>
    [Theory]
    [InlineData("key")]
    [InlineData("type")]
    [InlineData("id")]
    [InlineData("sdp")]
    [InlineData("reversed-pair")]
    public void LongStringWithLoneSurrogate_PrePassAgreesWithTheReference(string where)
    {
        var pad = new string('a', 300);
        var json = where switch
        {
            "key" => $$"""{"{{pad}}\ud800":1,"type":"ping"}""",
            "type" => $$"""{"type":"{{pad}}\ud800"}""",
            "id" => $$"""{"type":"ping","id":"{{pad}}\ud800"}""",
            "sdp" => Offer(Sdp + @"\ud800"),
            _ => $$"""{"type":"ping","{{pad}}\udc00\ud800":1}""",
        };
        var bytes = Encoding.UTF8.GetBytes(json);

        Assert.Equal(Describe(ClientFrame.ParseValidUtf8(bytes)), Describe(ClientFrame.Parse(bytes)));
    }

    /// <summary>
    /// The pre-pass takes an SDP's plain escapes 32 bytes at a time (where the hardware has 256-bit vectors), then 16, and
    /// leaves every other escape, and the closing quote, to its scalar loop. Each escape that must stop a block (and a raw
    /// control character) is put at every offset of two 32-byte blocks and more, and next to a plain escape on either side:
    /// the copy must read exactly as the original.
    /// </summary>
    [Theory]
    [InlineData(@"\""")]
    [InlineData(@"\\")]
    [InlineData(@"\\n")]
    [InlineData(@"\u0041")]
    [InlineData(@"\ud83d\ude00")]
    [InlineData(@"\ud800")]
    [InlineData(@"\q")]
    [InlineData("\u0001")]
    [InlineData(@"\")]
    public void AnEscapeTheBlocksDoNotTake_AtEveryOffset_ReadsAsTheOriginal(string escape)
    {
        for (var offset = 0; offset < 80; offset++)
        {
            foreach (var (before, after) in new[] { ("", ""), (@"\r\n", ""), ("", @"\r\n"), (@"\n", @"\t") })
            {
                var json = Encoding.UTF8.GetBytes(Offer(Sdp[..offset] + before + escape + after + Sdp[offset..]));
                Assert.Equal(Describe(ClientFrame.ParseValidUtf8(json)), Describe(ClientFrame.Parse(json)));
            }
        }
    }

    /// <summary>
    /// A block stops at a quote: the long string ends there, and a short string after it (an id) keeps its escapes for
    /// the reader. The long string's closing quote is put at every offset of two 32-byte blocks and more.
    /// </summary>
    [Fact]
    public void AShortStringAfterALongOne_KeepsItsEscapes_WhereverTheLongOneEnds()
    {
        for (var pad = 0; pad < 80; pad++)
        {
            var json = Encoding.UTF8.GetBytes(
                $$$"""{"type":"signal","to":"{{{To}}}","description":{"type":"offer","sdp":"{{{Sdp + new string('a', pad)}}}"},"id":"a\nb\/c"}""");
            var frame = ClientFrame.Parse(json);

            Assert.Equal("a\nb/c", frame.CorrelationId);
            Assert.Equal(Describe(ClientFrame.ParseValidUtf8(json)), Describe(frame));
        }
    }

    /// <summary>
    /// The walk starts at the string holding the first backslash, counting the quotes before it. After an even number the
    /// backslash is outside any string: started there, the walk would run out of phase and blank the stray backslash as if
    /// it began a long string's escape.
    /// </summary>
    [Fact]
    public void ABackslashOutsideAnyString_MakesNoCopy_AndTheReaderReportsIt()
    {
        // Out of phase, the quote that closes "ping" would open a string, closed by the last quote: long and escaped.
        var json = Encoding.UTF8.GetBytes($$"""{"type":"ping",\n{{new string('a', 300)}}"}""");

        Assert.Null(JsonEscapes.BlankLongEscapedStrings(json));
        var frame = ClientFrame.Parse(json);
        Assert.Equal(SignallingErrorCode.MalformedMessage, frame.ErrorCode);
        Assert.Equal(Describe(ClientFrame.ParseValidUtf8(json)), Describe(frame));
    }

    /// <summary>
    /// A description is checked in the reader's one pass over the frame (there used to be a second pass over its bytes):
    /// the first problem is the one reported, a nested value after it is read past whole, the JSON after it is still
    /// checked, and the last description of the frame is the one that counts.
    /// </summary>
    [Theory]
    [InlineData("""{"type":"offer"}""", "'description.sdp' is required.")]
    [InlineData("""{"type":"offer","sdp":null}""", "'description.sdp' is required.")]
    [InlineData("""{"sdp":"v=0"}""", "'description.type' is required.")]
    [InlineData("""{}""", "'description.type' is required.")]
    [InlineData("""{"type":"bogus","sdp":"v=0"}""", "'description.type' must be offer, answer, pranswer or rollback.")]
    [InlineData("""{"type":{"a":[1,{"b":"offer"}]},"sdp":"v=0"}""", "'description.type' must be offer, answer, pranswer or rollback.")]
    [InlineData("""{"type":"offer","sdp":["v=0",{"s":1}]}""", "'description.sdp' must be a string.")]
    [InlineData("""{"type":"offer","sdp":"v=0","x":{"deep":[1,2,{"z":3}]}}""", "'description' may only have 'type' and 'sdp'.")]
    [InlineData("""{"x":{"deep":[1]},"type":"bogus"}""", "'description' may only have 'type' and 'sdp'.")]
    [InlineData("""{"type":"bogus","sdp":5}""", "'description.type' must be offer, answer, pranswer or rollback.")]
    [InlineData("""{"type":"offer","type":5,"sdp":"v=0"}""", "'description.type' must be offer, answer, pranswer or rollback.")]
    [InlineData("""{"type":"offer","sdp":"v=1"},"description":{"type":"bogus"}""", "'description.type' must be offer, answer, pranswer or rollback.")]
    [InlineData("""{"type":"bogus"},"description":null""", "'description.type' must be offer, answer, pranswer or rollback.")]
    [InlineData("""{"x":1,"y":[1,}""", "The message is not valid JSON.")]
    [InlineData("""{"type":"bogus","y":{"a":}}""", "The message is not valid JSON.")]
    [InlineData("""{"type":"bogus"},"toEpoch":true""", "'toEpoch' must be a non-negative integer.")]
    public void ABadDescription_IsReportedFromTheFramesOnePass_TheFirstProblemOfTheLastDescription(string description, string error)
    {
        var frame = ClientFrame.Parse(Encoding.UTF8.GetBytes($$"""{"type":"signal","id":"s1","to":"AAAAAAAAAAAAAAAA","description":{{description}}}"""));

        Assert.Equal(SignallingErrorCode.MalformedMessage, frame.ErrorCode);
        Assert.Equal(error, frame.ErrorMessage);
        Assert.Equal("s1", frame.CorrelationId);
    }

    /// <summary>The description that is relayed is the last object of the frame, checked in the same pass.</summary>
    [Theory]
    [InlineData("""{"type":"offer","sdp":"v=0"}""", "offer")]
    [InlineData("""{"type":"rollback"}""", "rollback")]
    [InlineData("""{"sdp":"v=0","type":"answer"}""", "answer")]
    [InlineData("""{"type":"bogus"},"description":{"type":"pranswer","sdp":"v=1"}""", "pranswer")]
    [InlineData("""{"type":"answer","sdp":"v=1"},"description":null""", "answer")]
    public void AGoodDescription_IsTheLastObjectOfTheFrame(string description, string type)
    {
        var json = Encoding.UTF8.GetBytes($$"""{"type":"signal","id":"s1","to":"AAAAAAAAAAAAAAAA","description":{{description}}}""");
        var frame = ClientFrame.Parse(json);

        Assert.Equal(ClientFrameKind.Signal, frame.Kind);
        using var relayed = JsonDocument.Parse(json.AsMemory()[frame.Description]);
        Assert.Equal(type, relayed.RootElement.GetProperty("type").GetString());
    }

    /// <summary>
    /// Whether a signal is an offer is read in the same pass (there used to be a third pass over the description). The last
    /// <c>type</c> of the last description counts: the receiving browser's <c>JSON.parse</c> keeps the last of repeated keys.
    /// </summary>
    [Theory]
    [InlineData("""{"type":"offer","sdp":"v=0"}""", true)]
    [InlineData("""{"sdp":"v=0","type":"offer"}""", true)]
    [InlineData("""{"type":"answer","sdp":"v=0"}""", false)]
    [InlineData("""{"type":"pranswer","sdp":"v=0"}""", false)]
    [InlineData("""{"type":"rollback"}""", false)]
    [InlineData("""{"type":"answer","type":"offer","sdp":"v=0"}""", true)]
    [InlineData("""{"type":"offer","type":"answer","sdp":"v=0"}""", false)]
    [InlineData("""{"type":"answer","sdp":"v=0"},"description":{"type":"offer","sdp":"v=1"}""", true)]
    [InlineData("""{"type":"offer","sdp":"v=0"},"description":{"type":"answer","sdp":"v=1"}""", false)]
    [InlineData("""{"type":"offer","sdp":"v=0"},"description":null""", true)]
    public void WhetherASignalIsAnOffer_IsReadInThePass_TheLastTypeOfTheLastDescriptionCounts(string description, bool offer)
    {
        var json = Encoding.UTF8.GetBytes($$"""{"type":"signal","to":"AAAAAAAAAAAAAAAA","description":{{description}}}""");
        var frame = ClientFrame.Parse(json);

        Assert.Equal(ClientFrameKind.Signal, frame.Kind);
        Assert.Equal(offer, frame.IsOffer);

        // As System.Text.Json's document reads it (the last of repeated properties), and as the receiver will.
        using var relayed = JsonDocument.Parse(json.AsMemory()[frame.Description]);
        Assert.Equal(offer, relayed.RootElement.GetProperty("type").GetString() == "offer");
    }

    [Fact]
    public void ASignalWithCandidatesOnly_IsNoOffer()
    {
        var frame = ClientFrame.Parse("""{"type":"signal","to":"AAAAAAAAAAAAAAAA","candidates":[{"candidate":"x"}]}"""u8);

        Assert.Equal(ClientFrameKind.Signal, frame.Kind);
        Assert.False(frame.IsOffer);
    }

    /// <summary>
    /// A candidates array is checked in the reader's one pass over the frame (there used to be a second pass over its bytes):
    /// the first problem is the one reported, a nested value is read past whole, the JSON after the problem is still checked,
    /// the last array of the frame is the one that counts, and a description's problem comes first.
    /// </summary>
    [Theory]
    [InlineData("""[]""", "'candidates' must not be empty.")]
    [InlineData("""[1]""", "Each candidate must be an object.")]
    [InlineData("""[[{"candidate":"x"}],{"candidate":5}]""", "Each candidate must be an object.")]
    [InlineData("""[{"sdpMid":"0"}]""", "Each candidate needs 'candidate'.")]
    [InlineData("""[{"candidate":"a"},{}]""", "Each candidate needs 'candidate'.")]
    [InlineData("""[{"candidate":5}]""", "'candidate' must be a string.")]
    [InlineData("""[{"candidate":null}]""", "'candidate' must be a string.")]
    [InlineData("""[{"candidate":{"a":[1,{"candidate":"x"}]},"sdpMid":7}]""", "'candidate' must be a string.")]
    [InlineData("""[{"candidate":"a","sdpMid":["x"]}]""", "'sdpMid' and 'usernameFragment' must be strings.")]
    [InlineData("""[{"candidate":"a","usernameFragment":1}]""", "'sdpMid' and 'usernameFragment' must be strings.")]
    [InlineData("""[{"candidate":"a","sdpMLineIndex":70000}]""", "'sdpMLineIndex' must be an integer from 0 to 65535.")]
    [InlineData("""[{"candidate":"a","sdpMLineIndex":-1}]""", "'sdpMLineIndex' must be an integer from 0 to 65535.")]
    [InlineData("""[{"candidate":"a","sdpMLineIndex":"0"}]""", "'sdpMLineIndex' must be an integer from 0 to 65535.")]
    [InlineData("""[{"candidate":"a","evil":{"deep":[1,{"candidate":5}]}},{"candidate":5}]""", "A candidate may only have 'candidate', 'sdpMid', 'sdpMLineIndex' and 'usernameFragment'.")]
    [InlineData("""[{"candidate":"a"}],"candidates":[5]""", "Each candidate must be an object.")]
    [InlineData("""[5],"candidates":null""", "Each candidate must be an object.")]
    [InlineData("""[5,{"x":}]""", "The message is not valid JSON.")]
    [InlineData("""[{"candidate":5,"y":[1,}]""", "The message is not valid JSON.")]
    [InlineData("""[{"candidate":5}],"toEpoch":true""", "'toEpoch' must be a non-negative integer.")]
    [InlineData("""[{"candidate":5}],"description":{"type":"bogus"}""", "'description.type' must be offer, answer, pranswer or rollback.")]
    [InlineData("""{"candidate":"a"}""", "'candidates' must be an array.")]
    public void ABadCandidatesArray_IsReportedFromTheFramesOnePass_TheFirstProblemOfTheLastArray(string candidates, string error)
    {
        var frame = ClientFrame.Parse(Encoding.UTF8.GetBytes($$"""{"type":"signal","id":"s1","to":"AAAAAAAAAAAAAAAA","candidates":{{candidates}}}"""));

        Assert.Equal(SignallingErrorCode.MalformedMessage, frame.ErrorCode);
        Assert.Equal(error, frame.ErrorMessage);
        Assert.Equal("s1", frame.CorrelationId);
    }

    [Theory]
    [InlineData(64, null)]
    [InlineData(65, "A signal may carry at most 64 candidates.")]
    public void ACandidatesArray_OfMoreThanSixtyFour_IsRefused(int count, string? error)
    {
        var candidates = string.Join(",", Enumerable.Range(0, count).Select(i => $$"""{"candidate":"c{{i}}","sdpMid":"0","sdpMLineIndex":{{i}}}"""));
        var frame = ClientFrame.Parse(Encoding.UTF8.GetBytes($$"""{"type":"signal","to":"AAAAAAAAAAAAAAAA","candidates":[{{candidates}}]}"""));

        Assert.Equal(error, frame.ErrorMessage);
        Assert.Equal(error is null ? ClientFrameKind.Signal : ClientFrameKind.Invalid, frame.Kind);
    }

    /// <summary>The candidates that are relayed are the last array of the frame, checked in the same pass.</summary>
    [Theory]
    [InlineData("""[{"candidate":"a","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"u"}]""", "a")]
    [InlineData("""[{"candidate":"","sdpMid":null,"sdpMLineIndex":null,"usernameFragment":null}]""", "")]
    [InlineData("""[5],"candidates":[{"candidate":"b"}]""", "b")]
    [InlineData("""[{"candidate":"c"}],"candidates":null""", "c")]
    public void AGoodCandidatesArray_IsTheLastArrayOfTheFrame(string candidates, string first)
    {
        var json = Encoding.UTF8.GetBytes($$"""{"type":"signal","to":"AAAAAAAAAAAAAAAA","candidates":{{candidates}}}""");
        var frame = ClientFrame.Parse(json);

        Assert.Equal(ClientFrameKind.Signal, frame.Kind);
        using var relayed = JsonDocument.Parse(json.AsMemory()[frame.Candidates]);
        Assert.Equal(first, relayed.RootElement[0].GetProperty("candidate").GetString());
    }

    [Fact]
    public void LongIdWithLoneSurrogate_IsNotValidUnicode_NotTooLong()
    {
        var frame = ClientFrame.Parse(Encoding.UTF8.GetBytes($$"""{"type":"ping","id":"{{new string('a', 300)}}\ud800"}"""));
        Assert.Equal(SignallingErrorCode.MalformedMessage, frame.ErrorCode);
        Assert.Equal("'id' must be valid Unicode text (no lone surrogate).", frame.ErrorMessage);
    }

    [Fact]
    public void LongStringWithSurrogatePair_IsStillBlanked()
    {
        var json = Encoding.UTF8.GetBytes(Offer(Sdp + @"\ud83d\ude00\uD83D\uDE00"));
        var copy = JsonEscapes.BlankLongEscapedStrings(json);
        Assert.NotNull(copy);
        System.Buffers.ArrayPool<byte>.Shared.Return(copy);
        Assert.Equal(ClientFrameKind.Signal, ClientFrame.Parse(json).Kind);
    }

    [Fact]
    public void Signals_AValidBatch_ParsesEveryEntry_TheRangesPointAtEachEntrysOwnBytes()
    {
        MemberId a = MemberId.New(), b = MemberId.New(), c = MemberId.New();
        const string DescriptionA = """{"type":"offer","sdp":"v=0\r\no=- a\r\n"}""";
        const string CandidatesB = """[{"candidate":"candidate:1 1 udp 1 10.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0}]""";
        const string DescriptionC = """{ "type" : "answer", "sdp" : "v=0\r\no=- c\r\n" }""";
        const string CandidatesC = """[ {"candidate":"c-1"} , {"candidate":""} ]""";

        // Whitespace, an unknown property (ignored), a null id and a forged 'link' (ignored: the server writes links) on the way.
        var json = Encoding.UTF8.GetBytes(
            $$$"""{"type":"signals","signals":[{"id":"e0","to":"{{{a}}}","toEpoch":3,"description":{{{DescriptionA}}}},{"to":"{{{b}}}","candidates":{{{CandidatesB}}},"future":{"x":[1,2]}}, {"to":"{{{c}}}","toEpoch":0,"id":null,"description":{{{DescriptionC}}},"candidates":{{{CandidatesC}}},"link":{"peerEpoch":9}}],"id":"frame-1"}""");

        var frame = ClientFrame.Parse(json);

        Assert.Equal(ClientFrameKind.Signals, frame.Kind);
        Assert.Equal("frame-1", frame.CorrelationId); // an id after the array is the frame's, not an entry's
        var entries = frame.Signals!;
        Assert.Equal(3, entries.Length);

        Assert.Equal((a, (long?)3, "e0"), (entries[0].To, entries[0].ToEpoch, entries[0].CorrelationId));
        Assert.Equal(DescriptionA, Text(json, entries[0].Description));
        Assert.Equal(default, entries[0].Candidates);

        Assert.Equal((b, (long?)null, (string?)null), (entries[1].To, entries[1].ToEpoch, entries[1].CorrelationId));
        Assert.Equal(default, entries[1].Description);
        Assert.Equal(CandidatesB, Text(json, entries[1].Candidates));

        Assert.Equal((c, (long?)0, (string?)null), (entries[2].To, entries[2].ToEpoch, entries[2].CorrelationId));
        Assert.Equal(DescriptionC, Text(json, entries[2].Description));
        Assert.Equal(CandidatesC, Text(json, entries[2].Candidates));
        Assert.Equal((true, false, false), (entries[0].IsOffer, entries[1].IsOffer, entries[2].IsOffer));

        // The frame's own single-signal fields stay empty: only the entries are relayed.
        Assert.Equal(default, frame.To);
        Assert.Equal(default, frame.Description);
        Assert.Equal(default, frame.Candidates);
    }

    [Fact]
    public void Signals_LongEscapedSdpInAnEntry_IsBlankedInTheCopy_AndTheEntrysRangesPointAtTheOriginal()
    {
        MemberId a = MemberId.New(), b = MemberId.New();
        var json = Encoding.UTF8.GetBytes(
            $$$"""{"type":"signals","id":"b1","signals":[{"to":"{{{a}}}","description":{"type":"offer","sdp":"{{{Sdp}}}"}},{"to":"{{{b}}}","toEpoch":2,"description":{"type":"offer","sdp":"{{{Sdp}}}x"},"candidates":[{"candidate":"{{{Sdp}}}"}]}]}""");
        var copy = JsonEscapes.BlankLongEscapedStrings(json);
        Assert.NotNull(copy); // the pre-pass runs on this frame: the ranges below are found in the blanked copy
        System.Buffers.ArrayPool<byte>.Shared.Return(copy);

        var frame = ClientFrame.Parse(json);

        Assert.Equal(ClientFrameKind.Signals, frame.Kind);
        var unescaped = Sdp.Replace("\\r\\n", "\r\n", StringComparison.Ordinal);
        using (var first = JsonDocument.Parse(json.AsMemory()[frame.Signals![0].Description]))
        {
            Assert.Equal(unescaped, first.RootElement.GetProperty("sdp").GetString());
        }

        using (var second = JsonDocument.Parse(json.AsMemory()[frame.Signals[1].Description]))
        {
            Assert.Equal(unescaped + "x", second.RootElement.GetProperty("sdp").GetString());
        }

        using var candidates = JsonDocument.Parse(json.AsMemory()[frame.Signals[1].Candidates]);
        Assert.Equal(unescaped, candidates.RootElement[0].GetProperty("candidate").GetString());
        Assert.Equal(Describe(ClientFrame.ParseValidUtf8(json)), Describe(frame));
    }

    [Theory]
    [InlineData("""{"type":"signals","id":"b1"}""", "A 'signals' message needs a non-empty 'signals' array.")]
    [InlineData("""{"type":"signals","id":"b1","signals":[]}""", "A 'signals' message needs a non-empty 'signals' array.")]
    [InlineData("""{"type":"signals","id":"b1","signals":null}""", "'signals' must be an array.")]
    [InlineData("""{"type":"signals","id":"b1","signals":{"to":"AAAAAAAAAAAAAAAA","candidates":[{"candidate":"x"}]}}""", "'signals' must be an array.")]
    [InlineData("""{"type":"signals","id":"b1","signals":"[]"}""", "'signals' must be an array.")]
    [InlineData("""{"type":"signals","id":"b1","signals":[1]}""", "Each entry of 'signals' must be an object.")]
    [InlineData("""{"type":"signals","id":"b1","signals":[null]}""", "Each entry of 'signals' must be an object.")]
    [InlineData("""{"type":"signals","id":"b1","signals":[[{"to":"AAAAAAAAAAAAAAAA","candidates":[{"candidate":"x"}]}]]}""", "Each entry of 'signals' must be an object.")]
    [InlineData("""{"type":"signals","id":"b1","signals":[{"to":"AAAAAAAAAAAAAAAA","candidates":[{"candidate":"x"}]},"x"]}""", "Each entry of 'signals' must be an object.")]
    [InlineData("""{"type":"signals","id":"b1","signals":[{"candidates":[{"candidate":"x"}]}]}""", "Entry 0 of 'signals': the entry needs 'to'.")]
    [InlineData("""{"type":"signals","id":"b1","signals":[{"to":"AAAAAAAAAAAAAAAA","candidates":[{"candidate":"x"}]},{"description":{"type":"offer","sdp":"v=0"}}]}""", "Entry 1 of 'signals': the entry needs 'to'.")]
    [InlineData("""{"type":"signals","id":"b1","signals":[{"to":"AAAAAAAAAAAAAAAA"}]}""", "Entry 0 of 'signals': the entry needs a 'description' or 'candidates'.")]
    [InlineData("""{"type":"signals","id":"b1","signals":[{"to":"AAAAAAAAAAAAAAAA","description":null,"candidates":null}]}""", "Entry 0 of 'signals': the entry needs a 'description' or 'candidates'.")]
    [InlineData("""{"type":"signals","id":"b1","signals":[{"to":"not an id!","candidates":[{"candidate":"x"}]}]}""", "Entry 0 of 'signals': 'to' must be a member id.")]
    [InlineData("""{"type":"signals","id":"b1","signals":[{"to":"\u0041AAAAAAAAAAAAAAA","candidates":[{"candidate":"x"}]}]}""", "Entry 0 of 'signals': 'to' must be a member id.")]
    [InlineData("""{"type":"signals","id":"b1","signals":[{"to":{"to":"AAAAAAAAAAAAAAAA"},"candidates":[{"candidate":"x"}]}]}""", "Entry 0 of 'signals': 'to' must be a member id.")]
    [InlineData("""{"type":"signals","id":"b1","signals":[{"to":"AAAAAAAAAAAAAAAA","toEpoch":-1,"candidates":[{"candidate":"x"}]}]}""", "Entry 0 of 'signals': 'toEpoch' must be a non-negative integer.")]
    [InlineData("""{"type":"signals","id":"b1","signals":[{"to":"AAAAAAAAAAAAAAAA","toEpoch":"1","candidates":[{"candidate":"x"}]}]}""", "Entry 0 of 'signals': 'toEpoch' must be a non-negative integer.")]
    [InlineData("""{"type":"signals","id":"b1","signals":[{"to":"AAAAAAAAAAAAAAAA","description":"offer"}]}""", "Entry 0 of 'signals': 'description' must be an object.")]
    [InlineData("""{"type":"signals","id":"b1","signals":[{"to":"AAAAAAAAAAAAAAAA","description":{"type":"bogus","sdp":"v=0"}}]}""", "Entry 0 of 'signals': 'description.type' must be offer, answer, pranswer or rollback.")]
    [InlineData("""{"type":"signals","id":"b1","signals":[{"to":"AAAAAAAAAAAAAAAA","description":{"type":"offer"}}]}""", "Entry 0 of 'signals': 'description.sdp' is required.")]
    [InlineData("""{"type":"signals","id":"b1","signals":[{"to":"AAAAAAAAAAAAAAAA","description":{"type":"offer","sdp":"v=0","link":{}}}]}""", "Entry 0 of 'signals': 'description' may only have 'type' and 'sdp'.")]
    [InlineData("""{"type":"signals","id":"b1","signals":[{"to":"AAAAAAAAAAAAAAAA","candidates":{"candidate":"x"}}]}""", "Entry 0 of 'signals': 'candidates' must be an array.")]
    [InlineData("""{"type":"signals","id":"b1","signals":[{"to":"AAAAAAAAAAAAAAAA","candidates":[]}]}""", "Entry 0 of 'signals': 'candidates' must not be empty.")]
    [InlineData("""{"type":"signals","id":"b1","signals":[{"to":"AAAAAAAAAAAAAAAA","candidates":[{"candidate":1}]}]}""", "Entry 0 of 'signals': 'candidate' must be a string.")]
    [InlineData("""{"type":"signals","id":"b1","signals":[{"to":"AAAAAAAAAAAAAAAA","candidates":[{"candidate":"x","evil":true}]}]}""", "Entry 0 of 'signals': A candidate may only have 'candidate', 'sdpMid', 'sdpMLineIndex' and 'usernameFragment'.")]
    [InlineData("""{"type":"signals","id":"b1","signals":[{"to":"AAAAAAAAAAAAAAAA","id":7,"candidates":[{"candidate":"x"}]}]}""", "Entry 0 of 'signals': 'id' must be a string.")]
    [InlineData("""{"type":"signals","id":"b1","signals":[{"to":"AAAAAAAAAAAAAAAA","id":{"id":"x"},"candidates":[{"candidate":"x"}]}]}""", "Entry 0 of 'signals': 'id' must be a string.")]
    [InlineData("""{"type":"signals","id":"b1","signals":[{"to":"AAAAAAAAAAAAAAAA","id":"\ud800","candidates":[{"candidate":"x"}]}]}""", "Entry 0 of 'signals': 'id' must be valid Unicode text (no lone surrogate).")]
    [InlineData("""{"type":"signals","id":"b1","signals":[{"to":"AAAAAAAAAAAAAAAA","candidates":[{"candidate":"x"}]},{"to":"AAAAAAAAAAAAAAAA","description":{"type":"offer","sdp":"v=0"}}]}""", "Two entries of 'signals' are for the same member.")]
    [InlineData("""{"type":"signals","id":"b1","signals":[{"to":"AAAAAAAAAAAAAAAA","candidates":[{"candidate":"x"}]},{"to":"BBBBBBBBBBBBBBBB","candidates":[{"candidate":"x"}]},{"to":"AAAAAAAAAAAAAAAA","candidates":[{"candidate":"y"}]}]}""", "Two entries of 'signals' are for the same member.")]
    [InlineData("""{"type":"signals","id":"b1","to":"AAAAAAAAAAAAAAAA","description":{"type":"offer","sdp":"v=0"}}""", "A 'signals' message needs a non-empty 'signals' array.")]
    public void Signals_Malformed_IsRefusedAsAWhole_WithTheFramesId(string json, string message)
    {
        var frame = ClientFrame.Parse(Encoding.UTF8.GetBytes(json));

        Assert.Equal(ClientFrameKind.Invalid, frame.Kind);
        Assert.Equal(SignallingErrorCode.MalformedMessage, frame.ErrorCode);
        Assert.Equal(message, frame.ErrorMessage);
        Assert.Equal("b1", frame.CorrelationId);
        Assert.Null(frame.Signals);
    }

    [Fact]
    public void Signals_TheFirstProblemIsTheOneReported_AndLaterEntriesDoNotHideIt()
    {
        // Entry 0 is valid, entry 1 has no 'to', entry 2 repeats entry 0's member and entry 3 is no object: the first one wins.
        var json = """{"type":"signals","signals":[{"to":"AAAAAAAAAAAAAAAA","candidates":[{"candidate":"x"}]},{"candidates":[{"candidate":"x"}]},{"to":"AAAAAAAAAAAAAAAA","candidates":[{"candidate":"x"}]},5]}""";
        Assert.Equal("Entry 1 of 'signals': the entry needs 'to'.", ClientFrame.Parse(Encoding.UTF8.GetBytes(json)).ErrorMessage);
    }

    [Fact]
    public void Signals_SixtyFourEntriesParse_SixtyFiveAreRefused()
    {
        static byte[] Batch(int count) => Encoding.UTF8.GetBytes(
            """{"type":"signals","id":"b1","signals":[""" + string.Join(",", Enumerable.Range(0, count).Select(_ => $$"""{"to":"{{MemberId.New()}}","candidates":[{"candidate":"x"}]}""")) + "]}");

        var most = ClientFrame.Parse(Batch(ClientFrame.MaxSignalsPerFrame));
        Assert.Equal(ClientFrameKind.Signals, most.Kind);
        Assert.Equal(64, most.Signals!.Length);
        Assert.Equal(64, most.Signals.Select(e => e.To).Distinct().Count());

        var tooMany = ClientFrame.Parse(Batch(ClientFrame.MaxSignalsPerFrame + 1));
        Assert.Equal(ClientFrameKind.Invalid, tooMany.Kind);
        Assert.Equal(SignallingErrorCode.MalformedMessage, tooMany.ErrorCode);
        Assert.Equal("'signals' may carry at most 64 entries.", tooMany.ErrorMessage);
        Assert.Equal("b1", tooMany.CorrelationId);

        // Far more entries than allowed is refused the same way (and does not throw).
        Assert.Equal("'signals' may carry at most 64 entries.", ClientFrame.Parse(Batch(1_000)).ErrorMessage);
    }

    [Fact]
    public void Signals_EntryIdsUpToSixtyFourCharactersAreKept_LongerOnesAreRefused()
    {
        var to = MemberId.New();
        string Frame(string id) => $$"""{"type":"signals","signals":[{"to":"{{to}}","id":"{{id}}","candidates":[{"candidate":"x"}]}]}""";

        var kept = ClientFrame.Parse(Encoding.UTF8.GetBytes(Frame(new string('e', 64))));
        Assert.Equal(new string('e', 64), Assert.Single(kept.Signals!).CorrelationId);
        Assert.Null(kept.CorrelationId);

        var refused = ClientFrame.Parse(Encoding.UTF8.GetBytes(Frame(new string('e', 65))));
        Assert.Equal(SignallingErrorCode.MalformedMessage, refused.ErrorCode);
        Assert.Equal("Entry 0 of 'signals': 'id' must be at most 64 characters.", refused.ErrorMessage);
    }

    [Fact]
    public void ASingleSignal_ParsesAsBefore_AndCarriesNoEntries()
    {
        var json = Encoding.UTF8.GetBytes(Offer("v=0"));

        var frame = ClientFrame.Parse(json);

        Assert.Equal((ClientFrameKind.Signal, "c1", To, (long?)3), (frame.Kind, frame.CorrelationId, frame.To, frame.ToEpoch));
        Assert.Equal("""{"type":"offer","sdp":"v=0"}""", Text(json, frame.Description));
        Assert.Equal("""[{"candidate":"v=0","sdpMid":"0"}]""", Text(json, frame.Candidates));
        Assert.Null(frame.Signals);

        // The single signal's own checks are unchanged, messages included.
        Assert.Equal("A signal needs 'to'.", ClientFrame.Parse("""{"type":"signal","candidates":[{"candidate":"x"}]}"""u8).ErrorMessage);
        Assert.Equal("A signal needs a 'description' or 'candidates'.", ClientFrame.Parse(Encoding.UTF8.GetBytes($$"""{"type":"signal","to":"{{To}}"}""")).ErrorMessage);
        Assert.Equal("'candidates' must not be empty.", ClientFrame.Parse(Encoding.UTF8.GetBytes($$"""{"type":"signal","to":"{{To}}","candidates":[]}""")).ErrorMessage);

        // A 'signals' array on a single signal is not relayed: the signal is what the frame's own fields say.
        var withArray = ClientFrame.Parse(Encoding.UTF8.GetBytes(Offer("v=0")[..^1] + $$""","signals":[{"to":"{{MemberId.New()}}","candidates":[{"candidate":"x"}]}]}"""));
        Assert.Equal(ClientFrameKind.Signal, withArray.Kind);
        Assert.Equal(To, withArray.To);
        Assert.Null(withArray.Signals);
    }

    /// <summary>The escape pre-pass's differential check, on <c>signals</c> frames, with every entry in the description.</summary>
    [Fact]
    public void EscapePrePass_NeverChangesTheOutcomeOfASignalsFrame_UnderRandomMutations()
    {
        var random = new Random(20261201);
        MemberId a = MemberId.New(), b = MemberId.New();
        var unicodeEscaped = Sdp.Replace("\\r\\n", "\\u000d\\u000a", StringComparison.Ordinal);
        var seeds = new[]
        {
            $$$"""{"type":"signals","id":"b1","signals":[{"to":"{{{a}}}","id":"e0","description":{"type":"offer","sdp":"{{{Sdp}}}"}},{"to":"{{{b}}}","toEpoch":2,"candidates":[{"candidate":"{{{Sdp}}}","sdpMid":"0"}]}]}""",
            $$$"""{"type":"signals","signals":[{"to":"{{{a}}}","description":{"type":"offer","sdp":"{{{unicodeEscaped}}}"},"candidates":[{"candidate":"c"}]}],"id":"b2"}""",
        };
        var alphabet = "\"\\{}[],:ux0 \r\n\t\u0001"u8.ToArray();
        for (var n = 0; n < 5_000; n++)
        {
            var json = Mutate(random, seeds[n % seeds.Length], alphabet);
            var actual = ClientFrame.Parse(json);
            Assert.Equal(Describe(ClientFrame.ParseValidUtf8(json)), Describe(actual));
            if (!IsValidJson(json))
            {
                Assert.Equal(ClientFrameKind.Invalid, actual.Kind);
            }
        }
    }

    private static string Text(byte[] json, Range range) => Encoding.UTF8.GetString(json.AsSpan()[range]);

    /// <summary>A seed frame with up to three random byte deletions, insertions or replacements drawn from <paramref name="alphabet"/>.</summary>
    private static byte[] Mutate(Random random, string seed, byte[] alphabet)
    {
        var bytes = Encoding.UTF8.GetBytes(seed).ToList();
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

        return [.. bytes];
    }

    private static string Describe(ClientFrame f)
        => $"{f.Kind}|{f.ErrorCode}|{f.ErrorMessage}|{f.CorrelationId}|{f.To}|{f.ToEpoch}|{f.Description}|{f.IsOffer}|{f.Candidates}|{f.Version}|{f.Member}|{(f.Signals is null ? "-" : string.Join(";", f.Signals))}";

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
