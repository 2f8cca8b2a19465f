using System.Globalization;
using Microsoft.Playwright;
using Talki.Samples.Browser.EndToEndTests.Harness;
using Talki.Signalling.Aws.Tests.DynamoDb;
using Talki.Signalling.Emulator;
using Talki.Signalling.Testing;
using Xunit.Abstractions;

namespace Talki.Samples.Browser.EndToEndTests.Aws;

/// <summary>
/// One group call over the AWS path, shared by the steps of <see cref="AwsGroupCallTests"/>: dynalite, the API Gateway
/// emulator running the CDK app's synthesized template (<see cref="AwsPathHarness"/>: IAM, the function URL's permissions,
/// the REQUEST authorizer, the routes' integrations), the <c>Authorizer</c> function as one sample-host process and the
/// <c>Backend</c> function as <b>two</b> sample-host processes (the emulator spreads invocations across them as Lambda
/// spreads them across execution environments, so sessions, rooms and tickets must live in DynamoDB), one headless
/// Chromium loading the app from the backend's function URL, and five users: Ada (admin), Bea and Cyd (admitted), Dan
/// (denied), Eve (too late). The join window is <c>TALKI_E2E_AWS_JOIN_WINDOW_SECONDS</c> (default 120 s: on a 2-core machine under heavy load, steps 1-3 took up to 100 s after the room's creation), set in the
/// functions' environment (<c>Talki__JoinWindow</c>).
/// </summary>
public sealed class AwsGroupCallFixture : IAsyncLifetime
{
    /// <summary>The backend function's execution environments.</summary>
    public const int BackendInstances = 2;

    private readonly object _gate = new();
    private readonly string _logFile;
    private readonly List<AwsPathHostProcess> _hosts = [];
    private readonly DynaliteFixture _dynalite = new();
    private ITestOutputHelper? _output;
    private AwsPathHarness? _aws;
    private Chromium? _chromium;
    private int _completedStep;
    private int? _failedStep;
    private bool _disposed;

    public AwsGroupCallFixture()
    {
        Directory.CreateDirectory(RepositoryLayout.Artifacts);
        var screenshots = Path.Combine(RepositoryLayout.Artifacts, "screenshots");
        if (Directory.Exists(screenshots))
        {
            foreach (var stale in Directory.EnumerateFiles(screenshots, "aws-*.png"))
            {
                File.Delete(stale);
            }
        }

        _logFile = Path.Combine(RepositoryLayout.Artifacts, "aws-group-call.log");
        File.WriteAllText(_logFile, "");
    }

    public static TimeSpan JoinWindow { get; } = TimeSpan.FromSeconds(
        int.TryParse(Environment.GetEnvironmentVariable("TALKI_E2E_AWS_JOIN_WINDOW_SECONDS"), CultureInfo.InvariantCulture, out var seconds) ? seconds : 120);

    internal AwsPathHarness Aws => _aws ?? throw new InvalidOperationException("not started");

    internal ApiGatewayEmulator Emulator => Aws.Emulator;

    /// <summary>The browser-facing origin of the backend's function URL: <c>http://localhost:{port}</c> (a secure context).</summary>
    internal Uri AppOrigin { get; private set; } = null!;

    internal Chromium Browser => _chromium ?? throw new InvalidOperationException("not started");

    internal TalkiUser Ada { get; private set; } = null!;

    internal TalkiUser Bea { get; private set; } = null!;

    internal TalkiUser Cyd { get; private set; } = null!;

    internal TalkiUser Dan { get; private set; } = null!;

    internal TalkiUser? Eve { get; set; }

    /// <summary>The admitted members (the mesh).</summary>
    internal IReadOnlyList<TalkiUser> Members => [Ada, Bea, Cyd];

    internal IReadOnlyList<TalkiUser> Everyone => Eve is null ? [Ada, Bea, Cyd, Dan] : [Ada, Bea, Cyd, Dan, Eve];

    internal Uri? RoomLink { get; set; }

    /// <summary>When Ada's page showed the room link: the room seals one join window after its creation, shortly before.</summary>
    internal DateTimeOffset RoomCreatedAt { get; set; }

