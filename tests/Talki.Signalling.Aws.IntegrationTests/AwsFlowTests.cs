using System.Globalization;
using System.Net;
using Talki.Signalling.Aws.Tests.DynamoDb;
using Talki.Signalling.Http;
using Talki.Signalling.Protocol;
using Xunit.Abstractions;

namespace Talki.Signalling.Aws.IntegrationTests;

/// <summary>The Talki flow end to end over the AWS path: clients → emulator → host in AWS mode → dynalite.</summary>
[Collection(DynaliteGroup.Name)]
public sealed class AwsFlowTests(DynaliteFixture dynalite, ITestOutputHelper output)
{
    [Fact]
    public async Task FullFlow_WithRefreshDenialAndCrossRoomAttempt()
    {
        await using var stack = await AwsStack.StartAsync(dynalite, "talki-e2e-flow");
        using var ada = await stack.SignInAsync("Ada");
        var room = await ada.TicketAsync("/talki/rooms", HttpStatusCode.Created);
        Assert.StartsWith(stack.Emulator.WebSocketUrl.ToString(), room.WebSocketUrl.ToString(), StringComparison.Ordinal);
        await using var adaSocket = await ada.ConnectAsync(room);

        using var bob = await stack.SignInAsync("Bob");
        using var dan = await stack.SignInAsync("Dan");
        var bobTicket = await bob.TicketAsync($"/talki/rooms/{room.Room}/tickets", HttpStatusCode.OK);
        var danTicket = await dan.TicketAsync($"/talki/rooms/{room.Room}/tickets", HttpStatusCode.OK);
        await using var bobSocket = await bob.ConnectAsync(bobTicket);
        await using var danSocket = await dan.ConnectAsync(danTicket);
        await adaSocket.ExpectAsync<AdmissionRequestMessage>(m => m.Member.Id == bobTicket.Member);
        await adaSocket.ExpectAsync<AdmissionRequestMessage>(m => m.Member.Id == danTicket.Member);

        // Admit Bob; deny Dan (his socket is closed through @connections DELETE).
        await adaSocket.SendAsync($$$"""{"type":"admit","member":"{{{bobTicket.Member}}}"}""");
        await adaSocket.SendAsync($$$"""{"type":"deny","member":"{{{danTicket.Member}}}"}""");
        await bobSocket.ExpectAsync<AdmittedMessage>();
        Assert.Equal(1, (await adaSocket.ExpectAsync<ConnectToPeerMessage>(m => m.Peer.Id == bobTicket.Member)).PeerEpoch);
        await danSocket.ExpectAsync<DeniedMessage>();
        await danSocket.WaitClosedAsync();
        var denied = await dan.PostAsync($"/talki/rooms/{room.Room}/tickets");
        Assert.Equal(HttpStatusCode.Forbidden, denied.StatusCode);

        // Bob refreshes: a new ticket and socket, no new question to the admin, a new epoch.
        var again = await bob.TicketAsync($"/talki/rooms/{room.Room}/tickets", HttpStatusCode.OK);
        await using var bobSocket2 = await bob.ConnectAsync(again);
        Assert.Equal(AdmissionStatus.Admitted, bobSocket2.Welcome!.Status);
        await bobSocket.WaitClosedAsync();
        await adaSocket.ExpectAsync<PeerLeftMessage>(m => m.Member == bobTicket.Member && m.Epoch == 1);
        Assert.Equal(2, (await adaSocket.ExpectAsync<ConnectToPeerMessage>(m => m.Peer.Id == bobTicket.Member)).PeerEpoch);

        await adaSocket.SendAsync($$$"""{"type":"signal","id":"old","to":"{{{bobTicket.Member}}}","toEpoch":1,"description":{"type":"offer","sdp":"old"}}""");
        Assert.Equal(SignallingErrorCode.StaleEpoch, (await adaSocket.ExpectAsync<ErrorMessage>(e => e.Id == "old")).Code);
        await adaSocket.SendAsync($$$"""{"type":"signal","to":"{{{bobTicket.Member}}}","toEpoch":2,"description":{"type":"offer","sdp":"new"}}""");
        Assert.Equal("new", (await bobSocket2.ExpectAsync<SignalRelayMessage>()).Description!.Sdp);

        // Another room cannot reach Bob.
        using var eve = await stack.SignInAsync("Eve");
        var other = await eve.TicketAsync("/talki/rooms", HttpStatusCode.Created);
        await using var eveSocket = await eve.ConnectAsync(other);
        await eveSocket.SendAsync($$$"""{"type":"signal","id":"x","to":"{{{bobTicket.Member}}}","description":{"type":"offer","sdp":"intrusion"}}""");
        Assert.Equal(SignallingErrorCode.MemberNotFound, (await eveSocket.ExpectAsync<ErrorMessage>(e => e.Id == "x")).Code);
        Assert.DoesNotContain(bobSocket2.AllFrames, f => f.Contains("intrusion", StringComparison.Ordinal));

        // A replayed ticket is refused at the upgrade (the authorizer denies: 403).
        Assert.Equal(HttpStatusCode.Forbidden, await AwsSocket.RefusedStatusAsync(again.WebSocketUrl));

        // The gateway's connection ids never reach a client.
        var ids = stack.Emulator.OpenConnectionIds.ToList();
        Assert.NotEmpty(ids);
        foreach (var text in new[] { adaSocket, bobSocket2, eveSocket }.SelectMany(s => s.AllFrames).Concat(ada.Bodies).Concat(bob.Bodies))
        {
            Assert.All(ids, id => Assert.DoesNotContain(id, text, StringComparison.Ordinal));
        }
    }

