using System.Globalization;
using System.Net;
using Talki.Signalling.Aws.Callbacks;
using Talki.Signalling.Http;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Aws.Tests.Callbacks;

/// <summary>
/// The authorizer only consumes the ticket and returns the grant; the backend binds the connection on its first frame
/// from the context API Gateway maps into the integration's headers. Nothing the authorizer does needs
/// <c>execute-api:ManageConnections</c>, which its role does not have, and no failure between the two leaves a member
/// locked out.
/// </summary>
public sealed class TwoPhaseConnectTests
{
    private const string Ada1 = "AdaConnection1=";
    private const string Ada2 = "AdaConnection2=";
    private const string Ada3 = "AdaConnection3=";
    private const string Bob1 = "BobConnection1=";
    private const string Hello = """{"type":"hello","version":1}""";

    [Fact]
    public async Task Authorizer_AllowsWithoutPushingClosingOrBindingAnything()
    {
        await using var host = await CallbacksTestHost.StartAsync();
        var (ada, room, bobTicket) = await AdaAndAdmittedBobAsync(host);
        var pushes = host.Push.Pushes.Count;
        var closes = host.Push.Closes.Count;

        var again = await ada.JoinAsync(room.Room);
        var answer = await host.AuthorizeAsync(Ada2, CallbacksTestHost.TicketQuery(again.Ticket));

        Assert.Equal("Allow", answer.Effect);
        Assert.Equal(pushes, host.Push.Pushes.Count);
        Assert.Equal(closes, host.Push.Closes.Count);

        // Ada's first connection is still hers: it relays to Bob as before.
        await host.SendFrameAsync(Ada1, $$$"""{"type":"signal","to":"{{{bobTicket.Member}}}","candidates":[{"candidate":"c","sdpMid":"0"}]}""");
        await host.Push.ExpectAsync<SignalRelayMessage>(Bob1);
        Assert.DoesNotContain(Ada1, host.Push.Closes);
    }

    [Fact]
    public async Task Reconnect_FirstFrameBinds_ClosesThePreviousConnection_AndTellsTheRoom()
    {
        await using var host = await CallbacksTestHost.StartAsync();
        var (ada, room, _) = await AdaAndAdmittedBobAsync(host);
        var firstEpoch = host.Push.MessagesTo(Ada1).OfType<WelcomeMessage>().Single().You.Epoch;

        var again = await ada.JoinAsync(room.Room);
        var welcome = await host.ConnectAsync(Ada2, again);

        Assert.Equal(firstEpoch + 1, welcome.You.Epoch);
        Assert.Contains(Ada1, host.Push.Closes);
        var left = await host.Push.ExpectAsync<PeerLeftMessage>(Bob1);
        Assert.Equal(firstEpoch, left.Epoch);
        await host.Push.ExpectAsync<ConnectToPeerMessage>(Bob1, m => m.Peer.Epoch == welcome.You.Epoch);

        // The replaced connection is refused from now on.
        await host.SendFrameAsync(Ada1, """{"type":"ping","id":"late"}""");
        await host.Push.ExpectAsync<ErrorMessage>(Ada1, e => e.Code == SignallingErrorCode.StaleEpoch);
    }

