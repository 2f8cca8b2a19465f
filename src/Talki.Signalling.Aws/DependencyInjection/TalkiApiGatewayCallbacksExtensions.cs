using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Talki.Signalling.Aws.Callbacks;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers the API Gateway WebSocket callbacks (the <c>$connect</c> authorizer and the <c>$default</c>/<c>$disconnect</c> integrations).</summary>
internal static class TalkiApiGatewayCallbacksExtensions
{
    /// <summary>
    /// Registers the API Gateway callbacks; map them with <c>app.MapTalkiApiGatewayCallbacks()</c>. They drive the
    /// engine registered by <c>AddTalkiSignalling</c> and answer through its <c>IConnectionPush</c> (on AWS, the one
    /// from <c>AddApiGatewayPush</c>). Calling it again only applies <paramref name="configure"/>.
    /// </summary>
    /// <param name="builder">The Talki builder.</param>
    /// <param name="configure">Configures the options (<see cref="ApiGatewayCallbacksOptions.GatewaySecret"/> is required); they are validated at start-up.</param>
    /// <returns>The builder.</returns>
    public static ITalkiSignallingBuilder AddApiGatewayCallbacks(this ITalkiSignallingBuilder builder, Action<ApiGatewayCallbacksOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(configure);
        var services = builder.Services;
        services.AddOptions<ApiGatewayCallbacksOptions>().Configure(configure).ValidateOnStart();
        if (services.Any(static d => d.ServiceType == typeof(ApiGatewayCallbacks)))
        {
            return builder;
        }

        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ApiGatewayCallbacksOptions>, ApiGatewayCallbacksOptionsValidator>());
        services.AddLogging();
        services.AddSingleton<ApiGatewayCallbacks>();
        return builder;
    }
}
