using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Talki.Signalling.Emulator;

namespace Talki.Samples.Browser.EndToEndTests.Harness;

/// <summary>
/// The real sample host (<c>samples/Talki.Samples.Host</c>) as a child process started from its built dll on
/// 127.0.0.1 and a free port, in the Development environment, configured by command-line arguments.
/// Browsers reach it as <c>http://localhost:{port}</c> (a secure context). Disposing kills the process tree.
/// </summary>
internal sealed class SampleHost : IAsyncDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _output = new();

    private SampleHost(Process process, int port)
    {
        _process = process;
        Port = port;
    }

    public int Port { get; }

    /// <summary>The host's process id.</summary>
    public int ProcessId => _process.Id;

    /// <summary>The origin browsers use: <c>http://localhost:{port}</c>.</summary>
    public Uri BaseAddress => new($"http://localhost:{Port}");

    /// <summary>The address it listens on, for clients that are not browsers: <c>http://127.0.0.1:{port}</c>.</summary>
    public Uri LoopbackAddress => new($"http://127.0.0.1:{Port}");

    /// <summary>Everything the host printed so far (stdout and stderr, in order of arrival).</summary>
    public string Output => string.Join(Environment.NewLine, _output);

    /// <summary>
    /// Starts the host with the given join window and extra <c>--Key=Value</c> settings (the configured public STUN server is
    /// replaced by a closed local port), and waits for <c>/healthz</c>.
    /// </summary>
    public static async Task<SampleHost> StartAsync(
        TimeSpan joinWindow,
        IReadOnlyDictionary<string, string>? settings = null,
        Action<string>? log = null,
        IReadOnlyDictionary<string, string>? environment = null,
        CancellationToken cancellationToken = default)
    {
        var dll = RepositoryLayout.SampleHostDll();
        var port = LoopbackPorts.Choose();
        var start = new ProcessStartInfo(DotnetExecutable())
        {
            // The project folder is the content root, as with `dotnet run` (appsettings.json, wwwroot).
            WorkingDirectory = RepositoryLayout.SampleHostProjectDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(dll);
        start.ArgumentList.Add("--urls");
        start.ArgumentList.Add($"http://127.0.0.1:{port}");
        start.ArgumentList.Add("--environment");
        start.ArgumentList.Add("Development");
        start.ArgumentList.Add($"--Talki:JoinWindow={joinWindow.ToString("c", CultureInfo.InvariantCulture)}");
        // Nothing outside this machine is contacted: the public STUN server of appsettings.json becomes a closed local port
        // (unless the caller sets its own first ICE server).
        // Every browser of the tests signs in from 127.0.0.1: lift the per-address sign-in limit.
        var all = new Dictionary<string, string> { ["Talki:IceServers:0"] = "stun:127.0.0.1:9", ["Talki:Limits:SignInsPerAddressPerMinute"] = "100000" };
        foreach (var (key, value) in settings ?? new Dictionary<string, string>())
        {
            all[key] = value;
        }

        foreach (var (key, value) in all)
        {
            start.ArgumentList.Add($"--{key}={value}");
        }

        start.Environment.Remove("ASPNETCORE_URLS");
        start.Environment.Remove("ASPNETCORE_ENVIRONMENT");
        start.Environment["DOTNET_ENVIRONMENT"] = "Development";
        start.Environment["Logging__Console__FormatterName"] = "simple";
        // Each socket the connection-level upgrade takes says so (the group call checks that Chromium's handshakes take it).
        start.Environment["Logging__LogLevel__Talki.Signalling.Server.AspNetCore.ConnectionLevelUpgrade"] = "Debug";
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }

        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        var host = new SampleHost(process, port);
        process.OutputDataReceived += (_, e) => host.Append(e.Data, log);
        process.ErrorDataReceived += (_, e) => host.Append(e.Data is null ? null : "stderr: " + e.Data, log);
        if (!process.Start())
        {
            throw new InvalidOperationException($"Could not start {start.FileName} {dll}");
        }

        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        log?.Invoke($"sample host: pid {process.Id}, {dll}, http://127.0.0.1:{port} (browsers: {host.BaseAddress})");

        try
        {
            await host.WaitUntilHealthyAsync(TimeSpan.FromSeconds(90), cancellationToken);
        }
        catch
        {
            await host.DisposeAsync();
            throw;
        }

        return host;
    }

    /// <summary>
    /// Gets how many threads of the host are the runtime's socket event threads (<c>.NET Sockets</c>, read from
    /// <c>/proc/{pid}/task/*/comm</c>): one per core with inline socket completions, else one up to 45 cores.
    /// </summary>
    public int SocketEventThreads => Directory.EnumerateDirectories($"/proc/{_process.Id}/task")
        .Count(task => ReadOrEmpty(Path.Combine(task, "comm")).Trim() == ".NET Sockets");

    /// <summary>
    /// Kills the process tree at once (SIGKILL: no graceful shutdown, its sockets die with it, nothing is unregistered) and
    /// waits until it has exited. As a crash or a lost machine would end an instance.
    /// </summary>
    public async Task KillAsync()
    {
        _process.Kill(entireProcessTree: true);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        await _process.WaitForExitAsync(timeout.Token);
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }

            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
            await _process.WaitForExitAsync(timeout.Token);
        }
        catch (Exception e) when (e is InvalidOperationException or OperationCanceledException)
        {
            // Never started or already gone.
        }
        finally
        {
            _process.Dispose();
        }
    }

    private async Task WaitUntilHealthyAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var health = new Uri($"http://127.0.0.1:{Port}/healthz");
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException(
                    $"The sample host exited with code {_process.ExitCode} before answering /healthz:{Environment.NewLine}{Output}");
            }

            try
            {
                using var response = await http.GetAsync(health, cancellationToken);
                if (response.IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
            {
                // Not listening yet.
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"The sample host did not answer {health} within {timeout}:{Environment.NewLine}{Output}");
            }

            await Task.Delay(200, cancellationToken);
        }
    }

    private void Append(string? line, Action<string>? log)
    {
        if (line is null)
        {
            return;
        }

        _output.Enqueue(line);
        while (_output.Count > 2000 && _output.TryDequeue(out _))
        {
        }

        log?.Invoke("host: " + line);
    }

    private static string ReadOrEmpty(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (IOException)
        {
            return string.Empty; // the thread ended between the listing and the read
        }
    }

    /// <summary>The dotnet executable running this process (DOTNET_HOST_PATH under dotnet test), else <c>dotnet</c>.</summary>
    private static string DotnetExecutable()
    {
        if (Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } hostPath && File.Exists(hostPath))
        {
            return hostPath;
        }

        var current = Environment.ProcessPath;
        return current is not null && Path.GetFileNameWithoutExtension(current) == "dotnet" ? current : "dotnet";
    }
}
