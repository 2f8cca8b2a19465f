using System.Collections.Concurrent;

namespace Talki.Signalling.Server.Engine;

/// <summary>
/// Counts events per key in fixed windows on the injected clock, for the abuse limits. It lives in this
/// process: behind a load balancer each instance counts on its own (the limits are per instance).
/// </summary>
/// <remarks>
/// The windows are measured on the clock's monotonic timestamps (<see cref="TimeProvider.GetTimestamp"/>), not its wall
/// clock: a counter of this process needs no shared time, and a wall clock that is stepped (an NTP correction, a host
/// resumed from a snapshot) would otherwise hold every open window shut until it caught up again when stepped back, or
/// reopen them all at once when stepped forward.
/// </remarks>
internal sealed class FixedWindowCounter
{
    private readonly ConcurrentDictionary<string, Window> _windows = new(StringComparer.Ordinal);
    private readonly TimeProvider _time;

    /// <summary>The window's length in the clock's timestamp units (<see cref="TimeProvider.TimestampFrequency"/> a second).</summary>
    private readonly long _length;
    private long _nextSweep;

    public FixedWindowCounter(TimeProvider time, TimeSpan length)
    {
        ArgumentNullException.ThrowIfNull(time);
        _time = time;
        _length = time.ToTimestampUnits(length); // capped: TimeSpan.MaxValue never ends, and the sweep's next time cannot overflow
        _nextSweep = time.GetTimestamp() + _length;
    }

    /// <summary>Gets how many keys hold a window (expired ones until the next sweep).</summary>
    internal int Count => _windows.Count;

    /// <summary>Counts one event for <paramref name="key"/> unless it already has <paramref name="limit"/> in the current window.</summary>
    /// <returns><see langword="true"/> when the event is within the limit (and was counted).</returns>
    public bool TryAcquire(string key, int limit)
    {
        var now = _time.GetTimestamp();
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

    private void SweepIfDue(long now)
    {
        var due = Interlocked.Read(ref _nextSweep);
        if (now < due || Interlocked.CompareExchange(ref _nextSweep, now + _length, due) != due)
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
    private readonly record struct Window(long Start, int Count);
}
