using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Talki.Signalling.Testing;
using Talki.Signalling.Aws.Tests.DynamoDb;
using Talki.Signalling.Http;
using Talki.Signalling.Protocol;
using Xunit.Abstractions;

namespace Talki.Signalling.Aws.IntegrationTests;

/// <summary>
/// A whole call over the AWS path, counted for its cost with everything included: the sign-ins, the tickets, the
/// connects, the admissions, the mesh's negotiation, the close at the seal and the <c>$disconnect</c>s; and what the
/// server does to a socket that stays past the seal.
/// </summary>
[Collection(DynaliteGroup.Name)]
public sealed class CallCostTests(DynaliteFixture dynalite, ITestOutputHelper output)
{
    /// <summary>Candidate messages per side of a link: a browser trickles a host and a server-reflexive candidate (assumption, see the README).</summary>
    private const int CandidateMessagesPerSide = 2;

    private static readonly TimeSpan Window = TimeSpan.FromSeconds(15);

    /// <summary>
    /// The emulator's replica lag for the priced calls: none. Its model (an eventually consistent read within a second of a
    /// write sees the item as it was before; <see cref="EmulatorReplicaLagTests"/>) would find the room missing on every
    /// read of these calls, which run within a second of the room's creation, and have each read again strongly. A real
    /// call's reads of its room spread over its join window: only the admin's first ones, a moment after the creation, can
    /// meet a replica without the room (at most a read unit more a call). The other tests, Chromium's included, run with it.
    /// </summary>
    private static readonly TimeSpan PricedReplicaLag = TimeSpan.Zero;

