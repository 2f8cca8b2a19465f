using System.Security.Claims;
using Talki.Signalling.Ports;

namespace Talki.Signalling.Server.AspNetCore;

/// <summary>Reads the caller from the session's claims: name identifier, name and the verified flag.</summary>
internal sealed class ClaimsCallerIdentityResolver : ICallerIdentityResolver
{
    public CallerIdentity? Resolve(ClaimsPrincipal principal)
    {
        ArgumentNullException.ThrowIfNull(principal);
        if (principal.Identity?.IsAuthenticated != true)
        {
            return null;
        }

        var userId = principal.FindFirstValue(ClaimTypes.NameIdentifier);
        var name = principal.FindFirstValue(ClaimTypes.Name);
        if (string.IsNullOrEmpty(userId) || string.IsNullOrEmpty(name))
        {
            return null;
        }

        var verified = string.Equals(principal.FindFirstValue(TalkiAuthenticationDefaults.VerifiedClaimType), "true", StringComparison.Ordinal);
        return new CallerIdentity(userId, name, verified);
    }
}
