using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Talki.Signalling.Ports;
using Talki.Signalling.Server;
using Talki.Signalling.Server.AspNetCore;
using Talki.Signalling.Server.DependencyInjection;
using Talki.Signalling.Server.Engine;
using Talki.Signalling.Server.Ice;
using Talki.Signalling.Server.Storage;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers the Talki signalling engine with its embedded defaults.</summary>
public static class TalkiSignallingServiceCollectionExtensions
{
    /// <summary>
    /// Adds the engine with the embedded defaults: the in-memory room store, the self-hosted WebSocket
    /// gateway as the push port, cookie sessions stored through <c>IDistributedCache</c> (in memory unless
    /// another cache is registered), metrics and tracing. Adapters replace the ports through the returned
    /// builder. Calling it again only applies <paramref name="configure"/>.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configure">Configures the options; they are validated at start-up.</param>
    /// <returns>A builder for further configuration.</returns>
    public static ITalkiSignallingBuilder AddTalkiSignalling(this IServiceCollection services, Action<TalkiSignallingOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var optionsBuilder = services.AddOptions<TalkiSignallingOptions>();
        if (configure is not null)
        {
            optionsBuilder.Configure(configure);
        }

        var builder = new TalkiSignallingBuilder(services);
        if (services.Any(d => d.ServiceType == typeof(TalkiSignallingMarker)))
        {
            return builder;
        }

        services.AddSingleton<TalkiSignallingMarker>();
        optionsBuilder.ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<TalkiSignallingOptions>, TalkiSignallingOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.AddMetrics();
        services.AddLogging();
        services.TryAddSingleton<SignallingMetrics>();

        services.TryAddSingleton<InMemoryRoomStore>();
        services.TryAddSingleton<IRoomStore>(static sp => sp.GetRequiredService<InMemoryRoomStore>());
        services.TryAddSingleton<SelfHostedGateway>();
        services.TryAddSingleton<IConnectionPush>(static sp => sp.GetRequiredService<SelfHostedGateway>());
        services.TryAddSingleton<SignallingEngine>();
        services.TryAddSingleton<ISignallingEngine>(static sp => sp.GetRequiredService<SignallingEngine>());
        services.TryAddSingleton<ICallerIdentityResolver, ClaimsCallerIdentityResolver>();
        services.TryAddSingleton<IIceServerProvider, ConfiguredIceServerProvider>();
        services.TryAddSingleton<TalkiHttpApi>();
        services.AddTalkiGoogleSignIn();

        services.AddCors();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IConfigureOptions<Microsoft.AspNetCore.Cors.Infrastructure.CorsOptions>, TalkiCors>());
        services.AddDistributedMemoryCache();
        services.TryAddSingleton<DistributedSessionStore>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IConfigureOptions<CookieAuthenticationOptions>, ConfigureSessionCookie>());
        services.AddAuthentication().AddCookie(TalkiAuthenticationDefaults.AuthenticationScheme);
        return builder;
    }
}

/// <summary>Configures Talki signalling after <c>AddTalkiSignalling</c>: adapters add extension methods to it.</summary>
public interface ITalkiSignallingBuilder
{
    /// <summary>Gets the service collection.</summary>
    IServiceCollection Services { get; }
}
