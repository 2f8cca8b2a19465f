namespace Talki.Signalling.Ports;

/// <summary>
/// Counts events per key in fixed windows, for the abuse limits (rooms created per user per hour, knocks per user per
/// minute, sign-ins per address per minute). The embedded default counts in this process; behind a load balancer,
/// register one that every instance shares (<c>AddRedis</c> does), so a user who reaches two instances meets the same
/// limit as on one.
/// </summary>
/// <remarks>
/// A window starts with the first event counted for its key and lasts <c>window</c> by the host's <see cref="TimeProvider"/>;
/// a refused event is not counted. When the backing store is unavailable the counter throws
/// <see cref="RoomStoreUnavailableException"/>, which the engine and the HTTP API answer with <c>service_unavailable</c>.
/// </remarks>
public interface IQuotaCounter
{
    /// <summary>Counts one event for <paramref name="key"/> unless it already has <paramref name="limit"/> in its current window.</summary>
    /// <param name="key">What is limited, scope included (for example <c>rooms:</c> and the user id).</param>
    /// <param name="limit">The most events per window.</param>
    /// <param name="window">The window's length.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <returns><see langword="true"/> when the event is within the limit (and was counted).</returns>
    /// <exception cref="RoomStoreUnavailableException">The shared counter's store is unavailable.</exception>
    ValueTask<bool> TryAcquireAsync(string key, int limit, TimeSpan window, CancellationToken cancellationToken = default);
}
