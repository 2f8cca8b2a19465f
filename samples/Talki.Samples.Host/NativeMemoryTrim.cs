using System.Reflection;
using System.Runtime.InteropServices;

/// <summary>
/// Native memory trim in the sample host (<c>Talki:Sample:TrimNativeMemory</c>: <c>auto</c>, the default, <c>true</c> or
/// <c>false</c>). On, the host asks glibc's allocator to give back to the operating system the free memory it keeps
/// (<c>malloc_trim(0)</c>), at most once every <see cref="DefaultPeriod"/>, and only after the runtime compiled code or
/// collected garbage since the last time (and once more after that, when it has gone quiet): a host whose runtime does
/// neither does nothing. A JIT host with no client still compiles for minutes after its start (its timers' code moving up
/// the tiers: 649 to 1,361 methods over its first 90 s on the benchmark machine), so it trims every 2 s then (0.06–2.0 ms
/// each, median 0.13).
/// </summary>
/// <remarks>
/// <para>
/// Why: the memory a JIT-compiled host keeps after its first connections is not its members'. The JIT's scratch memory comes
/// from glibc's <c>malloc</c>; the runtime caches up to 16 MB of it for the next compilations and frees what it did not reuse
/// on its finalizer thread. glibc keeps freed memory in its arenas for the next <c>malloc</c>, and returns only the free
/// memory at an arena's top on its own (<c>M_TRIM_THRESHOLD</c>); <c>malloc_trim</c> also returns the whole free pages inside
/// the arenas (glibc manual, "Memory Allocation Tunables" and <c>malloc_trim(3)</c>:
/// https://man7.org/linux/man-pages/man3/malloc_trim.3.html). On the 2-core benchmark machine the host held 8.2–9.0 KiB of
/// resident memory per idle member at 10,000 counted from a fresh process without it, and 7.6–7.8 with it, six runs each
/// (docs/performance.md, "Native memory given back").
/// </para>
/// <para>
/// The cost: one call that walks glibc's free lists under each arena's lock (0.05–7.4 ms, median 0.16–0.25, in the same
/// section's load runs), and a page fault
/// for the next allocation that reuses a page given back. <c>auto</c> turns it on where the process's C library is glibc
/// and the host is the process's entry point (under <c>WebApplicationFactory</c> the test runner owns the process's heap);
/// musl, macOS and Windows have no <c>malloc_trim</c>, so <c>auto</c> is off there and <c>true</c> refuses to start.
/// </para>
/// <para>
/// Tried and not kept: reading how much memory glibc holds free (<c>mallinfo2</c>) at those ticks and trimming only when it
/// grew by 1 MiB. It trimmed 3 times instead of 11 in a load run's process, but the read walks glibc's free lists as the trim
/// does (0.1–0.5 ms a read in the host, against a median 0.13–0.19 ms a trim), so the time spent in all did not fall, and
/// neither idle memory nor the p99 at 2,000 msg/s moved (docs/performance.md, "Trimming only when there is something to give
/// back").
/// </para>
/// </remarks>
internal sealed partial class NativeMemoryTrim(INativeHeap heap, Func<RuntimeActivity> activity, TimeProvider time, TimeSpan period, ILogger<NativeMemoryTrim> logger)
    : BackgroundService
{
    /// <summary>The configuration key.</summary>
    public const string Key = "Talki:Sample:TrimNativeMemory";

    /// <summary>The least time between two trims.</summary>
    public static readonly TimeSpan DefaultPeriod = TimeSpan.FromSeconds(2);

    // Created with the service, so that the first period counts from the host's start, not from whenever the host runs
    // ExecuteAsync on the thread pool.
    private readonly PeriodicTimer timer = new(period, time);

    private long trims;

    /// <summary>Gets how many times the heap was asked to trim.</summary>
    public long Trims => Interlocked.Read(ref trims);

    /// <summary>Registers the trim when the setting and the platform allow it, and says what it decided.</summary>
    /// <param name="services">The host's services.</param>
    /// <param name="configuration">The host's configuration.</param>
    /// <returns>One line for the console: on or off, and why.</returns>
    /// <exception cref="InvalidOperationException">The setting is not <c>auto</c>, <c>true</c> or <c>false</c>, or it is
    /// <c>true</c> where the C library has no <c>malloc_trim</c>.</exception>
    public static string Add(IServiceCollection services, IConfiguration configuration) =>
        Add(services, configuration, GlibcHeap.TryCreate(), Assembly.GetEntryAssembly() == typeof(NativeMemoryTrim).Assembly);

    /// <summary>Registers the trim with the heap given (null: none on this platform); for tests.</summary>
    /// <param name="services">The host's services.</param>
    /// <param name="configuration">The host's configuration.</param>
    /// <param name="heap">The C library's heap, or null when it cannot trim.</param>
    /// <param name="entryPoint">Whether the host is the process's entry point.</param>
    /// <returns>One line for the console.</returns>
    internal static string Add(IServiceCollection services, IConfiguration configuration, INativeHeap? heap, bool entryPoint)
    {
        var setting = configuration[Key];
        bool on;
        string why;
        if (string.IsNullOrEmpty(setting) || string.Equals(setting, "auto", StringComparison.OrdinalIgnoreCase))
        {
            on = heap is not null && entryPoint;
            why = heap is null ? "auto: the C library has no malloc_trim" : entryPoint ? "auto: glibc" : "auto: the host is not the process's entry point";
        }
        else if (bool.TryParse(setting, out on))
        {
            why = $"{Key}={setting}";
            if (on && heap is null)
            {
                throw new InvalidOperationException($"{Key} is true, but the C library of this process has no malloc_trim (glibc has it; musl, macOS and Windows do not). Use auto or false.");
            }
        }
        else
        {
            throw new InvalidOperationException($"{Key} is '{setting}'; it takes auto (the default), true or false.");
        }

        if (!on)
        {
            return $"native memory trim off ({why})";
        }

        services.AddSingleton(sp => new NativeMemoryTrim(
            heap!, RuntimeActivity.Now, sp.GetService<TimeProvider>() ?? TimeProvider.System, DefaultPeriod, sp.GetRequiredService<ILogger<NativeMemoryTrim>>()));
        services.AddHostedService(sp => sp.GetRequiredService<NativeMemoryTrim>());
        return $"native memory trim on ({why}; at most every {DefaultPeriod.TotalSeconds:0} s, after the runtime compiled or collected)";
    }

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // The first tick trims: the host has just compiled its start-up.
        RuntimeActivity? last = null;
        var quietTrimDone = false;
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
            {
                var now = activity();
                if (now == last)
                {
                    // Quiet since the last tick. The runtime frees the JIT's unused scratch memory on its finalizer thread,
                    // which may have run just after the last trim: one more trim, then nothing until something happens.
                    if (quietTrimDone)
                    {
                        continue;
                    }

                    quietTrimDone = true;
                }
                else
                {
                    quietTrimDone = false;
                    last = now;
                }

                var started = time.GetTimestamp();
                var released = heap.Trim();
                var elapsedMs = time.GetElapsedTime(started).TotalMilliseconds;
                Interlocked.Increment(ref trims);
                LogTrimmed(logger, released, elapsedMs, now.CompiledMethods, now.Collections);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // The host is stopping.
        }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException)
        {
            // Probed at start, so not expected; the host goes on without trimming.
            LogTrimUnavailable(logger, e);
        }
    }

    /// <inheritdoc />
    public override void Dispose()
    {
        timer.Dispose();
        base.Dispose();
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Debug, Message = "Native memory trimmed: memory given back {Released}, in {ElapsedMs:0.000} ms ({CompiledMethods} methods compiled, {Collections} collections so far).")]
    private static partial void LogTrimmed(ILogger logger, bool released, double elapsedMs, long compiledMethods, int collections);

    [LoggerMessage(EventId = 2, Level = LogLevel.Warning, Message = "Native memory trim stopped: malloc_trim could not be called.")]
    private static partial void LogTrimUnavailable(ILogger logger, Exception exception);
}