    [Fact]
    public async Task FourMemberCall_EverythingIncludedThroughTheSeal_IsCountedAndPriced()
    {
        await using var stack = await AwsStack.StartAsync(dynalite, "talki-cost", alterTemplate: ShortWindow, replicaLag: PricedReplicaLag);
        stack.Emulator.Counters.Reset();

        var users = await SignInFourAsync(stack);

        var (_, sockets) = await MeshOfFour.NegotiateAsync(users, CandidateMessagesPerSide);

        var (counters, _) = await CloseAtTheSealAsync(stack, sockets);

        const int links = 6;
        var signals = links * 2 * (1 + CandidateMessagesPerSide);
        Assert.Equal(4 + 3 + signals, counters.InboundMessages); // hellos, admits, signals
        Assert.Equal(4, counters.AuthorizerCalls);
        Assert.Equal(0, counters.ConnectionsAccessDenied);
        Assert.Equal(0, counters.FunctionUrlForbidden);
        Assert.Equal(0, counters.ConnectionsApiCallCount("DELETE")); // nobody had to be closed by the server
        Assert.DoesNotContain(counters.DynamoDbCalls.Keys, k => k.EndsWith(" denied", StringComparison.Ordinal));

        var figures = CallFigures.From(stack, stack.Template, httpApiCalls: 4 + 1 + 3);
        var report = figures.Report($"4-member call through the emulator, everything included (4 sign-ins, create + 3 join tickets, 6 links with offer + answer + {CandidateMessagesPerSide} candidate messages per side, close at the seal, 4 $disconnect):")
            + $"\nMeasured with {stack.HostsDescription()}";
        output.WriteLine(report);
        await File.WriteAllTextAsync(Path.Combine(AppContext.BaseDirectory, "aws-call-cost.txt"), report);
        Assert.True(figures.TotalPer1000Calls > 0);
        foreach (var user in users)
        {
            user.Dispose();
        }
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public async Task FourMemberCallInProtocolV2V3OrV4_EverythingIncludedThroughTheSeal_IsCountedAndPriced(int version)
    {
        await using var stack = await AwsStack.StartAsync(dynalite, $"talki-cost-v{version}", alterTemplate: ShortWindow, replicaLag: PricedReplicaLag);

        // Two calls, one after the other, counted apart: the first on fresh function instances (each handler's first
        // invocations compile their code), the second on the same instances, warm, as most calls of a deployment run.
        // Both are priced; the report leads with the warm one and gives the first beside it.
        var figures = new List<CallFigures>();
        for (var call = 0; call < 2; call++)
        {
            stack.Emulator.Counters.Reset();
            var users = await SignInFourAsync(stack);

            var (_, sockets) = await MeshOfFour.NegotiateV2Async(users, version, stack.Emulator.Counters);
            var (counters, atTheClose) = await CloseAtTheSealAsync(stack, sockets);

            // After the seal a $disconnect neither reads nor writes: the authorizer's context tells it the room has sealed, and
            // the member's item and the connection's binding expire with the room.
            Assert.Empty(atTheClose);

            // In: 4 hellos, 3 admits, the newcomers' offers in 3 messages (1 + a 'signals' of 2 + a 'signals' of 3, each offer
            // with its candidates) and 6 answers. Out: 4 welcomes, 3 requests (one per knock), 3 admissions with their plans
            // (version 3: the newcomers' welcomes are their admissions), 12 relayed signals. No connect_to_peer, no echo, no
            // candidate message.
            // Version 4: a newcomer's connect (wait=1) stands for its hello: 3 hellos fewer.
            var hellos = version >= 4 ? 1 : 4;
            Assert.Equal(hellos + 3 + 3 + 6, counters.InboundMessages);
            Assert.Equal(4 + 3 + (version >= 3 ? 0 : 3) + 12, counters.OutboundMessages);
            Assert.Equal(0, counters.ConnectionsAccessDenied);
            Assert.Equal(0, counters.ConnectionsApiCallCount("DELETE"));
            Assert.DoesNotContain(counters.DynamoDbCalls.Keys, k => k.EndsWith(" denied", StringComparison.Ordinal));

            // The stage's access log, as the emulator wrote it from the template's format: one line per connect, message in
            // and disconnect, each with its connection's id and its outcome.
            var lines = counters.AccessLog.Select(line => JsonNode.Parse(line)!.AsObject()).ToList();
            Assert.Equal(4 + hellos + 12 + 4, counters.AccessLogLines);
            Assert.Equal(
                $"$connect 200 ×4, $default 200 ×{hellos + 12}, $disconnect 200 ×4",
                string.Join(", ", lines.GroupBy(l => $"{l["route"]} {l["status"]}").OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => $"{g.Key} ×{g.Count()}")));
            Assert.All(lines, l => Assert.Matches("^[A-Za-z0-9+/]{15}=$", (string)l["conn"]!));
            figures.Add(CallFigures.From(stack, stack.Template, httpApiCalls: 4 + 1 + 3));
            foreach (var user in users)
            {
                user.Dispose();
            }
        }

        // The same call twice: the same billable quantities; only the handlers' time differs (and with it the time by route
        // and the digits of the access-log lines' integration latencies).
        Assert.Equal(
            figures[0] with { AuthorizerMeanMs = 0, BackendMeanMs = 0, BackendP95Ms = 0, MeasuredConnectionMinutes = 0, AccessLogBytes = 0, LambdaByRoute = "" },
            figures[1] with { AuthorizerMeanMs = 0, BackendMeanMs = 0, BackendP95Ms = 0, MeasuredConnectionMinutes = 0, AccessLogBytes = 0, LambdaByRoute = "" });
        var (first, warm) = (figures[0], figures[1]);

        // The store's share, pinned item by item: a request added or saved anywhere in the call shows here. No write at the
        // close (after the seal a $disconnect touches nothing), none to check the room on a knock (its read stands) and no
        // binding by connection id (the authorizer's context names the member on every event: its record is the binding);
        // the room's item, written once, is read eventually consistent (half a unit); every ticket of the call is kept in the
        // record its create or knock writes anyway, and the authorizer takes it from there (a member write that returns the
        // member: no ticket item written or deleted, no member read); the room derives its member ids from the users, so a
        // member's own item is its user's guard (no USER# item written, and a knock looks its user up by the id it derives).
        // Version 3: a waiting newcomer's hello lists nobody (3 room queries fewer); it reads the admin's record instead,
        // to ask a version 1 admin again as that version expects (a read by key, no query). Version 4: a waiting newcomer
        // sends no hello; the authorizer takes its ticket and binds it ready in one conditional write (no read of the member,
        // nor of the room again, nor of the admin's record): 2 member reads, half a room read and one write fewer per newcomer.
        Assert.Equal(
            version >= 4
                ? "ROOM#/MEMBER# write 12, ROOM#/META write 4, cache#/cache write 4, "
                    + "ROOM# (query) read 19, ROOM#/MEMBER# read 13, ROOM#/META read 7, cache#/cache read 4"
            : version == 3
                ? "ROOM#/MEMBER# write 15, ROOM#/META write 4, cache#/cache write 4, "
                    + "ROOM# (query) read 19, ROOM#/MEMBER# read 19, ROOM#/META read 8.5, cache#/cache read 4"
                : "ROOM#/MEMBER# write 15, ROOM#/META write 4, cache#/cache write 4, "
                    + "ROOM# (query) read 22, ROOM#/MEMBER# read 16, ROOM#/META read 8.5, cache#/cache read 4",
            warm.DynamoByItemKind);
        var report = warm.Report($"4-member call in protocol v{version} through the emulator, everything included (4 sign-ins, create + 3 join tickets, 6 links with an offer and an answer carrying their candidates, each newcomer's offers in one message, close at the seal, 4 $disconnect), the second call on warm function instances:")
            + string.Create(CultureInfo.InvariantCulture, $"\nThe first call, on fresh instances (a JIT host compiling the handlers' code, any host building its services): authorizer mean {first.AuthorizerMeanMs:F1} ms, backend mean {first.BackendMeanMs:F1} ms (p95 {first.BackendP95Ms:F1}); Lambda ${first.LambdaPer1000:F4}, total ${first.TotalPer1000Calls:F4} per 1,000 calls")
            + $"\nMeasured with {stack.HostsDescription()}";
        output.WriteLine(report);
        await File.WriteAllTextAsync(Path.Combine(AppContext.BaseDirectory, $"aws-call-cost-v{version}.txt"), report);
    }

