using Microsoft.Extensions.Logging;
using Talki.Signalling.Client.Browser.Tests.Support;
using Talki.Signalling.Client.Negotiation;
using Talki.Signalling.Testing;

namespace Talki.Signalling.Client.Browser.Tests;

/// <summary>
/// In the browser the module hands every event of a link to .NET by the link's id (<see cref="PeerEvents"/>): it must reach
/// that link and no other, and nothing once the link is disposed.
/// </summary>
public sealed class PeerEventsTests
{
    private readonly FakeWebRtcModule _module = new();
    private readonly RecordingLoggerProvider _logs = new();

    [Fact]
    public async Task AnEventDeliveredByItsLinksId_ReachesThatLinkOnly()
    {
        var first = await CreateAsync();
        var second = await CreateAsync();
        var raised = new List<PeerSignalingState>();
        first.SignalingStateChanged += (_, state) => raised.Add(state);
        second.SignalingStateChanged += (_, state) => raised.Add(PeerSignalingState.Closed);

        Assert.True(PeerEvents.Deliver(first.Id, Event(1, "have-local-offer", "signalingstatechange")));

        Assert.Equal([PeerSignalingState.HaveLocalOffer], raised);
        Assert.Equal(PeerSignalingState.HaveLocalOffer, first.SignalingState);
        Assert.Equal(PeerSignalingState.Stable, second.SignalingState);
    }

    [Fact]
    public async Task AnEventForADisposedLink_IsDropped_AndTheOtherLinksStillGetTheirs()
    {
        var disposed = await CreateAsync();
        var live = await CreateAsync();
        var raised = 0;
        disposed.SignalingStateChanged += (_, _) => raised++;
        disposed.Dispose();

        Assert.False(PeerEvents.Deliver(disposed.Id, Event(1, "have-local-offer", "signalingstatechange")));
        Assert.Equal(0, raised);
        Assert.True(PeerEvents.Deliver(live.Id, Event(1, "have-local-offer", "signalingstatechange")));
        Assert.Equal(PeerSignalingState.HaveLocalOffer, live.SignalingState);
    }

    [Fact]
    public void AnEventForAnIdNeverHandedOut_IsDropped()
    {
        Assert.False(PeerEvents.Deliver(-7, Event(1, "stable", "signalingstatechange")));
    }

    [Fact]
    public async Task AMalformedEvent_IsLoggedByItsLink_AndTheLinkStillTakesTheNextOne()
    {
        var pc = await CreateAsync();

        Assert.True(PeerEvents.Deliver(pc.Id, "{\"seq\":"));
        Assert.True(PeerEvents.Deliver(pc.Id, Event(2, "have-local-offer", "signalingstatechange")));

        Assert.Equal(5001, Assert.Single(_logs.Entries, e => e.Level == LogLevel.Warning).EventId.Id);
        Assert.Equal(PeerSignalingState.HaveLocalOffer, pc.SignalingState);
    }

    [Fact]
    public async Task ALinkDisposedAfterItsIdWasTakenOver_LeavesTheNewOwnerRouted()
    {
        var old = await CreateAsync();
        var owner = await CreateAsync();
        PeerEvents.Register(old.Id, owner); // the table names the newer link for that id

        old.Dispose();

        Assert.True(PeerEvents.Deliver(old.Id, Event(1, "have-local-offer", "signalingstatechange")));
        Assert.Equal(PeerSignalingState.HaveLocalOffer, owner.SignalingState);
        PeerEvents.Unregister(old.Id, owner);
    }

    private static string Event(long seq, string signalingState, string kind) =>
        $$"""{"seq":{{seq}},"signalingState":"{{signalingState}}","connectionState":"new","iceGatheringState":"new","localV":0,"remoteV":0,"kind":"{{kind}}"}""";

    private Task<BrowserPeerConnection> CreateAsync() => _module.CreateLinkAsync(_logs.CreateLogger("Talki.Signalling.Client.Browser"));
}
