using System.Text.Json.Serialization;

namespace Talki.Signalling.Protocol;

/// <summary>A message from a client to the server. The JSON carries a <c>type</c> discriminator.</summary>
[JsonPolymorphic(TypeDiscriminatorPropertyName = "type", UnknownDerivedTypeHandling = JsonUnknownDerivedTypeHandling.FailSerialization)]
[JsonDerivedType(typeof(HelloMessage), "hello")]
[JsonDerivedType(typeof(AdmitMessage), "admit")]
[JsonDerivedType(typeof(DenyMessage), "deny")]
[JsonDerivedType(typeof(SignalMessage), "signal")]
[JsonDerivedType(typeof(SignalsMessage), "signals")]
[JsonDerivedType(typeof(LeaveMessage), "leave")]
[JsonDerivedType(typeof(PingMessage), "ping")]
public abstract record ClientMessage
{
    /// <summary>Gets an optional correlation id, echoed by any error or reply the message causes (at most 64 characters).</summary>
    public string? Id { get; init; }
}

/// <summary><c>hello</c>: the first message after the socket opens; the server answers with <c>welcome</c> (in version 3, a member waiting for admission gets its <c>welcome</c> when the admin admits it).</summary>
public sealed record HelloMessage : ClientMessage
{
    /// <summary>Gets the protocol version the client speaks; absent means 1 (the first version had no negotiation). A server serves <see cref="ProtocolVersion.Minimum"/> to <see cref="ProtocolVersion.Current"/> and refuses others with <c>unsupported_version</c>.</summary>
    public int? Version { get; init; }
}

/// <summary><c>admit</c>: the admin lets a waiting member in.</summary>
public sealed record AdmitMessage : ClientMessage
{
    /// <summary>Gets the member to admit.</summary>
    [JsonRequired]
    public required MemberId Member { get; init; }
}

/// <summary><c>deny</c>: the admin refuses a waiting member.</summary>
public sealed record DenyMessage : ClientMessage
{
    /// <summary>Gets the member to deny.</summary>
    [JsonRequired]
    public required MemberId Member { get; init; }
}

/// <summary><c>signal</c>: a session description and/or ICE candidates for one other member of the room.</summary>
public sealed record SignalMessage : ClientMessage
{
    /// <summary>Gets the addressed member.</summary>
    [JsonRequired]
    public required MemberId To { get; init; }

    /// <summary>Gets the addressed member's epoch, from <c>connect_to_peer</c>; a signal for an older epoch is dropped.</summary>
    public long? ToEpoch { get; init; }

    /// <summary>Gets the session description, if any.</summary>
    public SessionDescription? Description { get; init; }

    /// <summary>Gets ICE candidates, if any.</summary>
    public IReadOnlyList<IceCandidate>? Candidates { get; init; }
}

/// <summary>
/// <c>signals</c> (protocol version 2): several signals in one frame, each for a different member of the room. The server
/// relays each as its own <c>signal</c>, in order, exactly as if it had come alone: a newcomer's first offers to every
/// member it links up with cost one inbound message instead of one per link. An entry that cannot be delivered gets its
/// own <c>error</c> (with the entry's <see cref="ClientMessage.Id"/>, or else this message's), and the others still go.
/// </summary>
/// <remarks>
/// At most one entry per other member of the room (<c>Limits.MaxMembersPerRoom</c> − 1), no two for the same member, and
/// the whole frame within the gateway's frame limit (32 KB on API Gateway). Each entry counts against the sender's rate
/// limit as one message. Entries carry no <c>type</c>.
/// </remarks>
public sealed record SignalsMessage : ClientMessage
{
    /// <summary>Gets the signals, in the order they are relayed.</summary>
    [JsonRequired]
    public required IReadOnlyList<SignalMessage> Signals { get; init; }
}

/// <summary><c>leave</c>: the member leaves; the others are told and the server closes the socket.</summary>
public sealed record LeaveMessage : ClientMessage;

/// <summary><c>ping</c>: keeps the socket from idling out; the server answers <c>pong</c>.</summary>
public sealed record PingMessage : ClientMessage;
