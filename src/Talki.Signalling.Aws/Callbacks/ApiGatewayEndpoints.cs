using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Talki.Signalling.Server.AspNetCore;

namespace Talki.Signalling.Aws.Callbacks;

/// <summary>The API Gateway gateway: its callbacks, and no self-hosted <c>/ws</c>.</summary>
internal sealed class ApiGatewayEndpoints : TalkiGatewayEndpoints
{
    public override void Map(IEndpointRouteBuilder endpoints, RouteGroupBuilder talki) => endpoints.MapTalkiApiGatewayCallbacks();
}
