using System.Globalization;
using System.Text;
using Talki.Signalling.Server.Fuzzing;

// dotnet run -c Release --project tests/Talki.Signalling.Server.Fuzzing -- --frames 1000000 --seed 1
//   [--corpus DIR] [--shrink N] [--emit-corpus DIR]
var frames = 1_000_000L;
var seed = 1u;
var corpusDirectory = Path.Combine(AppContext.BaseDirectory, "corpus");
var shrink = 2000;
string? emit = null;
for (var i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--frames":
            frames = long.Parse(args[++i], CultureInfo.InvariantCulture);
            break;
        case "--seed":
            seed = uint.Parse(args[++i], CultureInfo.InvariantCulture);
            break;
        case "--corpus":
            corpusDirectory = args[++i];
            break;
        case "--shrink":
            shrink = int.Parse(args[++i], CultureInfo.InvariantCulture);
            break;
        case "--emit-corpus":
            emit = args[++i];
            break;
        default:
            Console.Error.WriteLine($"unknown argument {args[i]}; usage: --frames N --seed S [--corpus DIR] [--shrink N] [--emit-corpus DIR]");
            return 2;
    }
}

var corpus = FuzzRunner.LoadCorpus(corpusDirectory);
Console.WriteLine($"Talki engine fuzzer: {frames} generated frames, seed {seed}, corpus {corpus.Count} files ({corpusDirectory}), {Environment.ProcessorCount} cores");

// --emit-corpus: the first frame of every new signature (sender, parse outcome, answers) is written out, with the room's
// ids as placeholders (@admin@, @peer.epoch@…), as candidate seeds for the corpus.
var seen = new HashSet<string>(StringComparer.Ordinal);
Action<FuzzFrame, byte[], string>? onFrame = emit is null ? null : (frame, _, signature) =>
{
    if (seen.Add(signature))
    {
        Directory.CreateDirectory(emit);
        var bytes = FuzzFrames.Render(frame, corpus, FuzzFrames.NoRoom.Instance);
        File.WriteAllBytes(Path.Combine(emit, $"gen-{seen.Count:D4}.json"), bytes);
    }
};

var report = FuzzRunner.Run(frames, seed, corpus, shrink, Console.WriteLine, onFrame);
Console.WriteLine(report.Summary());
if (report.Failure is not null)
{
    Console.WriteLine();
    Console.WriteLine("FAILURE " + report.Failure);
    return 1;
}

if (emit is not null)
{
    Console.WriteLine($"emitted {seen.Count} frames of distinct signatures to {emit}");
}

return 0;
