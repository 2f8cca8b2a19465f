using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using Talki.Signalling.Soak;

namespace Talki.Benchmarks.Load;

/// <summary>The machine the figures come from.</summary>
internal sealed record Machine(int Cores, string Model, string Memory, string Os, string DotNet, string Node, string OpenFiles)
{
    public static Machine Describe() => new(
        Environment.ProcessorCount,
        ProcLine("/proc/cpuinfo", "model name") ?? "?",
        ProcLine("/proc/meminfo", "MemTotal") is { } total && long.TryParse(total.Split(' ', StringSplitOptions.RemoveEmptyEntries)[0], CultureInfo.InvariantCulture, out var kb)
            ? $"{kb / 1024.0 / 1024:0.0} GiB" : "?",
        RuntimeInformation.OSDescription,
        RuntimeInformation.FrameworkDescription,
        Run("node", "--version"),
        File.Exists("/proc/self/limits") ? File.ReadLines("/proc/self/limits").FirstOrDefault(l => l.StartsWith("Max open files", StringComparison.Ordinal))?.Split(' ', StringSplitOptions.RemoveEmptyEntries)[3] ?? "?" : "?");

    public static string LoadAverage() => File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "?";

    private static string? ProcLine(string file, string key) =>
        File.Exists(file) ? File.ReadLines(file).FirstOrDefault(l => l.StartsWith(key, StringComparison.Ordinal))?.Split(':', 2)[1].Trim() : null;

    private static string Run(string file, string argument)
    {
        try
        {
            using var process = Process.Start(new ProcessStartInfo(file, argument) { RedirectStandardOutput = true, UseShellExecute = false })!;
            var output = process.StandardOutput.ReadToEnd().Trim();
            process.WaitForExit();
            return output;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return "not found";
        }
    }
}

/// <summary>The table: a row per server, a column per measure; then how each figure came about.</summary>
internal static class Report
{
    private const string Invalid = "✗";

    public static string Describe(RunResult run) => run.Failure is not null
        ? $"{Invalid} {run.Failure}"
        : string.Concat(
            run.Valid ? "" : Invalid + " ",
            Format($"{run.Delivered:N0} msg/s delivered; sent {run.Sent:N0}, received {run.Received:N0}, lost {run.Lost:N0}, out of order {run.OutOfOrder:N0}; "),
            Format($"latency min {run.LatencyMs[0]:0.00}, p50 {run.LatencyMs[1]:0.00}, p99 {run.LatencyMs[2]:0.00}, max {run.LatencyMs[3]:0.00} ms; "),
            Format($"server CPU {run.Cpu.TotalSeconds:0.00} s in {run.Window.TotalSeconds:0.00} s ({run.CpuPercent:0.0} %, {run.CpuMicrosecondsPerMessage:0.0} µs/msg; JIT compilation {run.CompilerCpu.TotalSeconds:0.00} s of it); "),
            Format($"client CPU {run.ClientCpuPercent:0} % ({run.ClientCollections} GCs, {run.ClientGcPause.TotalMilliseconds:0} ms paused, {run.ClientAllocatedBytes / 1048576.0:0.0} MiB allocated), machine busy {run.MachineBusyPercent:0} % of {Environment.ProcessorCount} cores; "),
            Format($"sockets closed by the server {run.SocketsClosed}, error frames {run.ErrorFrames}{FirstError(run)}, send failures {run.SendFailures}{(run.RawMismatches == 0 ? "" : $", relayed messages read differently from the parser {run.RawMismatches}")}"),
            run.Rate > 0 ? Format($", schedule lag max {run.MaxScheduleLagMs:0.0} ms") : "");

    /// <summary>The first error frame of a run, in brackets after the count, cut at 200 characters (empty when none came).</summary>
    internal static string FirstError(RunResult run) => run.FirstErrorFrame switch
    {
        null => string.Empty,
        { Length: > 200 } text => $" (the first: {text[..200]}…)",
        var text => $" (the first: {text})",
    };