/// <summary>What the runtime did that can leave freed native memory behind: methods compiled and gen0 collections.</summary>
/// <param name="CompiledMethods">Methods the JIT compiled since the process started (0 under Native AOT).</param>
/// <param name="Collections">Garbage collections of generation 0 (every collection counts there) since the process started.</param>
internal readonly record struct RuntimeActivity(long CompiledMethods, int Collections)
{
    /// <summary>Reads the process's counts now.</summary>
    /// <returns>The counts.</returns>
    public static RuntimeActivity Now() => new(System.Runtime.JitInfo.GetCompiledMethodCount(currentThread: false), GC.CollectionCount(0));
}

/// <summary>A C library heap that can give its free memory back to the operating system.</summary>
internal interface INativeHeap
{
    /// <summary>Gives back what it can.</summary>
    /// <returns>Whether any memory was given back.</returns>
    bool Trim();
}

/// <summary>glibc's heap: <c>malloc_trim(0)</c> from <c>libc.so.6</c>.</summary>
internal sealed partial class GlibcHeap : INativeHeap
{
    private const string Library = "libc.so.6";

    private GlibcHeap()
    {
    }

    /// <summary>Gets glibc's heap when this process's C library is glibc with <c>malloc_trim</c>, otherwise null.</summary>
    /// <returns>The heap, or null.</returns>
    public static GlibcHeap? TryCreate()
    {
        if (!OperatingSystem.IsLinux() || !NativeLibrary.TryLoad(Library, out var handle))
        {
            return null;
        }

        // The handle stays loaded: it is the process's own C library, which is never unloaded.
        return NativeLibrary.TryGetExport(handle, "malloc_trim", out _) ? new GlibcHeap() : null;
    }

    /// <inheritdoc />
    public bool Trim() => MallocTrim(0) != 0;

    // int malloc_trim(size_t pad): 1 when memory was given back, 0 otherwise.
    [LibraryImport(Library, EntryPoint = "malloc_trim")]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static partial int MallocTrim(nuint pad);
}
