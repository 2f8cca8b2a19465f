using System.Text.Json;
using Microsoft.Extensions.Options;
using StackExchange.Redis;
using Talki.Signalling.Ports;
using Talki.Signalling.Redis.Internal;

namespace Talki.Signalling.Redis.Storage;

/// <summary>
/// The room store on Redis, shared by every instance of the host.
/// </summary>
/// <remarks>
/// <para>Keys (<c>P</c> is <see cref="TalkiRedisOptions.KeyPrefix"/>; a room's keys share the hash tag <c>{room}</c>):</para>
/// <list type="table">
/// <item><term><c>P{room}:room</c></term><description>hash: <c>admin</c>, <c>created</c>, <c>seals</c>, <c>expires</c>, and <c>key</c> (the member-id key) when the room has one.</description></item>
/// <item><term><c>P{room}:members</c></term><description>hash: member id → the member as JSON (<see cref="StoredMember"/>), with its version.</description></item>
/// <item><term><c>P{room}:users</c></term><description>hash: user id → member id (one member per user and room).</description></item>
/// <item><term><c>Pticket:{hash}</c></term><description>a one-time ticket (JSON), written with <c>SET NX</c>, consumed with <c>GETDEL</c>.</description></item>
/// <item><term><c>Pconn:{connection}</c></term><description>a connection binding (JSON).</description></item>
/// <item><term><c>P{room}:msgs:{member}:{epoch}</c></term><description>list: a suspended member's queued messages for one epoch, oldest first.</description></item>
/// <item><term><c>P{room}:queue:{member}:{epoch}</c></term><description>hash of that queue: <c>expires</c>, <c>bytes</c>, <c>dropped</c>.</description></item>
/// </list>
/// <para>
/// Every key expires (<c>PEXPIRE</c>) when its record does by the injected clock, and every read and conditional write
/// also compares the record's expiry with the injected clock's "now", so a record is gone exactly at its expiry whatever
/// Redis's clock and however late Redis deletes it. Each check-and-write (create, add, update, admit) is one Lua script
/// (<see cref="RedisRoomScripts"/>), atomic in Redis: capacity and the pending limit are exact, version-conditional
/// writes never lose an update, and of any number of concurrent <c>GETDEL</c>s of a ticket exactly one gets it. A queue's
/// append (within the bounds, or counted as dropped) and its take (read and delete) are one script each, so concurrent
/// appends keep the bounds and concurrent takers never share a message.
/// </para>
/// <para>
/// When Redis is unreachable (no connection, a timeout, loading, failing over) every operation throws
/// <see cref="RoomStoreUnavailableException"/>: the engine answers <c>service_unavailable</c> and keeps its connections.
/// </para>
/// </remarks>
internal sealed class RedisRoomStore : IRoomStore
{
    private readonly RedisConnection _redis;
    private readonly string _prefix;
    private readonly TimeProvider _time;

    public RedisRoomStore(RedisConnection redis, IOptions<TalkiRedisOptions> options, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(redis);
        ArgumentNullException.ThrowIfNull(options);
        _redis = redis;
        _prefix = options.Value.KeyPrefix;
        _time = time;
    }

    public ValueTask CreateRoomAsync(RoomRecord room, MemberRecord admin, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(room);
        ArgumentNullException.ThrowIfNull(admin);
        if (admin.Room != room.Id)
        {
            throw new ArgumentException("The admin must belong to the room.", nameof(admin));
        }

        return RedisFailures.Guard(CreateRoomCoreAsync(room, admin));
    }

    public ValueTask<RoomRecord?> GetRoomAsync(RoomId room, CancellationToken cancellationToken = default)
        => RedisFailures.Guard(GetRoomCoreAsync(room));

    public ValueTask<MemberRecord?> GetMemberAsync(RoomId room, MemberId member, CancellationToken cancellationToken = default)
        => RedisFailures.Guard(ReadMemberAsync(room, RedisRoomScripts.GetMember, RoomKeys(room, users: false), member.Value, userId: null));

    /// <summary>Both members in one round trip (one script, <c>HMGET</c>), where two reads took two.</summary>
    public ValueTask<(MemberRecord? First, MemberRecord? Second)> GetMemberPairAsync(RoomId room, MemberId first, MemberId second, CancellationToken cancellationToken = default)
        => RedisFailures.Guard(ReadMemberPairAsync(room, first, second));

