using Microsoft.Extensions.Time.Testing;
using Talki.Signalling.Ports;
using Talki.Signalling.Server.Storage;

namespace Talki.Signalling.Server.Tests.Storage;

public sealed class InMemoryRoomStoreTests
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));

    private (RoomRecord Room, MemberRecord Admin) NewRoom()
    {
        var now = _time.GetUtcNow();
        var room = new RoomRecord(RoomId.New(), MemberId.New(), now, now.AddMinutes(5), now.AddMinutes(15));
        var admin = new MemberRecord { Room = room.Id, Id = room.AdminMember, UserId = "u-admin", DisplayName = "Ada", IsAdmin = true, Admission = AdmissionStatus.Admitted };
        return (room, admin);
    }

    [Fact]
    public async Task TryUpdateMember_StaleVersion_Loses()
    {
        using var store = new InMemoryRoomStore(_time);
        var (room, admin) = NewRoom();
        await store.CreateRoomAsync(room, admin);

        var first = await store.TryUpdateMemberAsync(admin with { DisplayName = "A1" });
        var second = await store.TryUpdateMemberAsync(admin with { DisplayName = "A2" });

        Assert.Equal(1, first!.Version);
        Assert.Null(second);
        Assert.Equal("A1", (await store.GetMemberAsync(room.Id, admin.Id))!.DisplayName);
    }

    [Fact]
    public async Task ARoomOfFortyMembers_SomeExpiring_FindsEveryLiveOneByIdAndUser_InTheOrderTheyCame()
    {
        // The members live in one small array that grows past its first 8 and closes up when expired ones go.
        using var store = new InMemoryRoomStore(_time);
        var (room, admin) = NewRoom();
        await store.CreateRoomAsync(room, admin);
        var members = new List<MemberRecord> { admin };
        for (var i = 0; i < 39; i++)
        {
            var member = new MemberRecord
            {
                Room = room.Id,
                Id = MemberId.New(),
                UserId = $"u-{i}",
                DisplayName = $"M{i}",
                Admission = AdmissionStatus.Denied,
                ExpiresAt = i % 3 == 0 ? _time.GetUtcNow().AddSeconds(30) : null,
            };
            Assert.Equal(AddMemberOutcome.Added, await store.TryAddMemberAsync(member, 8, 8));
            members.Add(member);
        }

        Assert.Equal(40, (await store.ListMembersAsync(room.Id)).Count);
        _time.Advance(TimeSpan.FromMinutes(1));
        Assert.Equal(AddMemberOutcome.UserExists, await store.TryAddMemberAsync(members[2] with { Id = MemberId.New() }, 8, 8)); // removes the expired ones

        var live = members.Where(m => !m.IsExpiredAt(_time.GetUtcNow())).ToList();
        Assert.Equal(27, live.Count);
        Assert.Equal(live.Select(m => m.Id), (await store.ListMembersAsync(room.Id)).Select(m => m.Id));
        foreach (var member in members)
        {
            var expired = member.IsExpiredAt(_time.GetUtcNow());
            Assert.Equal(expired ? null : member.Id, (await store.GetMemberAsync(room.Id, member.Id))?.Id);
            Assert.Equal(expired ? null : member.Id, (await store.FindMemberByUserAsync(room.Id, member.UserId))?.Id);
        }

        var updated = await store.TryUpdateMemberAsync(live[^1] with { DisplayName = "last" });
        Assert.Equal("last", (await store.GetMemberAsync(room.Id, live[^1].Id))!.DisplayName);
        Assert.Equal(1, updated!.Version);
    }

    [Fact]
    public async Task TryAddMember_SameUserTwice_SecondIsRefused()
    {
        using var store = new InMemoryRoomStore(_time);
        var (room, admin) = NewRoom();
        await store.CreateRoomAsync(room, admin);
        var bob = new MemberRecord { Room = room.Id, Id = MemberId.New(), UserId = "u-bob", DisplayName = "Bob" };

        Assert.Equal(AddMemberOutcome.Added, await store.TryAddMemberAsync(bob, 8, 8));
        Assert.Equal(AddMemberOutcome.UserExists, await store.TryAddMemberAsync(bob with { Id = MemberId.New() }, 8, 8));
        Assert.Equal(bob.Id, (await store.FindMemberByUserAsync(room.Id, "u-bob"))!.Id);
        Assert.Equal(2, (await store.ListMembersAsync(room.Id)).Count);
    }

    [Fact]
    public async Task Reads_AfterExpiry_SeeNothing_AndPurgeDropsIt()
    {
        using var store = new InMemoryRoomStore(_time);
        var (room, admin) = NewRoom();
        await store.CreateRoomAsync(room, admin);
        await store.PutConnectionAsync(new ConnectionRecord("c1", room.Id, admin.Id, 1, room.ExpiresAt));
        await store.StoreTicketAsync(new TicketRecord("h1", room.Id, admin.Id, _time.GetUtcNow().AddSeconds(30)));

        _time.Advance(TimeSpan.FromMinutes(15));

        Assert.Null(await store.GetRoomAsync(room.Id));
        Assert.Null(await store.GetMemberAsync(room.Id, admin.Id));
        Assert.Empty(await store.ListMembersAsync(room.Id));
        Assert.Null(await store.GetConnectionAsync("c1"));
        Assert.Equal(AddMemberOutcome.RoomNotFound, await store.TryAddMemberAsync(admin with { Id = MemberId.New(), UserId = "u2" }, 8, 8));
        Assert.Equal(0, store.RoomCount); // the purge timer ran on the fake clock
        Assert.Equal(0, store.TicketCount);
    }

    [Fact]
    public async Task TryAddMember_AdmittedAtCapacity_RoomFull_DeniedMembersDoNotCount_EvenUnderConcurrency()
    {
        using var store = new InMemoryRoomStore(_time);
        var (room, admin) = NewRoom();
        await store.CreateRoomAsync(room, admin);
        var denied = new MemberRecord { Room = room.Id, Id = MemberId.New(), UserId = "u-denied", DisplayName = "D", Admission = AdmissionStatus.Denied };
        Assert.Equal(AddMemberOutcome.Added, await store.TryAddMemberAsync(denied, 8, 8));

        var outcomes = await Task.WhenAll(Enumerable.Range(0, 50).Select(i => Task.Run(async () =>
            await store.TryAddMemberAsync(new MemberRecord { Room = room.Id, Id = MemberId.New(), UserId = "u" + i, DisplayName = "U", Admission = AdmissionStatus.Admitted }, 4, 8))));

        Assert.Equal(3, outcomes.Count(o => o == AddMemberOutcome.Added)); // the admin plus three
        Assert.Equal(47, outcomes.Count(o => o == AddMemberOutcome.RoomFull));
    }

    [Fact]
    public async Task ConsumeTicket_IsSingleUseUnderConcurrency()
    {
        using var store = new InMemoryRoomStore(_time);
        var (room, admin) = NewRoom();
        await store.CreateRoomAsync(room, admin);
        await store.StoreTicketAsync(new TicketRecord("h1", room.Id, admin.Id, _time.GetUtcNow().AddSeconds(30)));

        var results = await Task.WhenAll(Enumerable.Range(0, 100).Select(_ => Task.Run(async () => await store.ConsumeTicketAsync("h1"))));

        Assert.Single(results, r => r is not null);
    }

    [Fact]
    public async Task CreateRoom_DuplicateId_Throws()
    {
        using var store = new InMemoryRoomStore(_time);
        var (room, admin) = NewRoom();
        await store.CreateRoomAsync(room, admin);
        await Assert.ThrowsAsync<InvalidOperationException>(async () => await store.CreateRoomAsync(room, admin));
    }
}
