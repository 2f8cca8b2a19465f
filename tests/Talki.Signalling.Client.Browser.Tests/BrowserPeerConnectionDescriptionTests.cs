using Microsoft.Extensions.Logging;
using Microsoft.JSInterop;
using Talki.Signalling.Client.Browser.Tests.Support;
using Talki.Signalling.Client.Negotiation;
using Talki.Signalling.Testing;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Client.Browser.Tests;

/// <summary>
/// The module reports a link's descriptions by version with every event and operation, and the adapter reads a
/// description's text only when it needs a version it has not read: the browser's versions only grow, and snapshots
/// (events and operation results) can reach .NET out of order.
/// </summary>
public sealed class BrowserPeerConnectionDescriptionTests
{
    private const string OfferV1 = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\n";
    private const string OfferV2 = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\na=candidate:1 1 udp 1 127.0.0.1 5000 typ host\r\n";

    private readonly FakeWebRtcModule _module = new();
    private readonly RecordingLoggerProvider _logs = new();

    [Fact]
    public async Task EventsThatReportNoNewVersion_ReadNoDescriptionFromTheBrowser_AndANewVersionIsReadOnce()
    {
        var pc = await CreateAsync();
        _module.Description = side => side == "local" ? Description(1, "offer", OfferV1) : Description(0, null, null);

        pc.OnEvent(Snapshot(1, localV: 1, remoteV: 0, kind: "signalingstatechange"));
        Assert.Equal(OfferV1, pc.LocalDescription?.Sdp);
        Assert.Null(pc.RemoteDescription); // version 0 is no description: nothing to read
        for (var seq = 2; seq < 12; seq++)
        {
            pc.OnEvent(Snapshot(seq, localV: 1, remoteV: 0, kind: "icegatheringstatechange"));
            Assert.Equal(SdpType.Offer, pc.LocalDescription?.Type);
        }

        Assert.Equal(1, _module.CountOf("description"));

        _module.Description = side => Description(2, "offer", OfferV2);
        pc.OnEvent(Snapshot(12, localV: 2, remoteV: 0, kind: "icecandidate"));
        Assert.Equal(OfferV2, pc.LocalDescription?.Sdp);
        Assert.Equal(OfferV2, pc.LocalDescription?.Sdp);
        Assert.Equal(2, _module.CountOf("description"));
    }

    [Fact]
    public async Task AnOlderSnapshotArrivingLate_NeitherTakesTheVersionBack_NorCausesAnotherRead()
    {
        var pc = await CreateAsync();
        _module.Description = side => Description(3, "offer", OfferV2);

        pc.OnEvent(Snapshot(10, localV: 3, remoteV: 0, kind: "icecandidate"));
        pc.OnEvent(Snapshot(9, localV: 2, remoteV: 0, kind: "icecandidate")); // queued behind the newer one
        Assert.Equal(OfferV2, pc.LocalDescription?.Sdp);

        _module.Description = side => throw new InvalidOperationException("read again");
        pc.OnEvent(Snapshot(8, localV: 1, remoteV: 0, kind: "icecandidate"));
        Assert.Equal(OfferV2, pc.LocalDescription?.Sdp);
        Assert.Equal(1, _module.CountOf("description"));
    }

    [Fact]
    public async Task ADescriptionReadNewerThanTheSnapshot_StandsUntilALaterVersionIsReported()
    {
        var pc = await CreateAsync();

        // The operation's snapshot says version 1; by the time .NET reads, a candidate was gathered (version 2).
        _module.Operation = _ => Snapshot(1, localV: 1, remoteV: 0);
        _module.Description = side => Description(2, "offer", OfferV2);
        await pc.SetLocalDescriptionAsync();
        Assert.Equal(OfferV2, pc.LocalDescription?.Sdp);

        pc.OnEvent(Snapshot(2, localV: 2, remoteV: 0, kind: "icecandidate"));
        Assert.Equal(OfferV2, pc.LocalDescription?.Sdp);
        Assert.Equal(1, _module.CountOf("description"));
    }

