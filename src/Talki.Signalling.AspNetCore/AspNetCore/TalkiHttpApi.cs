using System.Buffers.Text;
using System.Diagnostics;
using System.Globalization;
using System.Security.Claims;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Cors.Infrastructure;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Talki.Signalling.Http;
using Talki.Signalling.Ports;
using Talki.Signalling.Protocol;
using Talki.Signalling.Server.Engine;

namespace Talki.Signalling.Server.AspNetCore;

/// <summary>
/// The HTTP API. Cross-site request forgery is stopped in three layers: state-changing endpoints are
/// POSTs that (1) refuse an <c>Origin</c> that is neither this API's nor an allowed one
/// (<c>cross_site_request</c>), (2) require <c>Content-Type: application/json</c>, which a cross-site form
/// cannot send and a cross-site script can only send after a CORS preflight that other origins do not
/// pass, and (3) the session cookie is <c>SameSite=Lax</c> unless cross-origin apps are configured.
/// Bearer tokens are never sent by browsers on their own, so they need no such protection.
/// </summary>
internal sealed class TalkiHttpApi
{
    private readonly ISignallingEngine _engine;
    private readonly ICallerIdentityResolver _identity;
    private readonly TalkiSignallingOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly DistributedSessionStore _sessions;
    private readonly ICorsPolicyProvider _corsPolicies;

    public TalkiHttpApi(
        ISignallingEngine engine,
        ICallerIdentityResolver identity,
        IOptions<TalkiSignallingOptions> options,
        TimeProvider time,
        DistributedSessionStore sessions,
        ICorsPolicyProvider corsPolicies,
        ILogger<TalkiHttpApi> logger)
    {
        _sessions = sessions;
        _corsPolicies = corsPolicies;
        _engine = engine;
        _identity = identity;
        _options = options.Value;
        _time = time;
        _logger = logger;
    }

    public static Task SignInAnonymous(HttpContext context) => Run(context, "talki.http.sign_in", static (api, ctx) => api.SignInAnonymousAsync(ctx), requireJson: true);

    public static Task GetSession(HttpContext context) => Run(context, "talki.http.get_session", static (api, ctx) => api.GetSessionAsync(ctx), requireJson: false);

    public static Task SignOut(HttpContext context) => Run(context, "talki.http.sign_out", static (_, ctx) => SignOutAsync(ctx), requireJson: true);

    public static Task CreateRoom(HttpContext context) => Run(context, "talki.http.create_room", static (api, ctx) => api.CreateRoomAsync(ctx), requireJson: true);

    public static Task JoinRoom(HttpContext context) => Run(context, "talki.http.join_room", static (api, ctx) => api.JoinRoomAsync(ctx), requireJson: true);

    /// <summary>Runs a handler with the cross-cutting rules: span, CORS, origin check, JSON content type, error mapping.</summary>
    internal static async Task Run(HttpContext context, string operation, Func<TalkiHttpApi, HttpContext, Task> handler, bool requireJson)
    {
        var api = context.RequestServices.GetRequiredService<TalkiHttpApi>();
        using var activity = SignallingActivity.Source.StartActivity(operation, ActivityKind.Internal);
        activity?.SetTag(TalkiDiagnostics.CorrelationIdTag, context.TraceIdentifier);
        context.Response.Headers.CacheControl = "no-store";
        var originAllowed = await api.IsOriginAllowedAsync(context).ConfigureAwait(false);
        if (requireJson && !originAllowed)
        {
            await HttpErrors.WriteAsync(context, StatusCodes.Status403Forbidden, SignallingErrorCode.CrossSiteRequest, "Requests from this origin are refused (cross-site request forgery protection).").ConfigureAwait(false);
            return;
        }

        if (requireJson && !context.Request.HasJsonContentType())
        {
            await HttpErrors.WriteAsync(context, StatusCodes.Status415UnsupportedMediaType, SignallingErrorCode.InvalidRequest, "Send Content-Type: application/json.").ConfigureAwait(false);
            return;
        }

        // Bound every body before anything reads it: over the limit is 413, never a buffered allocation or a 500.
        var maxBody = api._options.Hosting.MaxRequestBodyBytes;
        if (context.Request.ContentLength > maxBody)
        {
            await WriteTooLargeAsync(context, maxBody).ConfigureAwait(false);
            return;
        }

        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } bodyLimit)
        {
            bodyLimit.MaxRequestBodySize = maxBody;
        }

        try
        {
            await handler(api, context).ConfigureAwait(false);
        }
        catch (BadHttpRequestException exception) when (exception.StatusCode == StatusCodes.Status413PayloadTooLarge && !context.Response.HasStarted)
        {
            await WriteTooLargeAsync(context, maxBody).ConfigureAwait(false); // a chunked body that outgrew the limit
        }
        catch (JsonException)
        {
            await HttpErrors.WriteAsync(context, StatusCodes.Status400BadRequest, SignallingErrorCode.InvalidRequest, "The body is not valid JSON.").ConfigureAwait(false);
        }
        catch (RoomStoreUnavailableException exception) when (!context.Response.HasStarted)
        {
            HostingLog.StoreUnavailable(api._logger, exception);
            await HttpErrors.WriteStoreUnavailableAsync(context).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // The client went away.
        }
