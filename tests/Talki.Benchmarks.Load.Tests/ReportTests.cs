namespace Talki.Benchmarks.Load.Tests;

/// <summary>
/// The load tool's report: each Talki round against the same round of the other servers, the medians over rounds, and the
/// idle figures, as the notes quote them ("2.48, 1 of 6 rounds").
/// </summary>
public sealed class ReportTests
{
    private static readonly Machine TestMachine = new(2, "test CPU", "1 GiB", "test OS", ".NET test", "v0", "1024");

    private static readonly LoadOptions TwoRounds = LoadOptions.Parse(["--server", "talki,peerjs,bare", "--pairs", "10", "--rates", "2000", "--idle", "", "--repeat", "2"]);

    [Fact]
    public void Targets_EachTalkiRoundAgainstTheSameRoundOfTheOthers_MedianOfTheRatios_AndTheRoundsThatMetThem()
    {
        var report = Markdown(TwoRounds,
            Server("talki", 1, delivered: 240_000, cpuMicroseconds: 3.0, p99: 0.5, cpuPercent: 6),
            Server("peerjs", 1, delivered: 80_000, cpuMicroseconds: 12, p99: 0.4, cpuPercent: 6),
            Server("bare", 1, delivered: 200_000, cpuMicroseconds: 3.0, p99: 0.6, cpuPercent: 30),
            Server("talki", 2, delivered: 200_000, cpuMicroseconds: 3.9, p99: 0.9, cpuPercent: 8),
            Server("peerjs", 2, delivered: 100_000, cpuMicroseconds: 10, p99: 0.3, cpuPercent: 5),
            Server("bare", 2, delivered: 250_000, cpuMicroseconds: 2.5, p99: 0.6, cpuPercent: 30));

        // Round 1 against round 1, round 2 against round 2; never talki's round 1 against peerjs's round 2.
        Assert.Contains("| talki | peerjs | throughput, 10 pairs | ≥ 3 | 2.50 | 3.00, 2.00 | 1 of 2 |", report, StringComparison.Ordinal);
        Assert.Contains("| talki | bare | throughput, 10 pairs | ≥ 0.8 | 1.00 | 1.20, 0.80 | 2 of 2 |", report, StringComparison.Ordinal); // 0.80 meets "at least 0.8"
        Assert.Contains("| talki | bare | CPU per message, saturated, 10 pairs | ≤ 1.3 | 1.28 | 1.00, 1.56 | 1 of 2 |", report, StringComparison.Ordinal);
        Assert.Contains("| talki | bare | p99 latency, 2,000 msg/s | ≤ 1 | 1.17 | 0.83, 1.50 | 1 of 2 |", report, StringComparison.Ordinal);
        Assert.Contains("| talki | peerjs | server CPU, 2,000 msg/s | ≤ 1 | 1.30 | 1.00, 1.60 | 1 of 2 |", report, StringComparison.Ordinal);
    }

    [Fact]
    public void Targets_ARoundWithLostMessages_IsLeftOutOfTheRatios_AndOutOfTheMedians_WhichSayKOfN()
    {
        var lossy = Server("talki", 2, delivered: 400_000, cpuMicroseconds: 1.0, p99: 0.1, cpuPercent: 1);
        lossy.Saturation[0] = lossy.Saturation[0] with { Received = lossy.Saturation[0].Sent - 1 };
        var report = Markdown(TwoRounds,
            Server("talki", 1, delivered: 240_000, cpuMicroseconds: 3.1, p99: 0.5, cpuPercent: 6),
            Server("peerjs", 1, delivered: 80_000, cpuMicroseconds: 12, p99: 0.4, cpuPercent: 6),
            Server("bare", 1, delivered: 200_000, cpuMicroseconds: 3.1, p99: 0.6, cpuPercent: 30),
            lossy,
            Server("peerjs", 2, delivered: 100_000, cpuMicroseconds: 10, p99: 0.3, cpuPercent: 5),
            Server("bare", 2, delivered: 250_000, cpuMicroseconds: 2.5, p99: 0.6, cpuPercent: 30));

        // The lossy round's 4.00 (and 1.60 against bare) would have met the targets: it is not counted.
        Assert.Contains("| talki | peerjs | throughput, 10 pairs | ≥ 3 | 3.00 | 3.00 | 1 of 1 |", report, StringComparison.Ordinal);
        Assert.Contains("| talki | bare | throughput, 10 pairs | ≥ 0.8 | 1.20 | 1.20 | 1 of 1 |", report, StringComparison.Ordinal);
        // The open-loop run of that round was valid, so both rounds count there.
        Assert.Contains("| talki | bare | p99 latency, 2,000 msg/s | ≤ 1 | 0.50 | 0.83, 0.17 | 2 of 2 |", report, StringComparison.Ordinal);
        // Medians: the valid round only, marked as one of two.
        Assert.Contains("| talki | 400 | 240,000 (3.1), 1 of 2 |", report, StringComparison.Ordinal);
        Assert.Contains("✗ 400,000 msg/s delivered", report, StringComparison.Ordinal);
    }

