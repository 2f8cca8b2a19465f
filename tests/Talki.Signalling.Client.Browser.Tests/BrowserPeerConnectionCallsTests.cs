using Microsoft.Extensions.Logging;
using Microsoft.JSInterop;
using Talki.Signalling.Client.Browser.Tests.Support;
using Talki.Signalling.Client.Negotiation;
using Talki.Signalling.Testing;

namespace Talki.Signalling.Client.Browser.Tests;

/// <summary>
/// A link's own calls into the module (create, data channel, ICE restart, close) go through <see cref="IPeerCalls"/>: bound
/// with <c>[JSImport]</c> in the browser, through Blazor's interop here. Outside the browser runtime the link hands the
/// module a reference for its events, and only there.
/// </summary>
public sealed class BrowserPeerConnectionCallsTests
{
    private readonly FakeWebRtcModule _module = new();
    private readonly RecordingLoggerProvider _logs = new();

    [Fact]
    public async Task ALinkOutsideTheBrowserRuntime_HandsTheModuleAReferenceToItself_AndDisposesItWithTheLink()
    {
        var pc = await CreateAsync();

        var arguments = _module.Arguments[_module.Calls.ToList().IndexOf("createPeer")];
        var reference = Assert.IsType<DotNetObjectReference<BrowserPeerConnection>>(arguments[0]);
        Assert.Same(pc, reference.Value);
        Assert.Equal("all", arguments[4]);

        pc.Dispose();

        Assert.Throws<ObjectDisposedException>(() => reference.Value);
    }

    [Fact]
    public async Task CreateDataChannel_PassesTheLinksIdAndLabel_AndAnOpenChannelIsReportedOpen()
    {
        var pc = await CreateAsync();
        _module.Sync = identifier => identifier == "createDataChannel" ? "open" : null;

        var channel = pc.CreateDataChannel("talki");

        Assert.Equal([pc.Id, "talki"], _module.Arguments[^1]);
        Assert.True(channel.IsOpen);
        Assert.Equal("talki", channel.Label);
    }

    [Fact]
    public async Task ACloseTheModuleThrowsOn_IsLogged_AndTheLinkIsClosedForGood()
    {
        var pc = await CreateAsync();
        _module.Sync = identifier => identifier == "close" ? throw new JSException("The page is going away.") : null;
        var raised = 0;
        pc.SignalingStateChanged += (_, _) => raised++;

        pc.Close();
        pc.Close();

        Assert.Equal(1, _module.CountOf("close"));
        Assert.Equal(5002, Assert.Single(_logs.Entries, e => e.EventId.Id == 5002).EventId.Id);
        Assert.Equal(PeerConnectionState.Closed, pc.ConnectionState);
        Assert.Equal(PeerSignalingState.Closed, pc.SignalingState);
        PeerEvents.Deliver(pc.Id, """{"seq":99,"signalingState":"have-local-offer","connectionState":"new","iceGatheringState":"new","localV":0,"remoteV":0,"kind":"signalingstatechange"}""");
        Assert.Equal(0, raised); // a late event of the closed link changes nothing
        Assert.Equal(PeerSignalingState.Closed, pc.SignalingState);
        var restart = Assert.Throws<PeerConnectionException>(pc.RestartIce);
        Assert.Equal(PeerConnectionErrorKind.InvalidState, restart.Kind);
        Assert.Equal(0, _module.CountOf("restartIce"));
    }

    [Fact]
    public async Task RestartIce_OnAnOpenLink_CallsTheModuleWithTheLinksId()
    {
        var pc = await CreateAsync();

        pc.RestartIce();

        Assert.Equal("restartIce", _module.Calls[^1]);
        Assert.Equal([pc.Id], _module.Arguments[^1]);
    }

    private Task<BrowserPeerConnection> CreateAsync() => _module.CreateLinkAsync(_logs.CreateLogger("Talki.Signalling.Client.Browser"));
}
