using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Talki.Signalling.Aws.Callbacks;

namespace Microsoft.AspNetCore.Builder;

/// <summary>Maps the API Gateway WebSocket callbacks.</summary>
internal static class ApiGatewayCallbacksEndpointRouteBuilderExtensions
{
    /// <summary>
    /// Maps three plain POST endpoints (never WebSocket upgrades, whatever <c>Sec-WebSocket-*</c> headers API Gateway forwards):
    /// <list type="bullet">
    /// <item><c>POST {AuthorizerPath}</c> (default <c>/events</c>, the Lambda Web Adapter's pass-through path) — the
    /// <c>$connect</c> REQUEST authorizer event in; the authorizer response out with 200: Allow on the event's
    /// <c>methodArn</c> with the context <c>{room, member, epoch}</c> when <c>queryStringParameters.ticket</c> is a valid
    /// one-time ticket, otherwise Deny (principal <c>talki</c>), also for malformed events;</item>
    /// <item><c>POST {DefaultRoutePath}</c> (default <c>/talki/aws/default</c>) — the <c>$default</c> HTTP integration:
    /// the body is the client's frame; 200 with an empty body, 400 <c>malformed_message</c> when empty, 413
    /// <c>message_too_large</c> beyond <c>Hosting.MaxInboundMessageBytes</c>;</item>
    /// <item><c>POST {DisconnectRoutePath}</c> (default <c>/talki/aws/disconnect</c>) — the <c>$disconnect</c> HTTP
    /// integration; 200 with an empty body.</item>
    /// </list>
    /// The two integrations answer 401 <c>unauthenticated</c> unless the call carries the connection id header and the
    /// gateway secret header.
    /// </summary>
    /// <param name="endpoints">The endpoint route builder.</param>
    /// <param name="role">Which callbacks this process serves: the authorizer function maps only the pass-through path,
    /// the backend only the two integrations, a single local process all three.</param>
    /// <returns>The endpoint route builder.</returns>
    /// <exception cref="InvalidOperationException"><c>AddApiGatewayCallbacks</c> was not called.</exception>
    public static IEndpointRouteBuilder MapTalkiApiGatewayCallbacks(this IEndpointRouteBuilder endpoints, ApiGatewayRole role = ApiGatewayRole.All)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        // Resolved per request, not here: mapping must not build the store and push clients before the options are
        // validated at start-up (a missing setting is then reported with every other one, not as an SDK exception).
        if (!endpoints.ServiceProvider.GetRequiredService<IServiceProviderIsService>().IsService(typeof(ApiGatewayCallbacks)))
        {
            throw new InvalidOperationException("Call services.AddTalkiSignalling().AddAwsGateway(…) before MapTalkiSignalling().");
        }

        // The paths, read without validating: start-up validation reports a missing secret together with every other failure.
        var options = new ApiGatewayCallbacksOptions();
        foreach (var configure in endpoints.ServiceProvider.GetServices<IConfigureOptions<ApiGatewayCallbacksOptions>>())
        {
            configure.Configure(options);
        }

        if (role != ApiGatewayRole.Backend)
        {
            endpoints.MapPost(options.AuthorizerPath, static context => context.RequestServices.GetRequiredService<ApiGatewayCallbacks>().AuthorizeAsync(context)).WithDisplayName("Talki API Gateway $connect authorizer");
        }

        if (role != ApiGatewayRole.Authorizer)
        {
            endpoints.MapPost(options.DefaultRoutePath, static context => context.RequestServices.GetRequiredService<ApiGatewayCallbacks>().DefaultAsync(context)).WithDisplayName("Talki API Gateway $default");
            endpoints.MapPost(options.DisconnectRoutePath, static context => context.RequestServices.GetRequiredService<ApiGatewayCallbacks>().DisconnectAsync(context)).WithDisplayName("Talki API Gateway $disconnect");
        }

        return endpoints;
    }
}
