using System.Diagnostics;
using System.Globalization;
using Talki.Samples.Browser.EndToEndTests.Harness;
using Talki.Samples.Browser.LinkUpBenchmark;

// Link-up benchmark of the browser sample (see README.md): for meshes of 2 to 8 members in headless Chromium,
// the time from the admin's click on "admit" for the last member to every link on every page connected.
// --media video (fake camera and microphone), audio (no camera: fake microphone only) or none (both refused).
// --gather-windows 0,default runs one sample host per client candidate gather window (ms, or `default` for the library's)
// and alternates the runs between them; the signals each new link side sent are counted from the pages' WebSocket frames.
var options = BenchmarkOptions.Parse(args);
if (options is null)
{
    Console.Error.WriteLine(BenchmarkOptions.Usage);
    return 2;
}

void Log(string line) => Console.Error.WriteLine($"{DateTime.Now:HH:mm:ss} {line}");

var timeout = options.Timeout;
var hosts = new List<(string Window, SampleHost Host)>();
try
{
    foreach (var window in options.GatherWindows)
    {
        var settings = new Dictionary<string, string>(options.HostSettings);
        if (window != "default")
        {
            settings["Talki:Sample:CandidateGatherWindowMs"] = window;
        }

        if (options.LinkUpTimeoutMs is { } linkUpMs)
        {
            settings["Talki:Sample:LinkUpTimeoutMs"] = linkUpMs.ToString(CultureInfo.InvariantCulture);
        }

        var started = await SampleHost.StartAsync(TimeSpan.FromMinutes(120), settings);
        hosts.Add((window, started));
        Log($"sample host on {started.BaseAddress} (candidate gather window: {window})");
    }

    await using var chromium = await Chromium.LaunchAsync(hosts[0].Host.BaseAddress, Log);
    var sizes = options.Sizes;
    var bySize = sizes.SelectMany(size => hosts.Select(h => new SizeResults(size, h.Window))).ToList();
    var run = 0;

    // Interleaved (the default): every size's run of a repetition before the next repetition, so that a ratio between two
    // sizes compares runs minutes apart at most, on the same machine weather (docs/performance.md: the 4-member figure
    // moved by a third between invocations run in sequence). --sequential: every repetition of a size before the next size.
    var order = options.Sequential
        ? sizes.SelectMany((size, s) => Enumerable.Range(-options.Warmup, options.Warmup + options.Repetitions).Select(repetition => (s, repetition)))
        : Enumerable.Range(-options.Warmup, options.Warmup + options.Repetitions).SelectMany(repetition => sizes.Select((size, s) => (s, repetition)));
    foreach (var (s, repetition) in order)
    {
        var size = sizes[s];
        for (var w = 0; w < hosts.Count; w++)
        {
            // Alternating: every window gets its run of a repetition before the next repetition starts.
            run++;
            var results = bySize[(s * hosts.Count) + w];
            var label = (repetition < 0 ? "warm-up" : $"run {repetition + 1}/{options.Repetitions}") + $", window {hosts[w].Window}";
            RunResult result;
            try
            {
                result = await LinkUpAsync(chromium, size, run, hosts[w].Host);
            }
            catch (TimeoutException e)
            {
                // A mesh that never links up is a finding, not a reason to stop: counted and reported in the table.
                Log($"{size} members, {label}: FAILED: {e.Message}");
                // Warnings and failures, and what says a member's socket dropped or a message was refused or not delivered.
                string[] telling = ["warn", "fail", "suspended", "resumed", "error", "dropped", "refused"];
                foreach (var line in hosts[w].Host.Output.Split(Environment.NewLine).Where(l => telling.Any(t => l.Contains(t, StringComparison.OrdinalIgnoreCase))).TakeLast(60))
                {
                    Log("  host: " + line);
                }

                results.Failed += repetition >= 0 ? 1 : 0;
                continue;
            }

            Log($"{size} members, {label}: {result.Milliseconds:0} ms, every page's tiles at {result.TilesShown:0} ms, CPU {result.CpuBusy:P0} busy{(options.BeforeClickMs == 0 ? string.Empty : $" ({result.CpuBusyBefore:P0} in the {options.BeforeClickMs} ms before the click)")}; signals per new link side at link-up [{string.Join(", ", result.SignalsAtLinkUp)}], after {options.SettleMs} ms [{string.Join(", ", result.SignalsAfterSettle)}]");
            foreach (var side in result.Detail)
            {
                Log($"  {side}");
            }

            if (repetition >= 0)
            {
                results.ByRepetition[repetition] = result.Milliseconds;
                results.CpuBusy.Add(result.CpuBusy);
                results.CpuBusyBefore.Add(result.CpuBusyBefore);
                results.TilesShown.Add(result.TilesShown);
                results.AtLinkUp.AddRange(result.SignalsAtLinkUp);
                results.AfterSettle.AddRange(result.SignalsAfterSettle);
            }
        }
    }

    Console.WriteLine($"Link-up time in headless Chromium {chromium.Browser.Version} on {Environment.ProcessorCount} cores, media: {options.Media}: from the admin's click on");
    Console.WriteLine("\"admit\" for the last member to every link on every page `connected` (max `connectedAt` of the hook). Signals: `signal` frames and `signals` entries");
    Console.WriteLine($"each side of the last member's links sent after the click (Playwright framesent), until all links were up / {options.SettleMs} ms later.");
    Console.WriteLine();
    Console.WriteLine("CPU busy: the machine's busy share of all cores' time from the click to the benchmark seeing every link up (/proc/stat); before");
    Console.WriteLine($"the click: the same over the {options.BeforeClickMs} ms the benchmark waits before it, the last member waiting and the others' call running (what the link-up shares the machine with).");
    Console.WriteLine();
    Console.WriteLine("Tiles shown: from the same click until every page had a tile for every other member in its DOM (test-side MutationObserver): when the call was on screen.");
    Console.WriteLine();
    Console.WriteLine($"Order: {(options.Sequential ? "sequential (every repetition of a size, then the next size)" : "interleaved (each repetition runs every size, in the order given)")}. Against the smallest size: the ratio of the two runs of each repetition, median (min–max) over the repetitions where both linked up.");
    Console.WriteLine();
    Console.WriteLine($"| members | links | gather window | runs | median (ms) | min (ms) | max (ms) | against {sizes.Min()} members, per repetition: median (min–max) | CPU busy: median (min–max) | CPU busy before the click: median (min–max) | signals per link side at link-up: median (min–max) | after settling: median (min–max) | tiles shown (ms): median (min–max) | failed runs (no link-up within {timeout.TotalSeconds:0} s) |");
    Console.WriteLine("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    foreach (var results in bySize)
    {
        Console.WriteLine(LinkUpTable.Row(results, bySize.First(r => r.Size == sizes.Min() && r.Window == results.Window), options.BeforeClickMs));
    }
}
finally
{
    foreach (var (_, started) in hosts)
    {
        await started.DisposeAsync();
    }
}

return 0;

// One call: the admin creates a room, admits everyone but the last member and waits for that mesh; then admits the
// last member (timed click) and waits for the full mesh. Fresh users (browser contexts) every time.
async Task<RunResult> LinkUpAsync(Chromium chromium, int size, int runNumber, SampleHost host)
{
    var users = new List<TalkiUser>();
    var signals = new SignalCounter();
    try
    {
        for (var i = 0; i < size; i++)
        {
            var user = await chromium.NewUserAsync($"R{runNumber}M{i}", options.UserOptions with { BaseAddress = host.BaseAddress });
            signals.Watch(user);
            if (options.PageStyle is { } style)
            {
                // Test-side: a style sheet added to every page (e.g. to switch animations off and see what they cost).
                await user.Context.AddInitScriptAsync(
                    "document.addEventListener('DOMContentLoaded', () => { const s = document.createElement('style'); s.textContent = "
                    + System.Text.Json.JsonSerializer.Serialize(style) + "; document.head.appendChild(s); });");
            }

            // Test-side: the page's WebSockets, for a failure's report (readyState and bufferedAmount of the signalling socket).
            await user.Context.AddInitScriptAsync("""
                (() => {
                  const Native = window.WebSocket;
                  if (!Native || window.__talkiE2eSockets) return;
                  const all = [];
                  class Tracked extends Native { constructor(...args) { super(...args); all.push(this); } }
                  window.WebSocket = Tracked;
                  window.__talkiE2eSockets = all;
                })();
                """);
            await TilesShown.InstallAsync(user.Context);
            users.Add(user);
        }

        signals.Start(); // the set-up's signals, for a failure's report; counted afresh from the timed click

        if (options.Trace)
        {
            await PageTrace.InstallAsync(users[0].Page);
            await PageTrace.InstallAsync(users[^1].Page);
        }

        var admin = users[0];
        await admin.OpenAsync("/");
        var link = await admin.CreateRoomAsync(timeout);
        await admin.WaitForStateAsync(timeout, "Admitted");

        // The last member's page starts first, while the machine is idle, and waits at the sign-in form: a Blazor
        // WebAssembly page starting while a 7-member audio call holds both cores had not asked to join after 60 s
        // (2026-12-03: vmstat 0 % idle from the 7-member mesh on). Signing in and knocking stay after the mesh.
        var last = users[^1];
        if (size > 1)
        {
            await last.OpenRoomAsync(link, timeout);
        }

        var early = users.Take(size - 1).ToList();
        // One page starts at a time (the set-up is not timed): six Blazor WebAssembly pages starting together on two cores
        // often left one without its sign-in form or its call after 60 s, failing the run (2026-12-01: every 8-member run
        // of one invocation, before and after a change alike).
        var setUp = Stopwatch.StartNew();
        foreach (var member in early.Skip(1))
        {
            await member.JoinAsync(link, timeout);
        }

        Log($"  set-up: {early.Count - 1} member(s) asked to join after {setUp.Elapsed.TotalSeconds:0.0} s");

        foreach (var member in early.Skip(1))
        {
            await admin.AdmitAsync(member.Name, timeout);
        }

        foreach (var member in early.Skip(1))
        {
            await member.WaitForStateAsync(timeout, "Admitted");
        }

        Log($"  set-up: admitted after {setUp.Elapsed.TotalSeconds:0.0} s");
        if (early.Count > 1)
        {
            await WaitForMeshAsync(early, await Mesh.MemberIdsAsync(early, timeout), signals, host);
            Log($"  set-up: the first {early.Count} members' mesh connected after {setUp.Elapsed.TotalSeconds:0.0} s");
        }

        await last.JoinAsync(link, timeout, opened: size > 1);
        await last.WaitForStateAsync(timeout, "Waiting");
        Log($"  set-up: the last member asked to join after {setUp.Elapsed.TotalSeconds:0.0} s");
        // What the timed link-up shares the machine with: the others' call (its media, once there are two of them) and
        // every page's idle work, over the wait before the click (before the profiler or the trace starts).
        var quietFrom = CpuTimes.Read();
        var quietProcesses = options.BeforeClickMs == 0 ? null : ProcessCpu.Read(host.ProcessId); // no wait, nothing to read
        await Task.Delay(options.BeforeClickMs);
        var cpuBusyBefore = options.BeforeClickMs == 0 ? double.NaN : CpuTimes.Read().BusySince(quietFrom);
        var byProcessBefore = quietProcesses is null ? [] : ProcessCpu.Read(host.ProcessId).Since(quietProcesses, $"the {options.BeforeClickMs} ms before the click");
        var profile = options.Profile ? await PageProfile.StartAsync(last.Page) : null;
        var chromeTrace = options.ChromeTraceDirectory is { } traceDirectory
            ? await ChromeTrace.StartAsync(chromium.Browser, Path.Combine(traceDirectory, $"run{runNumber}-{size}members.json"))
            : null;
        signals.Start();
        var processesBefore = ProcessCpu.Read(host.ProcessId);
        var cpuBefore = CpuTimes.Read();
        var admittedAt = await admin.AdmitTimedAsync(last.Name, timeout);

        var ids = await Mesh.MemberIdsAsync(users, timeout);
        await WaitForMeshAsync(users, ids, signals, host);

        var cpuBusy = CpuTimes.Read().BusySince(cpuBefore);
        var byProcess = ProcessCpu.Read(host.ProcessId).Since(processesBefore);
        var profiled = profile is null ? [] : await profile.StopAsync(top: 25);
        var browserTraced = chromeTrace is null ? [] : await chromeTrace.StopAsync(top: 12);
        var sides = users.Take(size - 1).SelectMany(u => new[] { (From: u, To: last), (From: last, To: u) }).ToList();
        var atLinkUp = sides.Select(s => signals.Between(s.From, ids[s.To]).Count).ToList();
        var connectedAt = new List<double>();
        var linksOf = new Dictionary<TalkiUser, IReadOnlyDictionary<string, LinkStats>>();
        foreach (var user in users)
        {
            var links = linksOf[user] = await user.ConnectedLinksByPeerAsync();
            foreach (var other in users.Where(u => u != user))
            {
                connectedAt.Add(links[ids[other]].ConnectedAt
                    ?? throw new InvalidOperationException($"{user.Name}'s link to {other.Name} is connected but has no connectedAt"));
            }
        }

        var traces = new List<string>();
        if (options.Trace)
        {
            foreach (var traced in new[] { last, admin })
            {
                traces.Add($"{traced.Name}'s page, ms after the click:");
                traces.AddRange((await PageTrace.ReadAsync(traced.Page, admittedAt)).Select(line => "    " + line));
            }
        }

        await Task.Delay(options.SettleMs); // late candidates (the end of gathering) still belong to these links
        signals.Stop();
        var detail = sides.Select(s => $"{s.From.Name}→{s.To.Name}: {string.Join(", ", signals.Between(s.From, ids[s.To]))}").ToList();
        // The timeline of the last member's links: what it received (test-side clock, from just before the click) and when
        // each side of each link connected (the pages' clock, from the click).
        detail.Add($"{last.Name} received: {string.Join(", ", signals.ReceivedBy(last))}");
        foreach (var other in users.Take(size - 1))
        {
            detail.Add(string.Create(CultureInfo.InvariantCulture,
                $"{last.Name}–{other.Name} connected: {last.Name}'s side @{linksOf[last][ids[other]].ConnectedAt - admittedAt:0}, {other.Name}'s side @{linksOf[other][ids[last]].ConnectedAt - admittedAt:0}"));
        }

        var afterSettle = sides.Select(s => signals.Between(s.From, ids[s.To]).Count).ToList();
        // After the link-up's figures are taken (its polling adds to the machine's load): when every page showed the call.
        var tilesShown = await TilesShown.LatestAsync(users.Select(u => u.Page), size - 1, admittedAt, TimeSpan.FromSeconds(10));
        detail.AddRange(byProcessBefore);
        detail.AddRange(byProcess);
        detail.AddRange(traces);
        detail.AddRange(browserTraced);
        if (profiled.Count > 0)
        {
            detail.Add($"{last.Name}'s page from just before the click until the mesh was seen connected (polled):");
            detail.AddRange(profiled.Select(line => "    " + line));
        }
        return new RunResult(connectedAt.Max() - admittedAt, atLinkUp, afterSettle, detail, cpuBusy, cpuBusyBefore, tilesShown);
    }
    finally
    {
        foreach (var user in users)
        {
            await user.DisposeAsync();
        }
    }
}

// Waits for every link of the mesh; when it times out, the failure says what each directed link sent and what the other
// side's socket received (a signal lost on the way, or received and left unapplied) and the pages' last console lines.
async Task WaitForMeshAsync(IReadOnlyList<TalkiUser> members, IReadOnlyDictionary<TalkiUser, string> ids, SignalCounter signals, SampleHost host)
{
    try
    {
        await Mesh.WaitUntilConnectedAsync(members, ids, timeout, requireRenderingTiles: false, readStats: options.PollStats);
    }
    catch (TimeoutException e)
    {
        signals.Stop();
        var lines = new List<string> { e.Message, "signals since the counter started (ms):" };
        foreach (var from in members)
        {
            foreach (var to in members.Where(m => m != from))
            {
                var sent = signals.Between(from, ids[to]);
                var received = signals.ReceivedBy(to).Where(r => r.Contains($" from {ids[from]}@", StringComparison.Ordinal)).ToList();
                lines.Add($"{from.Name}→{to.Name}: sent [{string.Join(", ", sent)}] received [{string.Join(", ", received)}]");
            }
        }

        // The host's sockets: a send queue that does not drain says a page stopped reading; a receive queue, the host.
        try
        {
            using var ss = Process.Start(new ProcessStartInfo("ss", $"-tni sport = :{host.BaseAddress.Port}") { RedirectStandardOutput = true })!;
            lines.AddRange((await ss.StandardOutput.ReadToEndAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => "ss: " + l));
        }
        catch (System.ComponentModel.Win32Exception)
        {
            lines.Add("ss: not available");
        }

        foreach (var member in members)
        {
            lines.Add($"{member.Name} ({ids[member]}) received besides relayed signals: {string.Join(", ", signals.ReceivedBy(member).Where(r => !r.StartsWith("signal:", StringComparison.Ordinal)))}");
            try
            {
                // Whether the page's main thread answers at all (a signal received by the browser waits for it), and its socket's state.
                var probe = Stopwatch.StartNew();
                var socket = await member.Page.EvaluateAsync<string>("() => String((window.__talkiE2eSockets ?? []).map(s => `${s.readyState}/${s.bufferedAmount}`))");
                lines.Add($"  {member.Name}: main thread answered in {probe.ElapsedMilliseconds} ms; sockets (readyState/bufferedAmount): [{socket}]");
            }
            catch (Microsoft.Playwright.PlaywrightException pe)
            {
                lines.Add($"  {member.Name}: main thread not probed ({pe.Message})");
            }

            try
            {
                // Every RTCPeerConnection the page created, closed ones too (a link reset leaves one behind), in creation order.
                lines.AddRange((await member.PeerConnectionIceAsync()).Select(pc => $"  {member.Name} connection {pc.Index}: {pc.ConnectionState}, {pc.Details}"));
            }
            catch (Microsoft.Playwright.PlaywrightException pe)
            {
                lines.Add($"  {member.Name}: connections not read ({pe.Message})");
            }

            lines.AddRange(member.ConsoleLog.Split(Environment.NewLine).TakeLast(12).Select(l => $"  {member.Name} console: {l}"));
        }

        throw new TimeoutException(string.Join(Environment.NewLine + "  ", lines), e);
    }
}

/// <summary>One run: the link-up time, the signals each side of the last member's links sent (at link-up, after settling), and per side which.</summary>
internal sealed record RunResult(double Milliseconds, IReadOnlyList<int> SignalsAtLinkUp, IReadOnlyList<int> SignalsAfterSettle, IReadOnlyList<string> Detail, double CpuBusy, double CpuBusyBefore, double TilesShown);

/// <summary>The machine's CPU time from the first line of <c>/proc/stat</c> (all cores; proc(5)), to tell a slow link-up from a saturated machine.</summary>
internal readonly record struct CpuTimes(long Busy, long Total)
{
    public static CpuTimes Read()
    {
        // cpu  user nice system idle iowait irq softirq steal ...: idle and iowait are the idle time.
        var fields = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1).Take(8).Select(long.Parse).ToArray();
        var total = fields.Sum();
        return new CpuTimes(total - fields[3] - fields[4], total);
    }

    /// <summary>The share of the machine's CPU time that was busy since <paramref name="before"/> (0 to 1).</summary>
    public double BusySince(CpuTimes before) => Total == before.Total ? 0 : (double)(Busy - before.Busy) / (Total - before.Total);
}

