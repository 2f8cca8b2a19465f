using Microsoft.Extensions.Time.Testing;
using Talki.Signalling.Server.Engine;

namespace Talki.Signalling.Server.Tests.Engine;

/// <summary>
/// The in-process quota counter behind the knock, reconnect, room and sign-in limits: a fixed window per key, measured on
/// the clock's monotonic timestamps, so a wall clock that is stepped neither locks a key out nor lets it in early.
/// </summary>
public sealed class FixedWindowCounterTests
{
    private static readonly TimeSpan Minute = TimeSpan.FromMinutes(1);

    [Fact]
    public void AWindowTakesItsLimit_ThenRefuses_UntilItEnds_AndRefusalsAreNotCounted()
    {
        var time = new FakeTimeProvider();
        var counter = new FixedWindowCounter(time, Minute);

        Assert.True(counter.TryAcquire("k", 2));
        Assert.True(counter.TryAcquire("k", 2));
        Assert.False(counter.TryAcquire("k", 2));
        Assert.True(counter.TryAcquire("other", 2)); // keys count apart
        time.Advance(Minute - TimeSpan.FromTicks(1));
        Assert.False(counter.TryAcquire("k", 2)); // refused while the window lasts, however often it is asked
        time.Advance(TimeSpan.FromTicks(1));
        Assert.True(counter.TryAcquire("k", 2)); // a new window, with the whole limit
        Assert.True(counter.TryAcquire("k", 2));
        Assert.False(counter.TryAcquire("k", 2));
    }

    [Fact]
    public void WallClockSteppedBack_DoesNotLockAKeyOut_ItsWindowEndsOnTime()
    {
        // An NTP correction or a host resumed from a snapshot sets the wall clock back an hour just after a user used up a
        // quota: the window still ends a minute after it started. Measured on the wall clock it would end an hour late.
        var clock = new SteppedClock();
        var counter = new FixedWindowCounter(clock, Minute);
        Assert.True(counter.TryAcquire("knocks:u", 1));
        Assert.False(counter.TryAcquire("knocks:u", 1));

        clock.StepWallClock(-TimeSpan.FromHours(1));
        clock.Elapse(TimeSpan.FromSeconds(59));
        Assert.False(counter.TryAcquire("knocks:u", 1));
        clock.Elapse(TimeSpan.FromSeconds(1));
        Assert.True(counter.TryAcquire("knocks:u", 1));
    }

    [Fact]
    public void WallClockSteppedForward_DoesNotOpenAWindowEarly()
    {
        // The other way: the wall clock jumps an hour ahead a second after the quota was used up; the key still waits out
        // its minute. Measured on the wall clock every open window would end at once.
        var clock = new SteppedClock();
        var counter = new FixedWindowCounter(clock, Minute);
        Assert.True(counter.TryAcquire("rooms:u", 1));

        clock.Elapse(TimeSpan.FromSeconds(1));
        clock.StepWallClock(TimeSpan.FromHours(1));
        Assert.False(counter.TryAcquire("rooms:u", 1));
        clock.Elapse(TimeSpan.FromSeconds(59));
        Assert.True(counter.TryAcquire("rooms:u", 1));
    }

    [Fact]
    public void OnTheRealClock_AFullWindowOpensAgain_NeverEarly()
    {
        // The window's length is converted into units of the clock's timestamps: ticks (10 MHz) on the fake clock,
        // nanoseconds on Linux's. A conversion that assumed ticks passes the tests on the fake clock and ends a window 100
        // times too early here (the stepped clock above counts in nanoseconds too). Timestamps, not timers: however late this thread runs, the window cannot look early.
        var time = TimeProvider.System;
        var window = TimeSpan.FromMilliseconds(300);
        var counter = new FixedWindowCounter(time, window);
        var started = time.GetTimestamp(); // before the window's first event, so it started no sooner than this
        Assert.True(counter.TryAcquire("k", 2));
        Assert.True(counter.TryAcquire("k", 2));

        var refused = 0;
        while (!counter.TryAcquire("k", 2))
        {
            refused++;
            Assert.True(time.GetElapsedTime(started) < TimeSpan.FromSeconds(10), "the window never ended");
            Thread.Sleep(5);
        }

        var opened = time.GetElapsedTime(started);
        Assert.True(opened >= window, $"a new window after {opened.TotalMilliseconds:F1} ms: earlier than {window.TotalMilliseconds:F0} ms");
        Assert.True(refused > 0);
    }

    [Fact]
    public void ExpiredWindows_AreSwept_AndAKeySeenAgainStartsAFreshWindow()
    {
        var time = new FakeTimeProvider();
        var counter = new FixedWindowCounter(time, Minute);
        for (var i = 0; i < 100; i++)
        {
            Assert.True(counter.TryAcquire("user" + i, 1));
        }

        time.Advance(Minute);
        Assert.True(counter.TryAcquire("user0", 1)); // sweeps all hundred, then starts user0 again
        Assert.Equal(1, counter.Count);
        Assert.False(counter.TryAcquire("user0", 1));
    }

    [Fact]
    public void AWindowOfTimeSpanMaxValue_NeverEnds_AndDoesNotOverflow()
    {
        // The port takes any window; TimeSpan.MaxValue in nanoseconds is beyond a long, so the length is capped, not thrown.
        var clock = new SteppedClock();
        var counter = new FixedWindowCounter(clock, TimeSpan.MaxValue);
        Assert.True(counter.TryAcquire("k", 1));
        clock.Elapse(TimeSpan.FromDays(365 * 100));
        Assert.False(counter.TryAcquire("k", 1));
        Assert.True(counter.TryAcquire("other", 1));
    }

    /// <summary>A clock whose wall time can be stepped apart from its monotonic timestamps, as a host's can.</summary>
    private sealed class SteppedClock : TimeProvider
    {
        private DateTimeOffset _wall = new(2026, 12, 5, 12, 0, 0, TimeSpan.Zero);
        private long _timestamp = 1_000_000_000;

        public override long TimestampFrequency => 1_000_000_000; // nanoseconds, as on Linux

        public override DateTimeOffset GetUtcNow() => _wall;

        public override long GetTimestamp() => _timestamp;

        /// <summary>Lets time pass: both clocks move.</summary>
        public void Elapse(TimeSpan span)
        {
            _wall += span;
            _timestamp += span.Ticks * 100;
        }

        /// <summary>Steps the wall clock only (a correction): no time passes.</summary>
        public void StepWallClock(TimeSpan step) => _wall += step;
    }
}
