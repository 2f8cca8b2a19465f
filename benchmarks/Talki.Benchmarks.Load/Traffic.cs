using System.Diagnostics;
using Talki.Signalling.Soak;

namespace Talki.Benchmarks.Load;

/// <summary>What one traffic run measured. Valid when every message sent arrived, once, and no socket was closed.</summary>
internal sealed record RunResult
{
    public required int Pairs { get; init; }

    /// <summary>Gets the open-loop rate (messages per second, all pairs); 0 for a saturation (closed-loop) run.</summary>
    public int Rate { get; init; }

    public long Sent { get; init; }

    public long Received { get; init; }

    public long Lost => Sent - Received;

    public long OutOfOrder { get; init; }

    /// <summary>Gets the messages received per second within the measured window.</summary>
    public double Delivered { get; init; }

    /// <summary>Gets min, p50, p99, max one-way latency in ms of the messages stamped within the window.</summary>
    public double[] LatencyMs { get; init; } = [0, 0, 0, 0];

    public TimeSpan Window { get; init; }

    /// <summary>Gets the server's CPU time within the window.</summary>
    public TimeSpan Cpu { get; init; }

    public double CpuMicrosecondsPerMessage { get; init; }

    /// <summary>
    /// Gets the part of <see cref="Cpu"/> the .NET server's background JIT compilation used within the window (its tiered
    /// compilation threads, polled every 200 ms; zero for a server that is not .NET).
    /// </summary>
    public TimeSpan CompilerCpu { get; init; }

    /// <summary>Gets the server's CPU time over the window, in % of one core.</summary>
    public double CpuPercent => Window > TimeSpan.Zero ? 100 * Cpu / Window : 0;

    /// <summary>Gets this tool's own CPU time over the window, in % of one core (the clients share the machine with the server).</summary>
    public double ClientCpuPercent { get; init; }

    /// <summary>Gets the garbage collections this tool's process made within the window (all generations).</summary>
    public int ClientCollections { get; init; }

    /// <summary>Gets how long this tool's process was paused by its own garbage collector within the window (every socket's loop stops, so the messages in flight look late).</summary>
    public TimeSpan ClientGcPause { get; init; }

    /// <summary>Gets the bytes this tool's process allocated within the window (what its collections are made of).</summary>
    public long ClientAllocatedBytes { get; init; }

    /// <summary>Gets how busy the whole machine was over the window (<c>/proc/stat</c>), in % of all cores.</summary>
    public double MachineBusyPercent { get; init; }

    public int SocketsClosed { get; init; }

    public long ErrorFrames { get; init; }

    /// <summary>Gets the first error frame a link received in the run, as the server sent it (<see langword="null"/> when none came).</summary>
    public string? FirstErrorFrame { get; init; }

    public long SendFailures { get; init; }

    /// <summary>Gets the relayed messages whose bytes the tool read differently from the parser (<see cref="Link.RawMismatches"/>).</summary>
    public long RawMismatches { get; init; }

    /// <summary>Gets how late the open-loop schedule was at worst (the client's own lag, counted in the latency).</summary>
    public double MaxScheduleLagMs { get; init; }

    public string? Failure { get; init; }

    public bool Valid => Failure is null && Lost == 0 && OutOfOrder == 0 && SocketsClosed == 0 && SendFailures == 0 && RawMismatches == 0;

    public static RunResult Failed(int pairs, int rate, Exception e) => new() { Pairs = pairs, Rate = rate, Failure = $"{e.GetType().Name}: {e.Message}" };
}

/// <summary>
/// The runs and what they count. The window starts after the warm-up: the server's CPU time is read at its start and end,
/// messages received inside it are the throughput, and messages <i>stamped</i> inside it give the latency (received
/// during the drain too, so a stall at the end of the window still counts).
/// </summary>
internal sealed class TrafficRun
{
    private readonly bool _closedLoop;
    private long _windowStart = long.MaxValue;
    private long _windowEnd = long.MaxValue;
    private long _deliveredInWindow;
    private int _running = 1;

    /// <summary>The open-loop messages the schedule sent more than 1 ms after they were due: (due, lag) in Stopwatch ticks.</summary>
    private readonly List<(long Due, long Lag)> _lateSends = [];

    /// <summary>Whether each message's time stamp is kept beside its latency (<see cref="Link.Stamps"/>), for a trace.</summary>
    private readonly bool _keepStamps;

    private TrafficRun(bool closedLoop, bool keepStamps = false)
    {
        _closedLoop = closedLoop;
        _keepStamps = keepStamps;
    }

    /// <summary>
    /// Saturation: every link starts <paramref name="window"/> messages and each message received is answered by a new
    /// one to its sender, so 2 × window messages per pair are always in flight and the server is the bottleneck.
    /// </summary>
    public static Task<RunResult> SaturateAsync(ServerProcess server, IReadOnlyList<Link> links, int window, LoadOptions options)
    {
        var run = new TrafficRun(closedLoop: true);
        return run.RunAsync(server, links, 0, options, start =>
        {
            foreach (var link in links)
            {
                for (var i = 0; i < window; i++)
                {
                    link.Send(start);
                }
            }

            return Task.FromResult(0.0);
        });
    }

