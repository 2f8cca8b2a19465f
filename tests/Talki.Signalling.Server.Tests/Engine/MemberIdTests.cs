using Microsoft.Extensions.DependencyInjection;
using Talki.Signalling.Ports;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Server.Tests.Engine;

/// <summary>
/// Every room the engine creates derives its member ids from its own secret key and the user: one id per user in a room
/// (the store keeps one record for it), nothing that links a user's members across rooms, and nothing a client sees
/// that names the user or the key.
/// </summary>
public sealed class MemberIdTests
{
    [Fact]
    public async Task AUsersMember_HasTheIdItsRoomDerives_OneUserTheSameOnEveryKnock_UsersAndRoomsApart()
    {
        using var h = new EngineHarness();
        var store = h.Services.GetRequiredService<IRoomStore>();
        var first = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var second = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var room = (await store.GetRoomAsync(first.Room))!;
        var other = (await store.GetRoomAsync(second.Room))!;

        var bob = await h.JoinAsync(EngineHarness.User("bob"), first.Room);
        var bobAgain = await h.JoinAsync(EngineHarness.User("bob"), first.Room);
        var bobElsewhere = await h.JoinAsync(EngineHarness.User("bob"), second.Room);
        var carol = await h.JoinAsync(EngineHarness.User("carol"), first.Room);

        Assert.NotNull(room.MemberIdKey);
        Assert.NotEqual(room.MemberIdKey, other.MemberIdKey);
        Assert.Equal(room.MemberIdOf(EngineHarness.User("ada").UserId), first.Member);
        Assert.Equal(room.AdminMember, first.Member);
        Assert.Equal(room.MemberIdOf(EngineHarness.User("bob").UserId), bob.Member);
        Assert.Equal(bob.Member, bobAgain.Member);
        Assert.NotEqual(first.Member, second.Member); // the same admin in two rooms: unrelated ids
        Assert.NotEqual(bob.Member, bobElsewhere.Member);
        Assert.NotEqual(bob.Member, carol.Member);
        Assert.Equal(3, (await store.ListMembersAsync(first.Room)).Count);
    }

    /// <summary>
    /// A member sees the others' ids, names and epochs, never the room's key nor a user id: with them it could tell who a
    /// member is across rooms, or work out the id a user will have in this one.
    /// </summary>
    [Fact]
    public async Task NoMessageToAnyClient_CarriesTheRoomsKeyOrAUserId()
    {
        using var h = new EngineHarness();
        var store = h.Services.GetRequiredService<IRoomStore>();
        var (admin, adminConnection, members) = await h.RoomWithMembersAsync(2, "bob", "carol");
        var pending = await h.JoinAsync(EngineHarness.User("dave"), admin.Room);
        await h.ConnectAsync(pending, version: 2);
        await h.SendAsync(adminConnection, $$$"""{"type":"deny","member":"{{{pending.Member}}}"}""");
        var room = (await store.GetRoomAsync(admin.Room))!;
        var users = (await store.ListMembersAsync(admin.Room)).Select(m => m.UserId).ToList();

        Assert.Equal(4, users.Count);
        Assert.NotEmpty(h.Push.All);
        Assert.Contains(h.Push.All, p => p.Json.Contains("\"welcome\"", StringComparison.Ordinal));
        Assert.All(h.Push.All, p => Assert.DoesNotContain(room.MemberIdKey!, p.Json, StringComparison.Ordinal));
        Assert.All(h.Push.All, p => Assert.All(users, user => Assert.DoesNotContain(user, p.Json, StringComparison.Ordinal)));
        Assert.DoesNotContain(room.MemberIdKey!, room.ToString(), StringComparison.Ordinal); // nor a log line that prints the record
    }

