using System.Globalization;
using Amazon.DynamoDBv2;
using Amazon.DynamoDBv2.Model;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Talki.Signalling.Aws.DynamoDb;
using Talki.Signalling.Ports;

namespace Talki.Signalling.Aws.Tests.DynamoDb;

/// <summary>What only the DynamoDB store does: its item layout, crash recovery and wiring.</summary>
[Collection(DynaliteGroup.Name)]
public sealed class DynamoDbRoomStoreTests(DynaliteFixture dynalite) : IAsyncLifetime
{
    private const string Table = "store";
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, 250, TimeSpan.Zero));
    private DynamoDbRoomStore? _store;

    private DynamoDbRoomStore Store => _store!;

    public async Task InitializeAsync()
    {
        await dynalite.EnsureTableAsync(Table);
        _store = new DynamoDbRoomStore(dynalite.Client, ownsClient: false, Options.Create(new DynamoDbRoomStoreOptions { TableName = Table }), _time, NullLogger<DynamoDbRoomStore>.Instance);
    }

    public Task DisposeAsync()
    {
        _store?.Dispose();
        return Task.CompletedTask;
    }

    [Fact]
    public async Task Items_UseTheDocumentedKeys_AndCarryTheTtlAttribute_RoundedUp()
    {
        var (room, admin) = NewRoom();
        await Store.CreateRoomAsync(room, admin);
        await Store.StoreTicketAsync(new TicketRecord("h-" + room.Id.Value, room.Id, admin.Id, room.ExpiresAt));
        await Store.PutConnectionAsync(new ConnectionRecord("c-" + room.Id.Value, room.Id, admin.Id, 1, room.ExpiresAt));
        Assert.True(await Store.EnqueueMessageAsync(room.Id, admin.Id, 7, "{}"u8.ToArray(), 8, 1024, room.ExpiresAt));
        var ttl = (room.ExpiresAt.ToUnixTimeSeconds() + 1).ToString(CultureInfo.InvariantCulture); // 250 ms past a second: rounded up

        foreach (var (pk, sk) in new[]
        {
            ("ROOM#" + room.Id.Value, "META"),
            ("ROOM#" + room.Id.Value, "MEMBER#" + admin.Id.Value),
            ("ROOM#" + room.Id.Value, "USER#" + admin.UserId),
            ("TICKET#h-" + room.Id.Value, "TICKET"),
            ("CONN#c-" + room.Id.Value, "CONN"),
            ("ROOM#" + room.Id.Value, "QUEUE#" + admin.Id.Value + "#7"),
        })
        {
            var item = await GetRawAsync(pk, sk);
            Assert.NotNull(item);
            Assert.Equal(ttl, item["expiresAt"].N);
        }

        Assert.Equal("1", (await GetRawAsync("ROOM#" + room.Id.Value, "META"))!["memberCount"].N);
        var queue = (await GetRawAsync("ROOM#" + room.Id.Value, "QUEUE#" + admin.Id.Value + "#7"))!;
        Assert.Equal("queue", queue["kind"].S);
        Assert.Equal("{}"u8.ToArray(), Assert.Single(queue["msgs"].L).B.ToArray());
        Assert.Equal("2", queue["bytes"].N);
    }

    /// <summary>
    /// A refused connect (anyone with the WebSocket URL can present a made-up or spent ticket) costs the authorizer one
    /// delete and no exception: before, the delete's existence condition failed and the SDK threw
    /// <see cref="ConditionalCheckFailedException"/> through its pipeline (on a fresh Native AOT process that also loaded
    /// the stack-trace metadata: a few per cent of its cold start's CPU samples).
    /// </summary>
    [Fact]
    public async Task ConsumeTicket_UnknownOrSpent_IsNullWithoutAnException_AndAKnownOneIsTakenOnce()
    {
        var (room, admin) = NewRoom();
        await Store.CreateRoomAsync(room, admin);
        var ticket = new TicketRecord("h-" + room.Id.Value, room.Id, admin.Id, room.ExpiresAt);
        await Store.StoreTicketAsync(ticket);

        var thrown = new List<Exception>();
        void Record(object? sender, System.Runtime.ExceptionServices.FirstChanceExceptionEventArgs e)
        {
            lock (thrown)
            {
                thrown.Add(e.Exception);
            }
        }

        AppDomain.CurrentDomain.FirstChanceException += Record;
        TicketRecord? taken, again, unknown;
        try
        {
            taken = await Store.ConsumeTicketAsync(ticket.Hash);
            again = await Store.ConsumeTicketAsync(ticket.Hash);
            unknown = await Store.ConsumeTicketAsync("h-never-issued-" + room.Id.Value);
        }
        finally
        {
            AppDomain.CurrentDomain.FirstChanceException -= Record;
        }

        Assert.Equal(ticket, taken);
        Assert.Null(again);
        Assert.Null(unknown);
        // The handler is process-wide and other collections run beside this one (those that talk to dynalite share this
        // collection and run one at a time): only the SDK's conditional failures are asserted on.
        lock (thrown)
        {
            Assert.DoesNotContain(thrown, e => e is ConditionalCheckFailedException);
        }

        Assert.Null(await GetRawAsync("TICKET#" + ticket.Hash, "TICKET"));
    }

    [Fact]
    public void TheGuard_ForwardsEveryMemberOfTheStorePort_IncludingThoseWithADefault()
    {
        // A member the guard did not forward would run the port's default (TakeMemberTicketAsync: a read and a write back)
        // instead of the store's single conditional write.
        var map = typeof(DynamoDbRoomStoreGuard).GetInterfaceMap(typeof(IRoomStore));
        Assert.All(map.TargetMethods, m => Assert.Equal(typeof(DynamoDbRoomStoreGuard), m.DeclaringType));
        var store = typeof(DynamoDbRoomStore).GetInterfaceMap(typeof(IRoomStore));
        Assert.All(store.TargetMethods, m => Assert.Equal(typeof(DynamoDbRoomStore), m.DeclaringType));
    }

    [Fact]
    public async Task AnInterruptedAdd_GuardWithoutMember_IsCompletedByTheNextLookup()
    {
        var (room, admin) = NewRoom();
        await Store.CreateRoomAsync(room, admin);
        var bob = new MemberRecord { Room = room.Id, Id = MemberId.New(), UserId = "u-bob", DisplayName = "Bob", JoinedAt = _time.GetUtcNow() };
        Assert.Equal(AddMemberOutcome.Added, await Store.TryAddMemberAsync(bob, 8, 8));
        await dynalite.Client.DeleteItemAsync(new DeleteItemRequest { TableName = Table, Key = Key("ROOM#" + room.Id.Value, "MEMBER#" + bob.Id.Value) }); // as if the process died before step 3

        Assert.Equal(AddMemberOutcome.UserExists, await Store.TryAddMemberAsync(bob with { Id = MemberId.New() }, 8, 8));
        Assert.Equal(bob, await Store.FindMemberByUserAsync(room.Id, "u-bob"));
        Assert.Equal(bob, await Store.GetMemberAsync(room.Id, bob.Id));
        Assert.Equal(AdmitMemberOutcome.Admitted, await Store.TryAdmitMemberAsync(bob with { Admission = AdmissionStatus.Admitted }, 8));
    }

    [Fact]
    public async Task ExpiredItemsThatTtlHasNotDeleted_AreInvisible_AndCannotBeRevived()
    {
        var (room, admin) = NewRoom();
        await Store.CreateRoomAsync(room, admin);
        _time.Advance(TimeSpan.FromMinutes(15));

        Assert.NotNull(await GetRawAsync("ROOM#" + room.Id.Value, "META")); // dynalite never deletes: like TTL running late
        Assert.Null(await Store.GetRoomAsync(room.Id));
        Assert.Equal(AddMemberOutcome.RoomNotFound, await Store.TryAddMemberAsync(admin with { Id = MemberId.New(), UserId = "u-2" }, 8, 8));
        Assert.Null(await Store.TryUpdateMemberAsync(admin with { DisplayName = "late" }));
        Assert.Equal("1", (await GetRawAsync("ROOM#" + room.Id.Value, "META"))!["memberCount"].N);
    }

    /// <summary>
    /// In a room with a member-id key the member's item is its user's guard: no USER# item is written (one write fewer for
    /// the admin and for each knock), the key is kept on the room's item, and a member whose id is not its user's is
    /// refused before anything is written (it would let one user hold two members).
    /// </summary>
    [Fact]
    public async Task AKeyedRoom_WritesNoUserGuard_KeepsItsKeyOnTheRoom_AndRefusesAnIdItsUserDoesNotDerive()
    {
        var (legacy, legacyAdmin) = NewRoom();
        var room = legacy with { MemberIdKey = RoomRecord.NewMemberIdKey() };
        var adminId = room.MemberIdOf("u-admin")!.Value;
        room = room with { AdminMember = adminId };
        var admin = legacyAdmin with { Id = adminId };
        var pk = "ROOM#" + room.Id.Value;

        await Assert.ThrowsAsync<ArgumentException>(async () => await Store.CreateRoomAsync(room, admin with { Id = MemberId.New() }));
        Assert.Null(await GetRawAsync(pk, "META"));
        await Store.CreateRoomAsync(room, admin);
        var bob = new MemberRecord { Room = room.Id, Id = room.MemberIdOf("u-bob")!.Value, UserId = "u-bob", DisplayName = "Bob", JoinedAt = _time.GetUtcNow() };
        await Assert.ThrowsAsync<ArgumentException>(async () => await Store.TryAddMemberAsync(bob with { Id = MemberId.New() }, 8, 8));
        await Assert.ThrowsAsync<ArgumentException>(async () => await Store.TryAddMemberAsync(bob with { UserId = "u-mallory" }, 8, 8)); // Bob's id, another user
        Assert.Equal(AddMemberOutcome.Added, await Store.TryAddMemberAsync(bob, 8, 8));

        Assert.Equal(room.MemberIdKey, (await GetRawAsync(pk, "META"))!["memberKey"].S);
        Assert.NotNull(await GetRawAsync(pk, "MEMBER#" + admin.Id.Value));
        Assert.NotNull(await GetRawAsync(pk, "MEMBER#" + bob.Id.Value));
        var items = await dynalite.Client.QueryAsync(new QueryRequest
        {
            TableName = Table,
            KeyConditionExpression = "pk = :pk",
            ExpressionAttributeValues = new() { [":pk"] = new AttributeValue { S = pk } },
            ConsistentRead = true,
        });
        Assert.Equal(new[] { "MEMBER#" + admin.Id.Value, "MEMBER#" + bob.Id.Value, "META" }.Order(StringComparer.Ordinal), items.Items.Select(i => i["sk"].S).Order(StringComparer.Ordinal));
        Assert.Equal(bob, await Store.FindMemberByUserAsync(room.Id, "u-bob"));
        Assert.Null(await Store.FindMemberByUserAsync(room.Id, "u-mallory"));
    }

    [Fact]
    public async Task AddDynamoDbRoomStore_ReplacesTheStore_CreatesTheTable_AndUsesTheRegisteredClient()
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddSingleton<IAmazonDynamoDB>(dynalite.Client);
        services.AddTalkiSignalling().AddDynamoDbRoomStore(o =>
        {
            o.TableName = "di-created";
            o.CreateTableIfMissing = true;
        });
        await using var provider = services.BuildServiceProvider();

        var store = provider.GetRequiredService<IRoomStore>();
        Assert.IsType<DynamoDbRoomStore>(Assert.IsType<DynamoDbRoomStoreGuard>(store).Inner);
        var (room, admin) = NewRoom(TimeProvider.System.GetUtcNow()); // the container's clock is the system clock
        await store.CreateRoomAsync(room, admin);
        Assert.NotNull(await store.GetRoomAsync(room.Id));
        Assert.Contains("di-created", (await dynalite.Client.ListTablesAsync(new ListTablesRequest())).TableNames);
    }

    [Theory]
    [InlineData("")]
    [InlineData("ab")]
    [InlineData("bad name")]
    public void AddDynamoDbRoomStore_InvalidTableName_FailsValidation(string tableName)
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddSingleton<IAmazonDynamoDB>(dynalite.Client);
        services.AddTalkiSignalling().AddDynamoDbRoomStore(o => o.TableName = tableName);
        using var provider = services.BuildServiceProvider();

        var error = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<DynamoDbRoomStoreOptions>>().Value);
        Assert.Contains("TableName", error.Message, StringComparison.Ordinal);
    }

    private (RoomRecord Room, MemberRecord Admin) NewRoom(DateTimeOffset? at = null)
    {
        var now = at ?? _time.GetUtcNow();
        var room = new RoomRecord(RoomId.New(), MemberId.New(), now, now.AddMinutes(5), now.AddMinutes(15));
        var admin = new MemberRecord { Room = room.Id, Id = room.AdminMember, UserId = "u-admin", DisplayName = "Ada", IsAdmin = true, Admission = AdmissionStatus.Admitted, JoinedAt = now };
        return (room, admin);
    }

    private static Dictionary<string, AttributeValue> Key(string pk, string sk) => new() { ["pk"] = new AttributeValue { S = pk }, ["sk"] = new AttributeValue { S = sk } };

    private async Task<Dictionary<string, AttributeValue>?> GetRawAsync(string pk, string sk)
    {
        var response = await dynalite.Client.GetItemAsync(new GetItemRequest { TableName = Table, Key = Key(pk, sk), ConsistentRead = true });
        return response.Item is { Count: > 0 } item ? item : null;
    }
}
