using Talki.Signalling.Protocol;

namespace Talki.Signalling.Client.Browser.Tests;

/// <summary>The module's description text, <c>version\ntype\nsdp</c>: the SDP's own line breaks are its own.</summary>
public sealed class PeerStateSnapshotTests
{
    [Fact]
    public void ADescription_KeepsEveryLineOfItsSdp()
    {
        var sdp = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\na=candidate:1 1 udp 1 127.0.0.1 5000 typ host\r\n\n\n";
        var (version, description) = PeerStateSnapshot.ParseDescription("17\nanswer\n" + sdp);
        Assert.Equal(17, version);
        Assert.Equal(SdpType.Answer, description?.Type);
        Assert.Equal(sdp, description?.Sdp);
    }

    [Theory]
    [InlineData("0\n\n")]
    [InlineData("3\n\n")]
    [InlineData("3\nnot-a-type\nv=0")]
    public void NoTypeOrAnUnknownOne_IsNoDescription(string text)
    {
        var (_, description) = PeerStateSnapshot.ParseDescription(text);
        Assert.Null(description);
    }

    [Theory]
    [InlineData("")]
    [InlineData("5")]
    [InlineData("5\noffer")]
    [InlineData("-1\noffer\nv=0")]
    [InlineData("five\noffer\nv=0")]
    [InlineData(" 5\noffer\nv=0")]
    public void TextNotOfThatForm_IsAFormatException(string text) =>
        Assert.Throws<FormatException>(() => PeerStateSnapshot.ParseDescription(text));
}
