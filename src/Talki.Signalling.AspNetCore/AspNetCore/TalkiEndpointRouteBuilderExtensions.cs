using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Talki.Signalling.Server;
using Talki.Signalling.Server.AspNetCore;

namespace Microsoft.AspNetCore.Builder;

/// <summary>Maps the Talki HTTP API and the endpoints of the registered gateway.</summary>
public static class TalkiEndpointRouteBuilderExtensions
{
    /// <summary>
    /// Maps, under <see cref="TalkiHostingOptions.PathPrefix"/> (default <c>/talki</c>):
    /// <list type="bullet">
    /// <item><c>POST session/anonymous</c> — sign in with a pseudonym (body <c>{"displayName":"…"}</c>); sets the session cookie;</item>
    /// <item><c>POST session/google</c> — sign in with a Google ID token (body <c>{"idToken":"…"}</c>), when configured;</item>
    /// <item><c>GET session</c> — the signed-in user, or 401;</item>
    /// <item><c>POST session/sign-out</c> — ends the session and deletes it server-side;</item>
    /// <item><c>POST rooms</c> — create a room (the caller is admin); answers a one-time ticket and the WebSocket URL;</item>
    /// <item><c>POST rooms/{roomId}/tickets</c> — a one-time ticket to join a room;</item>
    /// <item><c>GET ws?ticket=…</c> — the self-hosted WebSocket gateway (not with a gateway adapter such as <c>AddAwsGateway</c>,
    /// whose callbacks are mapped instead);</item>
    /// </list>
    /// A process that only answers API Gateway's <c>$connect</c> authorizer (<c>AddAwsGateway</c> with <c>Role</c>
    /// <c>authorizer</c>) maps the authorizer's path alone: none of the HTTP API, which that function has no use for and
    /// which would cost its cold start the endpoints' construction.
    /// With <see cref="TalkiHostingOptions.AllowedOrigins"/> configured, the endpoints carry the Talki CORS policy
    /// (<c>RequireCors</c>): call <c>app.UseCors()</c> so that ASP.NET Core's CORS middleware answers preflights and adds
    /// the headers. Requests from any other origin are refused with <c>cross_site_request</c>.
    /// </summary>
    /// <param name="endpoints">The endpoint route builder.</param>
    /// <returns>The route group, for conventions such as CORS or rate limiting.</returns>
    /// <exception cref="InvalidOperationException"><c>AddTalkiSignalling</c> was not called.</exception>
    public static RouteGroupBuilder MapTalkiSignalling(this IEndpointRouteBuilder endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        // Checked, not resolved: mapping must not build the engine and its store before the options are validated.
        if (!endpoints.ServiceProvider.GetRequiredService<IServiceProviderIsService>().IsService(typeof(TalkiHttpApi)))
        {
            throw new InvalidOperationException("Call services.AddTalkiSignalling() before MapTalkiSignalling().");
        }

        var options = endpoints.ServiceProvider.GetRequiredService<IOptions<TalkiSignallingOptions>>().Value;
        var group = endpoints.MapGroup(options.Hosting.PathPrefix);
        var gateway = endpoints.ServiceProvider.GetRequiredService<TalkiGatewayEndpoints>();
        if (!gateway.ServesHttpApi)
        {
            // The authorizer function: its path only (the group stays empty, for the caller's conventions).
            gateway.Map(endpoints, group);
            return group;
        }

        var signIns = endpoints.ServiceProvider.GetRequiredService<SignInRateLimiter>();
        group.MapPost("/session/anonymous", TalkiHttpApi.SignInAnonymous).AddEndpointFilter(signIns);
        group.MapPost("/session/google", GoogleSignInApi.SignIn).AddEndpointFilter(signIns);
        group.MapGet("/session", TalkiHttpApi.GetSession);
        group.MapPost("/session/sign-out", TalkiHttpApi.SignOut);
        group.MapPost("/rooms", TalkiHttpApi.CreateRoom);
        group.MapPost("/rooms/{roomId}/tickets", TalkiHttpApi.JoinRoom);
        if (options.Hosting.AllowedOrigins.Count > 0)
        {
            // Cross-origin apps: ASP.NET Core's CORS middleware answers preflights and adds the headers (app.UseCors();
            // without it the endpoint middleware refuses every Talki request, so the omission cannot go unnoticed).
            group.RequireCors(TalkiCors.PolicyName);
        }

        gateway.Map(endpoints, group);
        return group;
    }
}
