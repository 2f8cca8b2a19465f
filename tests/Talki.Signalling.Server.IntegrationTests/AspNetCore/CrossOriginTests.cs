using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using System.Net;
using System.Net.Http.Json;
using Talki.Signalling.Http;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Server.IntegrationTests.AspNetCore;

public sealed class CrossOriginTests
{
    private const string App = "https://app.talki.test";
    private const string Evil = "https://evil.example";

    [Fact]
    public async Task AllowedOrigin_PreflightAndCredentialedRequests_Work_AndTheCookieIsSameSiteNone()
    {
        await using var host = await TestHost.StartAsync(o => o.Hosting.AllowedOrigins.Add(App));
        using var ada = new TalkiUser(host);

        using var preflight = new HttpRequestMessage(HttpMethod.Options, "/talki/rooms");
        preflight.Headers.Add("Origin", App);
        preflight.Headers.Add("Access-Control-Request-Method", "POST");
        preflight.Headers.Add("Access-Control-Request-Headers", "content-type");
        var answer = await ada.SendAsync(preflight);
        Assert.Equal(HttpStatusCode.NoContent, answer.StatusCode);
        Assert.Equal(App, answer.Headers.GetValues("Access-Control-Allow-Origin").Single());
        Assert.Equal("true", answer.Headers.GetValues("Access-Control-Allow-Credentials").Single());

        var signIn = await ada.PostFromAsync(App, "/talki/session/anonymous", """{"displayName":"Ada"}""");
        Assert.Equal(HttpStatusCode.OK, signIn.StatusCode);
        Assert.Equal(App, signIn.Headers.GetValues("Access-Control-Allow-Origin").Single());
        var cookie = Assert.Single(ada.SetCookieHeaders, c => c.StartsWith("talki.session=", StringComparison.Ordinal));
        Assert.Contains("samesite=none", cookie, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("secure", cookie, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("httponly", cookie, StringComparison.OrdinalIgnoreCase);

        var room = await ada.PostFromAsync(App, "/talki/rooms", "{}");
        Assert.Equal(HttpStatusCode.Created, room.StatusCode);
        Assert.Equal("true", room.Headers.GetValues("Access-Control-Allow-Credentials").Single());
    }

    [Fact]
    public async Task ForeignOrigin_PreflightGetsNoCorsHeaders_SoTheBrowserSendsNothing()
    {
        await using var host = await TestHost.StartAsync(o => o.Hosting.AllowedOrigins.Add(App));
        using var eve = new TalkiUser(host);
        using var preflight = new HttpRequestMessage(HttpMethod.Options, "/talki/rooms");
        preflight.Headers.Add("Origin", Evil);
        preflight.Headers.Add("Access-Control-Request-Method", "POST");
        var answer = await eve.SendAsync(preflight);
        Assert.False(answer.Headers.Contains("Access-Control-Allow-Origin"));
        Assert.False(answer.Headers.Contains("Access-Control-Allow-Credentials"));

        using var get = new HttpRequestMessage(HttpMethod.Get, "/talki/session");
        get.Headers.Add("Origin", Evil);
        Assert.False((await eve.SendAsync(get)).Headers.Contains("Access-Control-Allow-Origin"));
    }

    [Fact]
    public async Task AllowedOrigins_WithoutTheCorsMiddleware_FailLoudly()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Services.AddTalkiSignalling(o => o.Hosting.AllowedOrigins.Add(App));
        await using var app = builder.Build();
        app.MapTalkiSignalling(); // no app.UseCors()
        await app.StartAsync();
        using var http = new HttpClient { BaseAddress = new Uri(app.Urls.Single()) };

        using var response = await http.GetAsync("/talki/session");

        Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode); // ASP.NET Core's "add app.UseCors()" check
    }