    [Fact]
    public async Task ARelayedSignal_CostsOneDynamoDbRead_AndNoWrite()
    {
        await using var stack = await AwsStack.StartAsync(dynalite, "talki-relay-reads");
        using var ada = await stack.SignInAsync("Ada");
        using var bob = await stack.SignInAsync("Bob");
        var room = await ada.TicketAsync("/talki/rooms", HttpStatusCode.Created);
        await using var adaSocket = await ada.ConnectAsync(room, version: 2);
        var join = await bob.TicketAsync($"/talki/rooms/{room.Room}/tickets", HttpStatusCode.OK);
        await using var bobSocket = await bob.ConnectAsync(join, version: 2);
        await adaSocket.ExpectAsync<AdmissionRequestMessage>();
        await adaSocket.SendAsync($$$"""{"type":"admit","member":"{{{join.Member}}}"}""");
        await bobSocket.ExpectAsync<AdmittedMessage>();
        var before = stack.DynamoDbOperations();

        for (var i = 0; i < 5; i++)
        {
            await bobSocket.SendAsync($$$"""{"type":"signal","to":"{{{room.Member}}}","candidates":[{"candidate":"candidate:{{{i}}} 1 udp 1 192.0.2.1 5000 typ host"}]}""");
            await adaSocket.ExpectAsync<SignalRelayMessage>(m => m.Candidates![0].Candidate.StartsWith($"candidate:{i} ", StringComparison.Ordinal));
        }

        var after = stack.DynamoDbOperations();
        var delta = after.ToDictionary(p => p.Key, p => p.Value - before.GetValueOrDefault(p.Key), StringComparer.Ordinal).Where(p => p.Value != 0).ToDictionary(StringComparer.Ordinal);
        Assert.Equal(new Dictionary<string, long> { ["Query"] = 5 }, delta); // one query of the room's members per signal
    }

