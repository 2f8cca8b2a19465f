using System.Collections.Concurrent;
using Talki.Signalling.Ports;

namespace Talki.Signalling.Server.Storage;

/// <summary>
/// The embedded default store: thread-safe, in this process only. Each room's members sit behind the
/// room's own lock; tickets and connection bindings in concurrent dictionaries (atomic removal makes
/// ticket consumption single-use). Expired entries are invisible to reads and purged on a timer.
/// </summary>
internal sealed class InMemoryRoomStore : IRoomStore, IDisposable
{
    private static readonly TimeSpan PurgeInterval = TimeSpan.FromMinutes(1);

    private readonly ConcurrentDictionary<RoomId, RoomEntry> _rooms = new();
    private readonly ConcurrentDictionary<string, TicketRecord> _tickets = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, ConnectionRecord> _connections = new(StringComparer.Ordinal);
    private readonly TimeProvider _time;
    private readonly ITimer _purgeTimer;

    public InMemoryRoomStore(TimeProvider time)
    {
        _time = time;
        _purgeTimer = time.CreateTimer(static state => ((InMemoryRoomStore)state!).PurgeExpired(), this, PurgeInterval, PurgeInterval);
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

    public ValueTask<MemberRecord?> GetMemberAsync(RoomId room, MemberId member, CancellationToken cancellationToken = default)
    {
        var entry = Live(room);
        if (entry is null)
        {
            return new((MemberRecord?)null);
        }

        lock (entry.Gate)
        {
            return new(entry.Members.GetValueOrDefault(member));
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
            return new(entry.ByUser.TryGetValue(userId, out var id) ? entry.Members[id] : null);
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
            return new(entry.Members.Values.ToArray());
        }
    }

    public ValueTask<AddMemberOutcome> TryAddMemberAsync(MemberRecord member, int capacity, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(member);
        var entry = Live(member.Room);
        if (entry is null)
        {
            return new(AddMemberOutcome.RoomNotFound);
        }

        lock (entry.Gate)
        {
            if (entry.ByUser.ContainsKey(member.UserId) || entry.Members.ContainsKey(member.Id))
            {
                return new(AddMemberOutcome.UserExists);
            }

            if (entry.Members.Values.Count(m => m.Admission != AdmissionStatus.Denied) >= capacity)
            {
                return new(AddMemberOutcome.RoomFull);
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
            if (!entry.Members.TryGetValue(updated.Id, out var current) || current.Version != updated.Version || current.UserId != updated.UserId)
            {
                return new((MemberRecord?)null);
            }

            var stored = updated with { Version = updated.Version + 1 };
            entry.Members[updated.Id] = stored;
            return new(stored);
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

    /// <summary>Drops expired rooms, tickets and bindings (reads ignore them already).</summary>
    internal void PurgeExpired()
    {
        var now = _time.GetUtcNow();
        foreach (var (id, entry) in _rooms)
        {
            if (now >= entry.Room.ExpiresAt)
            {
                _rooms.TryRemove(id, out _);
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
    }

    public void Dispose() => _purgeTimer.Dispose();

    private RoomEntry? Live(RoomId room)
        => _rooms.TryGetValue(room, out var entry) && _time.GetUtcNow() < entry.Room.ExpiresAt ? entry : null;

    private sealed class RoomEntry(RoomRecord room)
    {
        public RoomRecord Room { get; } = room;

        public Lock Gate { get; } = new();

        public Dictionary<MemberId, MemberRecord> Members { get; } = [];

        public Dictionary<string, MemberId> ByUser { get; } = new(StringComparer.Ordinal);
    }
}
