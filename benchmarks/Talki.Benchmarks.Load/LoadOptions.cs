using System.Globalization;
using Talki.Signalling.Soak;

namespace Talki.Benchmarks.Load;

/// <summary>The command line of the load tool; every figure has a default (the full matrix).</summary>
internal sealed record LoadOptions
{
    public const string Usage =
        "usage: Talki.Benchmarks.Load [--server talki|peerjs|bare|bare-transport|LABEL=HOST.dll|VARIANT|all] [--variant LABEL=SERVER:NAME=VALUE,…;…] [--repeat 1] [--pairs 10,100,1000] [--seconds 10] [--warmup 2]\n" +
        "       [--window 16] [--rates 2000,30000] [--rate-pairs 100] [--idle 1000,5000,10000] [--settle 5]\n" +
        "       [--startups 3] [--concurrency 32] [--drain 10] [--hold 0] [--jit-quiet 1] [--server-cpus LIST] [--server-env NAME=VALUE,...] [--client lean|runtime] [--out FILE] [--trace DIR]\n" +
        "A list may be empty (--idle '') to skip that measure.";

    /// <summary>Gets the servers to measure, in order; <c>all</c> is these three (<c>bare-transport</c> only when named).</summary>
    public IReadOnlyList<string> Servers { get; init; } = ["talki", "peerjs", "bare"];

    /// <summary>
    /// Gets how many times the whole measure runs, the servers alternating within each round and each round starting one
    /// server later (<see cref="InRoundOrder"/>): the report adds the median of every figure and of every ratio the targets
    /// name. This machine's figures move by up to 30 % between two runs of the same build, so one round decides nothing.
    /// </summary>
    public int Repeat { get; init; } = 1;

    /// <summary>
    /// The servers in the order a round runs them: round 1 in the order given, each later round starting one server later
    /// (talki, peerjs, bare; then peerjs, bare, talki; …), so that over as many rounds as servers each runs once in every
    /// place. With a fixed order, a difference between two servers can be their places': on 2026-12-05 the servers that ran
    /// first in a round had a p99 at 2,000 msg/s of 1.75 ms (median of 15 rounds), those that ran second or third 1.53 ms
    /// (docs/performance.md, "Trimming only when there is something to give back").
    /// </summary>
    /// <param name="servers">The servers, in the order given.</param>
    /// <param name="round">The round, from 1.</param>
    /// <returns>The round's order.</returns>
    public static IReadOnlyList<string> InRoundOrder(IReadOnlyList<string> servers, int round)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(round, 1);
        if (servers.Count == 0)
        {
            return servers;
        }