    public ValueTask<MemberRecord?> FindMemberByUserAsync(RoomId room, string userId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(userId);
        return RedisFailures.Guard(ReadMemberAsync(room, RedisRoomScripts.FindByUser, RoomKeys(room, users: true), userId, userId));
    }

    public ValueTask<IReadOnlyList<MemberRecord>> ListMembersAsync(RoomId room, CancellationToken cancellationToken = default)
        => RedisFailures.Guard(ListMembersCoreAsync(room));

    public ValueTask<AddMemberOutcome> TryAddMemberAsync(MemberRecord member, int capacity, int maxPending, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(member);
        return RedisFailures.Guard(TryAddMemberCoreAsync(member, capacity, maxPending));
    }

    public ValueTask<MemberRecord?> TryUpdateMemberAsync(MemberRecord updated, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(updated);
        return RedisFailures.Guard(TryUpdateMemberCoreAsync(updated));
    }

    public ValueTask<AdmitMemberOutcome> TryAdmitMemberAsync(MemberRecord admitted, int capacity, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(admitted);
        if (admitted.Admission != AdmissionStatus.Admitted)
        {
            throw new ArgumentException("Only an admitted member can be admitted.", nameof(admitted));
        }

        return RedisFailures.Guard(TryAdmitMemberCoreAsync(admitted, capacity));
    }

    public ValueTask StoreTicketAsync(TicketRecord ticket, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(ticket);
        return RedisFailures.Guard(StoreTicketCoreAsync(ticket));
    }

    /// <summary>One script: the check, the removal and the version's bump are one atomic step and one round trip.</summary>
    public ValueTask<MemberRecord?> TakeMemberTicketAsync(RoomId room, MemberId member, string hash, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(hash);
        return RedisFailures.Guard(ReadMemberAsync(room, RedisRoomScripts.TakeTicket, RoomKeys(room, users: false), member.Value, userId: null, hash));
    }

    public ValueTask<TicketRecord?> ConsumeTicketAsync(string hash, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(hash);
        return RedisFailures.Guard(ConsumeTicketCoreAsync(hash));
    }

