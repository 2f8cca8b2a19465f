using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Talki.Signalling.Ports;
using Talki.Signalling.Server;
using Talki.Signalling.Server.AspNetCore;
using Talki.Signalling.Server.DependencyInjection;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers Talki signalling on ASP.NET Core with its embedded defaults.</summary>
public static class TalkiSignallingServiceCollectionExtensions
{
    /// <summary>
    /// Adds the engine (<c>AddTalkiSignallingCore</c>) with the embedded defaults: the in-memory room store, the
    /// self-hosted WebSocket gateway as the push port, the HTTP API, cookie and bearer sessions stored through
    /// <c>IDistributedCache</c> (in memory unless another cache is registered), Google sign-in, CORS, metrics and
    /// tracing. Adapters (<c>AddAwsGateway</c>, <c>AddRedis</c>) replace ports through the returned builder.
    /// Calling it again only applies <paramref name="configure"/>.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configure">Configures the options; they are validated at start-up, every failure listed.</param>
    /// <returns>A builder for adapters.</returns>
    public static ITalkiSignallingBuilder AddTalkiSignalling(this IServiceCollection services, Action<TalkiSignallingOptions>? configure = null)
    {
        var builder = services.AddTalkiSignallingCore(configure);
        if (services.Any(d => d.ServiceType == typeof(TalkiSignallingHostMarker)))
        {
            return builder;
        }

        services.AddSingleton<TalkiSignallingHostMarker>();
        services.TryAddSingleton<SelfHostedGateway>();
        services.TryAddSingleton<IConnectionPush>(static sp => sp.GetRequiredService<SelfHostedGateway>());
        services.TryAddSingleton<TalkiGatewayEndpoints, SelfHostedGatewayEndpoints>();
        services.TryAddSingleton<ICallerIdentityResolver, ClaimsCallerIdentityResolver>();
        services.TryAddSingleton<TalkiHttpApi>();
        services.TryAddSingleton<SignInRateLimiter>();
        services.AddTalkiGoogleSignIn();

        services.AddProblemDetails();
        services.AddCors();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IConfigureOptions<Microsoft.AspNetCore.Cors.Infrastructure.CorsOptions>, TalkiCors>());
        services.AddDistributedMemoryCache();
        services.TryAddSingleton<DistributedSessionStore>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IConfigureOptions<CookieAuthenticationOptions>, ConfigureSessionCookie>());
        services.AddAuthentication()
            .AddCookie(TalkiAuthenticationDefaults.CookieScheme)
            .AddScheme<AuthenticationSchemeOptions, TalkiBearerHandler>(TalkiAuthenticationDefaults.BearerScheme, displayName: null, static _ => { })
            .AddPolicyScheme(TalkiAuthenticationDefaults.AuthenticationScheme, displayName: null, static options =>
                options.ForwardDefaultSelector = static context => TalkiBearerHandler.TokenOf(context.Request) is not null
                    ? TalkiAuthenticationDefaults.BearerScheme
                    : TalkiAuthenticationDefaults.CookieScheme);
        return builder;
    }
}
