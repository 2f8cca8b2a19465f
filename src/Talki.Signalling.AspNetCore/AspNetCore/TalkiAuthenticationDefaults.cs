namespace Talki.Signalling.Server;

/// <summary>Names used by the Talki session.</summary>
public static class TalkiAuthenticationDefaults
{
    /// <summary>The authentication scheme of the session cookie.</summary>
    public const string AuthenticationScheme = "Talki.Session";

    /// <summary>The claim that says whether an identity provider verified the user (<c>true</c> or <c>false</c>).</summary>
    public const string VerifiedClaimType = "talki:verified";
}