    [Fact]
    public async Task ResumeAfterALostDisconnect_TheAuthorizerCarriesIt_TheFirstFrameResumesTheEpoch_TheRoomHearsNothing_AndQueuedSignalsFollow()
    {
        // $disconnect is best effort: Ada's first socket is dead but nobody said so. A push to it answers 410, which starts
        // her grace period; her reconnect asks to resume and gets the queue after its welcome.
        await using var host = await CallbacksTestHost.StartAsync();
        var (ada, room, bobTicket) = await AdaAndAdmittedBobAsync(host);
        var epoch = host.Push.MessagesTo(Ada1).OfType<WelcomeMessage>().Single().You.Epoch;
        host.Push.Gone[Ada1] = true;
        await host.SendFrameAsync(Bob1, $$$"""{"type":"signal","id":"q1","to":"{{{room.Member}}}","candidates":[{"candidate":"queued","sdpMid":"0"}]}""");
        Assert.Empty(host.Push.MessagesTo(Bob1).OfType<ErrorMessage>());

        var again = await ada.JoinAsync(room.Room);
        var query = CallbacksTestHost.TicketQuery(again.Ticket);
        query["resume"] = epoch.ToString(CultureInfo.InvariantCulture);
        var answer = await host.AuthorizeAsync(Ada2, query);
        Assert.Equal("Allow", answer.Effect);
        Assert.Equal(epoch.ToString(CultureInfo.InvariantCulture), answer.Context!.Value.GetProperty("resume").GetString());
        await host.SendFrameAsync(Ada2, Hello);

        var welcome = await host.Push.ExpectAsync<WelcomeMessage>(Ada2);
        Assert.True(welcome.Resumed);
        Assert.Equal(epoch, welcome.You.Epoch);
        var relayed = await host.Push.ExpectAsync<SignalRelayMessage>(Ada2);
        Assert.Equal("queued", relayed.Candidates![0].Candidate);
        Assert.Empty(host.Push.MessagesTo(Bob1).OfType<PeerLeftMessage>());
        Assert.DoesNotContain(host.Push.MessagesTo(Bob1).OfType<ConnectToPeerMessage>(), p => p.Peer.Id == room.Member && p.PeerEpoch != epoch);
        _ = bobTicket;
    }

    [Theory]
    [InlineData("banana")]
    [InlineData("-1")]
    [InlineData("3.5")]
    public async Task ResumeHeader_Malformed_Is400_AndBindsNothing(string resume)
    {
        await using var host = await CallbacksTestHost.StartAsync();
        var (ada, room, _) = await AdaAndAdmittedBobAsync(host);
        var again = await ada.JoinAsync(room.Room);
        Assert.Equal("Allow", (await host.AuthorizeAsync(Ada2, CallbacksTestHost.TicketQuery(again.Ticket))).Effect);

        var (status, _) = await host.SendFrameAsync(Ada2, Hello, decorate: r =>
        {
            r.Headers.Remove("x-talki-resume");
            r.Headers.TryAddWithoutValidation("x-talki-resume", resume);
        });

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Empty(host.Push.MessagesTo(Ada2));
    }

    [Fact]
    public async Task SocketLostBetweenAuthorizerAndFirstFrame_MemberKeepsItsConnection_AndRejoinsWithAFreshTicket()
    {
        await using var host = await CallbacksTestHost.StartAsync();
        var (ada, room, _) = await AdaAndAdmittedBobAsync(host);

        // A reconnect whose socket dies after the authorizer: its $disconnect arrives, no frame ever did.
        var lost = await ada.JoinAsync(room.Room);
        Assert.Equal("Allow", (await host.AuthorizeAsync(Ada2, CallbacksTestHost.TicketQuery(lost.Ticket))).Effect);
        var (status, _) = await host.DisconnectAsync(Ada2);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Empty(host.Push.MessagesTo(Bob1).OfType<PeerLeftMessage>());

        // Never locked out: the next ticket connects and binds.
        var fresh = await ada.JoinAsync(room.Room);
        var welcome = await host.ConnectAsync(Ada3, fresh);
        Assert.Equal(AdmissionStatus.Admitted, welcome.Status);
        Assert.Contains(Ada1, host.Push.Closes);
    }