    /// <summary>When every member's page showed <c>Sealed</c> with signalling closed.</summary>
    internal DateTimeOffset SealedAt { get; set; }

    internal IReadOnlyDictionary<TalkiUser, string> MemberIds { get; set; } = new Dictionary<TalkiUser, string>();

    /// <summary>The call's figures (everything up to the close at the seal), taken before the late joiner.</summary>
    internal AwsCallFigures? CallFigures { get; set; }

    internal DateTimeOffset StartedAt { get; private set; }

    public async Task InitializeAsync()
    {
        try
        {
            await StartAsync();
        }
        catch (Exception e)
        {
            // Nothing started is left running (dynalite, the hosts, Chromium), whatever xunit does with a failed fixture.
            Log($"start-up failed: {e}");
            await DisposeAsync();
            throw;
        }
    }

    private async Task StartAsync()
    {
        StartedAt = DateTimeOffset.UtcNow;
        Log($"artifacts: {RepositoryLayout.Artifacts}");
        // Side by side: CDK synthesis (the jsii runtime on Node.js, seconds) and dynalite.
        var synthesis = Task.Run(SynthesizedTalkiTemplate.Json);
        await _dynalite.InitializeAsync();
        Log($"dynalite on {_dynalite.ServiceUrl}");
        var template = await synthesis;
        Log($"template synthesized (+{(DateTimeOffset.UtcNow - StartedAt).TotalSeconds:0.0}s)");
        var extras = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            // The test's only settings beyond the template's environment: a short join window, and no public STUN server
            // (nothing outside this machine is contacted; host candidates on loopback are enough).
            ["Talki__JoinWindow"] = JoinWindow.ToString("c", CultureInfo.InvariantCulture),
            ["Talki__IceServers__0"] = "stun:127.0.0.1:9",
        };
        var options = new AwsPathOptions
        {
            Template = template,
            DynamoDb = new Uri(_dynalite.ServiceUrl),
            StackName = "talki-e2e",
            StartHost = async (host, cancellationToken) =>
            {
                // Started here, waited for below: the three hosts and Chromium start side by side.
                // The sample host's built dll under dotnet; the project folder is the content root (appsettings.json; the app's
                // files come from the static web assets manifest). The authorizer function is a custom runtime of its own.
                var (dll, directory) = host.CustomRuntime
                    ? (RepositoryLayout.AwsAuthorizerDll(), RepositoryLayout.AwsAuthorizerProjectDirectory)
                    : (RepositoryLayout.SampleHostDll(), RepositoryLayout.SampleHostProjectDirectory);
                var process = await AwsPathHostProcess.StartAsync(
                    host, AwsPathHostProcess.DotnetExecutable(), [dll], directory,
                    extras, Log, waitUntilHealthy: false, cancellationToken: cancellationToken);
                lock (_hosts)
                {
                    _hosts.Add(process);
                }

                return process;
            },
        };
        options.Instances["Backend"] = BackendInstances;
        options.Instances["Authorizer"] = 1;
        _aws = await AwsPathHarness.StartAsync(options);
        AppOrigin = new Uri($"http://localhost:{_aws.FunctionUrl.Port}");
        Log($"emulator: function URL {_aws.FunctionUrl} (browsers: {AppOrigin}), WebSocket {_aws.Emulator.WebSocketUrl}, " +
            $"hosts {string.Join(", ", _aws.Hosts.Select(h => $"{h.Function}#{h.Index}={h.Address}"))}, table {_aws.TableName}, join window {JoinWindow.TotalSeconds:0}s");

        var healthy = Task.WhenAll(_hosts.Select(h => h.WaitUntilHealthyAsync(TimeSpan.FromSeconds(120))));
        _chromium = await Chromium.LaunchAsync(AppOrigin, Log);
        await healthy;
        Log($"every host answers /healthz or has asked for its first event (+{(DateTimeOffset.UtcNow - StartedAt).TotalSeconds:0.0}s)");
        Ada = await _chromium.NewUserAsync("Ada");
        Bea = await _chromium.NewUserAsync("Bea");
        Cyd = await _chromium.NewUserAsync("Cyd");
        Dan = await _chromium.NewUserAsync("Dan");
        Log($"ready after {(DateTimeOffset.UtcNow - StartedAt).TotalSeconds:0.0}s");
    }