internal sealed record BenchmarkOptions(IReadOnlyList<int> Sizes, int Repetitions, int Warmup, string Media = "video")
{
    public const string Usage = "usage: Talki.Samples.Browser.LinkUpBenchmark [--sizes 2,3,4] [--repetitions 5] [--warmup 1] [--media video|audio|none] [--gather-windows 0,default] [--settle-ms 2000] [--before-click-ms 1000] [--link-up-timeout-ms 30000] [--timeout-s 60] [--host-setting Key=Value] [--trace] [--profile] [--chrome-trace DIR] [--poll-stats] [--page-style CSS]";

    /// <summary>The client candidate gather windows to compare (ms, or <c>default</c>: the sample's configuration is left alone); one host each.</summary>
    public IReadOnlyList<string> GatherWindows { get; init; } = ["default"];

    /// <summary>Whether the admin's and the last member's pages are traced (<see cref="PageTrace"/>) and their timelines logged.</summary>
    public bool Trace { get; init; }

    /// <summary>Whether the last member's page is CPU-profiled over the timed link-up (<see cref="PageProfile"/>) and the summary logged.</summary>
    public bool Profile { get; init; }

    /// <summary>
    /// Where a Chromium trace of the whole browser over each timed link-up is saved (<see cref="ChromeTrace"/>), or null:
    /// no trace. Each traced run also logs the trace's summary.
    /// </summary>
    public string? ChromeTraceDirectory { get; init; }

