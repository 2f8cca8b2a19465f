using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Running;

namespace Talki.Signalling.Benchmarks;

/// <summary>Runs the benchmarks chosen on the command line (<c>--filter '*'</c> for all; <c>--job short</c> for a quick run).</summary>
public static class Program
{
    public static void Main(string[] args)
    {
        if (args is ["--profile-loop", var seconds])
        {
            // Not a measurement: the offer's relay in a loop for a profiler to sample
            // (`perf record -g dotnet <this dll> --profile-loop 20` with the environment the README's "Profiling" gives).
            ProfileLoop(TimeSpan.FromSeconds(double.Parse(seconds, System.Globalization.CultureInfo.InvariantCulture)));
            return;
        }

        // Reports go next to this project (BenchmarkDotNet.Artifacts/ is git-ignored) rather than into
        // whatever directory `dotnet run` was started from; --artifacts on the command line still wins.
        var config = DefaultConfig.Instance;
        if (FindProjectDirectory() is { } projectDirectory)
        {
            config = config.WithArtifactsPath(Path.Combine(projectDirectory, "BenchmarkDotNet.Artifacts"));
        }

        _ = BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args, config);
    }

    private static void ProfileLoop(TimeSpan duration)
    {
        var relay = new RelayBenchmarks();
        relay.Setup();
        var relays = 0L;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (clock.Elapsed < duration)
        {
            for (var i = 0; i < 10_000; i++)
            {
                relay.RelaySignal();
            }

            relays += 10_000;
        }

        relay.Cleanup();
        Console.WriteLine($"{relays:N0} relays in {clock.Elapsed.TotalSeconds:F1} s: {clock.Elapsed.TotalNanoseconds / relays:F0} ns each (profiler attached or not; not the benchmark's figure).");
    }

    private static string? FindProjectDirectory()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Talki.Signalling.Benchmarks.csproj")))
            {
                return directory.FullName;
            }
        }

        return null;
    }
}
