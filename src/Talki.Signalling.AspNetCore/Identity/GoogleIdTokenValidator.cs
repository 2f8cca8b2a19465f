using System.Buffers.Text;
using System.Text.Json;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Talki.Signalling.Server.Identity;

/// <summary>A user whose Google ID token verified.</summary>
/// <param name="Subject">Google's stable user id (the <c>sub</c> claim).</param>
/// <param name="DisplayName">The name to show: <c>name</c>, else <c>email</c>, else "Google user", cleaned and trimmed to the longest display name allowed.</param>
internal sealed record GoogleIdentity(string Subject, string DisplayName);

/// <summary>
/// Verifies Google ID tokens with <c>Microsoft.IdentityModel.JsonWebTokens</c>, one error code per
/// reason, checked in this order: shape (<c>token_malformed</c>), algorithm RS256 only
/// (<c>token_unsigned</c>), signing key published at <see cref="TalkiGoogleOptions.KeysUrl"/>
/// (<c>token_key_unknown</c>, or <c>identity_provider_unavailable</c> when the keys cannot be fetched),
/// signature (<c>token_signature_invalid</c>), issuer (<c>token_issuer_invalid</c>), audience
/// (<c>token_audience_invalid</c>), <c>exp</c> (<c>token_expired</c>), <c>nbf</c> and <c>iat</c> not in
/// the future (<c>token_not_yet_valid</c>), each within <see cref="TalkiGoogleOptions.ClockSkew"/> on the
/// injected <see cref="TimeProvider"/>, <c>sub</c> (<c>token_malformed</c>) and <c>email_verified</c>
/// (<c>email_not_verified</c>). The library checks the signature, issuer and audience; the lifetime is
/// checked here because the library's clock cannot be replaced.
/// </summary>
internal sealed class GoogleIdTokenValidator
{
    /// <summary>The longest token accepted (Google's are about 1 KB).</summary>
    internal const int MaxTokenLength = 16 * 1024;

    /// <summary>The display name when the token has neither <c>name</c> nor <c>email</c>.</summary>
    internal const string FallbackDisplayName = "Google user";

    private const int MaxSubjectLength = 255;

    private readonly GoogleSigningKeyCache _keys;
    private readonly TimeProvider _time;
    private readonly JsonWebTokenHandler _handler = new();
    private readonly string[] _clientIds;
    private readonly string[] _issuers;
    private readonly TimeSpan _clockSkew;
    private readonly bool _requireVerifiedEmail;
    private readonly int _maxDisplayNameLength;

    public GoogleIdTokenValidator(GoogleSigningKeyCache keys, IOptions<TalkiSignallingOptions> options, TimeProvider time)
    {
        _keys = keys;
        _time = time;
        var value = options.Value;
        _clientIds = [.. value.Google.ClientIds];
        _issuers = [.. value.Google.Issuers];
        _clockSkew = value.Google.ClockSkew;
        _requireVerifiedEmail = value.Google.RequireVerifiedEmail;
        _maxDisplayNameLength = value.MaxDisplayNameLength;
    }

    /// <summary>Verifies a Google ID token.</summary>
    /// <param name="idToken">The compact JWT.</param>
    /// <param name="cancellationToken">Cancels waiting for the signing keys.</param>
    /// <returns>The user, or the reason the token was refused.</returns>
    public async Task<SignallingResult<GoogleIdentity>> ValidateAsync(string idToken, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(idToken);
        if (idToken.Length > MaxTokenLength || !HasJwsShape(idToken))
        {
            return Refuse(SignallingErrorCode.TokenMalformed, "The token is not a signed JWT (three base64url segments).");
        }

        JsonWebToken token;
        try
        {
            token = new JsonWebToken(idToken);
        }
        catch (Exception exception) when (exception is ArgumentException or JsonException or FormatException or SecurityTokenException)
        {
            return Refuse(SignallingErrorCode.TokenMalformed, "The token's header or payload is not base64url-encoded JSON.");
        }

        if (!string.Equals(token.Alg, SecurityAlgorithms.RsaSha256, StringComparison.Ordinal))
        {
            return Refuse(SignallingErrorCode.TokenUnsigned, "Only tokens signed with RS256 are accepted.");
        }

        if (string.IsNullOrEmpty(token.Kid))
        {
            return Refuse(SignallingErrorCode.TokenKeyUnknown, "The token names no signing key ('kid').");
        }

        var lookup = await _keys.FindAsync(token.Kid, cancellationToken).ConfigureAwait(false);
        switch (lookup.Status)
        {
            case SigningKeyStatus.Unavailable:
                return Refuse(SignallingErrorCode.IdentityProviderUnavailable, "Google's signing keys could not be fetched; retry later.");
            case SigningKeyStatus.Unknown:
                return Refuse(SignallingErrorCode.TokenKeyUnknown, "The token was signed with a key Google does not publish.");
        }

        var parameters = new TokenValidationParameters
        {
            IssuerSigningKey = lookup.Key,
            TryAllIssuerSigningKeys = false,
            ValidAlgorithms = [SecurityAlgorithms.RsaSha256],
            RequireSignedTokens = true,
            ValidateIssuer = true,
            ValidIssuers = _issuers,
            ValidateAudience = true,
            ValidAudiences = _clientIds,
            // The lifetime is checked below on the injected clock (the library's own clock cannot be replaced).
            ValidateLifetime = false,
            ValidateIssuerSigningKey = false,
            LogValidationExceptions = false,
        };
        var result = await _handler.ValidateTokenAsync(token, parameters).ConfigureAwait(false);
        if (!result.IsValid)
        {
            return RefuseFor(result.Exception);
        }

        if (CheckLifetime(token) is { } lifetimeError)
        {
            return lifetimeError;
        }

        var subject = token.Subject;
        if (string.IsNullOrEmpty(subject) || subject.Length > MaxSubjectLength)
        {
            return Refuse(SignallingErrorCode.TokenMalformed, "The token has no valid 'sub' claim.");
        }

        if (_requireVerifiedEmail && !IsEmailVerified(token))
        {
            return Refuse(SignallingErrorCode.EmailNotVerified, "Google has not verified this account's email address.");
        }

        var name = token.TryGetPayloadValue<string>("name", out var fullName) ? fullName : null;
        var email = token.TryGetPayloadValue<string>("email", out var address) ? address : null;
        return new GoogleIdentity(subject, DisplayNameFrom(name, email, _maxDisplayNameLength));
    }

