using System.Collections.Concurrent;
using Talki.Signalling.Ports;

namespace Talki.Signalling.Server.Engine;

/// <summary>
/// The embedded <see cref="IQuotaCounter"/>: one <see cref="FixedWindowCounter"/> per window length, in this process
/// only (behind a load balancer each instance counts on its own; <c>AddRedis</c> replaces it with a shared one).
/// </summary>
internal sealed class InMemoryQuotaCounter(TimeProvider time) : IQuotaCounter
{
    private readonly ConcurrentDictionary<TimeSpan, FixedWindowCounter> _counters = new();

    public ValueTask<bool> TryAcquireAsync(string key, int limit, TimeSpan window, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        var counter = _counters.GetOrAdd(window, static (length, clock) => new FixedWindowCounter(clock, length), time);
        return new(counter.TryAcquire(key, limit));
    }
}
