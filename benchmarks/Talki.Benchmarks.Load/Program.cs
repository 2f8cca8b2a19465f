using Talki.Samples.Browser.EndToEndTests.Harness;
using Talki.Signalling.Soak;

namespace Talki.Benchmarks.Load;

/// <summary>
/// The load tool: each server in turn in a child process, the same traffic against each, one markdown table
/// (benchmarks/README.md). Exits 0 when every figure is valid, 1 when one is not, 2 on bad arguments.
/// </summary>
internal static class Program
{
    public static async Task<int> Main(string[] args)
    {
        LoadOptions options;
        try
        {
            options = LoadOptions.Parse(args);
        }
        catch (ArgumentException e)
        {
            await Console.Error.WriteLineAsync(e.Message + Environment.NewLine + LoadOptions.Usage);
            return 2;
        }

        LoadSocket.DefaultTransport = options.Client;
        var started = DateTimeOffset.UtcNow;
        var machine = Machine.Describe();
        var loadBefore = Machine.LoadAverage();
        Console.WriteLine($"{started:O} Talki.Benchmarks.Load {options.CommandLine}");
        Console.WriteLine($"machine: {machine.Cores} cores, {machine.Model}, {machine.Memory}, open files limit {machine.OpenFiles}, load average {loadBefore}");
        var needed = (options.Idle.Count > 0 ? options.Idle.Max() : 0) + (2 * Math.Max(options.Pairs.Count > 0 ? options.Pairs.Max() : 0, options.RatePairs)) + 100;
        if (int.TryParse(machine.OpenFiles, out var limit) && limit < needed)
        {
            Console.WriteLine($"warning: the open files limit {limit} is below the ~{needed} sockets this run opens (benchmarks/run.sh raises it with ulimit -n)");
        }

        var results = new List<ServerResult>();
        for (var round = 1; round <= options.Repeat; round++)
        {
            foreach (var name in LoadOptions.InRoundOrder(options.Servers, round))
            {
                using var target = Target.Create(name, options);
                if (options.Repeat > 1)
                {
                    Console.WriteLine($"== round {round} of {options.Repeat}");
                }

                var result = await Bench.RunAsync(target, options, Console.Out);
                result.Round = round;
                results.Add(result);
            }
        }

        var report = Report.Markdown(options, machine, loadBefore, started, results);
        var path = options.Out ?? Path.Combine(RepositoryLayout.Root, "artifacts", "load", $"load-{started:yyyyMMdd-HHmmss}.md");
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        await File.WriteAllTextAsync(path, report);
        Console.WriteLine();
        Console.WriteLine(report);
        Console.WriteLine($"written to {path}");
        return results.All(r => r.Valid) ? 0 : 1;
    }
}