    [Fact]
    public async Task ASignalsMessageToTwoMembers_CostsOneDynamoDbRead_AndNoWrite_AndReachesBoth()
    {
        await using var stack = await AwsStack.StartAsync(dynalite, "talki-batch-reads");
        using var ada = await stack.SignInAsync("Ada");
        var room = await ada.TicketAsync("/talki/rooms", HttpStatusCode.Created);
        await using var adaSocket = await ada.ConnectAsync(room, version: 2);
        var users = new List<AwsUser>();
        var tickets = new List<TicketResponse>();
        var sockets = new List<AwsSocket>();
        foreach (var name in new[] { "Bob", "Cy" })
        {
            var user = await stack.SignInAsync(name);
            users.Add(user);
            var join = await user.TicketAsync($"/talki/rooms/{room.Room}/tickets", HttpStatusCode.OK);
            tickets.Add(join);
            sockets.Add(await user.ConnectAsync(join, version: 2));
            await adaSocket.ExpectAsync<AdmissionRequestMessage>(m => m.Member.Id == join.Member);
            await adaSocket.SendAsync($$$"""{"type":"admit","member":"{{{join.Member}}}"}""");
            await sockets[^1].ExpectAsync<AdmittedMessage>();
        }

        var before = stack.DynamoDbOperations();
        for (var i = 0; i < 5; i++)
        {
            await sockets[1].SendAsync($$$"""{"type":"signals","signals":[{"to":"{{{room.Member}}}","candidates":[{"candidate":"candidate:{{{i}}} 1 udp 1 192.0.2.1 5000 typ host"}]},{"to":"{{{tickets[0].Member}}}","candidates":[{"candidate":"candidate:{{{i}}} 1 udp 1 192.0.2.1 5000 typ host"}]}]}""");
            await adaSocket.ExpectAsync<SignalRelayMessage>(m => m.From == tickets[1].Member && m.Candidates![0].Candidate.StartsWith($"candidate:{i} ", StringComparison.Ordinal));
            await sockets[0].ExpectAsync<SignalRelayMessage>(m => m.From == tickets[1].Member && m.Candidates![0].Candidate.StartsWith($"candidate:{i} ", StringComparison.Ordinal));
        }

        var after = stack.DynamoDbOperations();
        var delta = after.ToDictionary(p => p.Key, p => p.Value - before.GetValueOrDefault(p.Key), StringComparer.Ordinal).Where(p => p.Value != 0).ToDictionary(StringComparer.Ordinal);
        Assert.Equal(new Dictionary<string, long> { ["Query"] = 5 }, delta); // one query of the room's members per message: half a read per signal
        foreach (var socket in sockets)
        {
            await socket.DisposeAsync();
        }

        foreach (var user in users)
        {
            user.Dispose();
        }
    }

