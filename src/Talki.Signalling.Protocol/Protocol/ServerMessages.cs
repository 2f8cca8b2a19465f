using System.Text.Json.Serialization;

namespace Talki.Signalling.Protocol;

/// <summary>A message from the server to a client. The JSON carries a <c>type</c> discriminator.</summary>
[JsonPolymorphic(TypeDiscriminatorPropertyName = "type", UnknownDerivedTypeHandling = JsonUnknownDerivedTypeHandling.FailSerialization)]
[JsonDerivedType(typeof(WelcomeMessage), "welcome")]
[JsonDerivedType(typeof(AdmissionRequestMessage), "admission_request")]
[JsonDerivedType(typeof(AdmittedMessage), "admitted")]
[JsonDerivedType(typeof(DeniedMessage), "denied")]
[JsonDerivedType(typeof(ConnectToPeerMessage), "connect_to_peer")]
[JsonDerivedType(typeof(PeerLeftMessage), "peer_left")]
[JsonDerivedType(typeof(PeerResumedMessage), "peer_resumed")]
[JsonDerivedType(typeof(SignalRelayMessage), "signal")]
[JsonDerivedType(typeof(RoomSealedMessage), "room_sealed")]
[JsonDerivedType(typeof(PongMessage), "pong")]
[JsonDerivedType(typeof(ErrorMessage), "error")]
public abstract record ServerMessage
{
    /// <summary>
    /// Gets the delivery id a gateway that retries its pushes stamps on each message (the AWS <c>@connections</c> push
    /// does: a POST whose answer was lost is sent again, and both copies arrive). A client drops a message whose id it
    /// has already seen on the same connection. Absent when the gateway never duplicates (the self-hosted one).
    /// </summary>
    [JsonPropertyName("mid")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? MessageId { get; init; }
}

/// <summary>
/// <c>welcome</c>: the answer to <c>hello</c>. In version 3 a member waiting for admission gets none at its <c>hello</c>:
/// its welcome is sent when the admin admits it (with <see cref="Status"/> admitted and its <see cref="Links"/>, instead of
/// <c>admitted</c>), so it learns the room's members and the ICE servers only then.
/// </summary>
public sealed record WelcomeMessage : ServerMessage
{
    /// <summary>Gets the protocol version the server speaks.</summary>
    public int ProtocolVersion { get; init; } = Protocol.ProtocolVersion.Current;

    /// <summary>Gets the receiving member.</summary>
    public required MemberView You { get; init; }

    /// <summary>Gets the room.</summary>
    public required RoomView Room { get; init; }

    /// <summary>Gets the room's other members that are admitted.</summary>
    public required IReadOnlyList<MemberView> Members { get; init; }

    /// <summary>Gets the receiving member's admission status.</summary>
    public AdmissionStatus Status { get; init; }

    /// <summary>Gets the ICE servers to use.</summary>
    public required IReadOnlyList<IceServer> IceServers { get; init; }

    /// <summary>
    /// Gets the server's clock when it sent the welcome, so that a client whose clock is off can still act at
    /// <see cref="RoomView.SealsAt"/> by the server's clock (it closes its own socket then). Absent from older servers.
    /// </summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public DateTimeOffset? ServerTime { get; init; }

    /// <summary>
    /// Gets how many seconds the gateway lets this connection stay silent before it closes it (API Gateway: 600). A client
    /// keeps its socket alive with <c>ping</c> within that, and needs none when the room seals sooner. Absent from older
    /// servers (assume 600).
    /// </summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public int? IdleTimeoutSeconds { get; init; }

    /// <summary>
    /// Gets a value indicating whether this connection resumed the member's previous one (the client asked with the
    /// <c>resume</c> query parameter, within the server's grace period): the epoch is the same, peers were told nothing and
    /// keep their links, and the messages queued while the socket was down follow this welcome, in order. When
    /// <see langword="false"/> this is a fresh epoch: peers replace their links to this member.
    /// </summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public bool Resumed { get; init; }

    /// <summary>Gets how many messages for this member were dropped while its socket was down (its queue was full). Only on a resumed welcome.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public int Missed { get; init; }

    /// <summary>
    /// Gets the mesh plan of an admitted member that said hello with version 2 or later: one entry per member to link
    /// up with (no <c>connect_to_peer</c> follows for them). On a resume it is the plan an admission would carry, for a
    /// member whose <c>admitted</c> went into its dying socket: a client that was admitted before the drop ignores it. In
    /// version 3 the welcome a waiting member gets at its admission carries it too.
    /// <see langword="null"/> for a version 1 member, a waiting member and a repeated hello.
    /// </summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<PeerLink>? Links { get; init; }
}

/// <summary><c>admission_request</c>: sent to the admin when a member waits for admission.</summary>
public sealed record AdmissionRequestMessage : ServerMessage
{
    /// <summary>Gets the waiting member.</summary>
    public required MemberView Member { get; init; }
}

/// <summary><c>admitted</c>: sent to a member when the admin admits it (a version 3 member gets its <c>welcome</c> instead), and to a version 1 admin as confirmation (a version 2 admin learns it from the newcomer's offer).</summary>
public sealed record AdmittedMessage : ServerMessage
{
    /// <summary>Gets the admitted member.</summary>
    public required MemberView Member { get; init; }