    /// <summary>
    /// A user whose knock lapsed knocks again under the same id. Whoever read the lapsed record (an admin's admit or deny
    /// in flight, a refresh) must not write over the new one: its record starts at a random version, so the stale
    /// version-conditional writes fail, and the new knock's ticket still works, once.
    /// </summary>
    [Fact]
    public async Task AWriterHoldingALapsedKnock_CannotWriteOverTheUsersNewKnock()
    {
        using var h = new EngineHarness();
        var store = h.Services.GetRequiredService<IRoomStore>();
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var first = await h.JoinAsync(EngineHarness.User("bob"), admin.Room);
        var lapsed = (await store.GetMemberAsync(admin.Room, first.Member))!;

        h.Time.Advance(first.ExpiresAt - h.Time.GetUtcNow());
        var again = await h.JoinAsync(EngineHarness.User("bob"), admin.Room);
        var fresh = (await store.GetMemberAsync(admin.Room, again.Member))!;

        Assert.Equal(first.Member, again.Member);
        Assert.NotEqual(lapsed.Version, fresh.Version);
        Assert.Null(await store.TryUpdateMemberAsync(lapsed with { DisplayName = "stale", ExpiresAt = null }));
        Assert.Equal(AdmitMemberOutcome.Conflict, await store.TryAdmitMemberAsync(lapsed with { Admission = AdmissionStatus.Admitted, ExpiresAt = null }, 8));
        Assert.Equal(fresh, await store.GetMemberAsync(admin.Room, again.Member));
        Assert.True((await h.Engine.ConnectAsync(h.NewConnectionId(), again.Ticket.Value)).IsSuccess);
        Assert.Equal(SignallingErrorCode.TicketInvalid, (await h.Engine.ConnectAsync(h.NewConnectionId(), first.Ticket.Value)).Error?.Code);
    }

    /// <summary>
    /// The same on the system clock, where a knock lapses by time passing rather than a fake clock's jump: with a 1 s
    /// ticket lifetime, a knock that never connected is refused after it, and the user's next knock takes the same id
    /// with a new record whose ticket works, once.
    /// </summary>
    [Fact]
    public async Task ALapsedKnock_OnTheRealClock_GivesWayToTheUsersNextKnockUnderTheSameId()
    {
        using var h = new EngineHarness(o => o.TicketLifetime = TimeSpan.FromSeconds(1), clock: TimeProvider.System);
        var store = h.Services.GetRequiredService<IRoomStore>();
        var admin = await h.Engine.CreateRoomAsync(EngineHarness.User("ada"));
        var first = (await h.Engine.IssueJoinTicketAsync(EngineHarness.User("bob"), admin.Value.Room)).Value;
        var lapsed = (await store.GetMemberAsync(first.Room, first.Member))!;

        await Task.Delay(TimeSpan.FromMilliseconds(1_200));
        Assert.Null(await store.GetMemberAsync(first.Room, first.Member));
        var again = (await h.Engine.IssueJoinTicketAsync(EngineHarness.User("bob"), admin.Value.Room)).Value;
        var fresh = (await store.GetMemberAsync(again.Room, again.Member))!;

        Assert.Equal(first.Member, again.Member);
        Assert.NotEqual(lapsed.Version, fresh.Version);
        Assert.True(fresh.JoinedAt > lapsed.JoinedAt);
        Assert.Null(await store.TryUpdateMemberAsync(lapsed with { ExpiresAt = null }));
        Assert.True((await h.Engine.AuthorizeAsync(again.Ticket.Value)).IsSuccess);
        Assert.Equal(SignallingErrorCode.TicketInvalid, (await h.Engine.AuthorizeAsync(first.Ticket.Value)).Error?.Code);
    }

    [Fact]
    public async Task AKeylessRoom_AsCreatedBeforeKeys_KeepsRandomIds_AndItsUserLookUp()
    {
        using var h = new EngineHarness();
        var store = h.Services.GetRequiredService<IRoomStore>();
        var now = h.Time.GetUtcNow();
        var room = new RoomRecord(RoomId.New(), MemberId.New(), now, now.AddMinutes(5), now.AddMinutes(15));
        await store.CreateRoomAsync(room, new MemberRecord
        {
            Room = room.Id,
            Id = room.AdminMember,
            UserId = EngineHarness.User("ada").UserId,
            DisplayName = "ada",
            IsAdmin = true,
            Admission = AdmissionStatus.Admitted,
            JoinedAt = now,
        });

        var bob = await h.JoinAsync(EngineHarness.User("bob"), room.Id);
        var bobAgain = await h.JoinAsync(EngineHarness.User("bob"), room.Id);
        var ada = await h.JoinAsync(EngineHarness.User("ada"), room.Id);

        Assert.Equal(bob.Member, bobAgain.Member);
        Assert.Equal(room.AdminMember, ada.Member); // found by user: a ticket for the admin, not a knock
        Assert.True(ada.IsAdmin);
        Assert.Equal(2, (await store.ListMembersAsync(room.Id)).Count);
    }
}