    [Fact]
    public void Describe_ARunWithErrorFrames_QuotesTheFirstOne_CutAt200Characters_AndNothingWithoutThem()
    {
        var run = new RunResult { Pairs = 10, Sent = 100, Received = 38, ErrorFrames = 62, FirstErrorFrame = """{"type":"error","code":"rate_limited","message":"Slow down."}""" };
        Assert.Contains("""error frames 62 (the first: {"type":"error","code":"rate_limited","message":"Slow down."}), send failures 0""", Report.Describe(run), StringComparison.Ordinal);

        var longError = run with { FirstErrorFrame = "{\"type\":\"error\",\"code\":\"delivery_failed\",\"message\":\"" + new string('x', 300) + "\"}" };
        var described = Report.Describe(longError);
        Assert.Contains("(the first: " + longError.FirstErrorFrame![..200] + "…), send failures", described, StringComparison.Ordinal);
        Assert.DoesNotContain(new string('x', 201), described, StringComparison.Ordinal);

        Assert.Contains("error frames 0, send failures 0", Report.Describe(run with { ErrorFrames = 0, FirstErrorFrame = null, Received = 100 }), StringComparison.Ordinal);
    }

    [Fact]
    public void Idle_PerConnection_AboveTheWarmedBaseline_AndAboveTheFreshOne_WithTheWarmUpConnectionsCounted()
    {
        const long MiB = 1024 * 1024;
        var idle = new IdleResult(Connections: 10_000, ResidentBytes: 200 * MiB, BaselineBytes: 130 * MiB, SocketsClosed: 0, FreshBaselineBytes: 110 * MiB, WarmConnections: 1_000);

        Assert.Equal(70.0 * MiB / 10_000, idle.BytesPerConnection, 9);
        Assert.Equal(90.0 * MiB / 11_000, idle.BytesPerConnectionFromFresh, 9);
        Assert.True(idle.Valid);
        Assert.False((idle with { SocketsClosed = 1 }).Valid);
    }

    private static string Markdown(LoadOptions options, params ServerResult[] results) =>
        Report.Markdown(options, TestMachine, "0.00 0.00 0.00", DateTimeOffset.UnixEpoch, results);

    /// <summary>One server's round: a start-up of 400 ms, a valid saturation run at 10 pairs and a valid open loop at 2,000 msg/s.</summary>
    private static ServerResult Server(string name, int round, double delivered, double cpuMicroseconds, double p99, double cpuPercent)
    {
        var result = new ServerResult { Name = name, Command = name, Round = round };
        result.Startups.Add(TimeSpan.FromMilliseconds(400));
        result.Saturation.Add(new RunResult
        {
            Pairs = 10,
            Sent = (long)delivered * 10,
            Received = (long)delivered * 10,
            Delivered = delivered,
            CpuMicrosecondsPerMessage = cpuMicroseconds,
            LatencyMs = [0.05, 1, 2, 5],
            Window = TimeSpan.FromSeconds(10),
            Cpu = TimeSpan.FromSeconds(delivered * 10 * cpuMicroseconds / 1e6),
        });
        result.OpenLoop.Add(new RunResult
        {
            Pairs = 100,
            Rate = 2000,
            Sent = 20_000,
            Received = 20_000,
            Delivered = 2000,
            LatencyMs = [0.04, 0.1, p99, 4],
            Window = TimeSpan.FromSeconds(10),
            Cpu = TimeSpan.FromSeconds(cpuPercent / 10),
        });
        return result;
    }
}