    /// <summary>
    /// Whether the wait for the mesh also reads every connection's <c>getStats()</c> at each poll (twice a second, every
    /// page), as the benchmark did until 2026-12-04: that work fell inside the timed link-up, 56 reports per poll at 8
    /// members against 2 at 2. Off by default; on, to compare with figures taken before.
    /// </summary>
    public bool PollStats { get; init; }

    /// <summary>A style sheet the benchmark adds to every page (<c>--page-style</c>), or null: the sample as it ships.</summary>
    public string? PageStyle { get; init; }

    /// <summary>The clients' link-up watchdog in ms (<c>TalkiClientOptions.LinkUpTimeout</c>), or null for the library's default.</summary>
    public int? LinkUpTimeoutMs { get; init; }

    /// <summary>More settings of the sample host (<c>--host-setting Key=Value</c>, e.g. <c>Logging:LogLevel:Talki=Debug</c>).</summary>
    public IReadOnlyDictionary<string, string> HostSettings { get; init; } = new Dictionary<string, string>();

    /// <summary>How long the benchmark waits for each step, the mesh's link-up included, before it counts the run as failed.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>How long after link-up the signals are still counted (late candidates).</summary>
    public int SettleMs { get; init; } = 2000;

    /// <summary>
    /// How long the benchmark waits, once the last member is waiting, before the admin clicks (the machine's load measured
    /// over it): an admin answers a knock after seconds, not in the moment the others' mesh connected. 0: at once.
    /// </summary>
    public int BeforeClickMs { get; init; } = 1000;

