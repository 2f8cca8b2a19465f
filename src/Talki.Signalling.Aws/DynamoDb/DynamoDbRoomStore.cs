using System.Globalization;
using Amazon.DynamoDBv2;
using Amazon.DynamoDBv2.Model;
using Amazon.Runtime;
using Amazon.Runtime.Internal;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Talki.Signalling.Ports;

namespace Talki.Signalling.Aws.DynamoDb;

/// <summary>
/// The room store on one DynamoDB table, through the low-level client (no reflection, trim and AOT safe).
/// </summary>
/// <remarks>
/// <para>Keys (<c>pk</c> / <c>sk</c>, both strings):</para>
/// <list type="table">
/// <item><term><c>ROOM#{room}</c> / <c>META</c></term><description>the room, with <c>memberCount</c>: the seats taken (admitted members), and <c>memberKey</c>: its member-id key (<see cref="RoomRecord.MemberIdKey"/>), when it has one.</description></item>
/// <item><term><c>ROOM#{room}</c> / <c>MEMBER#{member}</c></term><description>a member, with <c>version</c> for optimistic concurrency.</description></item>
/// <item><term><c>ROOM#{room}</c> / <c>USER#{userId}</c></term><description>in a room without a member-id key only: the guard that makes a user unique in the room; it names the member and keeps a copy of the member as first added. In a room with a key the member's id is its user's (<see cref="RoomRecord.MemberIdOf"/>), so the member's own item is the guard and no <c>USER#</c> item is written: one write fewer per member.</description></item>
/// <item><term><c>TICKET#{hash}</c> / <c>TICKET</c></term><description>a one-time ticket.</description></item>
/// <item><term><c>CONN#{connection}</c> / <c>CONN</c></term><description>a connection binding.</description></item>
/// <item><term><c>ROOM#{room}</c> / <c>QUEUE#{member}#{epoch}</c></term><description>a suspended member's message queue for one epoch: <c>msgs</c> (a list of binary messages, oldest first), <c>bytes</c> (their total length), <c>dropped</c>.</description></item>
/// </list>
/// <para>
/// Every item carries <c>expiresAt</c> (epoch seconds, rounded up: the TTL attribute) and <c>expiry</c> (the exact
/// instant, ISO 8601 UTC, fixed width so that it compares as a string). TTL deletes late, so every read and every
/// conditional write checks <c>expiry</c> against the injected clock. Reads are strongly consistent. A member with its own
/// expiry (<see cref="MemberRecord.ExpiresAt"/>: a knock that has not connected) also carries <c>memberExpiry</c>, checked
/// the same way, and has it as its TTL; <c>roomTtl</c> keeps the room's TTL, which comes back when the expiry is cleared
/// (<c>SET expiresAt = if_not_exists(roomTtl, expiresAt)</c>). The guard always lives as long as the room.
/// </para>
/// <para>
/// <b>Queues</b> (<see cref="EnqueueMessageAsync"/>) are one item each, and every operation on one is a single-item write,
/// so it is atomic. An append is one <c>UpdateItem</c>:
/// <c>SET msgs = list_append(if_not_exists(msgs, :empty), :message), bytes = if_not_exists(bytes, :zero) + :len</c>,
/// conditional on the queue being absent, or live with <c>size(msgs) &lt; :max AND bytes &lt;= :limit</c>
/// (<c>:limit</c> = the byte bound minus the message's length: no arithmetic in the condition). When that fails because the
/// queue is full, a second <c>UpdateItem</c> counts the drop (<c>ADD dropped 1</c>), conditional on the queue being full;
/// each write is conditional on the state it is made for, so of concurrent appends each is either stored once or counted,
/// and the bounds hold. An expired queue (TTL deletes late) is replaced by a new one (<c>PutItem</c> conditional on the old
/// one's expiry having passed). An append sets the expiry when it extends it, and keeps the stored one otherwise; when a
/// guess about the queue's state is wrong the append reads the item (strongly consistent) and makes the write for the state
/// it found. A take is one <c>DeleteItem</c> with <c>ReturnValues = ALL_OLD</c>: of concurrent takers exactly one gets the
/// item. The <c>QUEUE#</c> sort keys never match the <c>MEMBER#</c> prefix the member listing queries. A DynamoDB item holds
/// at most 400 KB, so the byte bound must stay well below that (an append beyond it fails with DynamoDB's validation error).
/// </para>
/// <para>
/// <b>Seats are taken by admission only</b> (dynalite has no transactions, and they cost double). An add reads the room
/// (it must exist and not have expired; its expiry becomes the member's) and then makes single-item conditional writes.
/// In a room with a member-id key, step (1) is left out and step (3) is the guard and comes first: the member item is put
/// conditional on <c>attribute_not_exists</c> or on the item there being a knock whose own expiry has passed (the same
/// user knocking again), and a failed put is <see cref="AddMemberOutcome.UserExists"/>; a member added admitted then
/// takes its seat, and without one deletes its item again. In a room without a key:
/// (1) put the <c>USER#</c> guard, conditional on <c>attribute_not_exists</c> — if it exists and its member still lives the
/// outcome is <see cref="AddMemberOutcome.UserExists"/>; if its member has expired the guard is replaced, conditional on
/// still naming that member; (2) for a member added admitted, take a seat (<c>ADD memberCount 1</c>, conditional on the
/// room existing, not having expired and <c>memberCount &lt; capacity</c>) — if that fails the guard is deleted again and
/// the outcome is <see cref="AddMemberOutcome.RoomFull"/>; a knock takes no seat, and the read it began with stands for
/// the room's check (a room is never deleted or shortened, only expires: one that expires between that read and the member's
/// put takes a member that expires with it, and whose ticket the authorizer refuses, <c>room_not_found</c>), while an
/// add completed by a reader, which has not read the room, checks it with <c>ADD memberCount 0</c> on the same
/// conditions; (3) put the member item, conditional on <c>attribute_not_exists</c>; (4) a
/// pending member (a knock) then counts the live pending members (a strongly consistent query) and, above the limit,
/// deletes itself and its guard: <see cref="AddMemberOutcome.TooManyPending"/>. Insert-then-count never lets the room hold
/// more than the limit (the last knock written sees all the others); racing knocks may all withdraw.
/// </para>
/// <para>
/// <b>Admission</b> (<see cref="TryAdmitMemberAsync"/>) takes a seat first (<c>ADD memberCount 1</c> conditional on
/// <c>memberCount &lt; capacity</c>: exactly <c>k</c> of any number of concurrent admissions get the <c>k</c> free seats),
/// then makes the versioned write conditional on the member not being admitted yet; if that write loses, the seat is given
/// back. An update that takes an admitted member's admission away gives its seat back after the versioned write; an
/// update never admits (it is conditional on the stored member being admitted when it writes <c>admitted</c>).
/// </para>
/// <para>
/// <b>Crash windows.</b> A process that dies between these writes errs on the safe side. (a) After (1): the guard exists
/// without its member; <see cref="FindMemberByUserAsync"/> (which the engine calls on every join) finishes the add from
/// the guard's copy (it keeps the limits), or ignores it once the copy's own expiry has passed, so the user is never locked
/// out. (b) Between a seat taken and its versioned write, or between a successful update and its seat release: one seat
/// stays taken for the rest of the room's life, so the room fills one member early; it never holds more than its capacity.
/// (c) Between (3) and (4): one knock too many waits until its ticket expires. Rooms live minutes to hours, so a leaked
/// seat dies with its room. Costs: an add is one strongly consistent read and three writes (a knock two, plus a query; in a
/// room with a member-id key one write fewer, and no crash window (a));
/// an admission is two writes.
/// </para>
/// </remarks>
internal sealed class DynamoDbRoomStore : IRoomStore, IDisposable
{
    private const int MaxQueueWriteAttempts = 64;
    private const string Pk = DynamoDbTableCreator.PartitionKey;
    private const string Sk = DynamoDbTableCreator.SortKey;
    private const string Ttl = DynamoDbTableCreator.TimeToLiveAttribute;
    private const string Expiry = "expiry";
    private const string Kind = "kind";
    private const string MetaSk = "META";
    private const string MemberPrefix = "MEMBER#";
    private const string UserPrefix = "USER#";
    private const string TicketSk = "TICKET";
    private const string ConnectionSk = "CONN";
    private const string MemberCount = "memberCount";
    private const string MemberKeyAttr = "memberKey";
    private const string RoomIdAttr = "roomId";
    private const string MemberIdAttr = "memberId";
    private const string UserIdAttr = "userId";
    private const string DisplayName = "displayName";
    private const string IsVerified = "isVerified";
    private const string IsAdmin = "isAdmin";
    private const string Admission = "admission";
    private const string Epoch = "epoch";
    private const string ConnectionIdAttr = "connectionId";
    private const string ReadyAt = "readyAt";
    private const string WireVersion = "pv";
    private const string SuspendedUntil = "suspendedUntil";
    private const string JoinedAt = "joinedAt";
    private const string Version = "version";
    private const string AdminMember = "adminMember";
    private const string CreatedAt = "createdAt";
    private const string SealsAt = "sealsAt";
    private const string Hash = "hash";
    private const string Capacity = "capacity";
    private const string MaxPendingAttr = "maxPending";
    private const string MemberExpiry = "memberExpiry";
    private const string TicketHashAttr = "ticketHash";
    private const string TicketExpiry = "ticketExpiry";
    private const string RoomTtl = "roomTtl";
    private const string QueuePrefix = "QUEUE#";
    private const string QueueMessages = "msgs";
    private const string QueueBytes = "bytes";
    private const string QueueDropped = "dropped";
    private const string NotExists = "attribute_not_exists(#pk)";
    private const string IsoFormat = "yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'";

