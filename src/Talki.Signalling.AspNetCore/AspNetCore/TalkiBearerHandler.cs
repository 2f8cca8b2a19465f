using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Talki.Signalling.Server.AspNetCore;

/// <summary>
/// Authenticates <c>Authorization: Bearer {token}</c> against the server-side session store (the same entries as the
/// cookie's, under the token's hash); signing out deletes the entry, so a stolen token dies with the session.
/// </summary>
internal sealed class TalkiBearerHandler : SignOutAuthenticationHandler<AuthenticationSchemeOptions>
{
    private readonly DistributedSessionStore _sessions;

    public TalkiBearerHandler(IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder, DistributedSessionStore sessions)
        : base(options, logger, encoder)
    {
        _sessions = sessions;
    }

    /// <summary>The bearer token of a request, or <see langword="null"/>.</summary>
    internal static string? TokenOf(HttpRequest request)
    {
        var header = request.Headers.Authorization.ToString();
        return header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) && header.Length > 7 ? header[7..].Trim() : null;
    }

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        if (TokenOf(Request) is not { Length: > 0 } token)
        {
            return AuthenticateResult.NoResult();
        }

        var ticket = await _sessions.RetrieveAsync(token, Context.RequestAborted).ConfigureAwait(false);
        return ticket is null
            ? AuthenticateResult.Fail("The bearer token is unknown, signed out or expired.")
            : AuthenticateResult.Success(new AuthenticationTicket(ticket.Principal, ticket.Properties, Scheme.Name));
    }

    protected override async Task HandleSignOutAsync(AuthenticationProperties? properties)
    {
        if (TokenOf(Request) is { Length: > 0 } token)
        {
            await _sessions.RemoveAsync(token, Context.RequestAborted).ConfigureAwait(false);
        }
    }
}
