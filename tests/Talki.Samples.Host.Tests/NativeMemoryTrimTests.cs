using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Talki.Signalling.Testing;

namespace Talki.Samples.Host.Tests;

/// <summary>
/// The sample host's native memory trim (<c>samples/Talki.Samples.Host/NativeMemoryTrim.cs</c>): when it is on, how often it
/// trims on the fake clock and on the real one, what it does where it cannot trim, and what glibc's <c>malloc_trim</c> really
/// gives back in this process.
/// </summary>
public sealed class NativeMemoryTrimTests
{
    private const ulong MiB = 1024 * 1024;

    private static readonly TimeSpan Period = TimeSpan.FromSeconds(2);

    [Theory]
    [InlineData(null, true, true, "native memory trim on (auto: glibc; read at most every 2 s after the runtime compiled or collected, trimmed when glibc holds 1 MiB more free memory than after the last trim)")]
    [InlineData("AUTO", true, true, "native memory trim on (auto: glibc; read at most every 2 s after the runtime compiled or collected, trimmed when glibc holds 1 MiB more free memory than after the last trim)")]
    [InlineData(null, false, true, "native memory trim off (auto: the C library has no malloc_trim and mallinfo2)")]
    [InlineData(null, true, false, "native memory trim off (auto: the host is not the process's entry point)")]
    [InlineData("false", true, true, "native memory trim off (Talki:Sample:TrimNativeMemory=false)")]
    [InlineData("true", true, false, "native memory trim on (Talki:Sample:TrimNativeMemory=true; read at most every 2 s after the runtime compiled or collected, trimmed when glibc holds 1 MiB more free memory than after the last trim)")]
    public void Add_RegistersTheTrimOnlyWhenTheSettingAndThePlatformAllow_AndSaysWhy(string? setting, bool heapAvailable, bool entryPoint, string says)
    {
        var services = new ServiceCollection();
        var line = NativeMemoryTrim.Add(services, Configuration(setting), heapAvailable ? new FakeHeap() : null, entryPoint);

        Assert.Equal(says, line);
        Assert.Equal(says.Contains(" on ", StringComparison.Ordinal), services.Any(d => d.ServiceType == typeof(IHostedService)));
    }

