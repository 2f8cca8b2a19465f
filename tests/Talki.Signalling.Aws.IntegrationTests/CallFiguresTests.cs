namespace Talki.Signalling.Aws.IntegrationTests;

/// <summary>The price of a call follows the template: access-log lines are billed only when the stage writes them.</summary>
public sealed class CallFiguresTests
{
    [Fact]
    public void Logs_WithTheStagesAccessLogs_BillTheBytesTheEmulatorLogged_AndCloudWatchsBytesPerEvent()
    {
        var figures = Figures(stageAccessLogs: true);

        // 24 lines of 7,200 bytes in all, and 26 bytes per event.
        Assert.Equal(1000 * 0.50 / 1e9 * (7_200 + (24 * 26)), figures.AccessLogsPer1000, 12);
        Assert.Equal(figures.AccessLogsPer1000, figures.LogsPer1000, 12); // WARN: no platform lines
        Assert.Contains("24 access-log lines of 7200 B in all as the emulator wrote them (300 B each) + 26 B per event", figures.Report("call"), StringComparison.Ordinal);
        Assert.Contains("without the stage's access logs", figures.Report("call"), StringComparison.Ordinal);
    }

    [Fact]
    public void Logs_WithoutTheStagesAccessLogs_BillNoAccessLine_AndTheTotalDropsByExactlyTheirPrice()
    {
        var with = Figures(stageAccessLogs: true);
        var without = Figures(stageAccessLogs: false);

        Assert.Equal(0, without.AccessLogLines);
        Assert.Equal(0, without.LogsPer1000);
        Assert.Equal(with.TotalPer1000Calls - with.AccessLogsPer1000, without.TotalPer1000Calls, 12);
        Assert.Equal(with.ApiGatewayPer1000 + with.LambdaPer1000 + with.DynamoPer1000, without.TotalPer1000Calls, 12);
        Assert.Contains("no stage access logs", without.Report("call"), StringComparison.Ordinal);
        Assert.DoesNotContain("without the stage's access logs", without.Report("call"), StringComparison.Ordinal);
    }

    [Fact]
    public void Logs_AtTheInfoSystemLevel_AddLambdasPlatformLinesPerInvocation_WithOrWithoutAccessLogs()
    {
        var info = Figures(stageAccessLogs: false, systemLogLevel: "INFO");

        Assert.Equal(1000 * 0.50 / 1e9 * (4 + 28) * CallFigures.LambdaPlatformLogBytes, info.LogsPer1000, 12);
    }

    [Fact]
    public void DynamoDb_IsPricedByTheRequestUnitsMetered_NotByTheRequests()
    {
        var figures = Figures(stageAccessLogs: true);

        // 45 write units at $0.625 and 50.5 read units at $0.125 per million; the 42 writes and 67 reads do not count.
        Assert.Equal(1000 * ((45 * 0.625e-6) + (50.5 * 0.125e-6)), figures.DynamoPer1000, 12);
        Assert.Contains("67 reads, 42 writes (GetItem 10); 50.5 read and 45 write request units as an on-demand table meters them (by item size, through dynalite)", figures.Report("call"), StringComparison.Ordinal);
        Assert.Contains("; 2 failed conditional writes at 1 unit each)", (figures with { DynamoConditionalFailures = 2 }).Report("call"), StringComparison.Ordinal);
        Assert.Contains("(by item size, through dynalite); units by item (key prefixes): ROOM#/MEMBER# write 11, ROOM# (query) read 22", (figures with { DynamoByItemKind = "ROOM#/MEMBER# write 11, ROOM# (query) read 22" }).Report("call"), StringComparison.Ordinal);
    }

