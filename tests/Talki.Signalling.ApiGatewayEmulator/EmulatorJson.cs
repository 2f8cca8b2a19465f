using System.Text.Json.Serialization;
using Microsoft.Extensions.Logging;

namespace Talki.Signalling.Emulator;

/// <summary>The GetConnection response (ISO 8601 timestamps, lower camelCase).</summary>
internal sealed class ConnectionInfo
{
    public required string ConnectedAt { get; init; }

    public required ConnectionIdentity Identity { get; init; }

    public required string LastActiveAt { get; init; }
}

/// <summary>The <c>identity</c> member of the GetConnection response.</summary>
internal sealed class ConnectionIdentity
{
    public required string SourceIp { get; init; }

    public string? UserAgent { get; init; }
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(ConnectionInfo))]
[JsonSerializable(typeof(Dictionary<string, string>))]
internal sealed partial class EmulatorJsonContext : JsonSerializerContext;

/// <summary>Log messages of the emulator.</summary>
internal static partial class Log
{
    [LoggerMessage(2, LogLevel.Warning, "The authorizer could not be called; the upgrade is refused with 500.")]
    public static partial void AuthorizerUnreachable(ILogger logger, Exception exception);

    [LoggerMessage(3, LogLevel.Information, "Integration {Path} answered {Status} (not returned to the client).")]
    public static partial void IntegrationStatus(ILogger logger, string path, int status);

    [LoggerMessage(4, LogLevel.Warning, "Integration {Path} failed.")]
    public static partial void IntegrationFailed(ILogger logger, string path, Exception exception);

    [LoggerMessage(5, LogLevel.Information, "@connections {Verb} refused (403): {Reason}.")]
    public static partial void SignatureRejected(ILogger logger, string verb, string reason);

    [LoggerMessage(6, LogLevel.Warning, "API Gateway may not invoke the authorizer function {Function} (no lambda:InvokeFunction permission for apigateway.amazonaws.com); the upgrade is refused with 500.")]
    public static partial void AuthorizerNotPermitted(ILogger logger, string function);

    [LoggerMessage(7, LogLevel.Warning, "The authorizer's result is invalid ({Reason}); the upgrade is refused with 500.")]
    public static partial void AuthorizerResultInvalid(ILogger logger, string reason);

    [LoggerMessage(8, LogLevel.Warning, "Function {Function} has no instance to invoke.")]
    public static partial void NoInstance(ILogger logger, string function);

    [LoggerMessage(9, LogLevel.Information, "Function {Function} answered {Status} on the pass-through path (the adapter discards it; only the body counts).")]
    public static partial void PassThroughStatus(ILogger logger, string function, int status);

    [LoggerMessage(10, LogLevel.Warning, "Access denied: {Message}.")]
    public static partial void AccessDenied(ILogger logger, string message);

    [LoggerMessage(11, LogLevel.Warning, "Function URL of {Function} refused (403): {Reason}.")]
    public static partial void FunctionUrlForbidden(ILogger logger, string function, string reason);

    [LoggerMessage(12, LogLevel.Warning, "Function {Function} instance {Instance} failed.")]
    public static partial void InstanceFailed(ILogger logger, string function, int instance, Exception exception);

    [LoggerMessage(13, LogLevel.Warning, "DynamoDB request refused: {Reason}.")]
    public static partial void DynamoDbRefused(ILogger logger, string reason);

    [LoggerMessage(14, LogLevel.Warning, "Function {Function} failed through the runtime API ({ErrorType}: {Message}); the upgrade is refused with 500.")]
    public static partial void RuntimeInvocationFailed(ILogger logger, string function, string errorType, string message);
}
