using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Talki.Signalling.Server.AspNetCore;
using Talki.Signalling.Server.Identity;

namespace Talki.Signalling.Server.DependencyInjection;

/// <summary>Registers sign-in with a Google ID token (part of <c>AddTalkiSignalling</c>).</summary>
internal static class GoogleSignInServiceCollectionExtensions
{
    /// <summary>
    /// Adds the typed <see cref="HttpClient"/> that fetches Google's signing keys, the key cache, the token
    /// validator and the endpoint's handler. The endpoint answers 404 until <see cref="TalkiGoogleOptions.ClientIds"/>
    /// has a client id, and nothing is fetched before the first sign-in.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <returns>The service collection.</returns>
    public static IServiceCollection AddTalkiGoogleSignIn(this IServiceCollection services)
    {
        services.AddHttpClient<GoogleKeysClient>(static http =>
        {
            http.Timeout = GoogleKeysClient.Timeout;
            http.MaxResponseContentBufferSize = GoogleKeysClient.MaxResponseBytes;
        });
        services.TryAddSingleton<GoogleSigningKeyCache>();
        services.TryAddSingleton<GoogleIdTokenValidator>();
        services.TryAddSingleton<GoogleSignInApi>();
        return services;
    }
}

/// <summary>Marks that <c>AddTalkiSignalling</c> (the ASP.NET Core host) ran, so a second call does not stack registrations.</summary>
internal sealed class TalkiSignallingHostMarker;
