using Microsoft.AspNetCore.Server.Kestrel.Core;
using Talki.Signalling.Server.AspNetCore;

namespace Microsoft.AspNetCore.Hosting;

/// <summary>Kestrel endpoint options for Talki.</summary>
public static class TalkiListenOptionsExtensions
{
    /// <summary>
    /// Takes the self-hosted gateway's WebSocket upgrades (<c>GET {PathPrefix}/ws?ticket=…</c>) at this endpoint's
    /// connection level, before HTTP/1.1, so that an open socket keeps none of ASP.NET Core's per-request state for its
    /// life (about 7 KB less per idle member; see the package README). Everything else on the endpoint is served as before.
    /// </summary>
    /// <remarks>
    /// <para>
    /// Only a first request that is, byte for byte, a well-formed WebSocket opening handshake for the gateway's path is taken;
    /// any other request (and any handshake in another form, such as a percent-encoded or differently cased path, an
    /// oversized head, a later request on a kept-alive connection, or HTTP/2) goes to the <c>MapTalkiSignalling</c>
    /// endpoint as without this call. A taken handshake is authorized as on the endpoint and refused with the same status and
    /// problem document.
    /// </para>
    /// <para>
    /// The ASP.NET Core middleware pipeline does not see the sockets taken here (no request logging, host filtering,
    /// forwarded headers or rate limiting middleware for them; the gateway authorizes them by their one-time ticket), and
    /// Kestrel's <see cref="KestrelServerLimits.MaxConcurrentUpgradedConnections"/> does not count them
    /// (<see cref="KestrelServerLimits.MaxConcurrentConnections"/> does). On an HTTPS endpoint call it after <c>UseHttps</c>,
    /// so that it sees the decrypted bytes; before it, it never matches. As an endpoint default
    /// (<c>ConfigureEndpointDefaults</c>) it comes before an endpoint's own <c>UseHttps</c>, so on HTTPS endpoints configure
    /// it in <c>Listen(…, endpoint =&gt; { endpoint.UseHttps(…); endpoint.UseTalkiWebSockets(); })</c>. Without the self-hosted gateway (a gateway adapter
    /// such as <c>AddAwsGateway</c>) it passes every connection on.
    /// </para>
    /// <example>
    /// <code>
    /// builder.WebHost.ConfigureKestrel(kestrel => kestrel.ConfigureEndpointDefaults(endpoint => endpoint.UseTalkiWebSockets()));
    /// </code>
    /// </example>
    /// </remarks>
    /// <param name="listenOptions">The endpoint.</param>
    /// <returns>The endpoint, for chaining.</returns>
    public static ListenOptions UseTalkiWebSockets(this ListenOptions listenOptions)
    {
        ArgumentNullException.ThrowIfNull(listenOptions);
        var services = listenOptions.ApplicationServices;
        var kestrel = listenOptions.KestrelServerOptions;
        listenOptions.Use(next => new ConnectionLevelUpgrade(next, services, kestrel).OnConnectionAsync);
        return listenOptions;
    }
}
