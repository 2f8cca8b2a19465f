using System.Net;
using System.Net.WebSockets;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Server.IntegrationTests.AspNetCore;

/// <summary>The Talki flow over real WebSockets against the host on 127.0.0.1.</summary>
public class TalkiFlowTests
{
    /// <summary>Gets whether the gateway's upgrades are taken at Kestrel's connection level (the derived class runs every test so).</summary>
    protected virtual bool ConnectionLevelUpgrade => false;

    [Fact]
    public async Task ThreeUsers_AdminApprovesTwo_AndDeniesOne()
    {
        await using var host = await TestHost.StartAsync(connectionLevelUpgrade: ConnectionLevelUpgrade);
        using var ada = await host.SignInAsync("Ada");
        var room = await ada.CreateRoomAsync();
        await using var adaSocket = await ada.ConnectAsync(room);
        Assert.True(room.Admin);
        Assert.Equal(AdmissionStatus.Admitted, adaSocket.Welcome!.Status);

        using var bob = await host.SignInAsync("Bob");
        using var cy = await host.SignInAsync("Cy");
        using var dan = await host.SignInAsync("Dan");
        var bobTicket = await bob.JoinAsync(room.Room);
        var cyTicket = await cy.JoinAsync(room.Room);
        var danTicket = await dan.JoinAsync(room.Room);
        Assert.False(bobTicket.Admin);
        await using var bobSocket = await bob.ConnectAsync(bobTicket);
        await using var cySocket = await cy.ConnectAsync(cyTicket);
        await using var danSocket = await dan.ConnectAsync(danTicket);
        Assert.All(new[] { bobSocket, cySocket, danSocket }, s => Assert.Equal(AdmissionStatus.Pending, s.Welcome!.Status));

        Assert.Equal("Bob", (await adaSocket.ExpectAsync<AdmissionRequestMessage>()).Member.DisplayName);
        Assert.Equal("Cy", (await adaSocket.ExpectAsync<AdmissionRequestMessage>()).Member.DisplayName);
        Assert.Equal("Dan", (await adaSocket.ExpectAsync<AdmissionRequestMessage>()).Member.DisplayName);

        await adaSocket.SendAsync($$$"""{"type":"admit","member":"{{{bobTicket.Member}}}"}""");
        await adaSocket.SendAsync($$$"""{"type":"admit","member":"{{{cyTicket.Member}}}"}""");
        await adaSocket.SendAsync($$$"""{"type":"deny","member":"{{{danTicket.Member}}}"}""");

        Assert.Equal(bobTicket.Member, (await bobSocket.ExpectAsync<AdmittedMessage>()).Member.Id);
        Assert.Equal(cyTicket.Member, (await cySocket.ExpectAsync<AdmittedMessage>()).Member.Id);
        Assert.Equal(danTicket.Member, (await danSocket.ExpectAsync<DeniedMessage>()).Member.Id);
        await danSocket.WaitClosedAsync();
        Assert.Equal(WebSocketCloseStatus.NormalClosure, danSocket.CloseStatus);

        // The mesh: Ada-Bob, Ada-Cy, Bob-Cy; the existing member offers, the newcomer is polite.
        var adaPlans = new[] { await adaSocket.ExpectAsync<ConnectToPeerMessage>(), await adaSocket.ExpectAsync<ConnectToPeerMessage>() };
        Assert.Equal(new[] { bobTicket.Member.Value, cyTicket.Member.Value }.Order(), adaPlans.Select(p => p.Peer.Id.Value).Order());
        Assert.All(adaPlans, p => Assert.True(p.Offerer && !p.Polite));
        var bobToAda = await bobSocket.ExpectAsync<ConnectToPeerMessage>(p => p.Peer.Id == room.Member);
        Assert.True(bobToAda.Polite && !bobToAda.Offerer);
        var bobToCy = await bobSocket.ExpectAsync<ConnectToPeerMessage>(p => p.Peer.Id == cyTicket.Member);
        Assert.True(bobToCy.Offerer);
        await cySocket.ExpectAsync<ConnectToPeerMessage>(p => p.Peer.Id == room.Member);
        await cySocket.ExpectAsync<ConnectToPeerMessage>(p => p.Peer.Id == bobTicket.Member);
        Assert.DoesNotContain(danSocket.AllFrames, f => f.Contains("connect_to_peer", StringComparison.Ordinal));

        var refused = await dan.JoinExpectingErrorAsync(room.Room, HttpStatusCode.Forbidden);
        Assert.Equal(SignallingErrorCode.Denied, refused.Code);
    }

