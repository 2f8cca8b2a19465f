using Microsoft.Extensions.DependencyInjection;
using Talki.Signalling.Ports;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Server.Tests.Engine;

/// <summary>
/// "Seven HTTP requests lock a room": a knock (a join ticket) is not a seat. Seats are taken by admission only,
/// knocks that never connect vanish with their ticket, the admin sees and may deny every knock, and a flood of
/// knocks on one room is bounded.
/// </summary>
public sealed class KnockAndSeatTests
{
    [Fact]
    public async Task SevenTicketsThatNeverConnect_TakeNoSeat_ALegitimateNewcomerCanStillKnockBeAdmittedAndJoin()
    {
        using var h = new EngineHarness();
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var adminConnection = await h.ConnectAsync(admin);
        for (var i = 0; i < 7; i++)
        {
            Assert.True((await h.Engine.IssueJoinTicketAsync(EngineHarness.User("squatter" + i), admin.Room)).IsSuccess);
        }

        var carol = await h.Engine.IssueJoinTicketAsync(EngineHarness.User("carol"), admin.Room);
        Assert.True(carol.IsSuccess, carol.ToString());
        var carolConnection = await h.ConnectAsync(carol.Value);
        await h.SendAsync(adminConnection, $$$"""{"type":"admit","member":"{{{carol.Value.Member}}}"}""");

        Assert.Equal(carol.Value.Member, h.Push.Single<AdmittedMessage>(carolConnection).Member.Id);
        Assert.Equal(admin.Member, h.Push.Single<ConnectToPeerMessage>(carolConnection).Peer.Id);
        Assert.Equal(carol.Value.Member, h.Push.Single<ConnectToPeerMessage>(adminConnection).Peer.Id);
    }

    [Fact]
    public async Task PendingMembersThatNeverConnect_VanishWhenTheirTicketExpires_AndAKnockAfterwardsIsANewRecordUnderTheSameId()
    {
        using var h = new EngineHarness();
        var store = h.Services.GetRequiredService<IRoomStore>();
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var ghost = await h.JoinAsync(EngineHarness.User("ghost"), admin.Room);
        var waiter = await h.JoinAsync(EngineHarness.User("waiter"), admin.Room);
        await h.ConnectAsync(waiter); // connected: it waits for the admin as long as it stays connected
        Assert.NotNull(await store.GetMemberAsync(admin.Room, ghost.Member));

        h.Time.Advance(ghost.ExpiresAt - h.Time.GetUtcNow()); // exactly at the ticket's expiry

        Assert.Null(await store.GetMemberAsync(admin.Room, ghost.Member));
        Assert.Null(await store.FindMemberByUserAsync(admin.Room, EngineHarness.User("ghost").UserId));
        Assert.DoesNotContain(await store.ListMembersAsync(admin.Room), m => m.Id == ghost.Member);
        Assert.Equal(AdmissionStatus.Pending, (await store.GetMemberAsync(admin.Room, waiter.Member))?.Admission);
        // Its record kept its ticket: with the record gone, the ticket is unknown.
        Assert.Equal(SignallingErrorCode.TicketInvalid, (await h.Engine.ConnectAsync(h.NewConnectionId(), ghost.Ticket.Value)).Error?.Code);

        // A new knock is a new record under the same id (the room derives its member ids from the users); the lapsed
        // knock's ticket stays refused, the new one connects once.
        var again = await h.JoinAsync(EngineHarness.User("ghost"), admin.Room);
        Assert.Equal(ghost.Member, again.Member);
        var record = await store.GetMemberAsync(admin.Room, again.Member);
        Assert.Equal(AdmissionStatus.Pending, record?.Admission);
        Assert.Equal(h.Time.GetUtcNow(), record?.JoinedAt);
        Assert.Equal(SignallingErrorCode.TicketInvalid, (await h.Engine.ConnectAsync(h.NewConnectionId(), ghost.Ticket.Value)).Error?.Code);
        Assert.True((await h.Engine.ConnectAsync(h.NewConnectionId(), again.Ticket.Value)).IsSuccess);
        Assert.Equal(SignallingErrorCode.TicketInvalid, (await h.Engine.ConnectAsync(h.NewConnectionId(), again.Ticket.Value)).Error?.Code);
    }

    [Fact]
    public async Task TheAdmin_GetsAnAdmissionRequestForAKnockWithoutAConnection_AndCanDenyIt()
    {
        using var h = new EngineHarness();
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var early = await h.JoinAsync(EngineHarness.User("early"), admin.Room); // knocks before the admin is connected
        var adminConnection = await h.ConnectAsync(admin);
        Assert.Equal(early.Member, h.Push.Single<AdmissionRequestMessage>(adminConnection).Member.Id);
        h.Push.Clear();

        var lurker = await h.JoinAsync(EngineHarness.User("lurker"), admin.Room);

        var request = h.Push.Single<AdmissionRequestMessage>(adminConnection);
        Assert.Equal(lurker.Member, request.Member.Id);
        Assert.False(request.Member.Online);
        Assert.Equal(AdmissionStatus.Pending, request.Member.Status);

        await h.SendAsync(adminConnection, $$$"""{"type":"deny","member":"{{{lurker.Member}}}"}""");
        Assert.Equal(lurker.Member, h.Push.Single<DeniedMessage>(adminConnection).Member.Id);
        Assert.Equal(SignallingErrorCode.Denied, (await h.Engine.ConnectAsync(h.NewConnectionId(), lurker.Ticket.Value)).Error?.Code);

        // The denial outlives the ticket: the same user knocking later is still denied.
        h.Time.Advance(TalkiSignallingOptions.DefaultTicketLifetime);
        Assert.Equal(SignallingErrorCode.Denied, (await h.Engine.IssueJoinTicketAsync(EngineHarness.User("lurker"), admin.Room)).Error?.Code);
    }

