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
    private static readonly TimeSpan Period = TimeSpan.FromSeconds(2);

    [Theory]
    [InlineData(null, true, true, "native memory trim on (auto: glibc; at most every 2 s, after the runtime compiled or collected)")]
    [InlineData("AUTO", true, true, "native memory trim on (auto: glibc; at most every 2 s, after the runtime compiled or collected)")]
    [InlineData(null, false, true, "native memory trim off (auto: the C library has no malloc_trim)")]
    [InlineData(null, true, false, "native memory trim off (auto: the host is not the process's entry point)")]
    [InlineData("false", true, true, "native memory trim off (Talki:Sample:TrimNativeMemory=false)")]
    [InlineData("true", true, false, "native memory trim on (Talki:Sample:TrimNativeMemory=true; at most every 2 s, after the runtime compiled or collected)")]
    public void Add_RegistersTheTrimOnlyWhenTheSettingAndThePlatformAllow_AndSaysWhy(string? setting, bool heapAvailable, bool entryPoint, string says)
    {
        var services = new ServiceCollection();
        var line = NativeMemoryTrim.Add(services, Configuration(setting), heapAvailable ? new CountingHeap() : null, entryPoint);

        Assert.Equal(says, line);
        Assert.Equal(says.Contains(" on ", StringComparison.Ordinal), services.Any(d => d.ServiceType == typeof(IHostedService)));
    }

    [Fact]
    public void Add_TrueWhereTheCLibraryHasNoMallocTrim_RefusesToStart_AndSaysWhy()
    {
        var failure = Assert.Throws<InvalidOperationException>(() => NativeMemoryTrim.Add(new ServiceCollection(), Configuration("true"), null, entryPoint: true));
        Assert.StartsWith("Talki:Sample:TrimNativeMemory is true, but the C library of this process has no malloc_trim", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Add_AValueItDoesNotKnow_RefusesToStart_AndSaysWhich()
    {
        var failure = Assert.Throws<InvalidOperationException>(() => NativeMemoryTrim.Add(new ServiceCollection(), Configuration("sometimes"), new CountingHeap(), entryPoint: true));
        Assert.Equal("Talki:Sample:TrimNativeMemory is 'sometimes'; it takes auto (the default), true or false.", failure.Message);
    }

    [Fact]
    public async Task Registered_ResolvesAsTheHostedService_AndTrimsOnTheHostsClock()
    {
        var time = new FakeTimeProvider();
        var heap = new CountingHeap();
        var services = new ServiceCollection().AddLogging().AddSingleton<TimeProvider>(time);
        NativeMemoryTrim.Add(services, Configuration(null), heap, entryPoint: true);
        await using var provider = services.BuildServiceProvider();
        var hosted = Assert.Single(provider.GetServices<IHostedService>());
        Assert.Same(provider.GetRequiredService<NativeMemoryTrim>(), hosted);

        await hosted.StartAsync(CancellationToken.None);
        await AdvanceAsync(time, Period);
        await hosted.StopAsync(CancellationToken.None);

        Assert.Equal(1, heap.Calls);
    }

    [Fact]
    public async Task FirstTrim_ComesOnePeriodAfterStart_NotBefore()
    {
        var (trim, time, heap, _) = Create(_ => new RuntimeActivity(1, 1));
        await trim.StartAsync(CancellationToken.None);

        await AdvanceAsync(time, Period - TimeSpan.FromMilliseconds(1));
        Assert.Equal(0, heap.Calls);
        await AdvanceAsync(time, TimeSpan.FromMilliseconds(1));
        Assert.Equal(1, heap.Calls);
        Assert.Equal(1, trim.Trims);

        await trim.StopAsync(CancellationToken.None);
    }

    [Fact]
    public async Task QuietRuntime_TrimsOnceMoreAfterTheLastActivity_ThenNeverUntilItCompilesOrCollectsAgain()
    {
        var activity = new RuntimeActivity(100, 5);
        var (trim, time, heap, _) = Create(_ => activity);
        await trim.StartAsync(CancellationToken.None);

        await AdvanceAsync(time, Period); // the start-up's compilations
        await AdvanceAsync(time, Period); // quiet: once more, for what the finalizer thread freed after the first
        Assert.Equal(2, heap.Calls);
        for (var i = 0; i < 10; i++)
        {
            await AdvanceAsync(time, Period);
        }

        Assert.Equal(2, heap.Calls);

        activity = activity with { Collections = 6 }; // a collection
        await AdvanceAsync(time, Period);
        Assert.Equal(3, heap.Calls);
        activity = activity with { CompiledMethods = 101 }; // a compilation
        await AdvanceAsync(time, Period);
        Assert.Equal(4, heap.Calls);
        await AdvanceAsync(time, Period); // quiet again: once more
        await AdvanceAsync(time, Period);
        await AdvanceAsync(time, Period);
        Assert.Equal(5, heap.Calls);

        await trim.StopAsync(CancellationToken.None);
    }

    [Fact]
    public async Task BusyRuntime_TrimsOncePerPeriod_NeverMoreOften()
    {
        var counter = 0;
        var (trim, time, heap, _) = Create(_ => new RuntimeActivity(Interlocked.Increment(ref counter), 0));
        await trim.StartAsync(CancellationToken.None);

        // Ticks of a quarter period: a trim only every fourth.
        for (var i = 0; i < 40; i++)
        {
            await AdvanceAsync(time, Period / 4);
        }

        Assert.Equal(10, heap.Calls);
        await trim.StopAsync(CancellationToken.None);
    }

    [Fact]
    public async Task AHeapThatCannotBeCalled_StopsTheTrim_WithAWarning_AndTheServiceEndsWithoutFaulting()
    {
        var (trim, time, heap, log) = Create(_ => new RuntimeActivity(1, 1));
        heap.Failure = new EntryPointNotFoundException("malloc_trim");
        await trim.StartAsync(CancellationToken.None);

        await AdvanceAsync(time, Period);
        await AdvanceAsync(time, Period);
        var task = trim.ExecuteTask!;
        await task.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.True(task.IsCompletedSuccessfully);
        Assert.Equal(1, heap.Calls);
        Assert.Equal(0, trim.Trims);
        var warning = Assert.Single(log.Entries, e => e.Level == LogLevel.Warning);
        Assert.Equal("Native memory trim stopped: malloc_trim could not be called. " + heap.Failure, warning.Text);
        await trim.StopAsync(CancellationToken.None);
    }

    [Fact]
    public async Task OnTheRealClock_TrimsABusyRuntimeAboutOncePerPeriod_NeverEarly()
    {
        // 100 ms on the system clock, a runtime that is always busy: trims at least a period apart (less 15 ms for the
        // timer clock's coarseness), the first no sooner than a period after start, and not far fewer than the periods.
        var period = TimeSpan.FromMilliseconds(100);
        var counter = 0;
        var heap = new CountingHeap();
        var trim = new NativeMemoryTrim(heap, () => new RuntimeActivity(Interlocked.Increment(ref counter), 0), TimeProvider.System, period, NullLogger<NativeMemoryTrim>.Instance);
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

        var (kept, trimmed, released) = await Task.Factory.StartNew(
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

                var kept = ResidentBytes();
                var released = heap.Trim();
                var trimmed = ResidentBytes();
                Free(blocks[^1]);
                return (kept, trimmed, released);
            },
            CancellationToken.None,
            TaskCreationOptions.LongRunning,
            TaskScheduler.Default);

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

    private static (NativeMemoryTrim Trim, FakeTimeProvider Time, CountingHeap Heap, RecordingLoggerProvider Log) Create(Func<int, RuntimeActivity> activity)
    {
        var time = new FakeTimeProvider();
        var heap = new CountingHeap();
        var log = new RecordingLoggerProvider();
        var calls = 0;
        return (new NativeMemoryTrim(heap, () => activity(calls++), time, Period, new Logger<NativeMemoryTrim>(new LoggerFactory([log]))), time, heap, log);
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

    private sealed class CountingHeap : INativeHeap
    {
        private int _calls;

        public Exception? Failure { get; set; }

        public int Calls => Volatile.Read(ref _calls);

        public System.Collections.Concurrent.ConcurrentQueue<long> At { get; } = new();

        public bool Trim()
        {
            Interlocked.Increment(ref _calls);
            At.Enqueue(Stopwatch.GetTimestamp());
            return Failure is null ? true : throw Failure;
        }
    }
}