    public static string Markdown(LoadOptions options, Machine machine, string loadBefore, DateTimeOffset started, IReadOnlyList<ServerResult> results)
    {
        var text = new StringBuilder();
        text.AppendLine("# Signalling load: Talki gateway, peerjs-server, bare Kestrel relay").AppendLine();
        text.AppendLine(Format($"{started:yyyy-MM-dd HH:mm} UTC, `Talki.Benchmarks.Load {options.CommandLine}`")).AppendLine();
        text.AppendLine(Format($"Machine: {machine.Cores} cores (nproc), {machine.Model}, {machine.Memory} RAM; {machine.Os}; {machine.DotNet}; node {machine.Node}; open files limit {machine.OpenFiles}; load average {loadBefore} before, {Machine.LoadAverage()} after; servers {(options.ServerCpus is null ? "not pinned" : "pinned to CPUs " + options.ServerCpus)}{(options.ServerEnvironment.Count == 0 ? string.Empty : ", server environment " + string.Join(' ', options.ServerEnvironment.Select(v => v.Key + "=" + v.Value)))}, this tool on the same machine, its WebSocket client {(options.Client == LoadTransport.Lean ? "LeanClientWebSocket (`--client lean`)" : "ClientWebSocket (`--client runtime`)")}.")).AppendLine();

        var header = new List<string> { "server", Format($"start-up ms (median of {options.Startups})") };
        header.AddRange(options.Pairs.Select(p => Format($"msg/s at {p:N0} pairs (server CPU µs/msg)")));
        header.AddRange(options.Rates.Select(r => Format($"{r:N0} msg/s over {options.RatePairs:N0} pairs: p50 / p99 / max ms (server CPU)")));
        header.AddRange(options.Idle.Select(k => Format($"RSS per idle connection at {k:N0} (KiB)")));
        TableHead(text, header);
        foreach (var result in results)
        {
            var row = new List<string> { Label(options, result), Startup(result) };
            row.AddRange(options.Pairs.Select(p => Saturation(result.Saturation.FirstOrDefault(r => r.Pairs == p))));
            row.AddRange(options.Rates.Select(r => OpenLoop(result.OpenLoop.FirstOrDefault(o => o.Rate == r))));
            row.AddRange(options.Idle.Select(k => Idle(result.Idle.FirstOrDefault(i => i.Connections == k))));
            text.AppendLine("| " + string.Join(" | ", row) + " |");
        }

        text.AppendLine();
        text.AppendLine(Format($"{Invalid}: not a valid figure (messages lost, duplicated or reordered, a socket closed by the server, a relayed message the tool read differently from the parser, or the run failed); `n/a`: not measured. Runs: {options.Warmup.TotalSeconds:0.#} s warm-up, then {options.Duration.TotalSeconds:0.#} s measured; saturation with {options.Window} messages in flight per direction and pair; idle RSS read {options.Settle.TotalSeconds:0.#} s after the last connection opened. See benchmarks/README.md."));
        text.AppendLine();
        if (options.Repeat > 1)
        {
            Medians(text, options, results, header);
        }

        Targets(text, options, results);
        foreach (var result in results)
        {
            text.AppendLine(Format($"## {Label(options, result)}")).AppendLine();
            text.AppendLine(Format($"`{result.Command}`")).AppendLine();
            text.AppendLine(Format($"- start-ups: {string.Join(", ", result.Startups.Select(s => s.TotalMilliseconds.ToString("0", CultureInfo.InvariantCulture)))} ms"));
            foreach (var run in result.Saturation)
            {
                text.AppendLine(Format($"- saturation, {run.Pairs:N0} pairs: {Describe(run)}"));
            }

            foreach (var run in result.OpenLoop)
            {
                text.AppendLine(Format($"- open loop, {run.Rate:N0} msg/s over {run.Pairs:N0} pairs: {Describe(run)}"));
            }

            IdleResult? previous = null;
            foreach (var idle in result.Idle)
            {
                // The marginal cost (from the previous count) leaves out what does not grow with the connections.
                var marginal = previous is null ? "" : Format($", {(idle.ResidentBytes - previous.ResidentBytes) / 1024.0 / (idle.Connections - previous.Connections):0.0} KiB per connection from {previous.Connections:N0} to {idle.Connections:N0}");
                text.AppendLine(Format($"- idle, {idle.Connections:N0} connections: RSS {Mib(idle.ResidentBytes)} (baseline {Mib(idle.BaselineBytes)} with {idle.WarmConnections:N0} JIT warm-up connections; fresh baseline {Mib(idle.FreshBaselineBytes)}), {idle.BytesPerConnection / 1024:0.0} KiB per connection{marginal}; {idle.BytesPerConnectionFromFresh / 1024:0.0} KiB per connection from the fresh baseline ({idle.Connections + idle.WarmConnections:N0} connections, the JIT's work included); {idle.SocketsClosed} closed by the server"));
                previous = idle;
            }

            foreach (var failure in result.Failures)
            {
                text.AppendLine(Format($"- {Invalid} {failure}"));
            }

            text.AppendLine();
        }

        return text.ToString();
    }

