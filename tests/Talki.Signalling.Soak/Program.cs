using System.Globalization;
using Talki.Signalling.Soak;

// dotnet run -c Release --project tests/Talki.Signalling.Soak -- soak --rooms 1000 --members 4 --join-window 45
// dotnet run -c Release --project tests/Talki.Signalling.Soak -- storm --frames 10000
// Exits 0 when every check held, 1 when one did not, 2 on bad arguments.
var command = args.Length > 0 ? args[0] : "";
var options = new Dictionary<string, string>(StringComparer.Ordinal);
for (var i = 1; i < args.Length; i++)
{
    if (args[i].StartsWith("--", StringComparison.Ordinal) && i + 1 < args.Length && !args[i + 1].StartsWith("--", StringComparison.Ordinal))
    {
        options[args[i][2..]] = args[++i];
    }
    else if (args[i].StartsWith("--", StringComparison.Ordinal))
    {
        options[args[i][2..]] = "true";
    }
}

int Int(string name, int fallback) => options.TryGetValue(name, out var v) ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;
TimeSpan Seconds(string name, TimeSpan fallback) => options.TryGetValue(name, out var v) ? TimeSpan.FromSeconds(double.Parse(v, CultureInfo.InvariantCulture)) : fallback;
bool Flag(string name) => options.ContainsKey(name);

Console.WriteLine($"{DateTimeOffset.UtcNow:O} {command} {string.Join(' ', args.Skip(1))}");
Console.WriteLine($"machine: {Environment.ProcessorCount} cores, {Environment.OSVersion}, .NET {Environment.Version}, open files limit {OpenFilesLimit()}, load average {LoadAverage()}");
switch (command)
{
    case "host":
        // The child process of soak/storm: the host alone, options from the arguments.
        var joinWindow = Seconds("join-window", TimeSpan.FromSeconds(45));
        var retention = Seconds("retention", TimeSpan.FromMinutes(10));
        var maxInbound = Int("max-inbound", 0);
        await SoakHost.RunHostCommandAsync(o =>
        {
            o.JoinWindow = joinWindow;
            o.SealedRoomRetention = retention;
            if (maxInbound > 0)
            {
                o.Hosting.MaxInboundMessageBytes = maxInbound;
            }
        });
        return 0;

    case "soak":
        var soak = new SoakSettings
        {
            Rooms = Int("rooms", 1000),
            Members = Int("members", 4),
            Candidates = Int("candidates", 3),
            JoinWindow = Seconds("join-window", TimeSpan.FromSeconds(45)),
            SealedRoomRetention = Seconds("retention", TimeSpan.FromSeconds(15)),
            SetupConcurrency = Int("concurrency", 32),
            MeasureAfterExpiry = !Flag("no-expiry"),
            ChildProcessHost = !Flag("in-process"),
            ServerGc = !Flag("workstation-gc"),
            MaxInboundMessageBytes = Int("max-inbound", 0),
        };
        // Each socket is a descriptor on both sides (both in this process with --in-process), plus HTTP connections.
        var descriptors = (long)soak.Rooms * soak.Members * (soak.ChildProcessHost ? 1 : 2) + 200;
        if (long.TryParse(OpenFilesLimit().Split('/')[0], out var openFiles) && openFiles < descriptors)
        {
            Console.WriteLine($"warning: the open files limit {openFiles} is below the ~{descriptors} descriptors this load needs (raise it with ulimit -n)");
        }

        var soakResult = await SoakScenario.RunAsync(soak, Console.Out);
        soakResult.Print(Console.Out);
        Console.WriteLine($"load average at the end {LoadAverage()}");
        return soakResult.Failures.Count == 0 ? 0 : 1;

    case "storm":
        var storm = new StormSettings
        {
            Frames = Int("frames", 10_000),
            FramesPerAttacker = Int("per-attacker", 400),
            AttackersAtOnce = Int("attackers", 8),
            InRoomAttackers = Int("in-room-attackers", 3),
            Baseline = Seconds("baseline", TimeSpan.FromSeconds(10)),
            Verbose = Flag("verbose"),
            Duration = Seconds("duration", TimeSpan.FromSeconds(20)),
            ChildProcessHost = !Flag("in-process"),
        };
        var stormResult = await StormScenario.RunAsync(storm, Console.Out);
        stormResult.Print(Console.Out);
        Console.WriteLine($"load average at the end {LoadAverage()}");
        return stormResult.Failures.Count == 0 ? 0 : 1;

    default:
        Console.Error.WriteLine("usage: soak [--rooms 1000] [--members 4] [--join-window 45] [--retention 15] [--concurrency 32] [--no-expiry] [--in-process] [--workstation-gc] [--max-inbound BYTES]");
        Console.Error.WriteLine("       storm [--frames 10000] [--per-attacker 400] [--attackers 8] [--in-room-attackers 3] [--baseline 10] [--duration 20] [--verbose] [--in-process]");
        return 2;
}

static string OpenFilesLimit()
{
    try
    {
        var line = File.ReadLines("/proc/self/limits").FirstOrDefault(l => l.StartsWith("Max open files", StringComparison.Ordinal));
        return line is null ? "?" : string.Join('/', line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[3..5]);
    }
    catch (IOException)
    {
        return "?";
    }
}

static string LoadAverage()
{
    try
    {
        return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3));
    }
    catch (IOException)
    {
        return "?";
    }
}