        var first = (round - 1) % servers.Count;
        return [.. servers.Skip(first), .. servers.Take(first)];
    }

    /// <summary>
    /// Gets how long a .NET server's background JIT compilation must have been idle before a measured traffic run starts
    /// (zero: do not wait). See <c>Bench.SettleAsync</c>.
    /// </summary>
    public TimeSpan JitQuiet { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Gets the other builds of the sample host measured as servers of their own, by label (<c>--server
    /// talki,before=/path/to/Talki.Samples.Host.dll</c>): a before-and-after in one invocation, alternating.
    /// </summary>
    public IReadOnlyDictionary<string, string> HostBuilds { get; init; } = new Dictionary<string, string>();

    /// <summary>Gets the pair counts of the saturation runs (closed loop, <see cref="Window"/> messages in flight per direction).</summary>
    public IReadOnlyList<int> Pairs { get; init; } = [10, 100, 1000];

    /// <summary>Gets the measured length of every traffic run, after <see cref="Warmup"/>.</summary>
    public TimeSpan Duration { get; init; } = TimeSpan.FromSeconds(10);

    public TimeSpan Warmup { get; init; } = TimeSpan.FromSeconds(2);

    public int Window { get; init; } = 16;

    /// <summary>Gets the total rates (messages per second, all pairs together) of the open-loop runs.</summary>
    public IReadOnlyList<int> Rates { get; init; } = [2000, 30000];

    /// <summary>Gets the pairs that share the open-loop rate; by default 100, or the largest of <see cref="Pairs"/> when smaller.</summary>
    public int RatePairs { get; init; } = 100;

    /// <summary>Gets the idle connection counts at which the server's RSS is read (cumulative, one server process).</summary>
    public IReadOnlyList<int> Idle { get; init; } = [1000, 5000, 10000];

    /// <summary>
    /// Gets how many more idle connections are opened after the first group, and kept open, before the baseline: enough
    /// for the server's JIT to have compiled its per-connection code at its final tier, which it otherwise does while the
    /// measured connections open (a cost paid once, not per connection). Zero: the baseline right after the first group.
    /// </summary>
    public int IdleWarmup { get; init; } = 1000;

    /// <summary>Gets how long the idle connections sit before the RSS is read.</summary>
    public TimeSpan Settle { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Gets how long the idle connections are kept open after the last RSS reading, before they close (the server's
    /// process id is printed first): time to take a heap dump of the server with all of them open. Zero by default.
    /// </summary>
    public TimeSpan Hold { get; init; } = TimeSpan.Zero;

    public int Startups { get; init; } = 3;

    /// <summary>Gets how many pairs or idle groups are being set up at once.</summary>
    public int Concurrency { get; init; } = 32;

    /// <summary>Gets how long a run waits, after its last send, for what is in flight.</summary>
    public TimeSpan Drain { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Gets the CPUs every server is pinned to (<c>taskset -c</c>), or null to leave them unpinned.</summary>
    public string? ServerCpus { get; init; }

    /// <summary>
    /// Gets environment variables set for every server process only, not for this tool (a runtime setting such as
    /// <c>DOTNET_gcServer=0</c> compared without changing the load generator).
    /// </summary>
    public IReadOnlyList<KeyValuePair<string, string>> ServerEnvironment { get; init; } = [];

    /// <summary>
    /// Gets the variants (<c>--variant LABEL=SERVER:NAME=VALUE,…</c>, several separated by <c>;</c>): a server measured
    /// under its own label with more environment variables for its process, so that two settings of one build alternate
    /// within each round (for example the sample host with and without inline I/O).
    /// </summary>
    public IReadOnlyDictionary<string, (string Server, IReadOnlyList<KeyValuePair<string, string>> Environment)> Variants { get; init; } =
        new Dictionary<string, (string, IReadOnlyList<KeyValuePair<string, string>>)>();

    /// <summary>
    /// Gets the WebSocket client every connection of the tool uses: <c>lean</c> (the default,
    /// <c>LeanClientWebSocket</c>: the same frames, one per send, for less of the tool's own CPU on the cores it shares
    /// with the server) or <c>runtime</c> (<c>ClientWebSocket</c>, what the figures before 2026-12-04 were measured with).
    /// </summary>
    public LoadTransport Client { get; init; } = LoadTransport.Lean;

    /// <summary>Gets the markdown file the table is written to (default: artifacts/load/load-{UTC time}.md under the repository).</summary>
    public string? Out { get; init; }

    /// <summary>
    /// Gets the folder each open-loop run writes its messages to, one CSV per run (<c>SERVER-RATE-N.csv</c>: the time
    /// stamp in ms from the window's start, the one-way latency in ms, the receiving link, how late the tool's schedule sent
    /// it in ms), or null: to tell a tail made of
    /// stalls of the whole server (late messages bunched in time, on many links) from one spread over the run.
    /// </summary>
    public string? Trace { get; init; }

    /// <summary>
    /// Gets the folder every server process writes all it prints to (stdout and stderr, one file per process:
    /// <c>SERVER-PHASE-TIME.log</c>), or null: only the last 50 lines are kept, for the error of a server that fails to start.
    /// </summary>
    public string? ServerLog { get; init; }

    public required string CommandLine { get; init; }

    public static LoadOptions Parse(string[] args)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i < args.Length; i++)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal) || i + 1 >= args.Length)
            {
                throw new ArgumentException($"expected --name value, got '{args[i]}'");
            }

            values[args[i][2..]] = args[++i];
        }

        var options = new LoadOptions { CommandLine = string.Join(' ', args.Select(a => a.Length == 0 ? "''" : a)) };
        foreach (var (name, value) in values)
        {
            options = name switch
            {
                "server" => value == "all" ? options : WithServers(options, Split(value, s => s)),
                "repeat" => options with { Repeat = Positive(value) },
                "jit-quiet" => options with { JitQuiet = Seconds(value) },
                "pairs" => options with { Pairs = Split(value, Positive) },
                "seconds" => options with { Duration = Seconds(value) },
                "warmup" => options with { Warmup = Seconds(value) },
                "window" => options with { Window = Positive(value) },
                "rates" => options with { Rates = Split(value, Positive) },
                "rate-pairs" => options with { RatePairs = Positive(value) },
                "idle" => options with { Idle = [.. Split(value, Positive).Order()] },
                "idle-warmup" => options with { IdleWarmup = NonNegative(value) },
                "settle" => options with { Settle = Seconds(value) },
                "hold" => options with { Hold = Seconds(value) },
                "startups" => options with { Startups = Positive(value) },
                "concurrency" => options with { Concurrency = Positive(value) },
                "drain" => options with { Drain = Seconds(value) },
                "server-cpus" => options with { ServerCpus = value },
                "server-env" => options with { ServerEnvironment = [.. value.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(Variable)] },
                "variant" => options with { Variants = ParseVariants(value) },
                "client" => options with { Client = value switch { "lean" => LoadTransport.Lean, "runtime" => LoadTransport.ClientWebSocket, _ => throw new ArgumentException($"--client takes lean or runtime, not '{value}'") } },
                "out" => options with { Out = value },
                "trace" => options with { Trace = value },
                "server-log" => options with { ServerLog = value },
                _ => throw new ArgumentException($"unknown option --{name}"),
            };
        }

        if (!values.ContainsKey("rate-pairs") && options.Pairs.Count > 0)
        {
            options = options with { RatePairs = Math.Min(options.RatePairs, options.Pairs.Max()) };
        }

        string[] known = ["talki", "talki-aot", "peerjs", "bare", "bare-transport", .. options.HostBuilds.Keys];
        foreach (var (label, variant) in options.Variants)
        {
            if (known.Contains(label) || !known.Contains(variant.Server))
            {
                throw new ArgumentException($"--variant {label}: its label must be new and its server one of {string.Join(", ", known)}");
            }
        }

        var unknown = options.Servers.Except([.. known, .. options.Variants.Keys]).ToList();
        return unknown.Count == 0 ? options : throw new ArgumentException($"unknown server {string.Join(", ", unknown)}");
    }

    /// <summary>The servers named; <c>LABEL=PATH</c> is a build of the sample host (its dll), measured as the server LABEL.</summary>
    private static LoadOptions WithServers(LoadOptions options, List<string> names)
    {
        var builds = new Dictionary<string, string>(StringComparer.Ordinal);
        var servers = new List<string>();
        foreach (var name in names)
        {
            var at = name.IndexOf('=', StringComparison.Ordinal);
            if (at < 0)
            {
                servers.Add(name);
                continue;
            }

            var (label, path) = (name[..at], Path.GetFullPath(name[(at + 1)..]));
            if (label.Length == 0 || !label.All(c => char.IsAsciiLetterOrDigit(c) || c == '-') || label is "talki" or "talki-aot" or "peerjs" or "bare" or "bare-transport")
            {
                throw new ArgumentException($"--server {name}: the label of a build is letters, digits and '-', and not a server's name");
            }

            if (!File.Exists(path))
            {
                throw new ArgumentException($"--server {name}: no such file {path}");
            }

            builds[label] = path;
            servers.Add(label);
        }

        return options with { Servers = servers, HostBuilds = builds };
    }

    private static Dictionary<string, (string, IReadOnlyList<KeyValuePair<string, string>>)> ParseVariants(string value)
    {
        var variants = new Dictionary<string, (string, IReadOnlyList<KeyValuePair<string, string>>)>(StringComparer.Ordinal);
        foreach (var text in value.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var equals = text.IndexOf('=', StringComparison.Ordinal);
            var colon = text.IndexOf(':', StringComparison.Ordinal);
            if (equals <= 0 || colon < equals + 2)
            {
                throw new ArgumentException($"--variant takes LABEL=SERVER:NAME=VALUE,…, not '{text}'");
            }

            var label = text[..equals];
            if (!label.All(c => char.IsAsciiLetterOrDigit(c) || c == '-'))
            {
                throw new ArgumentException($"--variant {text}: the label is letters, digits and '-'");
            }

            List<KeyValuePair<string, string>> environment = [.. text[(colon + 1)..].Split(',', StringSplitOptions.RemoveEmptyEntries).Select(Variable)];
            variants[label] = (text[(equals + 1)..colon], environment);
        }

        return variants;
    }

    private static KeyValuePair<string, string> Variable(string assignment)
    {
        var at = assignment.IndexOf('=', StringComparison.Ordinal);
        return at > 0
            ? new(assignment[..at], assignment[(at + 1)..])
            : throw new ArgumentException($"--server-env takes NAME=VALUE, not '{assignment}'");
    }

    private static List<T> Split<T>(string value, Func<string, T> parse) =>
        [.. value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(parse)];

    private static int Positive(string value) =>
        int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0 ? n : throw new ArgumentException($"not a positive integer: '{value}'");

    private static int NonNegative(string value) =>
        int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n : throw new ArgumentException($"not a non-negative integer: '{value}'");

    private static TimeSpan Seconds(string value) =>
        double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var s) && s >= 0 ? TimeSpan.FromSeconds(s) : throw new ArgumentException($"not a number of seconds: '{value}'");
}
