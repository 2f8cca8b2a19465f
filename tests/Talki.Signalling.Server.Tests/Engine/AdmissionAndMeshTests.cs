using Microsoft.Extensions.DependencyInjection;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Server.Tests.Engine;

public sealed class AdmissionAndMeshTests
{
    [Fact]
    public async Task Hello_Admin_GetsWelcomeWithRoomAndIceServers()
    {
        using var h = new EngineHarness(o => o.IceServers.Add(new IceServer { Urls = ["stun:127.0.0.1:3478"] }));
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada", verified: true));
        var connection = await h.ConnectAsync(admin);

        var welcome = h.Push.Single<WelcomeMessage>(connection);
        Assert.Equal(1, welcome.ProtocolVersion); // the version the member said hello with
        Assert.Equal(admin.Member, welcome.You.Id);
        Assert.True(welcome.You.Admin);
        Assert.True(welcome.You.Verified);
        Assert.Equal(AdmissionStatus.Admitted, welcome.Status);
        Assert.Equal(admin.Room, welcome.Room.Id);
        Assert.Equal(admin.SealsAt, welcome.Room.SealsAt);
        Assert.Empty(welcome.Members);
        Assert.Equal("stun:127.0.0.1:3478", Assert.Single(Assert.Single(welcome.IceServers).Urls));
        Assert.Equal(600, welcome.IdleTimeoutSeconds); // the gateway's idle limit: the client pings within it
    }

    [Fact]
    public async Task Hello_TheWelcomeCarriesTheConfiguredIdleTimeout_InWholeSeconds()
    {
        using var h = new EngineHarness(o => o.Hosting.IdleTimeout = TimeSpan.FromSeconds(90.7));
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var connection = await h.ConnectAsync(admin);

        Assert.Equal(90, h.Push.Single<WelcomeMessage>(connection).IdleTimeoutSeconds); // rounded down: a client pings early, never late
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(ProtocolVersion.Current + 1)]
    [InlineData(int.MaxValue)]
    public async Task Hello_UnsupportedVersion_ErrorAndNoWelcome(int version)
    {
        using var h = new EngineHarness();
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var connection = await h.ConnectAsync(admin, hello: false);
        await h.SendAsync(connection, $$"""{"type":"hello","version":{{version}},"id":"h"}""");
        var error = h.Push.LastError(connection);
        Assert.Equal(SignallingErrorCode.UnsupportedVersion, error.Code);
        Assert.Equal("h", error.Id);
        Assert.Empty(h.Push.To<WelcomeMessage>(connection));
    }

    [Fact]
    public async Task Hello_Twice_ResendsWelcomeOnly()
    {
        using var h = new EngineHarness();
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var connection = await h.ConnectAsync(admin);
        await h.SendAsync(connection, """{"type":"hello"}""");
        Assert.Equal(2, h.Push.To<WelcomeMessage>(connection).Count);
    }

    [Fact]
    public async Task Newcomer_IsPending_AndAdminIsAsked()
    {
        using var h = new EngineHarness();
        var (admin, adminConnection, bob, bobConnection) = await h.RoomWithPendingMemberAsync();

        Assert.Equal(AdmissionStatus.Pending, h.Push.Single<WelcomeMessage>(bobConnection).Status);

        // Asked at the knock (not connected yet), and again, online, when the newcomer says hello (clients key requests by member).
        var requests = h.Push.To<AdmissionRequestMessage>(adminConnection);
        Assert.Equal(2, requests.Count);
        Assert.All(requests, r => Assert.Equal(bob.Member, r.Member.Id));
        Assert.Equal([false, true], requests.Select(r => r.Member.Online));
        var request = requests[^1];
        Assert.Equal("bob", request.Member.DisplayName);
        Assert.Empty(h.Push.To<ConnectToPeerMessage>(adminConnection));
    }

    [Fact]
    public async Task Admit_TellsBothAndPlansTheLinkWithRolesAndEpochs()
    {
        using var h = new EngineHarness();
        var (admin, adminConnection, bob, bobConnection) = await h.RoomWithPendingMemberAsync();

        await h.SendAsync(adminConnection, $$$"""{"type":"admit","member":"{{{bob.Member}}}"}""");

        Assert.Equal(bob.Member, h.Push.Single<AdmittedMessage>(bobConnection).Member.Id);
        Assert.Equal(bob.Member, h.Push.Single<AdmittedMessage>(adminConnection).Member.Id);
        var toAdmin = h.Push.Single<ConnectToPeerMessage>(adminConnection);
        var toBob = h.Push.Single<ConnectToPeerMessage>(bobConnection);
        Assert.Equal(bob.Member, toAdmin.Peer.Id);
        Assert.Equal(1, toAdmin.PeerEpoch);
        Assert.True(toAdmin.Offerer);
        Assert.False(toAdmin.Polite);
        Assert.Equal(admin.Member, toBob.Peer.Id);
        Assert.Equal(1, toBob.PeerEpoch);
        Assert.False(toBob.Offerer);
        Assert.True(toBob.Polite);
    }

