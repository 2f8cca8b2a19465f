using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Talki.Signalling.Server.AspNetCore;

/// <summary>
/// Maps what the registered gateway needs. <c>AddTalkiSignalling</c> registers the self-hosted WebSocket gateway's
/// (<c>GET {prefix}/ws</c>); a gateway adapter (<c>AddAwsGateway</c>) replaces it with its callbacks, so the self-hosted
/// socket endpoint is not mapped where nothing would push to it.
/// </summary>
internal abstract class TalkiGatewayEndpoints
{
    /// <summary>Maps the gateway's endpoints.</summary>
    /// <param name="endpoints">The application's endpoints (for paths outside the Talki prefix).</param>
    /// <param name="talki">The group under the Talki prefix.</param>
    public abstract void Map(IEndpointRouteBuilder endpoints, RouteGroupBuilder talki);

    /// <summary>
    /// Whether <c>MapTalkiSignalling</c> maps the HTTP API (sessions, rooms, tickets) beside the gateway's endpoints: false for
    /// a process that only answers API Gateway's <c>$connect</c> authorizer.
    /// </summary>
    public virtual bool ServesHttpApi => true;
}

/// <summary>The self-hosted gateway: WebSocket upgrades on <c>{prefix}/ws</c>.</summary>
internal sealed class SelfHostedGatewayEndpoints : TalkiGatewayEndpoints
{
    public override void Map(IEndpointRouteBuilder endpoints, RouteGroupBuilder talki)
    {
        var webSockets = endpoints.CreateApplicationBuilder();
        webSockets.UseWebSockets();
        webSockets.Run(static context => context.RequestServices.GetRequiredService<SelfHostedGateway>()
            .HandleAsync(context, context.RequestServices.GetRequiredService<ISignallingEngine>()));
        talki.Map("/ws", webSockets.Build());
    }
}
