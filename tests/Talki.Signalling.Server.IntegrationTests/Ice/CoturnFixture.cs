using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace Talki.Signalling.Server.IntegrationTests.Ice;

/// <summary>
/// A real coturn <c>turnserver</c> in the foreground, as a child process, on 127.0.0.1 only: UDP on a free port, relays on
/// 127.0.0.1, TURN REST credentials (<c>use-auth-secret</c>) with a random shared secret; no TCP, TLS, DTLS, CLI or config file.
/// It is killed on dispose.
/// </summary>
public sealed class CoturnFixture : IAsyncLifetime
{
    /// <summary>The realm coturn announces (and that the long-term key is computed with).</summary>
    public const string Realm = "talki.test";

    private const int Attempts = 5;
    private const int RelayPortCount = 64;
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(15);
    private readonly StringBuilder _log = new();
    private Process? _process;
    private string? _directory;

    /// <summary>Gets the secret shared with coturn (<c>static-auth-secret</c>).</summary>
    public string SharedSecret { get; } = Convert.ToHexString(RandomNumberGenerator.GetBytes(24));

    /// <summary>Gets coturn's UDP listener.</summary>
    public IPEndPoint Endpoint { get; private set; } = new(IPAddress.Loopback, 0);

    /// <summary>Gets the lowest relay port coturn may hand out.</summary>
    public int MinRelayPort { get; private set; }

    /// <summary>Gets the highest relay port coturn may hand out.</summary>
    public int MaxRelayPort { get; private set; }

    /// <summary>Gets the TURN URL of the listener, as configured in <see cref="TalkiTurnOptions.Urls"/>.</summary>
    public string TurnUrl => $"turn:127.0.0.1:{Endpoint.Port}?transport=udp";

    /// <summary>Gets what coturn has printed so far (for failure messages).</summary>
    public string Log
    {
        get
        {
            lock (_log)
            {
                return _log.ToString();
            }
        }
    }

    public async Task InitializeAsync()
    {
        var executable = FindOnPath("turnserver")
            ?? throw new InvalidOperationException(
                "coturn's 'turnserver' is not on PATH. These tests run a real coturn: the test command must install the Debian package 'coturn' (apt-get install -y coturn).");
        _directory = Directory.CreateTempSubdirectory("talki-coturn-").FullName;
        for (var attempt = 1; attempt <= Attempts; attempt++)
        {
            var port = FreeUdpPort();
            MinRelayPort = Random.Shared.Next(20000, 30000 - RelayPortCount); // below Linux's ephemeral range, where free ports come from
            MaxRelayPort = MinRelayPort + RelayPortCount - 1;
            Endpoint = new IPEndPoint(IPAddress.Loopback, port);
            if (await TryStartAsync(executable, port))
            {
                return;
            }

            await StopAsync();
        }

        throw new InvalidOperationException($"coturn did not start on 127.0.0.1 after {Attempts} attempts. Its output:\n{Log}");
    }

    public async Task DisposeAsync()
    {
        await StopAsync();
        if (_directory is not null)
        {
            try
            {
                Directory.Delete(_directory, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private async Task<bool> TryStartAsync(string executable, int port)
    {
        var start = new ProcessStartInfo(executable)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = _directory,
        };
        foreach (var argument in new[]
        {
            "-n", // no configuration file: everything is on this command line
            "--listening-ip", "127.0.0.1",
            "--relay-ip", "127.0.0.1",
            "--listening-port", port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--min-port", MinRelayPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--max-port", MaxRelayPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--use-auth-secret",
            "--static-auth-secret", SharedSecret,
            "--realm", Realm,
            "--no-tcp", "--no-tls", "--no-dtls", "--no-cli", "--no-rfc5780", "--no-stun-backward-compatibility",
            "--no-auth-pings", "--no-dynamic-ip-list", "--no-dynamic-realms",
            "--allow-loopback-peers",
            "--log-file", "stdout", "--simple-log",
            "--pidfile", Path.Combine(_directory!, "turnserver.pid"),
        })
        {
            start.ArgumentList.Add(argument);
        }

        var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => Append(e.Data);
        process.ErrorDataReceived += (_, e) => Append(e.Data);
        Append($"--- starting coturn on 127.0.0.1:{port} (relay ports {MinRelayPort}-{MaxRelayPort})");
        var logStart = Log.Length;
        process.Start();
        _process = process;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        // Ready when it answers a TURN Allocate without credentials with 401 and its realm. A busy port makes
        // coturn retry the bind for ever, so its "Cannot bind" ends this attempt.
        using var deadline = new CancellationTokenSource(StartTimeout);
        using var client = new TurnTestClient(Endpoint, TimeSpan.FromSeconds(1));
        while (!deadline.IsCancellationRequested)
        {
            if (process.HasExited || Log[logStart..].Contains("Cannot bind", StringComparison.Ordinal))
            {
                return false;
            }

            try
            {
                if (await client.ChallengeRealmAsync(deadline.Token) == Realm)
                {
                    return true;
                }
            }
            catch (TimeoutException)
            {
            }
        }

        return false;
    }

    private async Task StopAsync()
    {
        if (_process is not { } process)
        {
            return;
        }

        _process = null;
        try
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }

            using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await process.WaitForExitAsync(wait.Token);
        }
        catch (Exception e) when (e is InvalidOperationException or OperationCanceledException)
        {
            Append($"--- stopping coturn: {e.Message}");
        }
        finally
        {
            process.Dispose();
        }
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_log)
        {
            _log.AppendLine(line);
        }
    }

    private static int FreeUdpPort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }

    private static string? FindOnPath(string name)
    {
        foreach (var directory in (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(directory, name);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }
}