    /// <summary>
    /// A 4-member call set up through the emulator: every pair negotiates (offer, answer and one candidates
    /// message from each side). The counts feed the cost estimate; they are exact for this flow.
    /// </summary>
    [Fact]
    public async Task FourMemberCall_CountsMessagesInvocationsAndDynamoDbCalls()
    {
        await using var stack = await AwsStack.StartAsync(dynalite, "talki-e2e-counts");
        var users = new List<AwsUser>();
        for (var i = 0; i < 4; i++)
        {
            users.Add(await stack.SignInAsync("M" + i));
        }

        stack.Emulator.Counters.Reset();
        var (_, sockets) = await MeshOfFour.NegotiateAsync(users, candidateMessagesPerSide: 1);

        var counters = stack.Emulator.Counters;
        const int links = 6;
        Assert.Equal(4, counters.AuthorizerCalls);
        Assert.Equal(4 + 3 + (links * 4), counters.InboundMessages);            // hellos, admits, 4 signals per link
        Assert.Equal(4 + (3 * 2) + 6 + (links * 2) + (links * 4), counters.OutboundMessages); // welcomes, requests (at the knock and on hello), admitted ×2, plans, relays
        Assert.Equal(counters.InboundMessages, counters.DefaultRouteCalls);
        Assert.Equal(0, counters.DroppedPushes);

        // The clients have what they expect once the pushes are made, which is before the last handlers have answered.
        var settled = System.Diagnostics.Stopwatch.StartNew();
        while (counters.Integrations.Count < counters.DefaultRouteCalls && settled.Elapsed < TimeSpan.FromSeconds(10))
        {
            await Task.Delay(10);
        }

        var httpCalls = 1 + 3; // create + 3 join tickets (sign-ins happened before the count started)
        Assert.Equal(httpCalls + counters.DefaultRouteCalls, counters.FunctionInvocations("Backend")); // every call through the function URL
        Assert.Equal(counters.AuthorizerCalls, counters.FunctionInvocations("Authorizer"));
        var backendInvocations = counters.FunctionInvocations("Backend");
        var operations = stack.DynamoDbOperations();
        string[] readOperations = ["GetItem", "Query", "Scan", "BatchGetItem"];
        var reads = operations.Where(p => readOperations.Contains(p.Key)).Sum(p => p.Value);
        var writes = operations.Where(p => !readOperations.Contains(p.Key)).Sum(p => p.Value);
        Assert.True(reads > 0 && writes > 0);
        Assert.DoesNotContain(counters.DynamoDbCalls.Keys, k => k.EndsWith(" denied", StringComparison.Ordinal));

        // Measured here: the handler durations (on this machine, not on Lambda) and the connection time so far.
        static double MeanMs(IEnumerable<Talki.Signalling.Emulator.InvocationRecord> records)
            => records.Select(r => r.Duration.TotalMilliseconds).DefaultIfEmpty(0).Average();
        var backendMs = MeanMs(counters.Invocations.Where(i => i.Function == "Backend"));
        var authorizerMs = MeanMs(counters.Invocations.Where(i => i.Function == "Authorizer"));
        var connectionMinutesSoFar = stack.Emulator.ConnectionTime.TotalMinutes;

        var report = string.Create(CultureInfo.InvariantCulture, $"""
            4-member call through the emulator (6 links, offer + answer + 1 candidates message per side; priced with everything included by CallCostTests):
              API Gateway messages: {counters.InboundMessages} in, {counters.OutboundMessages} out ({counters.MeteredMessages} metered); connection time so far {connectionMinutesSoFar:F3} min
              authorizer invocations: {counters.AuthorizerCalls} (mean handler {authorizerMs:F1} ms); backend invocations: {backendInvocations} ({httpCalls} HTTP API, {counters.DefaultRouteCalls} $default, {counters.DisconnectRouteCalls} $disconnect; mean handler {backendMs:F1} ms)
              @connections: {string.Join(", ", counters.ConnectionsApiCalls.OrderBy(p => p.Key).Select(p => $"{p.Key} ×{p.Value}"))}
              DynamoDB: {reads} reads, {writes} writes ({string.Join(", ", operations.OrderBy(p => p.Key).Select(p => $"{p.Key} {p.Value}"))})
            """);
        output.WriteLine(report);
        var artifacts = Path.Combine(AppContext.BaseDirectory, "aws-call-figures.txt");
        await File.WriteAllTextAsync(artifacts, report);

        foreach (var socket in sockets)
        {
            await socket.DisposeAsync();
        }

        foreach (var user in users)
        {
            user.Dispose();
        }
    }
}
