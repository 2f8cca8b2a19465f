namespace Talki.Signalling.Ports;

/// <summary>
/// Where rooms, members, one-time tickets and connection bindings live. Implementations must be safe
/// for concurrent use from many processes: member writes are conditional on <see cref="MemberRecord.Version"/>
/// and ticket consumption is atomic, so two racing consumers never both receive the same ticket.
/// Every read checks expiry itself (<see cref="RoomRecord.ExpiresAt"/>, <see cref="MemberRecord.ExpiresAt"/>,
/// <see cref="ConnectionRecord.ExpiresAt"/>) because time-to-live deletion in real stores runs late.
/// A room's seats (its capacity) are held by admitted members only; pending members (knocks) hold none.
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

    /// <summary>
    /// Gets two members of a room at once: a relayed signal's sender and receiver. A store that can read both in one request
    /// overrides it (DynamoDB: one strongly consistent query of the room's members, billed by their total size; Redis: one
    /// script); the default reads them one after the other, as <see cref="GetMemberAsync"/> does.
    /// </summary>
    /// <param name="room">The room.</param>
    /// <param name="first">The first member.</param>
    /// <param name="second">The second member.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <returns>Each member as <see cref="GetMemberAsync"/> would return it.</returns>
    async ValueTask<(MemberRecord? First, MemberRecord? Second)> GetMemberPairAsync(RoomId room, MemberId first, MemberId second, CancellationToken cancellationToken = default)
    {
        var one = await GetMemberAsync(room, first, cancellationToken).ConfigureAwait(false);
        var other = await GetMemberAsync(room, second, cancellationToken).ConfigureAwait(false);
        return (one, other);
    }

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
    /// Adds a member unless the room already has a live member for the same user or the limit for the member's admission is
    /// reached. The check and the write are one atomic step as far as the limits' upper bounds go.
    /// </summary>
    /// <remarks>
    /// <para>
    /// <b>Seats are taken by admission only.</b> A member added <see cref="AdmissionStatus.Admitted"/> takes a seat: the add is
    /// <see cref="AddMemberOutcome.RoomFull"/> when the room already holds <paramref name="capacity"/> admitted members. A
    /// member added <see cref="AdmissionStatus.Pending"/> (a knock) takes no seat: the add is
    /// <see cref="AddMemberOutcome.TooManyPending"/> when the room already holds <paramref name="maxPending"/> live pending
    /// members. A denied member counts against neither.
    /// </para>
    /// <para>
    /// A member whose <see cref="MemberRecord.ExpiresAt"/> has passed no longer exists: a later add for the same user creates
    /// a new member (with a new id). A store may refuse a knock under a race although a place was free (the caller retries
    /// later); it never lets the room hold more than <paramref name="maxPending"/> pending members because of a race.
    /// </para>
    /// </remarks>
    /// <param name="member">The member to add.</param>
    /// <param name="capacity">The most admitted members the room may hold after the add (it only matters when <paramref name="member"/> is admitted).</param>
    /// <param name="maxPending">The most live pending members the room may hold after the add (it only matters when <paramref name="member"/> is pending).</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <returns>What happened.</returns>
    ValueTask<AddMemberOutcome> TryAddMemberAsync(MemberRecord member, int capacity, int maxPending, CancellationToken cancellationToken = default);

    /// <summary>
    /// Replaces a member if, and only if, the stored version equals <paramref name="updated"/>'s
    /// <see cref="MemberRecord.Version"/>. The stored record gets that version plus one.
    /// </summary>
    /// <remarks>
    /// An update never admits: writing <see cref="AdmissionStatus.Admitted"/> over a member that is not admitted fails
    /// (returns <see langword="null"/>); admission goes through <see cref="TryAdmitMemberAsync"/>, which checks the capacity.
    /// An update that takes an admitted member's admission away frees its seat. A member whose
    /// <see cref="MemberRecord.ExpiresAt"/> has passed cannot be updated.
    /// </remarks>
    /// <param name="updated">The new state, carrying the version it was derived from.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <returns>The stored record, or <see langword="null"/> when another writer won (re-read and retry).</returns>
    ValueTask<MemberRecord?> TryUpdateMemberAsync(MemberRecord updated, CancellationToken cancellationToken = default);

    /// <summary>
    /// Admits a member: replaces it by <paramref name="admitted"/> (whose <see cref="MemberRecord.Admission"/> is
    /// <see cref="AdmissionStatus.Admitted"/>) if, and only if, the stored version equals its
    /// <see cref="MemberRecord.Version"/>, the stored member is not admitted yet and the room holds fewer than
    /// <paramref name="capacity"/> admitted members. The check and the write are one atomic step: of any number of
    /// concurrent admissions into a room with <c>k</c> free seats, at most <c>k</c> succeed (exactly <c>k</c> when at least
    /// <c>k</c> of them do not conflict). The stored record gets the version plus one.
    /// </summary>
    /// <param name="admitted">The admitted state, carrying the version it was derived from.</param>
    /// <param name="capacity">The most admitted members the room may hold after the admission.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <returns>What happened.</returns>
    /// <exception cref="ArgumentException"><paramref name="admitted"/> is not admitted.</exception>
    ValueTask<AdmitMemberOutcome> TryAdmitMemberAsync(MemberRecord admitted, int capacity, CancellationToken cancellationToken = default);

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

    /// <summary>
    /// Atomically takes the one-time ticket a member's record keeps (<see cref="MemberRecord.TicketHash"/>): if, and only if,
    /// the stored member is live and keeps a ticket of hash <paramref name="hash"/>, the store clears the ticket (and
    /// <see cref="MemberRecord.TicketExpiresAt"/>) and bumps <see cref="MemberRecord.Version"/>. Of any number of concurrent
    /// calls with the same hash, at most one gets the member; a call with another hash changes nothing. A store that can do
    /// it in one conditional write overrides it (DynamoDB: one update, no read); the default reads the member and writes it
    /// back with <see cref="TryUpdateMemberAsync"/>, retrying when another writer won.
    /// </summary>
    /// <param name="room">The room the ticket names.</param>
    /// <param name="member">The member the ticket names.</param>
    /// <param name="hash">The ticket's hash.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <returns>
    /// The member as it was when the ticket was taken (ticket and version included; the caller checks
    /// <see cref="MemberRecord.TicketExpiresAt"/>), or <see langword="null"/> when the member does not exist, has expired, or
    /// keeps no ticket of that hash (never issued, already taken, or replaced by a newer one).
    /// </returns>
    async ValueTask<MemberRecord?> TakeMemberTicketAsync(RoomId room, MemberId member, string hash, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(hash);
        while (true)
        {
            var current = await GetMemberAsync(room, member, cancellationToken).ConfigureAwait(false);
            if (current is null || !string.Equals(current.TicketHash, hash, StringComparison.Ordinal))
            {
                return null;
            }

            if (await TryUpdateMemberAsync(current with { TicketHash = null, TicketExpiresAt = null }, cancellationToken).ConfigureAwait(false) is not null)
            {
                return current;
            }
        }
    }

    /// <summary>
    /// The connect of a member that waits for admission and says no hello (protocol version 4, in API Gateway's authorizer):
    /// atomically takes the one-time ticket its record keeps and binds <paramref name="connectionId"/> to it with the next
    /// epoch, ready at <paramref name="now"/> with <paramref name="protocolVersion"/>: if, and only if, the stored member is
    /// live, still pending, and keeps a ticket of hash <paramref name="hash"/> that has not expired, the store clears the
    /// ticket (and <see cref="MemberRecord.TicketExpiresAt"/>), the member's own expiry and any suspension, adds one to
    /// <see cref="MemberRecord.Epoch"/> and to <see cref="MemberRecord.Version"/>, and sets the connection,
    /// <see cref="MemberRecord.ReadyAt"/> and <see cref="MemberRecord.ProtocolVersion"/>. Otherwise nothing changes (the
    /// ticket stays). A store that can do it in one conditional write overrides it (DynamoDB: one update, no read, instead
    /// of the take's write and the bind's); the default reads the member and writes it back with
    /// <see cref="TryUpdateMemberAsync"/>, retrying when another writer won.
    /// </summary>
    /// <param name="room">The room the ticket names.</param>
    /// <param name="member">The member the ticket names.</param>
    /// <param name="hash">The ticket's hash.</param>
    /// <param name="connectionId">The connection to bind.</param>
    /// <param name="protocolVersion">The version the client speaks.</param>
    /// <param name="now">The connect's instant: the ticket must not have expired by then, and the member is ready from it.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <returns>
    /// The member as it was before (its epoch is the one before the bind's), or <see langword="null"/> when nothing was done:
    /// no such live member, no ticket of that hash, an expired ticket, or a member that is not pending. The caller then
    /// takes the ticket the ordinary way (<see cref="TakeMemberTicketAsync"/>) to tell which.
    /// </returns>
    async ValueTask<MemberRecord?> TakeMemberTicketToWaitAsync(RoomId room, MemberId member, string hash, string connectionId, int protocolVersion, DateTimeOffset now, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(hash);
        ArgumentException.ThrowIfNullOrEmpty(connectionId);
        while (true)
        {
            var current = await GetMemberAsync(room, member, cancellationToken).ConfigureAwait(false);
            if (current is null
                || !string.Equals(current.TicketHash, hash, StringComparison.Ordinal)
                || current.Admission != AdmissionStatus.Pending
                || current.TicketExpiresAt is not { } ticketExpiresAt
                || ticketExpiresAt <= now)
            {
                return null;
            }

            var bound = current with
            {
                TicketHash = null,
                TicketExpiresAt = null,
                Epoch = current.Epoch + 1,
                ConnectionId = connectionId,
                ReadyAt = now,
                ProtocolVersion = protocolVersion,
                ExpiresAt = null,
                SuspendedUntil = null,
            };
            if (await TryUpdateMemberAsync(bound, cancellationToken).ConfigureAwait(false) is not null)
            {
                return current;
            }
        }
    }

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

    /// <summary>
    /// Appends a message to the queue of a suspended member's epoch (see <see cref="MemberRecord.SuspendedUntil"/>), unless
    /// the queue already holds <paramref name="maxMessages"/> messages or adding it would exceed <paramref name="maxBytes"/>
    /// bytes: then nothing is stored and the queue's dropped count grows by one. Appends are atomic and ordered: of
    /// concurrent appends, each is either stored in one position or counted as dropped, and the bounds always hold.
    /// </summary>
    /// <param name="room">The room.</param>
    /// <param name="member">The suspended member.</param>
    /// <param name="epoch">The member's epoch: each epoch has its own queue.</param>
    /// <param name="message">The UTF-8 JSON frame to deliver on resume.</param>
    /// <param name="maxMessages">The most messages the queue may hold.</param>
    /// <param name="maxBytes">The most bytes (of messages) the queue may hold.</param>
    /// <param name="expiresAt">When the queue may be deleted; stores treat it as gone from then on (every append may extend it).</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <returns><see langword="true"/> when the message was queued; <see langword="false"/> when it was dropped (counted).</returns>
    ValueTask<bool> EnqueueMessageAsync(RoomId room, MemberId member, long epoch, ReadOnlyMemory<byte> message, int maxMessages, int maxBytes, DateTimeOffset expiresAt, CancellationToken cancellationToken = default);

    /// <summary>
    /// Atomically takes the queue of a member's epoch: returns its messages in the order they were appended and its dropped
    /// count, and leaves it empty. Of concurrent takers, each message goes to exactly one.
    /// </summary>
    /// <param name="room">The room.</param>
    /// <param name="member">The member.</param>
    /// <param name="epoch">The epoch whose queue to take.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <returns>The messages and the dropped count (<see cref="QueuedMessages.Empty"/> when there is no queue or it expired).</returns>
    ValueTask<QueuedMessages> TakeQueuedMessagesAsync(RoomId room, MemberId member, long epoch, CancellationToken cancellationToken = default);
}

/// <summary>The outcome of <see cref="IRoomStore.TryAddMemberAsync"/>.</summary>
public enum AddMemberOutcome
{
    /// <summary>The member was added.</summary>
    Added = 0,

    /// <summary>The user already has a member in the room; nothing was written.</summary>
    UserExists,

    /// <summary>The room already holds as many admitted members as its capacity (only for a member added admitted); nothing was written.</summary>
    RoomFull,

    /// <summary>The room does not exist or has expired.</summary>
    RoomNotFound,

    /// <summary>The room already holds as many live pending members (knocks) as allowed (only for a member added pending); nothing was kept.</summary>
    TooManyPending,
}

/// <summary>The outcome of <see cref="IRoomStore.TryAdmitMemberAsync"/>.</summary>
public enum AdmitMemberOutcome
{
    /// <summary>The member was admitted and took a seat.</summary>
    Admitted = 0,

    /// <summary>The room already holds as many admitted members as its capacity; nothing was written.</summary>
    RoomFull,

    /// <summary>
    /// Nothing was written: another writer won, the member is already admitted, has expired, or the room is gone. Re-read and
    /// retry (or give up when the member is gone or admitted).
    /// </summary>
    Conflict,
}
