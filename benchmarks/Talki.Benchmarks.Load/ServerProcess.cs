using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Numerics;

namespace Talki.Benchmarks.Load;

/// <summary>
/// A server under test in a child process on 127.0.0.1 and a free port: its start-up time (process start to the first
/// 200 from its health endpoint, polled every 10 ms), its CPU time (utime + stime of <c>/proc/{pid}/stat</c>) and its
/// resident set (<c>VmRSS</c> of <c>/proc/{pid}/status</c>). Disposing kills it.
/// </summary>
internal sealed class ServerProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _output;
    private readonly Dictionary<int, (bool IsCompiler, bool Final)> _threadNames = [];
    private readonly StreamWriter? _log;

    private ServerProcess(Process process, ConcurrentQueue<string> output, StreamWriter? log, Uri baseAddress, TimeSpan startup)
    {
        _process = process;
        _output = output;
        _log = log;
        BaseAddress = baseAddress;
        Startup = startup;
    }

    public Uri BaseAddress { get; }

    public TimeSpan Startup { get; }

    public int ProcessId => _process.Id;

    /// <summary>Gets the last lines the server printed (stdout and stderr).</summary>
    public string Output => string.Join(Environment.NewLine, _output);

    /// <summary>Gets the user and system CPU time the process has used so far (10 ms ticks).</summary>
    public TimeSpan CpuTime
    {
        get
        {
            _process.Refresh();
            return _process.TotalProcessorTime;
        }
    }

    /// <summary>
    /// Gets the CPU time (user and system, 10 ms ticks) the threads of .NET's background tiered compilation have used so
    /// far, of those alive now: threads named <c>.NET Tiered Com</c> (the kernel keeps the first 15 characters of
    /// ".NET Tiered Compilation Worker"), keyed by thread id. Empty for a server that is not .NET.
    /// </summary>
    /// <remarks>
    /// Polled every 200 ms through a measured window, so it reads little: a thread's name (<c>comm</c>) until it is known
    /// for good (twice for most threads), and <c>stat</c> only for the compiler's threads, each into a stack buffer.
    /// Reading every thread's <c>stat</c> through <see cref="File.ReadAllText(string)"/> on every poll was most of what
    /// the tool allocated in a window at 2,000 msg/s (9.1–10.0 MiB then, 0.5–0.6 MiB since; an EventPipe allocation trace
    /// found it).
    /// </remarks>
    public Dictionary<int, TimeSpan> CompilerThreadsCpu()
    {
        var threads = new Dictionary<int, TimeSpan>();
        Span<byte> buffer = stackalloc byte[1024];
        try
        {
            foreach (var task in Directory.EnumerateDirectories($"/proc/{_process.Id}/task"))
            {
                if (!int.TryParse(Path.GetFileName(task.AsSpan()), NumberStyles.None, CultureInfo.InvariantCulture, out var id))
                {
                    continue;
                }

                _threadNames.TryGetValue(id, out var known);
                var isCompiler = known.IsCompiler;
                if (!known.Final)
                {
                    if (ReadProcFile(Path.Combine(task, "comm"), buffer) is not { } length)
                    {
                        continue; // the thread ended while the list was read
                    }

                    isCompiler = buffer[..length].StartsWith(".NET Tiered Com"u8);

                    // A new thread carries its creator's name until it names itself, microseconds later: a name is taken
                    // as final once seen on two polls (200 ms apart), or at once when it is the compiler's.
                    _threadNames[id] = (isCompiler, Final: isCompiler || _threadNames.ContainsKey(id));
                }

                if (!isCompiler || ReadProcFile(Path.Combine(task, "stat"), buffer) is not { } statLength)
                {
                    continue;
                }

                // pid (comm) state ppid ... utime stime: comm may hold spaces, so the fields count from its closing parenthesis.
                var stat = buffer[..statLength];
                var close = stat.LastIndexOf((byte)')');
                if (close < 0 || !TryField(stat[(close + 2)..], 11, out var utime) || !TryField(stat[(close + 2)..], 12, out var stime))
                {
                    continue;
                }

                threads[id] = TimeSpan.FromMilliseconds((utime + stime) * 10);
            }
        }
        catch (DirectoryNotFoundException)
        {
            // The server has exited.
        }

        return threads;
    }

    /// <summary>Reads a small <c>/proc</c> file into <paramref name="buffer"/>; its length, or null when it is gone.</summary>
    private static int? ReadProcFile(string path, Span<byte> buffer)
    {
        try
        {
            using var handle = File.OpenHandle(path);
            var total = 0;
            int read;
            while (total < buffer.Length && (read = RandomAccess.Read(handle, buffer[total..], total)) > 0)
            {
                total += read;
            }

            return total;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>The <paramref name="index"/>th space-separated number of <paramref name="fields"/> (0-based).</summary>
    private static bool TryField(ReadOnlySpan<byte> fields, int index, out long value)
    {
        value = 0;
        for (var i = 0; i < index; i++)
        {
            var space = fields.IndexOf((byte)' ');
            if (space < 0)
            {
                return false;
            }

            fields = fields[(space + 1)..];
        }

        var end = fields.IndexOf((byte)' ');
        return long.TryParse(end < 0 ? fields : fields[..end], NumberStyles.None, CultureInfo.InvariantCulture, out value);
    }

    /// <summary>
    /// Waits until the JIT's background compilation has used no CPU for <paramref name="quiet"/> (methods that became hot
    /// while the clients connected are recompiled at their final tier by then), at most <paramref name="limit"/>. Returns
    /// how long it waited and the compilation CPU it saw meanwhile.
    /// </summary>
    public async Task<(TimeSpan Waited, TimeSpan CompilerCpu)> WaitForCompilerQuietAsync(TimeSpan quiet, TimeSpan limit)
    {
        var started = Stopwatch.GetTimestamp();
        var watch = new CompilerWatch(this);
        var quietSince = started;
        while (Stopwatch.GetElapsedTime(started) < limit)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(100));
            if (watch.Poll() > TimeSpan.Zero)
            {
                quietSince = Stopwatch.GetTimestamp();
            }
            else if (Stopwatch.GetElapsedTime(quietSince) >= quiet)
            {
                break;
            }
        }

        return (Stopwatch.GetElapsedTime(started), watch.Total);
    }

    /// <summary>Gets the process's resident set in bytes.</summary>
    public long ResidentBytes
    {
        get
        {
            foreach (var line in File.ReadLines($"/proc/{_process.Id}/status"))
            {
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                {
                    return long.Parse(line.AsSpan(6).Trim().TrimEnd("kB").Trim(), CultureInfo.InvariantCulture) * 1024;
                }
            }

            throw new InvalidOperationException($"no VmRSS for process {_process.Id}");
        }
    }

    /// <summary>
    /// Starts the server, pinned to <paramref name="cpus"/> when given (<c>taskset -c</c>, which execs it: same process), and
    /// writes all it prints to <paramref name="logFile"/> when given.
    /// </summary>
    public static async Task<ServerProcess> StartAsync(Target target, string? cpus, IReadOnlyList<KeyValuePair<string, string>>? environment = null, string? logFile = null)
    {
        var port = FreePort();
        var start = Pinned(target.StartInfo(port), cpus);
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.UseShellExecute = false;
        foreach (var variable in (string[])["ASPNETCORE_URLS", "ASPNETCORE_ENVIRONMENT", "DOTNET_ENVIRONMENT", "PORT"])
        {
            start.Environment.Remove(variable);
        }

        foreach (var (name, value) in (IEnumerable<KeyValuePair<string, string>>)[.. environment ?? [], .. target.Environment])
        {
            start.Environment[name] = value;
        }

        var output = new ConcurrentQueue<string>();
        StreamWriter? log = null;
        if (logFile is not null)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(logFile))!);
            log = new StreamWriter(logFile, append: false);
        }

        var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => Keep(output, log, e.Data);
        process.ErrorDataReceived += (_, e) => Keep(output, log, e.Data);
        var baseAddress = new Uri($"http://127.0.0.1:{port}");
        var health = new Uri(baseAddress, target.HealthPath);
        using var probe = new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.Zero }) { Timeout = TimeSpan.FromSeconds(2) };

        await ProbeAsync(probe, health); // the probe's own first-call cost (connection refused) is not the server's start-up

        var started = Stopwatch.GetTimestamp();
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        while (!await ProbeAsync(probe, health))
        {
            if (process.HasExited || Stopwatch.GetElapsedTime(started) > TimeSpan.FromSeconds(60))
            {
                var failed = process.HasExited ? $"exited with {process.ExitCode}" : "did not answer within 60 s";
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync();
                Close(log);
                throw new InvalidOperationException($"{target.Name}: {start.FileName} {string.Join(' ', start.ArgumentList)} {failed}:{Environment.NewLine}{string.Join(Environment.NewLine, output)}");
            }

            await Task.Delay(10);
        }

        return new ServerProcess(process, output, log, baseAddress, Stopwatch.GetElapsedTime(started));
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }

        await _process.WaitForExitAsync();
        _process.Dispose();
        Close(_log);
    }

    /// <summary>The dotnet executable that runs this tool (the muxer), to start the .NET servers the same way.</summary>
    public static string DotnetExecutable() =>
        Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host
        : Path.GetFileNameWithoutExtension(Environment.ProcessPath) == "dotnet" ? Environment.ProcessPath! : "dotnet";

    private static ProcessStartInfo Pinned(ProcessStartInfo start, string? cpus)
    {
        // A child inherits this process's CPU affinity: with the tool pinned (run.sh's CLIENT_CPUS) and no --server-cpus,
        // the servers would share the tool's cores while the report says "not pinned". They get every online CPU instead.
        cpus ??= OnlineCpusWhenToolIsPinned.Value;
        if (cpus is null)
        {
            return start;
        }

        var pinned = new ProcessStartInfo("taskset") { WorkingDirectory = start.WorkingDirectory };
        foreach (var argument in (string[])["-c", cpus, start.FileName, .. start.ArgumentList])
        {
            pinned.ArgumentList.Add(argument);
        }

        return pinned;
    }

    /// <summary>
    /// Every online CPU (the <c>/sys/devices/system/cpu/online</c> list) when this tool's affinity mask holds fewer of them,
    /// else <see langword="null"/>; read once, the affinity being the tool's for its whole run.
    /// </summary>
    private static readonly Lazy<string?> OnlineCpusWhenToolIsPinned = new(() =>
    {
        if (!OperatingSystem.IsLinux())
        {
            return null;
        }

        var list = File.ReadAllText("/sys/devices/system/cpu/online").Trim();
        var online = 0;
        foreach (var range in list.Split(','))
        {
            var bounds = range.Split('-');
            online += bounds.Length == 1 ? 1 : int.Parse(bounds[1], CultureInfo.InvariantCulture) - int.Parse(bounds[0], CultureInfo.InvariantCulture) + 1;
        }

        using var self = Process.GetCurrentProcess();
        return BitOperations.PopCount((ulong)(long)self.ProcessorAffinity) < Math.Min(online, 64) ? list : null;
    });

    private static async Task<bool> ProbeAsync(HttpClient probe, Uri health)
    {
        try
        {
            using var response = await probe.GetAsync(health);
            return response.StatusCode == HttpStatusCode.OK;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            return false;
        }
    }

    private static void Keep(ConcurrentQueue<string> output, StreamWriter? log, string? line)
    {
        if (line is null)
        {
            return;
        }

        if (log is not null)
        {
            lock (log)
            {
                try
                {
                    log.WriteLine(line);
                }
                catch (ObjectDisposedException)
                {
                    // A line that arrives after the server was disposed (the process ended, its output drained): not kept.
                }
            }
        }

        output.Enqueue(line);
        while (output.Count > 50)
        {
            output.TryDequeue(out _);
        }
    }

    private static void Close(StreamWriter? log)
    {
        if (log is not null)
        {
            lock (log)
            {
                log.Dispose();
            }
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

/// <summary>
/// Adds up the CPU time of a server's compilation threads between polls: what each thread id used since it was last seen
/// (a thread that ends between two polls loses what it used since the last one; the runtime ends the worker after it has
/// been idle a while, not while it compiles).
/// </summary>
internal sealed class CompilerWatch(ServerProcess server)
{
    private Dictionary<int, TimeSpan> _last = server.CompilerThreadsCpu();

    public TimeSpan Total { get; private set; }

    /// <summary>Reads the threads again; returns the CPU they used since the last poll (new threads: all of theirs).</summary>
    public TimeSpan Poll()
    {
        var now = server.CompilerThreadsCpu();
        var used = TimeSpan.Zero;
        foreach (var (id, cpu) in now)
        {
            used += _last.TryGetValue(id, out var before) ? cpu - before : cpu;
        }

        _last = now;
        Total += used;
        return used;
    }
}
