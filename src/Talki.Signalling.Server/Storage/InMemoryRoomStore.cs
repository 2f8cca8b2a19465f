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
        entry.Add(admin);
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
        var now = _time.GetUtcNow(); // one clock read for the room's and both members' expiry (a read is one instant)
        var entry = Live(room, now);
        if (entry is null)
        {
            return new((null, null));
        }

        lock (entry.Gate)
        {
            return new((LiveMember(entry.Find(first), now), LiveMember(entry.Find(second), now)));
        }
    }

    public ValueTask<MemberRecord?> GetMemberAsync(RoomId room, MemberId member, CancellationToken cancellationToken = default)
    {
        var now = _time.GetUtcNow();
        var entry = Live(room, now);
        if (entry is null)
        {
            return new((MemberRecord?)null);
        }

        lock (entry.Gate)
        {
            return new(LiveMember(entry.Find(member), now));
        }
    }

    public ValueTask<MemberRecord?> FindMemberByUserAsync(RoomId room, string userId, CancellationToken cancellationToken = default)
    {
        var now = _time.GetUtcNow();
        var entry = Live(room, now);
        if (entry is null)
        {
            return new((MemberRecord?)null);
        }

        lock (entry.Gate)
        {
            return new(LiveMember(entry.FindByUser(userId), now));
        }
    }

    public ValueTask<IReadOnlyList<MemberRecord>> ListMembersAsync(RoomId room, CancellationToken cancellationToken = default)
    {
        var now = _time.GetUtcNow();
        var entry = Live(room, now);
        if (entry is null)
        {
            return new(Array.Empty<MemberRecord>());
        }

        lock (entry.Gate)
        {
            var live = new List<MemberRecord>(entry.Members.Length);
            foreach (var member in entry.Members)
            {
                if (!member.IsExpiredAt(now))
                {
                    live.Add(member);
                }
            }

            return new(live.ToArray());
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
            if (entry.FindByUser(member.UserId) is not null || entry.Find(member.Id) is not null)
            {
                return new(AddMemberOutcome.UserExists);
            }

            if (member.Admission == AdmissionStatus.Admitted && entry.Count(AdmissionStatus.Admitted, null) >= capacity)
            {
                return new(AddMemberOutcome.RoomFull);
            }

            if (member.Admission == AdmissionStatus.Pending && entry.Count(AdmissionStatus.Pending, null) >= maxPending)
            {
                return new(AddMemberOutcome.TooManyPending);
            }

            entry.Add(member);
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
            entry.Replace(stored);
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
            if (entry.Count(AdmissionStatus.Admitted, now) >= capacity)
            {
                return new(AdmitMemberOutcome.RoomFull);
            }

            entry.Replace(admitted with { Version = admitted.Version + 1 });
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
        entry.RemoveWhere(static (member, now) => member.IsExpiredAt(now), now);
    }

    /// <summary>The stored member an update derives from, if it is live and matches its version and user (the caller holds the lock).</summary>
    private MemberRecord? Current(RoomEntry entry, MemberRecord updated)
        => entry.Find(updated.Id) is { } current
            && current.Version == updated.Version
            && current.UserId == updated.UserId
            && !current.IsExpiredAt(_time.GetUtcNow())
            ? current
            : null;

    private static MemberRecord? LiveMember(MemberRecord? member, DateTimeOffset now)
        => member is null || !member.IsExpiredAt(now) ? member : null;

    private RoomEntry? Live(RoomId room) => Live(room, _time.GetUtcNow());

    private RoomEntry? Live(RoomId room, DateTimeOffset now)
        => _rooms.TryGetValue(room, out var entry) && now < entry.Room.ExpiresAt ? entry : null;

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

    /// <summary>
    /// A room and its members, guarded by <see cref="Gate"/>. The members are one small array searched in order: a room
    /// holds its admitted members (8 by default), the pending ones (bounded by the pending limit; an unused knock expires)
    /// and those the admin denied or who left (kept so that a decision is remembered): as many as the admin decides on,
    /// not as many as a stranger with the link asks for. Two dictionaries (by member and by user) cost about 1.2 KB a
    /// room, 150 bytes per idle member, measured with ClrMD at 10,000 members; this array costs 88 bytes a room of 8.
    /// </summary>
    private sealed class RoomEntry(RoomRecord room)
    {
        private MemberRecord[] _members = new MemberRecord[8];
        private int _count;

        public RoomRecord Room { get; } = room;

        public Lock Gate { get; } = new();

        /// <summary>Gets the members, in the order they were added.</summary>
        public ReadOnlySpan<MemberRecord> Members => _members.AsSpan(0, _count);

        public MemberRecord? Find(MemberId id)
        {
            foreach (var member in Members)
            {
                if (member.Id == id)
                {
                    return member;
                }
            }

            return null;
        }

        public MemberRecord? FindByUser(string userId)
        {
            foreach (var member in Members)
            {
                if (string.Equals(member.UserId, userId, StringComparison.Ordinal))
                {
                    return member;
                }
            }

            return null;
        }

        /// <summary>Counts the members with <paramref name="admission"/> (not expired at <paramref name="now"/>, when given).</summary>
        public int Count(AdmissionStatus admission, DateTimeOffset? now)
        {
            var count = 0;
            foreach (var member in Members)
            {
                if (member.Admission == admission && (now is not { } at || !member.IsExpiredAt(at)))
                {
                    count++;
                }
            }

            return count;
        }

        /// <summary>Adds a member whose id and user are not in the room (the caller checked).</summary>
        public void Add(MemberRecord member)
        {
            if (_count == _members.Length)
            {
                Array.Resize(ref _members, _count * 2);
            }

            _members[_count++] = member;
        }

        /// <summary>Replaces the member with the same id.</summary>
        public void Replace(MemberRecord member)
        {
            for (var i = 0; i < _count; i++)
            {
                if (_members[i].Id == member.Id)
                {
                    _members[i] = member;
                    return;
                }
            }

            throw new InvalidOperationException($"Member {member.Id} is not in room {Room.Id}.");
        }

        /// <summary>Removes the members <paramref name="remove"/> picks, keeping the order of the others.</summary>
        public void RemoveWhere<TState>(Func<MemberRecord, TState, bool> remove, TState state)
        {
            var kept = 0;
            for (var i = 0; i < _count; i++)
            {
                if (!remove(_members[i], state))
                {
                    _members[kept++] = _members[i];
                }
            }

            Array.Clear(_members, kept, _count - kept);
            _count = kept;
        }
    }
}
