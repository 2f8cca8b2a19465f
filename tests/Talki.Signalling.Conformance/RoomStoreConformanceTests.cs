using System.Globalization;
using Microsoft.Extensions.Time.Testing;
using Talki.Signalling.Ports;

namespace Talki.Signalling.Conformance;

/// <summary>
/// The behaviour every <see cref="IRoomStore"/> must show: derive, create the store over <see cref="Time"/>, and the
/// same facts are checked for each store (in memory, DynamoDB, …). Each test uses fresh random ids, so a store may be
/// shared by the tests of one class.
/// </summary>
public abstract class RoomStoreConformanceTests : IAsyncLifetime
{
    private IRoomStore? _store;

    /// <summary>Gets the clock the store must read (tests advance it to check read-side expiry).</summary>
    protected FakeTimeProvider Time { get; } = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));

    /// <summary>Gets the store under test.</summary>
    protected IRoomStore Store => _store ?? throw new InvalidOperationException("The store is created in InitializeAsync.");

    /// <inheritdoc />
    public virtual async Task InitializeAsync() => _store = await CreateStoreAsync(Time);

    /// <inheritdoc />
    public virtual async Task DisposeAsync()
    {
        switch (_store)
        {
            case IAsyncDisposable asyncDisposable:
                await asyncDisposable.DisposeAsync();
                break;
            case IDisposable disposable:
                disposable.Dispose();
                break;
        }
    }

    /// <summary>Creates the store under test.</summary>
    /// <param name="time">The clock the store must use for every expiry check.</param>
    /// <returns>The store.</returns>
    protected abstract Task<IRoomStore> CreateStoreAsync(TimeProvider time);

    [Fact]
    public async Task CreateRoom_ThenGet_ReturnsTheRoomAndItsAdmin()
    {
        var (room, admin) = NewRoom();
        await Store.CreateRoomAsync(room, admin);

        Assert.Equal(room, await Store.GetRoomAsync(room.Id));
        Assert.Equal(admin, await Store.GetMemberAsync(room.Id, admin.Id));
        Assert.Equal(admin, await Store.FindMemberByUserAsync(room.Id, admin.UserId));
        Assert.Equal([admin], await Store.ListMembersAsync(room.Id));
    }

    [Fact]
    public async Task Reads_OfUnknownThings_ReturnNothing()
    {
        var (room, _) = NewRoom();
        Assert.Null(await Store.GetRoomAsync(room.Id));
        Assert.Null(await Store.GetMemberAsync(room.Id, MemberId.New()));
        Assert.Null(await Store.FindMemberByUserAsync(room.Id, "u-nobody"));
        Assert.Empty(await Store.ListMembersAsync(room.Id));
        Assert.Equal(AddMemberOutcome.RoomNotFound, await Store.TryAddMemberAsync(NewMember(room, "u-x"), 8, 8));
        Assert.Null(await Store.TryUpdateMemberAsync(NewMember(room, "u-x")));
        Assert.Null(await Store.ConsumeTicketAsync("no-such-hash"));
        Assert.Null(await Store.GetConnectionAsync("no-such-connection"));
        Assert.Null(await Store.RemoveConnectionAsync("no-such-connection"));
    }

    [Fact]
    public async Task CreateRoom_DuplicateId_Throws()
    {
        var (room, admin) = NewRoom();
        await Store.CreateRoomAsync(room, admin);
        await Assert.ThrowsAsync<InvalidOperationException>(async () => await Store.CreateRoomAsync(room, admin));
    }

    [Fact]
    public async Task TryAddMember_StoresEveryField()
    {
        var (room, admin) = NewRoom();
        await Store.CreateRoomAsync(room, admin);
        var bob = NewMember(room, "u-bob") with
        {
            DisplayName = "Bob ✓ \"quoted\"",
            IsVerified = true,
            Admission = AdmissionStatus.Admitted,
            Epoch = 3,
            ConnectionId = "conn-1=",
            ReadyAt = Time.GetUtcNow().AddTicks(12_345),
            ProtocolVersion = 2,
            JoinedAt = Time.GetUtcNow().AddTicks(7),
            Version = 4,
        };

        Assert.Equal(AddMemberOutcome.Added, await Store.TryAddMemberAsync(bob, 8, 8));

        Assert.Equal(bob, await Store.GetMemberAsync(room.Id, bob.Id));
        Assert.Equal(bob, await Store.FindMemberByUserAsync(room.Id, "u-bob"));
        Assert.Equal(2, (await Store.ListMembersAsync(room.Id)).Count);
    }

    [Fact]
    public async Task GetMemberPair_ReadsBothAsGetMemberWould_AndNeverAMemberOfAnotherRoom()
    {
        var (room, admin) = NewRoom();
        await Store.CreateRoomAsync(room, admin);
        var bob = NewMember(room, "u-bob") with { Admission = AdmissionStatus.Admitted, ProtocolVersion = 2 };
        Assert.Equal(AddMemberOutcome.Added, await Store.TryAddMemberAsync(bob, 8, 8));
        var (otherRoom, stranger) = NewRoom();
        await Store.CreateRoomAsync(otherRoom, stranger);

        Assert.Equal((admin, bob), await Store.GetMemberPairAsync(room.Id, admin.Id, bob.Id));
        Assert.Equal((bob, admin), await Store.GetMemberPairAsync(room.Id, bob.Id, admin.Id));
        Assert.Equal((admin, (MemberRecord?)null), await Store.GetMemberPairAsync(room.Id, admin.Id, stranger.Id)); // another room's member
        Assert.Equal(((MemberRecord?)null, (MemberRecord?)null), await Store.GetMemberPairAsync(room.Id, MemberId.New(), stranger.Id));
        Assert.Equal(((MemberRecord?)null, (MemberRecord?)null), await Store.GetMemberPairAsync(RoomId.New(), admin.Id, bob.Id));
    }

    [Fact]
    public async Task TryAddMember_SameUserTwice_SecondIsRefused()
    {
        var (room, admin) = NewRoom();
        await Store.CreateRoomAsync(room, admin);
        var bob = NewMember(room, "u-bob");

        Assert.Equal(AddMemberOutcome.Added, await Store.TryAddMemberAsync(bob, 8, 8));
        Assert.Equal(AddMemberOutcome.UserExists, await Store.TryAddMemberAsync(bob with { Id = MemberId.New() }, 8, 8));
        Assert.Equal(AddMemberOutcome.UserExists, await Store.TryAddMemberAsync(admin with { Id = MemberId.New() }, 8, 8));
        Assert.Equal(bob.Id, (await Store.FindMemberByUserAsync(room.Id, "u-bob"))!.Id);
        Assert.Equal(2, (await Store.ListMembersAsync(room.Id)).Count);
    }

    [Fact]
    public async Task TryAddMember_SameUserConcurrently_OneWins_AndNoSeatIsLost()
    {
        var (room, admin) = NewRoom();
        await Store.CreateRoomAsync(room, admin);

        var outcomes = await Concurrently(20, _ => Store.TryAddMemberAsync(Admitted(NewMember(room, "u-same")), 3, 8));

        Assert.Equal(1, outcomes.Count(o => o == AddMemberOutcome.Added));
        Assert.Equal(19, outcomes.Count(o => o == AddMemberOutcome.UserExists));

        // The losers gave their seats back: the third seat is still free.
        Assert.Equal(AddMemberOutcome.Added, await Store.TryAddMemberAsync(Admitted(NewMember(room, "u-third")), 3, 8));
        Assert.Equal(AddMemberOutcome.RoomFull, await Store.TryAddMemberAsync(Admitted(NewMember(room, "u-fourth")), 3, 8));
    }

    [Fact]
    public async Task TryAddMember_AdmittedAtCapacity_RoomFull_PendingAndDeniedMembersDoNotCount_EvenUnderConcurrency()
    {
        var (room, admin) = NewRoom();
        await Store.CreateRoomAsync(room, admin);
        Assert.Equal(AddMemberOutcome.Added, await Store.TryAddMemberAsync(NewMember(room, "u-denied") with { Admission = AdmissionStatus.Denied }, 8, 8));
        Assert.Equal(AddMemberOutcome.Added, await Store.TryAddMemberAsync(NewMember(room, "u-knock"), 8, 8));

        var outcomes = await Concurrently(50, i => Store.TryAddMemberAsync(Admitted(NewMember(room, "u" + i)), 4, 8));

        Assert.Equal(3, outcomes.Count(o => o == AddMemberOutcome.Added)); // the admin plus three
        Assert.Equal(47, outcomes.Count(o => o == AddMemberOutcome.RoomFull));
        var members = await Store.ListMembersAsync(room.Id);
        Assert.Equal(6, members.Count);
        Assert.Equal(4, members.Count(m => m.Admission == AdmissionStatus.Admitted));
    }

    [Fact]
    public async Task TryAddMember_ExistingUserInAFullRoom_IsUserExists_AndAKnockIsStillAdded()
    {
        var (room, admin) = NewRoom();
        await Store.CreateRoomAsync(room, admin);
        var bob = Admitted(NewMember(room, "u-bob"));
        Assert.Equal(AddMemberOutcome.Added, await Store.TryAddMemberAsync(bob, 2, 8));

        Assert.Equal(AddMemberOutcome.UserExists, await Store.TryAddMemberAsync(bob with { Id = MemberId.New() }, 2, 8));
        Assert.Equal(AddMemberOutcome.RoomFull, await Store.TryAddMemberAsync(Admitted(NewMember(room, "u-carol")), 2, 8));
        Assert.Equal(AddMemberOutcome.Added, await Store.TryAddMemberAsync(NewMember(room, "u-carol"), 2, 8)); // a knock is not a seat
    }

    [Fact]
    public async Task Seats_AreTakenByAdmission_UpdatesNeverAdmit_AndAnAdmittedMemberThatLosesItsAdmissionFreesItsSeat()
    {
        var (room, admin) = NewRoom();
        await Store.CreateRoomAsync(room, admin);
        var bob = NewMember(room, "u-bob");
        var carol = NewMember(room, "u-carol");
        Assert.Equal(AddMemberOutcome.Added, await Store.TryAddMemberAsync(bob, 2, 8));
        Assert.Equal(AddMemberOutcome.Added, await Store.TryAddMemberAsync(carol, 2, 8));

        Assert.Equal(AdmitMemberOutcome.Admitted, await Store.TryAdmitMemberAsync(Admitted(bob), 2));
        var admittedBob = await Store.GetMemberAsync(room.Id, bob.Id);
        Assert.Equal(Admitted(bob) with { Version = 1 }, admittedBob);
        Assert.Equal(AdmitMemberOutcome.RoomFull, await Store.TryAdmitMemberAsync(Admitted(carol), 2));
        Assert.Null(await Store.TryUpdateMemberAsync(Admitted(carol))); // an update never admits
        Assert.Equal(carol, await Store.GetMemberAsync(room.Id, carol.Id));
        Assert.Equal(AdmitMemberOutcome.Conflict, await Store.TryAdmitMemberAsync(Admitted(bob), 2)); // stale, and admitted already
        Assert.NotNull(await Store.TryUpdateMemberAsync(admittedBob! with { DisplayName = "Bob, still admitted" }));

        // Bob is denied: his seat is free, once (a stale repeat releases nothing).
        var deniedBob = await Store.TryUpdateMemberAsync(admittedBob with { Version = 2, DisplayName = "Bob, still admitted", Admission = AdmissionStatus.Denied });
        Assert.NotNull(deniedBob);
        Assert.Null(await Store.TryUpdateMemberAsync(admittedBob with { Version = 2, Admission = AdmissionStatus.Denied }));
        Assert.Equal(AdmitMemberOutcome.Admitted, await Store.TryAdmitMemberAsync(Admitted(carol), 2));

        // Bob back to pending takes no seat; admitting him finds the room full.
        var pendingBob = await Store.TryUpdateMemberAsync(deniedBob! with { Admission = AdmissionStatus.Pending });
        Assert.Equal(4, pendingBob!.Version);
        Assert.Equal(AdmitMemberOutcome.RoomFull, await Store.TryAdmitMemberAsync(Admitted(pendingBob), 2));
        Assert.Equal(2, (await Store.ListMembersAsync(room.Id)).Count(m => m.Admission == AdmissionStatus.Admitted));
    }

    [Fact]
    public async Task TryAdmitMember_ConcurrentAdmitsIntoARoomWithKFreeSeats_AdmitExactlyK()
    {
        var (room, admin) = NewRoom();
        await Store.CreateRoomAsync(room, admin);
        Assert.Equal(AddMemberOutcome.Added, await Store.TryAddMemberAsync(Admitted(NewMember(room, "u-seated")), 5, 32));
        var knocks = Enumerable.Range(0, 20).Select(i => NewMember(room, "u-knock" + i)).ToArray();
        foreach (var knock in knocks)
        {
            Assert.Equal(AddMemberOutcome.Added, await Store.TryAddMemberAsync(knock, 5, 32));
        }

        var outcomes = await Concurrently(20, i => Store.TryAdmitMemberAsync(Admitted(knocks[i]), 5)); // 3 seats free

        Assert.Equal(3, outcomes.Count(o => o == AdmitMemberOutcome.Admitted));
        Assert.Equal(17, outcomes.Count(o => o == AdmitMemberOutcome.RoomFull));
        var members = await Store.ListMembersAsync(room.Id);
        Assert.Equal(5, members.Count(m => m.Admission == AdmissionStatus.Admitted));
        Assert.Equal(17, members.Count(m => m.Admission == AdmissionStatus.Pending));
    }

    [Fact]
    public async Task TryAdmitMember_SameMemberConcurrently_AdmitsItOnce_AndLosesNoSeat()
    {
        var (room, admin) = NewRoom();
        await Store.CreateRoomAsync(room, admin);
        var bob = NewMember(room, "u-bob");
        Assert.Equal(AddMemberOutcome.Added, await Store.TryAddMemberAsync(bob, 4, 8));

        var outcomes = await Concurrently(10, _ => Store.TryAdmitMemberAsync(Admitted(bob), 4));

        Assert.Equal(1, outcomes.Count(o => o == AdmitMemberOutcome.Admitted));
        Assert.Equal(Admitted(bob) with { Version = 1 }, await Store.GetMemberAsync(room.Id, bob.Id));

        // The losers gave their seats back: two seats are still free.
        var others = Enumerable.Range(0, 3).Select(i => NewMember(room, "u-other" + i)).ToArray();
        foreach (var other in others)
        {
            Assert.Equal(AddMemberOutcome.Added, await Store.TryAddMemberAsync(other, 4, 8));
        }

        Assert.Equal(AdmitMemberOutcome.Admitted, await Store.TryAdmitMemberAsync(Admitted(others[0]), 4));
        Assert.Equal(AdmitMemberOutcome.Admitted, await Store.TryAdmitMemberAsync(Admitted(others[1]), 4));
        Assert.Equal(AdmitMemberOutcome.RoomFull, await Store.TryAdmitMemberAsync(Admitted(others[2]), 4));
    }

    [Fact]
    public async Task AKnockWithAnExpiry_VanishesThen_UnlessTheExpiryIsCleared_AndTheSameUserCanKnockAgain()
    {
        var (room, admin) = NewRoom();
        await Store.CreateRoomAsync(room, admin);
        var expiresAt = Time.GetUtcNow().AddSeconds(30);
        var ghost = NewMember(room, "u-ghost") with { ExpiresAt = expiresAt };
        var waiter = NewMember(room, "u-waiter") with { ExpiresAt = expiresAt };
        Assert.Equal(AddMemberOutcome.Added, await Store.TryAddMemberAsync(ghost, 8, 8));
        Assert.Equal(AddMemberOutcome.Added, await Store.TryAddMemberAsync(waiter, 8, 8));
        Assert.Equal(ghost, await Store.GetMemberAsync(room.Id, ghost.Id));
        var connected = await Store.TryUpdateMemberAsync(waiter with { ExpiresAt = null, ConnectionId = "c-w", Epoch = 1 }); // it connected
        Assert.Equal(waiter with { ExpiresAt = null, ConnectionId = "c-w", Epoch = 1, Version = 1 }, connected);

        Time.Advance(TimeSpan.FromSeconds(30)); // exactly at expiry: gone

        Assert.Null(await Store.GetMemberAsync(room.Id, ghost.Id));
        Assert.Null(await Store.FindMemberByUserAsync(room.Id, "u-ghost"));
        Assert.Equal(new HashSet<MemberId> { admin.Id, waiter.Id }, (await Store.ListMembersAsync(room.Id)).Select(m => m.Id).ToHashSet());
        Assert.Null(await Store.TryUpdateMemberAsync(ghost with { DisplayName = "revived" }));
        Assert.Equal(AdmitMemberOutcome.Conflict, await Store.TryAdmitMemberAsync(Admitted(ghost), 8));
        Assert.Equal(connected, await Store.FindMemberByUserAsync(room.Id, "u-waiter"));

        var again = NewMember(room, "u-ghost") with { ExpiresAt = Time.GetUtcNow().AddSeconds(30) };
        Assert.Equal(AddMemberOutcome.Added, await Store.TryAddMemberAsync(again, 8, 8));
        Assert.Equal(again, await Store.FindMemberByUserAsync(room.Id, "u-ghost"));
        Assert.Null(await Store.GetMemberAsync(room.Id, ghost.Id));
        Assert.Equal(AddMemberOutcome.UserExists, await Store.TryAddMemberAsync(NewMember(room, "u-waiter"), 8, 8));

        // An expiry set again (the waiter went offline) ends it too.
        Assert.NotNull(await Store.TryUpdateMemberAsync(connected! with { ConnectionId = null, ExpiresAt = Time.GetUtcNow().AddSeconds(30) }));
        Time.Advance(TimeSpan.FromSeconds(30));
        Assert.Null(await Store.FindMemberByUserAsync(room.Id, "u-waiter"));
        Assert.Equal(AddMemberOutcome.Added, await Store.TryAddMemberAsync(NewMember(room, "u-waiter"), 8, 8));
    }

    [Fact]
    public async Task AKeyedRoom_KeepsItsKey_AndALegacyRoomHasNone()
    {
        var (keyed, keyedAdmin) = NewKeyedRoom();
        var (legacy, legacyAdmin) = NewRoom();
        await Store.CreateRoomAsync(keyed, keyedAdmin);
        await Store.CreateRoomAsync(legacy, legacyAdmin);

        Assert.Equal(keyed, await Store.GetRoomAsync(keyed.Id)); // the key included (records compare every property)
        Assert.Equal(keyed.MemberIdKey, (await Store.GetRoomAsync(keyed.Id))!.MemberIdKey);
        Assert.Null((await Store.GetRoomAsync(legacy.Id))!.MemberIdKey);
        Assert.Equal(keyedAdmin, await Store.FindMemberByUserAsync(keyed.Id, "u-admin"));
        Assert.Equal(legacyAdmin, await Store.FindMemberByUserAsync(legacy.Id, "u-admin"));
    }

    [Fact]
    public async Task AKeyedRoom_TheSameUserTwice_IsRefused_ButFoundByUserAndById()
    {
        var (room, admin) = NewKeyedRoom();
        await Store.CreateRoomAsync(room, admin);
        var bob = NewKeyedMember(room, "u-bob");

        Assert.Equal(AddMemberOutcome.Added, await Store.TryAddMemberAsync(bob, 8, 8));
        Assert.Equal(AddMemberOutcome.UserExists, await Store.TryAddMemberAsync(NewKeyedMember(room, "u-bob") with { DisplayName = "Bob again" }, 8, 8));
        Assert.Equal(AddMemberOutcome.UserExists, await Store.TryAddMemberAsync(Admitted(NewKeyedMember(room, "u-bob")), 8, 8));
        Assert.Equal(AddMemberOutcome.UserExists, await Store.TryAddMemberAsync(NewKeyedMember(room, "u-admin"), 8, 8));
        Assert.Equal(bob, await Store.FindMemberByUserAsync(room.Id, "u-bob"));
        Assert.Equal(bob, await Store.GetMemberAsync(room.Id, room.MemberIdOf("u-bob")!.Value));
        Assert.Equal(admin, await Store.GetMemberAsync(room.Id, room.MemberIdOf("u-admin")!.Value));
        Assert.Equal(2, (await Store.ListMembersAsync(room.Id)).Count);
    }

    [Fact]
    public async Task AKeyedRoom_TheSameUserConcurrently_OneWins_AndNoSeatIsLost()
    {
        var (room, admin) = NewKeyedRoom();
        await Store.CreateRoomAsync(room, admin);

        // Twenty tabs of one user, each with its own record (another display name): one is stored whole, the others refused.
        var candidates = Enumerable.Range(0, 20).Select(i => Admitted(NewKeyedMember(room, "u-same")) with { DisplayName = "tab " + i }).ToArray();
        var outcomes = await Concurrently(20, i => Store.TryAddMemberAsync(candidates[i], 3, 8));

        Assert.Equal(1, outcomes.Count(o => o == AddMemberOutcome.Added));
        Assert.Equal(19, outcomes.Count(o => o == AddMemberOutcome.UserExists));
        Assert.Equal(candidates[Array.IndexOf(outcomes, AddMemberOutcome.Added)], await Store.GetMemberAsync(room.Id, candidates[0].Id));
        Assert.Equal(AddMemberOutcome.Added, await Store.TryAddMemberAsync(Admitted(NewKeyedMember(room, "u-third")), 3, 8)); // the losers gave their seats back
        Assert.Equal(AddMemberOutcome.RoomFull, await Store.TryAddMemberAsync(Admitted(NewKeyedMember(room, "u-fourth")), 3, 8));
    }

    [Fact]
    public async Task AKeyedRoom_ALapsedKnockGivesWayToTheUsersNewKnock_AConnectedDeniedOrAdmittedMemberNever()
    {
        var (room, admin) = NewKeyedRoom();
        await Store.CreateRoomAsync(room, admin);
        var expiresAt = Time.GetUtcNow().AddSeconds(30);
        var ghost = NewKeyedMember(room, "u-ghost") with { ExpiresAt = expiresAt, TicketHash = NewHash(), TicketExpiresAt = expiresAt };
        var waiter = NewKeyedMember(room, "u-waiter") with { ExpiresAt = expiresAt };
        var denied = NewKeyedMember(room, "u-denied") with { Admission = AdmissionStatus.Denied };
        Assert.Equal(AddMemberOutcome.Added, await Store.TryAddMemberAsync(ghost, 8, 8));
        Assert.Equal(AddMemberOutcome.Added, await Store.TryAddMemberAsync(waiter, 8, 8));
        Assert.Equal(AddMemberOutcome.Added, await Store.TryAddMemberAsync(denied, 8, 8));
        Assert.NotNull(await Store.TryUpdateMemberAsync(waiter with { ExpiresAt = null, ConnectionId = "c-w", Epoch = 1 })); // it connected

        Time.Advance(TimeSpan.FromSeconds(30)); // the ghost's knock lapses; the waiter and the denial stay

        Assert.Null(await Store.GetMemberAsync(room.Id, ghost.Id));
        // The engine starts such a record at a random version: a writer still holding the lapsed one cannot write over it.
        var again = NewKeyedMember(room, "u-ghost") with { DisplayName = "back again", ExpiresAt = Time.GetUtcNow().AddSeconds(30), Version = 912_345_678 };
        Assert.Equal(AddMemberOutcome.Added, await Store.TryAddMemberAsync(again, 8, 8));
        Assert.Equal(again, await Store.GetMemberAsync(room.Id, ghost.Id)); // the same id, the new record: the lapsed ticket went with the old one
        Assert.Null(await Store.TakeMemberTicketAsync(room.Id, ghost.Id, ghost.TicketHash!));
        Assert.Null(await Store.TryUpdateMemberAsync(ghost with { DisplayName = "stale", ExpiresAt = null }));
        Assert.Equal(AdmitMemberOutcome.Conflict, await Store.TryAdmitMemberAsync(Admitted(ghost) with { ExpiresAt = null }, 8));
        Assert.Equal(again, await Store.GetMemberAsync(room.Id, ghost.Id));
        Assert.Equal(AddMemberOutcome.UserExists, await Store.TryAddMemberAsync(NewKeyedMember(room, "u-ghost"), 8, 8)); // live again
        Assert.Equal(AddMemberOutcome.UserExists, await Store.TryAddMemberAsync(NewKeyedMember(room, "u-waiter"), 8, 8));
        Assert.Equal(AddMemberOutcome.UserExists, await Store.TryAddMemberAsync(NewKeyedMember(room, "u-denied"), 8, 8)); // a denial stays for the room's life
        Assert.Equal(AdmissionStatus.Denied, (await Store.FindMemberByUserAsync(room.Id, "u-denied"))?.Admission);
        Assert.Equal(AddMemberOutcome.UserExists, await Store.TryAddMemberAsync(NewKeyedMember(room, "u-admin"), 8, 8));
        Assert.Equal(4, (await Store.ListMembersAsync(room.Id)).Count);
    }

    [Fact]
    public async Task ThePendingLimit_CountsLiveKnocksOnly_AndIsNeverExceeded_EvenUnderConcurrency()
    {
        var (room, admin) = NewRoom();
        await Store.CreateRoomAsync(room, admin);
        Assert.Equal(AddMemberOutcome.Added, await Store.TryAddMemberAsync(NewMember(room, "u-denied") with { Admission = AdmissionStatus.Denied }, 8, 5));
        Assert.Equal(AddMemberOutcome.Added, await Store.TryAddMemberAsync(Admitted(NewMember(room, "u-seated")), 8, 5));
        var expiresAt = Time.GetUtcNow().AddSeconds(30);

        var outcomes = await Concurrently(30, i => Store.TryAddMemberAsync(NewMember(room, "u-flood" + i) with { ExpiresAt = expiresAt }, 8, 5));

        Assert.All(outcomes, o => Assert.True(o is AddMemberOutcome.Added or AddMemberOutcome.TooManyPending, o.ToString()));
        Assert.InRange(outcomes.Count(o => o == AddMemberOutcome.Added), 0, 5);
        Assert.InRange((await Store.ListMembersAsync(room.Id)).Count(m => m.Admission == AdmissionStatus.Pending), 0, 5);

        // Sequential knocks fill exactly the places a race may have left, then are refused.
        for (var i = 0; (await Store.ListMembersAsync(room.Id)).Count(m => m.Admission == AdmissionStatus.Pending) < 5; i++)
        {
            Assert.Equal(AddMemberOutcome.Added, await Store.TryAddMemberAsync(NewMember(room, "u-more" + i) with { ExpiresAt = expiresAt }, 8, 5));
        }

        Assert.Equal(AddMemberOutcome.TooManyPending, await Store.TryAddMemberAsync(NewMember(room, "u-late"), 8, 5));
        Assert.Null(await Store.FindMemberByUserAsync(room.Id, "u-late")); // nothing was kept
        Assert.Equal(AddMemberOutcome.Added, await Store.TryAddMemberAsync(Admitted(NewMember(room, "u-seated-2")), 8, 5)); // seats are another matter

        Time.Advance(TimeSpan.FromSeconds(30)); // the knocks expire
        Assert.Equal(AddMemberOutcome.Added, await Store.TryAddMemberAsync(NewMember(room, "u-late"), 8, 5));
    }

    [Fact]
    public async Task ConcurrentAdds_LoseNothing()
    {
        var (room, admin) = NewRoom();
        await Store.CreateRoomAsync(room, admin);

        var outcomes = await Concurrently(100, i => Store.TryAddMemberAsync(NewMember(room, "u" + i), 101, 100));

        Assert.All(outcomes, o => Assert.Equal(AddMemberOutcome.Added, o));
        var members = await Store.ListMembersAsync(room.Id);
        Assert.Equal(101, members.Count);
        Assert.Equal(101, members.Select(m => m.UserId).Distinct().Count());
        Assert.Equal(AddMemberOutcome.TooManyPending, await Store.TryAddMemberAsync(NewMember(room, "u-late"), 101, 100));
    }

    [Fact]
    public async Task TryAddMember_PendingKnocks_TakeNoSeat()
    {
        var (room, admin) = NewRoom();
        await Store.CreateRoomAsync(room, admin);

        for (var i = 0; i < 10; i++)
        {
            Assert.Equal(AddMemberOutcome.Added, await Store.TryAddMemberAsync(NewMember(room, "u-knock" + i), 3, 16));
        }

        Assert.Equal(11, (await Store.ListMembersAsync(room.Id)).Count);
        Assert.Equal(AddMemberOutcome.Added, await Store.TryAddMemberAsync(Admitted(NewMember(room, "u-seated1")), 3, 16));
        Assert.Equal(AddMemberOutcome.Added, await Store.TryAddMemberAsync(Admitted(NewMember(room, "u-seated2")), 3, 16));
        Assert.Equal(AddMemberOutcome.RoomFull, await Store.TryAddMemberAsync(Admitted(NewMember(room, "u-seated3")), 3, 16));
    }

    [Fact]
    public async Task TryUpdateMember_StaleVersion_Loses()
    {
        var (room, admin) = NewRoom();
        await Store.CreateRoomAsync(room, admin);

        var first = await Store.TryUpdateMemberAsync(admin with { DisplayName = "A1" });
        var second = await Store.TryUpdateMemberAsync(admin with { DisplayName = "A2" });

        Assert.Equal(admin with { DisplayName = "A1", Version = 1 }, first);
        Assert.Null(second);
        Assert.Equal(first, await Store.GetMemberAsync(room.Id, admin.Id));
        Assert.Equal(first, await Store.FindMemberByUserAsync(room.Id, admin.UserId));
    }

    [Fact]
    public async Task TryUpdateMember_StoresEveryField_AndClearsOptionalOnes()
    {
        var (room, admin) = NewRoom();
        await Store.CreateRoomAsync(room, admin);

        Assert.Equal(1, (await Store.GetMemberAsync(room.Id, admin.Id))!.ProtocolVersion); // a member that never said hello
        var connected = await Store.TryUpdateMemberAsync(admin with { Epoch = 1, ConnectionId = "c-1", ReadyAt = Time.GetUtcNow().AddTicks(1), ProtocolVersion = 2, IsVerified = true });
        Assert.Equal(admin with { Epoch = 1, ConnectionId = "c-1", ReadyAt = Time.GetUtcNow().AddTicks(1), ProtocolVersion = 2, IsVerified = true, Version = 1 }, connected);
        Assert.Equal(connected, await Store.GetMemberAsync(room.Id, admin.Id));
        Assert.Equal(connected, Assert.Single(await Store.ListMembersAsync(room.Id)));

        var offline = await Store.TryUpdateMemberAsync(connected! with { ConnectionId = null, ReadyAt = null, ProtocolVersion = 1 });
        Assert.Equal(connected with { ConnectionId = null, ReadyAt = null, ProtocolVersion = 1, Version = 2 }, offline);
        Assert.Equal(offline, await Store.GetMemberAsync(room.Id, admin.Id));
    }

    [Fact]
    public async Task TryUpdateMember_WithAnotherUsersId_Loses()
    {
        var (room, admin) = NewRoom();
        await Store.CreateRoomAsync(room, admin);
        Assert.Null(await Store.TryUpdateMemberAsync(admin with { UserId = "u-impostor" }));
        Assert.Equal(admin, await Store.GetMemberAsync(room.Id, admin.Id));
    }

    [Fact]
    public async Task ConcurrentIncrements_WithRetries_NeverLoseOne()
    {
        var (room, admin) = NewRoom();
        await Store.CreateRoomAsync(room, admin with { DisplayName = "0" });

        await Concurrently(50, async ValueTask<bool> (_) =>
        {
            while (true)
            {
                var current = (await Store.GetMemberAsync(room.Id, admin.Id))!;
                var next = int.Parse(current.DisplayName, CultureInfo.InvariantCulture) + 1;
                if (await Store.TryUpdateMemberAsync(current with { DisplayName = next.ToString(CultureInfo.InvariantCulture) }) is not null)
                {
                    return true;
                }
            }
        });

        var final = (await Store.GetMemberAsync(room.Id, admin.Id))!;
        Assert.Equal("50", final.DisplayName);
        Assert.Equal(50, final.Version);
    }

    [Fact]
    public async Task Ticket_IsSingleUse()
    {
        var (room, admin) = NewRoom();
        await Store.CreateRoomAsync(room, admin);
        var ticket = new TicketRecord(NewHash(), room.Id, admin.Id, Time.GetUtcNow().AddSeconds(30));
        await Store.StoreTicketAsync(ticket);

        Assert.Equal(ticket, await Store.ConsumeTicketAsync(ticket.Hash));
        Assert.Null(await Store.ConsumeTicketAsync(ticket.Hash));
    }

    [Fact]
    public async Task StoreTicket_DuplicateHash_Throws()
    {
        var (room, admin) = NewRoom();
        var ticket = new TicketRecord(NewHash(), room.Id, admin.Id, Time.GetUtcNow().AddSeconds(30));
        await Store.StoreTicketAsync(ticket);
        await Assert.ThrowsAsync<InvalidOperationException>(async () => await Store.StoreTicketAsync(ticket));
    }

    [Fact]
    public async Task ConsumeTicket_HundredConcurrentConsumers_ExactlyOneWins()
    {
        var (room, admin) = NewRoom();
        await Store.CreateRoomAsync(room, admin);
        var ticket = new TicketRecord(NewHash(), room.Id, admin.Id, Time.GetUtcNow().AddSeconds(30));
        await Store.StoreTicketAsync(ticket);

        var results = await Concurrently(100, _ => Store.ConsumeTicketAsync(ticket.Hash));

        Assert.Equal(ticket, Assert.Single(results, r => r is not null));
    }

    [Fact]
    public async Task TakeMemberTicketToWait_TakesAndBindsAPendingKnock_InOneStep_Once()
    {
        var (room, admin) = NewKeyedRoom();
        await Store.CreateRoomAsync(room, admin);
        var expiresAt = Time.GetUtcNow().AddSeconds(30);
        var hash = NewHash();
        var knock = NewKeyedMember(room, "u-knock") with { ExpiresAt = expiresAt, TicketHash = hash, TicketExpiresAt = expiresAt, Epoch = 2, SuspendedUntil = Time.GetUtcNow().AddSeconds(5) };
        Assert.Equal(AddMemberOutcome.Added, await Store.TryAddMemberAsync(knock, 8, 8));
        var now = Time.GetUtcNow();

        var taken = await Store.TakeMemberTicketToWaitAsync(room.Id, knock.Id, hash, "c-wait", 4, now);

        Assert.Equal(knock, taken); // as it was
        var stored = await Store.GetMemberAsync(room.Id, knock.Id);
        Assert.Equal(
            knock with { TicketHash = null, TicketExpiresAt = null, ExpiresAt = null, SuspendedUntil = null, Epoch = 3, Version = knock.Version + 1, ConnectionId = "c-wait", ReadyAt = now, ProtocolVersion = 4 },
            stored);
        Assert.Null(await Store.TakeMemberTicketToWaitAsync(room.Id, knock.Id, hash, "c-again", 4, now)); // once
        Assert.Null(await Store.TakeMemberTicketAsync(room.Id, knock.Id, hash));

        // Bound, it no longer lives as long as its ticket: it stays past the knock's expiry.
        Time.Advance(TimeSpan.FromSeconds(31));
        Assert.Equal("c-wait", (await Store.GetMemberAsync(room.Id, knock.Id))?.ConnectionId);
    }

    [Fact]
    public async Task TakeMemberTicketToWait_DoesNothing_ForAWrongHashAnExpiredTicketOrAMemberNoLongerPending()
    {
        var (room, admin) = NewKeyedRoom();
        await Store.CreateRoomAsync(room, admin);
        var expiresAt = Time.GetUtcNow().AddSeconds(30);
        var hash = NewHash();
        var knock = NewKeyedMember(room, "u-knock") with { ExpiresAt = expiresAt, TicketHash = hash, TicketExpiresAt = expiresAt };
        Assert.Equal(AddMemberOutcome.Added, await Store.TryAddMemberAsync(knock, 8, 8));

        Assert.Null(await Store.TakeMemberTicketToWaitAsync(room.Id, knock.Id, NewHash(), "c", 4, Time.GetUtcNow()));
        Assert.Null(await Store.TakeMemberTicketToWaitAsync(room.Id, knock.Id, hash, "c", 4, expiresAt)); // the ticket's last instant has passed
        Assert.Equal(knock, await Store.GetMemberAsync(room.Id, knock.Id));

        Assert.Equal(AdmitMemberOutcome.Admitted, await Store.TryAdmitMemberAsync(Admitted(knock) with { ExpiresAt = null }, 8));
        var admitted = await Store.GetMemberAsync(room.Id, knock.Id);

        Assert.Null(await Store.TakeMemberTicketToWaitAsync(room.Id, knock.Id, hash, "c", 4, Time.GetUtcNow()));
        Assert.Equal(admitted, await Store.GetMemberAsync(room.Id, knock.Id)); // nothing changed: the ticket is still there
        Assert.Equal(hash, admitted!.TicketHash);
        Assert.NotNull(await Store.TakeMemberTicketAsync(room.Id, knock.Id, hash)); // the ordinary take finds it
    }

    [Fact]
    public async Task TakeMemberTicket_IsSingleUse_ClearsTheTicket_AndBumpsTheVersion()
    {
        var (room, plain) = NewRoom();
        // A name that spells the record's own keys, and an instant to the tick: a store that edits the stored text must
        // touch neither.
        var admin = plain with { DisplayName = "Ada \",\"t\":\"x\",\"tx\":1,\"v\":9 }", JoinedAt = plain.JoinedAt.AddTicks(1_234_567) };
        var hash = NewHash();
        var expiresAt = Time.GetUtcNow().AddSeconds(30);
        await Store.CreateRoomAsync(room, admin with { TicketHash = hash, TicketExpiresAt = expiresAt });
        Assert.Equal(hash, (await Store.GetMemberAsync(room.Id, admin.Id))?.TicketHash);

        var taken = await Store.TakeMemberTicketAsync(room.Id, admin.Id, hash);

        Assert.Equal(admin with { TicketHash = hash, TicketExpiresAt = expiresAt }, taken); // as it was: ticket, expiry, version
        var after = (await Store.GetMemberAsync(room.Id, admin.Id))!;
        Assert.Equal(taken! with { TicketHash = null, TicketExpiresAt = null, Version = admin.Version + 1 }, after); // nothing else moved
        Assert.Null(await Store.TakeMemberTicketAsync(room.Id, admin.Id, hash));

        // A writer that read the member before the take cannot write the ticket back.
        Assert.Null(await Store.TryUpdateMemberAsync(taken! with { DisplayName = "stale" }));
        Assert.Null(await Store.TakeMemberTicketAsync(room.Id, admin.Id, hash));
    }

    [Fact]
    public async Task TakeMemberTicket_WithAnotherHash_ChangesNothing_AndTheRightOneStillWorks()
    {
        var (room, admin) = NewRoom();
        var hash = NewHash();
        var stored = admin with { TicketHash = hash, TicketExpiresAt = Time.GetUtcNow().AddSeconds(30) };
        await Store.CreateRoomAsync(room, stored);

        Assert.Null(await Store.TakeMemberTicketAsync(room.Id, admin.Id, NewHash()));
        Assert.Null(await Store.TakeMemberTicketAsync(room.Id, MemberId.New(), hash)); // another member of the room
        Assert.Null(await Store.TakeMemberTicketAsync(RoomId.New(), admin.Id, hash)); // another room

        Assert.Equal(stored, await Store.GetMemberAsync(room.Id, admin.Id));
        Assert.Equal(admin.Id, (await Store.TakeMemberTicketAsync(room.Id, admin.Id, hash))?.Id);
    }

    [Fact]
    public async Task TakeMemberTicket_HundredConcurrentTakers_ExactlyOneWins()
    {
        var (room, admin) = NewRoom();
        var hash = NewHash();
        await Store.CreateRoomAsync(room, admin with { TicketHash = hash, TicketExpiresAt = Time.GetUtcNow().AddSeconds(30) });

        var results = await Concurrently(100, _ => Store.TakeMemberTicketAsync(room.Id, admin.Id, hash));

        Assert.Equal(admin.Id, Assert.Single(results, r => r is not null)!.Id);
        Assert.Equal(admin.Version + 1, (await Store.GetMemberAsync(room.Id, admin.Id))?.Version);
    }

    [Fact]
    public async Task MemberTicket_SurvivesOtherWrites_AndAnAdmission_AndIsReplacedByANewerOne()
    {
        var (room, admin) = NewRoom();
        await Store.CreateRoomAsync(room, admin);
        var first = NewHash();
        var bob = NewMember(room, "u-bob") with { ExpiresAt = Time.GetUtcNow().AddSeconds(30), TicketHash = first, TicketExpiresAt = Time.GetUtcNow().AddSeconds(30) };
        Assert.Equal(AddMemberOutcome.Added, await Store.TryAddMemberAsync(bob, 8, 8));
        Assert.Equal(first, (await Store.FindMemberByUserAsync(room.Id, "u-bob"))?.TicketHash);

        var renamed = await Store.TryUpdateMemberAsync(bob with { DisplayName = "Bob" });
        Assert.Equal(AdmitMemberOutcome.Admitted, await Store.TryAdmitMemberAsync(Admitted(renamed!), 8));
        Assert.Equal(first, (await Store.GetMemberAsync(room.Id, bob.Id))?.TicketHash);

        var second = NewHash();
        var current = (await Store.GetMemberAsync(room.Id, bob.Id))!;
        Assert.NotNull(await Store.TryUpdateMemberAsync(current with { TicketHash = second }));

        Assert.Null(await Store.TakeMemberTicketAsync(room.Id, bob.Id, first));
        Assert.Equal(AdmissionStatus.Admitted, (await Store.TakeMemberTicketAsync(room.Id, bob.Id, second))?.Admission);
    }

    [Fact]
    public async Task TakeMemberTicket_OfAnExpiredMember_ReturnsNothing()
    {
        var (room, admin) = NewRoom();
        await Store.CreateRoomAsync(room, admin);
        var hash = NewHash();
        var expiresAt = Time.GetUtcNow().AddSeconds(30);
        var bob = NewMember(room, "u-bob") with { ExpiresAt = expiresAt, TicketHash = hash, TicketExpiresAt = expiresAt };
        Assert.Equal(AddMemberOutcome.Added, await Store.TryAddMemberAsync(bob, 8, 8));

        Time.Advance(TimeSpan.FromSeconds(30)); // the knock expires with its ticket

        Assert.Null(await Store.TakeMemberTicketAsync(room.Id, bob.Id, hash));
    }

    [Fact]
    public async Task Connections_PutGetReplaceRemove()
    {
        var (room, admin) = NewRoom();
        var id = "conn-" + NewHash();
        var binding = new ConnectionRecord(id, room.Id, admin.Id, 1, room.ExpiresAt);
        await Store.PutConnectionAsync(binding);
        Assert.Equal(binding, await Store.GetConnectionAsync(id));

        var rebound = binding with { Epoch = 2 };
        await Store.PutConnectionAsync(rebound);
        Assert.Equal(rebound, await Store.GetConnectionAsync(id));

        Assert.Equal(rebound, await Store.RemoveConnectionAsync(id));
        Assert.Null(await Store.GetConnectionAsync(id));
        Assert.Null(await Store.RemoveConnectionAsync(id));
    }

    [Fact]
    public async Task Reads_AfterExpiry_SeeNothing()
    {
        var (room, admin) = NewRoom();
        await Store.CreateRoomAsync(room, admin);
        var bob = NewMember(room, "u-bob");
        Assert.Equal(AddMemberOutcome.Added, await Store.TryAddMemberAsync(bob, 8, 8));
        var connection = "conn-" + NewHash();
        await Store.PutConnectionAsync(new ConnectionRecord(connection, room.Id, admin.Id, 1, room.ExpiresAt));
        var ticket = new TicketRecord(NewHash(), room.Id, admin.Id, Time.GetUtcNow().AddSeconds(30));
        await Store.StoreTicketAsync(ticket);

        Time.Advance(TimeSpan.FromSeconds(30));
        var consumed = await Store.ConsumeTicketAsync(ticket.Hash);
        Assert.True(consumed is null || consumed.ExpiresAt <= Time.GetUtcNow(), "An expired ticket is either gone or returned for the caller to refuse.");
        Assert.NotNull(await Store.GetRoomAsync(room.Id));

        Time.Advance(room.ExpiresAt - Time.GetUtcNow()); // exactly at expiry: gone

        Assert.Null(await Store.GetRoomAsync(room.Id));
        Assert.Null(await Store.GetMemberAsync(room.Id, admin.Id));
        Assert.Null(await Store.FindMemberByUserAsync(room.Id, "u-bob"));
        Assert.Empty(await Store.ListMembersAsync(room.Id));
        Assert.Null(await Store.GetConnectionAsync(connection));
        Assert.Equal(AddMemberOutcome.RoomNotFound, await Store.TryAddMemberAsync(NewMember(room, "u-late"), 8, 8));
        Assert.Null(await Store.TryUpdateMemberAsync(bob with { DisplayName = "too late" }));
    }

    [Fact]
    public async Task Reads_JustBeforeExpiry_StillSeeEverything()
    {
        var (room, admin) = NewRoom();
        await Store.CreateRoomAsync(room, admin);
        var connection = "conn-" + NewHash();
        await Store.PutConnectionAsync(new ConnectionRecord(connection, room.Id, admin.Id, 1, room.ExpiresAt));

        Time.Advance(room.ExpiresAt - Time.GetUtcNow() - TimeSpan.FromMilliseconds(1));

        Assert.NotNull(await Store.GetRoomAsync(room.Id));
        Assert.NotNull(await Store.GetMemberAsync(room.Id, admin.Id));
        Assert.Single(await Store.ListMembersAsync(room.Id));
        Assert.NotNull(await Store.GetConnectionAsync(connection));
    }

    [Fact]
    public async Task SuspendedUntil_RoundTripsThroughAddAndUpdate_AndAnUpdateWithoutItClearsIt()
    {
        var (room, admin) = NewRoom();
        await Store.CreateRoomAsync(room, admin);
        var bob = Admitted(NewMember(room, "u-bob")) with { Epoch = 2, ReadyAt = Time.GetUtcNow(), SuspendedUntil = Time.GetUtcNow().AddSeconds(30).AddTicks(12_345) };
        Assert.Equal(AddMemberOutcome.Added, await Store.TryAddMemberAsync(bob, 8, 8));
        Assert.Equal(bob, await Store.GetMemberAsync(room.Id, bob.Id));
        Assert.Equal(bob, await Store.FindMemberByUserAsync(room.Id, "u-bob"));
        Assert.True((await Store.GetMemberAsync(room.Id, bob.Id))!.IsPresent);

        var later = await Store.TryUpdateMemberAsync(bob with { SuspendedUntil = Time.GetUtcNow().AddMinutes(1).AddTicks(7) });
        Assert.Equal(bob with { SuspendedUntil = Time.GetUtcNow().AddMinutes(1).AddTicks(7), Version = 1 }, later);
        Assert.Equal(later, await Store.GetMemberAsync(room.Id, bob.Id));

        var resumed = await Store.TryUpdateMemberAsync(later! with { SuspendedUntil = null, ConnectionId = "c-resumed" });
        Assert.Equal(later with { SuspendedUntil = null, ConnectionId = "c-resumed", Version = 2 }, resumed);
        Assert.Equal(resumed, await Store.GetMemberAsync(room.Id, bob.Id));
        Assert.Equal(resumed, Assert.Single(await Store.ListMembersAsync(room.Id), m => m.Id == bob.Id));
    }

    [Fact]
    public async Task EnqueueThenTake_ReturnsTheMessagesInOrder_ByteExact_AndTakingAgainFindsNothing()
    {
        var (room, admin) = NewRoom();
        await Store.CreateRoomAsync(room, admin);
        var expiresAt = Time.GetUtcNow().AddSeconds(30);
        byte[][] messages =
        [
            "{\"type\":\"offer\",\"sdp\":\"v=0\"}"u8.ToArray(),
            "{\"type\":\"chat\",\"text\":\"Grüße ✓ \\\"quoted\\\"\"}"u8.ToArray(),
            Enumerable.Range(0, 256).Select(i => (byte)i).ToArray(), // every byte value: stores keep bytes, not text
            "x"u8.ToArray(),
        ];
        var buffer = messages[0].ToArray();
        Assert.True(await Store.EnqueueMessageAsync(room.Id, admin.Id, 1, buffer, 10, 4096, expiresAt));
        buffer.AsSpan().Fill((byte)'!'); // the caller's buffer is the caller's again
        foreach (var message in messages.Skip(1))
        {
            Assert.True(await Store.EnqueueMessageAsync(room.Id, admin.Id, 1, message, 10, 4096, expiresAt));
        }

        var taken = await Store.TakeQueuedMessagesAsync(room.Id, admin.Id, 1);

        Assert.Equal(0, taken.Dropped);
        Assert.Equal(messages.Length, taken.Messages.Count);
        for (var i = 0; i < messages.Length; i++)
        {
            Assert.Equal(messages[i], taken.Messages[i].ToArray());
        }

        var again = await Store.TakeQueuedMessagesAsync(room.Id, admin.Id, 1);
        Assert.Empty(again.Messages);
        Assert.Equal(0, again.Dropped);
    }

    [Fact]
    public async Task Take_OfAQueueNeverWritten_IsEmpty()
    {
        var (room, admin) = NewRoom();
        await Store.CreateRoomAsync(room, admin);

        var taken = await Store.TakeQueuedMessagesAsync(room.Id, admin.Id, 1);

        Assert.Empty(taken.Messages);
        Assert.Equal(0, taken.Dropped);
    }

    [Fact]
    public async Task Enqueue_BeyondTheCountBound_IsRefusedAndCounted_AndTakeReturnsTheDroppedCountThenResetsIt()
    {
        var (room, admin) = NewRoom();
        await Store.CreateRoomAsync(room, admin);
        var expiresAt = Time.GetUtcNow().AddSeconds(30);
        for (var i = 0; i < 3; i++)
        {
            Assert.True(await Store.EnqueueMessageAsync(room.Id, admin.Id, 1, Message(i), 3, 4096, expiresAt));
        }

        Assert.False(await Store.EnqueueMessageAsync(room.Id, admin.Id, 1, Message(3), 3, 4096, expiresAt));
        Assert.False(await Store.EnqueueMessageAsync(room.Id, admin.Id, 1, Message(4), 3, 4096, expiresAt));

        var taken = await Store.TakeQueuedMessagesAsync(room.Id, admin.Id, 1);
        Assert.Equal([0, 1, 2], taken.Messages.Select(Index));
        Assert.Equal(2, taken.Dropped);

        // Taken: the queue starts empty again, with nothing dropped.
        Assert.True(await Store.EnqueueMessageAsync(room.Id, admin.Id, 1, Message(5), 3, 4096, expiresAt));
        taken = await Store.TakeQueuedMessagesAsync(room.Id, admin.Id, 1);
        Assert.Equal([5], taken.Messages.Select(Index));
        Assert.Equal(0, taken.Dropped);
    }

    [Fact]
    public async Task Enqueue_BeyondTheByteBound_IsRefusedAndCounted_ButAMessageThatFitsExactlyIsStored()
    {
        var (room, admin) = NewRoom();
        await Store.CreateRoomAsync(room, admin);
        var expiresAt = Time.GetUtcNow().AddSeconds(30);

        Assert.True(await Store.EnqueueMessageAsync(room.Id, admin.Id, 1, new byte[60], 10, 100, expiresAt));
        Assert.False(await Store.EnqueueMessageAsync(room.Id, admin.Id, 1, new byte[41], 10, 100, expiresAt)); // 101 bytes
        Assert.True(await Store.EnqueueMessageAsync(room.Id, admin.Id, 1, new byte[40], 10, 100, expiresAt)); // exactly 100
        Assert.False(await Store.EnqueueMessageAsync(room.Id, admin.Id, 1, new byte[1], 10, 100, expiresAt));

        var taken = await Store.TakeQueuedMessagesAsync(room.Id, admin.Id, 1);
        Assert.Equal([60, 40], taken.Messages.Select(m => m.Length));
        Assert.Equal(2, taken.Dropped);
    }

    [Fact]
    public async Task Enqueue_OfAMessageLargerThanTheWholeBound_IntoAnEmptyQueue_IsCountedAsDropped()
    {
        var (room, admin) = NewRoom();
        await Store.CreateRoomAsync(room, admin);
        var expiresAt = Time.GetUtcNow().AddSeconds(30);

        Assert.False(await Store.EnqueueMessageAsync(room.Id, admin.Id, 1, new byte[101], 10, 100, expiresAt));
        Assert.False(await Store.EnqueueMessageAsync(room.Id, admin.Id, 2, Message(0), 0, 100, expiresAt)); // no room at all
        Assert.True(await Store.EnqueueMessageAsync(room.Id, admin.Id, 1, new byte[100], 10, 100, expiresAt));

        var taken = await Store.TakeQueuedMessagesAsync(room.Id, admin.Id, 1);
        Assert.Equal([100], taken.Messages.Select(m => m.Length));
        Assert.Equal(1, taken.Dropped);
        var none = await Store.TakeQueuedMessagesAsync(room.Id, admin.Id, 2);
        Assert.Empty(none.Messages);
        Assert.Equal(1, none.Dropped);
    }

    [Fact]
    public async Task Queues_ArePerRoomMemberAndEpoch_WithoutCrossTalk()
    {
        var (room, admin) = NewRoom();
        await Store.CreateRoomAsync(room, admin);
        var (other, _) = NewRoom();
        var bob = MemberId.New();
        var expiresAt = Time.GetUtcNow().AddSeconds(30);
        Assert.True(await Store.EnqueueMessageAsync(room.Id, admin.Id, 1, Message(1), 1, 4096, expiresAt));
        Assert.True(await Store.EnqueueMessageAsync(room.Id, admin.Id, 2, Message(2), 1, 4096, expiresAt)); // its own bound
        Assert.True(await Store.EnqueueMessageAsync(room.Id, bob, 1, Message(3), 1, 4096, expiresAt));
        Assert.False(await Store.EnqueueMessageAsync(room.Id, bob, 1, Message(4), 1, 4096, expiresAt));

        Assert.Empty((await Store.TakeQueuedMessagesAsync(other.Id, admin.Id, 1)).Messages);
        Assert.Empty((await Store.TakeQueuedMessagesAsync(room.Id, admin.Id, 3)).Messages);
        var bobs = await Store.TakeQueuedMessagesAsync(room.Id, bob, 1);
        Assert.Equal([3], bobs.Messages.Select(Index));
        Assert.Equal(1, bobs.Dropped);
        var epoch2 = await Store.TakeQueuedMessagesAsync(room.Id, admin.Id, 2);
        Assert.Equal([2], epoch2.Messages.Select(Index));
        Assert.Equal(0, epoch2.Dropped);
        var epoch1 = await Store.TakeQueuedMessagesAsync(room.Id, admin.Id, 1);
        Assert.Equal([1], epoch1.Messages.Select(Index));
        Assert.Equal(0, epoch1.Dropped);
    }

    [Fact]
    public async Task ConcurrentEnqueues_StoreExactlyTheBound_CountTheRestAsDropped_AndKeepEachStoredMessageOnce()
    {
        var (room, admin) = NewRoom();
        await Store.CreateRoomAsync(room, admin);
        var expiresAt = Time.GetUtcNow().AddSeconds(30);

        var stored = await Concurrently(50, i => Store.EnqueueMessageAsync(room.Id, admin.Id, 1, Message(i), 20, 1 << 20, expiresAt));

        Assert.Equal(20, stored.Count(s => s));
        var taken = await Store.TakeQueuedMessagesAsync(room.Id, admin.Id, 1);
        Assert.Equal(30, taken.Dropped);
        var indexes = taken.Messages.Select(Index).ToList();
        Assert.Equal(20, indexes.Count);
        Assert.Equal(20, indexes.Distinct().Count());
        Assert.Equal(Enumerable.Range(0, 50).Where(i => stored[i]).Order(), indexes.Order()); // exactly the accepted ones
    }

    [Fact]
    public async Task ConcurrentEnqueues_UnderTheByteBound_NeverExceedIt()
    {
        var (room, admin) = NewRoom();
        await Store.CreateRoomAsync(room, admin);
        var expiresAt = Time.GetUtcNow().AddSeconds(30);

        var stored = await Concurrently(40, i => Store.EnqueueMessageAsync(room.Id, admin.Id, 1, new byte[10 + (i % 3)], 1000, 200, expiresAt));

        var taken = await Store.TakeQueuedMessagesAsync(room.Id, admin.Id, 1);
        Assert.Equal(stored.Count(s => s), taken.Messages.Count);
        Assert.Equal(40 - taken.Messages.Count, taken.Dropped);
        Assert.InRange(taken.Messages.Sum(m => m.Length), 189, 200); // no message that fitted was refused (12 bytes at most)
    }

    [Fact]
    public async Task ConcurrentTakers_ReceiveEachMessageExactlyOnce()
    {
        var (room, admin) = NewRoom();
        await Store.CreateRoomAsync(room, admin);
        var expiresAt = Time.GetUtcNow().AddSeconds(30);
        for (var i = 0; i < 30; i++)
        {
            Assert.True(await Store.EnqueueMessageAsync(room.Id, admin.Id, 1, Message(i), 30, 1 << 20, expiresAt));
        }

        Assert.False(await Store.EnqueueMessageAsync(room.Id, admin.Id, 1, Message(30), 30, 1 << 20, expiresAt));

        var results = await Concurrently(10, _ => Store.TakeQueuedMessagesAsync(room.Id, admin.Id, 1));

        var winner = Assert.Single(results, r => r.Messages.Count > 0);
        Assert.Equal(Enumerable.Range(0, 30), winner.Messages.Select(Index));
        Assert.Equal(1, winner.Dropped);
        Assert.All(results.Where(r => !ReferenceEquals(r, winner)), r => Assert.Equal(0, r.Dropped));
    }

    [Fact]
    public async Task ConcurrentEnqueuesAndTakes_LoseNoMessage_AndDuplicateNone()
    {
        var (room, admin) = NewRoom();
        await Store.CreateRoomAsync(room, admin);
        var expiresAt = Time.GetUtcNow().AddSeconds(30);

        var outcomes = await Concurrently(60, async ValueTask<(bool Stored, QueuedMessages? Taken)> (i) =>
        {
            if (i % 3 == 0)
            {
                return (false, await Store.TakeQueuedMessagesAsync(room.Id, admin.Id, 1));
            }

            return (await Store.EnqueueMessageAsync(room.Id, admin.Id, 1, Message(i), 1000, 1 << 20, expiresAt), null);
        });
        var rest = await Store.TakeQueuedMessagesAsync(room.Id, admin.Id, 1);

        var received = outcomes.Where(o => o.Taken is not null).SelectMany(o => o.Taken!.Messages).Concat(rest.Messages).Select(Index).ToList();
        Assert.Equal(Enumerable.Range(0, 60).Where(i => i % 3 != 0), received.Order());
        Assert.All(outcomes.Where(o => o.Taken is null), o => Assert.True(o.Stored));
    }

    [Fact]
    public async Task Queue_IsGoneAtItsExpiry_UnlessAnEnqueueExtendedIt_AndAnEnqueueAfterItStartsAFreshQueue()
    {
        var (room, admin) = NewRoom();
        await Store.CreateRoomAsync(room, admin);
        var now = Time.GetUtcNow();
        Assert.True(await Store.EnqueueMessageAsync(room.Id, admin.Id, 1, Message(0), 3, 4096, now.AddSeconds(10)));
        Assert.True(await Store.EnqueueMessageAsync(room.Id, admin.Id, 1, Message(1), 3, 4096, now.AddSeconds(20))); // extends
        Assert.True(await Store.EnqueueMessageAsync(room.Id, admin.Id, 1, Message(2), 3, 4096, now.AddSeconds(5))); // does not shorten
        Assert.False(await Store.EnqueueMessageAsync(room.Id, admin.Id, 1, Message(9), 3, 4096, now.AddSeconds(5))); // nor when dropped
        Assert.True(await Store.EnqueueMessageAsync(room.Id, admin.Id, 2, Message(3), 2, 4096, now.AddSeconds(10)));
        Assert.False(await Store.EnqueueMessageAsync(room.Id, admin.Id, 2, new byte[5000], 2, 4096, now.AddSeconds(10)));

        Time.Advance(TimeSpan.FromSeconds(10)); // exactly at epoch 2's expiry: gone, dropped count and all
        var expired = await Store.TakeQueuedMessagesAsync(room.Id, admin.Id, 2);
        Assert.Empty(expired.Messages);
        Assert.Equal(0, expired.Dropped);

        Time.Advance(TimeSpan.FromSeconds(10) - TimeSpan.FromMilliseconds(1)); // just before epoch 1's extended expiry
        var kept = await Store.TakeQueuedMessagesAsync(room.Id, admin.Id, 1);
        Assert.Equal([0, 1, 2], kept.Messages.Select(Index));
        Assert.Equal(1, kept.Dropped);

        // An enqueue after the expiry finds nothing of the old queue: its messages, bytes and dropped count are gone.
        Assert.True(await Store.EnqueueMessageAsync(room.Id, admin.Id, 3, Message(4), 2, 4096, Time.GetUtcNow().AddSeconds(10)));
        Assert.True(await Store.EnqueueMessageAsync(room.Id, admin.Id, 3, Message(5), 2, 4096, Time.GetUtcNow().AddSeconds(10)));
        Assert.False(await Store.EnqueueMessageAsync(room.Id, admin.Id, 3, Message(6), 2, 4096, Time.GetUtcNow().AddSeconds(10)));
        Time.Advance(TimeSpan.FromSeconds(10));
        Assert.True(await Store.EnqueueMessageAsync(room.Id, admin.Id, 3, Message(7), 2, 4096, Time.GetUtcNow().AddSeconds(10)));
        Assert.True(await Store.EnqueueMessageAsync(room.Id, admin.Id, 3, Message(8), 2, 4096, Time.GetUtcNow().AddSeconds(10)));
        var fresh = await Store.TakeQueuedMessagesAsync(room.Id, admin.Id, 3);
        Assert.Equal([7, 8], fresh.Messages.Select(Index));
        Assert.Equal(0, fresh.Dropped);
    }

    [Fact]
    public async Task Queues_AreNotMembers_AndLeaveTheRoomsMembersAlone()
    {
        var (room, admin) = NewRoom();
        await Store.CreateRoomAsync(room, admin);
        var bob = Admitted(NewMember(room, "u-bob")) with { Epoch = 1, ReadyAt = Time.GetUtcNow(), SuspendedUntil = Time.GetUtcNow().AddSeconds(30) };
        Assert.Equal(AddMemberOutcome.Added, await Store.TryAddMemberAsync(bob, 2, 8));
        Assert.True(await Store.EnqueueMessageAsync(room.Id, bob.Id, 1, Message(0), 10, 4096, bob.SuspendedUntil!.Value));
        Assert.True(await Store.EnqueueMessageAsync(room.Id, MemberId.New(), 1, Message(1), 10, 4096, bob.SuspendedUntil!.Value));

        Assert.Equal(new HashSet<MemberId> { admin.Id, bob.Id }, (await Store.ListMembersAsync(room.Id)).Select(m => m.Id).ToHashSet());
        Assert.Equal(bob, await Store.GetMemberAsync(room.Id, bob.Id));
        Assert.Equal(AddMemberOutcome.RoomFull, await Store.TryAddMemberAsync(Admitted(NewMember(room, "u-carol")), 2, 8));
        Assert.Equal(AddMemberOutcome.Added, await Store.TryAddMemberAsync(NewMember(room, "u-dave"), 2, 1)); // one knock: the queues are no knocks
        Assert.Equal([0], (await Store.TakeQueuedMessagesAsync(room.Id, bob.Id, 1)).Messages.Select(Index));
    }

    /// <summary>A small JSON frame that names its index (see <see cref="Index"/>).</summary>
    /// <param name="index">The index.</param>
    /// <returns>The frame, UTF-8.</returns>
    protected static byte[] Message(int index) => System.Text.Encoding.UTF8.GetBytes("{\"type\":\"relay\",\"n\":" + index.ToString(CultureInfo.InvariantCulture) + "}");

    /// <summary>Reads the index back from a frame made by <see cref="Message"/>.</summary>
    /// <param name="message">The frame.</param>
    /// <returns>The index.</returns>
    protected static int Index(ReadOnlyMemory<byte> message)
    {
        var text = System.Text.Encoding.UTF8.GetString(message.Span);
        var start = text.IndexOf("\"n\":", StringComparison.Ordinal) + 4;
        return int.Parse(text.AsSpan(start, text.Length - start - 1), CultureInfo.InvariantCulture);
    }

    /// <summary>Creates a room (join window 5 min, kept 15 min) and its admin.</summary>
    /// <returns>The room and the admin.</returns>
    protected (RoomRecord Room, MemberRecord Admin) NewRoom()
    {
        var now = Time.GetUtcNow();
        var room = new RoomRecord(RoomId.New(), MemberId.New(), now, now.AddMinutes(5), now.AddMinutes(15));
        var admin = new MemberRecord
        {
            Room = room.Id,
            Id = room.AdminMember,
            UserId = "u-admin",
            DisplayName = "Ada",
            IsAdmin = true,
            Admission = AdmissionStatus.Admitted,
            JoinedAt = now,
        };
        return (room, admin);
    }

    /// <summary>Creates a room with a member-id key (as the engine creates every room) and its admin, whose id its user derives.</summary>
    /// <returns>The room and the admin.</returns>
    protected (RoomRecord Room, MemberRecord Admin) NewKeyedRoom()
    {
        var (room, admin) = NewRoom();
        room = room with { MemberIdKey = RoomRecord.NewMemberIdKey() };
        var id = room.MemberIdOf(admin.UserId)!.Value;
        return (room with { AdminMember = id }, admin with { Id = id });
    }

    /// <summary>Creates a pending member of a room with a member-id key: its id is the one its user derives.</summary>
    /// <param name="room">The room.</param>
    /// <param name="userId">The user.</param>
    /// <returns>The member.</returns>
    protected MemberRecord NewKeyedMember(RoomRecord room, string userId) => NewMember(room, userId) with { Id = room.MemberIdOf(userId)!.Value };

    /// <summary>Creates a pending member of a room.</summary>
    /// <param name="room">The room.</param>
    /// <param name="userId">The user.</param>
    /// <returns>The member.</returns>
    protected MemberRecord NewMember(RoomRecord room, string userId)
        => new() { Room = room.Id, Id = MemberId.New(), UserId = userId, DisplayName = "U " + userId, JoinedAt = Time.GetUtcNow() };

    /// <summary>Gets the member as admitted (same version).</summary>
    /// <param name="member">The member.</param>
    /// <returns>The member, admitted.</returns>
    protected static MemberRecord Admitted(MemberRecord member) => member with { Admission = AdmissionStatus.Admitted };

    /// <summary>Runs <paramref name="count"/> operations at once on the thread pool.</summary>
    /// <typeparam name="T">The result type.</typeparam>
    /// <param name="count">How many.</param>
    /// <param name="operation">The operation, given its index.</param>
    /// <returns>The results.</returns>
    protected static async Task<T[]> Concurrently<T>(int count, Func<int, ValueTask<T>> operation)
    {
        using var start = new ManualResetEventSlim();
        var tasks = Enumerable.Range(0, count).Select(i => Task.Run(async () =>
        {
            start.Wait();
            return await operation(i);
        })).ToArray();
        start.Set();
        return await Task.WhenAll(tasks);
    }

    private static string NewHash() => Convert.ToBase64String(Guid.NewGuid().ToByteArray()).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