    /// <summary>A table's header row and its alignment row (the first column left, the figures right).</summary>
    private static void TableHead(StringBuilder text, List<string> header)
    {
        text.AppendLine("| " + string.Join(" | ", header) + " |");
        text.AppendLine("|" + string.Concat(header.Select((_, i) => i == 0 ? "---|" : "---:|")));
    }

    private static string Label(LoadOptions options, ServerResult result) => options.Repeat > 1 ? Format($"{result.Name}, round {result.Round}") : result.Name;

    /// <summary>The median of every figure over the rounds, valid runs only (the count when some were not).</summary>
    private static void Medians(StringBuilder text, LoadOptions options, IReadOnlyList<ServerResult> results, List<string> header)
    {
        text.AppendLine(Format($"Medians over {options.Repeat} rounds (valid runs only; `k of n` when some were not):")).AppendLine();
        TableHead(text, header);
        foreach (var group in results.GroupBy(r => r.Name))
        {
            var row = new List<string> { group.Key };
            var startups = group.SelectMany(r => r.Startups).Select(t => t.TotalMilliseconds).ToList();
            row.Add(startups.Count == 0 ? Invalid : Format($"{Median(startups):0}"));
            foreach (var pairs in options.Pairs)
            {
                var runs = group.Select(r => r.Saturation.FirstOrDefault(x => x.Pairs == pairs)).OfType<RunResult>().Where(r => r.Valid).ToList();
                row.Add(runs.Count == 0 ? Invalid : Format($"{Median(runs.Select(r => r.Delivered)):N0} ({Median(runs.Select(r => r.CpuMicrosecondsPerMessage)):0.0}){Count(runs.Count, group.Count())}"));
            }

            foreach (var rate in options.Rates)
            {
                var runs = group.Select(r => r.OpenLoop.FirstOrDefault(x => x.Rate == rate)).OfType<RunResult>().Where(r => r.Valid).ToList();
                row.Add(runs.Count == 0 ? Invalid : Format($"{Median(runs.Select(r => r.LatencyMs[1])):0.00} / {Median(runs.Select(r => r.LatencyMs[2])):0.00} / {Median(runs.Select(r => r.LatencyMs[3])):0.0} ({Median(runs.Select(r => r.CpuPercent)):0} %){Count(runs.Count, group.Count())}"));
            }

            foreach (var connections in options.Idle)
            {
                var runs = group.Select(r => r.Idle.FirstOrDefault(x => x.Connections == connections)).OfType<IdleResult>().Where(r => r.Valid).ToList();
                row.Add(runs.Count == 0 ? Invalid : Format($"{Median(runs.Select(r => r.BytesPerConnection)) / 1024:0.0}{Count(runs.Count, group.Count())}"));
            }

            text.AppendLine("| " + string.Join(" | ", row) + " |");
        }

        text.AppendLine();
        static string Count(int valid, int all) => valid == all ? string.Empty : Format($", {valid} of {all}");
    }