    public ValueTask PutConnectionAsync(ConnectionRecord connection, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connection);
        return RedisFailures.Guard(PutConnectionCoreAsync(connection));
    }

    public ValueTask<ConnectionRecord?> GetConnectionAsync(string connectionId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connectionId);
        return RedisFailures.Guard(GetConnectionCoreAsync(connectionId));
    }

    public ValueTask<ConnectionRecord?> RemoveConnectionAsync(string connectionId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connectionId);
        return RedisFailures.Guard(RemoveConnectionCoreAsync(connectionId));
    }

    public ValueTask<bool> EnqueueMessageAsync(RoomId room, MemberId member, long epoch, ReadOnlyMemory<byte> message, int maxMessages, int maxBytes, DateTimeOffset expiresAt, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxMessages);
        ArgumentOutOfRangeException.ThrowIfNegative(maxBytes);
        return RedisFailures.Guard(EnqueueMessageCoreAsync(room, member, epoch, message, maxMessages, maxBytes, expiresAt));
    }

    public ValueTask<QueuedMessages> TakeQueuedMessagesAsync(RoomId room, MemberId member, long epoch, CancellationToken cancellationToken = default)
        => RedisFailures.Guard(TakeQueuedMessagesCoreAsync(room, member, epoch));

    /// <summary>The key of a room's hash (<c>part</c> is room, members or users).</summary>
    internal string RoomKey(RoomId room, string part) => $"{_prefix}{{{room.Value}}}:{part}";

    internal string TicketKey(string hash) => _prefix + "ticket:" + hash;

    internal string ConnectionKey(string connectionId) => _prefix + "conn:" + connectionId;

    private async Task CreateRoomCoreAsync(RoomRecord room, MemberRecord admin)
    {
        var now = _time.GetUtcNow();
        var db = await _redis.GetDatabaseAsync().ConfigureAwait(false);
        var created = (long)await db.ScriptEvaluateAsync(
            RedisRoomScripts.Create,
            RoomKeys(room.Id, users: true),
            [
                RedisTime.Text(now),
                RedisTime.TtlMilliseconds(room.ExpiresAt, now),
                room.AdminMember.Value,
                RedisTime.Text(room.CreatedAt),
                RedisTime.Text(room.SealsAt),
                RedisTime.Text(room.ExpiresAt),
                admin.Id.Value,
                MemberJson(admin),
                admin.UserId,
                room.MemberIdKey ?? string.Empty,
            ]).ConfigureAwait(false);
        if (created != 1)
        {
            throw new InvalidOperationException($"Room {room.Id} exists already.");
        }
    }

    private async Task<RoomRecord?> GetRoomCoreAsync(RoomId room)
    {
        var db = await _redis.GetDatabaseAsync().ConfigureAwait(false);
        var fields = await db.HashGetAsync(RoomKey(room, "room"), ["admin", "created", "seals", "expires", "key"]).ConfigureAwait(false);
        if (fields[3].IsNull || string.CompareOrdinal(fields[3].ToString(), RedisTime.Text(_time.GetUtcNow())) <= 0)
        {
            return null;
        }

        return new RoomRecord(room, RedisIds.Member(fields[0].ToString()), RedisTime.Parse(fields[1].ToString()), RedisTime.Parse(fields[2].ToString()), RedisTime.Parse(fields[3].ToString()))
        {
            MemberIdKey = fields[4].IsNullOrEmpty ? null : fields[4].ToString(), // rooms created without a key have no field
        };
    }

    private async Task<MemberRecord?> ReadMemberAsync(RoomId room, string script, RedisKey[] keys, string argument, string? userId, string? extra = null)
    {
        var now = _time.GetUtcNow();
        var db = await _redis.GetDatabaseAsync().ConfigureAwait(false);
        RedisValue[] arguments = extra is null ? [RedisTime.Text(now), argument] : [RedisTime.Text(now), argument, extra];
        var result = await db.ScriptEvaluateAsync(script, keys, arguments).ConfigureAwait(false);
        if (result.IsNull)
        {
            return null;
        }

        var member = Member(room, (string)result!);
        return member.IsExpiredAt(now) || (userId is not null && !string.Equals(member.UserId, userId, StringComparison.Ordinal)) ? null : member;
    }

    private async Task<(MemberRecord? First, MemberRecord? Second)> ReadMemberPairAsync(RoomId room, MemberId first, MemberId second)
    {
        var now = _time.GetUtcNow();
        var db = await _redis.GetDatabaseAsync().ConfigureAwait(false);
        var result = await db.ScriptEvaluateAsync(RedisRoomScripts.GetMemberPair, RoomKeys(room, users: false), [RedisTime.Text(now), first.Value, second.Value]).ConfigureAwait(false);
        if (result.IsNull)
        {
            return (null, null);
        }

        var both = (RedisResult[])result!;
        return (Live(both[0]), Live(both[1]));

        MemberRecord? Live(RedisResult json)
        {
            if (json.IsNull)
            {
                return null;
            }

            var member = Member(room, (string)json!);
            return member.IsExpiredAt(now) ? null : member;
        }
    }

    private async Task<IReadOnlyList<MemberRecord>> ListMembersCoreAsync(RoomId room)
    {
        var now = _time.GetUtcNow();
        var db = await _redis.GetDatabaseAsync().ConfigureAwait(false);
        var result = (RedisResult[])(await db.ScriptEvaluateAsync(RedisRoomScripts.List, RoomKeys(room, users: false), [RedisTime.Text(now)]).ConfigureAwait(false))!;
        var members = new List<MemberRecord>(result.Length);
        foreach (var json in result)
        {
            var member = Member(room, (string)json!);
            if (!member.IsExpiredAt(now))
            {
                members.Add(member);
            }
        }

        // A hash has no order: list in join order (as the in-memory store does), so welcomes and plans are stable.
        members.Sort(static (x, y) => x.JoinedAt != y.JoinedAt ? x.JoinedAt.CompareTo(y.JoinedAt) : string.CompareOrdinal(x.Id.Value, y.Id.Value));
        return members;
    }

    private async Task<AddMemberOutcome> TryAddMemberCoreAsync(MemberRecord member, int capacity, int maxPending)
    {
        var db = await _redis.GetDatabaseAsync().ConfigureAwait(false);
        var outcome = (string?)await db.ScriptEvaluateAsync(
            RedisRoomScripts.Add,
            RoomKeys(member.Room, users: true),
            [
                RedisTime.Text(_time.GetUtcNow()),
                member.Id.Value,
                member.UserId,
                MemberJson(member),
                StoredMember.AdmissionText(member.Admission),
                capacity,
                maxPending,
            ]).ConfigureAwait(false);
        return outcome switch
        {
            "added" => AddMemberOutcome.Added,
            "exists" => AddMemberOutcome.UserExists,
            "full" => AddMemberOutcome.RoomFull,
            "toomanypending" => AddMemberOutcome.TooManyPending,
            _ => AddMemberOutcome.RoomNotFound,
        };
    }

    private async Task<MemberRecord?> TryUpdateMemberCoreAsync(MemberRecord updated)
    {
        var stored = updated with { Version = updated.Version + 1 };
        var db = await _redis.GetDatabaseAsync().ConfigureAwait(false);
        var written = (long)await db.ScriptEvaluateAsync(
            RedisRoomScripts.Update,
            RoomKeys(updated.Room, users: false),
            [
                RedisTime.Text(_time.GetUtcNow()),
                updated.Id.Value,
                updated.UserId,
                updated.Version,
                MemberJson(stored),
                StoredMember.AdmissionText(updated.Admission),
            ]).ConfigureAwait(false);
        return written == 1 ? stored : null;
    }

    private async Task<AdmitMemberOutcome> TryAdmitMemberCoreAsync(MemberRecord admitted, int capacity)
    {
        var db = await _redis.GetDatabaseAsync().ConfigureAwait(false);
        var outcome = (string?)await db.ScriptEvaluateAsync(
            RedisRoomScripts.Admit,
            RoomKeys(admitted.Room, users: false),
            [
                RedisTime.Text(_time.GetUtcNow()),
                admitted.Id.Value,
                admitted.UserId,
                admitted.Version,
                MemberJson(admitted with { Version = admitted.Version + 1 }),
                capacity,
            ]).ConfigureAwait(false);
        return outcome switch
        {
            "admitted" => AdmitMemberOutcome.Admitted,
            "full" => AdmitMemberOutcome.RoomFull,
            _ => AdmitMemberOutcome.Conflict,
        };
    }

    private async Task<bool> EnqueueMessageCoreAsync(RoomId room, MemberId member, long epoch, ReadOnlyMemory<byte> message, int maxMessages, int maxBytes, DateTimeOffset expiresAt)
    {
        var now = _time.GetUtcNow();
        var db = await _redis.GetDatabaseAsync().ConfigureAwait(false);
        var stored = (long)await db.ScriptEvaluateAsync(
            RedisRoomScripts.Enqueue,
            QueueKeys(room, member, epoch),
            [
                RedisTime.Text(now),
                message,
                message.Length,
                maxMessages,
                maxBytes,
                RedisTime.Text(expiresAt),
                RedisTime.TtlMilliseconds(expiresAt, now),
            ]).ConfigureAwait(false);
        return stored == 1;
    }

    private async Task<QueuedMessages> TakeQueuedMessagesCoreAsync(RoomId room, MemberId member, long epoch)
    {
        var db = await _redis.GetDatabaseAsync().ConfigureAwait(false);
        var result = (RedisResult[])(await db.ScriptEvaluateAsync(RedisRoomScripts.TakeQueue, QueueKeys(room, member, epoch), [RedisTime.Text(_time.GetUtcNow())]).ConfigureAwait(false))!;
        var dropped = (int)result[0];
        if (result.Length == 1 && dropped == 0)
        {
            return QueuedMessages.Empty;
        }

        var messages = new ReadOnlyMemory<byte>[result.Length - 1];
        for (var i = 1; i < result.Length; i++)
        {
            messages[i - 1] = (byte[])result[i]!;
        }

        return new QueuedMessages(messages, dropped);
    }

    private async Task StoreTicketCoreAsync(TicketRecord ticket)
    {
        var json = JsonSerializer.Serialize(
            new StoredTicket { Hash = ticket.Hash, Room = ticket.Room.Value, Member = ticket.Member.Value, ExpiresAt = ticket.ExpiresAt.UtcTicks },
            RedisJsonContext.Default.StoredTicket);
        var db = await _redis.GetDatabaseAsync().ConfigureAwait(false);
        var ttl = TimeSpan.FromMilliseconds(RedisTime.TtlMilliseconds(ticket.ExpiresAt, _time.GetUtcNow()));
        if (!await db.StringSetAsync(TicketKey(ticket.Hash), json, ttl, When.NotExists).ConfigureAwait(false))
        {
            throw new InvalidOperationException("A ticket with the same hash exists already.");
        }
    }

    private async Task<TicketRecord?> ConsumeTicketCoreAsync(string hash)
    {
        var db = await _redis.GetDatabaseAsync().ConfigureAwait(false);
        var json = await db.StringGetDeleteAsync(TicketKey(hash)).ConfigureAwait(false);
        if (json.IsNull)
        {
            return null;
        }

        var stored = JsonSerializer.Deserialize((string)json!, RedisJsonContext.Default.StoredTicket)!;
        return new TicketRecord(stored.Hash, RedisIds.Room(stored.Room), RedisIds.Member(stored.Member), RedisTime.FromTicks(stored.ExpiresAt));
    }

    private async Task PutConnectionCoreAsync(ConnectionRecord connection)
    {
        var json = JsonSerializer.Serialize(
            new StoredConnection { ConnectionId = connection.ConnectionId, Room = connection.Room.Value, Member = connection.Member.Value, Epoch = connection.Epoch, ExpiresAt = connection.ExpiresAt.UtcTicks },
            RedisJsonContext.Default.StoredConnection);
        var db = await _redis.GetDatabaseAsync().ConfigureAwait(false);
        var ttl = TimeSpan.FromMilliseconds(RedisTime.TtlMilliseconds(connection.ExpiresAt, _time.GetUtcNow()));
        await db.StringSetAsync(ConnectionKey(connection.ConnectionId), json, ttl).ConfigureAwait(false);
    }

    private async Task<ConnectionRecord?> GetConnectionCoreAsync(string connectionId)
    {
        var db = await _redis.GetDatabaseAsync().ConfigureAwait(false);
        var connection = Connection(await db.StringGetAsync(ConnectionKey(connectionId)).ConfigureAwait(false));
        return connection is not null && _time.GetUtcNow() < connection.ExpiresAt ? connection : null;
    }

    private async Task<ConnectionRecord?> RemoveConnectionCoreAsync(string connectionId)
    {
        var db = await _redis.GetDatabaseAsync().ConfigureAwait(false);
        return Connection(await db.StringGetDeleteAsync(ConnectionKey(connectionId)).ConfigureAwait(false));
    }

    private static ConnectionRecord? Connection(RedisValue json)
    {
        if (json.IsNull)
        {
            return null;
        }

        var stored = JsonSerializer.Deserialize((string)json!, RedisJsonContext.Default.StoredConnection)!;
        return new ConnectionRecord(stored.ConnectionId, RedisIds.Room(stored.Room), RedisIds.Member(stored.Member), stored.Epoch, RedisTime.FromTicks(stored.ExpiresAt));
    }

    private static string MemberJson(MemberRecord member) => JsonSerializer.Serialize(StoredMember.From(member), RedisJsonContext.Default.StoredMember);

    private static MemberRecord Member(RoomId room, string json)
        => JsonSerializer.Deserialize(json, RedisJsonContext.Default.StoredMember)!.ToRecord(room);

    /// <summary>The keys of a member's queue for one epoch: its list of messages and its hash (under the room's hash tag).</summary>
    private RedisKey[] QueueKeys(RoomId room, MemberId member, long epoch)
    {
        var suffix = member.Value + ":" + epoch.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return [RoomKey(room, "msgs:" + suffix), RoomKey(room, "queue:" + suffix)];
    }

    private RedisKey[] RoomKeys(RoomId room, bool users)
        => users
            ? [RoomKey(room, "room"), RoomKey(room, "members"), RoomKey(room, "users")]
            : [RoomKey(room, "room"), RoomKey(room, "members")];
}