    [Fact]
    public async Task AFloodOfAHundredKnocks_IsRefusedBeyondThePerRoomLimit_AndTheAdmittedMembersAreUnaffected()
    {
        using var h = new EngineHarness();
        var (admin, adminConnection, members) = await h.RoomWithMembersAsync("bob");
        var (bob, bobConnection) = members[0];
        h.Push.Clear();

        var results = new List<SignallingResult<TicketGrant>>();
        for (var i = 0; i < 100; i++)
        {
            results.Add(await h.Engine.IssueJoinTicketAsync(EngineHarness.User("flood" + i), admin.Room));
        }

        Assert.Equal(16, results.Count(r => r.IsSuccess));
        Assert.All(results.Where(r => !r.IsSuccess), r => Assert.Equal(SignallingErrorCode.KnockRateLimited, r.Error?.Code));
        Assert.Equal(16, h.Push.To<AdmissionRequestMessage>(adminConnection).Count);
        Assert.Empty(h.Push.To(bobConnection));

        // Admitted members keep signalling.
        await h.SendAsync(bobConnection, $$$"""{"type":"signal","to":"{{{admin.Member}}}","description":{"type":"offer","sdp":"v=0"}}""");
        Assert.Equal(bob.Member, h.Push.Single<SignalRelayMessage>(adminConnection).From);

        // Once the flood's tickets expire, the room takes knocks again.
        h.Time.Advance(TalkiSignallingOptions.DefaultTicketLifetime);
        Assert.True((await h.Engine.IssueJoinTicketAsync(EngineHarness.User("legit"), admin.Room)).IsSuccess);
    }

    [Fact]
    public async Task AdmittingIntoAFullRoom_AnswersTheAdminRoomFull_AndTheNewcomerStaysPending()
    {
        using var h = new EngineHarness(o => o.Limits.MaxMembersPerRoom = 2);
        var store = h.Services.GetRequiredService<IRoomStore>();
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var adminConnection = await h.ConnectAsync(admin);
        var bob = await h.JoinAsync(EngineHarness.User("bob"), admin.Room);
        var bobConnection = await h.ConnectAsync(bob);
        var cy = await h.JoinAsync(EngineHarness.User("cy"), admin.Room); // a knock is not a seat: the room is not full yet
        var cyConnection = await h.ConnectAsync(cy);

        await h.SendAsync(adminConnection, $$$"""{"type":"admit","member":"{{{bob.Member}}}"}""");
        await h.SendAsync(adminConnection, $$$"""{"type":"admit","id":"a2","member":"{{{cy.Member}}}"}""");

        Assert.Equal(bob.Member, h.Push.Single<AdmittedMessage>(bobConnection).Member.Id);
        var error = h.Push.LastError(adminConnection);
        Assert.Equal(SignallingErrorCode.RoomFull, error.Code);
        Assert.Equal("a2", error.Id);
        Assert.Empty(h.Push.To<AdmittedMessage>(cyConnection));
        Assert.Equal(AdmissionStatus.Pending, (await store.GetMemberAsync(admin.Room, cy.Member))?.Admission);
        Assert.Equal(2, (await store.ListMembersAsync(admin.Room)).Count(m => m.Admission == AdmissionStatus.Admitted));
    }

    [Fact]
    public async Task AKnockLivesAsLongAsItsNewestTicket_AndAPendingMemberThatGoesOfflineVanishesATicketLifetimeLater()
    {
        using var h = new EngineHarness();
        var store = h.Services.GetRequiredService<IRoomStore>();
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var first = await h.JoinAsync(EngineHarness.User("bob"), admin.Room);
        h.Time.Advance(TimeSpan.FromSeconds(20));
        var second = await h.JoinAsync(EngineHarness.User("bob"), admin.Room); // asks again before the first ticket expires
        Assert.Equal(first.Member, second.Member);
        h.Time.Advance(TimeSpan.FromSeconds(20)); // past the first ticket, within the second
        Assert.NotNull(await store.GetMemberAsync(admin.Room, first.Member));

        var connection = await h.ConnectAsync(second);
        h.Time.Advance(TimeSpan.FromMinutes(2)); // connected: it waits as long as it likes
        Assert.NotNull(await store.GetMemberAsync(admin.Room, first.Member));

        await h.Engine.DisconnectAsync(connection);
        h.Time.Advance(TalkiSignallingOptions.DefaultTicketLifetime - TimeSpan.FromSeconds(1));
        Assert.NotNull(await store.GetMemberAsync(admin.Room, first.Member)); // time to reload the page
        h.Time.Advance(TimeSpan.FromSeconds(1));
        Assert.Null(await store.GetMemberAsync(admin.Room, first.Member));
    }
}