    /// <summary>
    /// Each Talki server against the bare relay and peerjs-server, round by round (the servers of a round ran one after the
    /// other), on the ratios the targets name: the median of the rounds' ratios, each round's, and in how many the target held.
    /// </summary>
    private static void Targets(StringBuilder text, LoadOptions options, IReadOnlyList<ServerResult> results)
    {
        var rows = new List<string>();
        foreach (var name in options.Servers.Where(n => Target.IsTalki(n, options)))
        {
            foreach (var pairs in options.Pairs)
            {
                Ratio(rows, results, name, "bare", Format($"CPU per message, saturated, {pairs:N0} pairs"), "≤ 1.3", 1.3, atMost: true, r => Valid(r.Saturation.FirstOrDefault(x => x.Pairs == pairs))?.CpuMicrosecondsPerMessage);
                Ratio(rows, results, name, "bare", Format($"throughput, {pairs:N0} pairs"), "≥ 0.8", 0.8, atMost: false, r => Valid(r.Saturation.FirstOrDefault(x => x.Pairs == pairs))?.Delivered);
                Ratio(rows, results, name, "peerjs", Format($"throughput, {pairs:N0} pairs"), "≥ 3", 3, atMost: false, r => Valid(r.Saturation.FirstOrDefault(x => x.Pairs == pairs))?.Delivered);
            }

            foreach (var rate in options.Rates)
            {
                Ratio(rows, results, name, "bare", Format($"p99 latency, {rate:N0} msg/s"), "≤ 1", 1, atMost: true, r => Valid(r.OpenLoop.FirstOrDefault(x => x.Rate == rate))?.LatencyMs[2]);
                Ratio(rows, results, name, "peerjs", Format($"server CPU, {rate:N0} msg/s"), "≤ 1", 1, atMost: true, r => Valid(r.OpenLoop.FirstOrDefault(x => x.Rate == rate))?.CpuPercent);
            }
        }

        if (rows.Count == 0)
        {
            return;
        }

        text.AppendLine("Against the targets (issue #12): the Talki server's figure over the other server's of the same round.").AppendLine();
        text.AppendLine("| server | against | measure | target | median | rounds | target met |");
        text.AppendLine("|---|---|---|---:|---:|---|---:|");
        foreach (var row in rows)
        {
            text.AppendLine(row);
        }

        text.AppendLine();
        static RunResult? Valid(RunResult? run) => run is { Valid: true } ? run : null;
    }

    private static void Ratio(List<string> rows, IReadOnlyList<ServerResult> results, string name, string other, string measure, string target, double limit, bool atMost, Func<ServerResult, double?> figure)
    {
        var ratios = new List<double>();
        foreach (var mine in results.Where(r => r.Name == name))
        {
            if (results.FirstOrDefault(r => r.Name == other && r.Round == mine.Round) is { } theirs
                && figure(mine) is { } a && figure(theirs) is { } b && b > 0)
            {
                ratios.Add(a / b);
            }
        }

        if (ratios.Count == 0)
        {
            return;
        }

        var met = ratios.Count(r => atMost ? r <= limit : r >= limit);
        rows.Add(Format($"| {name} | {other} | {measure} | {target} | {Median(ratios):0.00} | {string.Join(", ", ratios.Select(r => r.ToString("0.00", CultureInfo.InvariantCulture)))} | {met} of {ratios.Count} |"));
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[(sorted.Count / 2) - 1] + sorted[sorted.Count / 2]) / 2;
    }

    private static string Startup(ServerResult result)
    {
        if (result.Startups.Count == 0)
        {
            return Invalid;
        }

        var sorted = result.Startups.Order().ToList();
        return Format($"{sorted[sorted.Count / 2].TotalMilliseconds:0}");
    }

    private static string Saturation(RunResult? run) => run switch
    {
        null => "n/a",
        { Failure: not null } => Invalid + " failed",
        { Valid: true } => Format($"{run.Delivered:N0} ({run.CpuMicrosecondsPerMessage:0.0})"),
        _ => Format($"{Invalid} {run.Delivered:N0}, {run.Lost:N0} lost"),
    };

    private static string OpenLoop(RunResult? run) => run switch
    {
        null => "n/a",
        { Failure: not null } => Invalid + " failed",
        _ => Format($"{(run.Valid ? "" : Invalid + " ")}{run.LatencyMs[1]:0.00} / {run.LatencyMs[2]:0.00} / {run.LatencyMs[3]:0.0} ({run.CpuPercent:0} %){(run.Valid ? "" : $", {run.Lost:N0} lost")}"),
    };

    private static string Idle(IdleResult? idle) => idle switch
    {
        null => "n/a",
        { Valid: true } => Format($"{idle.BytesPerConnection / 1024:0.0}"),
        _ => Format($"{Invalid} {idle.BytesPerConnection / 1024:0.0}, {idle.SocketsClosed} closed"),
    };

    private static string Mib(long bytes) => Format($"{bytes / 1024.0 / 1024:0.0} MiB");

    private static string Format(FormattableString value) => value.ToString(CultureInfo.InvariantCulture);
}