    /// <summary>
    /// Open loop: message k (of all links, round robin) is due at start + k / <paramref name="rate"/> whatever the server
    /// does. It counts from its due time when it goes out late (the client's or the server's stall shows as latency: no
    /// coordinated omission) and from its send time when it goes out early (the schedule is served in 1 ms steps).
    /// </summary>
    public static Task<RunResult> OpenLoopAsync(ServerProcess server, IReadOnlyList<Link> links, int rate, LoadOptions options, string? trace = null)
    {
        var run = new TrafficRun(closedLoop: false, keepStamps: trace is not null);
        return run.RunAsync(server, links, rate, options, trace: trace, start: start =>
        {
            var end = start + (long)((options.Warmup + options.Duration).TotalSeconds * Stopwatch.Frequency);
            var scheduler = new TaskCompletionSource<double>(TaskCreationOptions.RunContinuationsAsynchronously);
            var thread = new Thread(() => scheduler.SetResult(Schedule(links, rate, start, end, run._lateSends))) { IsBackground = true, Name = "open-loop schedule", Priority = ThreadPriority.AboveNormal };
            thread.Start();
            return scheduler.Task;
        });
    }

    public void OnReceived(Link link, long stamp, long receivedAt)
    {
        var start = Volatile.Read(ref _windowStart);
        var end = Volatile.Read(ref _windowEnd);
        if (receivedAt >= start && receivedAt < end)
        {
            Interlocked.Increment(ref _deliveredInWindow);
        }

        if (stamp >= start && stamp < end)
        {
            link.Latencies.Add(receivedAt - stamp);
            if (_keepStamps)
            {
                link.Stamps.Add(stamp);
            }
        }

        if (_closedLoop && Volatile.Read(ref _running) == 1)
        {
            // The answer goes out from this receive loop when the socket is free, as a page's one thread would send it.
            link.Send(Stopwatch.GetTimestamp(), inline: true);
        }
    }

    private static TimeSpan ClientCpu()
    {
        using var self = Process.GetCurrentProcess();
        return self.TotalProcessorTime;
    }

    /// <summary>This process's garbage collections so far (a gen2 collection counts once, not in gen0 and gen1 as well).</summary>
    private static int Collections() => GC.CollectionCount(0);

