using System.Text.Json;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Server.Tests.Engine;

public sealed class RelayTests
{
    private const string Sdp = "v=0\\r\\no=- 1 2 IN IP4 127.0.0.1\\r\\ns=-\\r\\nt=0 0\\r\\n";

    [Fact]
    public async Task Offer_ReachesExactlyTheAddressedMember_WithSenderAndEpoch()
    {
        using var h = new EngineHarness();
        var (admin, adminConnection, members) = await h.RoomWithMembersAsync("bob", "cy");
        var (bob, bobConnection) = members[0];
        h.Push.Clear();

        await h.SendAsync(adminConnection, $$$"""{"type":"signal","id":"s1","to":"{{{bob.Member}}}","toEpoch":1,"description":{"type":"offer","sdp":"{{{Sdp}}}"}}""");

        var relayed = h.Push.Single<SignalRelayMessage>(bobConnection);
        Assert.Equal(admin.Member, relayed.From);
        Assert.Equal(1, relayed.FromEpoch);
        Assert.Equal(SdpType.Offer, relayed.Description!.Type);
        Assert.Equal("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n", relayed.Description.Sdp);
        Assert.Null(relayed.Candidates);
        Assert.Single(h.Push.All); // nobody else got anything, not even the sender
    }

    [Fact]
    public async Task AnswerAndCandidates_ReachTheAddressedMemberOnly()
    {
        using var h = new EngineHarness();
        var (admin, adminConnection, members) = await h.RoomWithMembersAsync("bob", "cy");
        var (_, bobConnection) = members[0];
        var (_, cyConnection) = members[1];
        h.Push.Clear();

        await h.SendAsync(bobConnection, $$$"""{"type":"signal","to":"{{{admin.Member}}}","description":{"type":"answer","sdp":"v=0"},"candidates":[{"candidate":"candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"abcd"},{"candidate":""}]}""");

        var relayed = h.Push.Single<SignalRelayMessage>(adminConnection);
        Assert.Equal(SdpType.Answer, relayed.Description!.Type);
        Assert.Equal(2, relayed.Candidates!.Count);
        Assert.Equal("0", relayed.Candidates[0].SdpMid);
        Assert.Equal("abcd", relayed.Candidates[0].UsernameFragment);
        Assert.Empty(h.Push.To(cyConnection));
        Assert.Empty(h.Push.To(bobConnection));
    }

    [Fact]
    public async Task RelayedFrame_IsValidJsonOfTheContract()
    {
        using var h = new EngineHarness();
        var (admin, adminConnection, members) = await h.RoomWithMembersAsync("bob");
        h.Push.Clear();
        await h.SendAsync(adminConnection, $$$"""{ "type" : "signal", "to" : "{{{members[0].Grant.Member}}}", "candidates" : [ { "candidate" : "c\u00e9", "sdpMLineIndex" : null } ] }""");
        var raw = Assert.Single(h.Push.All).Json;
        using var document = JsonDocument.Parse(raw);
        Assert.Equal("signal", document.RootElement.GetProperty("type").GetString());
        Assert.Equal(admin.Member.Value, document.RootElement.GetProperty("from").GetString());
        Assert.Equal("cé", document.RootElement.GetProperty("candidates")[0].GetProperty("candidate").GetString());
    }

    [Fact]
    public async Task Signal_ToStaleEpoch_IsDroppedWithError()
    {
        using var h = new EngineHarness();
        var (_, adminConnection, members) = await h.RoomWithMembersAsync("bob");
        var (bob, bobConnection) = members[0];
        h.Push.Clear();

        await h.SendAsync(adminConnection, $$$"""{"type":"signal","id":"old","to":"{{{bob.Member}}}","toEpoch":0,"candidates":[{"candidate":"x"}]}""");

        Assert.Empty(h.Push.To(bobConnection));
        var error = h.Push.LastError(adminConnection);
        Assert.Equal(SignallingErrorCode.StaleEpoch, error.Code);
        Assert.Equal("old", error.Id);
    }

    [Fact]
    public async Task Signal_ToMemberOfAnotherRoom_MemberNotFound()
    {
        using var h = new EngineHarness();
        var (_, adminA, _) = await h.RoomWithMembersAsync("bob");
        var (_, _, roomB) = await h.RoomWithMembersAsync("eve");
        var (eve, eveConnection) = roomB[0];
        h.Push.Clear();

        await h.SendAsync(adminA, $$$"""{"type":"signal","to":"{{{eve.Member}}}","description":{"type":"offer","sdp":"v=0"}}""");

        Assert.Equal(SignallingErrorCode.MemberNotFound, h.Push.LastError(adminA).Code);
        Assert.Empty(h.Push.To(eveConnection));
    }