    [Fact]
    public async Task Refresh_NewTicketSameUser_RejoinsWithoutAsking_AndStaleEpochSignalsAreDropped()
    {
        await using var host = await TestHost.StartAsync(connectionLevelUpgrade: ConnectionLevelUpgrade);
        using var ada = await host.SignInAsync("Ada");
        var room = await ada.CreateRoomAsync();
        await using var adaSocket = await ada.ConnectAsync(room);
        using var bob = await host.SignInAsync("Bob");
        var first = await bob.JoinAsync(room.Room);
        await using var bobSocket = await bob.ConnectAsync(first);
        await adaSocket.ExpectAsync<AdmissionRequestMessage>(r => r.Member.Online); // asked at the knock, and again (online) on hello
        await adaSocket.SendAsync($$$"""{"type":"admit","member":"{{{first.Member}}}"}""");
        var plan1 = await adaSocket.ExpectAsync<ConnectToPeerMessage>();
        Assert.Equal(1, plan1.PeerEpoch);

        // Bob reloads the page: a new ticket with the same session, a new socket.
        var second = await bob.JoinAsync(room.Room);
        Assert.Equal(first.Member, second.Member);
        await using var bobSocket2 = await bob.ConnectAsync(second);
        Assert.Equal(AdmissionStatus.Admitted, bobSocket2.Welcome!.Status);
        await bobSocket.WaitClosedAsync();

        var left = await adaSocket.ExpectAsync<PeerLeftMessage>();
        Assert.Equal((first.Member, 1L), (left.Member, left.Epoch));
        var plan2 = await adaSocket.ExpectAsync<ConnectToPeerMessage>();
        Assert.Equal((first.Member, 2L), (plan2.Peer.Id, plan2.PeerEpoch));
        Assert.Equal(2, adaSocket.AllFrames.Count(f => f.Contains("admission_request", StringComparison.Ordinal))); // only the first join asked (knock and hello)

        // A signal still addressed to the old epoch is dropped; the current one arrives.
        await adaSocket.SendAsync($$$"""{"type":"signal","id":"old","to":"{{{first.Member}}}","toEpoch":1,"description":{"type":"offer","sdp":"v=0 old"}}""");
        var stale = await adaSocket.ExpectAsync<ErrorMessage>();
        Assert.Equal((SignallingErrorCode.StaleEpoch, "old"), (stale.Code, stale.Id));
        await adaSocket.SendAsync($$$"""{"type":"signal","to":"{{{first.Member}}}","toEpoch":2,"description":{"type":"offer","sdp":"v=0 new"}}""");
        var relayed = await bobSocket2.ExpectAsync<SignalRelayMessage>();
        Assert.Equal("v=0 new", relayed.Description!.Sdp);
        Assert.DoesNotContain(bobSocket2.AllFrames, f => f.Contains("v=0 old", StringComparison.Ordinal));
    }

    [Fact]
    public async Task OffersAnswersAndCandidates_ReachExactlyTheAddressedMember()
    {
        await using var host = await TestHost.StartAsync(connectionLevelUpgrade: ConnectionLevelUpgrade);
        var (room, sockets, tickets) = await MeshAsync(host, "Ada", "Bob", "Cy");
        var (ada, bob, cy) = (sockets[0], sockets[1], sockets[2]);
        foreach (var socket in sockets)
        {
            await socket.DrainAsync();
        }

        await ada.SendAsync($$$"""{"type":"signal","to":"{{{tickets[1].Member}}}","toEpoch":1,"description":{"type":"offer","sdp":"offer-for-bob"}}""");
        await bob.SendAsync($$$"""{"type":"signal","to":"{{{tickets[0].Member}}}","toEpoch":1,"description":{"type":"answer","sdp":"answer-for-ada"}}""");
        await ada.SendAsync($$$"""{"type":"signal","to":"{{{tickets[1].Member}}}","candidates":[{"candidate":"candidate:1 1 udp 1 127.0.0.1 40000 typ host","sdpMid":"0","sdpMLineIndex":0}]}""");

        // Barriers: a drain returns once the server has handled everything the socket sent before it, so
        // draining each sender first guarantees every relay it caused has been queued for its target.
        var adaFirst = await ada.DrainAsync();
        var toBob = (await bob.DrainAsync()).OfType<SignalRelayMessage>().ToList();
        var toAda = adaFirst.Concat(await ada.DrainAsync()).OfType<SignalRelayMessage>().ToList();
        var toCy = await cy.DrainAsync();

        Assert.Equal(2, toBob.Count);
        Assert.All(toBob, m => Assert.Equal(room.Member, m.From));
        Assert.Equal("offer-for-bob", toBob[0].Description!.Sdp);
        Assert.Equal("127.0.0.1 40000", toBob[1].Candidates![0].Candidate[20..35]);
        var answer = Assert.Single(toAda);
        Assert.Equal((tickets[1].Member, "answer-for-ada"), (answer.From, answer.Description!.Sdp));
        Assert.Empty(toCy);
    }

