using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.DependencyInjection;
using Talki.Signalling.Http;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Server.AspNetCore;

/// <summary>
/// Maps error codes to HTTP statuses and writes them as RFC 9457 problem details through ASP.NET Core's
/// <see cref="IProblemDetailsService"/> (so <c>AddProblemDetails(o => o.CustomizeProblemDetails = …)</c> applies), with
/// the stable code in the <c>code</c> extension; the body is <see cref="ErrorResponse"/> on the client side.
/// </summary>
internal static class HttpErrors
{
    public static int StatusOf(SignallingErrorCode code) => code switch
    {
        SignallingErrorCode.Unauthenticated or SignallingErrorCode.TicketInvalid or SignallingErrorCode.TicketExpired => StatusCodes.Status401Unauthorized,
        SignallingErrorCode.Denied or SignallingErrorCode.NotAdmin or SignallingErrorCode.NotAdmitted => StatusCodes.Status403Forbidden,
        SignallingErrorCode.RoomNotFound or SignallingErrorCode.MemberNotFound => StatusCodes.Status404NotFound,
        SignallingErrorCode.RoomSealed => StatusCodes.Status410Gone,
        SignallingErrorCode.MessageTooLarge => StatusCodes.Status413PayloadTooLarge,
        SignallingErrorCode.RateLimited => StatusCodes.Status429TooManyRequests,
        SignallingErrorCode.Internal => StatusCodes.Status500InternalServerError,
        _ => StatusCodes.Status400BadRequest,
    };

    /// <summary>The detail of a 503 <c>service_unavailable</c>: the room store is throttled or failing for now.</summary>
    public const string StoreUnavailableMessage = "The server is busy; retry in a moment.";

    /// <summary>503 <c>service_unavailable</c> with <c>Retry-After: 1</c>: the room store is throttled or failing for now.</summary>
    public static Task WriteStoreUnavailableAsync(HttpContext context)
    {
        context.Response.Headers.RetryAfter = "1";
        return WriteAsync(context, StatusCodes.Status503ServiceUnavailable, SignallingErrorCode.ServiceUnavailable, StoreUnavailableMessage);
    }

    /// <summary>The problem document without <see cref="IProblemDetailsService"/>: the status's phrase as title, the stable code.</summary>
    public static ErrorResponse Document(int status, SignallingErrorCode code, string message, string? reference = null)
        => new() { Status = status, Title = ReasonPhrases.GetReasonPhrase(status), Detail = message, Code = code, Reference = reference };

    public static Task WriteAsync(HttpContext context, SignallingError error)
        => WriteAsync(context, StatusOf(error.Code), error.Code, error.Message);

    public static async Task WriteAsync(HttpContext context, int status, SignallingErrorCode code, string message, string? reference = null)
    {
        context.Response.StatusCode = status;
        context.Response.Headers.CacheControl = "no-store";
        var problem = new ProblemDetails { Status = status, Title = ReasonPhrases.GetReasonPhrase(status), Detail = message };
        problem.Extensions["code"] = code.ToWireName();
        if (reference is not null)
        {
            problem.Extensions["reference"] = reference;
        }

        if (context.RequestServices?.GetService<IProblemDetailsService>() is { } problems
            && await problems.TryWriteAsync(new ProblemDetailsContext { HttpContext = context, ProblemDetails = problem }).ConfigureAwait(false))
        {
            return;
        }

        // No problem-details writer accepted the request (for example an Accept header without JSON): the same document.
        context.Response.ContentType = "application/problem+json";
        await context.Response.WriteAsJsonAsync(
            Document(status, code, message, reference),
            TalkiJsonContext.Default.ErrorResponse,
            "application/problem+json").ConfigureAwait(false);
    }
}
