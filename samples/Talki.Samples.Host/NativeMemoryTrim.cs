using System.Reflection;
using System.Runtime.InteropServices;

/// <summary>
/// Native memory trim in the sample host (<c>Talki:Sample:TrimNativeMemory</c>: <c>auto</c>, the default, <c>true</c> or
/// <c>false</c>). On, the host asks glibc's allocator to give back to the operating system the free memory it keeps
/// (<c>malloc_trim(0)</c>), when there is some to give: every <see cref="DefaultPeriod"/> in which the runtime compiled code or
/// collected garbage (and once more when it has gone quiet) it reads how much memory glibc holds free (<c>mallinfo2</c>), and
/// trims only when that grew by <see cref="DefaultThreshold"/> or more since it was lowest after the last trim. A host whose
/// runtime does neither reads nothing; one whose native memory is steady does not trim.
/// </summary>
/// <remarks>
/// <para>
/// Why: the memory a JIT-compiled host keeps after its first connections is not its members'. The JIT's scratch memory comes
/// from glibc's <c>malloc</c>; the runtime caches up to 16 MB of it for the next compilations and frees what it did not reuse
/// on its finalizer thread. glibc keeps freed memory in its arenas for the next <c>malloc</c>, and returns only the free
/// memory at an arena's top on its own (<c>M_TRIM_THRESHOLD</c>); <c>malloc_trim</c> also returns the whole free pages inside
/// the arenas (glibc manual, "Memory Allocation Tunables" and <c>malloc_trim(3)</c>:
/// https://man7.org/linux/man-pages/man3/malloc_trim.3.html). On the 2-core benchmark machine the host held 8.2–9.0 KiB of
/// resident memory per idle member at 10,000 counted from a fresh process without it, and 7.5–8.1 with it (docs/performance.md,
/// "Native memory given back" and "Trimming only when there is something to give back").
/// </para>
/// <para>
/// Why only when the free memory grew: a trim walks every free chunk of every arena under the arena's lock and asks the kernel
/// to drop the whole pages inside each (<c>madvise</c>), the pages an earlier trim dropped too, so a trim with nothing new to
/// give back still costs its walk and its system calls (0.05–7.4 ms, median 0.13–0.25, when the host trimmed every 2 s after
/// any compilation or collection: 11 times in each process of a 2,000 msg/s load run, 2–4 times with this rule, a median
/// 1.7–1.9 ms each). Free chunks keep counting as free after a trim (their pages are gone,
/// the chunks stay in glibc's lists), so the free figure after a trim is the mark: memory reused from those chunks lowers
/// the figure and, freed again, is resident again; new free memory raises it. <c>mallinfo2</c> adds up every arena under its
/// lock (<c>mallinfo(3)</c>: https://man7.org/linux/man-pages/man3/mallinfo.3.html; glibc 2.33 and later), and to count the
/// free memory it walks the free lists as a trim does (4 µs for 500 free chunks, 8.6 ms for 50,000 in a test program on the
/// benchmark machine), which is why it is read only after the runtime did something. Read every period, not at every free:
/// memory reused and freed within one period can go unseen until the next growth.
/// </para>
/// <para>
/// <c>auto</c> turns it on where the process's C library is glibc with <c>malloc_trim</c> and <c>mallinfo2</c> and the host
/// is the process's entry point (under <c>WebApplicationFactory</c> the test runner owns the process's heap); musl, macOS,
/// Windows and glibc before 2.33 lack one or the other, so <c>auto</c> is off there and <c>true</c> refuses to start.
/// </para>
/// </remarks>
internal sealed partial class NativeMemoryTrim(INativeHeap heap, Func<RuntimeActivity> activity, TimeProvider time, TimeSpan period, ulong threshold, ILogger<NativeMemoryTrim> logger)
    : BackgroundService
{
    /// <summary>The configuration key.</summary>
    public const string Key = "Talki:Sample:TrimNativeMemory";

    /// <summary>How often glibc's free memory is read: the least time between two trims.</summary>
    public static readonly TimeSpan DefaultPeriod = TimeSpan.FromSeconds(2);

    /// <summary>How much the free memory must grow before a trim: 1 MiB (0.1 KiB a member at 10,000 connections).</summary>
    public const ulong DefaultThreshold = 1024 * 1024;

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
    /// <c>true</c> where the C library has no <c>malloc_trim</c> or no <c>mallinfo2</c>.</exception>
    public static string Add(IServiceCollection services, IConfiguration configuration)
    {
        var setting = configuration[Key];
        var off = bool.TryParse(setting, out var on) && !on;

        // Set off, the C library is not probed.
        return Add(services, configuration, off ? null : GlibcHeap.TryCreate(), Assembly.GetEntryAssembly() == typeof(NativeMemoryTrim).Assembly);
    }

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
            why = heap is null ? "auto: the C library has no malloc_trim and mallinfo2" : entryPoint ? "auto: glibc" : "auto: the host is not the process's entry point";
        }
        else if (bool.TryParse(setting, out on))
        {
            why = $"{Key}={setting}";
            if (on && heap is null)
            {
                throw new InvalidOperationException($"{Key} is true, but the C library of this process has no malloc_trim and mallinfo2 (glibc 2.33 and later has both; musl, macOS and Windows do not). Use auto or false.");
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
            heap!, RuntimeActivity.Now, sp.GetService<TimeProvider>() ?? TimeProvider.System, DefaultPeriod, DefaultThreshold, sp.GetRequiredService<ILogger<NativeMemoryTrim>>()));
        services.AddHostedService(sp => sp.GetRequiredService<NativeMemoryTrim>());
        return $"native memory trim on ({why}; read at most every {DefaultPeriod.TotalSeconds:0} s after the runtime compiled or collected, trimmed when glibc holds {DefaultThreshold / 1024 / 1024} MiB more free memory than after the last trim)";
    }

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // Nothing trimmed yet: the first read trims what the start-up left free, if it is the threshold or more.
        ulong lowest = 0;
        RuntimeActivity? last = null;
        var quietReadDone = false;
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
            {
                // Reading the free figure walks glibc's free lists as a trim does: only after the runtime compiled or
                // collected since the last tick, and once more on the first quiet tick (the finalizer thread frees the
                // JIT's unused memory a little later). A quiet host reads nothing.
                var now = activity();
                if (now == last)
                {
                    if (quietReadDone)
                    {
                        continue;
                    }

                    quietReadDone = true;
                }
                else
                {
                    quietReadDone = false;
                    last = now;
                }

                var readStarted = time.GetTimestamp();
                var free = heap.FreeBytes();
                var readMs = time.GetElapsedTime(readStarted).TotalMilliseconds;
                LogRead(logger, free, readMs);
                lowest = Math.Min(lowest, free);
                if (free - lowest < threshold)
                {
                    continue;
                }

                var started = time.GetTimestamp();
                var released = heap.Trim();
                var elapsedMs = time.GetElapsedTime(started).TotalMilliseconds;
                Interlocked.Increment(ref trims);

                // The arenas' tops given back are no longer free memory; the rest still counts as free.
                lowest = heap.FreeBytes();
                LogTrimmed(logger, released, elapsedMs, free, lowest);
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

    [LoggerMessage(EventId = 1, Level = LogLevel.Debug, Message = "Native memory trimmed: memory given back {Released}, in {ElapsedMs:0.000} ms (glibc held {FreeBefore} bytes free before, {FreeAfter} after).")]
    private static partial void LogTrimmed(ILogger logger, bool released, double elapsedMs, ulong freeBefore, ulong freeAfter);

    [LoggerMessage(EventId = 3, Level = LogLevel.Trace, Message = "glibc holds {Free} bytes free (read in {ElapsedMs:0.000} ms).")]
    private static partial void LogRead(ILogger logger, ulong free, double elapsedMs);

    [LoggerMessage(EventId = 2, Level = LogLevel.Warning, Message = "Native memory trim stopped: malloc_trim or mallinfo2 could not be called.")]
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

/// <summary>A C library heap that can say how much memory it holds free and give it back to the operating system.</summary>
internal interface INativeHeap
{
    /// <summary>Reads how much memory the heap holds free, in all its arenas.</summary>
    /// <returns>The free bytes.</returns>
    ulong FreeBytes();

    /// <summary>Gives back what it can.</summary>
    /// <returns>Whether any memory was given back.</returns>
    bool Trim();
}

/// <summary>glibc's heap: <c>mallinfo2()</c> and <c>malloc_trim(0)</c> from <c>libc.so.6</c>.</summary>
internal sealed partial class GlibcHeap : INativeHeap
{
    private const string Library = "libc.so.6";

    private GlibcHeap()
    {
    }

    /// <summary>Gets glibc's heap when this process's C library is glibc with <c>malloc_trim</c> and <c>mallinfo2</c> (2.33
    /// and later), otherwise null.</summary>
    /// <returns>The heap, or null.</returns>
    public static GlibcHeap? TryCreate()
    {
        if (!OperatingSystem.IsLinux() || !NativeLibrary.TryLoad(Library, out var handle))
        {
            return null;
        }

        // The handle stays loaded: it is the process's own C library, which is never unloaded.
        return NativeLibrary.TryGetExport(handle, "malloc_trim", out _) && NativeLibrary.TryGetExport(handle, "mallinfo2", out _) ? new GlibcHeap() : null;
    }

    /// <inheritdoc />
    public ulong FreeBytes() => MallInfo2().Fordblks;

    /// <inheritdoc />
    public bool Trim() => MallocTrim(0) != 0;

    // int malloc_trim(size_t pad): 1 when memory was given back, 0 otherwise.
    [LibraryImport(Library, EntryPoint = "malloc_trim")]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static partial int MallocTrim(nuint pad);

    // struct mallinfo2 mallinfo2(void): the figures of every arena added up.
    [LibraryImport(Library, EntryPoint = "mallinfo2")]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static partial MallocInfo MallInfo2();

    /// <summary>glibc's <c>struct mallinfo2</c>: ten <c>size_t</c> fields, in this order (<c>malloc.h</c>).</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal readonly struct MallocInfo
    {
        /// <summary>Non-mmapped space allocated (bytes).</summary>
        public readonly nuint Arena;

        /// <summary>Number of free chunks.</summary>
        public readonly nuint Ordblks;

        /// <summary>Number of free fastbin blocks.</summary>
        public readonly nuint Smblks;

        /// <summary>Number of mmapped regions.</summary>
        public readonly nuint Hblks;

        /// <summary>Space allocated in mmapped regions (bytes).</summary>
        public readonly nuint Hblkhd;

        /// <summary>Unused (always 0).</summary>
        public readonly nuint Usmblks;

        /// <summary>Space in freed fastbin blocks (bytes).</summary>
        public readonly nuint Fsmblks;

        /// <summary>Total allocated space (bytes).</summary>
        public readonly nuint Uordblks;

        /// <summary>Total free space (bytes).</summary>
        public readonly nuint Fordblks;

        /// <summary>Top-most, releasable space (bytes).</summary>
        public readonly nuint Keepcost;
    }
}