    /// <summary>
    /// Gets, in the copy a version 2 newcomer receives about itself, its mesh plan: one entry per member to link up with
    /// (no <c>connect_to_peer</c> follows for them). <see langword="null"/> otherwise.
    /// </summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<PeerLink>? Links { get; init; }
}

/// <summary><c>denied</c>: sent to a member the admin refused (its socket is then closed), and to the admin as confirmation.</summary>
public sealed record DeniedMessage : ServerMessage
{
    /// <summary>Gets the denied member.</summary>
    public required MemberView Member { get; init; }
}

/// <summary><c>connect_to_peer</c>: the mesh plan. Both ends of a new link get one, with complementary roles.</summary>
public sealed record ConnectToPeerMessage : ServerMessage
{
    /// <summary>Gets the member to connect to.</summary>
    public required MemberView Peer { get; init; }

    /// <summary>Gets the peer's connection epoch; address signals to it.</summary>
    public long PeerEpoch { get; init; }

    /// <summary>Gets a value indicating whether the receiver makes the first offer.</summary>
    public bool Offerer { get; init; }

    /// <summary>Gets a value indicating whether the receiver is the polite peer of perfect negotiation.</summary>
    public bool Polite { get; init; }
}

/// <summary><c>peer_left</c>: a member left or lost its connection.</summary>
public sealed record PeerLeftMessage : ServerMessage
{
    /// <summary>Gets the member.</summary>
    public required MemberId Member { get; init; }

    /// <summary>Gets the epoch of the connection that ended.</summary>
    public long Epoch { get; init; }
}

/// <summary>
/// <c>peer_resumed</c> (protocol version 2): a member's signalling socket dropped and it resumed its epoch, so its links
/// were kept. Whatever was sent to it after the server noticed the drop was queued and delivered at its resume; what was
/// relayed into its socket between the drop and the moment the server noticed it may be lost. The receiver sends that
/// member again what it sent it from <see cref="SuspendedMilliseconds"/> plus its replay window ago until now (a client
/// drops a description or candidate it already has, so a copy is harmless).
/// </summary>
public sealed record PeerResumedMessage : ServerMessage
{
    /// <summary>Gets the member that resumed.</summary>
    public required MemberId Member { get; init; }

    /// <summary>Gets the member's epoch, unchanged by the resume.</summary>
    public long Epoch { get; init; }

    /// <summary>Gets how long, in milliseconds, the server held the member suspended before it resumed (from the moment it noticed the drop).</summary>
    public long SuspendedMilliseconds { get; init; }
}

/// <summary><c>signal</c>: a description and/or candidates relayed from another member.</summary>
public sealed record SignalRelayMessage : ServerMessage
{
    /// <summary>Gets the sender.</summary>
    public required MemberId From { get; init; }

    /// <summary>Gets the sender's connection epoch.</summary>
    public long FromEpoch { get; init; }

    /// <summary>Gets the session description, if any.</summary>
    public SessionDescription? Description { get; init; }

    /// <summary>Gets ICE candidates, if any.</summary>
    public IReadOnlyList<IceCandidate>? Candidates { get; init; }

    /// <summary>
    /// Gets, on an offer between two version 2 members, the receiver's side of the link (the sender is the offerer): a
    /// receiver with no link to the sender's epoch creates it from this before it applies the offer. <see langword="null"/> otherwise.
    /// </summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public PeerLink? Link { get; init; }
}

/// <summary><c>room_sealed</c>: the join window closed; the server closes the socket and peer links go on without it.</summary>
public sealed record RoomSealedMessage : ServerMessage
{
    /// <summary>Gets the room.</summary>
    public required RoomId Room { get; init; }

    /// <summary>Gets when the room sealed.</summary>
    public DateTimeOffset SealedAt { get; init; }
}

/// <summary><c>pong</c>: the answer to <c>ping</c>.</summary>
public sealed record PongMessage : ServerMessage
{
    /// <summary>Gets the correlation id of the ping.</summary>
    public string? Id { get; init; }
}

/// <summary><c>error</c>: an expected failure, or <c>internal</c> for an unexpected one. The connection stays usable.</summary>
public sealed record ErrorMessage : ServerMessage
{
    /// <summary>Gets the stable code.</summary>
    public required SignallingErrorCode Code { get; init; }

    /// <summary>Gets a message for people.</summary>
    public required string Message { get; init; }

    /// <summary>Gets the correlation id: the <c>id</c> of the client message that caused the error, when it had one.</summary>
    public string? Id { get; init; }

    /// <summary>Gets, for <c>internal</c> errors, the correlation id under which the server logged the failure; quote it to the operator.</summary>
    public string? Reference { get; init; }
}
