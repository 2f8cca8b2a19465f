using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Running;

namespace Talki.Signalling.Benchmarks;

/// <summary>Runs the benchmarks chosen on the command line (<c>--filter '*'</c> for all; <c>--job short</c> for a quick run).</summary>
public static class Program
{
    public static void Main(string[] args)
    {
        // Reports go next to this project (BenchmarkDotNet.Artifacts/ is git-ignored) rather than into
        // whatever directory `dotnet run` was started from; --artifacts on the command line still wins.
        var config = DefaultConfig.Instance;
        if (FindProjectDirectory() is { } projectDirectory)
        {
            config = config.WithArtifactsPath(Path.Combine(projectDirectory, "BenchmarkDotNet.Artifacts"));
        }

        _ = BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args, config);
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
