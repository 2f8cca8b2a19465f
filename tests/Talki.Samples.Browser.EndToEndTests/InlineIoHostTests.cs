using System.Diagnostics;
using System.Net.WebSockets;
using Talki.Samples.Browser.EndToEndTests.Harness;
using Talki.Samples.Browser.EndToEndTests.Wire;
using Talki.Signalling.Server.IntegrationTests.Sessions;
using Xunit.Abstractions;

namespace Talki.Samples.Browser.EndToEndTests;

/// <summary>
/// Inline I/O in the sample host's own process (<c>samples/Talki.Samples.Host/InlineIo.cs</c>), no browser: <c>auto</c> by
/// default, on with the embedded stores, so the runtime runs the sockets' completions on one event thread per core
/// (counted in <c>/proc</c>, with <c>DOTNET_PROCESSOR_COUNT</c> fixing the count), and off with Redis (a key ring read
/// synchronously) unless forced. And, on, what members can do to the event threads that now run everything: a flood, and a member that stops
/// reading while a peer sends it 28 KB signals. Bystanders in the same and other rooms keep a ping going throughout; each
/// ping must be answered (a stalled event thread would leave it unanswered). Their slowest round trip is reported, not
/// asserted.
/// </summary>
public sealed class InlineIoHostTests(RedisServerFixture redis, ITestOutputHelper output) : IClassFixture<RedisServerFixture>
{
    private const int Cores = 3;

    private static readonly string[] Names = ["Bob (flooded)", "Cy (flood's room)", "Dee", "Eve", "Fay"];

    [Theory]
    [InlineData(null, false, Cores, "inline I/O on (auto: the stores are in this process; socket completions on the runtime's event threads)")]
    [InlineData("false", false, 1, "inline I/O off (Talki:Sample:InlineIo=false)")]
    [InlineData(null, true, 1, "inline I/O off (auto: the key ring is read synchronously from Redis or DynamoDB)")]
    [InlineData("Auto", true, 1, "inline I/O off (auto: the key ring is read synchronously from Redis or DynamoDB)")]
    [InlineData("true", true, Cores, "inline I/O on (Talki:Sample:InlineIo=true; socket completions on the runtime's event threads)")]
    public async Task Host_RunsSocketCompletionsOnOneEventThreadPerCore_OnlyWhenInlineIoIsOn(string? setting, bool withRedis, int eventThreads, string says)
    {
        var settings = new Dictionary<string, string>();
        if (setting is not null)
        {
            settings["Talki:Sample:InlineIo"] = setting;
        }

        if (withRedis)
        {
            settings["Talki:Redis"] = redis.Configuration;
            settings["Talki:RedisKeyPrefix"] = $"inline-{Guid.NewGuid():N}:";
        }

        await using var host = await SampleHost.StartAsync(
            TimeSpan.FromMinutes(5), settings, environment: new Dictionary<string, string> { ["DOTNET_PROCESSOR_COUNT"] = $"{Cores}" });

        // A room and a relayed signal: the host serves, whichever way it schedules.
        var (sockets, clients) = await RoomAsync(host, ("Ada", true), ("Bob", true));
        try
        {
            await sockets[0].Socket.SignalAsync(sockets[1].Ticket.Member, "hello-bob");
            await sockets[1].Socket.ExpectAsync("signal", m => m.GetRawText().Contains("hello-bob", StringComparison.Ordinal));
            Assert.Equal(eventThreads, host.SocketEventThreads);
            Assert.Contains("Talki sample host: " + says, host.Output, StringComparison.Ordinal);
        }
        finally
        {
            await DisposeAsync(sockets, clients);
        }
    }

