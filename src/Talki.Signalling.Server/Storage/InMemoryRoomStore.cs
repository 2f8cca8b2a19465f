using System.Collections.Concurrent;
using Talki.Signalling.Ports;
using Talki.Signalling.Server.Engine;

namespace Talki.Signalling.Server.Storage;

/// <summary>
/// The embedded default store: thread-safe, in this process only. Each room's members sit behind the
/// room's own lock; tickets and connection bindings in concurrent dictionaries (atomic removal makes
/// ticket consumption single-use). Expired entries (rooms, members whose <see cref="MemberRecord.ExpiresAt"/> has passed,
/// tickets, bindings) are invisible to reads and purged on a timer. Seats and the pending limit are counted under the
/// room's lock, so both are exact.
/// </summary>
internal sealed class InMemoryRoomStore : IRoomStore, IDisposable
{
    private static readonly TimeSpan PurgeInterval = TimeSpan.FromMinutes(1);

    private readonly ConcurrentDictionary<RoomId, RoomEntry> _rooms = new();
    private readonly ConcurrentDictionary<string, TicketRecord> _tickets = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, ConnectionRecord> _connections = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<(RoomId Room, MemberId Member, long Epoch), MessageQueue> _queues = new();
    private readonly TimeProvider _time;
    private readonly ITimer _purgeTimer;

    public InMemoryRoomStore(TimeProvider time)
    {
        _time = time;
        _purgeTimer = time.CreateContextFreeTimer(static state => ((InMemoryRoomStore)state!).PurgeExpired(), this, PurgeInterval, PurgeInterval);
    }

    /// <summary>Gets the number of rooms held, expired or not (for tests).</summary>
    internal int RoomCount => _rooms.Count;

    /// <summary>Gets the number of tickets held, expired or not (for tests).</summary>
    internal int TicketCount => _tickets.Count;

