using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Talki.Signalling.Client;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers the Talki client.</summary>
public static class TalkiClientServiceCollectionExtensions
{
    /// <summary>The name of the <see cref="HttpClient"/> the <see cref="TalkiApiClient"/> uses (configure it with <c>AddHttpClient(TalkiClientServiceCollectionExtensions.HttpClientName)</c>).</summary>
    public const string HttpClientName = "Talki.Signalling.Client";

    /// <summary>
    /// Registers <see cref="TalkiApiClient"/> (a typed client over <c>IHttpClientFactory</c>) and <see cref="TalkiCallFactory"/>.
    /// The options are validated when first resolved. Calling it again only applies <paramref name="configure"/> again.
    /// </summary>
    /// <param name="services">The services.</param>
    /// <param name="configure">Sets the options (at least <see cref="TalkiClientOptions.ApiBaseAddress"/>).</param>
    /// <returns>The services.</returns>
    /// <exception cref="ArgumentNullException">An argument is <see langword="null"/>.</exception>
    public static IServiceCollection AddTalkiClient(this IServiceCollection services, Action<TalkiClientOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        services.Configure(configure);
        services.AddOptions<TalkiClientOptions>().Validate(
            options =>
            {
                try
                {
                    options.Validate();
                    return options.ApiBaseAddress is not null;
                }
                catch (InvalidOperationException)
                {
                    return false;
                }
            },
            "TalkiClientOptions are invalid: set an absolute ApiBaseAddress and keep the intervals in range (see TalkiClientOptions.Validate).");
        services.AddHttpClient(HttpClientName, (sp, http) => http.BaseAddress = sp.GetRequiredService<IOptions<TalkiClientOptions>>().Value.ApiBaseAddress);
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<TalkiAccessToken>();
        services.TryAddTransient(sp => new TalkiApiClient(
            sp.GetRequiredService<IHttpClientFactory>().CreateClient(HttpClientName),
            sp.GetRequiredService<IOptions<TalkiClientOptions>>().Value,
            sp.GetRequiredService<TalkiAccessToken>()));
        services.TryAddSingleton(sp => new TalkiCallFactory(
            () => sp.GetRequiredService<TalkiApiClient>(),
            sp.GetRequiredService<IOptions<TalkiClientOptions>>().Value,
            sp.GetRequiredService<TimeProvider>(),
            sp.GetService<ILoggerFactory>() ?? NullLoggerFactory.Instance));
        return services;
    }
}