    [Fact]
    public async Task Host_WithAnInlineIoValueItDoesNotKnow_DoesNotStart_AndSaysWhich()
    {
        var failure = await Assert.ThrowsAsync<InvalidOperationException>(() => SampleHost.StartAsync(
            TimeSpan.FromMinutes(5), new Dictionary<string, string> { ["Talki:Sample:InlineIo"] = "sometimes" }));
        Assert.Contains("Talki:Sample:InlineIo is 'sometimes'; it takes auto (the default), true or false.", failure.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("auto")]
    [InlineData("false")]
    public async Task AFlooderAndAMemberThatStopsReading_AreClosed_AndEveryBystanderPingIsAnswered_WithInlineIoOnAndOff(string inlineIo)
    {
        // Inline (auto), two event threads (the CI machine's cores, fixed here): the sockets and the listener are spread over
        // both, so bystanders share the hostile members' threads. Off, the same members on the thread pool, for comparison.
        // Limits: 100 messages and 4 MiB a second, bursts of 100 messages and 4 MiB, rooms of 3, and 8 frames of queue on top
        // of the peers' bursts: the member that stops reading is a slow consumer once 8 + 2 × 100 frames (5.8 MB of these)
        // wait for it (its byte bound, 2 × (4 MiB + 100 KiB) + 8 × 4 KiB, is further).
        await using var host = await SampleHost.StartAsync(
            TimeSpan.FromMinutes(10),
            new Dictionary<string, string>
            {
                ["Talki:Sample:InlineIo"] = inlineIo,
                ["Talki:Limits:MessagesPerSecond"] = "100",
                ["Talki:Limits:MessageBurst"] = "100",
                ["Talki:Limits:MessageBytesPerSecond"] = $"{4 * 1024 * 1024}",
                ["Talki:Limits:MessageBytesBurst"] = $"{4 * 1024 * 1024}",
                ["Talki:Limits:MaxMembersPerRoom"] = "3",
                ["Talki:Hosting:OutboundQueueCapacity"] = "8",
            },
            environment: new Dictionary<string, string> { ["DOTNET_PROCESSOR_COUNT"] = "2" });
        Assert.Equal(inlineIo == "auto" ? 2 : 1, host.SocketEventThreads);
        var (flood, floodClients) = await RoomAsync(host, ("Ada", true), ("Bob", true), ("Cy", true));
        var (quiet, quietClients) = await RoomAsync(host, ("Dee", true), ("Eve", true));
        var (slow, slowClients) = await RoomAsync(host, ("Fay", true), ("Gus", false));
        var (ada, bob, cy) = (flood[0].Socket, flood[1].Socket, flood[2].Socket);
        var (fay, gus) = (slow[0].Socket, slow[1].Socket);
        WireSocket[] bystanders = [bob, cy, quiet[0].Socket, quiet[1].Socket, fay]; // Fay sends in step 2, and pings only in step 1
        try
        {
            // 1. Ada floods Bob with signals as fast as her socket takes them, until the server closes it (at most 200,000).
            var (pings, floodSent) = await WhileBystandersPingAsync(bystanders, async () =>
            {
                var sent = 0;
                try
                {
                    for (; sent < 200_000 && !ada.Ended; sent++)
                    {
                        await ada.SignalAsync(flood[1].Ticket.Member, "flood-" + sent);
                    }
                }
                catch (Exception e) when (e is WebSocketException or IOException)
                {
                    // The server closed the flooding socket mid-flood: that is the point.
                }

                return sent;
            });
            Report("flood", pings);

            await ada.WaitClosedAsync(TimeSpan.FromSeconds(30));
            Assert.Contains("rate_limited", ada.ErrorCodes);
            Assert.Equal(WebSocketCloseStatus.PolicyViolation, ada.CloseStatus);
            await cy.SignalAsync(flood[1].Ticket.Member, "cy-after-the-flood");
            await bob.ExpectAsync("signal", m => m.GetRawText().Contains("cy-after-the-flood", StringComparison.Ordinal));
            output.WriteLine($"Ada sent {floodSent} signals before the server's close reached her");

            // 2. Gus reads nothing; Fay sends him 600 signals of 28 KB (17 MB), within her rate limit: most of a burst, then 80
            // a second.
            var big = new string('a', 28_000);
            var (slowPings, slowSent) = await WhileBystandersPingAsync(bystanders[..^1], async () =>
            {
                var sent = 0;
                for (; sent < 600; sent++)
                {
                    await fay.SignalAsync(slow[1].Ticket.Member, $"{sent}-{big}");
                    if (sent >= 90)
                    {
                        await Task.Delay(12);
                    }
                }

                return sent;
            });
            Report("member that stops reading", slowPings);

            // Gus starts reading: what the kernel held, then the end of a connection the server gave up on (its close frame
            // once the waiting send is released, or the abort that releases it).
            gus.StartReading();
            await gus.WaitClosedAsync(TimeSpan.FromSeconds(60));
            var reached = 0;
            try
            {
                while (true)
                {
                    await gus.ExpectAsync("signal", timeout: TimeSpan.FromMilliseconds(1));
                    reached++;
                }
            }
            catch (Exception e) when (e is InvalidOperationException or TimeoutException)
            {
            }

            output.WriteLine($"Fay sent {slowSent}; {reached} reached Gus before his connection ended ({gus.CloseStatus?.ToString() ?? "no close frame"})");
            Assert.True(reached < slowSent, $"all {slowSent} signals reached Gus, who read nothing while they were sent: he was never found a slow consumer");

            // Everyone else is still served. Fay was told her signals to Gus were not delivered once he was gone; nobody else
            // got an error.
            foreach (var bystander in bystanders)
            {
                await bystander.PingAsync();
                Assert.Null(bystander.CloseStatus);
            }

            Assert.All(bystanders[..^1], b => Assert.Empty(b.ErrorCodes));
            output.WriteLine($"Fay's errors: {string.Join("; ", fay.Errors.GroupBy(e => e).Select(g => $"{g.Count()} × {g.Key}"))}");
            output.WriteLine($"the host's distinct lines (a CI run once saw Gus closed normally with nothing delivered and Fay told peer_unavailable):{Environment.NewLine}{string.Join(Environment.NewLine, host.Output.Split('\n').Select(line => line.TrimEnd()).Distinct().Take(80))}");
            Assert.Contains("delivery_failed", fay.ErrorCodes);
            Assert.All(fay.ErrorCodes, code => Assert.Equal("delivery_failed", code));
        }
        finally
        {
            await DisposeAsync(flood, floodClients);
            await DisposeAsync(quiet, quietClients);
            await DisposeAsync(slow, slowClients);
        }
    }

    /// <summary>
    /// Runs <paramref name="hostile"/> while every bystander pings every 50 ms (20 a second, within the rate limit), at least
    /// 10 times; each ping must be answered within the socket's timeout. Returns each bystander's round trips and slowest one.
    /// </summary>
    private static async Task<((int Count, TimeSpan Slowest)[] Pings, int Result)> WhileBystandersPingAsync(WireSocket[] bystanders, Func<Task<int>> hostile)
    {
        using var stop = new CancellationTokenSource();
        var pinging = bystanders.Select(socket => Task.Run(async () =>
        {
            var (count, slowest) = (0, TimeSpan.Zero);
            while (!stop.IsCancellationRequested || count < 10)
            {
                var started = Stopwatch.GetTimestamp();
                await socket.PingAsync();
                var took = Stopwatch.GetElapsedTime(started);
                (count, slowest) = (count + 1, took > slowest ? took : slowest);
                await Task.Delay(50, CancellationToken.None);
            }

            return (count, slowest);
        })).ToArray();
        int result;
        try
        {
            result = await hostile();
        }
        finally
        {
            await stop.CancelAsync();
        }

        return (await Task.WhenAll(pinging), result);
    }

    private void Report(string phase, (int Count, TimeSpan Slowest)[] pings) =>
        output.WriteLine($"{phase}: bystanders' pings answered (slowest round trip, reported, not asserted): "
            + string.Join(", ", pings.Select((p, i) => $"{Names[i]} {p.Count} ({p.Slowest.TotalMilliseconds:0.0} ms)")));

    /// <summary>An admin and admitted members in a new room; a member that does not read is admitted without reading its answer.</summary>
    private static async Task<(List<(WireSocket Socket, WireTicket Ticket)> Sockets, List<WireClient> Clients)> RoomAsync(SampleHost host, params (string Name, bool Reads)[] members)
    {
        var clients = new List<WireClient>();
        var sockets = new List<(WireSocket, WireTicket)>();
        var admin = await WireClient.SignInAsync(host.LoopbackAddress, members[0].Name);
        clients.Add(admin);
        var room = await admin.CreateRoomAsync();
        var adminSocket = await WireSocket.ConnectAsync(room);
        sockets.Add((adminSocket, room));
        foreach (var (name, reads) in members.Skip(1))
        {
            var user = await WireClient.SignInAsync(host.LoopbackAddress, name);
            clients.Add(user);
            var ticket = await user.JoinAsync(room.Room);
            var socket = await WireSocket.ConnectAsync(ticket, reads);
            await adminSocket.ExpectAsync("admission_request", m => m.GetProperty("member").GetProperty("id").GetString() == ticket.Member);
            await adminSocket.SendAsync($$$"""{"type":"admit","member":"{{{ticket.Member}}}"}""");
            if (reads)
            {
                await socket.ExpectAsync("admitted");
            }

            sockets.Add((socket, ticket));
        }

        return (sockets, clients);
    }

    private static async Task DisposeAsync(List<(WireSocket Socket, WireTicket Ticket)> sockets, List<WireClient> clients)
    {
        foreach (var (socket, _) in sockets)
        {
            await socket.DisposeAsync();
        }

        foreach (var client in clients)
        {
            client.Dispose();
        }
    }
}
