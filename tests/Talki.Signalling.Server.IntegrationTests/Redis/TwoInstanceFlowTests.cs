using System.Net;
using System.Net.Http.Json;
using System.Net.WebSockets;
using Microsoft.Extensions.DependencyInjection;
using Talki.Signalling.Http;
using Talki.Signalling.Protocol;
using Talki.Signalling.Server.IntegrationTests.Sessions;

namespace Talki.Signalling.Server.IntegrationTests.Redis;

/// <summary>The Talki flow on two instances sharing one redis-server: every member on another instance than its admin.</summary>
public sealed class TwoInstanceFlowTests(RedisServerFixture redis) : IClassFixture<RedisServerFixture>
{
    [Fact]
    public async Task MembersOnAnotherInstanceThanTheAdmin_AreAskedForAdmittedDeniedMeshedAndRelayed_AcrossInstances()
    {
        await using var cluster = await TwoInstances.StartAsync(redis);
        using var ada = await cluster.A.SignInAsync("Ada");
        var room = await ada.CreateRoomAsync();
        await using var adaSocket = await ada.ConnectAsync(room);

        using var bob = await cluster.B.SignInAsync("Bob");
        using var cy = await cluster.B.SignInAsync("Cy");
        using var dan = await cluster.B.SignInAsync("Dan");
        var bobTicket = await bob.JoinAsync(room.Room);
        var cyTicket = await cy.JoinAsync(room.Room);
        var danTicket = await dan.JoinAsync(room.Room);
        Assert.All(new[] { bobTicket, cyTicket, danTicket }, t => Assert.Equal(cluster.B.BaseAddress.Port, t.WebSocketUrl.Port));
        await using var bobSocket = await bob.ConnectAsync(bobTicket);
        await using var cySocket = await cy.ConnectAsync(cyTicket);
        await using var danSocket = await dan.ConnectAsync(danTicket);

        // B's engine asks the admin, whose socket is on A.
        foreach (var name in new[] { "Bob", "Cy", "Dan" })
        {
            await adaSocket.ExpectAsync<AdmissionRequestMessage>(r => r.Member.DisplayName == name && r.Member.Online);
        }

        // A's engine admits and denies members whose sockets are on B.
        await adaSocket.SendAsync($$$"""{"type":"admit","member":"{{{bobTicket.Member}}}"}""");
        await adaSocket.SendAsync($$$"""{"type":"admit","member":"{{{cyTicket.Member}}}"}""");
        await adaSocket.SendAsync($$$"""{"type":"deny","member":"{{{danTicket.Member}}}"}""");
        Assert.Equal(bobTicket.Member, (await bobSocket.ExpectAsync<AdmittedMessage>()).Member.Id);
        Assert.Equal(cyTicket.Member, (await cySocket.ExpectAsync<AdmittedMessage>()).Member.Id);
        Assert.Equal(danTicket.Member, (await danSocket.ExpectAsync<DeniedMessage>()).Member.Id);
        await danSocket.WaitClosedAsync(); // closed by A's engine, on B
        Assert.Equal(WebSocketCloseStatus.NormalClosure, danSocket.CloseStatus);

        // The mesh across instances.
        await adaSocket.ExpectAsync<ConnectToPeerMessage>(p => p.Peer.Id == bobTicket.Member && p.Offerer);
        await adaSocket.ExpectAsync<ConnectToPeerMessage>(p => p.Peer.Id == cyTicket.Member && p.Offerer);
        await bobSocket.ExpectAsync<ConnectToPeerMessage>(p => p.Peer.Id == room.Member && p.Polite);
        var cyPlans = new[] { await cySocket.ExpectAsync<ConnectToPeerMessage>(), await cySocket.ExpectAsync<ConnectToPeerMessage>() };
        Assert.Equal(new[] { room.Member.Value, bobTicket.Member.Value }.Order(), cyPlans.Select(p => p.Peer.Id.Value).Order());
        foreach (var socket in new[] { adaSocket, bobSocket, cySocket })
        {
            await socket.DrainAsync();
        }

        // Signals: A → B, B → A, and B → B.
        await adaSocket.SendAsync($$$"""{"type":"signal","to":"{{{bobTicket.Member}}}","toEpoch":1,"description":{"type":"offer","sdp":"offer-ada-bob"}}""");
        await bobSocket.SendAsync($$$"""{"type":"signal","to":"{{{room.Member}}}","toEpoch":1,"description":{"type":"answer","sdp":"answer-bob-ada"}}""");
        await bobSocket.SendAsync($$$"""{"type":"signal","to":"{{{cyTicket.Member}}}","candidates":[{"candidate":"candidate:1 1 udp 1 127.0.0.1 40000 typ host","sdpMid":"0","sdpMLineIndex":0}]}""");
        var atBob = await bobSocket.ExpectAsync<SignalRelayMessage>();
        Assert.Equal((room.Member, "offer-ada-bob"), (atBob.From, atBob.Description!.Sdp));
        var atAda = await adaSocket.ExpectAsync<SignalRelayMessage>();
        Assert.Equal((bobTicket.Member, "answer-bob-ada"), (atAda.From, atAda.Description!.Sdp));
        Assert.Equal(bobTicket.Member, (await cySocket.ExpectAsync<SignalRelayMessage>()).From);

        // Connection ids (which now travel between the instances) never reach a client.
        var ids = cluster.A.SeenConnectionIds.Concat(cluster.B.SeenConnectionIds).ToArray();
        Assert.Equal(4, ids.Length); // Ada on A; Bob, Cy and Dan on B
        foreach (var frame in new[] { adaSocket, bobSocket, cySocket, danSocket }.SelectMany(s => s.AllFrames))
        {
            Assert.DoesNotContain(ids, id => frame.Contains(id, StringComparison.Ordinal));
        }
    }

