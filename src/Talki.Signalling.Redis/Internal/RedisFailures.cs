using Talki.Signalling.Ports;
using StackExchange.Redis;

namespace Talki.Signalling.Redis.Internal;

/// <summary>
/// Which Redis failures are "temporarily unavailable" (the engine answers <c>service_unavailable</c> and keeps every
/// connection): no connection, a timeout, or a server that is loading, busy with a script, failing over or read-only.
/// Anything else (a script error, a wrong type) is a bug and stays as it is.
/// </summary>
internal static class RedisFailures
{
    private static readonly string[] TransientServerErrors = ["LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "READONLY"];

    public static bool IsUnavailable(Exception exception) => exception switch
    {
        RedisConnectionException or RedisTimeoutException => true,
        RedisServerException server => TransientServerErrors.Any(code => server.Message.StartsWith(code, StringComparison.Ordinal)),
        _ => false,
    };

    public static RoomStoreUnavailableException Unavailable(Exception exception)
        => new($"Redis is unavailable ({exception.GetType().Name}).", exception);

    /// <summary>Runs a Redis operation, translating unavailability into <see cref="RoomStoreUnavailableException"/>.</summary>
    public static async ValueTask<T> Guard<T>(Task<T> operation)
    {
        try
        {
            return await operation.ConfigureAwait(false);
        }
        catch (Exception exception) when (IsUnavailable(exception))
        {
            throw Unavailable(exception);
        }
    }

    /// <inheritdoc cref="Guard{T}(Task{T})"/>
    public static async ValueTask Guard(Task operation)
    {
        try
        {
            await operation.ConfigureAwait(false);
        }
        catch (Exception exception) when (IsUnavailable(exception))
        {
            throw Unavailable(exception);
        }
    }
}