    public ValueTask CreateRoomAsync(RoomRecord room, MemberRecord admin, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(room);
        ArgumentNullException.ThrowIfNull(admin);
        var entry = new RoomEntry(room);
        entry.Members[admin.Id] = admin;
        entry.ByUser[admin.UserId] = admin.Id;
        if (!_rooms.TryAdd(room.Id, entry))
        {
            throw new InvalidOperationException($"Room {room.Id} exists already.");
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask<RoomRecord?> GetRoomAsync(RoomId room, CancellationToken cancellationToken = default)
        => new(Live(room)?.Room);

    /// <summary>Both members under one look-up of the room and one lock: the pair is read at one instant.</summary>
    public ValueTask<(MemberRecord? First, MemberRecord? Second)> GetMemberPairAsync(RoomId room, MemberId first, MemberId second, CancellationToken cancellationToken = default)
    {
        var entry = Live(room);
        if (entry is null)
        {
            return new((null, null));
        }

        lock (entry.Gate)
        {
            return new((LiveMember(entry.Members.GetValueOrDefault(first)), LiveMember(entry.Members.GetValueOrDefault(second))));
        }
    }

    public ValueTask<MemberRecord?> GetMemberAsync(RoomId room, MemberId member, CancellationToken cancellationToken = default)
    {
        var entry = Live(room);
        if (entry is null)
        {
            return new((MemberRecord?)null);
        }

        lock (entry.Gate)
        {
            return new(LiveMember(entry.Members.GetValueOrDefault(member)));
        }
    }

    public ValueTask<MemberRecord?> FindMemberByUserAsync(RoomId room, string userId, CancellationToken cancellationToken = default)
    {
        var entry = Live(room);
        if (entry is null)
        {
            return new((MemberRecord?)null);
        }

        lock (entry.Gate)
        {
            return new(entry.ByUser.TryGetValue(userId, out var id) ? LiveMember(entry.Members[id]) : null);
        }
    }

    public ValueTask<IReadOnlyList<MemberRecord>> ListMembersAsync(RoomId room, CancellationToken cancellationToken = default)
    {
        var entry = Live(room);
        if (entry is null)
        {
            return new(Array.Empty<MemberRecord>());
        }

        lock (entry.Gate)
        {
            var now = _time.GetUtcNow();
            return new(entry.Members.Values.Where(m => !m.IsExpiredAt(now)).ToArray());
        }
    }

    public ValueTask<AddMemberOutcome> TryAddMemberAsync(MemberRecord member, int capacity, int maxPending, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(member);
        var entry = Live(member.Room);
        if (entry is null)
        {
            return new(AddMemberOutcome.RoomNotFound);
        }

        lock (entry.Gate)
        {
            var now = _time.GetUtcNow();
            RemoveExpiredMembers(entry, now);
            if (entry.ByUser.ContainsKey(member.UserId) || entry.Members.ContainsKey(member.Id))
            {
                return new(AddMemberOutcome.UserExists);
            }

            if (member.Admission == AdmissionStatus.Admitted && entry.Members.Values.Count(m => m.Admission == AdmissionStatus.Admitted) >= capacity)
            {
                return new(AddMemberOutcome.RoomFull);
            }

            if (member.Admission == AdmissionStatus.Pending && entry.Members.Values.Count(m => m.Admission == AdmissionStatus.Pending) >= maxPending)
            {
                return new(AddMemberOutcome.TooManyPending);
            }

            entry.Members[member.Id] = member;
            entry.ByUser[member.UserId] = member.Id;
            return new(AddMemberOutcome.Added);
        }
    }

    public ValueTask<MemberRecord?> TryUpdateMemberAsync(MemberRecord updated, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(updated);
        var entry = Live(updated.Room);
        if (entry is null)
        {
            return new((MemberRecord?)null);
        }

        lock (entry.Gate)
        {
            if (Current(entry, updated) is not { } current
                || (updated.Admission == AdmissionStatus.Admitted && current.Admission != AdmissionStatus.Admitted))
            {
                return new((MemberRecord?)null); // lost, expired, or an admission without the capacity check
            }

            var stored = updated with { Version = updated.Version + 1 };
            entry.Members[updated.Id] = stored;
            return new(stored);
        }
    }

    public ValueTask<AdmitMemberOutcome> TryAdmitMemberAsync(MemberRecord admitted, int capacity, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(admitted);
        if (admitted.Admission != AdmissionStatus.Admitted)
        {
            throw new ArgumentException("Only an admitted member can be admitted.", nameof(admitted));
        }

        var entry = Live(admitted.Room);
        if (entry is null)
        {
            return new(AdmitMemberOutcome.Conflict);
        }

        lock (entry.Gate)
        {
            if (Current(entry, admitted) is not { } current || current.Admission == AdmissionStatus.Admitted)
            {
                return new(AdmitMemberOutcome.Conflict);
            }

            var now = _time.GetUtcNow();
            if (entry.Members.Values.Count(m => m.Admission == AdmissionStatus.Admitted && !m.IsExpiredAt(now)) >= capacity)
            {
                return new(AdmitMemberOutcome.RoomFull);
            }

            entry.Members[admitted.Id] = admitted with { Version = admitted.Version + 1 };
            return new(AdmitMemberOutcome.Admitted);
        }
    }

    public ValueTask StoreTicketAsync(TicketRecord ticket, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(ticket);
        if (!_tickets.TryAdd(ticket.Hash, ticket))
        {
            throw new InvalidOperationException("A ticket with the same hash exists already.");
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask<TicketRecord?> ConsumeTicketAsync(string hash, CancellationToken cancellationToken = default)
        => new(_tickets.TryRemove(hash, out var ticket) ? ticket : null);

    public ValueTask PutConnectionAsync(ConnectionRecord connection, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connection);
        _connections[connection.ConnectionId] = connection;
        return ValueTask.CompletedTask;
    }

    public ValueTask<ConnectionRecord?> GetConnectionAsync(string connectionId, CancellationToken cancellationToken = default)
        => new(_connections.TryGetValue(connectionId, out var connection) && _time.GetUtcNow() < connection.ExpiresAt ? connection : null);

    public ValueTask<ConnectionRecord?> RemoveConnectionAsync(string connectionId, CancellationToken cancellationToken = default)
        => new(_connections.TryRemove(connectionId, out var connection) ? connection : null);

    public ValueTask<bool> EnqueueMessageAsync(RoomId room, MemberId member, long epoch, ReadOnlyMemory<byte> message, int maxMessages, int maxBytes, DateTimeOffset expiresAt, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxMessages);
        ArgumentOutOfRangeException.ThrowIfNegative(maxBytes);
        var copy = message.ToArray(); // the caller's buffer is not ours to keep
        while (true)
        {
            var queue = _queues.GetOrAdd((room, member, epoch), static _ => new MessageQueue());
            lock (queue)
            {
                if (queue.Removed)
                {
                    continue; // taken (and removed) between the look-up and the lock: start a new queue
                }

                if (_time.GetUtcNow() >= queue.ExpiresAt && queue.ExpiresAt != default)
                {
                    queue.Clear();
                }

                queue.ExpiresAt = expiresAt > queue.ExpiresAt ? expiresAt : queue.ExpiresAt;
                if (queue.Messages.Count >= maxMessages || queue.Bytes + copy.Length > maxBytes)
                {
                    queue.Dropped++;
                    return new(false);
                }

                queue.Messages.Add(copy);
                queue.Bytes += copy.Length;
                return new(true);
            }
        }
    }

    public ValueTask<QueuedMessages> TakeQueuedMessagesAsync(RoomId room, MemberId member, long epoch, CancellationToken cancellationToken = default)
    {
        if (!_queues.TryGetValue((room, member, epoch), out var queue))
        {
            return new(QueuedMessages.Empty);
        }

        lock (queue)
        {
            if (queue.Removed)
            {
                return new(QueuedMessages.Empty);
            }

            queue.Removed = true;
            _queues.TryRemove(new KeyValuePair<(RoomId, MemberId, long), MessageQueue>((room, member, epoch), queue));
            return new(_time.GetUtcNow() >= queue.ExpiresAt ? QueuedMessages.Empty : new QueuedMessages(queue.Messages.Select(m => (ReadOnlyMemory<byte>)m).ToArray(), queue.Dropped));
        }
    }

    /// <summary>Drops expired rooms, members, tickets and bindings (reads ignore them already).</summary>
    internal void PurgeExpired()
    {
        var now = _time.GetUtcNow();
        foreach (var (id, entry) in _rooms)
        {
            if (now >= entry.Room.ExpiresAt)
            {
                _rooms.TryRemove(id, out _);
                continue;
            }

            lock (entry.Gate)
            {
                RemoveExpiredMembers(entry, now);
            }
        }

        foreach (var (hash, ticket) in _tickets)
        {
            if (now >= ticket.ExpiresAt)
            {
                _tickets.TryRemove(hash, out _);
            }
        }

        foreach (var (id, connection) in _connections)
        {
            if (now >= connection.ExpiresAt)
            {
                _connections.TryRemove(id, out _);
            }
        }

        foreach (var (key, queue) in _queues)
        {
            lock (queue)
            {
                if (now >= queue.ExpiresAt && !queue.Removed)
                {
                    queue.Removed = true;
                    _queues.TryRemove(new KeyValuePair<(RoomId, MemberId, long), MessageQueue>(key, queue));
                }
            }
        }
    }

    /// <summary>Gets the number of message queues held, expired or not (for tests).</summary>
    internal int QueueCount => _queues.Count;

    public void Dispose() => _purgeTimer.Dispose();

    /// <summary>Removes the members whose own expiry has passed (the caller holds the room's lock).</summary>
    private static void RemoveExpiredMembers(RoomEntry entry, DateTimeOffset now)
    {
        List<MemberRecord>? expired = null;
        foreach (var member in entry.Members.Values)
        {
            if (member.IsExpiredAt(now))
            {
                (expired ??= []).Add(member);
            }
        }

        foreach (var member in expired ?? [])
        {
            entry.Members.Remove(member.Id);
            entry.ByUser.Remove(member.UserId);
        }
    }

    /// <summary>The stored member an update derives from, if it is live and matches its version and user (the caller holds the lock).</summary>
    private MemberRecord? Current(RoomEntry entry, MemberRecord updated)
        => entry.Members.TryGetValue(updated.Id, out var current)
            && current.Version == updated.Version
            && current.UserId == updated.UserId
            && !current.IsExpiredAt(_time.GetUtcNow())
            ? current
            : null;

    private MemberRecord? LiveMember(MemberRecord? member)
        => member is null || !member.IsExpiredAt(_time.GetUtcNow()) ? member : null;

    private RoomEntry? Live(RoomId room)
        => _rooms.TryGetValue(room, out var entry) && _time.GetUtcNow() < entry.Room.ExpiresAt ? entry : null;

    /// <summary>A suspended member's queue; guarded by its own lock.</summary>
    private sealed class MessageQueue
    {
        public List<byte[]> Messages { get; } = [];

        public int Bytes { get; set; }

        public int Dropped { get; set; }

        public DateTimeOffset ExpiresAt { get; set; }

        /// <summary>Gets or sets a value indicating whether the queue was taken or purged (an append must start a new one).</summary>
        public bool Removed { get; set; }

        public void Clear()
        {
            Messages.Clear();
            Bytes = 0;
            Dropped = 0;
        }
    }

    private sealed class RoomEntry(RoomRecord room)
    {
        public RoomRecord Room { get; } = room;

        public Lock Gate { get; } = new();

        public Dictionary<MemberId, MemberRecord> Members { get; } = [];

        public Dictionary<string, MemberId> ByUser { get; } = new(StringComparer.Ordinal);
    }
}