    [Fact]
    public async Task AMemberReconnectingOnTheOtherInstance_ReplacesItsConnection_ThePreviousIsClosedAcrossInstances()
    {
        await using var cluster = await TwoInstances.StartAsync(redis);
        using var ada = await cluster.A.SignInAsync("Ada");
        var room = await ada.CreateRoomAsync();
        await using var adaSocket = await ada.ConnectAsync(room);
        using var bobOnB = await cluster.B.SignInAsync("Bob");
        var first = await bobOnB.JoinAsync(room.Room);
        await using var bobSocket = await bobOnB.ConnectAsync(first);
        await adaSocket.ExpectAsync<AdmissionRequestMessage>(r => r.Member.Online);
        await adaSocket.SendAsync($$$"""{"type":"admit","member":"{{{first.Member}}}"}""");
        Assert.Equal(1, (await adaSocket.ExpectAsync<ConnectToPeerMessage>()).PeerEpoch);

        // Bob reloads the page and the load balancer sends him to A this time.
        using var bobOnA = TwoInstances.On(cluster.A, bobOnB);
        var second = await bobOnA.JoinAsync(room.Room);
        Assert.Equal(cluster.A.BaseAddress.Port, second.WebSocketUrl.Port);
        await using var bobSocket2 = await bobOnA.ConnectAsync(second);
        Assert.Equal(AdmissionStatus.Admitted, bobSocket2.Welcome!.Status);
        await bobSocket.WaitClosedAsync(); // A's engine closed Bob's previous socket, on B
        Assert.Equal(WebSocketCloseStatus.NormalClosure, bobSocket.CloseStatus);

        var left = await adaSocket.ExpectAsync<PeerLeftMessage>();
        Assert.Equal((first.Member, 1L), (left.Member, left.Epoch));
        Assert.Equal(2, (await adaSocket.ExpectAsync<ConnectToPeerMessage>(p => p.Peer.Id == first.Member)).PeerEpoch);
        await adaSocket.SendAsync($$$"""{"type":"signal","to":"{{{first.Member}}}","toEpoch":2,"description":{"type":"offer","sdp":"v=0 new"}}""");
        Assert.Equal("v=0 new", (await bobSocket2.ExpectAsync<SignalRelayMessage>()).Description!.Sdp);
        Assert.Equal(0, TwoInstances.Backplane(cluster.B).RegisteredCount);
    }

