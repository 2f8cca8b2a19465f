using System.Security.Claims;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Talki.Signalling.Http;
using Talki.Signalling.Protocol;
using Talki.Signalling.Server.Engine;
using Talki.Signalling.Server.Identity;

namespace Talki.Signalling.Server.AspNetCore;

/// <summary>
/// <c>POST {prefix}/session/google</c> with <c>{"idToken":"…"}</c>: verifies a Google ID token and starts
/// a verified session exactly as anonymous sign-in starts one (same store, cookie, lifetime). Runs
/// through <see cref="TalkiHttpApi.Run"/>, so it has the same span, cross-site checks, JSON content type
/// requirement and error mapping as every other endpoint. A refused token answers 401 with the reason's
/// code; unreachable Google keys answer 503 <c>identity_provider_unavailable</c>; without configured
/// client ids the endpoint answers 404 <c>invalid_request</c>.
/// </summary>
internal sealed class GoogleSignInApi
{
    private readonly GoogleIdTokenValidator _validator;
    private readonly bool _enabled;
    private readonly ILogger _logger;

    public GoogleSignInApi(GoogleIdTokenValidator validator, IOptions<TalkiSignallingOptions> options, ILogger<GoogleSignInApi> logger)
    {
        _validator = validator;
        _enabled = options.Value.Google.ClientIds.Count > 0;
        _logger = logger;
    }

    public static Task SignIn(HttpContext context)
        => TalkiHttpApi.Run(context, "talki.http.sign_in_google", static (api, ctx) => ctx.RequestServices.GetRequiredService<GoogleSignInApi>().SignInAsync(api, ctx), requireJson: true);

    private async Task SignInAsync(TalkiHttpApi api, HttpContext context)
    {
        if (!_enabled)
        {
            await HttpErrors.WriteAsync(context, StatusCodes.Status404NotFound, SignallingErrorCode.InvalidRequest, "Google sign-in is not configured on this server.").ConfigureAwait(false);
            return;
        }

        var request = await context.Request.ReadFromJsonAsync(TalkiJsonContext.Default.GoogleSignInRequest, context.RequestAborted).ConfigureAwait(false);
        if (string.IsNullOrWhiteSpace(request?.IdToken))
        {
            await HttpErrors.WriteAsync(context, StatusCodes.Status400BadRequest, SignallingErrorCode.InvalidRequest, "'idToken' is required: the credential Google Identity Services returned.").ConfigureAwait(false);
            return;
        }

        var result = await _validator.ValidateAsync(request.IdToken, context.RequestAborted).ConfigureAwait(false);
        if (!result.TryGetValue(out var user, out var error))
        {
            HostingLog.GoogleSignInRefused(_logger, error.Code.ToWireName());
            var status = error.Code == SignallingErrorCode.IdentityProviderUnavailable ? StatusCodes.Status503ServiceUnavailable : StatusCodes.Status401Unauthorized;
            await HttpErrors.WriteAsync(context, status, error.Code, error.Message).ConfigureAwait(false);
            return;
        }

        var identity = new ClaimsIdentity(
            [
                new Claim(ClaimTypes.NameIdentifier, "google:" + user.Subject),
                new Claim(ClaimTypes.Name, user.DisplayName),
                new Claim(TalkiAuthenticationDefaults.VerifiedClaimType, "true"),
            ],
            TalkiAuthenticationDefaults.CookieScheme);
        await api.StartSessionAsync(context, identity, request.UseBearerToken, "google").ConfigureAwait(false);
    }
}
