using System.Collections.Concurrent;
using System.Diagnostics;

namespace Talki.Signalling.Emulator;

/// <summary>
/// One Lambda execution environment of the AWS path as a child process: a host (the sample host's built dll under
/// <c>dotnet</c>, or its Native AOT executable, as the stack deploys it) configured only by environment variables, as
/// Lambda configures it: the function's environment from the synthesized template (<see cref="AwsPathHost.EnvironmentVariables"/>,
/// with the addresses pointing at the emulator and the role's own key), plus the caller's extras. Production environment
/// (Lambda sets none). Optionally held to its function's CPU share (<see cref="LambdaCpuShare"/>). Disposing kills the
/// process tree and removes its CPU group.
/// </summary>
public sealed class AwsPathHostProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _output = new();

    private AwsPathHostProcess(AwsPathHost host, Process process, LambdaCpuGroup? cpu)
    {
        Host = host;
        _process = process;
        Cpu = cpu;
    }

    /// <summary>Gets the instance this process runs.</summary>
    public AwsPathHost Host { get; }

    /// <summary>Gets the CPU group holding the process to its function's share, or <see langword="null"/> when it runs unconfined.</summary>
    public LambdaCpuGroup? Cpu { get; }

    /// <summary>A short name: <c>Backend#1</c>.</summary>
    public string Name => $"{Host.Function}#{Host.Index}";

    /// <summary>Everything the host printed (stdout and stderr, in order of arrival).</summary>
    public string Output => string.Join(Environment.NewLine, _output);

    /// <summary>
    /// Starts the host for <paramref name="host"/>; waits for its <c>/healthz</c> when <paramref name="waitUntilHealthy"/>
    /// (otherwise call <see cref="WaitUntilHealthyAsync"/>, so that several instances start side by side).
    /// </summary>
    /// <param name="host">The instance.</param>
    /// <param name="executable">What to run: an executable, or <c>dotnet</c> (<see cref="DotnetExecutable"/>) with the dll as the first argument.</param>
    /// <param name="arguments">Its arguments.</param>
    /// <param name="workingDirectory">Its working directory (the host's content root).</param>
    /// <param name="extraEnvironment">Settings beyond the function's environment.</param>
    /// <param name="log">Where to say what started.</param>
    /// <param name="waitUntilHealthy">Whether to wait for <c>/healthz</c>.</param>
    /// <param name="cpuShare">
    /// Hold the process to its function's CPU share once it answers <c>/healthz</c> (its init runs unconfined, as Lambda's
    /// init burst; <see cref="LambdaCpuShare"/>; needs a writable cgroup CPU controller).
    /// </param>
    /// <param name="cancellationToken">Cancels the start.</param>
    public static async Task<AwsPathHostProcess> StartAsync(
        AwsPathHost host,
        string executable,
        IReadOnlyList<string> arguments,
        string workingDirectory,
        IReadOnlyDictionary<string, string> extraEnvironment,
        Action<string>? log,
        bool waitUntilHealthy,
        bool cpuShare = false,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(host);
        ArgumentNullException.ThrowIfNull(arguments);
        ArgumentNullException.ThrowIfNull(extraEnvironment);
        var cpu = cpuShare ? LambdaCpuShare.CreateGroup($"{host.Function}-{host.Index}", host.MemorySizeMb) : null;
        var start = new ProcessStartInfo(executable)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        // Nothing inherited decides the host's configuration: only the function's environment and the extras.
        foreach (var inherited in start.Environment.Keys.Where(k =>
                     k.StartsWith("ASPNETCORE_", StringComparison.OrdinalIgnoreCase)
                     || k.StartsWith("DOTNET_ENVIRONMENT", StringComparison.OrdinalIgnoreCase)
                     || k.StartsWith("Talki__", StringComparison.OrdinalIgnoreCase)
                     || k.Equals("urls", StringComparison.OrdinalIgnoreCase)).ToList())
        {
            start.Environment.Remove(inherited);
        }

        foreach (var (name, value) in host.EnvironmentVariables)
        {
            start.Environment[name] = value;
        }

        foreach (var (name, value) in extraEnvironment)
        {
            start.Environment[name] = value;
        }

        // A web server's listen address (in Lambda: ASPNETCORE_URLS=http://127.0.0.1:8080 behind the adapter); a custom runtime
        // listens nowhere (its AWS_LAMBDA_RUNTIME_API came with the function's environment above).
        if (!host.CustomRuntime)
        {
            start.Environment["ASPNETCORE_URLS"] = host.Address.GetLeftPart(UriPartial.Authority);
        }

        start.Environment["Logging__Console__FormatterName"] = "simple";

        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        var running = new AwsPathHostProcess(host, process, cpu);
        process.OutputDataReceived += (_, e) => running.Append(e.Data);
        process.ErrorDataReceived += (_, e) => running.Append(e.Data is null ? null : "stderr: " + e.Data);
        try
        {
            if (!process.Start())
            {
                throw new InvalidOperationException($"Could not start {executable} {string.Join(' ', arguments)}");
            }
        }
        catch
        {
            process.Dispose();
            cpu?.Dispose();
            throw;
        }

        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        log?.Invoke($"{running.Name}: pid {process.Id}, {host.Address}{(cpu is null ? "" : $", {cpu}")}");
        if (!waitUntilHealthy)
        {
            return running; // WaitUntilHealthyAsync moves it into its CPU group once it answers
        }

        try
        {
            await running.WaitUntilHealthyAsync(TimeSpan.FromSeconds(90), cancellationToken);
        }
        catch
        {
            await running.DisposeAsync();
            throw;
        }

        return running;
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
            Cpu?.Dispose();
        }
    }

    /// <summary>
    /// Gets the process's peak resident set (<c>VmHWM</c> of <c>/proc/PID/status</c>), in bytes: what the function's
    /// memory size must hold. <see langword="null"/> when the process is gone or the file cannot be read.
    /// </summary>
    public long? PeakResidentBytes()
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{_process.Id}/status"))
            {
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                {
                    return long.Parse(line["VmHWM:".Length..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture) * 1024;
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException)
        {
        }

        return null;
    }

    /// <summary>
    /// Waits until the host answers <c>/healthz</c>, then holds it to its CPU share when it has a group; throws with its
    /// output when it exits or the timeout passes.
    /// </summary>
    public async Task WaitUntilHealthyAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        if (Host.Initialized is { } initialized)
        {
            await WaitUntilInitializedAsync(initialized, timeout, cancellationToken);
            return;
        }

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var health = new Uri(Host.Address, "/healthz");
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"{Name} exited with code {_process.ExitCode} before answering /healthz:{Environment.NewLine}{Output}");
            }

            try
            {
                using var response = await http.GetAsync(health, cancellationToken);
                if (response.IsSuccessStatusCode)
                {
                    Cpu?.Add(_process.Id);
                    return;
                }
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
            {
                // Not listening yet.
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"{Name} did not answer {health} within {timeout}:{Environment.NewLine}{Output}");
            }

            await Task.Delay(200, cancellationToken);
        }
    }

    /// <summary>
    /// A custom runtime's readiness: its first request for an event, which ends Lambda's init phase (its CPU share applies
    /// from then on, as for a web server from its first <c>/healthz</c>).
    /// </summary>
    private async Task WaitUntilInitializedAsync(Func<Task> initialized, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var first = initialized();
        var deadline = DateTime.UtcNow + timeout;
        while (!first.IsCompleted)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"{Name} exited with code {_process.ExitCode} before asking the runtime API for an event:{Environment.NewLine}{Output}");
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"{Name} did not ask the runtime API for an event within {timeout}:{Environment.NewLine}{Output}");
            }

            await Task.WhenAny(first, Task.Delay(100, cancellationToken));
            cancellationToken.ThrowIfCancellationRequested();
        }

        await first;
        Cpu?.Add(_process.Id);
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        _output.Enqueue($"{DateTime.Now:HH:mm:ss.fff} {line}");
        while (_output.Count > 5000 && _output.TryDequeue(out _))
        {
        }
    }

    /// <summary>The dotnet executable running this process (DOTNET_HOST_PATH under dotnet test), else <c>dotnet</c>.</summary>
    public static string DotnetExecutable()
    {
        if (Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } hostPath && File.Exists(hostPath))
        {
            return hostPath;
        }

        var current = Environment.ProcessPath;
        return current is not null && Path.GetFileNameWithoutExtension(current) == "dotnet" ? current : "dotnet";
    }
}
