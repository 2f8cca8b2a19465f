using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
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
    public override void Map(IEndpointRouteBuilder endpoints, RouteGroupBuilder talki)
    {
        if (role == ApiGatewayRole.All)
        {
            endpoints.MapTalkiApiGatewayCallbacks();
            return;
        }

        // The paths, read without validating (start-up validation reports every failure), as MapTalkiApiGatewayCallbacks does.
        var options = new ApiGatewayCallbacksOptions();
        foreach (var configure in endpoints.ServiceProvider.GetServices<IConfigureOptions<ApiGatewayCallbacksOptions>>())
        {
            configure.Configure(options);
        }

        if (role == ApiGatewayRole.Authorizer)
        {
            endpoints.MapPost(options.AuthorizerPath, static context => context.RequestServices.GetRequiredService<ApiGatewayCallbacks>().AuthorizeAsync(context)).WithDisplayName("Talki API Gateway $connect authorizer");
            return;
        }

        endpoints.MapPost(options.DefaultRoutePath, static context => context.RequestServices.GetRequiredService<ApiGatewayCallbacks>().DefaultAsync(context)).WithDisplayName("Talki API Gateway $default");
        endpoints.MapPost(options.DisconnectRoutePath, static context => context.RequestServices.GetRequiredService<ApiGatewayCallbacks>().DisconnectAsync(context)).WithDisplayName("Talki API Gateway $disconnect");
    }
}