    [Fact]
    public async Task Signal_FromPendingMember_NotAdmitted()
    {
        using var h = new EngineHarness();
        var (admin, adminConnection, bob, bobConnection) = await h.RoomWithPendingMemberAsync();
        h.Push.Clear();

        await h.SendAsync(bobConnection, $$$"""{"type":"signal","to":"{{{admin.Member}}}","description":{"type":"offer","sdp":"v=0"}}""");

        Assert.Equal(SignallingErrorCode.NotAdmitted, h.Push.LastError(bobConnection).Code);
        Assert.Empty(h.Push.To(adminConnection));
    }

    [Fact]
    public async Task Signal_ToPendingMember_PeerUnavailable()
    {
        using var h = new EngineHarness();
        var (admin, adminConnection, bob, bobConnection) = await h.RoomWithPendingMemberAsync();
        h.Push.Clear();

        await h.SendAsync(adminConnection, $$$"""{"type":"signal","to":"{{{bob.Member}}}","description":{"type":"offer","sdp":"v=0"}}""");

        Assert.Equal(SignallingErrorCode.PeerUnavailable, h.Push.LastError(adminConnection).Code);
        Assert.Empty(h.Push.To(bobConnection));
    }

    [Fact]
    public async Task Signal_BeforeHello_NotReady()
    {
        using var h = new EngineHarness();
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var connection = await h.ConnectAsync(admin, hello: false);
        await h.SendAsync(connection, $$$"""{"type":"signal","to":"{{{MemberId.New()}}}","candidates":[{"candidate":"x"}]}""");
        Assert.Equal(SignallingErrorCode.NotReady, h.Push.LastError(connection).Code);
    }

    [Fact]
    public async Task Signal_ToSelf_MemberNotFound()
    {
        using var h = new EngineHarness();
        var (admin, adminConnection, _) = await h.RoomWithMembersAsync("bob");
        await h.SendAsync(adminConnection, $$$"""{"type":"signal","to":"{{{admin.Member}}}","candidates":[{"candidate":"x"}]}""");
        Assert.Equal(SignallingErrorCode.MemberNotFound, h.Push.LastError(adminConnection).Code);
    }

    [Fact]
    public async Task Signal_TargetGone_IsQueuedForItsResume_AndAfterTheGracePeriodItIsPrunedAndTheRoomTold()
    {
        using var h = new EngineHarness();
        var (_, adminConnection, members) = await h.RoomWithMembersAsync("bob", "cy");
        var (bob, bobConnection) = members[0];
        var (_, cyConnection) = members[1];
        h.Push.Gone[bobConnection] = true;
        h.Push.Clear();

        // The gateway says bob's socket is gone: that starts bob's grace period; the signal waits for its resume.
        await h.SendAsync(adminConnection, $$$"""{"type":"signal","to":"{{{bob.Member}}}","candidates":[{"candidate":"x"}]}""");
        Assert.Empty(h.Push.To<ErrorMessage>(adminConnection));
        Assert.Empty(h.Push.To<PeerLeftMessage>(cyConnection));

        h.Time.Advance(TimeSpan.FromSeconds(20));
        await AdmissionAndMeshTests.WaitUntil(() => h.Push.To<PeerLeftMessage>(cyConnection).Count == 1);
        Assert.Equal(bob.Member, h.Push.Single<PeerLeftMessage>(cyConnection).Member);
        await h.SendAsync(adminConnection, $$$"""{"type":"signal","to":"{{{bob.Member}}}","candidates":[{"candidate":"x"}]}""");
        Assert.Equal(SignallingErrorCode.PeerUnavailable, h.Push.LastError(adminConnection).Code);
    }

    [Fact]
    public async Task Signal_TargetGone_WithoutAGracePeriod_PrunedAndSenderToldAtOnce()
    {
        using var h = new EngineHarness(o => o.ResumeGracePeriod = TimeSpan.Zero);
        var (_, adminConnection, members) = await h.RoomWithMembersAsync("bob", "cy");
        var (bob, bobConnection) = members[0];
        var (_, cyConnection) = members[1];
        h.Push.Gone[bobConnection] = true;
        h.Push.Clear();

        await h.SendAsync(adminConnection, $$$"""{"type":"signal","to":"{{{bob.Member}}}","candidates":[{"candidate":"x"}]}""");

        Assert.Equal(SignallingErrorCode.PeerUnavailable, h.Push.LastError(adminConnection).Code);
        Assert.Equal(bob.Member, h.Push.Single<PeerLeftMessage>(cyConnection).Member);
    }