    [Fact]
    public void Lambda_IsPricedPerRequest_AndEachFunctionsMillisecondsAtItsOwnMemorySize()
    {
        var figures = Figures(stageAccessLogs: true);

        // $0.20 per million requests; $0.0000133334 per GB-second on arm64; a mean rounded up to the millisecond Lambda bills.
        var requests = (4 + 28) * 0.20 / 1e6;
        var authorizer = 4 * Math.Ceiling(3.2) / 1000 * (1024 / 1024.0) * 0.0000133334;
        var backend = 28 * Math.Ceiling(9.2) / 1000 * (512 / 1024.0) * 0.0000133334;
        Assert.Equal(1000 * (requests + authorizer + backend), figures.LambdaPer1000, 12);

        // Halving the backend's memory halves its share, not the authorizer's.
        var doubled = figures with { BackendMemoryMb = 1024 };
        Assert.Equal(1000 * backend, doubled.LambdaPer1000 - figures.LambdaPer1000, 12);
        Assert.Contains("Lambda (arm64; authorizer 1024 MB, backend 512 MB)", figures.Report("call"), StringComparison.Ordinal);
    }

    [Fact]
    public void LambdaTime_IsGroupedByRoute_WithTheRoomFolded_LongestFirst()
    {
        Talki.Signalling.Emulator.InvocationRecord Url(string path, double ms) => new("Backend", 0, "url", path, 200, TimeSpan.FromMilliseconds(ms));
        var invocations = new[]
        {
            Url("/talki/rooms/AbC123/tickets", 40), Url("/talki/rooms/xyz/tickets", 35.4), Url("/talki/aws/default", 5),
            Url("/talki/aws/default", 7), new("Authorizer", 0, "authorizer", "/events", 200, TimeSpan.FromMilliseconds(9)),
            Url("/talki/rooms", 17),
        };

        Assert.Equal(
            "/talki/rooms/{room}/tickets 2 (75 ms), /talki/rooms 1 (17 ms), /talki/aws/default 2 (12 ms), authorizer 1 (9 ms)",
            CallFigures.LambdaTimeByRoute(invocations));
        Assert.Contains("through the local hop); by route, invocations and summed milliseconds: /talki/rooms 1 (17 ms)\n", (Figures(stageAccessLogs: true) with { LambdaByRoute = "/talki/rooms 1 (17 ms)" }).Report("call"), StringComparison.Ordinal);
    }

    [Fact]
    public void Report_UnderACultureWithADecimalComma_WritesEveryFigureWithADecimalPoint()
    {
        var culture = System.Globalization.CultureInfo.CurrentCulture;
        try
        {
            System.Globalization.CultureInfo.CurrentCulture = System.Globalization.CultureInfo.GetCultureInfo("de-DE");
            var report = Figures(stageAccessLogs: true).Report("call");

            Assert.DoesNotMatch(@"\$\d+,\d", report);
            Assert.Contains("50.5 read", report, StringComparison.Ordinal);
            Assert.Matches(@"\(\$0\.\d{4} without the stage's access logs", report);
        }
        finally
        {
            System.Globalization.CultureInfo.CurrentCulture = culture;
        }
    }

    /// <summary>The counts of a 4-member protocol-2 call (CallCostTests): 16 messages in, 4 authorizer and 28 backend invocations, 4 disconnects, one access-log line for each connect, message in and disconnect.</summary>
    private static CallFigures Figures(bool stageAccessLogs, string systemLogLevel = "WARN") => new(
        MessagesIn: 16,
        MessagesOut: 22,
        MeteredMessages: 38,
        MeasuredConnectionMinutes: 0.5,
        AuthorizerInvocations: 4,
        BackendInvocations: 28,
        HttpApiInvocations: 8,
        DefaultInvocations: 16,
        DisconnectInvocations: 4,
        AuthorizerMeanMs: 3.2,
        BackendMeanMs: 9.2,
        BackendP95Ms: 20,
        AuthorizerMemoryMb: 1024,
        BackendMemoryMb: 512,
        DynamoReads: 67,
        DynamoWrites: 42,
        DynamoByAction: "GetItem 10",
        DynamoReadUnits: 50.5,
        DynamoWriteUnits: 45,
        DynamoConditionalFailures: 0,
        ConnectionsByVerb: "POST ×22",
        SystemLogLevel: systemLogLevel,
        StageAccessLogs: stageAccessLogs,
        AccessLogLines: stageAccessLogs ? 4 + 16 + 4 : 0,
        AccessLogBytes: stageAccessLogs ? 24 * 300 : 0);
}