    private static readonly Dictionary<string, string> PkName = new(StringComparer.Ordinal) { ["#pk"] = Pk };

    private readonly IAmazonDynamoDB _client;
    private readonly bool _ownsClient;
    private readonly string _table;
    private readonly bool _createTable;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _tableGate = new(1, 1);
    private volatile bool _tableReady;

    /// <summary>Initializes a new instance of the <see cref="DynamoDbRoomStore"/> class.</summary>
    /// <param name="client">The DynamoDB client.</param>
    /// <param name="ownsClient">Whether the store disposes <paramref name="client"/>.</param>
    /// <param name="options">The options.</param>
    /// <param name="time">The clock.</param>
    /// <param name="logger">The logger.</param>
    public DynamoDbRoomStore(IAmazonDynamoDB client, bool ownsClient, IOptions<DynamoDbRoomStoreOptions> options, TimeProvider time, ILogger<DynamoDbRoomStore> logger)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(options);
        _client = client;
        _ownsClient = ownsClient;
        _table = options.Value.TableName;
        _createTable = options.Value.CreateTableIfMissing;
        _time = time;
        _logger = logger;
    }

    public async ValueTask CreateRoomAsync(RoomRecord room, MemberRecord admin, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(room);
        ArgumentNullException.ThrowIfNull(admin);
        if (admin.Room != room.Id)
        {
            throw new ArgumentException("The admin must belong to the room.", nameof(admin));
        }

        await ReadyAsync(cancellationToken).ConfigureAwait(false);
        var item = Key(RoomPk(room.Id), MetaSk);
        item[Kind] = S("room");
        item[RoomIdAttr] = S(room.Id.Value);
        item[AdminMember] = S(room.AdminMember.Value);
        item[CreatedAt] = S(Iso(room.CreatedAt));
        item[SealsAt] = S(Iso(room.SealsAt));
        item[MemberCount] = N(admin.Admission == AdmissionStatus.Admitted ? 1 : 0);
        var keyed = room.MemberIdKey is not null;
        if (keyed)
        {
            EnsureKeyedId(room, admin);
            item[MemberKeyAttr] = S(room.MemberIdKey!);
        }

        AddExpiry(item, room.ExpiresAt);
        if (!await TryPutNewAsync(item, cancellationToken).ConfigureAwait(false))
        {
            throw new InvalidOperationException($"Room {room.Id} exists already.");
        }

        if (!keyed)
        {
            await TryPutNewAsync(GuardItem(admin, room.ExpiresAt), cancellationToken).ConfigureAwait(false);
        }

        await TryPutNewAsync(MemberItem(admin, MemberPrefix + admin.Id.Value, room.ExpiresAt), cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask<RoomRecord?> GetRoomAsync(RoomId room, CancellationToken cancellationToken = default)
    {
        var item = await GetRoomItemAsync(RoomPk(room), cancellationToken).ConfigureAwait(false);
        return item is null ? null : ToRoom(item);
    }

    public async ValueTask<MemberRecord?> GetMemberAsync(RoomId room, MemberId member, CancellationToken cancellationToken = default)
    {
        var item = await GetAsync(RoomPk(room), MemberPrefix + member.Value, cancellationToken).ConfigureAwait(false);
        return item is null ? null : LiveMember(ToMember(item));
    }

    public async ValueTask<MemberRecord?> FindMemberByUserAsync(RoomId room, string userId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(userId);
        var roomItem = await GetRoomItemAsync(RoomPk(room), cancellationToken).ConfigureAwait(false);
        if (roomItem is null)
        {
            return null;
        }

        if (ToRoom(roomItem).MemberIdOf(userId) is { } derived)
        {
            // A room with a member-id key has no guard: the user's member is the one with the id it derives.
            var own = await GetMemberAsync(room, derived, cancellationToken).ConfigureAwait(false);
            return own is not null && string.Equals(own.UserId, userId, StringComparison.Ordinal) ? own : null;
        }

        var guard = await GetAsync(RoomPk(room), UserPrefix + userId, cancellationToken).ConfigureAwait(false);
        if (guard is null)
        {
            return null;
        }

        var memberSk = MemberPrefix + guard[MemberIdAttr].S;
        var item = await GetAsync(RoomPk(room), memberSk, cancellationToken).ConfigureAwait(false);
        if (item is null && ToMember(guard).IsExpiredAt(_time.GetUtcNow()))
        {
            return null; // a knock that expired (its member item may be gone to TTL already)
        }

        if (item is null)
        {
            // The add that wrote the guard has not written (or never will write) its seat and member: finish it. Whoever
            // writes the member first keeps its seat; the other gives its seat back.
            var pending = ToMember(guard);
            var capacity = guard.TryGetValue(Capacity, out var stored) ? int.Parse(stored.N, CultureInfo.InvariantCulture) : int.MaxValue;
            var maxPending = guard.TryGetValue(MaxPendingAttr, out var storedPending) ? int.Parse(storedPending.N, CultureInfo.InvariantCulture) : int.MaxValue;
            if (await CompleteAddAsync(pending, capacity, maxPending, ParseIso(guard[Expiry].S), guarded: true, roomRead: false, cancellationToken).ConfigureAwait(false) == AddMemberOutcome.Added)
            {
                DynamoDbLog.InterruptedAddCompleted(_logger, room, pending.Id);
            }

            item = await GetAsync(RoomPk(room), memberSk, cancellationToken).ConfigureAwait(false);
        }

        return item is not null && string.Equals(item[UserIdAttr].S, userId, StringComparison.Ordinal) ? LiveMember(ToMember(item)) : null;
    }

    /// <summary>
    /// One strongly consistent query of the room's member items instead of two reads: billed by their total size (a room
    /// holds at most a few members of a few hundred bytes each, so one read unit where two item reads took two).
    /// </summary>
    public async ValueTask<(MemberRecord? First, MemberRecord? Second)> GetMemberPairAsync(RoomId room, MemberId first, MemberId second, CancellationToken cancellationToken = default)
    {
        MemberRecord? one = null;
        MemberRecord? other = null;
        foreach (var member in await ListMembersAsync(room, cancellationToken).ConfigureAwait(false))
        {
            if (member.Id == first)
            {
                one = member;
            }

            if (member.Id == second)
            {
                other = member;
            }
        }

        return (one, other);
    }

    public async ValueTask<IReadOnlyList<MemberRecord>> ListMembersAsync(RoomId room, CancellationToken cancellationToken = default)
    {
        await ReadyAsync(cancellationToken).ConfigureAwait(false);
        var now = Iso(_time.GetUtcNow());
        var members = new List<MemberRecord>();
        Dictionary<string, AttributeValue>? start = null;
        do
        {
            var request = Tagged(new QueryRequest
            {
                TableName = _table,
                ConsistentRead = true,
                KeyConditionExpression = "#pk = :pk AND begins_with(#sk, :prefix)",
                ExpressionAttributeNames = new() { ["#pk"] = Pk, ["#sk"] = Sk },
                ExpressionAttributeValues = new() { [":pk"] = S(RoomPk(room)), [":prefix"] = S(MemberPrefix) },
                ExclusiveStartKey = start,
            });
            var response = await _client.QueryAsync(request, cancellationToken).ConfigureAwait(false);
            foreach (var item in response.Items ?? [])
            {
                if (string.CompareOrdinal(item[Expiry].S, now) > 0 && LiveMember(ToMember(item)) is { } member)
                {
                    members.Add(member);
                }
            }

            start = response.LastEvaluatedKey is { Count: > 0 } next ? next : null;
        }
        while (start is not null);

        return members;
    }

    public async ValueTask<AddMemberOutcome> TryAddMemberAsync(MemberRecord member, int capacity, int maxPending, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(member);
        var pk = RoomPk(member.Room);
        var room = await GetRoomItemAsync(pk, cancellationToken).ConfigureAwait(false);
        if (room is null)
        {
            return AddMemberOutcome.RoomNotFound;
        }

        var record = ToRoom(room);
        if (record.MemberIdKey is not null)
        {
            // The member's item is its user's guard: (2) to (4) only, and (3) is the guard's conditional put.
            EnsureKeyedId(record, member);
            return await CompleteAddAsync(member, capacity, maxPending, record.ExpiresAt, guarded: false, roomRead: true, cancellationToken).ConfigureAwait(false);
        }

        // (1) The user guard: at most one live member per user and room. It keeps the limits for a reader that completes an interrupted add.
        var guard = GuardItem(member, ParseIso(room[Expiry].S));
        guard[Capacity] = N(capacity);
        guard[MaxPendingAttr] = N(maxPending);
        if (!await TryPutNewAsync(guard, cancellationToken).ConfigureAwait(false)
            && !await TryTakeOverGuardAsync(pk, member, guard, cancellationToken).ConfigureAwait(false))
        {
            return AddMemberOutcome.UserExists;
        }

        // (2) Take a seat (admitted members only), (3) write the member, (4) a knock checks the pending limit. A knock
        // takes no seat, and the room was just read live: it is not checked again.
        return await CompleteAddAsync(member, capacity, maxPending, ParseIso(guard[Expiry].S), guarded: true, roomRead: true, cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask<MemberRecord?> TryUpdateMemberAsync(MemberRecord updated, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(updated);
        await ReadyAsync(cancellationToken).ConfigureAwait(false);
        var stored = updated with { Version = updated.Version + 1 };
        if (updated.Admission == AdmissionStatus.Admitted)
        {
            // Only a member that is admitted already stays admitted: admission takes a seat (TryAdmitMemberAsync).
            return await TryWriteMemberAsync(stored, requireAdmitted: true, cancellationToken).ConfigureAwait(false) is null ? null : stored;
        }

        var old = await TryWriteMemberAsync(stored, requireAdmitted: null, cancellationToken).ConfigureAwait(false);
        if (old is null)
        {
            return null;
        }

        if (old.TryGetValue(Admission, out var before) && before.S == AdmissionText(AdmissionStatus.Admitted))
        {
            await ReleaseSeatsAsync(RoomPk(updated.Room), 1, cancellationToken).ConfigureAwait(false); // it no longer holds a seat
        }

        return stored;
    }

    public async ValueTask<AdmitMemberOutcome> TryAdmitMemberAsync(MemberRecord admitted, int capacity, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(admitted);
        if (admitted.Admission != AdmissionStatus.Admitted)
        {
            throw new ArgumentException("Only an admitted member can be admitted.", nameof(admitted));
        }

        await ReadyAsync(cancellationToken).ConfigureAwait(false);
        var pk = RoomPk(admitted.Room);
        if (!await TryTakeSeatAsync(pk, 1, capacity, cancellationToken).ConfigureAwait(false))
        {
            // Full, or the room is gone; a member that could not have been admitted anyway is a conflict, not a full room.
            var current = await GetMemberAsync(admitted.Room, admitted.Id, cancellationToken).ConfigureAwait(false);
            return current is null || current.Version != admitted.Version || current.UserId != admitted.UserId || current.Admission == AdmissionStatus.Admitted
                ? AdmitMemberOutcome.Conflict
                : AdmitMemberOutcome.RoomFull;
        }

        if (await TryWriteMemberAsync(admitted with { Version = admitted.Version + 1 }, requireAdmitted: false, cancellationToken).ConfigureAwait(false) is not null)
        {
            return AdmitMemberOutcome.Admitted;
        }

        await ReleaseSeatsAsync(pk, 1, cancellationToken).ConfigureAwait(false); // lost: the seat goes back
        return AdmitMemberOutcome.Conflict;
    }

    public async ValueTask StoreTicketAsync(TicketRecord ticket, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(ticket);
        await ReadyAsync(cancellationToken).ConfigureAwait(false);
        var item = Key(TicketPk(ticket.Hash), TicketSk);
        item[Kind] = S("ticket");
        item[Hash] = S(ticket.Hash);
        item[RoomIdAttr] = S(ticket.Room.Value);
        item[MemberIdAttr] = S(ticket.Member.Value);
        AddExpiry(item, ticket.ExpiresAt);
        if (!await TryPutNewAsync(item, cancellationToken).ConfigureAwait(false))
        {
            throw new InvalidOperationException("A ticket with the same hash exists already.");
        }
    }

    public async ValueTask<TicketRecord?> ConsumeTicketAsync(string hash, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(hash);
        await ReadyAsync(cancellationToken).ConfigureAwait(false);
        // An unconditional delete that returns the item as it was: DynamoDB applies writes to one item one at a time, so of
        // concurrent consumers exactly one gets the ticket's attributes and the others none, as with a condition on the
        // item's existence, but an unknown or spent ticket is an empty answer rather than a ConditionalCheckFailedException
        // thrown through the SDK's pipeline (each refused connect paid for an exception; both bill one write unit).
        var response = await _client.DeleteItemAsync(
            Tagged(new DeleteItemRequest
            {
                TableName = _table,
                Key = Key(TicketPk(hash), TicketSk),
                ReturnValues = ReturnValue.ALL_OLD,
            }),
            cancellationToken).ConfigureAwait(false);
        var item = response.Attributes;
        return item is { Count: > 0 }
            ? new TicketRecord(item[Hash].S, ParseRoom(item[RoomIdAttr].S), ParseMember(item[MemberIdAttr].S), ParseIso(item[Expiry].S))
            : null; // unknown, or another consumer won
    }

    public async ValueTask<MemberRecord?> TakeMemberTicketAsync(RoomId room, MemberId member, string hash, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(hash);
        await ReadyAsync(cancellationToken).ConfigureAwait(false);
        // One conditional update that returns the item as it was: DynamoDB applies writes to one item one at a time, so of
        // concurrent takers exactly one finds the hash and the others fail the condition; a wrong hash (a forged ticket naming
        // a real member) changes nothing. The version grows as with every member write, so that a writer that read the
        // member before cannot write the ticket back. No read: the old image is the member the authorizer needs.
        try
        {
            var response = await _client.UpdateItemAsync(
                Tagged(new UpdateItemRequest
                {
                    TableName = _table,
                    Key = Key(RoomPk(room), MemberPrefix + member.Value),
                    UpdateExpression = "SET #version = #version + :one REMOVE #tk, #tkx",
                    ConditionExpression = "#tk = :hash AND #expiry > :now AND (attribute_not_exists(#mexp) OR #mexp > :now)",
                    ExpressionAttributeNames = new Dictionary<string, string>(StringComparer.Ordinal)
                    {
                        ["#version"] = Version,
                        ["#tk"] = TicketHashAttr,
                        ["#tkx"] = TicketExpiry,
                        ["#expiry"] = Expiry,
                        ["#mexp"] = MemberExpiry,
                    },
                    ExpressionAttributeValues = new Dictionary<string, AttributeValue>(StringComparer.Ordinal)
                    {
                        [":one"] = N(1),
                        [":hash"] = S(hash),
                        [":now"] = S(Iso(_time.GetUtcNow())),
                    },
                    ReturnValues = ReturnValue.ALL_OLD,
                }),
                cancellationToken).ConfigureAwait(false);
            return response.Attributes is { Count: > 0 } item ? ToMember(item) : null;
        }
        catch (ConditionalCheckFailedException)
        {
            return null; // unknown member, expired, another hash, or taken already
        }
    }

    public async ValueTask<MemberRecord?> TakeMemberTicketToWaitAsync(RoomId room, MemberId member, string hash, string connectionId, int protocolVersion, DateTimeOffset now, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(hash);
        ArgumentException.ThrowIfNullOrEmpty(connectionId);
        await ReadyAsync(cancellationToken).ConfigureAwait(false);
        // The take and the waiting member's bind in one conditional update (one write unit instead of two), returning the
        // item as it was. DynamoDB applies writes to one item one at a time: of concurrent takers exactly one finds the
        // hash. The room's TTL (kept on the item) replaces the knock's own, as in any write that clears the member's expiry.
        var nowText = S(Iso(now));
        try
        {
            var response = await _client.UpdateItemAsync(
                Tagged(new UpdateItemRequest
                {
                    TableName = _table,
                    Key = Key(RoomPk(room), MemberPrefix + member.Value),
                    UpdateExpression = "SET #version = #version + :one, #epoch = #epoch + :one, #connection = :connection, #ready = :now, #pv = :pv, "
                        + "#ttl = if_not_exists(#roomTtl, #ttl) REMOVE #tk, #tkx, #mexp, #suspended",
                    ConditionExpression = "#tk = :hash AND #tkx > :now AND #admission = :pending AND #expiry > :now AND (attribute_not_exists(#mexp) OR #mexp > :now)",
                    ExpressionAttributeNames = new Dictionary<string, string>(StringComparer.Ordinal)
                    {
                        ["#version"] = Version,
                        ["#epoch"] = Epoch,
                        ["#connection"] = ConnectionIdAttr,
                        ["#ready"] = ReadyAt,
                        ["#pv"] = WireVersion,
                        ["#ttl"] = Ttl,
                        ["#roomTtl"] = RoomTtl,
                        ["#tk"] = TicketHashAttr,
                        ["#tkx"] = TicketExpiry,
                        ["#mexp"] = MemberExpiry,
                        ["#suspended"] = SuspendedUntil,
                        ["#admission"] = Admission,
                        ["#expiry"] = Expiry,
                    },
                    ExpressionAttributeValues = new Dictionary<string, AttributeValue>(StringComparer.Ordinal)
                    {
                        [":one"] = N(1),
                        [":connection"] = S(connectionId),
                        [":now"] = nowText,
                        [":pv"] = N(protocolVersion),
                        [":hash"] = S(hash),
                        [":pending"] = S(AdmissionText(AdmissionStatus.Pending)),
                    },
                    ReturnValues = ReturnValue.ALL_OLD,
                }),
                cancellationToken).ConfigureAwait(false);
            return response.Attributes is { Count: > 0 } item ? ToMember(item) : null;
        }
        catch (ConditionalCheckFailedException)
        {
            return null; // unknown member, expired, another hash, taken already, or no longer pending: nothing changed
        }
    }

    public async ValueTask PutConnectionAsync(ConnectionRecord connection, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connection);
        await ReadyAsync(cancellationToken).ConfigureAwait(false);
        var item = Key(ConnectionPk(connection.ConnectionId), ConnectionSk);
        item[Kind] = S("connection");
        item[ConnectionIdAttr] = S(connection.ConnectionId);
        item[RoomIdAttr] = S(connection.Room.Value);
        item[MemberIdAttr] = S(connection.Member.Value);
        item[Epoch] = N(connection.Epoch);
        AddExpiry(item, connection.ExpiresAt);
        await _client.PutItemAsync(Tagged(new PutItemRequest { TableName = _table, Item = item }), cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask<ConnectionRecord?> GetConnectionAsync(string connectionId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connectionId);
        var item = await GetAsync(ConnectionPk(connectionId), ConnectionSk, cancellationToken).ConfigureAwait(false);
        return item is null ? null : ToConnection(item);
    }

    public async ValueTask<ConnectionRecord?> RemoveConnectionAsync(string connectionId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connectionId);
        await ReadyAsync(cancellationToken).ConfigureAwait(false);
        var response = await _client.DeleteItemAsync(
            Tagged(new DeleteItemRequest { TableName = _table, Key = Key(ConnectionPk(connectionId), ConnectionSk), ReturnValues = ReturnValue.ALL_OLD }),
            cancellationToken).ConfigureAwait(false);
        return response.Attributes is { Count: > 0 } item ? ToConnection(item) : null;
    }

    public async ValueTask<bool> EnqueueMessageAsync(RoomId room, MemberId member, long epoch, ReadOnlyMemory<byte> message, int maxMessages, int maxBytes, DateTimeOffset expiresAt, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxMessages);
        ArgumentOutOfRangeException.ThrowIfNegative(maxBytes);
        await ReadyAsync(cancellationToken).ConfigureAwait(false);
        var append = new QueueAppend(Key(RoomPk(room), QueueSk(member, epoch)), message, maxMessages, maxBytes, expiresAt);

        // First guess: the queue is absent, or live with an expiry this append extends or keeps (appends to one queue usually
        // carry the same expiry); then that it is full. A write whose condition fails found another state, made by a
        // concurrent write or the passing of time: read the item and make the write for the state found.
        var write = append.FitsAlone ? QueueWrite.Append : QueueWrite.Drop;
        var now = Iso(_time.GetUtcNow());
        for (var attempt = 0; ; attempt++)
        {
            if (attempt == MaxQueueWriteAttempts)
            {
                // Each lost write means another one won, so this only happens under a storm of appends to one queue.
                throw new RoomStoreUnavailableException($"The queue of member {member} of room {room} is under too much contention ({MaxQueueWriteAttempts} conflicting writes).");
            }

            if (await TryWriteQueueAsync(append, write, now, cancellationToken).ConfigureAwait(false))
            {
                return write is QueueWrite.Append or QueueWrite.AppendKeepingExpiry || (write == QueueWrite.Restart && append.FitsAlone);
            }

            now = Iso(_time.GetUtcNow());
            write = attempt == 0 && write == QueueWrite.Append
                ? QueueWrite.Drop
                : append.Classify(await GetRawAsync(append.Key, cancellationToken).ConfigureAwait(false), now);
        }
    }

    public async ValueTask<QueuedMessages> TakeQueuedMessagesAsync(RoomId room, MemberId member, long epoch, CancellationToken cancellationToken = default)
    {
        await ReadyAsync(cancellationToken).ConfigureAwait(false);
        var response = await _client.DeleteItemAsync(
            Tagged(new DeleteItemRequest { TableName = _table, Key = Key(RoomPk(room), QueueSk(member, epoch)), ReturnValues = ReturnValue.ALL_OLD }),
            cancellationToken).ConfigureAwait(false);
        var item = response.Attributes;
        if (item is not { Count: > 0 } || string.CompareOrdinal(item[Expiry].S, Iso(_time.GetUtcNow())) <= 0)
        {
            return QueuedMessages.Empty; // none, or expired (TTL deletes late): gone all the same
        }

        var messages = item.TryGetValue(QueueMessages, out var list) && list.L is { } elements
            ? elements.Select(static element => new ReadOnlyMemory<byte>(element.B.ToArray())).ToArray()
            : [];
        var dropped = item.TryGetValue(QueueDropped, out var count) ? int.Parse(count.N, CultureInfo.InvariantCulture) : 0;
        return new QueuedMessages(messages, dropped);
    }

    public void Dispose()
    {
        _tableGate.Dispose();
        if (_ownsClient)
        {
            _client.Dispose();
        }
    }

    /// <summary>Adds this package's user-agent component to a request (only this package's requests carry it).</summary>
    /// <typeparam name="T">The request type.</typeparam>
    /// <param name="request">The request.</param>
    /// <returns>The same request.</returns>
    internal static T Tagged<T>(T request)
        where T : AmazonWebServiceRequest
    {
        ((IAmazonWebServiceRequest)request).UserAgentDetails.AddUserAgentComponent(AwsPackage.UserAgentSuffix);
        return request;
    }

    private static string RoomPk(RoomId room) => "ROOM#" + room.Value;

    private static string TicketPk(string hash) => "TICKET#" + hash;

    private static string ConnectionPk(string connectionId) => "CONN#" + connectionId;

    private static string QueueSk(MemberId member, long epoch) => QueuePrefix + member.Value + "#" + epoch.ToString(CultureInfo.InvariantCulture);

    private static AttributeValue S(string value) => new() { S = value };

    private static AttributeValue N(long value) => new() { N = value.ToString(CultureInfo.InvariantCulture) };

    private static AttributeValue Bool(bool value) => new() { BOOL = value };

    private static Dictionary<string, AttributeValue> Key(string pk, string sk)
        => new(StringComparer.Ordinal) { [Pk] = S(pk), [Sk] = S(sk) };

    /// <summary>Fixed-width ISO 8601 UTC, so that string order is time order (conditions compare it).</summary>
    private static string Iso(DateTimeOffset value) => value.UtcDateTime.ToString(IsoFormat, CultureInfo.InvariantCulture);

    private static DateTimeOffset ParseIso(string value)
        => new(DateTime.SpecifyKind(DateTime.ParseExact(value, IsoFormat, CultureInfo.InvariantCulture, DateTimeStyles.None), DateTimeKind.Utc));

    /// <summary>Adds the exact expiry and the TTL attribute (epoch seconds, rounded up so that TTL never deletes early).</summary>
    private static void AddExpiry(Dictionary<string, AttributeValue> item, DateTimeOffset expiresAt)
    {
        item[Expiry] = S(Iso(expiresAt));
        item[Ttl] = N(TtlSeconds(expiresAt));
    }

    /// <summary>Epoch seconds, rounded up so that TTL never deletes early.</summary>
    private static long TtlSeconds(DateTimeOffset expiresAt)
    {
        var seconds = expiresAt.ToUnixTimeSeconds();
        if (expiresAt.UtcTicks % TimeSpan.TicksPerSecond != 0 && expiresAt.UtcTicks > DateTimeOffset.UnixEpoch.UtcTicks)
        {
            seconds++;
        }

        return seconds;
    }

    private static string AdmissionText(AdmissionStatus admission) => admission switch
    {
        AdmissionStatus.Pending => "pending",
        AdmissionStatus.Admitted => "admitted",
        AdmissionStatus.Denied => "denied",
        _ => throw new ArgumentOutOfRangeException(nameof(admission), admission, "Unknown admission status."),
    };

    private static AdmissionStatus ParseAdmission(string text) => text switch
    {
        "pending" => AdmissionStatus.Pending,
        "admitted" => AdmissionStatus.Admitted,
        "denied" => AdmissionStatus.Denied,
        _ => throw new InvalidDataException($"Unknown admission status '{text}' in the DynamoDB table."),
    };

    private static RoomId ParseRoom(string text)
        => RoomId.TryParse(text, out var id) ? id : throw new InvalidDataException("A malformed room id in the DynamoDB table.");

    private static MemberId ParseMember(string text)
        => MemberId.TryParse(text, out var id) ? id : throw new InvalidDataException("A malformed member id in the DynamoDB table.");

    private static Dictionary<string, AttributeValue> MemberItem(MemberRecord member, string sk, DateTimeOffset expiresAt)
    {
        var item = Key(RoomPk(member.Room), sk);
        item[Kind] = S(sk.StartsWith(UserPrefix, StringComparison.Ordinal) ? "user" : "member");
        item[RoomIdAttr] = S(member.Room.Value);
        item[MemberIdAttr] = S(member.Id.Value);
        item[UserIdAttr] = S(member.UserId);
        item[DisplayName] = S(member.DisplayName);
        item[IsVerified] = Bool(member.IsVerified);
        item[IsAdmin] = Bool(member.IsAdmin);
        item[Admission] = S(AdmissionText(member.Admission));
        item[Epoch] = N(member.Epoch);
        if (member.ConnectionId is { } connectionId)
        {
            item[ConnectionIdAttr] = S(connectionId);
        }

        if (member.ReadyAt is { } readyAt)
        {
            item[ReadyAt] = S(Iso(readyAt));
        }

        item[WireVersion] = N(member.ProtocolVersion);

        if (member.SuspendedUntil is { } suspendedUntil)
        {
            item[SuspendedUntil] = S(Iso(suspendedUntil));
        }

        item[JoinedAt] = S(Iso(member.JoinedAt));
        if (member.TicketHash is { } ticketHash)
        {
            item[TicketHashAttr] = S(ticketHash);
            item[TicketExpiry] = S(Iso(member.TicketExpiresAt ?? DateTimeOffset.MinValue));
        }

        item[Version] = N(member.Version);
        AddExpiry(item, expiresAt);
        item[RoomTtl] = item[Ttl];
        if (member.ExpiresAt is { } memberExpiry)
        {
            item[MemberExpiry] = S(Iso(memberExpiry));
            item[Ttl] = N(TtlSeconds(memberExpiry)); // a knock that never connects is deleted with its ticket
        }

        return item;
    }

    /// <summary>The user guard: a copy of the member as first added, living as long as the room (the member may outlive its own first expiry by connecting).</summary>
    private static Dictionary<string, AttributeValue> GuardItem(MemberRecord member, DateTimeOffset roomExpiresAt)
    {
        var item = MemberItem(member, UserPrefix + member.UserId, roomExpiresAt);
        item[Ttl] = item[RoomTtl];
        item.Remove(TicketHashAttr); // the ticket lives in the member's item only
        item.Remove(TicketExpiry);
        return item;
    }

    private static RoomRecord ToRoom(Dictionary<string, AttributeValue> item)
        => new(ParseRoom(item[RoomIdAttr].S), ParseMember(item[AdminMember].S), ParseIso(item[CreatedAt].S), ParseIso(item[SealsAt].S), ParseIso(item[Expiry].S))
        {
            MemberIdKey = item.TryGetValue(MemberKeyAttr, out var key) ? key.S : null, // rooms created without a key have none
        };

    /// <summary>In a room with a member-id key the member item is the user's guard only if its id is the one the user derives.</summary>
    private static void EnsureKeyedId(RoomRecord room, MemberRecord member)
    {
        if (room.MemberIdOf(member.UserId) != member.Id)
        {
            throw new ArgumentException($"Room {room.Id} derives its member ids from their users (RoomRecord.MemberIdOf); member {member.Id} is not the one of its user.", nameof(member));
        }
    }

    private static MemberRecord ToMember(Dictionary<string, AttributeValue> item) => new()
    {
        Room = ParseRoom(item[RoomIdAttr].S),
        Id = ParseMember(item[MemberIdAttr].S),
        UserId = item[UserIdAttr].S,
        DisplayName = item[DisplayName].S,
        IsVerified = item[IsVerified].BOOL ?? false,
        IsAdmin = item[IsAdmin].BOOL ?? false,
        Admission = ParseAdmission(item[Admission].S),
        Epoch = long.Parse(item[Epoch].N, CultureInfo.InvariantCulture),
        ConnectionId = item.TryGetValue(ConnectionIdAttr, out var connectionId) ? connectionId.S : null,
        ReadyAt = item.TryGetValue(ReadyAt, out var readyAt) ? ParseIso(readyAt.S) : null,
        ProtocolVersion = item.TryGetValue(WireVersion, out var wireVersion) ? int.Parse(wireVersion.N, CultureInfo.InvariantCulture) : 1, // items written before version 2 have none
        SuspendedUntil = item.TryGetValue(SuspendedUntil, out var suspendedUntil) ? ParseIso(suspendedUntil.S) : null,
        JoinedAt = ParseIso(item[JoinedAt].S),
        ExpiresAt = item.TryGetValue(MemberExpiry, out var memberExpiry) ? ParseIso(memberExpiry.S) : null,
        TicketHash = item.TryGetValue(TicketHashAttr, out var ticketHash) ? ticketHash.S : null,
        TicketExpiresAt = item.TryGetValue(TicketExpiry, out var ticketExpiry) ? ParseIso(ticketExpiry.S) : null,
        Version = long.Parse(item[Version].N, CultureInfo.InvariantCulture),
    };

    /// <summary>The member, or <see langword="null"/> when its own expiry has passed (TTL deletes late).</summary>
    private MemberRecord? LiveMember(MemberRecord member) => member.IsExpiredAt(_time.GetUtcNow()) ? null : member;

    private static ConnectionRecord ToConnection(Dictionary<string, AttributeValue> item)
        => new(item[ConnectionIdAttr].S, ParseRoom(item[RoomIdAttr].S), ParseMember(item[MemberIdAttr].S), long.Parse(item[Epoch].N, CultureInfo.InvariantCulture), ParseIso(item[Expiry].S));

    /// <summary>
    /// Reads a room's item, treating an expired one as absent. The item is written once, at creation; after that only its
    /// seat counter changes, which no reader of a room takes from it (a seat is taken by a conditional update). So an
    /// eventually consistent read, half a read unit, answers what a strongly consistent one would, except that the replica
    /// it reaches may not have the item yet: "the response might not reflect the results of a recently completed write
    /// operation" (DynamoDB Developer Guide, "DynamoDB read consistency",
    /// https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.ReadConsistency.html). A miss is read
    /// again, strongly: a room just created is never taken for one that does not exist.
    /// </summary>
    private async Task<Dictionary<string, AttributeValue>?> GetRoomItemAsync(string pk, CancellationToken cancellationToken)
    {
        await ReadyAsync(cancellationToken).ConfigureAwait(false);
        var response = await _client.GetItemAsync(
            Tagged(new GetItemRequest { TableName = _table, Key = Key(pk, MetaSk), ConsistentRead = false }),
            cancellationToken).ConfigureAwait(false);
        if (response.Item is not { Count: > 0 } item)
        {
            return await GetAsync(pk, MetaSk, cancellationToken).ConfigureAwait(false);
        }

        return string.CompareOrdinal(item[Expiry].S, Iso(_time.GetUtcNow())) > 0 ? item : null;
    }

    /// <summary>A strongly consistent read that treats expired items as absent.</summary>
    private async Task<Dictionary<string, AttributeValue>?> GetAsync(string pk, string sk, CancellationToken cancellationToken)
    {
        await ReadyAsync(cancellationToken).ConfigureAwait(false);
        var response = await _client.GetItemAsync(
            Tagged(new GetItemRequest { TableName = _table, Key = Key(pk, sk), ConsistentRead = true }),
            cancellationToken).ConfigureAwait(false);
        var item = response.Item;
        return item is { Count: > 0 } && string.CompareOrdinal(item[Expiry].S, Iso(_time.GetUtcNow())) > 0 ? item : null;
    }

    /// <summary>A strongly consistent read of an item as stored, expired or not.</summary>
    private async Task<Dictionary<string, AttributeValue>?> GetRawAsync(Dictionary<string, AttributeValue> key, CancellationToken cancellationToken)
    {
        var response = await _client.GetItemAsync(
            Tagged(new GetItemRequest { TableName = _table, Key = key, ConsistentRead = true }),
            cancellationToken).ConfigureAwait(false);
        return response.Item is { Count: > 0 } item ? item : null;
    }

    /// <summary>Makes one write of an append, conditional on the queue being in the state the write is made for.</summary>
    /// <returns><see langword="true"/> when it was made; <see langword="false"/> when the queue was in another state.</returns>
    private async Task<bool> TryWriteQueueAsync(QueueAppend append, QueueWrite write, string now, CancellationToken cancellationToken)
    {
        var live = "#expiry > :now";
        var extends = "#expiry <= :expiry";
        var keeps = "#expiry > :expiry";
        var fits = "(attribute_not_exists(#msgs) OR (size(#msgs) < :max AND #bytes <= :limit))";
        const string Push = "#msgs = list_append(if_not_exists(#msgs, :empty), :message), #bytes = if_not_exists(#bytes, :zero) + :len";
        const string Stamp = "#kind = :kind, #expiry = :expiry, #ttl = :ttl";
        var (update, condition) = write switch
        {
            QueueWrite.Append => ($"SET {Push}, {Stamp}", $"attribute_not_exists(#pk) OR ({live} AND {extends} AND {fits})"),
            QueueWrite.AppendKeepingExpiry => ($"SET {Push}", $"{live} AND {keeps} AND {fits}"),
            QueueWrite.Drop => ($"ADD #dropped :one SET {Stamp}", append.FitsAlone ? $"{live} AND {extends} AND NOT {fits}" : $"attribute_not_exists(#pk) OR ({live} AND {extends})"),
            QueueWrite.DropKeepingExpiry => ("ADD #dropped :one", append.FitsAlone ? $"{live} AND {keeps} AND NOT {fits}" : $"{live} AND {keeps}"),
            _ => (string.Empty, "attribute_not_exists(#pk) OR #expiry <= :now"),
        };
        var names = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["#pk"] = Pk,
            ["#expiry"] = Expiry,
            ["#msgs"] = QueueMessages,
            ["#bytes"] = QueueBytes,
            ["#dropped"] = QueueDropped,
            ["#kind"] = Kind,
            ["#ttl"] = Ttl,
        };
        var values = new Dictionary<string, AttributeValue>(StringComparer.Ordinal)
        {
            [":now"] = S(now),
            [":expiry"] = S(Iso(append.ExpiresAt)),
            [":ttl"] = N(TtlSeconds(append.ExpiresAt)),
            [":kind"] = S("queue"),
            [":max"] = N(append.MaxMessages),
            [":limit"] = N(append.MaxBytes - append.Message.Length),
            [":message"] = new() { L = [Binary(append.Message)] },
            [":empty"] = new() { L = [], IsLSet = true },
            [":zero"] = N(0),
            [":len"] = N(append.Message.Length),
            [":one"] = N(1),
        };
        try
        {
            if (write == QueueWrite.Restart)
            {
                // The stored queue expired (TTL deletes late): a new one replaces it, holding the message or its drop.
                var item = new Dictionary<string, AttributeValue>(append.Key, StringComparer.Ordinal) { [Kind] = S("queue") };
                AddExpiry(item, append.ExpiresAt);
                if (append.FitsAlone)
                {
                    item[QueueMessages] = values[":message"];
                    item[QueueBytes] = values[":len"];
                }
                else
                {
                    item[QueueDropped] = values[":one"];
                }

                await _client.PutItemAsync(
                    Tagged(new PutItemRequest
                    {
                        TableName = _table,
                        Item = item,
                        ConditionExpression = condition,
                        ExpressionAttributeNames = Used(names, condition),
                        ExpressionAttributeValues = Used(values, condition),
                    }),
                    cancellationToken).ConfigureAwait(false);
                return true;
            }

            var expressions = update + " " + condition;
            await _client.UpdateItemAsync(
                Tagged(new UpdateItemRequest
                {
                    TableName = _table,
                    Key = append.Key,
                    UpdateExpression = update,
                    ConditionExpression = condition,
                    ExpressionAttributeNames = Used(names, expressions),
                    ExpressionAttributeValues = Used(values, expressions),
                }),
                cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (ConditionalCheckFailedException)
        {
            return false;
        }
    }

    /// <summary>The placeholders an expression uses (DynamoDB refuses unused ones).</summary>
    private static Dictionary<string, T> Used<T>(Dictionary<string, T> placeholders, string expressions)
    {
        var used = new Dictionary<string, T>(StringComparer.Ordinal);
        foreach (var (token, value) in placeholders)
        {
            for (var at = expressions.IndexOf(token, StringComparison.Ordinal); at >= 0; at = expressions.IndexOf(token, at + 1, StringComparison.Ordinal))
            {
                var end = at + token.Length;
                if (end == expressions.Length || !(char.IsAsciiLetterOrDigit(expressions[end]) || expressions[end] == '_'))
                {
                    used[token] = value;
                    break;
                }
            }
        }

        return used;
    }

    private static AttributeValue Binary(ReadOnlyMemory<byte> bytes) => new() { B = new MemoryStream(bytes.ToArray(), writable: false) };

    /// <summary>Puts an item unless one with the same key exists.</summary>
    private async Task<bool> TryPutNewAsync(Dictionary<string, AttributeValue> item, CancellationToken cancellationToken)
    {
        try
        {
            await _client.PutItemAsync(
                Tagged(new PutItemRequest { TableName = _table, Item = item, ConditionExpression = NotExists, ExpressionAttributeNames = PkName }),
                cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (ConditionalCheckFailedException)
        {
            return false;
        }
    }

    /// <summary>
    /// Steps (2) to (4) of an add whose guard is written: take a seat (admitted only), write the member, check the pending
    /// limit (pending only). A knock whose caller has just read the room live (<paramref name="roomRead"/>) skips the room's
    /// check, one write.
    /// </summary>
    private async Task<AddMemberOutcome> CompleteAddAsync(MemberRecord member, int capacity, int maxPending, DateTimeOffset roomExpiresAt, bool guarded, bool roomRead, CancellationToken cancellationToken)
    {
        var pk = RoomPk(member.Room);
        var seats = member.Admission == AdmissionStatus.Admitted ? 1 : 0;
        var memberSk = MemberPrefix + member.Id.Value;
        if (!guarded)
        {
            // The member item is the guard, so it goes first: a live member of this user holds its id, and a second one is
            // refused before it takes anything. An admitted add then takes its seat, and without one withdraws (for that
            // moment a reader may see it; the engine adds members pending and admits them with TryAdmitMemberAsync).
            if (!await TryPutOwnMemberAsync(MemberItem(member, memberSk, roomExpiresAt), cancellationToken).ConfigureAwait(false))
            {
                return AddMemberOutcome.UserExists;
            }

            if (seats > 0 && !await TryTakeSeatAsync(pk, seats, capacity, cancellationToken).ConfigureAwait(false))
            {
                await DeleteMemberAsync(pk, member, cancellationToken).ConfigureAwait(false);
                return await NoSeatOutcomeAsync(pk, cancellationToken).ConfigureAwait(false);
            }
        }
        else
        {
            if ((seats > 0 || !roomRead) && !await TryTakeSeatAsync(pk, seats, capacity, cancellationToken).ConfigureAwait(false))
            {
                await DeleteGuardAsync(pk, member, cancellationToken).ConfigureAwait(false);
                return await NoSeatOutcomeAsync(pk, cancellationToken).ConfigureAwait(false);
            }

            if (!await TryPutNewAsync(MemberItem(member, memberSk, roomExpiresAt), cancellationToken).ConfigureAwait(false))
            {
                // Someone else wrote the member first: it keeps its seat, this one is given back.
                await ReleaseSeatsAsync(pk, seats, cancellationToken).ConfigureAwait(false);
                var existing = await GetAsync(pk, memberSk, cancellationToken).ConfigureAwait(false);
                if (existing is not null && string.Equals(existing[UserIdAttr].S, member.UserId, StringComparison.Ordinal))
                {
                    return AddMemberOutcome.Added; // a reader completed this very add from the guard
                }

                await DeleteGuardAsync(pk, member, cancellationToken).ConfigureAwait(false); // another user holds this member id
                return AddMemberOutcome.UserExists;
            }
        }

        if (member.Admission != AdmissionStatus.Pending)
        {
            return AddMemberOutcome.Added;
        }

        // (4) Insert, then count: every knock counts itself and all knocks written before its count, so of any set of
        // knocks above the limit the last one written sees them all and withdraws. Racing knocks may all withdraw (a
        // refusal although a place was free); the room never holds more than maxPending pending members.
        var pending = 0;
        foreach (var other in await ListMembersAsync(member.Room, cancellationToken).ConfigureAwait(false))
        {
            pending += other.Admission == AdmissionStatus.Pending ? 1 : 0;
        }

        if (pending <= maxPending)
        {
            return AddMemberOutcome.Added;
        }

        await DeleteMemberAsync(pk, member, cancellationToken).ConfigureAwait(false);
        if (guarded)
        {
            await DeleteGuardAsync(pk, member, cancellationToken).ConfigureAwait(false);
        }

        return AddMemberOutcome.TooManyPending;
    }

    /// <summary>
    /// Puts the member item of a room with a member-id key, where it is its user's guard: unless one is there, or over a
    /// knock of the same id whose own expiry has passed (the user knocking again after its knock lapsed; the read side
    /// already treats it as gone, and TTL deletes it late, "typically within a few days": DynamoDB Developer Guide, "Time to
    /// Live (TTL)", https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/TTL.html). A member without its own
    /// expiry (connected, admitted or denied) is never replaced: a denial stays for the room's life (the condition says
    /// <c>attribute_exists(#mexp)</c> rather than lean on how a comparison treats a missing attribute, as
    /// <c>TryWriteMemberAsync</c> does).
    /// </summary>
    private async Task<bool> TryPutOwnMemberAsync(Dictionary<string, AttributeValue> item, CancellationToken cancellationToken)
    {
        try
        {
            await _client.PutItemAsync(
                Tagged(new PutItemRequest
                {
                    TableName = _table,
                    Item = item,
                    ConditionExpression = "attribute_not_exists(#pk) OR (attribute_exists(#mexp) AND #mexp <= :now)",
                    ExpressionAttributeNames = new() { ["#pk"] = Pk, ["#mexp"] = MemberExpiry },
                    ExpressionAttributeValues = new() { [":now"] = S(Iso(_time.GetUtcNow())) },
                }),
                cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (ConditionalCheckFailedException)
        {
            return false;
        }
    }

    /// <summary>Why a seat was not taken: the room is gone, or full.</summary>
    private async Task<AddMemberOutcome> NoSeatOutcomeAsync(string pk, CancellationToken cancellationToken)
        => await GetAsync(pk, MetaSk, cancellationToken).ConfigureAwait(false) is null ? AddMemberOutcome.RoomNotFound : AddMemberOutcome.RoomFull;

    /// <summary>Takes <paramref name="seats"/> (0 or 1) on a live room item, if fewer than <paramref name="capacity"/> are taken (0 seats: only the room is checked).</summary>
    private async Task<bool> TryTakeSeatAsync(string pk, int seats, int capacity, CancellationToken cancellationToken)
    {
        var values = new Dictionary<string, AttributeValue>(StringComparer.Ordinal)
        {
            [":seats"] = N(seats),
            [":now"] = S(Iso(_time.GetUtcNow())),
        };
        var condition = "attribute_exists(#pk) AND #expiry > :now";
        if (seats > 0)
        {
            condition += " AND #count < :capacity";
            values[":capacity"] = N(capacity);
        }

        try
        {
            await _client.UpdateItemAsync(
                Tagged(new UpdateItemRequest
                {
                    TableName = _table,
                    Key = Key(pk, MetaSk),
                    UpdateExpression = "ADD #count :seats",
                    ConditionExpression = condition,
                    ExpressionAttributeNames = new() { ["#pk"] = Pk, ["#count"] = MemberCount, ["#expiry"] = Expiry },
                    ExpressionAttributeValues = values,
                }),
                cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (ConditionalCheckFailedException)
        {
            return false;
        }
    }

    /// <summary>
    /// Replaces the guard of a user whose member no longer lives (a knock that expired), so that a new knock by the same
    /// user makes a new member. A guard whose member is merely not written yet (an add in flight, or interrupted) stays.
    /// </summary>
    private async Task<bool> TryTakeOverGuardAsync(string pk, MemberRecord member, Dictionary<string, AttributeValue> guard, CancellationToken cancellationToken)
    {
        var existing = await GetAsync(pk, UserPrefix + member.UserId, cancellationToken).ConfigureAwait(false);
        if (existing is null)
        {
            return await TryPutNewAsync(guard, cancellationToken).ConfigureAwait(false); // withdrawn meanwhile: try once more
        }

        var now = _time.GetUtcNow();
        var item = await GetAsync(pk, MemberPrefix + existing[MemberIdAttr].S, cancellationToken).ConfigureAwait(false);
        var dead = item is null ? ToMember(existing).IsExpiredAt(now) : ToMember(item).IsExpiredAt(now);
        if (!dead)
        {
            return false;
        }

        try
        {
            await _client.PutItemAsync(
                Tagged(new PutItemRequest
                {
                    TableName = _table,
                    Item = guard,
                    ConditionExpression = "#member = :old",
                    ExpressionAttributeNames = new() { ["#member"] = MemberIdAttr },
                    ExpressionAttributeValues = new() { [":old"] = existing[MemberIdAttr] },
                }),
                cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (ConditionalCheckFailedException)
        {
            return false; // another knock took it over first
        }
    }

    /// <summary>Deletes a member item that this add wrote and nobody has changed since.</summary>
    private async Task DeleteMemberAsync(string pk, MemberRecord member, CancellationToken cancellationToken)
    {
        try
        {
            await _client.DeleteItemAsync(
                Tagged(new DeleteItemRequest
                {
                    TableName = _table,
                    Key = Key(pk, MemberPrefix + member.Id.Value),
                    ConditionExpression = "#version = :version",
                    ExpressionAttributeNames = new() { ["#version"] = Version },
                    ExpressionAttributeValues = new() { [":version"] = N(member.Version) },
                }),
                cancellationToken).ConfigureAwait(false);
        }
        catch (ConditionalCheckFailedException)
        {
            // Changed meanwhile: it stays, and expires with its ticket.
        }
    }

    /// <summary>Gives seats back (a negative number takes seats) on a room item that still exists.</summary>
    private async Task ReleaseSeatsAsync(string pk, int seats, CancellationToken cancellationToken)
    {
        if (seats == 0)
        {
            return;
        }

        try
        {
            await _client.UpdateItemAsync(
                Tagged(new UpdateItemRequest
                {
                    TableName = _table,
                    Key = Key(pk, MetaSk),
                    UpdateExpression = "ADD #count :delta",
                    ConditionExpression = "attribute_exists(#pk)",
                    ExpressionAttributeNames = new() { ["#pk"] = Pk, ["#count"] = MemberCount },
                    ExpressionAttributeValues = new() { [":delta"] = N(-seats) },
                }),
                cancellationToken).ConfigureAwait(false);
        }
        catch (ConditionalCheckFailedException)
        {
            // The room item is gone (TTL): there is nothing to count any more.
        }
    }

    private async Task DeleteGuardAsync(string pk, MemberRecord member, CancellationToken cancellationToken)
    {
        try
        {
            await _client.DeleteItemAsync(
                Tagged(new DeleteItemRequest
                {
                    TableName = _table,
                    Key = Key(pk, UserPrefix + member.UserId),
                    ConditionExpression = "#member = :member",
                    ExpressionAttributeNames = new() { ["#member"] = MemberIdAttr },
                    ExpressionAttributeValues = new() { [":member"] = S(member.Id.Value) },
                }),
                cancellationToken).ConfigureAwait(false);
        }
        catch (ConditionalCheckFailedException)
        {
            // Not ours (any more).
        }
    }

    /// <summary>
    /// Writes a member's mutable fields if the stored version, user and (optionally) denial match and the room has not
    /// expired. The key, the user and the expiry stay as stored.
    /// </summary>
    /// <returns>The item before the write, or <see langword="null"/> when the condition failed.</returns>
    private async Task<Dictionary<string, AttributeValue>?> TryWriteMemberAsync(MemberRecord stored, bool? requireAdmitted, CancellationToken cancellationToken)
    {
        var names = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["#pk"] = Pk,
            ["#version"] = Version,
            ["#user"] = UserIdAttr,
            ["#expiry"] = Expiry,
            ["#name"] = DisplayName,
            ["#verified"] = IsVerified,
            ["#admin"] = IsAdmin,
            ["#admission"] = Admission,
            ["#epoch"] = Epoch,
            ["#connection"] = ConnectionIdAttr,
            ["#ready"] = ReadyAt,
            ["#pv"] = WireVersion,
            ["#suspended"] = SuspendedUntil,
            ["#joined"] = JoinedAt,
            ["#mexp"] = MemberExpiry,
            ["#ttl"] = Ttl,
            ["#tk"] = TicketHashAttr,
            ["#tkx"] = TicketExpiry,
        };
        var values = new Dictionary<string, AttributeValue>(StringComparer.Ordinal)
        {
            [":expected"] = N(stored.Version - 1),
            [":next"] = N(stored.Version),
            [":user"] = S(stored.UserId),
            [":now"] = S(Iso(_time.GetUtcNow())),
            [":name"] = S(stored.DisplayName),
            [":verified"] = Bool(stored.IsVerified),
            [":admin"] = Bool(stored.IsAdmin),
            [":admission"] = S(AdmissionText(stored.Admission)),
            [":epoch"] = N(stored.Epoch),
            [":joined"] = S(Iso(stored.JoinedAt)),
            [":pv"] = N(stored.ProtocolVersion),
        };
        var set = new List<string> { "#version = :next", "#name = :name", "#verified = :verified", "#admin = :admin", "#admission = :admission", "#epoch = :epoch", "#joined = :joined", "#pv = :pv" };
        var remove = new List<string>();
        if (stored.ConnectionId is { } connectionId)
        {
            set.Add("#connection = :connection");
            values[":connection"] = S(connectionId);
        }
        else
        {
            remove.Add("#connection");
        }

        if (stored.ReadyAt is { } readyAt)
        {
            set.Add("#ready = :ready");
            values[":ready"] = S(Iso(readyAt));
        }
        else
        {
            remove.Add("#ready");
        }

        if (stored.SuspendedUntil is { } suspendedUntil)
        {
            set.Add("#suspended = :suspended");
            values[":suspended"] = S(Iso(suspendedUntil));
        }
        else
        {
            remove.Add("#suspended");
        }

        if (stored.TicketHash is { } ticketHash)
        {
            set.Add("#tk = :tk");
            set.Add("#tkx = :tkx");
            values[":tk"] = S(ticketHash);
            values[":tkx"] = S(Iso(stored.TicketExpiresAt ?? DateTimeOffset.MinValue));
        }
        else
        {
            remove.Add("#tk");
            remove.Add("#tkx");
        }

        // A member with its own expiry has it as TTL; without, the room's TTL (kept on the item) comes back.
        if (stored.ExpiresAt is { } memberExpiry)
        {
            set.Add("#mexp = :mexp");
            set.Add("#ttl = :mttl");
            values[":mexp"] = S(Iso(memberExpiry));
            values[":mttl"] = N(TtlSeconds(memberExpiry));
        }
        else
        {
            remove.Add("#mexp");
            set.Add("#ttl = if_not_exists(#roomTtl, #ttl)");
            names["#roomTtl"] = RoomTtl;
        }

        var condition = "attribute_exists(#pk) AND #version = :expected AND #user = :user AND #expiry > :now AND (attribute_not_exists(#mexp) OR #mexp > :now)";
        if (requireAdmitted is { } admitted)
        {
            condition += admitted ? " AND #admission = :admitted" : " AND #admission <> :admitted";
            values[":admitted"] = S(AdmissionText(AdmissionStatus.Admitted));
        }

        var update = "SET " + string.Join(", ", set) + (remove.Count > 0 ? " REMOVE " + string.Join(", ", remove) : string.Empty);
        try
        {
            var response = await _client.UpdateItemAsync(
                Tagged(new UpdateItemRequest
                {
                    TableName = _table,
                    Key = Key(RoomPk(stored.Room), MemberPrefix + stored.Id.Value),
                    UpdateExpression = update,
                    ConditionExpression = condition,
                    ExpressionAttributeNames = names,
                    ExpressionAttributeValues = values,
                    ReturnValues = ReturnValue.ALL_OLD,
                }),
                cancellationToken).ConfigureAwait(false);
            return response.Attributes ?? [];
        }
        catch (ConditionalCheckFailedException)
        {
            return null;
        }
    }

    /// <summary>Creates the table before the first operation when the options ask for it.</summary>
    private async ValueTask ReadyAsync(CancellationToken cancellationToken)
    {
        if (!_createTable || _tableReady)
        {
            return;
        }

        await _tableGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (!_tableReady)
            {
                await DynamoDbTableCreator.CreateIfMissingAsync(_client, _table, _time, _logger, cancellationToken).ConfigureAwait(false);
                _tableReady = true;
            }
        }
        finally
        {
            _tableGate.Release();
        }
    }

    /// <summary>The writes an append can make; each is conditional on the queue's state it is made for.</summary>
    private enum QueueWrite
    {
        /// <summary>Store the message and set the expiry: the queue is absent, or live, has room and an expiry no later.</summary>
        Append,

        /// <summary>Store the message: the queue is live, has room and a later expiry (kept).</summary>
        AppendKeepingExpiry,

        /// <summary>Count a drop and set the expiry: the queue is live, has no room and an expiry no later (or is absent, when the message fits no queue).</summary>
        Drop,

        /// <summary>Count a drop: the queue is live, has no room and a later expiry (kept).</summary>
        DropKeepingExpiry,

        /// <summary>Replace an expired queue with a new one holding the message (or its drop).</summary>
        Restart,
    }

    /// <summary>One append: the queue's key, the message and its bounds.</summary>
    private sealed record QueueAppend(Dictionary<string, AttributeValue> Key, ReadOnlyMemory<byte> Message, int MaxMessages, int MaxBytes, DateTimeOffset ExpiresAt)
    {
        /// <summary>Gets a value indicating whether the message fits an empty queue (when not, it is dropped whatever the queue holds).</summary>
        public bool FitsAlone => MaxMessages > 0 && Message.Length <= MaxBytes;

        /// <summary>The write for the queue as read (<see langword="null"/>: absent).</summary>
        public QueueWrite Classify(Dictionary<string, AttributeValue>? item, string now)
        {
            if (item is null)
            {
                return FitsAlone ? QueueWrite.Append : QueueWrite.Drop;
            }

            if (string.CompareOrdinal(item[Expiry].S, now) <= 0)
            {
                return QueueWrite.Restart;
            }

            var extends = string.CompareOrdinal(item[Expiry].S, Iso(ExpiresAt)) <= 0;
            var fits = FitsAlone
                && (!item.TryGetValue(QueueMessages, out var messages)
                    || ((messages.L?.Count ?? 0) < MaxMessages && long.Parse(item[QueueBytes].N, CultureInfo.InvariantCulture) <= MaxBytes - Message.Length));
            return (fits, extends) switch
            {
                (true, true) => QueueWrite.Append,
                (true, false) => QueueWrite.AppendKeepingExpiry,
                (false, true) => QueueWrite.Drop,
                (false, false) => QueueWrite.DropKeepingExpiry,
            };
        }
    }
}
