using System.Security.Claims;

namespace Talki.Signalling.Ports;

/// <summary>Turns an authenticated principal into the <see cref="CallerIdentity"/> the engine works with.</summary>
public interface ICallerIdentityResolver
{
    /// <summary>Resolves the caller.</summary>
    /// <param name="principal">The authenticated principal.</param>
    /// <returns>The caller, or <see langword="null"/> when the principal does not identify a signed-in user.</returns>
    CallerIdentity? Resolve(ClaimsPrincipal principal);
}
