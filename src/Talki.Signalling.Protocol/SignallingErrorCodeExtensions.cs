namespace Talki.Signalling;

/// <summary>Helpers for <see cref="SignallingErrorCode"/>.</summary>
public static class SignallingErrorCodeExtensions
{
    /// <summary>Gets the stable wire name of a code, as it appears in JSON (for example <c>ticket_invalid</c>).</summary>
    /// <param name="code">The code.</param>
    /// <returns>The wire name.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="code"/> is not a defined code.</exception>
    public static string ToWireName(this SignallingErrorCode code) => code switch
    {
        SignallingErrorCode.Internal => "internal",
        SignallingErrorCode.MalformedMessage => "malformed_message",
        SignallingErrorCode.UnknownType => "unknown_type",
        SignallingErrorCode.MessageTooLarge => "message_too_large",
        SignallingErrorCode.UnsupportedVersion => "unsupported_version",
        SignallingErrorCode.InvalidRequest => "invalid_request",
        SignallingErrorCode.Unauthenticated => "unauthenticated",
        SignallingErrorCode.RoomNotFound => "room_not_found",
        SignallingErrorCode.RoomSealed => "room_sealed",
        SignallingErrorCode.TicketInvalid => "ticket_invalid",
        SignallingErrorCode.TicketExpired => "ticket_expired",
        SignallingErrorCode.Denied => "denied",
        SignallingErrorCode.NotReady => "not_ready",
        SignallingErrorCode.NotAdmitted => "not_admitted",
        SignallingErrorCode.NotAdmin => "not_admin",
        SignallingErrorCode.MemberNotFound => "member_not_found",
        SignallingErrorCode.MemberNotPending => "member_not_pending",
        SignallingErrorCode.PeerUnavailable => "peer_unavailable",
        SignallingErrorCode.StaleEpoch => "stale_epoch",
        SignallingErrorCode.RoomFull => "room_full",
        SignallingErrorCode.RoomQuotaExceeded => "room_quota_exceeded",
        SignallingErrorCode.KnockRateLimited => "knock_rate_limited",
        SignallingErrorCode.CrossSiteRequest => "cross_site_request",
        SignallingErrorCode.TokenMalformed => "token_malformed",
        SignallingErrorCode.TokenUnsigned => "token_unsigned",
        SignallingErrorCode.TokenSignatureInvalid => "token_signature_invalid",
        SignallingErrorCode.TokenKeyUnknown => "token_key_unknown",
        SignallingErrorCode.TokenAudienceInvalid => "token_audience_invalid",
        SignallingErrorCode.TokenIssuerInvalid => "token_issuer_invalid",
        SignallingErrorCode.TokenExpired => "token_expired",
        SignallingErrorCode.TokenNotYetValid => "token_not_yet_valid",
        SignallingErrorCode.EmailNotVerified => "email_not_verified",
        SignallingErrorCode.IdentityProviderUnavailable => "identity_provider_unavailable",
        SignallingErrorCode.ServiceUnavailable => "service_unavailable",
        SignallingErrorCode.RateLimited => "rate_limited",
        SignallingErrorCode.DeliveryFailed => "delivery_failed",
        _ => throw new ArgumentOutOfRangeException(nameof(code), code, "Unknown error code."),
    };
}