    [Fact]
    public async Task OlderGrantBindingAfterANewerOne_IsStale_AndClosed_TheNewerConnectionStays()
    {
        await using var host = await CallbacksTestHost.StartAsync();
        var (ada, room, _) = await AdaAndAdmittedBobAsync(host);
        var older = await ada.JoinAsync(room.Room);
        var newer = await ada.JoinAsync(room.Room);
        Assert.Equal("Allow", (await host.AuthorizeAsync(Ada2, CallbacksTestHost.TicketQuery(older.Ticket))).Effect);
        await host.ConnectAsync(Ada3, newer);

        await host.SendFrameAsync(Ada2, Hello);

        await host.Push.ExpectAsync<ErrorMessage>(Ada2, e => e.Code == SignallingErrorCode.StaleEpoch);
        Assert.Contains(Ada2, host.Push.Closes);
        Assert.DoesNotContain(Ada3, host.Push.Closes);
        await host.SendFrameAsync(Ada3, """{"type":"ping","id":"still-here"}""");
        await host.Push.ExpectAsync<PongMessage>(Ada3, p => p.Id == "still-here");
    }

    [Fact]
    public async Task ConcurrentFirstFrames_OfOneConnection_BindOnce()
    {
        // API Gateway does not serialise a connection's frames: the hello and a ping may race to bind.
        await using var host = await CallbacksTestHost.StartAsync();
        var (ada, room, _) = await AdaAndAdmittedBobAsync(host);
        var again = await ada.JoinAsync(room.Room);
        Assert.Equal("Allow", (await host.AuthorizeAsync(Ada2, CallbacksTestHost.TicketQuery(again.Ticket))).Effect);

        await Task.WhenAll(Enumerable.Range(0, 8).Select(i => host.SendFrameAsync(Ada2, i == 0 ? Hello : $$"""{"type":"ping","id":"p{{i}}"}""")));

        await host.Push.ExpectAsync<WelcomeMessage>(Ada2);
        Assert.Equal(7, host.Push.MessagesTo(Ada2).OfType<PongMessage>().Count());
        Assert.Empty(host.Push.MessagesTo(Ada2).OfType<ErrorMessage>());
        Assert.DoesNotContain(Ada2, host.Push.Closes);
        Assert.Single(host.Push.MessagesTo(Bob1).OfType<PeerLeftMessage>());
    }

    [Fact]
    public async Task FrameAfterTheGrantsSeal_IsAnsweredRoomSealed_AndClosed()
    {
        await using var host = await CallbacksTestHost.StartAsync();
        var ada = await host.SignInAsync("Ada");
        var room = await ada.CreateRoomAsync();
        await host.AuthorizeAsync(Ada1, CallbacksTestHost.TicketQuery(room.Ticket));
        var sealedAt = DateTimeOffset.UtcNow.AddSeconds(-1);

        // What API Gateway maps for this connection, as if the join window had closed a second ago.
        host.MapAuthorizerContext = false;
        await host.SendFrameAsync(Ada1, Hello, decorate: r => AddGrant(r, room.Room.Value, room.Member.Value, "1", sealedAt.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture)));

