using System.Globalization;
using Talki.Samples.Browser.EndToEndTests.Harness;
using Xunit.Abstractions;

namespace Talki.Samples.Browser.EndToEndTests;

/// <summary>
/// One group call shared by the steps of <see cref="GroupCallTests"/>: the sample host (join window
/// <c>TALKI_E2E_JOIN_WINDOW_SECONDS</c>, default 150 s: idle, steps 1-3 take about 45 s after the room's creation; on
/// a loaded 2-core CI machine Bea's links after her reload were still negotiating at a 90 s seal), one headless
/// Chromium, and four users, each in a browser context of their own: Ada (admin), Bea and Cyd (admitted), Dan (denied).
/// </summary>
public sealed class GroupCallFixture : IAsyncLifetime
{
    private readonly object _gate = new();
    private readonly string _logFile;
    private ITestOutputHelper? _output;
    private SampleHost? _host;
    private Chromium? _chromium;
    private int _completedStep;
    private int? _failedStep;

    public GroupCallFixture()
    {
        Directory.CreateDirectory(RepositoryLayout.Artifacts);
        var screenshots = Path.Combine(RepositoryLayout.Artifacts, "screenshots");
        if (Directory.Exists(screenshots))
        {
            // This call's screenshots (01-… to 07-…, step… on failure) replace the previous run's; other tests keep theirs.
            foreach (var stale in Directory.EnumerateFiles(screenshots, "*.png").Where(f => Path.GetFileName(f) is ['0', >= '1' and <= '7', '-', ..] or ['s', 't', 'e', 'p', ..]))
            {
                File.Delete(stale);
            }
        }

        _logFile = Path.Combine(RepositoryLayout.Artifacts, "group-call.log");
        File.WriteAllText(_logFile, "");
    }

    public static TimeSpan JoinWindow { get; } = TimeSpan.FromSeconds(
        int.TryParse(Environment.GetEnvironmentVariable("TALKI_E2E_JOIN_WINDOW_SECONDS"), CultureInfo.InvariantCulture, out var seconds) ? seconds : 150);

    internal SampleHost Host => _host ?? throw new InvalidOperationException("not started");

    internal TalkiUser Ada { get; private set; } = null!;

    internal TalkiUser Bea { get; private set; } = null!;

    internal TalkiUser Cyd { get; private set; } = null!;

    internal TalkiUser Dan { get; private set; } = null!;

    /// <summary>The admitted members (the mesh).</summary>
    internal IReadOnlyList<TalkiUser> Members => [Ada, Bea, Cyd];

    internal IReadOnlyList<TalkiUser> Everyone => [Ada, Bea, Cyd, Dan];

    internal Uri? RoomLink { get; set; }

    /// <summary>When the room was created (the host's clock is this machine's): it seals one join window later.</summary>
    internal DateTimeOffset RoomCreatedAt { get; set; }

    /// <summary>Gets how long until the room seals, by this machine's clock (negative once it has).</summary>
    internal TimeSpan UntilSeal => RoomCreatedAt + JoinWindow - DateTimeOffset.UtcNow;

    internal IReadOnlyDictionary<TalkiUser, string> MemberIds { get; set; } = new Dictionary<TalkiUser, string>();

    public async Task InitializeAsync()
    {
        Log($"artifacts: {RepositoryLayout.Artifacts}");
        _host = await SampleHost.StartAsync(JoinWindow);
        Log($"sample host on {_host.BaseAddress} (join window {JoinWindow.TotalSeconds:0}s)");
        _chromium = await Chromium.LaunchAsync(_host.BaseAddress, Log);
        Ada = await _chromium.NewUserAsync("Ada");
        Bea = await _chromium.NewUserAsync("Bea");
        Cyd = await _chromium.NewUserAsync("Cyd");
        Dan = await _chromium.NewUserAsync("Dan");
    }

    public async Task DisposeAsync()
    {
        foreach (var user in _chromium is null ? [] : Everyone)
        {
            await File.WriteAllTextAsync(Path.Combine(RepositoryLayout.Artifacts, $"console-{user.Name}.log"), user.ConsoleLog);
        }

        if (_host is not null)
        {
            await File.WriteAllTextAsync(Path.Combine(RepositoryLayout.Artifacts, "sample-host.log"), _host.Output);
        }

        if (_chromium is not null)
        {
            await _chromium.DisposeAsync();
        }

        if (_host is not null)
        {
            await _host.DisposeAsync();
        }
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
            throw new InvalidOperationException($"Step {failed} of the call failed; step {step} builds on it and cannot run.");
        }

        if (_completedStep != step - 1)
        {
            throw new InvalidOperationException(
                $"Step {step} needs steps 1..{step - 1} of the same call first (run the whole {nameof(GroupCallTests)} class).");
        }

        Log($"== step {step}");
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
                try
                {
                    foreach (var connection in await user.PeerConnectionIceAsync())
                    {
                        Log($"    RTCPeerConnection {connection}");
                    }
                }
                catch (Microsoft.Playwright.PlaywrightException)
                {
                    // The page is gone.
                }
            }

            await ScreenshotAsync($"step{step}-failure");
            Log("host output (tail):" + Environment.NewLine + string.Join(Environment.NewLine, Host.Output.Split(Environment.NewLine).TakeLast(40)));
            foreach (var user in Everyone)
            {
                Log($"{user.Name}'s console (tail):" + Environment.NewLine + string.Join(Environment.NewLine, user.ConsoleLog.Split(Environment.NewLine).TakeLast(30)));
            }

            throw;
        }
    }

    /// <summary>Screenshots every open page under <c>{artifacts}/screenshots/</c> and prints the paths.</summary>
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
                Log($"screenshot: {await user.ScreenshotAsync(moment)}");
            }
            catch (Exception e) when (e is Microsoft.Playwright.PlaywrightException or TimeoutException)
            {
                Log($"screenshot of {user.Name} at {moment} failed: {e.Message}");
            }
        }
    }
}
