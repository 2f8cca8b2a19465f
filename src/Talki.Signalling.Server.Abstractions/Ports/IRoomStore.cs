namespace Talki.Signalling.Ports;

/// <summary>
/// Where rooms, members, one-time tickets and connection bindings live. Implementations must be safe
/// for concurrent use from many processes: member writes are conditional on <see cref="MemberRecord.Version"/>
/// and ticket consumption is atomic, so two racing consumers never both receive the same ticket.
/// Every read checks expiry itself (<see cref="RoomRecord.ExpiresAt"/>, <see cref="ConnectionRecord.ExpiresAt"/>)
/// because time-to-live deletion in real stores runs late.
/// </summary>
public interface IRoomStore
{
    /// <summary>Stores a new room together with its admin member.</summary>
    /// <param name="room">The room.</param>
    /// <param name="admin">The admin member (its <see cref="MemberRecord.Version"/> is stored as given).</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <returns>A task that completes when the room is stored.</returns>
    /// <exception cref="InvalidOperationException">A room with the same id exists already.</exception>
    ValueTask CreateRoomAsync(RoomRecord room, MemberRecord admin, CancellationToken cancellationToken = default);

    /// <summary>Reads a room.</summary>
    /// <param name="room">The room id.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <returns>The room, or <see langword="null"/> when it does not exist or has expired.</returns>
    ValueTask<RoomRecord?> GetRoomAsync(RoomId room, CancellationToken cancellationToken = default);

    /// <summary>Reads one member of a room.</summary>
    /// <param name="room">The room id.</param>
    /// <param name="member">The member id.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <returns>The member, or <see langword="null"/> when the room or member does not exist or has expired.</returns>
    ValueTask<MemberRecord?> GetMemberAsync(RoomId room, MemberId member, CancellationToken cancellationToken = default);

    /// <summary>Finds the member a user has in a room.</summary>
    /// <param name="room">The room id.</param>
    /// <param name="userId">The user id.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <returns>The member, or <see langword="null"/>.</returns>
    ValueTask<MemberRecord?> FindMemberByUserAsync(RoomId room, string userId, CancellationToken cancellationToken = default);

    /// <summary>Lists the members of a room.</summary>
    /// <param name="room">The room id.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <returns>The members (empty when the room does not exist or has expired).</returns>
    ValueTask<IReadOnlyList<MemberRecord>> ListMembersAsync(RoomId room, CancellationToken cancellationToken = default);

    /// <summary>
    /// Adds a member unless the room already has a member for the same user or already holds
    /// <paramref name="capacity"/> members that are not denied. The check and the write are one atomic step.
    /// </summary>
    /// <param name="member">The member to add.</param>
    /// <param name="capacity">The most members (not counting denied ones) the room may hold after the add.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <returns>What happened.</returns>
    ValueTask<AddMemberOutcome> TryAddMemberAsync(MemberRecord member, int capacity, CancellationToken cancellationToken = default);

    /// <summary>
    /// Replaces a member if, and only if, the stored version equals <paramref name="updated"/>'s
    /// <see cref="MemberRecord.Version"/>. The stored record gets that version plus one.
    /// </summary>
    /// <param name="updated">The new state, carrying the version it was derived from.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <returns>The stored record, or <see langword="null"/> when another writer won (re-read and retry).</returns>
    ValueTask<MemberRecord?> TryUpdateMemberAsync(MemberRecord updated, CancellationToken cancellationToken = default);

    /// <summary>Stores a one-time ticket (by its hash).</summary>
    /// <param name="ticket">The ticket.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <returns>A task that completes when the ticket is stored.</returns>
    ValueTask StoreTicketAsync(TicketRecord ticket, CancellationToken cancellationToken = default);

    /// <summary>Atomically removes and returns a ticket. Of any number of concurrent calls with the same hash, at most one gets the record.</summary>
    /// <param name="hash">The ticket hash.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <returns>The ticket (possibly expired: the caller checks), or <see langword="null"/> when unknown or already consumed.</returns>
    ValueTask<TicketRecord?> ConsumeTicketAsync(string hash, CancellationToken cancellationToken = default);

    /// <summary>Records which member a gateway connection belongs to.</summary>
    /// <param name="connection">The binding.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <returns>A task that completes when stored.</returns>
    ValueTask PutConnectionAsync(ConnectionRecord connection, CancellationToken cancellationToken = default);

    /// <summary>Reads the binding of a gateway connection.</summary>
    /// <param name="connectionId">The connection id.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <returns>The binding, or <see langword="null"/>.</returns>
    ValueTask<ConnectionRecord?> GetConnectionAsync(string connectionId, CancellationToken cancellationToken = default);

    /// <summary>Removes the binding of a gateway connection (no-op when absent).</summary>
    /// <param name="connectionId">The connection id.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <returns>The removed binding, or <see langword="null"/> when there was none.</returns>
    ValueTask<ConnectionRecord?> RemoveConnectionAsync(string connectionId, CancellationToken cancellationToken = default);
}

/// <summary>The outcome of <see cref="IRoomStore.TryAddMemberAsync"/>.</summary>
public enum AddMemberOutcome
{
    /// <summary>The member was added.</summary>
    Added = 0,

    /// <summary>The user already has a member in the room; nothing was written.</summary>
    UserExists,

    /// <summary>The room is at capacity; nothing was written.</summary>
    RoomFull,

    /// <summary>The room does not exist or has expired.</summary>
    RoomNotFound,
}