    [Theory]
    [InlineData("application/x-www-form-urlencoded", "displayName=x")]
    [InlineData("text/plain", "{}")]
    [InlineData("application/json", "{}")]
    public async Task ForgedCrossSiteRequest_WithTheVictimsCookie_IsRefused(string contentType, string body)
    {
        await using var host = await TestHost.StartAsync(o => o.Hosting.AllowedOrigins.Add(App));
        using var victim = await host.SignInAsync("Victim");
        var forged = await victim.PostFromAsync(Evil, "/talki/rooms", body, contentType);
        Assert.Equal(HttpStatusCode.Forbidden, forged.StatusCode);
        Assert.Equal(SignallingErrorCode.CrossSiteRequest, (await forged.Content.ReadFromJsonAsync(TalkiJsonContext.Default.ErrorResponse))!.Code);
        Assert.False(forged.Headers.Contains("Access-Control-Allow-Origin"));

        // Without any allowed origin configured, a foreign origin is refused just the same.
        await using var plain = await TestHost.StartAsync();
        using var other = await plain.SignInAsync("Victim");
        Assert.Equal(HttpStatusCode.Forbidden, (await other.PostFromAsync(Evil, "/talki/session/sign-out", body, contentType)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await other.SendAsync(new HttpRequestMessage(HttpMethod.Get, "/talki/session"))).StatusCode);
    }

    [Fact]
    public async Task SameOriginRequest_WithOriginHeader_Works()
    {
        await using var host = await TestHost.StartAsync();
        using var ada = await host.SignInAsync("Ada");
        var origin = host.BaseAddress.GetLeftPart(UriPartial.Authority);
        Assert.Equal(HttpStatusCode.Created, (await ada.PostFromAsync(origin, "/talki/rooms", "{}")).StatusCode);
    }

    [Fact]
    public async Task BearerToken_SignsInWithoutCookie_CreatesAndJoinsRooms_AndSignOutKillsIt()
    {
        await using var host = await TestHost.StartAsync(o => o.Hosting.AllowedOrigins.Add(App));
        using var ada = new TalkiUser(host);
        var response = await ada.PostFromAsync(App, "/talki/session/anonymous", """{"displayName":"Ada","useBearerToken":true}""");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Null(ada.Cookie);
        var session = (await response.Content.ReadFromJsonAsync(TalkiJsonContext.Default.SessionResponse))!;
        Assert.False(string.IsNullOrEmpty(session.AccessToken));
        Assert.InRange(session.ExpiresAt!.Value - host.Time.GetUtcNow(), TimeSpan.FromHours(24) - TimeSpan.FromSeconds(1), TimeSpan.FromHours(24)); // stored to the second

        ada.BearerToken = session.AccessToken;
        var created = await ada.PostFromAsync(App, "/talki/rooms", "{}");
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var room = (await created.Content.ReadFromJsonAsync(TalkiJsonContext.Default.TicketResponse))!;
        await using (var socket = await ada.ConnectAsync(room))
        {
            Assert.Equal("Ada", socket.Welcome!.You.DisplayName);
        }

        Assert.Equal(HttpStatusCode.NoContent, (await ada.PostFromAsync(App, "/talki/session/sign-out", "{}")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await ada.PostFromAsync(App, "/talki/rooms", "{}")).StatusCode);
    }

    [Fact]
    public async Task BearerToken_ExpiresWithTheSession()
    {
        await using var host = await TestHost.StartAsync();
        using var ada = new TalkiUser(host);
        var session = (await (await ada.PostAsync("/talki/session/anonymous", """{"displayName":"Ada","useBearerToken":true}""")).Content.ReadFromJsonAsync(TalkiJsonContext.Default.SessionResponse))!;
        ada.BearerToken = session.AccessToken;
        Assert.Equal(HttpStatusCode.Created, (await ada.PostAsync("/talki/rooms")).StatusCode);
        host.Time.Advance(TimeSpan.FromHours(24) + TimeSpan.FromSeconds(1));
        Assert.Equal(HttpStatusCode.Unauthorized, (await ada.PostAsync("/talki/rooms")).StatusCode);
        ada.BearerToken = "forged-token";
        Assert.Equal(HttpStatusCode.Unauthorized, (await ada.PostAsync("/talki/rooms")).StatusCode);
    }
}