    /// <summary><c>exp</c> (required) has not passed, and <c>nbf</c> (optional) and <c>iat</c> (required) are not in the future, each within the clock skew.</summary>
    private SignallingError? CheckLifetime(JsonWebToken token)
    {
        if (token.ValidTo == DateTime.MinValue || token.IssuedAt == DateTime.MinValue)
        {
            return new SignallingError(SignallingErrorCode.TokenMalformed, "The token lacks an 'exp' or 'iat' claim.");
        }

        var now = _time.GetUtcNow();
        if (Utc(token.ValidTo) + _clockSkew < now)
        {
            return new SignallingError(SignallingErrorCode.TokenExpired, "The token has expired; sign in with Google again.");
        }

        if (token.ValidFrom != DateTime.MinValue && Utc(token.ValidFrom) - _clockSkew > now)
        {
            return new SignallingError(SignallingErrorCode.TokenNotYetValid, "The token is not valid yet ('nbf' is in the future).");
        }

        if (Utc(token.IssuedAt) - _clockSkew > now)
        {
            return new SignallingError(SignallingErrorCode.TokenNotYetValid, "The token was issued in the future ('iat').");
        }

        return null;
    }

    private static DateTimeOffset Utc(DateTime value) => new(DateTime.SpecifyKind(value, DateTimeKind.Utc));

    /// <summary>
    /// The name to show: the first of <paramref name="name"/> and <paramref name="email"/> that has printable
    /// characters (control characters are dropped, white space trimmed), cut to <paramref name="maxLength"/>
    /// without splitting a surrogate pair; "Google user" when neither has any.
    /// </summary>
    internal static string DisplayNameFrom(string? name, string? email, int maxLength)
    {
        foreach (var candidate in (ReadOnlySpan<string?>)[name, email])
        {
            if (Clean(candidate, maxLength) is { Length: > 0 } cleaned)
            {
                return cleaned;
            }
        }

        return FallbackDisplayName.Length <= maxLength ? FallbackDisplayName : FallbackDisplayName[..maxLength];
    }

    private static string? Clean(string? value, int maxLength)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            return null;
        }

        var printable = value.Any(char.IsControl) ? string.Concat(value.Where(c => !char.IsControl(c))) : value;
        var trimmed = printable.Trim();
        if (trimmed.Length <= maxLength)
        {
            return trimmed;
        }

        var cut = char.IsHighSurrogate(trimmed[maxLength - 1]) ? maxLength - 1 : maxLength;
        return trimmed[..cut].TrimEnd();
    }

    /// <summary><c>email_verified</c> is <c>true</c> (a JSON boolean, or the string <c>"true"</c> that older Google tokens carried).</summary>
    private static bool IsEmailVerified(JsonWebToken token)
        => (token.TryGetPayloadValue<bool>("email_verified", out var verified) && verified)
           || (token.TryGetPayloadValue<string>("email_verified", out var text) && string.Equals(text, "true", StringComparison.OrdinalIgnoreCase));

    /// <summary>Three non-empty base64url segments (the signature may not be empty for RS256 either, but an empty one is reported by the algorithm and signature checks).</summary>
    private static bool HasJwsShape(string token)
    {
        var first = token.IndexOf('.', StringComparison.Ordinal);
        var second = first < 0 ? -1 : token.IndexOf('.', first + 1);
        if (first <= 0 || second <= first + 1 || token.IndexOf('.', second + 1) >= 0)
        {
            return false;
        }

        return Base64Url.IsValid(token.AsSpan(0, first))
            && Base64Url.IsValid(token.AsSpan(first + 1, second - first - 1))
            && Base64Url.IsValid(token.AsSpan(second + 1));
    }

    private static SignallingResult<GoogleIdentity> RefuseFor(Exception? exception) => exception switch
    {
        SecurityTokenSignatureKeyNotFoundException => Refuse(SignallingErrorCode.TokenKeyUnknown, "The token was signed with a key Google does not publish."),
        SecurityTokenInvalidSignatureException => Refuse(SignallingErrorCode.TokenSignatureInvalid, "The token's signature does not verify."),
        SecurityTokenInvalidAlgorithmException => Refuse(SignallingErrorCode.TokenUnsigned, "Only tokens signed with RS256 are accepted."),
        SecurityTokenInvalidIssuerException => Refuse(SignallingErrorCode.TokenIssuerInvalid, "The token was not issued by Google."),
        SecurityTokenInvalidAudienceException => Refuse(SignallingErrorCode.TokenAudienceInvalid, "The token was issued for another application."),
        _ => Refuse(SignallingErrorCode.TokenMalformed, "The token could not be validated."),
    };

    private static SignallingResult<GoogleIdentity> Refuse(SignallingErrorCode code, string message) => SignallingResult<GoogleIdentity>.Failure(code, message);
}
