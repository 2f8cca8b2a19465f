using System.Collections.Concurrent;
using System.Diagnostics;
using Talki.Samples.Browser.EndToEndTests.Harness;
using Talki.Signalling.Emulator;

namespace Talki.Samples.Browser.EndToEndTests.Aws;

/// <summary>
/// One Lambda execution environment of the AWS path: the real sample host (<c>samples/Talki.Samples.Host</c>) as a child
/// process from its built dll, configured only by environment variables, as Lambda configures it: the function's
/// environment from the synthesized template (<see cref="AwsPathHost.EnvironmentVariables"/>, with the addresses pointing
/// at the emulator and the role's own key), plus the test's extras. Production environment (Lambda sets none). Disposing
/// kills the process tree.
/// </summary>
internal sealed class AwsHostProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _output = new();

    private AwsHostProcess(AwsPathHost host, Process process)
    {
        Host = host;
        _process = process;
    }

    public AwsPathHost Host { get; }

    /// <summary>A short name: <c>Backend#1</c>.</summary>
    public string Name => $"{Host.Function}#{Host.Index}";

    /// <summary>Everything the host printed (stdout and stderr, in order of arrival).</summary>
    public string Output => string.Join(Environment.NewLine, _output);

    /// <summary>
    /// Starts the host for <paramref name="host"/>; waits for its <c>/healthz</c> when <paramref name="waitUntilHealthy"/>
    /// (otherwise call <see cref="WaitUntilHealthyAsync"/>, so that several instances start side by side).
    /// </summary>
    public static async Task<AwsHostProcess> StartAsync(
        AwsPathHost host,
        IReadOnlyDictionary<string, string> extraEnvironment,
        Action<string>? log,
        bool waitUntilHealthy,
        CancellationToken cancellationToken)
    {
        var dll = RepositoryLayout.SampleHostDll();
        var start = new ProcessStartInfo(DotnetExecutable())
        {
            // The project folder is the content root (appsettings.json; the app's files come from the static web assets manifest).
            WorkingDirectory = RepositoryLayout.SampleHostProjectDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(dll);

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

        // The instance's listen address (in Lambda: ASPNETCORE_URLS=http://127.0.0.1:8080 behind the adapter).
        start.Environment["ASPNETCORE_URLS"] = host.Address.GetLeftPart(UriPartial.Authority);
        start.Environment["Logging__Console__FormatterName"] = "simple";

        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        var running = new AwsHostProcess(host, process);
        process.OutputDataReceived += (_, e) => running.Append(e.Data);
        process.ErrorDataReceived += (_, e) => running.Append(e.Data is null ? null : "stderr: " + e.Data);
        if (!process.Start())
        {
            throw new InvalidOperationException($"Could not start {start.FileName} {dll}");
        }

        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        log?.Invoke($"{running.Name}: pid {process.Id}, {host.Address}");
        if (!waitUntilHealthy)
        {
            return running;
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
        }
    }

    /// <summary>Waits until the host answers <c>/healthz</c>; throws with its output when it exits or the timeout passes.</summary>
    public async Task WaitUntilHealthyAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
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
