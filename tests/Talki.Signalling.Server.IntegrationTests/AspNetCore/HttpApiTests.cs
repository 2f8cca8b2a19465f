using System.Net;
using System.Net.Http.Json;
using Talki.Signalling.Http;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Server.IntegrationTests.AspNetCore;

public sealed class HttpApiTests
{
    [Fact]
    public async Task SignIn_SetsHttpOnlySecureCookieFor24Hours_CarryingOnlyAKey()
    {
        await using var host = await TestHost.StartAsync();
        using var ada = await host.SignInAsync("Ada Lovelace");
        var cookie = Assert.Single(ada.SetCookieHeaders, c => c.StartsWith("talki.session=", StringComparison.Ordinal));
        Assert.Contains("httponly", cookie, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("secure", cookie, StringComparison.OrdinalIgnoreCase);
        var expires = DateTimeOffset.Parse(cookie.Split(';').Single(p => p.Trim().StartsWith("expires=", StringComparison.OrdinalIgnoreCase)).Split('=')[1], System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(expires - host.Time.GetUtcNow(), TimeSpan.FromHours(23.9), TimeSpan.FromHours(24.1));
        Assert.DoesNotContain("Ada", Uri.UnescapeDataString(cookie), StringComparison.Ordinal);

        var session = await ada.SendAsync(new HttpRequestMessage(HttpMethod.Get, "/talki/session"));
        Assert.Equal(HttpStatusCode.OK, session.StatusCode);
        var body = await session.Content.ReadFromJsonAsync(TalkiJsonContext.Default.SessionResponse);
        Assert.Equal(("Ada Lovelace", false), (body!.DisplayName, body.Verified));
    }

    [Fact]
    public async Task SignOut_DeletesTheServerSideSession_SoTheOldCookieNoLongerWorks()
    {
        await using var host = await TestHost.StartAsync();
        using var ada = await host.SignInAsync("Ada");
        var stolen = ada.Cookie;
        Assert.Equal(HttpStatusCode.NoContent, (await ada.PostAsync("/talki/session/sign-out")).StatusCode);

        ada.Cookie = stolen;
        var after = await ada.PostAsync("/talki/rooms");
        Assert.Equal(HttpStatusCode.Unauthorized, after.StatusCode);
        Assert.Equal(SignallingErrorCode.Unauthenticated, (await after.Content.ReadFromJsonAsync(TalkiJsonContext.Default.ErrorResponse))!.Code);
    }

    [Fact]
    public async Task Session_ExpiresAfter24Hours()
    {
        await using var host = await TestHost.StartAsync();
        using var ada = await host.SignInAsync("Ada");
        host.Time.Advance(TimeSpan.FromHours(24) + TimeSpan.FromSeconds(1));
        Assert.Equal(HttpStatusCode.Unauthorized, (await ada.SendAsync(new HttpRequestMessage(HttpMethod.Get, "/talki/session"))).StatusCode);
    }

    [Fact]
    public async Task CreateRoom_WithoutSession_Unauthenticated()
    {
        await using var host = await TestHost.StartAsync();
        using var anonymous = new TalkiUser(host);
        var response = await anonymous.PostAsync("/talki/rooms");
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal(SignallingErrorCode.Unauthenticated, (await response.Content.ReadFromJsonAsync(TalkiJsonContext.Default.ErrorResponse))!.Code);
    }

    [Fact]
    public async Task StateChangingPost_WithoutJsonContentType_IsRefused()
    {
        await using var host = await TestHost.StartAsync();
        using var ada = await host.SignInAsync("Ada");
        var response = await ada.PostAsync("/talki/rooms", "room=1", "application/x-www-form-urlencoded");
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, response.StatusCode);
    }

    [Theory]
    [InlineData("""{"displayName":""}""")]
    [InlineData("""{"displayName":"   "}""")]
    [InlineData("""{"displayName":"bad\u0007name"}""")]
    [InlineData("""{}""")]
    [InlineData("""{"displayName":"a very long name that goes on and on and on and on and on and on and on"}""")]
    [InlineData("""{"displayName":""")]
    public async Task SignIn_InvalidDisplayNameOrBody_InvalidRequest(string body)
    {
        await using var host = await TestHost.StartAsync();
        using var user = new TalkiUser(host);
        var response = await user.PostAsync("/talki/session/anonymous", body);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal(SignallingErrorCode.InvalidRequest, (await response.Content.ReadFromJsonAsync(TalkiJsonContext.Default.ErrorResponse))!.Code);
        Assert.Null(user.Cookie);
    }

    [Fact]
    public async Task Join_UnknownOrMalformedRoom_RoomNotFound()
    {
        await using var host = await TestHost.StartAsync();
        using var ada = await host.SignInAsync("Ada");
        Assert.Equal(SignallingErrorCode.RoomNotFound, (await ada.JoinExpectingErrorAsync(RoomId.New(), HttpStatusCode.NotFound)).Code);
        var malformed = await ada.PostAsync("/talki/rooms/not%20an%20id/tickets");
        Assert.Equal(HttpStatusCode.NotFound, malformed.StatusCode);
    }

    [Fact]
    public async Task TicketResponse_PointsAtTheGatewayWithVersionAndTicket()
    {
        await using var host = await TestHost.StartAsync();
        using var ada = await host.SignInAsync("Ada");
        var room = await ada.CreateRoomAsync();
        Assert.Equal("ws", room.WebSocketUrl.Scheme);
        Assert.Equal(host.BaseAddress.Authority, room.WebSocketUrl.Authority);
        Assert.Equal("/talki/ws", room.WebSocketUrl.AbsolutePath);
        Assert.Contains($"v={ProtocolVersion.Current}", room.WebSocketUrl.Query, StringComparison.Ordinal); // the server's version; the hello says the client's
        Assert.Contains("ticket=" + room.Ticket, room.WebSocketUrl.Query, StringComparison.Ordinal);
        Assert.Equal(host.Time.GetUtcNow() + TimeSpan.FromMinutes(5), room.SealsAt);
        Assert.Equal(AdmissionStatus.Admitted, room.Status); // a version 3 client expects a welcome at its hello
        Assert.Equal("Ada", room.DisplayName);
        Assert.Equal(host.Time.GetUtcNow(), room.ServerTime); // a waiting member's seal by the server's clock

        using var bob = await host.SignInAsync("Bob");
        var knock = await bob.JoinAsync(room.Room);
        Assert.Equal(AdmissionStatus.Pending, knock.Status); // a version 3 client expects none until it is admitted
        Assert.Equal("Bob", knock.DisplayName);
        Assert.False(knock.Verified);
    }

    [Fact]
    public async Task ConfiguredPublicWebSocketUrl_IsHandedOut()
    {
        await using var host = await TestHost.StartAsync(o => o.Hosting.PublicWebSocketUrl = new Uri("wss://abc123.execute-api.us-east-1.amazonaws.com/prod"));
        using var ada = await host.SignInAsync("Ada");
        var room = await ada.CreateRoomAsync();
        Assert.StartsWith($"wss://abc123.execute-api.us-east-1.amazonaws.com/prod?v={ProtocolVersion.Current}&ticket=", room.WebSocketUrl.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task WebSocketEndpoint_PlainGetOrWrongVersion_IsRefusedWithCode()
    {
        await using var host = await TestHost.StartAsync();
        using var ada = await host.SignInAsync("Ada");
        var room = await ada.CreateRoomAsync();
        var plain = await ada.SendAsync(new HttpRequestMessage(HttpMethod.Get, "/talki/ws?ticket=" + room.Ticket));
        Assert.Equal(HttpStatusCode.BadRequest, plain.StatusCode);
        foreach (var wrong in new[] { "v=9", "v=0", "v=x" })
        {
            var wrongVersion = new Uri(room.WebSocketUrl.ToString().Replace($"v={ProtocolVersion.Current}", wrong, StringComparison.Ordinal));
            Assert.Equal(HttpStatusCode.BadRequest, await TestSocket.RefusedStatusAsync(wrongVersion));
        }

        // The ticket was not consumed by the refused attempts; a version 1 client's URL is still served.
        await using var socket = await ada.ConnectAsync(room with { WebSocketUrl = new Uri(room.WebSocketUrl.ToString().Replace($"v={ProtocolVersion.Current}", "v=1", StringComparison.Ordinal)) });
        Assert.Equal(room.Member, socket.Welcome!.You.Id);
    }
}
