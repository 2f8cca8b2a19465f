using System.Globalization;

namespace Talki.Samples.Browser.LinkUpBenchmark;

/// <summary>
/// The CPU time of every thread of the processes that share the machine during a link-up, from <c>/proc</c> (proc(5):
/// <c>/proc/PID/task/TID/stat</c>, fields 14 and 15, <c>utime</c> and <c>stime</c> in clock ticks), so a run can say
/// where the cores went: Chromium's renderers (one per page: every user has its own browser context) by thread name
/// (<c>main</c>, the process's first thread, runs the page's JavaScript and .NET's WebAssembly; the <c>WebRTC_*</c>
/// threads and the rest are Chromium's), its browser, GPU and utility processes, the sample host, Playwright's driver and
/// this benchmark. Two reads per run, no process started: a poller that forks perturbs what it measures. A thread that
/// ends between the two reads is not counted.
/// </summary>
internal sealed class ProcessCpu
{
    private static readonly double MsPerTick = 1000.0 / 100; // USER_HZ is 100 on Linux (sysconf(_SC_CLK_TCK))

    private readonly Dictionary<(int Pid, int Tid), (string Process, string Thread, long Ticks)> _threads;

    private ProcessCpu(Dictionary<(int, int), (string, string, long)> threads) => _threads = threads;

    /// <summary>Reads every thread of the processes of interest: Chromium's, <c>node</c> (Playwright's driver), <c>dotnet</c> (the host and this benchmark).</summary>
    public static ProcessCpu Read(int hostPid)
    {
        var threads = new Dictionary<(int, int), (string, string, long)>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
            {
                continue;
            }

            try
            {
                var kind = Classify(pid, hostPid, File.ReadAllText(Path.Combine(dir, "cmdline")).Replace('\0', ' '));
                if (kind is null)
                {
                    continue;
                }

                foreach (var task in Directory.EnumerateDirectories(Path.Combine(dir, "task")))
                {
                    var tid = int.Parse(Path.GetFileName(task), CultureInfo.InvariantCulture);
                    var stat = File.ReadAllText(Path.Combine(task, "stat"));
                    // pid (comm) state ...: comm may hold spaces and parentheses, so fields count from the last ')'.
                    var close = stat.LastIndexOf(')');
                    var name = stat[(stat.IndexOf('(') + 1)..close];
                    var fields = stat[(close + 2)..].Split(' ');
                    // fields[0] is field 3 (state): utime is field 14, stime field 15.
                    var ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
                    threads[(pid, tid)] = (kind, tid == pid ? "main" : name, ticks);
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // the process or thread ended meanwhile
            }
        }

        return new ProcessCpu(threads);
    }

    private static string? Classify(int pid, int hostPid, string cmdline)
    {
        if (pid == hostPid)
        {
            return "host";
        }

        if (pid == Environment.ProcessId)
        {
            return "benchmark";
        }

        if (cmdline.Contains("chrom", StringComparison.OrdinalIgnoreCase))
        {
            var type = cmdline.Split(' ').FirstOrDefault(a => a.StartsWith("--type=", StringComparison.Ordinal))?["--type=".Length..];
            return type switch
            {
                null => "browser",
                "renderer" => $"renderer {pid}",
                "utility" when cmdline.Contains("network.mojom", StringComparison.Ordinal) => "network service",
                "utility" => "utility",
                "gpu-process" => "gpu",
                _ => type,
            };
        }

        return cmdline.Contains("playwright", StringComparison.OrdinalIgnoreCase) || cmdline.Contains("run-driver", StringComparison.Ordinal)
            ? "playwright driver"
            : null;
    }

    /// <summary>
    /// What each kind of process, and each renderer thread name summed over the renderers, spent since
    /// <paramref name="before"/> (ms, largest first; threads that started since count from 0), and the renderers one by one;
    /// <paramref name="window"/> names the time between the two reads.
    /// </summary>
    public IReadOnlyList<string> Since(ProcessCpu before, string window = "the link-up")
    {
        var spent = _threads.Select(t =>
        {
            var was = before._threads.TryGetValue(t.Key, out var b) ? b.Ticks : 0;
            return (t.Value.Process, t.Value.Thread, Ms: (t.Value.Ticks - was) * MsPerTick);
        }).ToList();

        static string Ms(double ms) => ms.ToString("#,0", CultureInfo.InvariantCulture);
        var renderers = spent.Where(s => s.Process.StartsWith("renderer ", StringComparison.Ordinal)).ToList();
        var byKind = spent.GroupBy(s => s.Process.StartsWith("renderer ", StringComparison.Ordinal) ? "renderers" : s.Process)
            .Select(g => (Kind: g.Key, Ms: g.Sum(s => s.Ms))).Where(g => g.Ms > 0).OrderByDescending(g => g.Ms);
        var byRendererThread = renderers.GroupBy(s => s.Thread).Select(g => (Thread: g.Key, Ms: g.Sum(s => s.Ms)))
            .Where(g => g.Ms > 0).OrderByDescending(g => g.Ms);
        var perRenderer = renderers.GroupBy(s => s.Process).Select(g => (
                Total: g.Sum(s => s.Ms),
                Main: g.Where(s => s.Thread == "main").Sum(s => s.Ms)))
            .Where(r => r.Total > 0).OrderByDescending(r => r.Total);
        return
        [
            $"CPU by process over {window} (ms): " + string.Join(", ", byKind.Select(k => $"{k.Kind} {Ms(k.Ms)}")),
            "  renderers by thread name: " + string.Join(", ", byRendererThread.Select(t => $"{t.Thread} {Ms(t.Ms)}")),
            "  each renderer, total (main thread): " + string.Join(", ", perRenderer.Select(r => $"{Ms(r.Total)} ({Ms(r.Main)})")),
        ];
    }
}
