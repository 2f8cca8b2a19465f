using System.Text.Json.Serialization;

namespace Talki.Signalling;

/// <summary>
/// The closed set of error codes the SDK returns for expected failures. The wire form (the snake_case
/// name given for each member) is stable across versions: clients may switch on it.
/// </summary>
[JsonConverter(typeof(JsonStringEnumConverter<SignallingErrorCode>))]
public enum SignallingErrorCode
{
    /// <summary><c>internal</c>: an unexpected failure on the server. It is logged with the correlation id the client receives.</summary>
    [JsonStringEnumMemberName("internal")]
    Internal = 0,

    /// <summary><c>malformed_message</c>: the frame is not valid JSON, or a field is missing or invalid.</summary>
    [JsonStringEnumMemberName("malformed_message")]
    MalformedMessage,

    /// <summary><c>unknown_type</c>: the message's <c>type</c> is not a kind this protocol version knows.</summary>
    [JsonStringEnumMemberName("unknown_type")]
    UnknownType,

    /// <summary><c>message_too_large</c>: the frame exceeds the gateway's size limit. It was discarded.</summary>
    [JsonStringEnumMemberName("message_too_large")]
    MessageTooLarge,

    /// <summary><c>unsupported_version</c>: the client asked for a protocol version the server does not speak.</summary>
    [JsonStringEnumMemberName("unsupported_version")]
    UnsupportedVersion,

    /// <summary><c>invalid_request</c>: an HTTP request's body or parameters are invalid.</summary>
    [JsonStringEnumMemberName("invalid_request")]
    InvalidRequest,

    /// <summary><c>unauthenticated</c>: the caller has no valid session.</summary>
    [JsonStringEnumMemberName("unauthenticated")]
    Unauthenticated,

    /// <summary><c>room_not_found</c>: no such room, or it has expired.</summary>
    [JsonStringEnumMemberName("room_not_found")]
    RoomNotFound,

    /// <summary><c>room_sealed</c>: the room's join window has closed; nobody can join any more.</summary>
    [JsonStringEnumMemberName("room_sealed")]
    RoomSealed,

    /// <summary><c>ticket_invalid</c>: the ticket is unknown, forged or already used.</summary>
    [JsonStringEnumMemberName("ticket_invalid")]
    TicketInvalid,

    /// <summary><c>ticket_expired</c>: the ticket was valid but its lifetime has passed.</summary>
    [JsonStringEnumMemberName("ticket_expired")]
    TicketExpired,

    /// <summary><c>denied</c>: the room's admin denied this user.</summary>
    [JsonStringEnumMemberName("denied")]
    Denied,

    /// <summary><c>not_ready</c>: the connection must send <c>hello</c> before anything else.</summary>
    [JsonStringEnumMemberName("not_ready")]
    NotReady,

    /// <summary><c>not_admitted</c>: the member has not been admitted to the room yet.</summary>
    [JsonStringEnumMemberName("not_admitted")]
    NotAdmitted,

    /// <summary><c>not_admin</c>: only the room's admin may do this.</summary>
    [JsonStringEnumMemberName("not_admin")]
    NotAdmin,

    /// <summary><c>member_not_found</c>: no such member in the caller's room.</summary>
    [JsonStringEnumMemberName("member_not_found")]
    MemberNotFound,

    /// <summary><c>member_not_pending</c>: admit or deny named a member who is not waiting for admission.</summary>
    [JsonStringEnumMemberName("member_not_pending")]
    MemberNotPending,

    /// <summary><c>peer_unavailable</c>: the addressed member is not connected and admitted right now.</summary>
    [JsonStringEnumMemberName("peer_unavailable")]
    PeerUnavailable,

    /// <summary><c>stale_epoch</c>: the signal was addressed to an earlier connection of the member; it was dropped.</summary>
    [JsonStringEnumMemberName("stale_epoch")]
    StaleEpoch,

    /// <summary><c>room_full</c>: the room has as many members as it allows.</summary>
    [JsonStringEnumMemberName("room_full")]
    RoomFull,

    /// <summary><c>room_quota_exceeded</c>: the session has created as many rooms this hour as it may.</summary>
    [JsonStringEnumMemberName("room_quota_exceeded")]
    RoomQuotaExceeded,

    /// <summary>
    /// <c>knock_rate_limited</c>: the user asked for join tickets too often (knocks, or reconnects to a room it is admitted
    /// to); wait and retry.
    /// </summary>
    [JsonStringEnumMemberName("knock_rate_limited")]
    KnockRateLimited,

    /// <summary><c>cross_site_request</c>: a state-changing request came from an origin that is not allowed (cross-site request forgery protection).</summary>
    [JsonStringEnumMemberName("cross_site_request")]
    CrossSiteRequest,

    /// <summary><c>token_malformed</c>: the identity token is not a well-formed JWT.</summary>
    [JsonStringEnumMemberName("token_malformed")]
    TokenMalformed,

    /// <summary><c>token_unsigned</c>: the identity token is not signed (<c>alg: none</c>) or uses an algorithm that is not accepted.</summary>
    [JsonStringEnumMemberName("token_unsigned")]
    TokenUnsigned,

    /// <summary><c>token_signature_invalid</c>: the identity token's signature does not verify.</summary>
    [JsonStringEnumMemberName("token_signature_invalid")]
    TokenSignatureInvalid,

    /// <summary><c>token_key_unknown</c>: the identity token names a signing key the provider does not publish.</summary>
    [JsonStringEnumMemberName("token_key_unknown")]
    TokenKeyUnknown,

    /// <summary><c>token_audience_invalid</c>: the identity token was issued for another client id.</summary>
    [JsonStringEnumMemberName("token_audience_invalid")]
    TokenAudienceInvalid,

    /// <summary><c>token_issuer_invalid</c>: the identity token comes from an issuer that is not accepted.</summary>
    [JsonStringEnumMemberName("token_issuer_invalid")]
    TokenIssuerInvalid,

    /// <summary><c>token_expired</c>: the identity token has expired.</summary>
    [JsonStringEnumMemberName("token_expired")]
    TokenExpired,

    /// <summary><c>token_not_yet_valid</c>: the identity token is not valid yet (issued in the future).</summary>
    [JsonStringEnumMemberName("token_not_yet_valid")]
    TokenNotYetValid,

    /// <summary><c>email_not_verified</c>: the identity provider has not verified the user's email address.</summary>
    [JsonStringEnumMemberName("email_not_verified")]
    EmailNotVerified,

    /// <summary><c>identity_provider_unavailable</c>: the identity provider's signing keys could not be fetched; retry later.</summary>
    [JsonStringEnumMemberName("identity_provider_unavailable")]
    IdentityProviderUnavailable,

    /// <summary>
    /// <c>service_unavailable</c>: the server could not be reached, or answered with something that is not the Talki API
    /// (reported by clients for transport failures; retry later).
    /// </summary>
    [JsonStringEnumMemberName("service_unavailable")]
    ServiceUnavailable,

    /// <summary>
    /// <c>rate_limited</c>: the connection sent messages faster than the server's per-connection rate allows; the message
    /// was dropped (not relayed). Slow down; a connection that keeps exceeding the rate is closed (WebSocket 1008).
    /// </summary>
    [JsonStringEnumMemberName("rate_limited")]
    RateLimited,

    /// <summary>
    /// <c>delivery_failed</c>: the gateway could not deliver the signal to that member now (throttled, failing or timed
    /// out after its retries). The member was not removed: it may still be connected. Retry, or wait for its next signal.
    /// </summary>
    [JsonStringEnumMemberName("delivery_failed")]
    DeliveryFailed,
}
