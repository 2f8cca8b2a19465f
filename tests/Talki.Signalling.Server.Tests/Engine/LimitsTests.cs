namespace Talki.Signalling.Server.Tests.Engine;

public sealed class LimitsTests
{
    [Fact]
    public async Task Join_BeyondEightMembers_RoomFull_ButKnownMembersMayRejoin()
    {
        using var h = new EngineHarness();
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var users = Enumerable.Range(1, 7).Select(i => EngineHarness.User("u" + i)).ToList();
        foreach (var user in users)
        {
            await h.JoinAsync(user, admin.Room);
        }

        var ninth = await h.Engine.IssueJoinTicketAsync(EngineHarness.User("late"), admin.Room);
        Assert.Equal(SignallingErrorCode.RoomFull, ninth.Error?.Code);
        Assert.True((await h.Engine.IssueJoinTicketAsync(users[0], admin.Room)).IsSuccess);
    }

    [Fact]
    public async Task Join_DeniedMembersFreeTheirPlace()
    {
        using var h = new EngineHarness(o => o.Limits.MaxMembersPerRoom = 2);
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var adminConnection = await h.ConnectAsync(admin);
        var bob = await h.JoinAsync(EngineHarness.User("bob"), admin.Room);
        Assert.Equal(SignallingErrorCode.RoomFull, (await h.Engine.IssueJoinTicketAsync(EngineHarness.User("cy"), admin.Room)).Error?.Code);
        await h.SendAsync(adminConnection, $$$"""{"type":"deny","member":"{{{bob.Member}}}"}""");
        Assert.True((await h.Engine.IssueJoinTicketAsync(EngineHarness.User("cy"), admin.Room)).IsSuccess);
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
}
