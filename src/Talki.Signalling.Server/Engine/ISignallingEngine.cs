namespace Talki.Signalling.Server;

/// <summary>
/// The vendor-neutral signalling engine. Gateways feed it three events (connect with a ticket, a message
/// on a connection, a disconnect) and it answers through <see cref="Ports.IConnectionPush"/>. Expected
/// failures are returned as results or pushed to the client as <c>error</c> messages; the methods do not
/// throw for bad input.
/// </summary>
public interface ISignallingEngine
{
    /// <summary>Creates a room whose admin is the caller and issues the admin's one-time ticket.</summary>
    /// <param name="caller">The signed-in caller.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <returns>The ticket grant.</returns>
    ValueTask<SignallingResult<TicketGrant>> CreateRoomAsync(CallerIdentity caller, CancellationToken cancellationToken = default);

    /// <summary>Issues a one-time ticket to join a room (adding the caller as a pending member on first join).</summary>
    /// <param name="caller">The signed-in caller.</param>
    /// <param name="room">The room to join.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <returns>The ticket grant, or <c>room_not_found</c>, <c>room_sealed</c> or <c>denied</c>.</returns>
    ValueTask<SignallingResult<TicketGrant>> IssueJoinTicketAsync(CallerIdentity caller, RoomId room, CancellationToken cancellationToken = default);

    /// <summary>
    /// Authorizes a new gateway connection: consumes the ticket (once) and binds the connection to its member with a new
    /// epoch, or with the same epoch when it resumes (<paramref name="resumeEpoch"/>, see <see cref="TalkiSignallingOptions.ResumeGracePeriod"/>).
    /// </summary>
    /// <param name="connectionId">The gateway's id for the new connection (secret).</param>
    /// <param name="ticket">The ticket from the query string.</param>
    /// <param name="resumeEpoch">The epoch the client asks to resume (the <c>resume</c> query parameter), or <see langword="null"/>.</param>
    /// <param name="waitingVersion">
    /// The version of a client that connects with <c>wait=1</c> (<see cref="Protocol.ProtocolVersion.WaitParameter"/>): its
    /// ticket said it waits for admission, and the connect stands for its <c>hello</c> (the member is bound ready at that
    /// version, and told nothing until the admin decides). Refused with <c>unsupported_version</c> below
    /// <see cref="Protocol.ProtocolVersion.WaitingConnect"/> (the ticket is not taken), and with <c>ticket_invalid</c> when the
    /// member was admitted since the ticket was issued (the client asks for a new ticket). <see langword="null"/>: an
    /// ordinary connect, whose first message is a hello.
    /// </param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <returns>The grant, or <c>ticket_invalid</c>, <c>ticket_expired</c>, <c>room_not_found</c>, <c>room_sealed</c>, <c>denied</c> or <c>unsupported_version</c>.</returns>
    ValueTask<SignallingResult<ConnectionGrant>> ConnectAsync(string connectionId, string? ticket, long? resumeEpoch = null, int? waitingVersion = null, CancellationToken cancellationToken = default);

    /// <summary>
    /// Authorizes a connection without binding it, for gateways whose authorizer cannot reach other connections (API
    /// Gateway's <c>$connect</c> authorizer): consumes the ticket (once) and returns the grant. Nothing else is written:
    /// the connection binds on its first message (<see cref="HandleAuthorizedMessageAsync"/>),
    /// and a grant whose connection never sends anything changes nothing. Such a gateway presents the grant on every message
    /// and ends the connection with <see cref="HandleAuthorizedDisconnectAsync"/>: the member's record is the connection's
    /// binding, and no record by connection id is kept (except for a connection that asked to resume), so
    /// <see cref="DisconnectAsync"/> would not find whose it was.
    /// </summary>
    /// <param name="ticket">The ticket from the query string.</param>
    /// <param name="resumeEpoch">The epoch the client asks to resume (the <c>resume</c> query parameter), or <see langword="null"/>: carried in the grant (<see cref="ConnectionGrant.ResumeEpoch"/>) when it is the member's current epoch, and decided when the connection binds.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <returns>The grant (the epoch the connection will take, and when the room seals), or <c>ticket_invalid</c>, <c>ticket_expired</c>, <c>room_not_found</c>, <c>room_sealed</c> or <c>denied</c>.</returns>
    ValueTask<SignallingResult<ConnectionGrant>> AuthorizeAsync(string? ticket, long? resumeEpoch = null, CancellationToken cancellationToken = default);

    /// <summary>
    /// Authorizes the connection of a member that waits for admission and says no hello (<c>wait=1</c>, protocol version
    /// <see cref="Protocol.ProtocolVersion.WaitingConnect"/> or later), for gateways whose authorizer cannot reach other
    /// connections: consumes the ticket (once) and binds the connection to its pending member, ready at
    /// <paramref name="version"/>: for a knock's ticket in one store write with the take
    /// (<see cref="Ports.IRoomStore.TakeMemberTicketToWaitAsync"/>), else in the write a hello would have made. Nothing is sent: the connection's
    /// first message from the server is its welcome (the admission) or <c>denied</c>. The member's previous connection, if
    /// any, is not closed here: its next message is answered <c>stale_epoch</c>. Messages and the disconnect of the
    /// connection then go through <see cref="HandleAuthorizedMessageAsync"/> and <see cref="HandleAuthorizedDisconnectAsync"/>
    /// with the grant, as after <see cref="AuthorizeAsync"/>.
    /// </summary>
    /// <param name="connectionId">The gateway's id for the new connection (secret; in API Gateway's authorizer event).</param>
    /// <param name="ticket">The ticket from the query string.</param>
    /// <param name="version">The version the client speaks (the <c>v</c> query parameter).</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <returns>
    /// The grant, or what <see cref="AuthorizeAsync"/> refuses; <c>unsupported_version</c> below version 4 (the ticket is not
    /// taken); <c>ticket_invalid</c> when the member was admitted since the ticket was issued (the client asks for a new one).
    /// </returns>
    ValueTask<SignallingResult<ConnectionGrant>> AuthorizeWaitingAsync(string connectionId, string? ticket, int version, CancellationToken cancellationToken = default);

