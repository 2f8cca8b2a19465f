using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.JSInterop;
using Talki.Signalling.Client.Browser;
using Talki.Signalling.Client.Negotiation;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers the Talki browser adapter.</summary>
public static class TalkiBrowserServiceCollectionExtensions
{
    /// <summary>
    /// Adds <see cref="BrowserPeerConnectionFactory"/> (also as <see cref="IPeerConnectionFactory"/>) and <see cref="BrowserMedia"/>,
    /// scoped like <see cref="IJSRuntime"/> (one per app in Blazor WebAssembly).
    /// </summary>
    /// <param name="services">The services.</param>
    /// <returns>The same services.</returns>
    public static IServiceCollection AddTalkiBrowserWebRtc(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.TryAddScoped(static sp => new TalkiWebRtcInterop(sp.GetRequiredService<IJSRuntime>()));
        services.TryAddScoped(static sp => new BrowserMedia(sp.GetRequiredService<TalkiWebRtcInterop>(), CreateLogger(sp, "Talki.Signalling.Client.Browser.BrowserMedia")));
        services.TryAddScoped(static sp => new BrowserPeerConnectionFactory(
            sp.GetRequiredService<TalkiWebRtcInterop>(),
            sp.GetRequiredService<BrowserMedia>(),
            CreateLogger(sp, "Talki.Signalling.Client.Browser.BrowserPeerConnection")));
        services.TryAddScoped<IPeerConnectionFactory>(static sp => sp.GetRequiredService<BrowserPeerConnectionFactory>());
        return services;
    }

    private static ILogger CreateLogger(IServiceProvider services, string category) =>
        services.GetService<ILoggerFactory>()?.CreateLogger(category) ?? NullLogger.Instance;
}
