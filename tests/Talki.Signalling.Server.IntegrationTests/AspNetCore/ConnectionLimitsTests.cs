using System.Diagnostics;
using System.Net.WebSockets;
using Microsoft.Extensions.DependencyInjection;
using Talki.Signalling.Http;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Server.IntegrationTests.AspNetCore;

/// <summary>
/// "Any member can kick any peer", over real sockets on the real clock: a flood of signals is rate limited at its
/// sender, never closes a receiver that reads, and a socket that never says hello does not stay until the seal.
/// </summary>
public class ConnectionLimitsTests
{
    /// <summary>Gets whether the gateway's upgrades are taken at Kestrel's connection level (the derived class runs every test so).</summary>
    protected virtual bool ConnectionLevelUpgrade => false;

    /// <summary>The default hello timeout (<c>Limits.HelloTimeout</c>).</summary>
    private static readonly TimeSpan HelloTimeout = TimeSpan.FromSeconds(10);

    /// <summary>How late a close may come: a generous bound for a loaded machine, not a performance target.</summary>
    private static readonly TimeSpan Tolerance = TimeSpan.FromSeconds(5);

    [Fact]
    public async Task Flood_OfTwoThousandSignalsAtAReadingMember_DoesNotCloseIt_TheSenderIsRateLimitedAndClosed_AThirdMemberIsUnaffected()
    {
        await using var host = await TestHost.StartAsync(services: s => s.AddSingleton(TimeProvider.System), connectionLevelUpgrade: ConnectionLevelUpgrade);
        var (sockets, tickets) = await DrainedMeshOfThreeAsync(host);
        var (ada, bob, cy) = (sockets[0], sockets[1], sockets[2]);
        try
        {
            var sent = await SendUntilClosedAsync(ada, 2_000, i => Signal(tickets[1].Member, "flood-" + i));

            // The reader keeps receiving: a third member's signal reaches it after the flood, and it can answer.
            await AssertTheOthersStillSignalAsync(bob, cy, tickets);

            // The sender was refused with rate_limited and, as it kept on, closed with 1008.
            await ada.WaitClosedAsync(TimeSpan.FromSeconds(30));
            Assert.Contains(ada.AllFrames, f => f.Contains("\"code\":\"rate_limited\"", StringComparison.Ordinal));
            Assert.Equal(WebSocketCloseStatus.PolicyViolation, ada.CloseStatus);
            var flooded = bob.AllFrames.Count(f => f.Contains("\"candidate\":\"flood-", StringComparison.Ordinal));
            Assert.True(flooded < sent, $"{flooded} of the {sent} flood signals reached the reader");
        }
        finally
        {
            foreach (var socket in sockets)
            {
                await socket.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task OversizedMessages_InALoop_PayTheByteLimit_TheSenderIsRateLimitedAndClosed_TheOthersAreUnaffected()
    {
        // A message over the size limit (32 KiB) is read to its end and refused. Each must still pay the sender's rate
        // limiter as the largest allowed message: answered at the gateway without paying, a member could make the server
        // read and answer oversized messages without end.
        await using var host = await TestHost.StartAsync(services: s => s.AddSingleton(TimeProvider.System), connectionLevelUpgrade: ConnectionLevelUpgrade);
        var (sockets, tickets) = await DrainedMeshOfThreeAsync(host);
        var (ada, bob, cy) = (sockets[0], sockets[1], sockets[2]);
        try
        {
            var oversized = Signal(tickets[1].Member, "big-" + new string('x', 40_000));
            var sent = await SendUntilClosedAsync(ada, 400, _ => oversized);

            await ada.WaitClosedAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(WebSocketCloseStatus.PolicyViolation, ada.CloseStatus);
            Assert.Contains(ada.AllFrames, f => f.Contains("\"code\":\"rate_limited\"", StringComparison.Ordinal));

            // The byte burst (256 KiB: eight of the largest allowed) and what refilled while the loop ran (32 KiB a second)
            // were answered message_too_large; the rest were refused as a flood until the close (100 refusals in 10 s).
            var tooLarge = ada.AllFrames.Count(f => f.Contains("\"code\":\"message_too_large\"", StringComparison.Ordinal));
            Assert.InRange(tooLarge, 8, 30);
            Assert.True(sent > tooLarge, $"{sent} sent, {tooLarge} answered message_too_large");

            // The others go on: Bob and Cy still signal each other, and nothing of the oversized messages reached Bob.
            await AssertTheOthersStillSignalAsync(bob, cy, tickets);
            Assert.DoesNotContain(bob.AllFrames, f => f.Contains("big-", StringComparison.Ordinal));
        }
        finally
        {
            foreach (var socket in sockets)
            {
                await socket.DisposeAsync();
            }
        }
    }

    [Fact]
    public Task SevenPeersAtTheirFullBurst_IntoOneReadingMember_NobodyIsClosed_AndEverySignalArrives()
        => SevenPeersIntoOneReadingMemberAsync(190, (peer, i) => $"peer{peer}-{i}"); // within the default burst of 200, leaving room for hello and the drain's ping

    [Fact]
    public Task SevenPeersAtTheirFullByteBurst_IntoOneReadingMember_NobodyIsClosed_AndEverySignalArrives()
    {
        // The byte limits as a weapon: each peer sends what its byte burst allows (256 KiB: 8 signals of 30 KB) at once,
        // all seven into one member, which reads. The outbound queue's byte bound holds all of it.
        var large = new string('a', 30_000);
        return SevenPeersIntoOneReadingMemberAsync(8, (peer, i) => $"peer{peer}-{i}-{large}");
    }

    [Fact]
    public async Task HelloTimeout_OnTheRealClock_ASocketThatNeverSaysHelloIsClosed_OneThatDidIsNot()
    {
        await using var host = await TestHost.StartAsync(services: s => s.AddSingleton(TimeProvider.System), connectionLevelUpgrade: ConnectionLevelUpgrade);
        using var ada = await host.SignInAsync("Ada");
        using var bob = await host.SignInAsync("Bob");
        var room = await ada.CreateRoomAsync();
        await using var talker = await ada.ConnectAsync(room);
        var bobTicket = await bob.JoinAsync(room.Room);

        var opened = Stopwatch.StartNew();
        await using var silent = await TestSocket.OpenAsync(bobTicket.WebSocketUrl);
        try
        {
            await silent.WaitClosedAsync(HelloTimeout + Tolerance);
        }
        catch (TimeoutException)
        {
            Assert.Fail($"The socket that never said hello was still open after {opened.Elapsed}.");
        }

        Assert.True(opened.Elapsed >= HelloTimeout - TimeSpan.FromMilliseconds(50), $"closed after {opened.Elapsed}, before the timeout");
        Assert.Equal(WebSocketCloseStatus.PolicyViolation, silent.CloseStatus);
        Assert.Contains("hello", silent.CloseDescription, StringComparison.Ordinal);

        await talker.DrainAsync();
        Assert.Null(talker.CloseStatus);
    }

    [Fact]
    public async Task HelloTimeout_OnAFakeClock_ASocketThatNeverSaysHelloIsClosed_OneThatDidIsNot()
    {
        await using var host = await TestHost.StartAsync(connectionLevelUpgrade: ConnectionLevelUpgrade);
        using var ada = await host.SignInAsync("Ada");
        using var bob = await host.SignInAsync("Bob");
        var room = await ada.CreateRoomAsync();
        await using var talker = await ada.ConnectAsync(room);
        var bobTicket = await bob.JoinAsync(room.Room);
        await using var silent = await TestSocket.OpenAsync(bobTicket.WebSocketUrl);

        host.Time.Advance(HelloTimeout - TimeSpan.FromSeconds(1));
        await silent.DrainAsync(); // a ping is answered, and is not a hello
        Assert.Null(silent.CloseStatus);

        host.Time.Advance(TimeSpan.FromSeconds(1) + TimeSpan.FromMilliseconds(1));
        try
        {
            await silent.WaitClosedAsync(TimeSpan.FromSeconds(15));
        }
        catch (TimeoutException)
        {
            Assert.Fail("The socket that never said hello was still open after the hello timeout.");
        }

        Assert.Equal(WebSocketCloseStatus.PolicyViolation, silent.CloseStatus);

        host.Time.Advance(TimeSpan.FromMinutes(1));
        await talker.DrainAsync();
        Assert.Null(talker.CloseStatus);
    }

    /// <summary>
    /// A full room of 8; the seven peers each send <paramref name="perSender"/> signals at once into the first member, which
    /// reads: every one arrives, nobody is closed, nobody gets an error.
    /// </summary>
    private async Task SevenPeersIntoOneReadingMemberAsync(int perSender, Func<int, int, string> candidate)
    {
        await using var host = await TestHost.StartAsync(services: s => s.AddSingleton(TimeProvider.System), connectionLevelUpgrade: ConnectionLevelUpgrade);
        var (sockets, tickets) = await FullMeshAsync(host, 8);
        try
        {
            foreach (var socket in sockets)
            {
                await socket.DrainAsync();
            }

            var reader = sockets[0];
            await Task.WhenAll(sockets.Skip(1).Select((socket, n) => Task.Run(async () =>
            {
                for (var i = 0; i < perSender; i++)
                {
                    await socket.SendAsync(Signal(tickets[0].Member, candidate(n, i)));
                }
            })));

            var received = 0;
            for (; received < 7 * perSender; received++)
            {
                await reader.ExpectAsync<SignalRelayMessage>();
            }

            await reader.DrainAsync();
            Assert.Equal(7 * perSender, received);
            Assert.All(sockets, s => Assert.Null(s.CloseStatus));
            Assert.All(sockets, s => Assert.DoesNotContain(s.AllFrames, f => f.Contains("\"type\":\"error\"", StringComparison.Ordinal)));
        }
        finally
        {
            foreach (var socket in sockets)
            {
                await socket.DisposeAsync();
            }
        }
    }

    /// <summary>Ada (the admin), Bob and Cy in one room, linked, each having read everything the mesh sent it.</summary>
    private static async Task<(List<TestSocket> Sockets, List<TicketResponse> Tickets)> DrainedMeshOfThreeAsync(TestHost host)
    {
        var (_, sockets, tickets) = await TalkiFlowTests.MeshAsync(host, "Ada", "Bob", "Cy");
        foreach (var socket in sockets)
        {
            await socket.DrainAsync();
        }

        return (sockets, tickets);
    }

    /// <summary>Sends up to <paramref name="count"/> frames, stopping when the server has closed the socket; returns how many went.</summary>
    private static async Task<int> SendUntilClosedAsync(TestSocket socket, int count, Func<int, string> frame)
    {
        var sent = 0;
        try
        {
            for (; sent < count; sent++)
            {
                await socket.SendAsync(frame(sent));
            }
        }
        catch (WebSocketException)
        {
            // The server closed the sending socket mid-loop: that is the point.
        }

        return sent;
    }

    /// <summary>Bob (the second member) and Cy (the third) signal each other both ways, read everything, and are still open.</summary>
    private static async Task AssertTheOthersStillSignalAsync(TestSocket bob, TestSocket cy, List<TicketResponse> tickets)
    {
        await cy.SendAsync(Signal(tickets[1].Member, "cy-to-bob"));
        await bob.ExpectAsync<SignalRelayMessage>(m => m.Candidates?[0].Candidate == "cy-to-bob");
        await bob.SendAsync(Signal(tickets[2].Member, "bob-to-cy"));
        await cy.ExpectAsync<SignalRelayMessage>(m => m.Candidates?[0].Candidate == "bob-to-cy");
        await bob.DrainAsync();
        await cy.DrainAsync();
        Assert.Null(bob.CloseStatus);
        Assert.Null(cy.CloseStatus);
    }

    private static string Signal(MemberId to, string candidate)
        => $$$"""{"type":"signal","to":"{{{to}}}","candidates":[{"candidate":"{{{candidate}}}"}]}""";

    /// <summary>An admin and <paramref name="count"/> − 1 admitted members, all connected, the mesh plan received.</summary>
    private static async Task<(List<TestSocket> Sockets, List<TicketResponse> Tickets)> FullMeshAsync(TestHost host, int count)
    {
        var admin = await host.SignInAsync("Admin");
        var room = await admin.CreateRoomAsync();
        var sockets = new List<TestSocket> { await admin.ConnectAsync(room) };
        var tickets = new List<TicketResponse> { room };
        for (var i = 1; i < count; i++)
        {
            var user = await host.SignInAsync("Member " + i);
            var ticket = await user.JoinAsync(room.Room);
            var socket = await user.ConnectAsync(ticket);
            await sockets[0].SendAsync($$$"""{"type":"admit","member":"{{{ticket.Member}}}"}""");
            await socket.ExpectAsync<AdmittedMessage>();
            foreach (var existing in sockets)
            {
                await existing.ExpectAsync<ConnectToPeerMessage>(p => p.Peer.Id == ticket.Member);
                await socket.ExpectAsync<ConnectToPeerMessage>();
            }

            sockets.Add(socket);
            tickets.Add(ticket);
        }

        return (sockets, tickets);
    }
}

/// <summary>Every test of <see cref="ConnectionLimitsTests"/>, with the gateway's upgrades taken at Kestrel's connection level (<c>UseTalkiWebSockets</c>).</summary>
public sealed class ConnectionLimitsTestsOnConnectionLevelUpgrade : ConnectionLimitsTests
{
    protected override bool ConnectionLevelUpgrade => true;
}