#pragma warning disable CA1031 // Unexpected failures become a generic error with a correlation id.
        catch (Exception exception) when (!context.Response.HasStarted)
#pragma warning restore CA1031
        {
            var reference = SignallingEngine.NewCorrelationId();
            HostingLog.HttpFailure(api._logger, exception, reference);
            await HttpErrors.WriteAsync(context, StatusCodes.Status500InternalServerError, SignallingErrorCode.Internal, "An unexpected error occurred; quote the reference to the operator.", reference).ConfigureAwait(false);
        }
    }

    private static Task WriteTooLargeAsync(HttpContext context, int maxBody)
        => HttpErrors.WriteAsync(context, StatusCodes.Status413PayloadTooLarge, SignallingErrorCode.MessageTooLarge, $"The request body is larger than {maxBody} bytes.");

    /// <summary>The detail of the 503 <c>service_unavailable</c> sign-in answers when the server holds as many sessions as it may.</summary>
    internal const string SessionStoreFullMessage = "The server holds as many sessions as it may; retry later.";

    private async Task SignInAnonymousAsync(HttpContext context)
    {
        var request = await ReadBodyAsync(context).ConfigureAwait(false);
        if (!DisplayNames.TryNormalize(request?.DisplayName, _options.MaxDisplayNameLength, out var name, out var problem))
        {
            await HttpErrors.WriteAsync(context, StatusCodes.Status400BadRequest, SignallingErrorCode.InvalidRequest, $"'displayName' {problem}: 1 to {_options.MaxDisplayNameLength} visible characters.").ConfigureAwait(false);
            return;
        }

        Span<byte> random = stackalloc byte[16];
        RandomNumberGenerator.Fill(random);
        var identity = new ClaimsIdentity(
            [
                new Claim(ClaimTypes.NameIdentifier, "anon:" + Base64Url.EncodeToString(random)),
                new Claim(ClaimTypes.Name, name),
                new Claim(TalkiAuthenticationDefaults.VerifiedClaimType, "false"),
            ],
            TalkiAuthenticationDefaults.CookieScheme);
        await StartSessionAsync(context, identity, request!.UseBearerToken, "anonymous").ConfigureAwait(false);
    }

    /// <summary>
    /// Starts a 24 h session for a signed-in identity and answers <see cref="SessionResponse"/>: in the cookie,
    /// or, when <paramref name="bearer"/>, as a bearer token kept in the same session store with the same expiry. Logs the
    /// session started (<paramref name="kind"/>: <c>anonymous</c>, <c>google</c>) once the store took it; a full in-process
    /// session table is answered 503 <c>service_unavailable</c> instead.
    /// </summary>
    internal async Task StartSessionAsync(HttpContext context, ClaimsIdentity identity, bool bearer, string kind)
    {
        var now = _time.GetUtcNow();
        var properties = new AuthenticationProperties
        {
            IsPersistent = true,
            AllowRefresh = false,
            IssuedUtc = now,
            ExpiresUtc = now + _options.Hosting.SessionLifetime,
        };
        var principal = new ClaimsPrincipal(identity);
        string? token = null;
        try
        {
            if (bearer)
            {
                token = await _sessions.StoreAsync(new AuthenticationTicket(principal, properties, TalkiAuthenticationDefaults.BearerScheme), context.RequestAborted).ConfigureAwait(false);
            }
            else
            {
                await context.SignInAsync(TalkiAuthenticationDefaults.CookieScheme, principal, properties).ConfigureAwait(false);
            }
        }
        catch (SessionStoreFullException)
        {
            // The in-process table is full of live sessions: no session, no cookie (the cookie handler writes its header
            // only after the store took the session), and the sessions held stay.
            HostingLog.SessionStoreFull(_logger);
            context.Response.Headers.RetryAfter = "60";
            await HttpErrors.WriteAsync(context, StatusCodes.Status503ServiceUnavailable, SignallingErrorCode.ServiceUnavailable, SessionStoreFullMessage).ConfigureAwait(false);
            return;
        }

        HostingLog.SessionStarted(_logger, kind);
        var caller = _identity.Resolve(principal)!;
        await context.Response.WriteAsJsonAsync(
            new SessionResponse { DisplayName = caller.DisplayName, Verified = caller.IsVerified, AccessToken = token, ExpiresAt = properties.ExpiresUtc },
            TalkiJsonContext.Default.SessionResponse).ConfigureAwait(false);
    }

    private async Task GetSessionAsync(HttpContext context)
    {
        var caller = await AuthenticateAsync(context).ConfigureAwait(false);
        if (caller is null)
        {
            await WriteUnauthenticatedAsync(context).ConfigureAwait(false);
            return;
        }

        await context.Response.WriteAsJsonAsync(new SessionResponse { DisplayName = caller.DisplayName, Verified = caller.IsVerified }, TalkiJsonContext.Default.SessionResponse).ConfigureAwait(false);
    }

    private static async Task SignOutAsync(HttpContext context)
    {
        // The policy scheme forwards to the bearer handler or the cookie handler; each deletes the server-side entry.
        await context.SignOutAsync(TalkiAuthenticationDefaults.AuthenticationScheme).ConfigureAwait(false);
        context.Response.StatusCode = StatusCodes.Status204NoContent;
    }

    private async Task CreateRoomAsync(HttpContext context)
    {
        var caller = await AuthenticateAsync(context).ConfigureAwait(false);
        if (caller is null)
        {
            await WriteUnauthenticatedAsync(context).ConfigureAwait(false);
            return;
        }

        var result = await _engine.CreateRoomAsync(caller, context.RequestAborted).ConfigureAwait(false);
        await WriteTicketAsync(context, result, StatusCodes.Status201Created).ConfigureAwait(false);
    }

    private async Task JoinRoomAsync(HttpContext context)
    {
        var caller = await AuthenticateAsync(context).ConfigureAwait(false);
        if (caller is null)
        {
            await WriteUnauthenticatedAsync(context).ConfigureAwait(false);
            return;
        }

        if (!RoomId.TryParse(context.Request.RouteValues["roomId"] as string, out var room))
        {
            await HttpErrors.WriteAsync(context, StatusCodes.Status404NotFound, SignallingErrorCode.RoomNotFound, "No such room.").ConfigureAwait(false);
            return;
        }

        var result = await _engine.IssueJoinTicketAsync(caller, room, context.RequestAborted).ConfigureAwait(false);
        await WriteTicketAsync(context, result, StatusCodes.Status200OK).ConfigureAwait(false);
    }

    private async Task<CallerIdentity?> AuthenticateAsync(HttpContext context)
    {
        var result = await context.AuthenticateAsync(TalkiAuthenticationDefaults.AuthenticationScheme).ConfigureAwait(false);
        return result.Succeeded ? _identity.Resolve(result.Principal) : null;
    }

    /// <summary>
    /// The first layer against cross-site request forgery (CORS headers themselves are ASP.NET Core's CORS middleware's
    /// job, through <c>RequireCors</c>): a request without <c>Origin</c> (same-origin navigation, non-browser clients),
    /// from this API's own origin, or from an origin of the Talki CORS policy passes; any other origin does not.
    /// </summary>
    private async Task<bool> IsOriginAllowedAsync(HttpContext context)
    {
        var origin = context.Request.Headers.Origin.ToString();
        if (string.IsNullOrEmpty(origin) || string.Equals(origin, $"{context.Request.Scheme}://{context.Request.Host}", StringComparison.OrdinalIgnoreCase))
        {
            return true;
        }

        var policy = await _corsPolicies.GetPolicyAsync(context, TalkiCors.PolicyName).ConfigureAwait(false);
        return policy is not null && policy.IsOriginAllowed(origin);
    }

    private static async Task<AnonymousSignInRequest?> ReadBodyAsync(HttpContext context)
        => await context.Request.ReadFromJsonAsync(TalkiJsonContext.Default.AnonymousSignInRequest, context.RequestAborted).ConfigureAwait(false);

    private static Task WriteUnauthenticatedAsync(HttpContext context)
        => HttpErrors.WriteAsync(context, StatusCodes.Status401Unauthorized, SignallingErrorCode.Unauthenticated, "Sign in first.");

    private async Task WriteTicketAsync(HttpContext context, SignallingResult<TicketGrant> result, int status)
    {
        if (!result.TryGetValue(out var grant, out var error))
        {
            await HttpErrors.WriteAsync(context, error).ConfigureAwait(false);
            return;
        }

        context.Response.StatusCode = status;
        var response = new TicketResponse
        {
            Room = grant.Room,
            Member = grant.Member,
            Admin = grant.IsAdmin,
            Ticket = grant.Ticket.Value,
            TicketExpiresAt = grant.ExpiresAt,
            SealsAt = grant.SealsAt,
            Status = grant.Status,
            ServerTime = _time.GetUtcNow(),
            DisplayName = grant.DisplayName,
            Verified = grant.IsVerified,
            WebSocketUrl = WebSocketUrlFor(context.Request, grant.Ticket),
        };
        await context.Response.WriteAsJsonAsync(response, TalkiJsonContext.Default.TicketResponse).ConfigureAwait(false);
    }

    private Uri WebSocketUrlFor(HttpRequest request, TicketId ticket)
    {
        var query = string.Create(CultureInfo.InvariantCulture, $"v={ProtocolVersion.Current}&ticket={ticket.Value}");
        if (_options.Hosting.PublicWebSocketUrl is { } configured)
        {
            var builder = new UriBuilder(configured);
            builder.Query = string.IsNullOrEmpty(builder.Query) ? query : builder.Query.TrimStart('?') + "&" + query;
            return builder.Uri;
        }

        var scheme = request.IsHttps ? "wss" : "ws";
        return new Uri($"{scheme}://{request.Host}{request.PathBase}{_options.Hosting.PathPrefix.TrimEnd('/')}/ws?{query}");
    }
}