        var message = await host.Push.ExpectAsync<RoomSealedMessage>(Ada1);
        Assert.Equal(sealedAt.ToUnixTimeMilliseconds(), message.SealedAt.ToUnixTimeMilliseconds());
        Assert.Contains(Ada1, host.Push.Closes);
        Assert.Empty(host.Push.MessagesTo(Ada1).OfType<WelcomeMessage>());
    }

    [Theory]
    [InlineData("not-a-room-id!", "1")]
    [InlineData(null, "0")]
    [InlineData(null, "-3")]
    [InlineData(null, "2.5")]
    [InlineData(null, "1e40")]
    public async Task MalformedContextHeaders_Answer400_AndBindNothing(string? roomOverride, string epoch)
    {
        await using var host = await CallbacksTestHost.StartAsync();
        var ada = await host.SignInAsync("Ada");
        var room = await ada.CreateRoomAsync();
        await host.AuthorizeAsync(Ada1, CallbacksTestHost.TicketQuery(room.Ticket));
        host.MapAuthorizerContext = false;

        var (status, body) = await host.SendFrameAsync(Ada1, Hello, decorate: r => AddGrant(r, roomOverride ?? room.Room.Value, room.Member.Value, epoch, room.SealsAt.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture)));

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal(SignallingErrorCode.MalformedMessage, CallbacksTestHost.ParseError(body).Code);
        Assert.Empty(host.Push.Pushes);
        Assert.Contains(host.Logs.Entries, e => e.EventId.Id == 6010);
    }

    [Fact]
    public async Task ForgedContextHeaders_WithoutTheGatewaySecret_AreRefused()
    {
        await using var host = await CallbacksTestHost.StartAsync();
        var ada = await host.SignInAsync("Ada");
        var room = await ada.CreateRoomAsync();
        host.MapAuthorizerContext = false;

        // Anyone who can reach the function URL could send these headers: only the gateway's secret makes them trusted.
        var (status, _) = await host.SendFrameAsync(Ada1, Hello, secret: null, decorate: r => AddGrant(r, room.Room.Value, room.Member.Value, "1", room.SealsAt.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture)));

        Assert.Equal(HttpStatusCode.Unauthorized, status);
        Assert.Empty(host.Push.Pushes);
    }

    [Fact]
    public async Task IntegrationWithoutTheContextMapping_CannotBind_AndSaysSoInTheLog()
    {
        await using var host = await CallbacksTestHost.StartAsync();
        var ada = await host.SignInAsync("Ada");
        var room = await ada.CreateRoomAsync();
        await host.AuthorizeAsync(Ada1, CallbacksTestHost.TicketQuery(room.Ticket));
        host.MapAuthorizerContext = false;

        await host.SendFrameAsync(Ada1, Hello);

        await host.Push.ExpectAsync<ErrorMessage>(Ada1, e => e.Code == SignallingErrorCode.RoomNotFound);
        Assert.Contains(Ada1, host.Push.Closes);
        Assert.Contains(host.Logs.Entries, e => e.EventId.Id == 6009);
    }

    [Theory]
    [InlineData("5", 5L)]
    [InlineData("5.0", 5L)]
    [InlineData("1.764547200E12", 1_764_547_200_000L)]
    [InlineData("1764547200000", 1_764_547_200_000L)]
    public void ContextIntegers_ParseInEveryRenderingApiGatewayMayUse(string text, long expected)
    {
        Assert.True(ApiGatewayCallbacks.TryParseInteger(text, out var value));
        Assert.Equal(expected, value);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("-1")]
    [InlineData("2.5")]
    [InlineData("abc")]
    [InlineData("1e40")]
    [InlineData(" 5")]
    public void ContextIntegers_RefuseEverythingElse(string? text)
        => Assert.False(ApiGatewayCallbacks.TryParseInteger(text, out _));

    private static void AddGrant(HttpRequestMessage request, string room, string member, string epoch, string sealsAt)
    {
        request.Headers.TryAddWithoutValidation("x-talki-room", room);
        request.Headers.TryAddWithoutValidation("x-talki-member", member);
        request.Headers.TryAddWithoutValidation("x-talki-epoch", epoch);
        request.Headers.TryAddWithoutValidation("x-talki-seals-at", sealsAt);
    }

    private static async Task<(CallbacksUser Ada, TicketResponse Room, TicketResponse Bob)> AdaAndAdmittedBobAsync(CallbacksTestHost host)
    {
        var ada = await host.SignInAsync("Ada");
        var room = await ada.CreateRoomAsync();
        await host.ConnectAsync(Ada1, room);
        var bob = await host.SignInAsync("Bob");
        var bobTicket = await bob.JoinAsync(room.Room);
        await host.ConnectAsync(Bob1, bobTicket);
        await host.Push.ExpectAsync<AdmissionRequestMessage>(Ada1);
        await host.SendFrameAsync(Ada1, $$$"""{"type":"admit","member":"{{{bobTicket.Member}}}"}""");
        await host.Push.ExpectAsync<ConnectToPeerMessage>(Ada1, p => p.Peer.Id == bobTicket.Member);
        return (ada, room, bobTicket);
    }
}