    [Fact]
    public async Task APushToASocketWhoseInstanceDied_IsUndeliverableUntilItsRegistrationExpires_ThenGoneEverywhere_AndAfterTheGracePeriodBobHasLeft()
    {
        await using var cluster = await TwoInstances.StartAsync(redis, o => o.ResumeGracePeriod = TimeSpan.FromSeconds(2));
        using var ada = await cluster.A.SignInAsync("Ada");
        var room = await ada.CreateRoomAsync();
        await using var adaSocket = await ada.ConnectAsync(room);
        using var bob = await cluster.B.SignInAsync("Bob");
        var ticket = await bob.JoinAsync(room.Room);
        await using var bobSocket = await bob.ConnectAsync(ticket);
        await adaSocket.ExpectAsync<AdmissionRequestMessage>(r => r.Member.Online);
        await adaSocket.SendAsync($$$"""{"type":"admit","member":"{{{ticket.Member}}}"}""");
        await adaSocket.ExpectAsync<ConnectToPeerMessage>();
        var bobConnection = Assert.Single(cluster.B.Gateway.ConnectionIds);
        var registration = cluster.Prefix + "socket:" + bobConnection;
        Assert.True(await redis.Client.GetDatabase().KeyExistsAsync(registration));

        await TwoInstances.KillRedisLinkAsync(cluster.B);
        var db = redis.Client.GetDatabase();

        // B holds the socket but cannot answer: not delivered, and Bob is not evicted while his registration lives (held
        // here for a minute, so that a slow machine cannot let it run out before the signal is handled).
        Assert.True(await db.KeyExpireAsync(registration, TimeSpan.FromMinutes(1)));
        await adaSocket.SendAsync($$$"""{"type":"signal","id":"s1","to":"{{{ticket.Member}}}","description":{"type":"offer","sdp":"lost"}}""");
        var undeliverable = await adaSocket.ExpectAsync<ErrorMessage>(e => e.Id == "s1");
        Assert.True(undeliverable.Code == SignallingErrorCode.DeliveryFailed, undeliverable.Code + ": " + undeliverable.Message);
        Assert.DoesNotContain(adaSocket.AllFrames, f => f.Contains("peer_left", StringComparison.Ordinal));

        // Nobody refreshes it any more: it runs out (by Redis's own clock), and from then on Bob is gone for every instance.
        Assert.True(await db.KeyExpireAsync(registration, TimeSpan.FromSeconds(3)));
        for (var i = 0; i < 100 && await db.KeyExistsAsync(registration); i++)
        {
            await Task.Delay(100);
        }

        Assert.False(await db.KeyExistsAsync(registration));
        // Gone everywhere starts Bob's grace period: the signal waits for a resume that never comes, then the room is told.
        await adaSocket.SendAsync($$$"""{"type":"signal","id":"s2","to":"{{{ticket.Member}}}","description":{"type":"offer","sdp":"gone"}}""");
        await adaSocket.SendAsync("""{"type":"ping","id":"handled"}""");
        await adaSocket.ExpectAsync<PongMessage>(p => p.Id == "handled");
        Assert.DoesNotContain(adaSocket.AllFrames, f => f.Contains("peer_left", StringComparison.Ordinal));
        cluster.A.Time.Advance(TimeSpan.FromSeconds(2)); // the grace period, on the instances' clock
        var left = await adaSocket.ExpectAsync<PeerLeftMessage>();
        Assert.Equal((ticket.Member, 1L), (left.Member, left.Epoch));
        Assert.DoesNotContain(adaSocket.AllFrames, f => f.Contains("\"s2\"", StringComparison.Ordinal));
        await adaSocket.SendAsync($$$"""{"type":"signal","id":"s3","to":"{{{ticket.Member}}}","description":{"type":"offer","sdp":"gone"}}""");
        Assert.Equal(SignallingErrorCode.PeerUnavailable, (await adaSocket.ExpectAsync<ErrorMessage>(e => e.Id == "s3")).Code);
        Assert.DoesNotContain(bobSocket.AllFrames, f => f.Contains("\"lost\"", StringComparison.Ordinal) || f.Contains("\"gone\"", StringComparison.Ordinal));
    }

    [Fact]
    public async Task RoomCreationQuota_ForAUserAlternatingInstances_IsReachedAtTheSameCountAsOnOne()
    {
        await using var cluster = await TwoInstances.StartAsync(redis, o => o.Limits.RoomsPerSessionPerHour = 3);
        using var eveOnA = await cluster.A.SignInAsync("Eve");
        using var eveOnB = TwoInstances.On(cluster.B, eveOnA);

        var statuses = new List<HttpStatusCode>();
        HttpResponseMessage? last = null;
        foreach (var eve in new[] { eveOnA, eveOnB, eveOnA, eveOnB, eveOnA })
        {
            last = await eve.PostAsync("/talki/rooms");
            statuses.Add(last.StatusCode);
        }

        Assert.Equal(3, statuses.Count(s => s == HttpStatusCode.Created));
        Assert.Equal(statuses.Take(3), Enumerable.Repeat(HttpStatusCode.Created, 3));
        Assert.Equal(SignallingErrorCode.RoomQuotaExceeded, (await last!.Content.ReadFromJsonAsync(TalkiJsonContext.Default.ErrorResponse))!.Code);
    }

    [Fact]
    public async Task SignInLimit_ForOneAddressAlternatingInstances_IsReachedAtTheSameCountAsOnOne()
    {
        await using var cluster = await TwoInstances.StartAsync(redis, o => o.Limits.SignInsPerAddressPerMinute = 3);
        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < 5; i++)
        {
            using var user = new TalkiUser(i % 2 == 0 ? cluster.A : cluster.B);
            statuses.Add((await user.PostAsync("/talki/session/anonymous", new AnonymousSignInRequest { DisplayName = "Eve" + i })).StatusCode);
        }

        Assert.Equal([HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.TooManyRequests, HttpStatusCode.TooManyRequests], statuses);
    }

    [Fact]
    public async Task WhenRedisIsUnreachable_RequestsAre503ServiceUnavailable_AndTheHostLives()
    {
        using var listener = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        await using var host = await TestHost.StartAsync(services: s => s.AddTalkiSignalling().AddRedis($"127.0.0.1:{port},connectTimeout=300,asyncTimeout=500,syncTimeout=500,connectRetry=0"));
        using var user = new TalkiUser(host);

        var response = await user.PostAsync("/talki/session/anonymous", new AnonymousSignInRequest { DisplayName = "Ada" });

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal(SignallingErrorCode.ServiceUnavailable, (await response.Content.ReadFromJsonAsync(TalkiJsonContext.Default.ErrorResponse))!.Code);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await user.PostAsync("/talki/session/anonymous", new AnonymousSignInRequest { DisplayName = "Ada" })).StatusCode);
    }
}