    [Fact]
    public async Task Mesh_ThirdMember_ExistingMembersConnectToNewcomer()
    {
        using var h = new EngineHarness();
        var (admin, adminConnection, members) = await h.RoomWithMembersAsync("bob", "cy");
        var (bob, bobConnection) = members[0];
        var (cy, cyConnection) = members[1];

        var toCy = h.Push.To<ConnectToPeerMessage>(cyConnection);
        Assert.Equal(2, toCy.Count);
        Assert.Equal(new[] { admin.Member.Value, bob.Member.Value }.Order(), toCy.Select(m => m.Peer.Id.Value).Order());
        Assert.All(toCy, m => Assert.False(m.Offerer));
        Assert.Contains(h.Push.To<ConnectToPeerMessage>(bobConnection), m => m.Peer.Id == cy.Member && m.Offerer);
        Assert.Contains(h.Push.To<ConnectToPeerMessage>(adminConnection), m => m.Peer.Id == cy.Member && m.Offerer);
        // Every pair is planned exactly once on each side: 3 members, 3 links.
        var links = new[] { adminConnection, bobConnection, cyConnection }.Sum(c => h.Push.To<ConnectToPeerMessage>(c).Count);
        Assert.Equal(6, links);
    }

    [Fact]
    public async Task Admit_MemberNotYetHello_PlansWhenItSaysHello()
    {
        using var h = new EngineHarness();
        var (admin, adminConnection, bob, bobConnection) = await h.RoomWithPendingMemberAsync();
        await h.SendAsync(adminConnection, $$$"""{"type":"admit","member":"{{{bob.Member}}}"}""");
        Assert.Single(h.Push.To<ConnectToPeerMessage>(adminConnection));

        // An admitted member that connects later (not ready yet) is planned on hello.
        var cy = await h.JoinAsync(EngineHarness.User("cy"), admin.Room);
        var cyConnection = await h.ConnectAsync(cy, hello: false);
        await h.SendAsync(adminConnection, $$$"""{"type":"admit","member":"{{{cy.Member}}}"}""");
        Assert.Empty(h.Push.To<ConnectToPeerMessage>(cyConnection));
        await h.SendAsync(cyConnection, """{"type":"hello"}""");
        Assert.Equal(2, h.Push.To<ConnectToPeerMessage>(cyConnection).Count);
    }

    [Fact]
    public async Task Deny_TellsMemberClosesItsSocket_AndRemembers()
    {
        using var h = new EngineHarness();
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var adminConnection = await h.ConnectAsync(admin);
        var dan = EngineHarness.User("dan");
        var grant = await h.JoinAsync(dan, admin.Room);
        var danConnection = await h.ConnectAsync(grant);

        await h.SendAsync(adminConnection, $$$"""{"type":"deny","member":"{{{grant.Member}}}"}""");

        Assert.Equal(grant.Member, h.Push.Single<DeniedMessage>(danConnection).Member.Id);
        Assert.Equal(grant.Member, h.Push.Single<DeniedMessage>(adminConnection).Member.Id);
        Assert.True(h.Push.WasClosed(danConnection));
        Assert.Empty(h.Push.To<ConnectToPeerMessage>(adminConnection));
        var again = await h.Engine.IssueJoinTicketAsync(dan, admin.Room);
        Assert.Equal(SignallingErrorCode.Denied, again.Error?.Code);
    }

    [Fact]
    public async Task Deny_TicketIssuedBeforeDenial_IsRefusedOnConnect()
    {
        using var h = new EngineHarness();
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var adminConnection = await h.ConnectAsync(admin);
        var dan = EngineHarness.User("dan");
        var first = await h.JoinAsync(dan, admin.Room);
        var spare = await h.JoinAsync(dan, admin.Room);
        await h.ConnectAsync(first);
        await h.SendAsync(adminConnection, $$$"""{"type":"deny","member":"{{{first.Member}}}"}""");

        var result = await h.Engine.ConnectAsync("late", spare.Ticket.Value);
        Assert.Equal(SignallingErrorCode.Denied, result.Error?.Code);
    }

