using System.Diagnostics;
using System.Globalization;
using CsCheck;

namespace Talki.Signalling.Server.Fuzzing;

/// <summary>The outcome of a run: its figures, and the first failure (shrunk) when there was one.</summary>
internal sealed record FuzzReport(FuzzStats Stats, TimeSpan Elapsed, string? Failure)
{
    public double FramesPerSecond => Stats.Frames / Math.Max(Elapsed.TotalSeconds, 1e-9);

    public string Summary() => string.Join(
        '\n',
        $"frames run:        {Stats.Frames} ({Stats.Cases} cases, {Stats.ConsistencyChecks} consistency checks)",
        $"elapsed:           {Elapsed.TotalSeconds:F1} s",
        $"frames/s:          {FramesPerSecond:F0}",
        $"parsed valid:      {Stats.ParsedValid}",
        $"signals relayed:   {Stats.Relayed}",
        $"parse outcomes:    {string.Join(", ", Stats.ParseOutcomes.Select(p => $"{p.Key}={p.Value}"))}",
        $"parser rejections: {Stats.RejectReasons.Count} distinct messages:\n{string.Join('\n', Stats.RejectReasons.OrderByDescending(p => p.Value).Select(p => $"    {p.Value,8}  {p.Key}"))}",
        $"error codes seen:  {Stats.ErrorCodes.Count}: {string.Join(", ", Stats.ErrorCodes.Select(p => $"{p.Key}={p.Value}"))}",
        $"exceptions:        {Stats.Exceptions}",
        $"internal answers:  {Stats.InternalAnswers}",
        $"error-level logs:  {Stats.ErrorLogs}",
        $"result:            {(Failure is null ? "PASS" : "FAIL")}");
}

/// <summary>The fuzzing loop shared by the console (long run) and the xUnit test (short run).</summary>
internal static class FuzzRunner
{
    /// <summary>Reads every file of the corpus directory, in name order (one frame per file).</summary>
    public static IReadOnlyList<byte[]> LoadCorpus(string directory)
        => [.. Directory.GetFiles(directory).Order(StringComparer.Ordinal).Select(File.ReadAllBytes)];

    /// <summary>
    /// Replays the corpus (each file once, unmutated, from the admin), then runs generated cases until
    /// <paramref name="frames"/> generated frames have run. Case <c>i</c> is generated from <c>PCG(seed, i)</c>, so a run
    /// is reproducible from its seed. The first failure stops the run and is shrunk by CsCheck.
    /// </summary>
    public static FuzzReport Run(long frames, uint seed, IReadOnlyList<byte[]> corpus, int shrinkIterations = 2000, Action<string>? progress = null, Action<FuzzFrame, byte[], string>? onFrame = null)
    {
        var stats = new FuzzStats();
        var clock = Stopwatch.StartNew();
        var gen = FuzzFrames.Case(corpus.Count);
        using var fuzzer = new EngineFuzzer(corpus, stats) { OnFrame = onFrame };
        for (var i = 0; i < corpus.Count; i++)
        {
            FuzzFrame[] replay = [new FuzzFrame(Sender.Admin, null, i, false, [])];
            if (Try(fuzzer, replay) is { } failure)
            {
                return new FuzzReport(stats, clock.Elapsed, $"corpus file #{i} ({corpus.Count} files in name order): {failure.Message}");
            }
        }

        var target = stats.Frames + frames;
        var nextProgress = TimeSpan.FromSeconds(10);
        for (ulong i = 0; stats.Frames < target; i++)
        {
            var pcg = new PCG(seed, i);
            var caseSeed = pcg.ToString();
            var frameCase = gen.Generate(pcg, null, out _);
            if (Try(fuzzer, frameCase) is { } failure)
            {
                var message = $"case {i} of seed {seed} (CsCheck seed {caseSeed}): {failure.Message}{FuzzFrames.Describe(frameCase, corpus)}";
                return new FuzzReport(stats, clock.Elapsed, message + "\n\nshrunk:\n" + Shrink(gen, caseSeed, corpus, shrinkIterations));
            }

            if (progress is not null && clock.Elapsed >= nextProgress)
            {
                nextProgress += TimeSpan.FromSeconds(10);
                progress(string.Create(CultureInfo.InvariantCulture, $"  {stats.Frames - (target - frames)} frames, {stats.Frames / clock.Elapsed.TotalSeconds:F0} frames/s"));
            }
        }

        return new FuzzReport(stats, clock.Elapsed, null);
    }

    private static Exception? Try(EngineFuzzer fuzzer, FuzzFrame[] frames)
    {
        try
        {
            fuzzer.Run(frames);
            return null;
        }
        catch (Exception exception)
        {
            return exception;
        }
    }

    /// <summary>Lets CsCheck look for a smaller failing case, starting from the failing one's seed.</summary>
    private static string Shrink(Gen<FuzzFrame[]> gen, string seed, IReadOnlyList<byte[]> corpus, int iterations)
    {
        try
        {
            gen.Sample(
                frames =>
                {
                    using var fuzzer = new EngineFuzzer(corpus, new FuzzStats());
                    fuzzer.Run(frames);
                },
                seed: seed,
                iter: iterations,
                threads: 1,
                print: frames => FuzzFrames.Describe(frames, corpus));
            return "(the failure did not reproduce on a fresh engine)";
        }
        catch (Exception exception)
        {
            return exception.Message;
        }
    }
}
