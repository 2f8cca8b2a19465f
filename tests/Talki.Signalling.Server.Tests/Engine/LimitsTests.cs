using Microsoft.Extensions.DependencyInjection;
using Talki.Signalling.Ports;

namespace Talki.Signalling.Server.Tests.Engine;

public sealed class LimitsTests
{
    [Fact]
    public async Task Join_WhenEightMembersAreAdmitted_RoomFull_ButKnownMembersMayRejoin()
    {
        using var h = new EngineHarness();
        var (admin, _, members) = await h.RoomWithMembersAsync("u1", "u2", "u3", "u4", "u5", "u6", "u7");
        Assert.Equal(8, (await h.Services.GetRequiredService<IRoomStore>().ListMembersAsync(admin.Room)).Count(m => m.Admission == AdmissionStatus.Admitted));

        var ninth = await h.Engine.IssueJoinTicketAsync(EngineHarness.User("late"), admin.Room);
        Assert.Equal(SignallingErrorCode.RoomFull, ninth.Error?.Code);
        var known = await h.Services.GetRequiredService<IRoomStore>().GetMemberAsync(admin.Room, members[0].Grant.Member);
        Assert.True((await h.Engine.IssueJoinTicketAsync(new CallerIdentity(known!.UserId, known.DisplayName, false), admin.Room)).IsSuccess);
    }

    [Fact]
    public async Task Join_KnocksTakeNoSeat_TheRoomIsFullOnlyWhenTheAdmittedFillIt()
    {
        using var h = new EngineHarness(o => o.Limits.MaxMembersPerRoom = 2);
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var adminConnection = await h.ConnectAsync(admin);
        var bob = await h.JoinAsync(EngineHarness.User("bob"), admin.Room);
        Assert.True((await h.Engine.IssueJoinTicketAsync(EngineHarness.User("cy"), admin.Room)).IsSuccess); // bob's knock is no seat
        await h.SendAsync(adminConnection, $$$"""{"type":"admit","member":"{{{bob.Member}}}"}""");
        Assert.Equal(SignallingErrorCode.RoomFull, (await h.Engine.IssueJoinTicketAsync(EngineHarness.User("dee"), admin.Room)).Error?.Code);
    }

    [Fact]
    public async Task CreateRoom_PastTheHourlyQuota_RoomQuotaExceeded_UntilTheWindowPasses()
    {
        using var h = new EngineHarness(o => o.Limits.RoomsPerSessionPerHour = 3);
        var ada = EngineHarness.User("ada");
        for (var i = 0; i < 3; i++)
        {
            Assert.True((await h.Engine.CreateRoomAsync(ada)).IsSuccess);
        }

        Assert.Equal(SignallingErrorCode.RoomQuotaExceeded, (await h.Engine.CreateRoomAsync(ada)).Error?.Code);
        Assert.True((await h.Engine.CreateRoomAsync(EngineHarness.User("bob"))).IsSuccess); // per user
        h.Time.Advance(TimeSpan.FromHours(1));
        Assert.True((await h.Engine.CreateRoomAsync(ada)).IsSuccess);
    }

    [Fact]
    public async Task Knocks_PastThePerMinuteRate_KnockRateLimited_AdmittedRejoinsAreNotKnocks()
    {
        using var h = new EngineHarness(o =>
        {
            o.Limits.KnocksPerUserPerMinute = 2;
            o.Limits.RoomsPerSessionPerHour = 100;
        });
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var bob = EngineHarness.User("bob");
        await h.JoinAsync(bob, admin.Room);
        await h.JoinAsync(bob, admin.Room);
        Assert.Equal(SignallingErrorCode.KnockRateLimited, (await h.Engine.IssueJoinTicketAsync(bob, admin.Room)).Error?.Code);

        // The admin rejoining its own room is not a knock.
        for (var i = 0; i < 5; i++)
        {
            Assert.True((await h.Engine.IssueJoinTicketAsync(EngineHarness.User("ada"), admin.Room)).IsSuccess);
        }

        h.Time.Advance(TimeSpan.FromMinutes(1));
        Assert.True((await h.Engine.IssueJoinTicketAsync(bob, admin.Room)).IsSuccess);
    }

    /// <summary>
    /// Hostile: an admitted member that reconnects in a loop (ticket, socket, hello) makes the server announce it to every
    /// peer each turn. Its tickets are bounded per minute; the refusal is the transient <c>knock_rate_limited</c>, and it
    /// touches nobody else: the admin, a newcomer and the member's own knock on another room each keep their own quota.
    /// </summary>
    [Fact]
    public async Task Reconnects_OfAnAdmittedMember_PastThePerMinuteRate_AreRefused_AndNobodyElsesTicketsAre()
    {
        using var h = new EngineHarness(o =>
        {
            o.Limits.ReconnectsPerUserPerMinute = 3;
            o.Limits.KnocksPerUserPerMinute = 2;
            o.Limits.RoomsPerSessionPerHour = 100;
        });
        var ada = EngineHarness.User("ada");
        var bob = EngineHarness.User("bob");
        var admin = await h.CreateRoomAsync(ada);
        var adminConnection = await h.ConnectAsync(admin, version: 2);
        var knock = await h.JoinAsync(bob, admin.Room); // a knock: the knock quota, not the reconnect one
        await h.ConnectAsync(knock, version: 2);
        await h.SendAsync(adminConnection, $$$"""{"type":"admit","member":"{{{knock.Member}}}"}""");

        for (var i = 0; i < 3; i++)
        {
            var again = await h.Engine.IssueJoinTicketAsync(bob, admin.Room);
            Assert.True(again.IsSuccess, again.ToString());
            Assert.Equal(knock.Member, again.Value.Member);
            var pushedToAda = h.Push.To(adminConnection).Count;
            await h.ConnectAsync(again.Value, version: 2);
            Assert.True(h.Push.To(adminConnection).Count > pushedToAda, "each reconnect is announced to the peers");
        }

        var refused = await h.Engine.IssueJoinTicketAsync(bob, admin.Room);
        Assert.Equal(SignallingErrorCode.KnockRateLimited, refused.Error?.Code);
        Assert.Contains("reconnect at most 3 times per minute", refused.Error?.Message, StringComparison.Ordinal);

        // Nobody else's tickets: the admin's reconnects, a newcomer's knock, and bob's knock on another room.
        Assert.True((await h.Engine.IssueJoinTicketAsync(ada, admin.Room)).IsSuccess);
        Assert.True((await h.Engine.IssueJoinTicketAsync(EngineHarness.User("cyd"), admin.Room)).IsSuccess);
        var other = await h.CreateRoomAsync(EngineHarness.User("dee"));
        Assert.True((await h.Engine.IssueJoinTicketAsync(bob, other.Room)).IsSuccess);

        h.Time.Advance(TimeSpan.FromMinutes(1));
        Assert.True((await h.Engine.IssueJoinTicketAsync(bob, admin.Room)).IsSuccess);
    }
}