    [Fact]
    public async Task Admit_ByNonAdmin_NotAdmin()
    {
        using var h = new EngineHarness();
        var (admin, _, members) = await h.RoomWithMembersAsync("bob");
        var cy = await h.JoinAsync(EngineHarness.User("cy"), admin.Room);
        await h.ConnectAsync(cy);

        await h.SendAsync(members[0].Connection, $$$"""{"type":"admit","member":"{{{cy.Member}}}","id":"x1"}""");
        var error = h.Push.LastError(members[0].Connection);
        Assert.Equal(SignallingErrorCode.NotAdmin, error.Code);
        Assert.Equal("x1", error.Id);
    }

    [Fact]
    public async Task Admit_UnknownMember_MemberNotFound()
    {
        using var h = new EngineHarness();
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var connection = await h.ConnectAsync(admin);
        await h.SendAsync(connection, $$$"""{"type":"admit","member":"{{{MemberId.New()}}}"}""");
        Assert.Equal(SignallingErrorCode.MemberNotFound, h.Push.LastError(connection).Code);
    }

    [Fact]
    public async Task Admit_DeniedMember_MemberNotPending()
    {
        using var h = new EngineHarness();
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var connection = await h.ConnectAsync(admin);
        var dan = await h.JoinAsync(EngineHarness.User("dan"), admin.Room);
        await h.SendAsync(connection, $$$"""{"type":"deny","member":"{{{dan.Member}}}"}""");
        await h.SendAsync(connection, $$$"""{"type":"admit","member":"{{{dan.Member}}}"}""");
        Assert.Equal(SignallingErrorCode.MemberNotPending, h.Push.LastError(connection).Code);
    }

    [Fact]
    public async Task Deny_Self_MemberNotPending()
    {
        using var h = new EngineHarness();
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var connection = await h.ConnectAsync(admin);
        await h.SendAsync(connection, $$$"""{"type":"deny","member":"{{{admin.Member}}}"}""");
        Assert.Equal(SignallingErrorCode.MemberNotPending, h.Push.LastError(connection).Code);
    }

    [Fact]
    public async Task Admit_Twice_IsHarmless()
    {
        using var h = new EngineHarness();
        var (admin, adminConnection, members) = await h.RoomWithMembersAsync("bob");
        await h.SendAsync(adminConnection, $$$"""{"type":"admit","member":"{{{members[0].Grant.Member}}}"}""");
        Assert.Empty(h.Push.To<ErrorMessage>(adminConnection));
        Assert.Single(h.Push.To<ConnectToPeerMessage>(adminConnection));
    }

    [Fact]
    public async Task Admit_BeforeHello_NotReady()
    {
        using var h = new EngineHarness();
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var connection = await h.ConnectAsync(admin, hello: false);
        await h.SendAsync(connection, $$$"""{"type":"admit","member":"{{{MemberId.New()}}}"}""");
        Assert.Equal(SignallingErrorCode.NotReady, h.Push.LastError(connection).Code);
    }

    [Fact]
    public async Task PendingRequests_AreResentWhenAdminReconnects()
    {
        using var h = new EngineHarness();
        var adminUser = EngineHarness.User("ada");
        var admin = await h.CreateRoomAsync(adminUser);
        var bob = await h.JoinAsync(EngineHarness.User("bob"), admin.Room);
        await h.ConnectAsync(bob); // the admin is not connected yet

        var adminConnection = await h.ConnectAsync(admin);
        Assert.Equal(bob.Member, h.Push.Single<AdmissionRequestMessage>(adminConnection).Member.Id);

        var refreshed = await h.JoinAsync(adminUser, admin.Room);
        Assert.True(refreshed.IsAdmin);
        var adminConnection2 = await h.ConnectAsync(refreshed);
        Assert.Equal(bob.Member, h.Push.Single<AdmissionRequestMessage>(adminConnection2).Member.Id);
    }

    [Fact]
    public async Task Refresh_ApprovedMember_RejoinsWithoutAsking_WithNewEpoch()
    {
        using var h = new EngineHarness();
        var (admin, adminConnection, members) = await h.RoomWithMembersAsync("bob");
        var (bob, bobConnection) = members[0];
        var bobUser = new CallerIdentity(
            (await h.Services.GetService<Ports.IRoomStore>()!.GetMemberAsync(admin.Room, bob.Member))!.UserId, "bob", false);

        var again = await h.JoinAsync(bobUser, admin.Room);
        Assert.Equal(bob.Member, again.Member);
        h.Push.Clear();
        var bobConnection2 = await h.ConnectAsync(again);

        Assert.True(h.Push.WasClosed(bobConnection));
        Assert.Equal(AdmissionStatus.Admitted, h.Push.Single<WelcomeMessage>(bobConnection2).Status);
        Assert.Empty(h.Push.To<AdmissionRequestMessage>(adminConnection));
        var left = h.Push.Single<PeerLeftMessage>(adminConnection);
        Assert.Equal((bob.Member, 1L), (left.Member, left.Epoch));
        var plan = h.Push.Single<ConnectToPeerMessage>(adminConnection);
        Assert.Equal((bob.Member, 2L), (plan.Peer.Id, plan.PeerEpoch));
    }

