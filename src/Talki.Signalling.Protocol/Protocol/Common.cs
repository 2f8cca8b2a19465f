using System.Text.Json.Serialization;

namespace Talki.Signalling.Protocol;

/// <summary>Protocol constants.</summary>
public static class ProtocolVersion
{
    /// <summary>
    /// The protocol version this package speaks. Version 2 folds the mesh plan into messages that are sent anyway (the
    /// newcomer's <see cref="WelcomeMessage.Links"/> or <see cref="AdmittedMessage.Links"/>, and the first offer's
    /// <see cref="SignalRelayMessage.Link"/>) and does not echo an admission back to the admin. Version 3 tells a member
    /// that waits for admission nothing about the room: its <c>hello</c> is not answered until the admin decides, and its
    /// <c>welcome</c> (the room, its members, the ICE servers and the plan) is its admission; a denied member gets
    /// <c>denied</c>. One message fewer per newcomer, and nobody the admin has not let in learns who is in the call. Version 4
    /// lets such a member skip its <c>hello</c>: it connects with <c>wait=1</c> in the WebSocket URL (see
    /// <see cref="WaitParameter"/>), and the connect itself records it as waiting, ready for its admission. One message and
    /// one function invocation fewer per newcomer on API Gateway.
    /// </summary>
    public const int Current = 4;

    /// <summary>The first version whose waiting member connects with <see cref="WaitParameter"/> instead of saying hello.</summary>
    public const int WaitingConnect = 4;

    /// <summary>
    /// The WebSocket URL's query parameter (<c>wait=1</c>) by which a client of version <see cref="WaitingConnect"/> or later,
    /// whose ticket said it waits for admission, asks the connect to stand for its <c>hello</c>: it then sends nothing until
    /// its <c>welcome</c> (its admission) or <c>denied</c> comes. A server refuses the connect when the member was admitted
    /// (or denied) since the ticket was issued: the client asks for a new ticket, which says so.
    /// </summary>
    public const string WaitParameter = "wait";

    /// <summary>The oldest version a server of this package still serves: a version 1 client keeps working, message for message as before.</summary>
    public const int Minimum = 1;

    /// <summary>Whether a server of this package serves <paramref name="version"/>.</summary>
    /// <param name="version">The version a client asked for.</param>
    /// <returns><see langword="true"/> for <see cref="Minimum"/> to <see cref="Current"/>.</returns>
    public static bool IsSupported(int version) => version is >= Minimum and <= Current;
}

/// <summary>
/// One link of the mesh plan (protocol version 2): the same facts as a <see cref="ConnectToPeerMessage"/>, carried inside a
/// message that is sent anyway.
/// </summary>
public sealed record PeerLink
{
    /// <summary>Gets the remote member.</summary>
    public required MemberView Peer { get; init; }

    /// <summary>Gets the remote member's connection epoch; signals to it carry it as <c>toEpoch</c>.</summary>
    public long PeerEpoch { get; init; }

    /// <summary>Gets a value indicating whether this side sends the first offer.</summary>
    public bool Offerer { get; init; }

    /// <summary>Gets a value indicating whether this side is the polite peer of perfect negotiation (it yields on an offer collision).</summary>
    public bool Polite { get; init; }
}

/// <summary>The kind of a session description, as in the W3C <c>RTCSdpType</c>.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<SdpType>))]
public enum SdpType
{
    /// <summary><c>offer</c>.</summary>
    [JsonStringEnumMemberName("offer")]
    Offer = 0,

    /// <summary><c>answer</c>.</summary>
    [JsonStringEnumMemberName("answer")]
    Answer,

    /// <summary><c>pranswer</c>.</summary>
    [JsonStringEnumMemberName("pranswer")]
    Pranswer,

    /// <summary><c>rollback</c>.</summary>
    [JsonStringEnumMemberName("rollback")]
    Rollback,
}

/// <summary>A session description (W3C <c>RTCSessionDescriptionInit</c>).</summary>
public sealed record SessionDescription
{
    /// <summary>Gets the kind.</summary>
    [JsonRequired]
    public required SdpType Type { get; init; }

    /// <summary>Gets the SDP text (empty for a rollback).</summary>
    public string? Sdp { get; init; }
}

/// <summary>An ICE candidate (W3C <c>RTCIceCandidateInit</c>). An empty <see cref="Candidate"/> means end of candidates.</summary>
public sealed record IceCandidate
{
    /// <summary>Gets the candidate line.</summary>
    [JsonRequired]
    public required string Candidate { get; init; }

    /// <summary>Gets the media stream id.</summary>
    public string? SdpMid { get; init; }

    /// <summary>Gets the m-line index.</summary>
    public int? SdpMLineIndex { get; init; }

    /// <summary>Gets the ICE username fragment.</summary>
    public string? UsernameFragment { get; init; }
}

/// <summary>An ICE server the client should use (W3C <c>RTCIceServer</c>).</summary>
public sealed record IceServer
{
    /// <summary>Gets the server's URLs (<c>stun:</c>, <c>turn:</c>, <c>turns:</c>).</summary>
    public required IReadOnlyList<string> Urls { get; init; }

    /// <summary>Gets the user name (TURN).</summary>
    public string? Username { get; init; }

    /// <summary>Gets the credential (TURN).</summary>
    public string? Credential { get; init; }
}

/// <summary>A member as other members see it. It never carries a connection id.</summary>
public sealed record MemberView
{
    /// <summary>Gets the member id.</summary>
    public required MemberId Id { get; init; }

    /// <summary>Gets the display name.</summary>
    public required string DisplayName { get; init; }

    /// <summary>Gets a value indicating whether the user is verified (shown as a tick).</summary>
    public bool Verified { get; init; }

    /// <summary>Gets a value indicating whether the member is the room's admin.</summary>
    public bool Admin { get; init; }

    /// <summary>Gets the admission status.</summary>
    public AdmissionStatus Status { get; init; }

    /// <summary>Gets a value indicating whether the member is connected and ready now.</summary>
    public bool Online { get; init; }

    /// <summary>Gets the member's current connection epoch.</summary>
    public long Epoch { get; init; }
}

/// <summary>A room as members see it.</summary>
public sealed record RoomView
{
    /// <summary>Gets the room id.</summary>
    public required RoomId Id { get; init; }

    /// <summary>Gets the admin's member id.</summary>
    public required MemberId Admin { get; init; }

    /// <summary>Gets when the room was created.</summary>
    public DateTimeOffset CreatedAt { get; init; }

    /// <summary>Gets when the join window closes; the server leaves the scene then.</summary>
    public DateTimeOffset SealsAt { get; init; }
}
