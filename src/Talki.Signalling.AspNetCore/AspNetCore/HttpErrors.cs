using Microsoft.AspNetCore.Http;
using Talki.Signalling.Http;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Server.AspNetCore;

/// <summary>Maps error codes to HTTP statuses and writes <see cref="ErrorResponse"/> bodies.</summary>
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

    public static Task WriteAsync(HttpContext context, SignallingError error)
        => WriteAsync(context, StatusOf(error.Code), error.Code, error.Message);

    public static async Task WriteAsync(HttpContext context, int status, SignallingErrorCode code, string message, string? reference = null)
    {
        context.Response.StatusCode = status;
        context.Response.Headers.CacheControl = "no-store";
        await context.Response.WriteAsJsonAsync(new ErrorResponse { Code = code, Message = message, Reference = reference }, TalkiJsonContext.Default.ErrorResponse).ConfigureAwait(false);
    }
}