    [Fact]
    public async Task Signal_TargetUndeliverable_SenderToldDeliveryFailed_TargetStaysAndLaterSignalsArrive()
    {
        using var h = new EngineHarness();
        var (_, adminConnection, members) = await h.RoomWithMembersAsync("bob", "cy");
        var (bob, bobConnection) = members[0];
        var (_, cyConnection) = members[1];
        h.Push.Undeliverable[bobConnection] = true; // throttled past the retries: not a departure
        h.Push.Clear();

        await h.SendAsync(adminConnection, $$$"""{"type":"signal","id":"s1","to":"{{{bob.Member}}}","candidates":[{"candidate":"x"}]}""");

        var error = h.Push.LastError(adminConnection);
        Assert.Equal((SignallingErrorCode.DeliveryFailed, "s1"), (error.Code, error.Id));
        Assert.Empty(h.Push.To<PeerLeftMessage>(cyConnection));
        Assert.False(h.Push.WasClosed(bobConnection));

        h.Push.Undeliverable.Clear();
        await h.SendAsync(adminConnection, $$$"""{"type":"signal","to":"{{{bob.Member}}}","candidates":[{"candidate":"y"}]}""");
        Assert.Single(h.Push.To<SignalRelayMessage>(bobConnection));
    }

    [Fact]
    public async Task Signal_FromSupersededConnection_StaleEpochAndClosed()
    {
        using var h = new EngineHarness();
        var adminUser = EngineHarness.User("ada");
        var (admin, adminConnection, members) = await h.RoomWithMembersAsync("bob");
        var grant = await h.Engine.CreateRoomAsync(adminUser); // unrelated room, keeps the user busy
        Assert.True(grant.IsSuccess);
        var store = Microsoft.Extensions.DependencyInjection.ServiceProviderServiceExtensions.GetRequiredService<Ports.IRoomStore>(h.Services);
        var bobRecord = await store.GetMemberAsync(admin.Room, members[0].Grant.Member);
        var again = await h.JoinAsync(new CallerIdentity(bobRecord!.UserId, "bob", false), admin.Room);
        var second = await h.ConnectAsync(again);
        h.Push.Clear();

        await h.SendAsync(members[0].Connection, $$$"""{"type":"signal","to":"{{{admin.Member}}}","candidates":[{"candidate":"x"}]}""");

        Assert.Equal(SignallingErrorCode.StaleEpoch, h.Push.LastError(members[0].Connection).Code);
        Assert.Empty(h.Push.To(adminConnection));
        Assert.NotEqual(second, members[0].Connection);
    }

    [Fact]
    public async Task NoPushedMessage_EverContainsAConnectionId()
    {
        using var h = new EngineHarness();
        var (admin, adminConnection, members) = await h.RoomWithMembersAsync("bob", "cy");
        await h.SendAsync(adminConnection, $$$"""{"type":"signal","to":"{{{members[0].Grant.Member}}}","description":{"type":"offer","sdp":"v=0"}}""");
        await h.SendAsync(members[1].Connection, """{"type":"leave"}""");
        await h.SendAsync(adminConnection, """{"type":"bogus"}""");
        var dan = await h.JoinAsync(EngineHarness.User("dan"), admin.Room);
        var danConnection = await h.ConnectAsync(dan);
        await h.SendAsync(adminConnection, $$$"""{"type":"deny","member":"{{{dan.Member}}}"}""");
        h.Time.Advance(TimeSpan.FromMinutes(5));
        await AdmissionAndMeshTests.WaitUntil(() => h.Push.WasClosed(adminConnection));

        var connectionIds = new[] { adminConnection, danConnection }.Concat(members.Select(m => m.Connection)).ToArray();
        Assert.NotEmpty(h.Push.All);
        foreach (var (_, json) in h.Push.All)
        {
            foreach (var id in connectionIds)
            {
                Assert.DoesNotContain(id, json, StringComparison.Ordinal);
                Assert.DoesNotContain(id.TrimEnd('='), json, StringComparison.Ordinal);
            }
        }
    }
}
