using System.Text.Json.Serialization;

namespace Talki.Signalling.Http;

/// <summary>The body of <c>POST {prefix}/session/anonymous</c>.</summary>
public sealed record AnonymousSignInRequest
{
    /// <summary>Gets the pseudonym to show to other members.</summary>
    public string? DisplayName { get; init; }

    /// <summary>Gets a value indicating whether to answer a bearer token instead of setting the session cookie (for browsers that block third-party cookies).</summary>
    public bool UseBearerToken { get; init; }
}

/// <summary>The body of <c>POST {prefix}/session/google</c>.</summary>
public sealed record GoogleSignInRequest
{
    /// <summary>Gets the Google ID token (a JWT) that Google Identity Services handed to the browser.</summary>
    public string? IdToken { get; init; }

    /// <summary>Gets a value indicating whether to answer a bearer token instead of setting the session cookie.</summary>
    public bool UseBearerToken { get; init; }
}

/// <summary>The signed-in user, as <c>GET {prefix}/session</c> and sign-in return it.</summary>
public sealed record SessionResponse
{
    /// <summary>Gets the display name.</summary>
    public required string DisplayName { get; init; }

    /// <summary>Gets a value indicating whether the user is verified (shown as a tick).</summary>
    public bool Verified { get; init; }

    /// <summary>Gets the bearer token (send it as <c>Authorization: Bearer …</c>) when one was asked for; otherwise the session is in the cookie.</summary>
    public string? AccessToken { get; init; }

    /// <summary>Gets when the session ends (24 h after sign-in, absolute).</summary>
    public DateTimeOffset? ExpiresAt { get; init; }
}

/// <summary>The answer to creating or joining a room: a one-time ticket and where to use it.</summary>
public sealed record TicketResponse
{
    /// <summary>Gets the room.</summary>
    public required RoomId Room { get; init; }

    /// <summary>Gets the caller's member id in the room.</summary>
    public required MemberId Member { get; init; }

    /// <summary>Gets a value indicating whether the caller is the room's admin.</summary>
    public bool Admin { get; init; }

    /// <summary>Gets the one-time ticket (already part of <see cref="WebSocketUrl"/>).</summary>
    public required string Ticket { get; init; }

    /// <summary>Gets when the ticket stops being valid.</summary>
    public DateTimeOffset TicketExpiresAt { get; init; }

    /// <summary>Gets when the room's join window closes.</summary>
    public DateTimeOffset SealsAt { get; init; }

    /// <summary>
    /// Gets the caller's admission when the ticket was issued. A version 3 client whose ticket says
    /// <see cref="AdmissionStatus.Pending"/> expects no <c>welcome</c> at its <c>hello</c>: it comes with the admission.
    /// Absent from older servers (expect a welcome).
    /// </summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public AdmissionStatus? Status { get; init; }

    /// <summary>
    /// Gets the server's clock when it issued the ticket, so that a member that waits for admission without a welcome
    /// (protocol version 3) still acts at <see cref="SealsAt"/> by the server's clock. Absent from older servers.
    /// </summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public DateTimeOffset? ServerTime { get; init; }

    /// <summary>Gets the caller's name as the room shows it. Absent from older servers.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? DisplayName { get; init; }

    /// <summary>Gets a value indicating whether an identity provider vouched for the caller.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public bool Verified { get; init; }

    /// <summary>Gets the WebSocket URL to connect to, ticket included.</summary>
    public required Uri WebSocketUrl { get; init; }
}

/// <summary>
/// The body of every HTTP error response: an RFC 9457 problem details document (<c>application/problem+json</c>) whose
/// <c>code</c> extension is the stable <see cref="SignallingErrorCode"/>. Program against <see cref="Code"/>;
/// <see cref="Detail"/> is for people.
/// </summary>
public sealed record ErrorResponse
{
    /// <summary>Gets the problem type URI (absent means <c>about:blank</c>: the HTTP status says it all).</summary>
    public string? Type { get; init; }

    /// <summary>Gets a short summary of the problem type (for <c>about:blank</c>, the HTTP status phrase).</summary>
    public string? Title { get; init; }

    /// <summary>Gets the HTTP status code.</summary>
    public int? Status { get; init; }

    /// <summary>Gets a message for people about this occurrence.</summary>
    public required string Detail { get; init; }

    /// <summary>Gets the stable code.</summary>
    public required SignallingErrorCode Code { get; init; }

    /// <summary>Gets, for <c>internal</c> errors, the correlation id of the server's log entry.</summary>
    public string? Reference { get; init; }
}