    [Fact]
    public async Task MemberOfRoomA_CannotReachRoomB()
    {
        await using var host = await TestHost.StartAsync(connectionLevelUpgrade: ConnectionLevelUpgrade);
        var (_, roomA, _) = await MeshAsync(host, "Ada", "Bob");
        var (_, roomB, ticketsB) = await MeshAsync(host, "Eve", "Fay");
        foreach (var socket in roomA.Concat(roomB))
        {
            await socket.DrainAsync();
        }

        await roomA[0].SendAsync($$$"""{"type":"signal","id":"x","to":"{{{ticketsB[1].Member}}}","description":{"type":"offer","sdp":"intrusion"}}""");
        await roomA[0].SendAsync($$$"""{"type":"admit","id":"y","member":"{{{ticketsB[1].Member}}}"}""");
        await roomA[0].SendAsync($$$"""{"type":"deny","id":"z","member":"{{{ticketsB[0].Member}}}"}""");

        var errors = (await roomA[0].DrainAsync()).OfType<ErrorMessage>().ToList();
        Assert.Equal(new[] { "x", "y", "z" }, errors.Select(e => e.Id));
        Assert.All(errors, e => Assert.Equal(SignallingErrorCode.MemberNotFound, e.Code));
        Assert.Empty(await roomB[0].DrainAsync());
        Assert.Empty(await roomB[1].DrainAsync());
        Assert.Empty(await roomA[1].DrainAsync());
    }

    [Fact]
    public async Task ReplayedExpiredOrForgedTicket_IsRefusedAtTheUpgrade()
    {
        await using var host = await TestHost.StartAsync(connectionLevelUpgrade: ConnectionLevelUpgrade);
        using var ada = await host.SignInAsync("Ada");
        var room = await ada.CreateRoomAsync();
        await using var socket = await ada.ConnectAsync(room);

        Assert.Equal(HttpStatusCode.Unauthorized, await TestSocket.RefusedStatusAsync(room.WebSocketUrl));
        Assert.Equal(SignallingErrorCode.TicketInvalid, (await UpgradeErrorAsync(ada, room.WebSocketUrl)).Code);

        var forged = new Uri(room.WebSocketUrl.ToString().Replace(room.Ticket, new string('A', 43), StringComparison.Ordinal));
        Assert.Equal(HttpStatusCode.Unauthorized, await TestSocket.RefusedStatusAsync(forged));
        var missing = new Uri(room.WebSocketUrl.GetLeftPart(UriPartial.Path));
        Assert.Equal(HttpStatusCode.Unauthorized, await TestSocket.RefusedStatusAsync(missing));

        var expired = await ada.JoinAsync(room.Room);
        var late = await ada.JoinAsync(room.Room);
        host.Time.Advance(TimeSpan.FromSeconds(31));
        Assert.Equal(HttpStatusCode.Unauthorized, await TestSocket.RefusedStatusAsync(late.WebSocketUrl));
        Assert.Equal(SignallingErrorCode.TicketExpired, (await UpgradeErrorAsync(ada, expired.WebSocketUrl)).Code);
    }

    [Fact]
    public async Task JoinAfterTheWindow_IsRefused_AndMembersAreToldTheRoomSealed()
    {
        await using var host = await TestHost.StartAsync(o => o.TicketLifetime = TimeSpan.FromMinutes(10), connectionLevelUpgrade: ConnectionLevelUpgrade);
        using var ada = await host.SignInAsync("Ada");
        var room = await ada.CreateRoomAsync();
        await using var adaSocket = await ada.ConnectAsync(room);
        using var bob = await host.SignInAsync("Bob");
        var early = await bob.JoinAsync(room.Room);

        host.Time.Advance(TimeSpan.FromMinutes(5));

        var sealedMessage = await adaSocket.ExpectAsync<RoomSealedMessage>();
        Assert.Equal(room.Room, sealedMessage.Room);
        await adaSocket.WaitClosedAsync();
        var refused = await bob.JoinExpectingErrorAsync(room.Room, HttpStatusCode.Gone);
        Assert.Equal(SignallingErrorCode.RoomSealed, refused.Code);
        Assert.Equal(HttpStatusCode.Gone, await TestSocket.RefusedStatusAsync(early.WebSocketUrl));
    }