    [Fact]
    public async Task Leave_TellsOthersAndClosesSocket()
    {
        using var h = new EngineHarness();
        var (_, adminConnection, members) = await h.RoomWithMembersAsync("bob");
        await h.SendAsync(members[0].Connection, """{"type":"leave"}""");
        Assert.True(h.Push.WasClosed(members[0].Connection));
        Assert.Equal(members[0].Grant.Member, h.Push.Single<PeerLeftMessage>(adminConnection).Member);
    }

    [Fact]
    public async Task Disconnect_TellsOthers_OnceOnly_WhenTheGracePeriodEnds()
    {
        using var h = new EngineHarness();
        var (_, adminConnection, members) = await h.RoomWithMembersAsync("bob");
        await h.Engine.DisconnectAsync(members[0].Connection);
        await h.Engine.DisconnectAsync(members[0].Connection);
        h.Time.Advance(TimeSpan.FromSeconds(19));
        Assert.Empty(h.Push.To<PeerLeftMessage>(adminConnection));
        h.Time.Advance(TimeSpan.FromSeconds(1));
        await WaitUntil(() => h.Push.To<PeerLeftMessage>(adminConnection).Count > 0);
        h.Time.Advance(TimeSpan.FromMinutes(1));
        Assert.Single(h.Push.To<PeerLeftMessage>(adminConnection));
    }

    [Fact]
    public async Task Disconnect_PendingMember_AdminIsToldWhenTheGracePeriodEnds()
    {
        using var h = new EngineHarness();
        var (admin, adminConnection, bob, bobConnection) = await h.RoomWithPendingMemberAsync();
        await h.Engine.DisconnectAsync(bobConnection);
        Assert.Empty(h.Push.To<PeerLeftMessage>(adminConnection));
        h.Time.Advance(TimeSpan.FromSeconds(20));
        await WaitUntil(() => h.Push.To<PeerLeftMessage>(adminConnection).Count > 0);
        Assert.Equal(bob.Member, h.Push.Single<PeerLeftMessage>(adminConnection).Member);
    }

    [Fact]
    public async Task Leave_IsADepartureAtOnce_NoGracePeriod()
    {
        using var h = new EngineHarness();
        var (_, adminConnection, members) = await h.RoomWithMembersAsync("bob");
        await h.SendAsync(members[0].Connection, """{"type":"leave"}""");
        Assert.Equal(members[0].Grant.Member, h.Push.Single<PeerLeftMessage>(adminConnection).Member);
    }

    [Fact]
    public async Task Seal_AtWindowEnd_TellsMembersAndClosesSockets()
    {
        using var h = new EngineHarness();
        var (admin, adminConnection, members) = await h.RoomWithMembersAsync("bob");
        h.Time.Advance(TimeSpan.FromMinutes(5));
        await WaitUntil(() => h.Push.WasClosed(adminConnection) && h.Push.WasClosed(members[0].Connection));
        Assert.Equal(admin.Room, h.Push.Single<RoomSealedMessage>(adminConnection).Room);
        Assert.Single(h.Push.To<RoomSealedMessage>(members[0].Connection));
    }

    [Fact]
    public async Task Message_AfterSeal_RoomSealedAndClosed()
    {
        using var h = new EngineHarness(o => o.SealRoomsOnTimer = false);
        var (_, adminConnection, _) = await h.RoomWithMembersAsync("bob");
        h.Time.Advance(TimeSpan.FromMinutes(5));
        await h.SendAsync(adminConnection, """{"type":"ping"}""");
        Assert.Single(h.Push.To<RoomSealedMessage>(adminConnection));
        Assert.True(h.Push.WasClosed(adminConnection));
    }

    [Fact]
    public async Task Disconnect_AfterSeal_NobodyIsTold()
    {
        using var h = new EngineHarness(o => o.SealRoomsOnTimer = false);
        var (_, adminConnection, members) = await h.RoomWithMembersAsync("bob");
        h.Time.Advance(TimeSpan.FromMinutes(5));
        await h.Engine.DisconnectAsync(members[0].Connection);
        Assert.Empty(h.Push.To<PeerLeftMessage>(adminConnection));
    }

    internal static async Task WaitUntil(Func<bool> condition)
    {
        for (var i = 0; i < 200 && !condition(); i++)
        {
            await Task.Delay(10);
        }

        Assert.True(condition());
    }
}
