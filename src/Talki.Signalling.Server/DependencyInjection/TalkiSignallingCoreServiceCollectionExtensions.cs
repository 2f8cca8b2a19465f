using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Talki.Signalling.Ports;
using Talki.Signalling.Server;
using Talki.Signalling.Server.DependencyInjection;
using Talki.Signalling.Server.Engine;
using Talki.Signalling.Server.Ice;
using Talki.Signalling.Server.Storage;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers the Talki signalling engine without any host (no ASP.NET Core).</summary>
public static class TalkiSignallingCoreServiceCollectionExtensions
{
    /// <summary>
    /// Adds the engine, its options (validated at start-up), the in-memory room store, the configured ICE server
    /// provider, metrics and tracing. The gateway is yours: register an <see cref="IConnectionPush"/> and feed the
    /// engine's <see cref="ISignallingEngine"/> with connects, messages and disconnects. Most apps call
    /// <c>AddTalkiSignalling</c> from <c>Talki.Signalling.AspNetCore</c> instead, which calls this. Calling it again
    /// only applies <paramref name="configure"/>.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configure">Configures the options; they are validated at start-up, every failure listed.</param>
    /// <returns>A builder for adapters.</returns>
    public static ITalkiSignallingBuilder AddTalkiSignallingCore(this IServiceCollection services, Action<TalkiSignallingOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var optionsBuilder = services.AddOptions<TalkiSignallingOptions>();
        if (configure is not null)
        {
            optionsBuilder.Configure(configure);
        }

        var builder = new TalkiSignallingBuilder(services);
        if (services.Any(d => d.ServiceType == typeof(TalkiSignallingCoreMarker)))
        {
            return builder;
        }

        services.AddSingleton<TalkiSignallingCoreMarker>();
        optionsBuilder.ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<TalkiSignallingOptions>, TalkiSignallingOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.AddMetrics();
        services.AddLogging();
        services.TryAddSingleton<SignallingMetrics>();

        services.TryAddSingleton<InMemoryRoomStore>();
        services.TryAddSingleton<IRoomStore>(static sp => sp.GetRequiredService<InMemoryRoomStore>());
        services.TryAddSingleton<IQuotaCounter, InMemoryQuotaCounter>();
        services.TryAddSingleton<SignallingEngine>();
        services.TryAddSingleton<ISignallingEngine>(static sp => sp.GetRequiredService<SignallingEngine>());
        services.TryAddSingleton<IIceServerProvider, ConfiguredIceServerProvider>();
        return builder;
    }
}

/// <summary>Binds Talki's options from configuration.</summary>
public static class TalkiSignallingConfigurationExtensions
{
    /// <summary>
    /// Binds <see cref="TalkiSignallingOptions"/> from a configuration section, for example
    /// <c>builder.Configuration.GetSection("Talki")</c>: keys are the property names (<c>JoinWindow</c>,
    /// <c>Limits:MaxMembersPerRoom</c>, <c>Hosting:AllowedOrigins:0</c>, <c>Turn:SharedSecret</c>…), time spans are
    /// <c>hh:mm:ss</c>, a list in configuration replaces the default list, and an ICE server is a URL or
    /// <c>{Urls, Username, Credential}</c>. No reflection (trim and AOT safe). A value that does not parse fails start-up
    /// validation with its key, listed with every other failure; code that configures the options afterwards wins.
    /// </summary>
    /// <param name="builder">The Talki builder.</param>
    /// <param name="section">The configuration section.</param>
    /// <returns>The builder.</returns>
    public static ITalkiSignallingBuilder BindConfiguration(this ITalkiSignallingBuilder builder, IConfiguration section)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(section);
        var binder = new TalkiOptionsConfiguration(section);
        builder.Services.AddSingleton<IConfigureOptions<TalkiSignallingOptions>>(binder);
        builder.Services.AddSingleton<IValidateOptions<TalkiSignallingOptions>>(binder);
        return builder;
    }
}

/// <summary>Configures Talki signalling after <c>AddTalkiSignalling</c>: adapters add extension methods to it.</summary>
public interface ITalkiSignallingBuilder
{
    /// <summary>Gets the service collection.</summary>
    IServiceCollection Services { get; }
}
