using Talki.Signalling.Server.Fuzzing;

namespace Talki.Signalling.Server.Tests.Engine;

/// <summary>
/// The short version of the fuzzer (tests/Talki.Signalling.Server.Fuzzing; docs/reliability-fuzzing.md): the whole corpus,
/// then 20,000 generated frames with a fixed seed, each through <c>ClientFrame.Parse</c> and the engine. It fails when a
/// frame makes anything throw, the engine answer <c>internal</c> or an unexpected code, log at Error, or the room's other
/// members stop relaying; the failing case is shrunk by CsCheck and printed.
/// </summary>
public sealed class FuzzTests
{
    private const int Frames = 20_000;

    private static IReadOnlyList<byte[]> Corpus => FuzzRunner.LoadCorpus(Path.Combine(AppContext.BaseDirectory, "fuzz-corpus"));

    [Fact]
    public void Corpus_ThenGeneratedFrames_NoExceptionNoInternalNoErrorLog()
    {
        var corpus = Corpus;
        Assert.True(corpus.Count >= 200, $"the corpus has {corpus.Count} files");

        var report = FuzzRunner.Run(Frames, seed: 1, corpus, shrinkIterations: 500);

        Assert.True(report.Failure is null, report.Failure + "\n" + report.Summary());
        Assert.Equal(0, report.Stats.Exceptions);
        Assert.Equal(0, report.Stats.InternalAnswers);
        Assert.Equal(0, report.Stats.ErrorLogs);
        Assert.True(report.Stats.Frames >= Frames + corpus.Count, report.Summary());
    }

    [Fact]
    public void Generators_ReachEveryFrameKind_AndTheEngineAnswersPaths()
    {
        var report = FuzzRunner.Run(5_000, seed: 2, Corpus, shrinkIterations: 100);

        Assert.True(report.Failure is null, report.Failure);
        foreach (var outcome in (string[])["hello", "ping", "leave", "admit", "deny", "signal", "signals", "malformed_message", "unknown_type"])
        {
            Assert.True(report.Stats.ParseOutcomes.GetValueOrDefault(outcome) > 0, $"no {outcome}: {report.Summary()}");
        }

        foreach (var code in (string[])["malformed_message", "unknown_type", "message_too_large", "not_admin", "not_ready", "member_not_found", "member_not_pending", "peer_unavailable", "stale_epoch", "room_not_found"])
        {
            Assert.True(report.Stats.ErrorCodes.GetValueOrDefault(code) > 0, $"no {code}: {report.Summary()}");
        }

        Assert.True(report.Stats.Relayed > 0, report.Summary());
    }
}