    /// <summary>The busy and total jiffies of all cores, from the first line of <c>/proc/stat</c> (idle and iowait are not busy).</summary>
    private static (long Busy, long Total) MachineTicks()
    {
        var fields = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1).Take(8)
            .Select(f => long.Parse(f, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        var total = fields.Sum();
        return (total - fields[3] - fields[4], total);
    }

    /// <summary>Serves the schedule on a dedicated thread; returns the largest lag behind it, in ms.</summary>
    private static double Schedule(IReadOnlyList<Link> links, int rate, long start, long end, List<(long Due, long Lag)> lateSends)
    {
        var ticksPerMessage = (double)Stopwatch.Frequency / rate;
        var step = Stopwatch.Frequency / 1000;
        long k = 0;
        long maxLag = 0;
        while (true)
        {
            var now = Stopwatch.GetTimestamp();
            if (now >= end)
            {
                return maxLag * 1000.0 / Stopwatch.Frequency;
            }

            for (var due = start + (long)(k * ticksPerMessage); due < end && due <= now + step; due = start + (long)(k * ticksPerMessage))
            {
                maxLag = Math.Max(maxLag, now - due);
                if (now - due > step)
                {
                    lateSends.Add((due, now - due));
                }
                links[(int)(k % links.Count)].Send(Math.Min(due, now));
                k++;
            }

            Thread.Sleep(1);
        }
    }

    /// <summary>
    /// Writes every message of the window, in order of its time stamp: ms from the window's start, latency in ms, link, and
    /// how late the schedule sent it in ms (the tool's own share of its latency: a stall of the tool's process, its
    /// collector or the machine delays the sending thread).
    /// </summary>
    private static void WriteTrace(string path, IReadOnlyList<Link> links, long windowStart, List<(long Due, long Lag)> lateSends)
    {
        var sentLate = new Dictionary<long, long>();
        foreach (var (due, lag) in lateSends)
        {
            sentLate[due] = lag;
        }

        var rows = new List<(long Stamp, long Latency, int Link)>();
        for (var i = 0; i < links.Count; i++)
        {
            for (var j = 0; j < links[i].Latencies.Count; j++)
            {
                rows.Add((links[i].Stamps[j], links[i].Latencies[j], i));
            }
        }

        rows.Sort();
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        using var writer = new StreamWriter(path);
        writer.WriteLine("stamp_ms,latency_ms,link,sent_late_ms");
        var ms = 1000.0 / Stopwatch.Frequency;
        foreach (var (stamp, latency, link) in rows)
        {
            writer.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{(stamp - windowStart) * ms:F3},{latency * ms:F3},{link},{sentLate.GetValueOrDefault(stamp) * ms:F3}"));
        }
    }

    private async Task<RunResult> RunAsync(ServerProcess server, IReadOnlyList<Link> links, int rate, LoadOptions options, Func<long, Task<double>> start, string? trace = null)
    {
        var sentBefore = links.Sum(l => l.Sent);
        var receivedBefore = links.Sum(l => l.Received);
        var errorsBefore = links.Sum(l => (long)l.ErrorFrames);
        var outOfOrderBefore = links.Sum(l => l.OutOfOrder);
        var mismatchesBefore = links.Sum(l => l.RawMismatches);
        foreach (var link in links)
        {
            link.Latencies.Clear();
            link.Stamps.Clear();
            link.ClearFirstError();
            link.Run = this;
        }

        var begin = Stopwatch.GetTimestamp();
        var sending = start(begin);
        await Task.Delay(options.Warmup);
        var cpuStart = server.CpuTime;
        var clientStart = ClientCpu();
        var collectionsStart = Collections();
        var pauseStart = GC.GetTotalPauseDuration();
        var allocatedStart = GC.GetTotalAllocatedBytes();
        var machineStart = MachineTicks();
        var compiler = new CompilerWatch(server);
        var windowStart = Stopwatch.GetTimestamp();
        Volatile.Write(ref _windowStart, windowStart);
        while (Stopwatch.GetElapsedTime(windowStart) < options.Duration)
        {
            var left = options.Duration - Stopwatch.GetElapsedTime(windowStart);
            await Task.Delay(left < TimeSpan.FromMilliseconds(200) ? left : TimeSpan.FromMilliseconds(200));
            compiler.Poll();
        }

        var windowEnd = Stopwatch.GetTimestamp();
        Volatile.Write(ref _windowEnd, windowEnd);
        var cpu = server.CpuTime - cpuStart;
        var client = ClientCpu() - clientStart;
        var collections = Collections() - collectionsStart;
        var pause = GC.GetTotalPauseDuration() - pauseStart;
        var allocated = GC.GetTotalAllocatedBytes() - allocatedStart;
        var machineEnd = MachineTicks();
        var deliveredInWindow = Interlocked.Read(ref _deliveredInWindow);
        Volatile.Write(ref _running, 0);
        var maxLagMs = await sending;

        // The drain: everything sent has until the deadline to arrive (in a closed loop, a receive loop that saw the run
        // still going as it stopped may send one more message: the sums are read again until they meet).
        await SoakScenario.WaitUntilAsync(() => links.Sum(l => l.Received) - receivedBefore >= links.Sum(l => l.Sent) - sentBefore, DateTimeOffset.UtcNow + options.Drain);
        var sent = links.Sum(l => l.Sent) - sentBefore;
        foreach (var link in links)
        {
            link.Run = null;
        }

        var window = Stopwatch.GetElapsedTime(windowStart, windowEnd);
        var latencies = links.SelectMany(l => l.Latencies).Select(t => t * 1000.0 / Stopwatch.Frequency).ToList();
        if (trace is not null)
        {
            WriteTrace(trace, links, windowStart, _lateSends);
        }

        return new RunResult
        {
            Pairs = links.Count / 2,
            Rate = rate,
            Sent = sent,
            Received = links.Sum(l => l.Received) - receivedBefore,
            OutOfOrder = links.Sum(l => l.OutOfOrder) - outOfOrderBefore,
            Delivered = deliveredInWindow / window.TotalSeconds,
            LatencyMs = Stats.Summary(latencies),
            Window = window,
            Cpu = cpu,
            CpuMicrosecondsPerMessage = deliveredInWindow == 0 ? 0 : cpu.TotalMicroseconds / deliveredInWindow,
            CompilerCpu = compiler.Total,
            ClientCpuPercent = 100 * client / window,
            ClientCollections = collections,
            ClientGcPause = pause,
            ClientAllocatedBytes = allocated,
            MachineBusyPercent = machineEnd.Total == machineStart.Total ? 0 : 100.0 * (machineEnd.Busy - machineStart.Busy) / (machineEnd.Total - machineStart.Total),
            SocketsClosed = links.Count(l => l.Socket.Closed.IsCompleted),
            ErrorFrames = links.Sum(l => (long)l.ErrorFrames) - errorsBefore,
            FirstErrorFrame = links.Select(l => l.FirstError).FirstOrDefault(e => e is not null),
            SendFailures = links.Sum(l => l.Socket.SendFailures),
            RawMismatches = links.Sum(l => l.RawMismatches) - mismatchesBefore,
            MaxScheduleLagMs = maxLagMs,
        };
    }
}