    public async Task DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        foreach (var user in new TalkiUser?[] { Ada, Bea, Cyd, Dan, Eve }.OfType<TalkiUser>())
        {
            await File.WriteAllTextAsync(Path.Combine(RepositoryLayout.Artifacts, $"aws-console-{user.Name}.log"), user.ConsoleLog);
        }

        if (_chromium is not null)
        {
            await _chromium.DisposeAsync();
        }

        if (_aws is not null)
        {
            await _aws.DisposeAsync();
        }

        foreach (var host in _hosts)
        {
            await File.WriteAllTextAsync(Path.Combine(RepositoryLayout.Artifacts, $"aws-host-{host.Host.Function}-{host.Host.Index}.log"), host.Output);
            await host.DisposeAsync(); // already stopped by the harness; a no-op then
        }

        await _dynalite.DisposeAsync();
        Log($"stopped; the whole fixture took {(DateTimeOffset.UtcNow - StartedAt).TotalSeconds:0.0}s");
    }

    internal void Attach(ITestOutputHelper output)
    {
        lock (_gate)
        {
            _output = output;
        }
    }

    internal void Log(string line)
    {
        var stamped = $"{DateTime.Now:HH:mm:ss.fff} {line}";
        lock (_gate)
        {
            File.AppendAllText(_logFile, stamped + Environment.NewLine);
            try
            {
                _output?.WriteLine(stamped);
            }
            catch (InvalidOperationException)
            {
                // The test that attached the output has finished.
            }
        }
    }

    /// <summary>Runs a step of the call once the previous ones passed; a failure stops the later steps.</summary>
    internal async Task RunStepAsync(int step, Func<Task> body)
    {
        if (_failedStep is { } failed)
        {
            throw new InvalidOperationException($"Step {failed} of the AWS call failed; step {step} builds on it and cannot run.");
        }

        if (_completedStep != step - 1)
        {
            throw new InvalidOperationException(
                $"Step {step} needs steps 1..{step - 1} of the same call first (run the whole {nameof(AwsGroupCallTests)} class).");
        }

        Log($"== step {step} (+{(DateTimeOffset.UtcNow - StartedAt).TotalSeconds:0.0}s)");
        try
        {
            await body();
            _completedStep = step;
        }
        catch (Exception e)
        {
            _failedStep = step;
            Log($"step {step} failed: {e.Message}");
            foreach (var user in Everyone.Where(u => !u.Page.IsClosed))
            {
                Log("  " + await user.DescribeAsync());
            }

            Log($"emulator: open connections [{string.Join(", ", Emulator.OpenConnectionIds)}], accepted {Emulator.Counters.ConnectionsAccepted}, rejected {Emulator.Counters.ConnectionsRejected}, " +
                $"@connections {string.Join(", ", Emulator.Counters.ConnectionsApiCalls.Select(c => $"{c.Key}={c.Value}"))}");
            await ScreenshotAsync($"step{step}-failure");
            foreach (var host in _hosts)
            {
                Log($"{host.Name} output (tail):" + Environment.NewLine + string.Join(Environment.NewLine, host.Output.Split(Environment.NewLine).TakeLast(30)));
            }

            foreach (var user in Everyone)
            {
                Log($"{user.Name}'s console (tail):" + Environment.NewLine + string.Join(Environment.NewLine, user.ConsoleLog.Split(Environment.NewLine).TakeLast(20)));
            }

            throw;
        }
    }

    /// <summary>Screenshots every open page under <c>{artifacts}/screenshots/aws-…</c>.</summary>
    internal async Task ScreenshotAsync(string moment, IEnumerable<TalkiUser>? users = null)
    {
        foreach (var user in users ?? Everyone)
        {
            if (user.Page.IsClosed)
            {
                continue;
            }

            try
            {
                Log($"screenshot: {await user.ScreenshotAsync("aws-" + moment)}");
            }
            catch (Exception e) when (e is PlaywrightException or TimeoutException)
            {
                Log($"screenshot of {user.Name} at {moment} failed: {e.Message}");
            }
        }
    }
}