    [Fact]
    public async Task BadInput_GetsItsErrorCode_AndTheConnectionStaysUsable()
    {
        await using var host = await TestHost.StartAsync(connectionLevelUpgrade: ConnectionLevelUpgrade);
        var (_, sockets, tickets) = await MeshAsync(host, "Ada", "Bob");
        var bob = sockets[1];
        using var cy = await host.SignInAsync("Cy");
        var cyTicket = await cy.JoinAsync(tickets[0].Room);
        await using var cySocket = await cy.ConnectAsync(cyTicket);
        await bob.DrainAsync();

        await bob.SendAsync("{not json");
        Assert.Equal(SignallingErrorCode.MalformedMessage, (await bob.ExpectAsync<ErrorMessage>()).Code);
        Assert.Empty(await bob.DrainAsync());

        await bob.SendAsync("""{"type":"warp","id":"w1"}""");
        var unknown = await bob.ExpectAsync<ErrorMessage>();
        Assert.Equal((SignallingErrorCode.UnknownType, "w1"), (unknown.Code, unknown.Id));
        Assert.Empty(await bob.DrainAsync());

        await bob.SendAsync($$$"""{"type":"ping","pad":"{{{new string('x', 40 * 1024)}}}"}""");
        Assert.Equal(SignallingErrorCode.MessageTooLarge, (await bob.ExpectAsync<ErrorMessage>()).Code);
        Assert.Empty(await bob.DrainAsync());

        await bob.SendAsync($$$"""{"type":"ping","pad":"{{{new string('x', 300 * 1024)}}}"}""");
        Assert.Equal(SignallingErrorCode.MessageTooLarge, (await bob.ExpectAsync<ErrorMessage>()).Code);
        Assert.Empty(await bob.DrainAsync());

        await bob.SendAsync($$$"""{"type":"admit","id":"a1","member":"{{{cyTicket.Member}}}"}""");
        var notAdmin = await bob.ExpectAsync<ErrorMessage>();
        Assert.Equal((SignallingErrorCode.NotAdmin, "a1"), (notAdmin.Code, notAdmin.Id));
        Assert.Empty(await bob.DrainAsync());

        // Still usable for real work: a signal to Ada goes through.
        await bob.SendAsync($$$"""{"type":"signal","to":"{{{tickets[0].Member}}}","candidates":[{"candidate":"still-alive"}]}""");
        Assert.Equal("still-alive", (await sockets[0].ExpectAsync<SignalRelayMessage>()).Candidates![0].Candidate);
    }

    [Fact]
    public async Task BinaryFrame_ClosesWith1003_LikeApiGateway()
    {
        await using var host = await TestHost.StartAsync(connectionLevelUpgrade: ConnectionLevelUpgrade);
        using var ada = await host.SignInAsync("Ada");
        await using var socket = await ada.ConnectAsync(await ada.CreateRoomAsync());
        await socket.SendBytesAsync([1, 2, 3], WebSocketMessageType.Binary);
        await socket.WaitClosedAsync();
        Assert.Equal(WebSocketCloseStatus.InvalidMessageType, socket.CloseStatus);
    }

