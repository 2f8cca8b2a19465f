using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

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

    private ServerProcess(Process process, ConcurrentQueue<string> output, Uri baseAddress, TimeSpan startup)
    {
        _process = process;
        _output = output;
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
    public Dictionary<int, TimeSpan> CompilerThreadsCpu()
    {
        var threads = new Dictionary<int, TimeSpan>();
        try
        {
            foreach (var task in Directory.EnumerateDirectories($"/proc/{_process.Id}/task"))
            {
                string stat;
                try
                {
                    stat = File.ReadAllText(Path.Combine(task, "stat"));
                }
                catch (IOException)
                {
                    continue; // the thread ended while the list was read
                }

                // pid (comm) state ppid ... utime stime: comm may hold spaces, so the fields count from its closing parenthesis.
                var open = stat.IndexOf('(', StringComparison.Ordinal);
                var close = stat.LastIndexOf(')');
                if (open < 0 || close < open || !stat.AsSpan(open + 1, close - open - 1).StartsWith(".NET Tiered Com", StringComparison.Ordinal))
                {
                    continue;
                }

                var fields = stat[(close + 2)..].Split(' ');
                var ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
                threads[int.Parse(Path.GetFileName(task), CultureInfo.InvariantCulture)] = TimeSpan.FromMilliseconds(ticks * 10);
            }
        }
        catch (DirectoryNotFoundException)
        {
            // The server has exited.
        }

        return threads;
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

    /// <summary>Starts the server, pinned to <paramref name="cpus"/> when given (<c>taskset -c</c>, which execs it: same process).</summary>
    public static async Task<ServerProcess> StartAsync(Target target, string? cpus, IReadOnlyList<KeyValuePair<string, string>>? environment = null)
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
        var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => Keep(output, e.Data);
        process.ErrorDataReceived += (_, e) => Keep(output, e.Data);
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
                throw new InvalidOperationException($"{target.Name}: {start.FileName} {string.Join(' ', start.ArgumentList)} {failed}:{Environment.NewLine}{string.Join(Environment.NewLine, output)}");
            }

            await Task.Delay(10);
        }

        return new ServerProcess(process, output, baseAddress, Stopwatch.GetElapsedTime(started));
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }

        await _process.WaitForExitAsync();
        _process.Dispose();
    }

    /// <summary>The dotnet executable that runs this tool (the muxer), to start the .NET servers the same way.</summary>
    public static string DotnetExecutable() =>
        Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host
        : Path.GetFileNameWithoutExtension(Environment.ProcessPath) == "dotnet" ? Environment.ProcessPath! : "dotnet";

    private static ProcessStartInfo Pinned(ProcessStartInfo start, string? cpus)
    {
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

    private static void Keep(ConcurrentQueue<string> output, string? line)
    {
        if (line is null)
        {
            return;
        }

        output.Enqueue(line);
        while (output.Count > 50)
        {
            output.TryDequeue(out _);
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
