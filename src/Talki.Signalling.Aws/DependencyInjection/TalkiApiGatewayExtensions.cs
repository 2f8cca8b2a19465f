using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Talki.Signalling.Aws.ApiGateway;
using Talki.Signalling.Ports;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Pushes to API Gateway WebSocket connections through the <c>@connections</c> API.</summary>
internal static class TalkiApiGatewayExtensions
{
    /// <summary>
    /// Replaces the engine's <see cref="IConnectionPush"/> with the API Gateway <c>@connections</c> client: SigV4-signed
    /// requests (service <c>execute-api</c>; credentials from the options or the standard AWS chain) behind a resilience
    /// pipeline (429 and 5xx retried with jittered exponential backoff up to a cap, per-attempt and total time limits,
    /// on the registered <see cref="TimeProvider"/>). Also registers <see cref="IApiGatewayConnections"/>.
    /// </summary>
    /// <param name="builder">The Talki builder.</param>
    /// <param name="configure">Configures the options; they are validated at start-up.</param>
    /// <returns>The builder.</returns>
    public static ITalkiSignallingBuilder AddApiGatewayPush(this ITalkiSignallingBuilder builder, Action<ApiGatewayPushOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(configure);
        var services = builder.Services;
        services.AddOptions<ApiGatewayPushOptions>().Configure(configure).ValidateOnStart();
        if (services.Any(static d => d.ServiceType == typeof(ApiGatewayConnections)))
        {
            return builder;
        }

        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ApiGatewayPushOptions>, ApiGatewayPushOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.AddLogging();
        services.AddApiGatewayHttpClient();
        services.AddSingleton<ApiGatewayConnections>();
        services.TryAddSingleton<IApiGatewayConnections>(static sp => sp.GetRequiredService<ApiGatewayConnections>());
        services.Replace(ServiceDescriptor.Singleton<IConnectionPush>(static sp => sp.GetRequiredService<ApiGatewayConnections>()));
        return builder;
    }
}
