using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Amazon.DynamoDBv2;
using Amazon.Runtime;
using Talki.Signalling.Aws.DynamoDb;
using Talki.Signalling.Emulator;

namespace Talki.Signalling.Aws.Tests.DynamoDb;

/// <summary>
/// Runs dynalite (an in-memory DynamoDB on Node.js, installed by <c>npm ci --prefix tests/tools</c>) on a free port of
/// 127.0.0.1 for the tests of the <see cref="DynaliteGroup"/>, and stops it afterwards. Each test class uses its own table.
/// </summary>
public sealed class DynaliteFixture : IAsyncLifetime
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);

    private readonly ConcurrentDictionary<string, Lazy<Task>> _tables = new(StringComparer.Ordinal);
    private readonly StringBuilder _output = new();
    private Process? _process;
    private AmazonDynamoDBClient? _client;

    /// <summary>Gets the client for the running dynalite.</summary>
    public AmazonDynamoDBClient Client => _client ?? throw new InvalidOperationException("dynalite has not started.");

    /// <summary>Gets the endpoint, <c>http://127.0.0.1:PORT</c>.</summary>
    public string ServiceUrl { get; private set; } = string.Empty;

    /// <summary>Creates a table (once per name) with the store's layout.</summary>
    /// <param name="tableName">The table.</param>
    /// <returns>A task that completes when the table is active.</returns>
    public Task EnsureTableAsync(string tableName)
        => _tables.GetOrAdd(tableName, name => new Lazy<Task>(() => DynamoDbTableCreator.CreateIfMissingAsync(Client, name))).Value;

    /// <inheritdoc />
    public async Task InitializeAsync()
    {
        var root = FindRepositoryRoot();
        var cli = Path.Combine(root, "tests", "tools", "node_modules", "dynalite", "cli.js");
        if (!File.Exists(cli))
        {
            throw new InvalidOperationException(
                $"dynalite is not installed ({cli} is missing). Run `npm ci --prefix tests/tools` from the repository root (the test command, eng/test.sh, does it).");
        }

        for (var attempt = 1; ; attempt++)
        {
            var port = LoopbackPorts.Choose();
            _process = Start(cli, port);
            if (await WaitUntilListeningAsync(port))
            {
                ServiceUrl = $"http://127.0.0.1:{port}";
                _client = new AmazonDynamoDBClient(new BasicAWSCredentials("test", "test"), new AmazonDynamoDBConfig { ServiceURL = ServiceUrl });
                await _client.ListTablesAsync(new Amazon.DynamoDBv2.Model.ListTablesRequest());
                return;
            }

            Stop();
            if (attempt == 3)
            {
                string output;
                lock (_output)
                {
                    output = _output.ToString();
                }

                throw new InvalidOperationException($"dynalite did not start on 127.0.0.1 within {StartTimeout}. Its output:\n{output}");
            }
        }
    }

    /// <inheritdoc />
    public Task DisposeAsync()
    {
        _client?.Dispose();
        Stop();
        return Task.CompletedTask;
    }

    private static string FindRepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Talki.Signalling.slnx")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException($"Talki.Signalling.slnx was not found above {AppContext.BaseDirectory}.");
    }


    private Process Start(string cli, int port)
    {
        var start = new ProcessStartInfo("node")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetDirectoryName(cli)!,
        };
        foreach (var argument in new[] { cli, "--host", "127.0.0.1", "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--createTableMs", "0", "--deleteTableMs", "0", "--updateTableMs", "0" })
        {
            start.ArgumentList.Add(argument);
        }

        var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => Append(e.Data);
        process.ErrorDataReceived += (_, e) => Append(e.Data);
        if (!process.Start())
        {
            throw new InvalidOperationException("Could not start node.");
        }

        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    private void Append(string? line)
    {
        if (line is not null)
        {
            lock (_output)
            {
                _output.AppendLine(line);
            }
        }
    }

    private async Task<bool> WaitUntilListeningAsync(int port)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < StartTimeout && _process is { HasExited: false })
        {
            try
            {
                using var probe = new TcpClient();
                await probe.ConnectAsync(IPAddress.Loopback, port);
                return true;
            }
            catch (SocketException)
            {
                await Task.Delay(50);
            }
        }

        return false;
    }

    private void Stop()
    {
        if (_process is null)
        {
            return;
        }

        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit(5000);
            }
        }
        catch (InvalidOperationException)
        {
            // It exited meanwhile.
        }

        _process.Dispose();
        _process = null;
    }
}

/// <summary>The tests that share one dynalite.</summary>
[CollectionDefinition(Name)]
public sealed class DynaliteGroup : ICollectionFixture<DynaliteFixture>
{
    /// <summary>The collection's name.</summary>
    public const string Name = "dynalite";
}
