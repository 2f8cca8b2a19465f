using System.Diagnostics;

namespace Talki.Signalling.Server.IntegrationTests;

/// <summary>
/// Tells what stalled a process while a real-clock test ran: every 20 ms a dedicated thread notes how late its own
/// sleep ended (the OS or a GC suspension held every thread) and how long a work item waited for a thread-pool thread
/// (starvation), beside the GC's pause time and collections over the same span.
/// </summary>
internal sealed class RuntimeStallProbe : IDisposable
{
    private static readonly TimeSpan Period = TimeSpan.FromMilliseconds(20);
    private readonly Thread _thread;
    private readonly TimeSpan _pausedBefore = GC.GetTotalPauseDuration();
    private readonly int _gen2Before = GC.CollectionCount(2);
    private readonly int _gen0Before = GC.CollectionCount(0);
    private volatile bool _stopped;
    private long _worstSleepOvershootTicks;
    private long _worstPoolWaitTicks;
    private long _queuedAt;

    public RuntimeStallProbe()
    {
        _thread = new Thread(Run) { IsBackground = true, Name = "stall probe" };
        _thread.Start();
    }

    /// <summary>Gets a one-line summary of what was seen since the probe started.</summary>
    public string Summary =>
        $"process: worst sleep overshoot {Stopwatch.GetElapsedTime(0, Volatile.Read(ref _worstSleepOvershootTicks)).TotalMilliseconds:F0} ms, " +
        $"worst thread-pool queue wait {Stopwatch.GetElapsedTime(0, Volatile.Read(ref _worstPoolWaitTicks)).TotalMilliseconds:F0} ms, " +
        $"GC paused {(GC.GetTotalPauseDuration() - _pausedBefore).TotalMilliseconds:F0} ms in {GC.CollectionCount(0) - _gen0Before} collections " +
        $"({GC.CollectionCount(2) - _gen2Before} of gen 2), {ThreadPool.ThreadCount} pool threads, {ThreadPool.PendingWorkItemCount} work items pending";

    public void Dispose()
    {
        _stopped = true;
        _thread.Join();
    }

    private void Run()
    {
        while (!_stopped)
        {
            var before = Stopwatch.GetTimestamp();
            Thread.Sleep(Period);
            var overshoot = Stopwatch.GetTimestamp() - before - (long)(Period.TotalSeconds * Stopwatch.Frequency);
            if (overshoot > Volatile.Read(ref _worstSleepOvershootTicks))
            {
                Volatile.Write(ref _worstSleepOvershootTicks, overshoot); // this thread is its only writer
            }

            // One work item at a time: the next is queued once the last one ran, so each item is the only writer of the
            // worst wait while it runs, and a starved pool is not handed a pile of probes.
            var queued = Stopwatch.GetTimestamp();
            if (Interlocked.CompareExchange(ref _queuedAt, queued, 0) == 0)
            {
                ThreadPool.UnsafeQueueUserWorkItem(static probe => probe.OnDequeued(), this, preferLocal: false);
            }
        }
    }

    private void OnDequeued()
    {
        var waited = Stopwatch.GetTimestamp() - Volatile.Read(ref _queuedAt);
        if (waited > Volatile.Read(ref _worstPoolWaitTicks))
        {
            Volatile.Write(ref _worstPoolWaitTicks, waited);
        }

        Volatile.Write(ref _queuedAt, 0);
    }
}
