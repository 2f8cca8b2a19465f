namespace Talki.Signalling.Server;

/// <summary>
/// The authentication schemes of a Talki session. A session is carried by a cookie (browsers on the API's site) or by a
/// bearer token (cross-site apps where third-party cookies are blocked, native clients); both are kept server-side in the
/// same store with the same 24 h lifetime. Protect your own endpoints with the session through
/// <c>RequireAuthorization(new AuthorizeAttribute { AuthenticationSchemes = TalkiAuthenticationDefaults.AuthenticationScheme })</c>.
/// </summary>
public static class TalkiAuthenticationDefaults
{
    /// <summary>The policy scheme that authenticates a Talki session: the bearer scheme when the request has
    /// <c>Authorization: Bearer …</c>, the cookie scheme otherwise.</summary>
    public const string AuthenticationScheme = "Talki";

    /// <summary>The scheme of the session cookie (HttpOnly, Secure, server-side session).</summary>
    public const string CookieScheme = "Talki.Session";

    /// <summary>The scheme of the session's bearer token (<c>Authorization: Bearer …</c>).</summary>
    public const string BearerScheme = "Talki.Bearer";

    /// <summary>The claim that says whether an identity provider verified the user (<c>true</c> or <c>false</c>).</summary>
    public const string VerifiedClaimType = "talki:verified";
}
