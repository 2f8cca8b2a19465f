using System.Net;
using System.Net.Sockets;
using System.Text;
using Talki.Signalling.Client.Tests.Support;

namespace Talki.Signalling.Client.Tests.Http;

public sealed class TalkiApiClientTests
{
    [Fact]
    public async Task SignIn_Session_CreateRoom_SignOut_AgainstTheRealServer()
    {
        await using var world = await CallWorld.StartAsync();
        using var http = new HttpClient();
        var api = new TalkiApiClient(http, new TalkiClientOptions { ApiBaseAddress = world.BaseAddress, UseBearerToken = true });

        var signedIn = await api.SignInAnonymousAsync("Ada");
        Assert.True(signedIn.IsSuccess, signedIn.ToString());
        Assert.Equal("Ada", signedIn.Value.DisplayName);
        Assert.False(signedIn.Value.Verified);
        Assert.Equal("Ada", (await api.GetSessionAsync()).Value.DisplayName);

        var room = await api.CreateRoomAsync();
        Assert.True(room.IsSuccess, room.ToString());
        Assert.True(room.Value.Admin);
        Assert.Equal("ws", room.Value.WebSocketUrl.Scheme);

        var rejoin = await api.JoinRoomAsync(room.Value.Room);
        Assert.True(rejoin.IsSuccess, rejoin.ToString());
        Assert.Equal(room.Value.Member, rejoin.Value.Member);

        Assert.True((await api.SignOutAsync()).IsSuccess);
        Assert.Equal(SignallingErrorCode.Unauthenticated, (await api.GetSessionAsync()).Error?.Code);
        Assert.Equal(SignallingErrorCode.Unauthenticated, (await api.CreateRoomAsync()).Error?.Code);
    }

    [Fact]
    public async Task Refusals_CarryTheServersStableCodes()
    {
        await using var world = await CallWorld.StartAsync();
        using var http = new HttpClient();
        var api = new TalkiApiClient(http, new TalkiClientOptions { ApiBaseAddress = world.BaseAddress, UseBearerToken = true });

        Assert.Equal(SignallingErrorCode.InvalidRequest, (await api.SignInAnonymousAsync("   ")).Error?.Code);
        Assert.Equal(SignallingErrorCode.Unauthenticated, (await api.JoinRoomAsync(RoomId.New())).Error?.Code);
        Assert.True((await api.SignInAnonymousAsync("Ada")).IsSuccess);
        Assert.Equal(SignallingErrorCode.RoomNotFound, (await api.JoinRoomAsync(RoomId.New())).Error?.Code);
    }

    [Fact]
    public async Task ServerUnreachable_ServiceUnavailable_NoException()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop(); // nothing listens there now
        using var http = new HttpClient();
        var api = new TalkiApiClient(http, new TalkiClientOptions { ApiBaseAddress = new Uri($"http://127.0.0.1:{port}/") });

        var result = await api.SignInAnonymousAsync("Ada");

        Assert.Equal(SignallingErrorCode.ServiceUnavailable, result.Error?.Code);
    }

    [Fact]
    public async Task NonTalkiErrorBody_ServiceUnavailable_WithStatus()
    {
        using var http = new HttpClient(new StubHandler(_ => new HttpResponseMessage(HttpStatusCode.BadGateway) { Content = new StringContent("<html>bad gateway</html>", Encoding.UTF8, "text/html") }));
        var api = new TalkiApiClient(http, new TalkiClientOptions { ApiBaseAddress = new Uri("http://127.0.0.1:9/") });

        var result = await api.CreateRoomAsync();

        Assert.Equal(SignallingErrorCode.ServiceUnavailable, result.Error?.Code);
        Assert.Contains("502", result.Error!.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task EveryRequest_AsksTheBrowserToIncludeCredentials_AndSendsJson()
    {
        var seen = new List<HttpRequestMessage>();
        using var http = new HttpClient(new StubHandler(r =>
        {
            seen.Add(r);
            return new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent("""{"displayName":"Ada","verified":false}""", Encoding.UTF8, "application/json") };
        }));
        var api = new TalkiApiClient(http, new TalkiClientOptions { ApiBaseAddress = new Uri("https://api.example.test/base/"), PathPrefix = "talki" });

        await api.SignInAnonymousAsync("Ada");
        await api.GetSessionAsync();

        Assert.Equal(new Uri("https://api.example.test/base/talki/session/anonymous"), seen[0].RequestUri);
        Assert.Equal("application/json", seen[0].Content!.Headers.ContentType!.MediaType);
        Assert.All(seen, r =>
        {
            Assert.True(r.Options.TryGetValue(new HttpRequestOptionsKey<IDictionary<string, object>>("WebAssemblyFetchOptions"), out var fetch));
            Assert.Equal("include", fetch["credentials"]);
        });
    }

    [Fact]
    public void InvalidOptions_ThrowOnConstruction()
    {
        using var http = new HttpClient();
        Assert.Throws<InvalidOperationException>(() => new TalkiApiClient(http, new TalkiClientOptions { PingInterval = TimeSpan.FromMinutes(11) }));
        Assert.Throws<InvalidOperationException>(() => new TalkiApiClient(http, new TalkiClientOptions { ApiBaseAddress = new Uri("/relative", UriKind.Relative) }));
    }

    private sealed class StubHandler(Func<HttpRequestMessage, HttpResponseMessage> answer) : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) => Task.FromResult(answer(request));
    }
}
