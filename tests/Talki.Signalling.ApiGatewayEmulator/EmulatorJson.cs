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
    [LoggerMessage(1, LogLevel.Warning, "The authorizer answered {Status}; the upgrade is refused with 500.")]
    public static partial void AuthorizerFailed(ILogger logger, int status);

    [LoggerMessage(2, LogLevel.Warning, "The authorizer could not be called; the upgrade is refused with 500.")]
    public static partial void AuthorizerUnreachable(ILogger logger, Exception exception);

    [LoggerMessage(3, LogLevel.Information, "Integration {Path} answered {Status} (not returned to the client).")]
    public static partial void IntegrationStatus(ILogger logger, string path, int status);

    [LoggerMessage(4, LogLevel.Warning, "Integration {Path} failed.")]
    public static partial void IntegrationFailed(ILogger logger, string path, Exception exception);

    [LoggerMessage(5, LogLevel.Information, "@connections {Verb} refused (403): {Reason}.")]
    public static partial void SignatureRejected(ILogger logger, string verb, string reason);
}