    /// <summary>
    /// Handles one inbound text message on a connection authorized by <see cref="AuthorizeAsync"/>. The first message binds
    /// the connection to the grant's member (closing the member's previous connection and telling the room); a grant
    /// older than the member's current epoch is answered with <c>stale_epoch</c> and closed; after the grant's
    /// <see cref="ConnectionGrant.SealsAt"/> every message is answered with <c>room_sealed</c> and closed.
    /// </summary>
    /// <param name="connectionId">The gateway connection id.</param>
    /// <param name="grant">The authorizer's grant, as the gateway carried it from the connect (trusted: the gateway must authenticate it).</param>
    /// <param name="payload">The UTF-8 JSON message. One longer than <see cref="TalkiHostingOptions.MaxInboundMessageBytes"/> is refused with <c>message_too_large</c> without being read, after it paid the sender's rate limits as the largest allowed message: a gateway that discarded an oversized message passes any buffer of more than that length.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <returns>A task that completes when the message has been handled.</returns>
    ValueTask HandleAuthorizedMessageAsync(string connectionId, ConnectionGrant grant, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default);

    /// <summary>Handles one inbound text message. Replies, relays and errors are pushed; nothing is thrown for bad input.</summary>
    /// <param name="connectionId">The gateway connection id.</param>
    /// <param name="payload">The UTF-8 JSON message. One longer than <see cref="TalkiHostingOptions.MaxInboundMessageBytes"/> is refused with <c>message_too_large</c> without being read, after it paid the sender's rate limits as the largest allowed message: a gateway that discarded an oversized message passes any buffer of more than that length.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <returns>A task that completes when the message has been handled.</returns>
    ValueTask HandleMessageAsync(string connectionId, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default);

    /// <summary>Handles the end of a connection: unbinds it and tells the room.</summary>
    /// <param name="connectionId">The gateway connection id.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <returns>A task that completes when handled.</returns>
    ValueTask DisconnectAsync(string connectionId, CancellationToken cancellationToken = default);

    /// <summary>
    /// Handles the end of a connection authorized by <see cref="AuthorizeAsync"/>, with the grant the gateway carried from
    /// the connect (API Gateway passes the authorizer's context to <c>$disconnect</c> too). After the grant's
    /// <see cref="ConnectionGrant.SealsAt"/> the server has left the scene: the store is neither read nor written. Before
    /// it, the grant's member is suspended (or leaves) as with <see cref="DisconnectAsync"/>, if its record still names this
    /// connection; the room is told as there. Any record by connection id (a resumed connection's) expires with the room.
    /// </summary>
    /// <param name="connectionId">The gateway connection id.</param>
    /// <param name="grant">The authorizer's grant, as the gateway carried it from the connect (trusted: the gateway must authenticate it).</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <returns>A task that completes when handled.</returns>
    ValueTask HandleAuthorizedDisconnectAsync(string connectionId, ConnectionGrant grant, CancellationToken cancellationToken = default)
        => DisconnectAsync(connectionId, cancellationToken);
}

/// <summary>A one-time ticket for a member of a room. The ticket is the only copy of the secret: it is stored as a hash.</summary>
/// <param name="Room">The room.</param>
/// <param name="Member">The caller's member id in the room.</param>
/// <param name="IsAdmin">Whether the caller is the room's admin.</param>
/// <param name="Ticket">The ticket to put in the WebSocket URL's query string.</param>
/// <param name="ExpiresAt">When the ticket stops being valid.</param>
/// <param name="SealsAt">When the room's join window closes.</param>
public sealed record TicketGrant(RoomId Room, MemberId Member, bool IsAdmin, TicketId Ticket, DateTimeOffset ExpiresAt, DateTimeOffset SealsAt)
{
    /// <summary>Gets the caller's admission when the ticket was issued (a version 3 client that waits expects no welcome until it is admitted).</summary>
    public AdmissionStatus Status { get; init; } = AdmissionStatus.Admitted;

    /// <summary>Gets the caller's name as the room shows it (<see langword="null"/> when not given).</summary>
    public string? DisplayName { get; init; }

    /// <summary>Gets a value indicating whether an identity provider vouched for the caller.</summary>
    public bool IsVerified { get; init; }
}

/// <summary>An authorized gateway connection.</summary>
/// <param name="Room">The room.</param>
/// <param name="Member">The member.</param>
/// <param name="Epoch">The member's new connection epoch (a fresh start; a resumed connection keeps <see cref="ResumeEpoch"/> instead).</param>
/// <param name="SealsAt">When the room's join window closes: the connection has nothing to do with the server after it.</param>
public sealed record ConnectionGrant(RoomId Room, MemberId Member, long Epoch, DateTimeOffset SealsAt)
{
    /// <summary>
    /// Gets the epoch the connection asks to resume (the member's epoch when it was authorized), or <see langword="null"/>.
    /// The bind resumes it when the member's previous connection of that epoch is suspended within its grace period, or
    /// still recorded (its drop not yet reported); otherwise the connection starts <see cref="Epoch"/> afresh.
    /// </summary>
    public long? ResumeEpoch { get; init; }
}
