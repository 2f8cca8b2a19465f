using Microsoft.Extensions.Logging;

namespace Talki.Signalling.Redis.Internal;

/// <summary>The Redis package's log messages, with stable event ids (6xxx).</summary>
internal static partial class RedisLog
{
    [LoggerMessage(6001, LogLevel.Information, "Backplane instance {Instance} listens on its Redis channel.", EventName = "BackplaneSubscribed")]
    public static partial void BackplaneSubscribed(ILogger logger, string instance);

    [LoggerMessage(6002, LogLevel.Warning, "The backplane could not subscribe to its Redis channel; it retries on every refresh.", EventName = "BackplaneSubscribeFailed")]
    public static partial void BackplaneSubscribeFailed(ILogger logger, Exception exception);

    [LoggerMessage(6003, LogLevel.Warning, "A push through the backplane could not be completed (Redis unavailable); it is undeliverable, the member is kept.", EventName = "BackplanePushFailed")]
    public static partial void BackplanePushFailed(ILogger logger, Exception exception);

    [LoggerMessage(6004, LogLevel.Warning, "Instance {Instance} holds the socket but did not answer a push; undeliverable until its registration expires.", EventName = "BackplaneNoAnswer")]
    public static partial void BackplaneNoAnswer(ILogger logger, string instance);

    [LoggerMessage(6005, LogLevel.Warning, "The backplane could not refresh its socket registrations; it retries.", EventName = "BackplaneRefreshFailed")]
    public static partial void BackplaneRefreshFailed(ILogger logger, Exception exception);

    [LoggerMessage(6006, LogLevel.Warning, "The backplane could not forward a close or remove a registration (Redis unavailable); the registration expires on its own.", EventName = "BackplaneBestEffortFailed")]
    public static partial void BackplaneBestEffortFailed(ILogger logger, Exception exception);

    [LoggerMessage(6007, LogLevel.Warning, "The backplane received a malformed message on its channel; it was ignored.", EventName = "BackplaneMalformedMessage")]
    public static partial void BackplaneMalformedMessage(ILogger logger);

    [LoggerMessage(6008, LogLevel.Error, "The backplane failed to handle a message.", EventName = "BackplaneHandlerFailed")]
    public static partial void BackplaneHandlerFailed(ILogger logger, Exception exception);

    [LoggerMessage(6009, LogLevel.Information, "Re-registered {Count} sockets that had vanished from Redis (restarted or flushed).", EventName = "BackplaneReRegistered")]
    public static partial void BackplaneReRegistered(ILogger logger, int count);
}
