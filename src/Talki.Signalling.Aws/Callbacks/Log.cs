using Microsoft.Extensions.Logging;

namespace Talki.Signalling.Aws.Callbacks;

/// <summary>Log messages of the API Gateway callbacks and the Lambda runtime authorizer (event ids 6001-6099; the runtime 6020-6029). Connection ids and tickets are never logged.</summary>
internal static partial class Log
{
    [LoggerMessage(6001, LogLevel.Debug, "$connect authorized: member {Member} of room {Room}, epoch {Epoch}.", EventName = "ApiGatewayConnectAllowed")]
    public static partial void ConnectAllowed(ILogger logger, MemberId member, RoomId room, long epoch);

    [LoggerMessage(6002, LogLevel.Information, "$connect denied: {Code}.", EventName = "ApiGatewayConnectDenied")]
    public static partial void ConnectDenied(ILogger logger, SignallingErrorCode code);

    [LoggerMessage(6003, LogLevel.Warning, "$connect denied: the authorizer event is malformed ({Reason}).", EventName = "ApiGatewayAuthorizerEventMalformed")]
    public static partial void AuthorizerEventMalformed(ILogger logger, string reason);

    [LoggerMessage(6004, LogLevel.Error, "$connect denied: the authorizer failed (reference {Reference}).", EventName = "ApiGatewayAuthorizerFailed")]
    public static partial void AuthorizerFailed(ILogger logger, Exception exception, string reference);

    [LoggerMessage(6005, LogLevel.Warning, "{Route} call refused: {Reason}.", EventName = "ApiGatewayCallbackUnauthenticated")]
    public static partial void CallbackUnauthenticated(ILogger logger, string route, string reason);

    [LoggerMessage(6006, LogLevel.Information, "$default call refused: the message is empty.", EventName = "ApiGatewayMessageEmpty")]
    public static partial void MessageEmpty(ILogger logger);

    [LoggerMessage(6007, LogLevel.Warning, "$default call refused: the message exceeds {Limit} bytes.", EventName = "ApiGatewayMessageTooLarge")]
    public static partial void MessageTooLarge(ILogger logger, int limit);

    [LoggerMessage(6008, LogLevel.Error, "{Route} call failed (reference {Reference}).", EventName = "ApiGatewayCallbackFailed")]
    public static partial void CallbackFailed(ILogger logger, Exception exception, string route, string reference);

    [LoggerMessage(6009, LogLevel.Warning, "$default call without the authorizer context headers: map context.authorizer.room, .member, .epoch and .sealsAt into the integration's request headers, or the connection can never bind.", EventName = "ApiGatewayNoAuthorizerContext")]
    public static partial void NoAuthorizerContext(ILogger logger);

    [LoggerMessage(6010, LogLevel.Warning, "$default call refused: the authorizer context headers are malformed.", EventName = "ApiGatewayAuthorizerContextMalformed")]
    public static partial void AuthorizerContextMalformed(ILogger logger);

    [LoggerMessage(6020, LogLevel.Critical, "The Lambda runtime API cannot be reached; the runtime stops.", EventName = "LambdaRuntimeUnreachable")]
    public static partial void RuntimeApiUnreachable(ILogger logger, Exception exception);

    [LoggerMessage(6021, LogLevel.Critical, "The Lambda runtime API answered {Status} for the next invocation; the runtime stops.", EventName = "LambdaRuntimeNextRefused")]
    public static partial void RuntimeNextRefused(ILogger logger, int status);

    [LoggerMessage(6022, LogLevel.Critical, "The Lambda runtime API sent an invocation without Lambda-Runtime-Aws-Request-Id; the runtime stops.", EventName = "LambdaRuntimeNoRequestId")]
    public static partial void RuntimeNoRequestId(ILogger logger);

    [LoggerMessage(6023, LogLevel.Error, "The Lambda runtime API refused the authorizer's answer with {Status}.", EventName = "LambdaRuntimeResponseRefused")]
    public static partial void RuntimeResponseRefused(ILogger logger, int status);

    [LoggerMessage(6024, LogLevel.Critical, "The Lambda runtime API answered {Status} to the authorizer's answer; the runtime stops.", EventName = "LambdaRuntimeResponseFailed")]
    public static partial void RuntimeResponseFailed(ILogger logger, int status);
}