    /// <summary>Every repetition of a size before the next size (before 2026-12-05 the only order), instead of interleaved.</summary>
    public bool Sequential { get; init; }

    /// <summary>The browser contexts: camera and microphone (video), microphone only (audio: no camera), or both refused (none).</summary>
    public UserOptions UserOptions => Media switch
    {
        "audio" => MediaScripts.AudioOnly,
        "none" => MediaScripts.NoMedia,
        _ => new UserOptions(),
    };

    public static BenchmarkOptions? Parse(string[] args)
    {
        IReadOnlyList<int> sizes = [2, 3, 4];
        var repetitions = 5;
        var warmup = 1;
        var media = "video";
        IReadOnlyList<string> windows = ["default"];
        var settleMs = 2000;
        var trace = false;
        var profile = false;
        var pollStats = false;
        string? chromeTrace = null;
        string? pageStyle = null;
        int? linkUpTimeoutMs = null;
        var hostSettings = new Dictionary<string, string>();
        var timeoutSeconds = 60;
        var beforeClickMs = 1000;
        var sequential = false;
        for (var i = 0; i < args.Length; i++)
        {
            var value = i + 1 < args.Length ? args[i + 1] : null;
            switch (args[i])
            {
                case "--sizes" when value is not null:
                    sizes = [.. value.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(s => int.Parse(s, CultureInfo.InvariantCulture))];
                    i++;
                    break;
                case "--repetitions" when int.TryParse(value, CultureInfo.InvariantCulture, out var r) && r > 0:
                    repetitions = r;
                    i++;
                    break;
                case "--warmup" when int.TryParse(value, CultureInfo.InvariantCulture, out var w) && w >= 0:
                    warmup = w;
                    i++;
                    break;
                case "--media" when value is "video" or "audio" or "none":
                    media = value;
                    i++;
                    break;
                case "--gather-windows" when value is not null:
                    windows = [.. value.Split(',', StringSplitOptions.RemoveEmptyEntries)];
                    if (windows.Any(w => w != "default" && !(int.TryParse(w, NumberStyles.None, CultureInfo.InvariantCulture, out var ms) && ms <= 500)))
                    {
                        return null;
                    }

                    i++;
                    break;
                case "--trace":
                    trace = true;
                    break;
                case "--profile":
                    profile = true;
                    break;
                case "--chrome-trace" when value is not null:
                    chromeTrace = value;
                    i++;
                    break;
                case "--poll-stats":
                    pollStats = true;
                    break;
                case "--sequential":
                    sequential = true;
                    break;
                case "--page-style" when value is not null:
                    pageStyle = value;
                    i++;
                    break;
                case "--settle-ms" when int.TryParse(value, CultureInfo.InvariantCulture, out var settle) && settle >= 0:
                    settleMs = settle;
                    i++;
                    break;
                case "--before-click-ms" when int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var beforeClick):
                    beforeClickMs = beforeClick;
                    i++;
                    break;
                case "--link-up-timeout-ms" when int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var linkUp) && linkUp > 0:
                    linkUpTimeoutMs = linkUp;
                    i++;
                    break;
                case "--host-setting" when value?.Split('=', 2) is [{ Length: > 0 } key, var setting]:
                    hostSettings[key] = setting;
                    i++;
                    break;
                case "--timeout-s" when int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var seconds) && seconds > 0:
                    timeoutSeconds = seconds;
                    i++;
                    break;
                default:
                    return null;
            }
        }

        return sizes.All(s => s is >= 2 and <= 8) && windows.Count > 0
            ? new BenchmarkOptions(sizes, repetitions, warmup, media) { GatherWindows = windows, SettleMs = settleMs, BeforeClickMs = beforeClickMs, Sequential = sequential, Trace = trace, Profile = profile, ChromeTraceDirectory = chromeTrace, PollStats = pollStats, PageStyle = pageStyle, LinkUpTimeoutMs = linkUpTimeoutMs, HostSettings = hostSettings, Timeout = TimeSpan.FromSeconds(timeoutSeconds) }
            : null;
    }
}
