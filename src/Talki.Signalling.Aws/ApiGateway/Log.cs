using System.Net;
using Microsoft.Extensions.Logging;

namespace Talki.Signalling.Aws.ApiGateway;

/// <summary>Log messages of the API Gateway <c>@connections</c> client (event ids 4001-4099).</summary>
internal static partial class Log
{
    [LoggerMessage(4001, LogLevel.Debug, "@connections {Operation}: the connection is gone (410).", EventName = "ApiGatewayConnectionGone")]
    public static partial void ConnectionGone(ILogger logger, string operation);

    [LoggerMessage(4002, LogLevel.Warning, "@connections push refused: the payload of {Bytes} bytes is too large (413).", EventName = "ApiGatewayPayloadTooLarge")]
    public static partial void PayloadTooLarge(ILogger logger, int bytes);

    [LoggerMessage(4003, LogLevel.Warning, "@connections {Operation} still failing with {Status} ({ErrorType}) after the retries; the connection is treated as gone.", EventName = "ApiGatewayRetriesExhausted")]
    public static partial void RetriesExhausted(ILogger logger, string operation, HttpStatusCode status, string? errorType);

    [LoggerMessage(4004, LogLevel.Warning, "@connections {Operation} did not complete within the time limits; the connection is treated as gone.", EventName = "ApiGatewayTimedOut")]
    public static partial void TimedOut(ILogger logger, string operation);

    [LoggerMessage(4005, LogLevel.Warning, "@connections {Operation} could not reach API Gateway after the retries; the connection is treated as gone.", EventName = "ApiGatewayUnreachable")]
    public static partial void Unreachable(ILogger logger, string operation, Exception exception);

    [LoggerMessage(4006, LogLevel.Error, "@connections {Operation} failed with {Status} ({ErrorType}, request {RequestId}); a 403 means the endpoint, stage, region, credentials or the execute-api:ManageConnections permission are wrong.", EventName = "ApiGatewayRequestFailed")]
    public static partial void Refused(ILogger logger, string operation, HttpStatusCode status, string? errorType, string? requestId);
}
