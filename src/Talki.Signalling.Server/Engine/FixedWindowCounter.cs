using System.Collections.Concurrent;

namespace Talki.Signalling.Server.Engine;

/// <summary>
/// Counts events per key in fixed windows on the injected clock, for the abuse limits. It lives in this
/// process: behind a load balancer each instance counts on its own (the limits are per instance).
/// </summary>
internal sealed class FixedWindowCounter
{
    private readonly ConcurrentDictionary<string, Window> _windows = new(StringComparer.Ordinal);
    private readonly TimeProvider _time;
    private readonly TimeSpan _length;
    private long _nextSweep;

    public FixedWindowCounter(TimeProvider time, TimeSpan length)
    {
        _time = time;
        _length = length;
    }

    /// <summary>Counts one event for <paramref name="key"/> unless it already has <paramref name="limit"/> in the current window.</summary>
    /// <returns><see langword="true"/> when the event is within the limit (and was counted).</returns>
    public bool TryAcquire(string key, int limit)
    {
        var now = _time.GetUtcNow();
        SweepIfDue(now);
        while (true)
        {
            var current = _windows.GetOrAdd(key, static (_, start) => new Window(start, 0), now);
            var window = now - current.Start >= _length ? new Window(now, 0) : current;
            if (window.Count >= limit)
            {
                return false;
            }

            if (_windows.TryUpdate(key, window with { Count = window.Count + 1 }, current))
            {
                return true;
            }
        }
    }

    private void SweepIfDue(DateTimeOffset now)
    {
        var due = Interlocked.Read(ref _nextSweep);
        if (now.UtcTicks < due || Interlocked.CompareExchange(ref _nextSweep, (now + _length).UtcTicks, due) != due)
        {
            return;
        }

        foreach (var (key, window) in _windows)
        {
            if (now - window.Start >= _length)
            {
                _windows.TryRemove(new KeyValuePair<string, Window>(key, window));
            }
        }
    }

    // A value, not an object: the dictionary's node holds it (a window per user and limit, so one per idle member; the
    // record class cost 40 bytes more each). Equality by value keeps TryUpdate's compare-and-swap.
    private readonly record struct Window(DateTimeOffset Start, int Count);
}