    [Fact]
    public async Task AnOperationOnALinkTheBrowserClosed_FailsWithInvalidState_AndTheLastDescriptionsStand()
    {
        var pc = await CreateAsync();
        _module.Description = side => side == "local" ? Description(1, "answer", OfferV1) : Description(1, "offer", OfferV2);
        pc.OnEvent(Snapshot(1, localV: 1, remoteV: 1, kind: "signalingstatechange"));
        Assert.Equal(SdpType.Answer, pc.LocalDescription?.Type);
        Assert.Equal(SdpType.Offer, pc.RemoteDescription?.Type);

        // The module's snapshot of a link it no longer has: no versions, and an error.
        _module.Operation = _ => """{"seq":2,"signalingState":"closed","connectionState":"closed","iceGatheringState":"complete","error":{"kind":"InvalidState","name":"InvalidStateError","message":"The peer connection is closed."}}""";
        var error = await Assert.ThrowsAsync<PeerConnectionException>(() => pc.SetLocalDescriptionAsync().AsTask());
        Assert.Equal(PeerConnectionErrorKind.InvalidState, error.Kind);

        Assert.Equal(SdpType.Answer, pc.LocalDescription?.Type);
        Assert.Equal(OfferV2, pc.RemoteDescription?.Sdp);
        Assert.Equal(2, _module.CountOf("description"));
    }

    [Fact]
    public async Task AfterClose_TheLastDescriptionsReadStand_WithoutAskingTheBrowser()
    {
        var pc = await CreateAsync();
        _module.Description = side => Description(1, "offer", OfferV1);
        pc.OnEvent(Snapshot(1, localV: 1, remoteV: 0, kind: "signalingstatechange"));
        pc.OnEvent(Snapshot(2, localV: 2, remoteV: 0, kind: "icecandidate")); // version 2 never read before the close

        pc.Close();
        Assert.Equal(PeerConnectionState.Closed, pc.ConnectionState);
        Assert.Null(pc.LocalDescription);
        Assert.Equal(0, _module.CountOf("description"));
    }

    [Fact]
    public async Task TheBrowserFailingToReadADescription_IsLogged_AndTheLastReadStands()
    {
        var pc = await CreateAsync();
        _module.Description = side => Description(1, "offer", OfferV1);
        pc.OnEvent(Snapshot(1, localV: 1, remoteV: 0, kind: "signalingstatechange"));
        Assert.Equal(OfferV1, pc.LocalDescription?.Sdp);

        _module.Description = side => throw new JSException("RTCPeerConnection is gone");
        pc.OnEvent(Snapshot(2, localV: 2, remoteV: 0, kind: "icecandidate"));
        Assert.Equal(OfferV1, pc.LocalDescription?.Sdp);

        _module.Description = side => "2 offer v=0";
        Assert.Equal(OfferV1, pc.LocalDescription?.Sdp);

        Assert.Equal([5006, 5006], _logs.Entries.Where(e => e.Level == LogLevel.Warning).Select(e => e.EventId.Id));

        _module.Description = side => Description(2, "offer", OfferV2);
        Assert.Equal(OfferV2, pc.LocalDescription?.Sdp);
    }

    [Fact]
    public async Task AMalformedEvent_IsLogged_AndChangesNothing()
    {
        var pc = await CreateAsync();
        _module.Description = side => Description(1, "offer", OfferV1);
        pc.OnEvent(Snapshot(1, localV: 1, remoteV: 0, kind: "signalingstatechange", signalingState: "have-local-offer"));

        pc.OnEvent("""{"seq":2,"localV":"seven""");
        pc.OnEvent("""{"seq":3,"kind":"icecandidate","localV":-4,"remoteV":1.5}""");

        Assert.Equal(PeerSignalingState.Closed, pc.SignalingState); // seq 3 had no signalingState: the module never sends that
        Assert.Equal(OfferV1, pc.LocalDescription?.Sdp); // no version in it (-4 is none): version 1 stands
        Assert.Equal(5001, Assert.Single(_logs.Entries, e => e.Level == LogLevel.Warning).EventId.Id);
    }

    private Task<BrowserPeerConnection> CreateAsync() => _module.CreateLinkAsync(_logs.CreateLogger("Talki.Signalling.Client.Browser"));

    private static string Snapshot(long seq, long localV, long remoteV, string? kind = null, string signalingState = "stable") =>
        $$"""{"seq":{{seq}},"signalingState":"{{signalingState}}","connectionState":"new","iceGatheringState":"gathering","localV":{{localV}},"remoteV":{{remoteV}}{{(kind is null ? "" : $",\"kind\":\"{kind}\"")}}}""";

    private static string Description(long v, string? type, string? sdp) => $"{v}\n{type}\n{sdp}";
}
