using Microsoft.Extensions.Logging;

namespace Talki.Signalling.Server.AspNetCore;

/// <summary>Log messages of the HTTP API, the sessions, Google sign-in and the self-hosted gateway.</summary>
internal static partial class HostingLog
{
    [LoggerMessage(2001, LogLevel.Debug, "Gateway connection opened.", EventName = "GatewayConnectionOpened")]
    public static partial void GatewayConnectionOpened(ILogger logger);

    [LoggerMessage(2002, LogLevel.Debug, "Gateway connection closed: {Reason}.", EventName = "GatewayConnectionClosed")]
    public static partial void GatewayConnectionClosed(ILogger logger, string reason);

    [LoggerMessage(2003, LogLevel.Warning, "Gateway connection closed: its outbound queue is full (slow consumer).", EventName = "SlowConsumer")]
    public static partial void SlowConsumer(ILogger logger);

    [LoggerMessage(2004, LogLevel.Information, "Gateway refused an oversized message of at least {Bytes} bytes.", EventName = "MessageTooLarge")]
    public static partial void MessageTooLarge(ILogger logger, long bytes);

    [LoggerMessage(2005, LogLevel.Error, "Unexpected failure in the WebSocket gateway; correlation id {CorrelationId}.", EventName = "GatewayFailure")]
    public static partial void GatewayFailure(ILogger logger, Exception exception, string correlationId);

    [LoggerMessage(2006, LogLevel.Debug, "WebSocket handshake answered at Kestrel's connection level.", EventName = "ConnectionLevelUpgrade")]
    public static partial void ConnectionLevelUpgrade(ILogger logger);

    [LoggerMessage(2007, LogLevel.Debug, "A WebSocket handshake was not complete within the request headers timeout; the connection was closed.", EventName = "ConnectionLevelHandshakeTimedOut")]
    public static partial void ConnectionLevelHandshakeTimedOut(ILogger logger);

    [LoggerMessage(3001, LogLevel.Error, "Unexpected failure in the HTTP API; correlation id {CorrelationId}.", EventName = "HttpFailure")]
    public static partial void HttpFailure(ILogger logger, Exception exception, string correlationId);

    [LoggerMessage(3002, LogLevel.Information, "Session started for a {Kind} user.", EventName = "SessionStarted")]
    public static partial void SessionStarted(ILogger logger, string kind);

    [LoggerMessage(3003, LogLevel.Warning, "A sign-in was refused: the in-process session table is full of live sessions; answered 503.", EventName = "SessionStoreFull")]
    public static partial void SessionStoreFull(ILogger logger);

    [LoggerMessage(3010, LogLevel.Information, "Google sign-in refused: {Code}.", EventName = "GoogleSignInRefused")]
    public static partial void GoogleSignInRefused(ILogger logger, string code);

    [LoggerMessage(3011, LogLevel.Debug, "Fetched {Count} Google signing key(s); they are cached for {Lifetime}.", EventName = "GoogleKeysFetched")]
    public static partial void GoogleKeysFetched(ILogger logger, int count, TimeSpan lifetime);

    [LoggerMessage(3012, LogLevel.Warning, "Google's signing keys could not be fetched from {KeysUrl}.", EventName = "GoogleKeysUnavailable")]
    public static partial void GoogleKeysUnavailable(ILogger logger, Exception exception, Uri keysUrl);

    [LoggerMessage(3013, LogLevel.Debug, "A token names the unknown signing key {KeyId}; the keys were fetched less than a minute ago, so they are not fetched again.", EventName = "GoogleKeyUnknownNotRefetched")]
    public static partial void GoogleKeyUnknownNotRefetched(ILogger logger, string keyId);

    [LoggerMessage(3020, LogLevel.Warning, "The room store is unavailable (throttled or failing after its retries); answered 503.", EventName = "HttpStoreUnavailable")]
    public static partial void StoreUnavailable(ILogger logger, Exception exception);
}