    [Fact]
    public async Task IdleConnection_IsClosedAfterTenMinutes()
    {
        await using var host = await TestHost.StartAsync(o => o.JoinWindow = TimeSpan.FromHours(1), connectionLevelUpgrade: ConnectionLevelUpgrade);
        using var ada = await host.SignInAsync("Ada");
        await using var socket = await ada.ConnectAsync(await ada.CreateRoomAsync());
        host.Time.Advance(TimeSpan.FromMinutes(9));
        Assert.Empty(await socket.DrainAsync()); // activity resets the idle timer
        host.Time.Advance(TimeSpan.FromMinutes(9));
        Assert.Empty(await socket.DrainAsync());
        host.Time.Advance(TimeSpan.FromMinutes(10));
        await socket.WaitClosedAsync();
        Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, socket.CloseStatus);
        Assert.Equal("idle timeout", socket.CloseDescription);
    }

    [Fact]
    public async Task NoMessageOrResponse_EverContainsAGatewayConnectionId()
    {
        await using var host = await TestHost.StartAsync(connectionLevelUpgrade: ConnectionLevelUpgrade);
        var users = new List<TalkiUser>();
        var (room, sockets, tickets) = await MeshAsync(host, "Ada", "Bob", "Cy", users);
        await sockets[0].SendAsync($$$"""{"type":"signal","to":"{{{tickets[1].Member}}}","description":{"type":"offer","sdp":"v=0"}}""");
        await sockets[1].SendAsync("""{"type":"nonsense"}""");
        using var dan = await host.SignInAsync("Dan");
        users.Add(dan);
        await using var danSocket = await dan.ConnectAsync(await dan.JoinAsync(room.Room));
        await sockets[0].SendAsync($$$"""{"type":"deny","member":"{{{danSocket.Welcome!.You.Id}}}"}""");
        await sockets[2].SendAsync("""{"type":"leave"}""");
        var bobAgain = await users[1].JoinAsync(room.Room);
        await using var bobSocket2 = await users[1].ConnectAsync(bobAgain);
        foreach (var socket in new[] { sockets[0], bobSocket2 })
        {
            await socket.DrainAsync();
        }

        host.RecordConnectionIds();
        var ids = host.SeenConnectionIds;
        Assert.True(ids.Count >= 5, $"expected to have seen the connection ids, saw {ids.Count}");
        var everything = sockets.Append(danSocket).Append(bobSocket2).SelectMany(s => s.AllFrames).Concat(users.SelectMany(u => u.HttpBodies)).ToList();
        Assert.True(everything.Count > 20);
        foreach (var text in everything)
        {
            foreach (var id in ids)
            {
                Assert.DoesNotContain(id, text, StringComparison.Ordinal);
            }
        }
    }

    private static async Task<ErrorMessage2> UpgradeErrorAsync(TalkiUser user, Uri webSocketUrl)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, new UriBuilder(webSocketUrl) { Scheme = "http" }.Uri);
        request.Headers.Add("Connection", "Upgrade");
        request.Headers.Add("Upgrade", "websocket");
        request.Headers.Add("Sec-WebSocket-Version", "13");
        request.Headers.Add("Sec-WebSocket-Key", Convert.ToBase64String(Guid.NewGuid().ToByteArray()));
        var response = await user.SendAsync(request);
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        var body = user.HttpBodies[^1];
        var error = System.Text.Json.JsonSerializer.Deserialize(body, TalkiJsonContext.Default.ErrorResponse)!;
        return new ErrorMessage2(error.Code);
    }

    private sealed record ErrorMessage2(SignallingErrorCode Code);

    /// <summary>An admin and admitted members, all connected; returns the sockets in order.</summary>
    internal static async Task<(Http.TicketResponse Room, List<TestSocket> Sockets, List<Http.TicketResponse> Tickets)> MeshAsync(TestHost host, string admin, string member1, string? member2 = null, List<TalkiUser>? users = null)
    {
        users ??= [];
        var adminUser = await host.SignInAsync(admin);
        users.Add(adminUser);
        var room = await adminUser.CreateRoomAsync();
        var sockets = new List<TestSocket> { await adminUser.ConnectAsync(room) };
        var tickets = new List<Http.TicketResponse> { room };
        foreach (var name in new[] { member1, member2 }.OfType<string>())
        {
            var user = await host.SignInAsync(name);
            users.Add(user);
            var ticket = await user.JoinAsync(room.Room);
            var socket = await user.ConnectAsync(ticket);
            await sockets[0].SendAsync($$$"""{"type":"admit","member":"{{{ticket.Member}}}"}""");
            await socket.ExpectAsync<AdmittedMessage>();

            // Wait for the whole mesh plan, so that no late plan message lands in a test's observations.
            foreach (var existing in sockets)
            {
                await existing.ExpectAsync<ConnectToPeerMessage>(p => p.Peer.Id == ticket.Member);
                await socket.ExpectAsync<ConnectToPeerMessage>();
            }

            sockets.Add(socket);
            tickets.Add(ticket);
        }

        return (room, sockets, tickets);
    }
}

/// <summary>Every test of <see cref="TalkiFlowTests"/>, with the gateway's upgrades taken at Kestrel's connection level (<c>UseTalkiWebSockets</c>).</summary>
public sealed class TalkiFlowTestsOnConnectionLevelUpgrade : TalkiFlowTests
{
    protected override bool ConnectionLevelUpgrade => true;
}