    [Fact]
    public async Task StragglerPastTheSeal_ItsNextMessageGetsRoomSealed_AndTheServerClosesIt()
    {
        await using var stack = await AwsStack.StartAsync(dynalite, "talki-straggler", alterTemplate: ShortWindow);
        using var ada = await stack.SignInAsync("Ada");
        var room = await ada.TicketAsync("/talki/rooms", HttpStatusCode.Created);
        await using var socket = await ada.ConnectAsync(room);
        var wait = socket.Welcome!.Room.SealsAt - DateTimeOffset.UtcNow + TimeSpan.FromMilliseconds(300);
        await Task.Delay(wait > TimeSpan.Zero ? wait : TimeSpan.Zero);
        var deletes = stack.Emulator.Counters.ConnectionsApiCallCount("DELETE");

        // A client that does not close at the seal (an old one, or a hostile one) keeps sending.
        await socket.SendAsync("""{"type":"ping","id":"late"}""");

        var sealedMessage = await socket.ExpectAsync<RoomSealedMessage>();
        Assert.Equal(room.Room, sealedMessage.Room);
        await socket.WaitClosedAsync();
        Assert.Equal(deletes + 1, stack.Emulator.Counters.ConnectionsApiCallCount("DELETE"));
        Assert.Empty(stack.Emulator.OpenConnectionIds);

        // And the room takes nobody after the seal.
        using var late = await stack.SignInAsync("Late");
        var refused = await late.PostAsync($"/talki/rooms/{room.Room}/tickets");
        Assert.Equal(HttpStatusCode.Gone, refused.StatusCode);
        Assert.Contains("\"code\":\"room_sealed\"", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    private static async Task<List<AwsUser>> SignInFourAsync(AwsStack stack)
    {
        var users = new List<AwsUser>();
        for (var i = 0; i < 4; i++)
        {
            users.Add(await stack.SignInAsync("M" + i));
        }

        return users;
    }

    /// <summary>
    /// The clients close their own sockets at the seal (TalkiCall does, by the server's clock); API Gateway then calls
    /// <c>$disconnect</c> for each. Returns the counters once the four are handled, and the DynamoDB calls the close made.
    /// </summary>
    private static async Task<(Talki.Signalling.Emulator.EmulatorCounters Counters, Dictionary<string, long> DynamoDbAtTheClose)> CloseAtTheSealAsync(AwsStack stack, List<AwsSocket> sockets)
    {
        var sealsAt = sockets[0].Welcome!.Room.SealsAt;
        var wait = sealsAt - DateTimeOffset.UtcNow + TimeSpan.FromMilliseconds(500);
        Assert.True(wait > TimeSpan.Zero, $"the call took longer than the {Window.TotalSeconds} s window");
        await Task.Delay(wait);
        var before = stack.DynamoDbOperations();
        foreach (var socket in sockets)
        {
            await socket.DisposeAsync();
        }

        var counters = stack.Emulator.Counters;
        await WaitAsync(() => counters.DisconnectRouteCalls == 4 && stack.Emulator.OpenConnectionIds.Count == 0
            && counters.Integrations.Count == counters.DefaultRouteCalls + counters.DisconnectRouteCalls, "the four $disconnects handled");
        var after = stack.DynamoDbOperations();
        return (counters, after.Select(p => (p.Key, Count: p.Value - before.GetValueOrDefault(p.Key))).Where(p => p.Count != 0).ToDictionary(p => p.Key, p => p.Count, StringComparer.Ordinal));
    }

    private static void ShortWindow(JsonObject template)
    {
        foreach (var (_, resource) in template["Resources"]!.AsObject())
        {
            if ((string?)resource!["Type"] == "AWS::Lambda::Function")
            {
                resource["Properties"]!["Environment"]!["Variables"]!["Talki__JoinWindow"] = Window.ToString("c", CultureInfo.InvariantCulture);
            }
        }
    }

    /// <summary>Polls <paramref name="condition"/> until it holds, 20 s at most (the call helpers in <see cref="MeshOfFour"/> use it too).</summary>
    internal static async Task WaitAsync(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {what}");
            await Task.Delay(20);
        }
    }
}

/// <summary>What a call cost, from the emulator's counters, the template's configuration and named prices.</summary>
internal sealed partial record CallFigures(
    long MessagesIn,
    long MessagesOut,
    long MeteredMessages,
    double MeasuredConnectionMinutes,
    long AuthorizerInvocations,
    long BackendInvocations,
    long HttpApiInvocations,
    long DefaultInvocations,
    long DisconnectInvocations,
    double AuthorizerMeanMs,
    double BackendMeanMs,
    double BackendP95Ms,
    int AuthorizerMemoryMb,
    int BackendMemoryMb,
    long DynamoReads,
    long DynamoWrites,
    string DynamoByAction,
    double DynamoReadUnits,
    double DynamoWriteUnits,
    long DynamoConditionalFailures,
    string ConnectionsByVerb,
    string SystemLogLevel,
    bool StageAccessLogs = true,
    string DynamoByItemKind = "",
    long AccessLogLines = 0,
    long AccessLogBytes = 0,
    string LambdaByRoute = "")
{
    // us-east-1 prices (shared/research/aws-facts.md §7; CloudWatch Logs: $0.50 per GB ingested, standard class).
    private const double MessagePrice = 1.00 / 1e6;
    private const double ConnectionMinutePrice = 0.25 / 1e6;
    private const double LambdaRequestPrice = 0.20 / 1e6;
    private const double ArmGbSecondPrice = 0.0000133334;
    private const double WriteUnitPrice = 0.625 / 1e6;
    private const double ReadUnitPrice = 0.125 / 1e6;
    private const double LogGbPrice = 0.50;

    /// <summary>Connection-minutes per call with the default 5-minute window: each member connected from the start to the seal (an upper bound).</summary>
    public const double DefaultWindowConnectionMinutes = 4 * 5;

    /// <summary>
    /// Bytes CloudWatch Logs counts per log event besides its message: PutLogEvents sizes a batch as "the sum of all event
    /// messages in UTF-8, plus 26 bytes for each log event" (CloudWatch Logs API reference, PutLogEvents). Counted here as
    /// ingested too, so the figure is an upper bound if the bill counts the messages alone.
    /// </summary>
    public const int LogEventOverheadBytes = 26;

    /// <summary>Bytes of Lambda's START/END/REPORT lines per invocation.</summary>
    public const int LambdaPlatformLogBytes = 330;

    public double ApiGatewayPer1000 => 1000 * ((MeteredMessages * MessagePrice) + (DefaultWindowConnectionMinutes * ConnectionMinutePrice));

    /// <summary>Lambda bills each invocation's duration rounded up to the millisecond, at the configured memory.</summary>
    public double LambdaPer1000 => 1000 * (((AuthorizerInvocations + BackendInvocations) * LambdaRequestPrice)
        + ((((AuthorizerInvocations * Math.Ceiling(AuthorizerMeanMs) * AuthorizerMemoryMb) + (BackendInvocations * Math.Ceiling(BackendMeanMs) * BackendMemoryMb)) / 1024.0) / 1000.0 * ArmGbSecondPrice));

    /// <summary>An on-demand table bills request units: what the emulator metered through dynalite, by item size (EmulatorCapacityTests).</summary>
    public double DynamoPer1000 => 1000 * ((DynamoWriteUnits * WriteUnitPrice) + (DynamoReadUnits * ReadUnitPrice));

    /// <summary>Bytes of Lambda platform lines per invocation: none when the functions' system log level is WARN (START, END and REPORT are INFO).</summary>
    public int PlatformLogBytes => SystemLogLevel == "WARN" ? 0 : LambdaPlatformLogBytes;

    /// <summary>
    /// The stage's access logs as the emulator wrote them (<see cref="AccessLogLines"/> lines of <see cref="AccessLogBytes"/>
    /// bytes in all: the template's format rendered with each event's values, one line per connect, message in and
    /// disconnect; none when the template's stage writes no access logs), each with CloudWatch Logs' per-event bytes.
    /// </summary>
    public double AccessLogsPer1000 => 1000 * LogGbPrice / 1e9 * (AccessLogBytes + (AccessLogLines * LogEventOverheadBytes));

    public double LogsPer1000 => AccessLogsPer1000 + (1000 * LogGbPrice / 1e9 * (AuthorizerInvocations + BackendInvocations) * PlatformLogBytes);

    public double TotalPer1000Calls => ApiGatewayPer1000 + LambdaPer1000 + DynamoPer1000 + LogsPer1000;

    public static CallFigures From(AwsStack stack, JsonObject template, long httpApiCalls)
    {
        var counters = stack.Emulator.Counters;
        var backend = counters.Invocations.Where(i => i.Function == "Backend").Select(i => i.Duration.TotalMilliseconds).Order().ToArray();
        var authorizer = counters.Invocations.Where(i => i.Function == "Authorizer").Select(i => i.Duration.TotalMilliseconds).ToArray();
        var functions = template["Resources"]!.AsObject().Where(r => (string?)r.Value!["Type"] == "AWS::Lambda::Function").Select(r => r.Value!["Properties"]!).ToList();
        var memory = stack.Emulator.Deployment.Functions.ToDictionary(f => f.Key, f => f.MemorySizeMb, StringComparer.Ordinal);
        var systemLogLevel = functions.Select(f => (string?)f["LoggingConfig"]?[nameof(SystemLogLevel)] ?? "INFO").Distinct().Single();
        var stageAccessLogs = template["Resources"]!.AsObject().Where(r => (string?)r.Value!["Type"] == "AWS::ApiGatewayV2::Stage")
            .Select(r => r.Value!["Properties"]?["AccessLogSettings"] is not null).Single();
        var operations = stack.DynamoDbOperations();
        string[] readOperations = ["GetItem", "Query", "Scan", "BatchGetItem"];
        return new CallFigures(
            counters.InboundMessages,
            counters.OutboundMessages,
            counters.MeteredMessages,
            stack.Emulator.ConnectionTime.TotalMinutes,
            counters.FunctionInvocations("Authorizer"),
            counters.FunctionInvocations("Backend"),
            httpApiCalls,
            counters.DefaultRouteCalls,
            counters.DisconnectRouteCalls,
            authorizer.DefaultIfEmpty(0).Average(),
            backend.DefaultIfEmpty(0).Average(),
            backend.Length == 0 ? 0 : backend[(int)Math.Ceiling(0.95 * backend.Length) - 1],
            memory["Authorizer"],
            memory["Backend"],
            operations.Where(p => readOperations.Contains(p.Key)).Sum(p => p.Value),
            operations.Where(p => !readOperations.Contains(p.Key)).Sum(p => p.Value),
            string.Join(", ", operations.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Key} {p.Value}")),
            counters.DynamoDbReadUnits,
            counters.DynamoDbWriteUnits,
            counters.DynamoDbConditionalCheckFailures,
            string.Join(", ", counters.ConnectionsApiCalls.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Key} ×{p.Value}")),
            systemLogLevel,
            stageAccessLogs,
            AccessLogLines: counters.AccessLogLines,
            AccessLogBytes: counters.AccessLogBytes,
            LambdaByRoute: LambdaTimeByRoute(counters.Invocations),
            DynamoByItemKind: string.Join(", ", counters.DynamoDbUnitsByItemKind.OrderByDescending(p => p.Key.EndsWith(" write", StringComparison.Ordinal)).ThenByDescending(p => p.Value).ThenBy(p => p.Key, StringComparer.Ordinal)
                .Select(p => string.Create(CultureInfo.InvariantCulture, $"{p.Key} {p.Value:0.#}"))));
    }

    /// <summary>
    /// Where the functions' billed time goes: the invocations by route (the function URL's paths with the room id folded,
    /// the authorizer's event path), each with its count and summed duration, longest first.
    /// </summary>
    internal static string LambdaTimeByRoute(IEnumerable<Talki.Signalling.Emulator.InvocationRecord> invocations)
        => string.Join(", ", invocations
            .GroupBy(i => i.Trigger == "authorizer" ? "authorizer" : RoomInPath().Replace(i.Path, "/rooms/{room}/"))
            .Select(g => (Route: g.Key, Count: g.Count(), Ms: g.Sum(i => i.Duration.TotalMilliseconds)))
            .OrderByDescending(r => r.Ms).ThenBy(r => r.Route, StringComparer.Ordinal)
            .Select(r => string.Create(CultureInfo.InvariantCulture, $"{r.Route} {r.Count} ({r.Ms:F0} ms)")));

    public string Report(string title) => string.Create(CultureInfo.InvariantCulture, $"""
        {title}
          API Gateway: {MessagesIn} messages in, {MessagesOut} out ({MeteredMessages} metered); measured connection time {MeasuredConnectionMinutes:F2} min (short test window), priced at {DefaultWindowConnectionMinutes} connection-minutes (default 5-minute window, every member from the start to the seal)
          Lambda (arm64; authorizer {AuthorizerMemoryMb} MB, backend {BackendMemoryMb} MB): authorizer {AuthorizerInvocations} invocations (mean {AuthorizerMeanMs:F1} ms); backend {BackendInvocations} ({HttpApiInvocations} HTTP API, {DefaultInvocations} $default, {DisconnectInvocations} $disconnect; mean {BackendMeanMs:F1} ms, p95 {BackendP95Ms:F1} ms, measured on this machine through the local hop){(LambdaByRoute.Length == 0 ? "" : $"; by route, invocations and summed milliseconds: {LambdaByRoute}")}
          @connections: {ConnectionsByVerb}
          DynamoDB: {DynamoReads} reads, {DynamoWrites} writes ({DynamoByAction}); {DynamoReadUnits:0.#} read and {DynamoWriteUnits:0.#} write request units as an on-demand table meters them (by item size, through dynalite{(DynamoConditionalFailures == 0 ? "" : string.Create(CultureInfo.InvariantCulture, $"; {DynamoConditionalFailures} failed conditional writes at 1 unit each"))}){(DynamoByItemKind.Length == 0 ? "" : $"; units by item (key prefixes): {DynamoByItemKind}")}
          Logs: {(StageAccessLogs ? string.Create(CultureInfo.InvariantCulture, $"{AccessLogLines} access-log lines of {AccessLogBytes} B in all as the emulator wrote them ({(AccessLogLines == 0 ? 0 : (double)AccessLogBytes / AccessLogLines):F0} B each) + {LogEventOverheadBytes} B per event") : "no stage access logs (TalkiStackProps.AccessLogs false)")} + {AuthorizerInvocations + BackendInvocations} invocations × {PlatformLogBytes} B of Lambda platform lines (system log level {SystemLogLevel}; the stack sets the host's log level to Warning: a normal call writes no host lines)
        Per 1,000 calls (us-east-1): API Gateway ${ApiGatewayPer1000:F4}, Lambda ${LambdaPer1000:F4}, DynamoDB ${DynamoPer1000:F4}, CloudWatch Logs ${LogsPer1000:F4}; total ${TotalPer1000Calls:F4}{(StageAccessLogs ? string.Create(CultureInfo.InvariantCulture, $" (${TotalPer1000Calls - AccessLogsPer1000:F4} without the stage's access logs, `-c talki:accessLogs=false`)") : "")}
        """);

    [GeneratedRegex("/rooms/[^/]+/", RegexOptions.CultureInvariant)]
    private static partial Regex RoomInPath();
}
