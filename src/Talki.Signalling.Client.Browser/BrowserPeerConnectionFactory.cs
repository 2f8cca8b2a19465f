using Microsoft.Extensions.Logging;
using Talki.Signalling.Client.Negotiation;

namespace Talki.Signalling.Client.Browser;

/// <summary>
/// Creates <see cref="IPeerConnection"/>s over the browser's <c>RTCPeerConnection</c> (Blazor WebAssembly).
/// Each connection sends the local media started with <see cref="BrowserMedia"/> and uses the ICE servers of its <see cref="PeerLinkPlan"/>.
/// Await <see cref="InitializeAsync"/> once before the first <see cref="Create"/>.
/// </summary>
public sealed class BrowserPeerConnectionFactory : IPeerConnectionFactory
{
    private readonly TalkiWebRtcInterop _interop;
    private readonly BrowserMedia _media;
    private readonly ILogger _logger;

    internal BrowserPeerConnectionFactory(TalkiWebRtcInterop interop, BrowserMedia media, ILogger logger)
    {
        _interop = interop;
        _media = media;
        _logger = logger;
    }

    /// <summary>
    /// Gets or sets which ICE candidates the connections use: <see cref="BrowserIceTransportPolicy.Relay"/> sends everything
    /// through the TURN servers of the plan, so peers never learn each other's IP addresses. Applies to connections created
    /// from now on. Default <see cref="BrowserIceTransportPolicy.All"/>.
    /// </summary>
    public BrowserIceTransportPolicy IceTransportPolicy { get; set; }

    /// <summary>Loads the adapter's JS module (<c>_content/Talki.Signalling.Client.Browser/talki-webrtc.js</c>); idempotent.</summary>
    /// <param name="cancellationToken">Cancels the load.</param>
    /// <returns>A task that completes when <see cref="Create"/> can be called.</returns>
    public async ValueTask InitializeAsync(CancellationToken cancellationToken = default) =>
        await _interop.LoadAsync(cancellationToken).ConfigureAwait(false);

    /// <inheritdoc />
    /// <exception cref="InvalidOperationException"><see cref="InitializeAsync"/> has not completed.</exception>
    /// <exception cref="PlatformNotSupportedException">Not running in Blazor WebAssembly.</exception>
    public IPeerConnection Create(PeerLinkPlan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        var connection = new BrowserPeerConnection(_interop, _media, _logger, plan, IceTransportPolicy);
        Log.PeerCreated(_logger, plan.Peer, plan.PeerEpoch);
        return connection;
    }
}

/// <summary>The W3C <c>RTCIceTransportPolicy</c>.</summary>
public enum BrowserIceTransportPolicy
{
    /// <summary><c>all</c>: host, server-reflexive and relay candidates.</summary>
    All = 0,

    /// <summary><c>relay</c>: TURN relay candidates only (hides the members' addresses from each other).</summary>
    Relay,
}
