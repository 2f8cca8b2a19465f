using CsCheck;
using Talki.Signalling.Client.Negotiation;
using Talki.Signalling.Testing;

namespace Talki.Signalling.Client.Tests.Negotiation;

/// <summary>
/// <see cref="SdpOrigin"/> scans descriptions in place. It must read, and remove, exactly what splitting the text into
/// lines read before (<see cref="SplitLinesSdp"/>, the oracle), whatever a peer sends: a description is remote input.
/// </summary>
public sealed class SdpOriginTests
{
    private const string Chrome =
        "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\na=x-talki-answer-to:77 3\r\n"
        + "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:Ab1z\r\na=ice-pwd:secret\r\n"
        + "a=candidate:1 1 udp 2122260223 192.0.2.2 50000 typ host\r\n";

    // Lines as descriptions have them, and as they must not break the scan: empty values, a name that only starts like
    // another, extra spaces and carriage returns, no o= fields, a version past ulong, text that is not SDP at all.
    private static readonly Gen<string> Line = Gen.OneOf(
        OneOf(
            "v=0", "o=- 1 2 IN IP4 127.0.0.1", "o=-  9   10 IN IP4 x", "o=- 5", "o=", "o=- 1 18446744073709551616 IN", "o=- 1 -2",
            "o=- s 3\r", "a=ice-ufrag:Ab1z", "a=ice-ufrag:", "a=ice-ufragX:no", "a=ice-ufrag", "a=x-talki-answer-to:1 2",
            "a=x-talki-answer-to:", " a=ice-ufrag:sp", "a=ice-pwd:p", "m=audio 9", "", "\r", "\r\r", "a=ice-ufrag:two\r\r"),
        Gen.String[Gen.Char["ao=ice-ufrag: \r-x0129"], 0, 30]);

    private static readonly Gen<string> Description = Gen.Select(Line.Array[0, 12], OneOf("\n", "\r\n", "\r\r\n").Array[12], Gen.Bool)
        .Select((lines, breaks, trailing) => string.Concat(lines.Select((l, i) => i + 1 < lines.Length || trailing ? l + breaks[i] : l)));

    private static readonly Gen<string> Name = OneOf("ice-ufrag", "x-talki-answer-to", "ice-pwd", "ice", "ice-ufragX");

    private static Gen<string> OneOf(params string[] values) => Gen.Int[0, values.Length - 1].Select(i => values[i]);

    [Fact]
    public void AChromeDescription_ReadsItsOriginAndAttributes_AndLosesOnlyTheRemovedLine()
    {
        Assert.True(SdpOrigin.TryParse(Chrome, out var origin));
        Assert.Equal(new SdpOrigin("4611731400430051336", 2), origin);
        Assert.Equal("Ab1z", SdpOrigin.ReadAttribute(Chrome, "ice-ufrag"));
        Assert.Equal("77 3", SdpOrigin.ReadAttribute(Chrome, "x-talki-answer-to"));
        Assert.Null(SdpOrigin.ReadAttribute(Chrome, "ice"));
        Assert.Equal(Chrome.Replace("a=x-talki-answer-to:77 3\r\n", "", StringComparison.Ordinal), SdpOrigin.RemoveAttribute(Chrome, "x-talki-answer-to"));
    }

    [Fact]
    public void WithoutTheAttribute_RemoveReturnsTheSameString() =>
        Assert.Same(Chrome, SdpOrigin.RemoveAttribute(Chrome, "ice-options"));

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("v=0\r\ns=-\r\n")]
    [InlineData("o=- 1 x IN IP4 1.2.3.4\r\no=- 1 2 IN IP4 1.2.3.4")] // the first o= line decides
    [InlineData("o=- 1 18446744073709551616 IN IP4 1.2.3.4")]
    [InlineData("o=- 1")]
    public void AnOriginThatIsMissingOrMalformed_IsNotRead(string? sdp) => Assert.False(SdpOrigin.TryParse(sdp, out _));

    [Fact]
    public void TheOrigin_IsReadAsSplittingTheLinesReadIt() =>
        Description.Sample(sdp =>
        {
            var read = SdpOrigin.TryParse(sdp, out var origin);
            var expected = SplitLinesSdp.TryParse(sdp, out var sessionId, out var version);
            return read == expected && (!read || (origin.SessionId == sessionId && origin.Version == version));
        }, iter: 5000);

    [Fact]
    public void AnAttribute_IsReadAsSplittingTheLinesReadIt() =>
        Gen.Select(Description, Name).Sample((sdp, name) => SdpOrigin.ReadAttribute(sdp, name) == SplitLinesSdp.ReadAttribute(sdp, name), iter: 5000);

    [Fact]
    public void AnAttribute_IsRemovedAsSplittingTheLinesRemovedIt() =>
        Gen.Select(Description, Name).Sample((sdp, name) => SdpOrigin.RemoveAttribute(sdp, name) == SplitLinesSdp.RemoveAttribute(sdp, name), iter: 5000);
}