    [Fact]
    public void Add_TrueWhereTheCLibraryHasNoMallocTrim_RefusesToStart_AndSaysWhy()
    {
        var failure = Assert.Throws<InvalidOperationException>(() => NativeMemoryTrim.Add(new ServiceCollection(), Configuration("true"), null, entryPoint: true));
        Assert.StartsWith("Talki:Sample:TrimNativeMemory is true, but the C library of this process has no malloc_trim and mallinfo2 (glibc 2.33 and later has both", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Add_AValueItDoesNotKnow_RefusesToStart_AndSaysWhich()
    {
        var failure = Assert.Throws<InvalidOperationException>(() => NativeMemoryTrim.Add(new ServiceCollection(), Configuration("sometimes"), new FakeHeap(), entryPoint: true));
        Assert.Equal("Talki:Sample:TrimNativeMemory is 'sometimes'; it takes auto (the default), true or false.", failure.Message);
    }

    [Fact]
    public async Task Registered_ResolvesAsTheHostedService_AndTrimsOnTheHostsClock()
    {
        var time = new FakeTimeProvider();
        var heap = new FakeHeap { Free = 2 * MiB };
        var services = new ServiceCollection().AddLogging().AddSingleton<TimeProvider>(time);
        NativeMemoryTrim.Add(services, Configuration(null), heap, entryPoint: true);
        await using var provider = services.BuildServiceProvider();
        var hosted = Assert.Single(provider.GetServices<IHostedService>());
        Assert.Same(provider.GetRequiredService<NativeMemoryTrim>(), hosted);

        await hosted.StartAsync(CancellationToken.None);
        await AdvanceAsync(time, Period);
        await hosted.StopAsync(CancellationToken.None);

        Assert.Equal(1, heap.Trims);
    }

    [Fact]
    public async Task FirstTrim_ComesOnePeriodAfterStart_NotBefore()
    {
        var (trim, time, heap, _) = Create();
        heap.Free = 2 * MiB;
        await trim.StartAsync(CancellationToken.None);

        await AdvanceAsync(time, Period - TimeSpan.FromMilliseconds(1));
        Assert.Equal(0, heap.Trims);
        await AdvanceAsync(time, TimeSpan.FromMilliseconds(1));
        Assert.Equal(1, heap.Trims);
        Assert.Equal(1, trim.Trims);

        await trim.StopAsync(CancellationToken.None);
    }

    [Fact]
    public async Task QuietRuntime_IsReadOnceMoreAfterItsLastActivity_ThenNotAtAll_UntilItCompilesOrCollectsAgain()
    {
        // Free memory that grows at every read: every read trims, so the reads are the trims.
        var activity = new RuntimeActivity(100, 5);
        var (trim, time, heap, _) = Create(() => activity);
        heap.GrowthPerRead = MiB;
        await trim.StartAsync(CancellationToken.None);

        await AdvanceAsync(time, Period); // the start-up's compilations
        await AdvanceAsync(time, Period); // quiet: once more, for what the finalizer thread freed after the first read
        Assert.Equal((2, 2), (heap.Reads - 2, heap.Trims)); // each trim reads the figure after it too
        for (var i = 0; i < 10; i++)
        {
            await AdvanceAsync(time, Period);
        }

        Assert.Equal((2, 2), (heap.Reads - 2, heap.Trims));
        activity = activity with { Collections = 6 }; // a collection
        await AdvanceAsync(time, Period);
        Assert.Equal(3, heap.Trims);
        activity = activity with { CompiledMethods = 101 }; // a compilation
        await AdvanceAsync(time, Period);
        Assert.Equal(4, heap.Trims);
        await AdvanceAsync(time, Period); // quiet again: once more
        await AdvanceAsync(time, Period);
        await AdvanceAsync(time, Period);
        Assert.Equal(5, heap.Trims);

        await trim.StopAsync(CancellationToken.None);
    }

    [Fact]
    public async Task BusyRuntime_SteadyFreeMemory_IsReadEveryPeriod_ButNotTrimmed()
    {
        var (trim, time, heap, _) = Create();
        heap.Free = 4 * MiB;
        await trim.StartAsync(CancellationToken.None);
        for (var i = 0; i < 10; i++)
        {
            await AdvanceAsync(time, Period);
        }

        Assert.Equal(1, heap.Trims); // the first read's
        Assert.Equal(11, heap.Reads); // ten periods, and the figure after the trim

        await trim.StopAsync(CancellationToken.None);
    }

    [Fact]
    public async Task StartUpLeftLessThanTheThresholdFree_NoTrim_UntilItHoldsTheThreshold()
    {
        var (trim, time, heap, _) = Create();
        heap.Free = MiB - 1;
        await trim.StartAsync(CancellationToken.None);

        await AdvanceAsync(time, Period);
        await AdvanceAsync(time, Period);
        Assert.Equal(0, heap.Trims);
        heap.Free = MiB;
        await AdvanceAsync(time, Period);
        Assert.Equal(1, heap.Trims);

        await trim.StopAsync(CancellationToken.None);
    }

    [Fact]
    public async Task SteadyFreeMemory_IsNotTrimmedAgain_UntilItGrowsByTheThreshold()
    {
        // Under steady traffic or idle, glibc's free figure moves a little: no trim. A burst of frees (the JIT's scratch
        // memory, a thousand sockets closed) raises it: one trim.
        var (trim, time, heap, _) = Create();
        heap.Free = 8 * MiB;
        await trim.StartAsync(CancellationToken.None);

        await AdvanceAsync(time, Period);
        Assert.Equal(1, heap.Trims);
        for (var i = 0; i < 10; i++)
        {
            heap.Free = 8 * MiB + (ulong)(i % 3) * 300 * 1024; // wobbles by up to 600 KiB
            await AdvanceAsync(time, Period);
        }

        Assert.Equal(1, heap.Trims);
        heap.Free = 9 * MiB - 1;
        await AdvanceAsync(time, Period);
        Assert.Equal(1, heap.Trims);
        heap.Free = 9 * MiB;
        await AdvanceAsync(time, Period);
        Assert.Equal(2, heap.Trims);
        await AdvanceAsync(time, Period);
        await AdvanceAsync(time, Period);
        Assert.Equal(2, heap.Trims);

        await trim.StopAsync(CancellationToken.None);
    }

    [Fact]
    public async Task FreeMemoryReused_ThenFreedAgain_IsTrimmed_CountedFromTheLowestSeen()
    {
        // Chunks a trim emptied stay free in glibc's lists; reused, their pages are resident again, and freed again they are
        // resident free memory, though the free figure only returns to where it was after the trim.
        var (trim, time, heap, _) = Create();
        heap.Free = 6 * MiB;
        await trim.StartAsync(CancellationToken.None);
        await AdvanceAsync(time, Period);
        Assert.Equal(1, heap.Trims);

        heap.Free = 4 * MiB; // 2 MiB of it reused
        await AdvanceAsync(time, Period);
        heap.Free = 5 * MiB - 1;
        await AdvanceAsync(time, Period);
        Assert.Equal(1, heap.Trims);
        heap.Free = 5 * MiB; // 1 MiB above the lowest seen, below the figure after the trim
        await AdvanceAsync(time, Period);
        Assert.Equal(2, heap.Trims);

        await trim.StopAsync(CancellationToken.None);
    }

    [Fact]
    public async Task TheFigureAfterATrim_IsTheNextMark()
    {
        // A trim gives back the arenas' tops, which then no longer count as free: growth counts from the figure after it.
        var (trim, time, heap, log) = Create();
        heap.Free = 6 * MiB;
        heap.FreeAfterTrim = 2 * MiB;
        await trim.StartAsync(CancellationToken.None);
        await AdvanceAsync(time, Period);
        Assert.Equal(1, heap.Trims);

        heap.Free = 3 * MiB - 1;
        await AdvanceAsync(time, Period);
        Assert.Equal(1, heap.Trims);
        heap.Free = 3 * MiB;
        await AdvanceAsync(time, Period);
        Assert.Equal(2, heap.Trims);

        var trimmed = log.Entries.Where(e => e.Level == LogLevel.Debug).Select(e => e.Text).ToList();
        Assert.Equal(
            [$"glibc holds {6 * MiB} bytes free (read in 0.000 ms).", $"glibc holds {3 * MiB - 1} bytes free (read in 0.000 ms).", $"glibc holds {3 * MiB} bytes free (read in 0.000 ms)."],
            log.Entries.Where(e => e.Level == LogLevel.Trace).Select(e => e.Text));
        Assert.Equal(
            [
                $"Native memory trimmed: memory given back True, in 0.000 ms (glibc held {6 * MiB} bytes free before, {2 * MiB} after).",
                $"Native memory trimmed: memory given back True, in 0.000 ms (glibc held {3 * MiB} bytes free before, {2 * MiB} after).",
            ],
            trimmed);
        await trim.StopAsync(CancellationToken.None);
    }

    [Fact]
    public async Task FreeMemoryGrowingFast_IsTrimmedOncePerPeriod_NeverMoreOften()
    {
        var (trim, time, heap, _) = Create();
        heap.GrowthPerRead = MiB;
        await trim.StartAsync(CancellationToken.None);

        // Ticks of a quarter period: a trim only every fourth.
        for (var i = 0; i < 40; i++)
        {
            await AdvanceAsync(time, Period / 4);
        }

        Assert.Equal(10, heap.Trims);
        await trim.StopAsync(CancellationToken.None);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task AHeapThatCannotBeCalled_StopsTheTrim_WithAWarning_AndTheServiceEndsWithoutFaulting(bool readFails)
    {
        var (trim, time, heap, log) = Create();
        heap.Free = 2 * MiB;
        var failure = new EntryPointNotFoundException(readFails ? "mallinfo2" : "malloc_trim");
        if (readFails)
        {
            heap.ReadFailure = failure;
        }
        else
        {
            heap.TrimFailure = failure;
        }

        await trim.StartAsync(CancellationToken.None);

        await AdvanceAsync(time, Period);
        await AdvanceAsync(time, Period);
        var task = trim.ExecuteTask!;
        await task.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.True(task.IsCompletedSuccessfully);
        Assert.Equal(readFails ? 0 : 1, heap.Trims);
        Assert.Equal(0, trim.Trims);
        var warning = Assert.Single(log.Entries, e => e.Level == LogLevel.Warning);
        Assert.Equal("Native memory trim stopped: malloc_trim or mallinfo2 could not be called. " + failure, warning.Text);
        await trim.StopAsync(CancellationToken.None);
    }

    [Fact]
    public async Task OnTheRealClock_TrimsGrowingFreeMemoryAboutOncePerPeriod_NeverEarly()
    {
        // 100 ms on the system clock, free memory that grows by the threshold at every read: trims at least a period apart
        // (less 15 ms for the timer clock's coarseness), the first no sooner than a period after start, and not far fewer
        // than the periods.
        var period = TimeSpan.FromMilliseconds(100);
        var heap = new FakeHeap { GrowthPerRead = MiB };
        var trim = new NativeMemoryTrim(heap, Busy(), TimeProvider.System, period, NativeMemoryTrim.DefaultThreshold, NullLogger<NativeMemoryTrim>.Instance);
        var started = Stopwatch.GetTimestamp();
        await trim.StartAsync(CancellationToken.None);
        await Task.Delay(TimeSpan.FromMilliseconds(1050));
        await trim.StopAsync(CancellationToken.None);

        var at = heap.At.Select(t => Stopwatch.GetElapsedTime(started, t)).ToList();
        Assert.InRange(at.Count, 5, 11);
        Assert.True(at[0] >= period - TimeSpan.FromMilliseconds(15), $"first trim after {at[0].TotalMilliseconds:0} ms");
        for (var i = 1; i < at.Count; i++)
        {
            var gap = at[i] - at[i - 1];
            Assert.True(gap >= period - TimeSpan.FromMilliseconds(15), $"trims {i - 1} and {i} {gap.TotalMilliseconds:0} ms apart");
        }
    }

    [Fact]
    public void Glibc_InThisProcess_IsFound()
    {
        // The test machines run Debian (glibc); the sample host's auto setting depends on this probe.
        Assert.True(OperatingSystem.IsLinux(), "the repository's tests run on Linux");
        Assert.NotNull(GlibcHeap.TryCreate());
    }

    [Fact]
    public async Task Glibc_GivesBackTheFreePagesItKept_WhenTrimmed()
    {
        // 32 MiB in 1 KiB blocks from glibc's malloc, written so that they are resident, then all freed but the last (which
        // keeps the freed space from being the arena's top, which glibc would give back on its own). The freed pages stay
        // resident until the trim; the trim gives most of them back. On a thread of its own, as the JIT's compilations are.
        const int Blocks = 32 * 1024;
        const int BlockSize = 1024;
        var heap = GlibcHeap.TryCreate();
        Assert.NotNull(heap);

        var freeBefore = heap.FreeBytes();
        var (freeAfter, kept, trimmed, released) = await Task.Factory.StartNew(
            () =>
            {
                var blocks = new nint[Blocks];
                for (var i = 0; i < Blocks; i++)
                {
                    blocks[i] = Allocate(BlockSize);
                }

                for (var i = 0; i < Blocks - 1; i++)
                {
                    Free(blocks[i]);
                }

                var freeAfter = heap.FreeBytes();
                var kept = ResidentBytes();
                var released = heap.Trim();
                var trimmed = ResidentBytes();
                Free(blocks[^1]);
                return (freeAfter, kept, trimmed, released);
            },
            CancellationToken.None,
            TaskCreationOptions.LongRunning,
            TaskScheduler.Default);

        // mallinfo2 counts the thread's arena too (the test runner's threads may free some of their own meanwhile).
        Assert.True(freeAfter >= freeBefore + 30UL * 1024 * 1024, $"glibc held {freeBefore / 1024} KiB free before and {freeAfter / 1024} KiB after 32 MiB were freed");
        Assert.True(released, "malloc_trim said it gave nothing back");
        Assert.True(kept - trimmed >= 16L * 1024 * 1024, $"resident {kept / 1024} KiB before the trim and {trimmed / 1024} KiB after");
    }

    private static unsafe nint Allocate(int size)
    {
        var block = NativeMemory.Alloc((nuint)size);
        new Span<byte>(block, size).Fill(0x5a);
        return (nint)block;
    }

    private static unsafe void Free(nint block) => NativeMemory.Free((void*)block);

    private static long ResidentBytes()
    {
        // /proc/self/statm: size resident shared text lib data dt, in pages.
        var fields = File.ReadAllText("/proc/self/statm").Split(' ');
        return long.Parse(fields[1], CultureInfo.InvariantCulture) * Environment.SystemPageSize;
    }

    private static IConfiguration Configuration(string? setting) => new ConfigurationBuilder()
        .AddInMemoryCollection(setting is null ? [] : [new KeyValuePair<string, string?>(NativeMemoryTrim.Key, setting)])
        .Build();

    /// <summary>A trim on the fake clock; by default the runtime compiled something before every tick.</summary>
    private static (NativeMemoryTrim Trim, FakeTimeProvider Time, FakeHeap Heap, RecordingLoggerProvider Log) Create(Func<RuntimeActivity>? activity = null)
    {
        var time = new FakeTimeProvider();
        var heap = new FakeHeap();
        var log = new RecordingLoggerProvider();
        return (new NativeMemoryTrim(heap, activity ?? Busy(), time, Period, NativeMemoryTrim.DefaultThreshold, new Logger<NativeMemoryTrim>(new LoggerFactory([log]))), time, heap, log);
    }

    private static Func<RuntimeActivity> Busy()
    {
        var compiled = 0L;
        return () => new RuntimeActivity(Interlocked.Increment(ref compiled), 0);
    }

    /// <summary>Moves the fake clock, then lets the trim's loop run what the tick released.</summary>
    private static async Task AdvanceAsync(FakeTimeProvider time, TimeSpan by)
    {
        time.Advance(by);
        for (var i = 0; i < 5; i++)
        {
            await Task.Delay(5);
        }
    }

    /// <summary>A heap whose free figure the test sets; it counts and times its trims.</summary>
    private sealed class FakeHeap : INativeHeap
    {
        private int _trims;

        private int _reads;

        private ulong _free;

        public ulong Free
        {
            get => Interlocked.Read(ref _free);
            set => Interlocked.Exchange(ref _free, value);
        }

        /// <summary>Gets or sets what a trim leaves free (null: what was free before it).</summary>
        public ulong? FreeAfterTrim { get; set; }

        /// <summary>Gets or sets how much the free figure grows at every read.</summary>
        public ulong GrowthPerRead { get; set; }

        public Exception? TrimFailure { get; set; }

        public Exception? ReadFailure { get; set; }

        public int Trims => Volatile.Read(ref _trims);

        public System.Collections.Concurrent.ConcurrentQueue<long> At { get; } = new();

        public int Reads => Volatile.Read(ref _reads);

        public ulong FreeBytes()
        {
            Interlocked.Increment(ref _reads);
            return ReadFailure is null ? Interlocked.Add(ref _free, GrowthPerRead) : throw ReadFailure;
        }

        public bool Trim()
        {
            Interlocked.Increment(ref _trims);
            At.Enqueue(Stopwatch.GetTimestamp());
            if (TrimFailure is not null)
            {
                throw TrimFailure;
            }

            if (FreeAfterTrim is { } after)
            {
                Free = after;
            }

            return true;
        }
    }
}
