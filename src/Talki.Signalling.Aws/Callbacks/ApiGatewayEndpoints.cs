using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Talki.Signalling.Server.AspNetCore;

namespace Talki.Signalling.Aws.Callbacks;

/// <summary>Which of API Gateway's callbacks a process maps (configuration <c>Talki:Aws:Role</c>).</summary>
internal enum ApiGatewayRole
{
    /// <summary>All three: one local process plays both functions.</summary>
    All,

    /// <summary>The backend behind the public function URL: <c>$default</c> and <c>$disconnect</c>, never the authorizer.</summary>
    Backend,

    /// <summary>The <c>$connect</c> authorizer function (invoked by API Gateway only): the pass-through path only.</summary>
    Authorizer,
}

/// <summary>The API Gateway gateway: its callbacks (those of its <see cref="ApiGatewayRole"/>), and no self-hosted <c>/ws</c>.</summary>
internal sealed class ApiGatewayEndpoints(ApiGatewayRole role) : TalkiGatewayEndpoints
{
    public override void Map(IEndpointRouteBuilder endpoints, RouteGroupBuilder talki) => endpoints.MapTalkiApiGatewayCallbacks(role);

    /// <summary>The authorizer function serves its pass-through path alone; it is invoked by API Gateway only.</summary>
    public override bool ServesHttpApi => role != ApiGatewayRole.Authorizer;
}
