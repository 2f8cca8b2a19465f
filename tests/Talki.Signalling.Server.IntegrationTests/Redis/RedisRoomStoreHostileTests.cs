using Microsoft.Extensions.Time.Testing;
using StackExchange.Redis;
using Talki.Signalling.Ports;
using Talki.Signalling.Redis.Internal;
using Talki.Signalling.Redis.Storage;
using Talki.Signalling.Server.IntegrationTests.Sessions;

namespace Talki.Signalling.Server.IntegrationTests.Redis;

/// <summary>The Redis store under attack: racing instances (one connection each), colliding deployments, Redis going away.</summary>
public sealed class RedisRoomStoreHostileTests(RedisServerFixture redis) : IClassFixture<RedisServerFixture>, IAsyncLifetime
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
    private readonly List<RedisConnection> _connections = [];

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var connection in _connections)
        {
            await connection.DisposeAsync();
        }
    }

    [Fact]
    public async Task ConsumeTicket_FiftyConsumersOnFiveInstances_ExactlyOneGetsIt()
    {
        var prefix = RedisTestStores.NewPrefix();
        var stores = Enumerable.Range(0, 5).Select(_ => RedisTestStores.Store(Connect(), _time, prefix)).ToArray();
        var ticket = new TicketRecord("hash-" + Guid.NewGuid().ToString("N"), RoomId.New(), MemberId.New(), _time.GetUtcNow().AddSeconds(30));
        await stores[0].StoreTicketAsync(ticket);

        var results = await Concurrently(50, i => stores[i % stores.Length].ConsumeTicketAsync(ticket.Hash));

        Assert.Equal(ticket, Assert.Single(results, r => r is not null));
        Assert.False(await redis.Client.GetDatabase().KeyExistsAsync(stores[0].TicketKey(ticket.Hash)));
    }

    [Fact]
    public async Task TryAdmitMember_AtTheCapacity_FromFiveInstances_NeverOverCapacity()
    {
        var prefix = RedisTestStores.NewPrefix();
        var stores = Enumerable.Range(0, 5).Select(_ => RedisTestStores.Store(Connect(), _time, prefix)).ToArray();
        var (room, admin) = NewRoom();
        await stores[0].CreateRoomAsync(room, admin);
        var knocks = Enumerable.Range(0, 40).Select(i => Member(room, "u-knock" + i)).ToArray();
        foreach (var knock in knocks)
        {
            Assert.Equal(AddMemberOutcome.Added, await stores[1].TryAddMemberAsync(knock, 4, 64));
        }

        // 3 seats free (the admin holds one of 4); admissions and admitted adds race from every instance.
        var admits = Concurrently(40, i => stores[i % 5].TryAdmitMemberAsync(knocks[i] with { Admission = AdmissionStatus.Admitted }, 4));
        var adds = Concurrently(20, i => stores[(i + 2) % 5].TryAddMemberAsync(Member(room, "u-direct" + i) with { Admission = AdmissionStatus.Admitted }, 4, 64));
        var admitted = (await admits).Count(o => o == AdmitMemberOutcome.Admitted) + (await adds).Count(o => o == AddMemberOutcome.Added);

        Assert.Equal(3, admitted);
        var members = await stores[4].ListMembersAsync(room.Id);
        Assert.Equal(4, members.Count(m => m.Admission == AdmissionStatus.Admitted));
    }

    [Fact]
    public async Task EnqueueAndTake_RacingOnFiveInstances_KeepTheBound_AndDeliverEachMessageOnce()
    {
        var prefix = RedisTestStores.NewPrefix();
        var stores = Enumerable.Range(0, 5).Select(_ => RedisTestStores.Store(Connect(), _time, prefix)).ToArray();
        var (room, admin) = NewRoom();
        var expiresAt = _time.GetUtcNow().AddSeconds(30);

        var stored = await Concurrently(50, i => stores[i % 5].EnqueueMessageAsync(room.Id, admin.Id, 1, BitConverter.GetBytes(i), 20, 1024, expiresAt));
        var taken = await Concurrently(10, i => stores[i % 5].TakeQueuedMessagesAsync(room.Id, admin.Id, 1));

        Assert.Equal(20, stored.Count(s => s));
        var winner = Assert.Single(taken, t => t.Messages.Count > 0);
        Assert.Equal(30, winner.Dropped);
        Assert.Equal(Enumerable.Range(0, 50).Where(i => stored[i]).Order(), winner.Messages.Select(m => BitConverter.ToInt32(m.Span)).Order());
    }

    [Fact]
    public async Task TwoDeployments_WithTheSameRoomAndTicketIds_NeverSeeEachOther()
    {
        var connection = Connect();
        var tenantA = RedisTestStores.Store(connection, _time, RedisTestStores.NewPrefix());
        var tenantB = RedisTestStores.Store(connection, _time, RedisTestStores.NewPrefix());
        var (room, admin) = NewRoom();
        await tenantA.CreateRoomAsync(room, admin);
        await tenantB.CreateRoomAsync(room, admin with { UserId = "u-other-admin", DisplayName = "Other" }); // same ids, no collision
        var bob = Member(room, "u-bob");
        Assert.Equal(AddMemberOutcome.Added, await tenantA.TryAddMemberAsync(bob, 8, 8));
        var ticket = new TicketRecord("same-hash-" + Guid.NewGuid().ToString("N"), room.Id, admin.Id, _time.GetUtcNow().AddSeconds(30));
        await tenantA.StoreTicketAsync(ticket);
        await tenantB.StoreTicketAsync(ticket with { Member = bob.Id });
        await tenantA.PutConnectionAsync(new ConnectionRecord("conn-same", room.Id, admin.Id, 1, room.ExpiresAt));

        Assert.Equal("Ada", (await tenantA.GetMemberAsync(room.Id, admin.Id))!.DisplayName);
        Assert.Equal("Other", (await tenantB.GetMemberAsync(room.Id, admin.Id))!.DisplayName);
        Assert.Null(await tenantB.FindMemberByUserAsync(room.Id, "u-bob"));
        Assert.Single(await tenantB.ListMembersAsync(room.Id));
        Assert.Equal(bob.Id, (await tenantB.ConsumeTicketAsync(ticket.Hash))!.Member);
        Assert.Equal(ticket, await tenantA.ConsumeTicketAsync(ticket.Hash));
        Assert.Null(await tenantB.GetConnectionAsync("conn-same"));
    }

    [Fact]
    public async Task Keys_ExpireInRedisWithTheirRecords_AndTheRoomsKeysShareOneHashTag()
    {
        var prefix = RedisTestStores.NewPrefix();
        var store = RedisTestStores.Store(Connect(), _time, prefix);
        var (room, admin) = NewRoom();
        await store.CreateRoomAsync(room, admin);
        Assert.Equal(AddMemberOutcome.Added, await store.TryAddMemberAsync(Member(room, "u-bob"), 8, 8));
        await store.StoreTicketAsync(new TicketRecord("h-" + Guid.NewGuid().ToString("N"), room.Id, admin.Id, _time.GetUtcNow().AddSeconds(30)));
        Assert.True(await store.EnqueueMessageAsync(room.Id, admin.Id, 1, "{}"u8.ToArray(), 8, 1024, _time.GetUtcNow().AddSeconds(30)));

        var db = redis.Client.GetDatabase();
        var keys = redis.Client.GetServer(redis.Client.GetEndPoints()[0]).Keys(pattern: prefix + "*").ToArray();
        Assert.Equal(6, keys.Length); // room, members, users, ticket, and a queue's messages and counters
        foreach (var key in keys)
        {
            var ttl = await db.KeyTimeToLiveAsync(key);
            Assert.NotNull(ttl);
            Assert.InRange(ttl.Value, TimeSpan.FromMilliseconds(1), TimeSpan.FromMinutes(15));
        }

        Assert.All(keys.Where(k => !((string)k!).Contains("ticket:", StringComparison.Ordinal)), k => Assert.StartsWith(prefix + "{" + room.Id.Value + "}:", (string)k!));
    }

    [Fact]
    public async Task EveryOperation_WhenRedisIsUnreachable_ThrowsRoomStoreUnavailable()
    {
        await using var nowhere = new RedisConnection($"127.0.0.1:{ClosedPort()},connectTimeout=200,syncTimeout=500,asyncTimeout=500,connectRetry=0");
        var store = RedisTestStores.Store(nowhere, _time);
        var (room, admin) = NewRoom();

        await Assert.ThrowsAsync<RoomStoreUnavailableException>(async () => await store.CreateRoomAsync(room, admin));
        await Assert.ThrowsAsync<RoomStoreUnavailableException>(async () => await store.GetRoomAsync(room.Id));
        await Assert.ThrowsAsync<RoomStoreUnavailableException>(async () => await store.GetMemberAsync(room.Id, admin.Id));
        await Assert.ThrowsAsync<RoomStoreUnavailableException>(async () => await store.FindMemberByUserAsync(room.Id, admin.UserId));
        await Assert.ThrowsAsync<RoomStoreUnavailableException>(async () => await store.ListMembersAsync(room.Id));
        await Assert.ThrowsAsync<RoomStoreUnavailableException>(async () => await store.TryAddMemberAsync(Member(room, "u-bob"), 8, 8));
        await Assert.ThrowsAsync<RoomStoreUnavailableException>(async () => await store.TryUpdateMemberAsync(admin));
        await Assert.ThrowsAsync<RoomStoreUnavailableException>(async () => await store.TryAdmitMemberAsync(Member(room, "u-bob") with { Admission = AdmissionStatus.Admitted }, 8));
        await Assert.ThrowsAsync<RoomStoreUnavailableException>(async () => await store.StoreTicketAsync(new TicketRecord("h", room.Id, admin.Id, room.ExpiresAt)));
        await Assert.ThrowsAsync<RoomStoreUnavailableException>(async () => await store.ConsumeTicketAsync("h"));
        await Assert.ThrowsAsync<RoomStoreUnavailableException>(async () => await store.PutConnectionAsync(new ConnectionRecord("c", room.Id, admin.Id, 1, room.ExpiresAt)));
        await Assert.ThrowsAsync<RoomStoreUnavailableException>(async () => await store.GetConnectionAsync("c"));
        await Assert.ThrowsAsync<RoomStoreUnavailableException>(async () => await store.RemoveConnectionAsync("c"));
        await Assert.ThrowsAsync<RoomStoreUnavailableException>(async () => await store.EnqueueMessageAsync(room.Id, admin.Id, 1, "{}"u8.ToArray(), 8, 1024, room.ExpiresAt));
        await Assert.ThrowsAsync<RoomStoreUnavailableException>(async () => await store.TakeQueuedMessagesAsync(room.Id, admin.Id, 1));
        var counter = RedisTestStores.Counter(nowhere, _time, RedisTestStores.NewPrefix());
        await Assert.ThrowsAsync<RoomStoreUnavailableException>(async () => await counter.TryAcquireAsync("rooms:u", 5, TimeSpan.FromHours(1)));
    }

    [Fact]
    public async Task QuotaCounter_SharedByFiveInstances_CountsExactly_AndANewWindowStartsAfterTheOldOneByTheHostsClock()
    {
        var prefix = RedisTestStores.NewPrefix();
        var counters = Enumerable.Range(0, 5).Select(_ => RedisTestStores.Counter(Connect(), _time, prefix)).ToArray();

        var outcomes = await Concurrently(60, i => counters[i % 5].TryAcquireAsync("rooms:u-eve", 7, TimeSpan.FromHours(1)));

        Assert.Equal(7, outcomes.Count(o => o));
        Assert.True(await counters[0].TryAcquireAsync("rooms:u-ada", 7, TimeSpan.FromHours(1))); // another key
        _time.Advance(TimeSpan.FromMinutes(59));
        Assert.False(await counters[3].TryAcquireAsync("rooms:u-eve", 7, TimeSpan.FromHours(1)));
        _time.Advance(TimeSpan.FromMinutes(1)); // the window that began with the first event has ended
        Assert.True(await counters[2].TryAcquireAsync("rooms:u-eve", 7, TimeSpan.FromHours(1)));
    }

    private RedisConnection Connect()
    {
        var connection = new RedisConnection(redis.Configuration);
        _connections.Add(connection);
        return connection;
    }

    private (RoomRecord Room, MemberRecord Admin) NewRoom()
    {
        var now = _time.GetUtcNow();
        var room = new RoomRecord(RoomId.New(), MemberId.New(), now, now.AddMinutes(5), now.AddMinutes(15));
        return (room, new MemberRecord { Room = room.Id, Id = room.AdminMember, UserId = "u-admin", DisplayName = "Ada", IsAdmin = true, Admission = AdmissionStatus.Admitted, JoinedAt = now });
    }

    private MemberRecord Member(RoomRecord room, string userId)
        => new() { Room = room.Id, Id = MemberId.New(), UserId = userId, DisplayName = userId, JoinedAt = _time.GetUtcNow() };

    private static int ClosedPort()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port; // closed again when the listener is disposed
    }

    private static async Task<T[]> Concurrently<T>(int count, Func<int, ValueTask<T>> operation)
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
}
