namespace Talki.Signalling.Server.Engine;

/// <summary>Spans in units of a clock's monotonic timestamps, for arithmetic on <see cref="TimeProvider.GetTimestamp"/>.</summary>
internal static class Timestamps
{
    /// <summary>
    /// <paramref name="span"/> in units of <paramref name="time"/>'s timestamps (<see cref="TimeProvider.TimestampFrequency"/>
    /// a second: ticks on the fake clock, nanoseconds on Linux's), rounded up, so that a window or timeout measured with it
    /// never ends early; capped at half the timestamp's range, so that a timestamp plus it cannot overflow (a span that long,
    /// about 146 years on a nanosecond clock, never ends, as <see cref="TimeSpan.MaxValue"/> means).
    /// </summary>
    public static long ToTimestampUnits(this TimeProvider time, TimeSpan span)
        => (long)Math.Min(Math.Ceiling(span.Ticks * ((double)time.TimestampFrequency / TimeSpan.TicksPerSecond)), long.MaxValue / 2);
}
