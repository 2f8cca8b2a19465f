using System.Buffers.Text;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Talki.Signalling.Http;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Server.IntegrationTests.Identity;

public sealed class GoogleSignInTests
{
    private const string ClientId = "client-1";

    [Fact]
    public async Task ValidToken_SignsIn_AsAVerifiedUser_WithTheSameCookieAsAnonymousSignIn()
    {
        await using var google = await FakeGoogle.StartAsync();
        await using var host = await StartHostAsync(google);
        using var ada = new TalkiUser(host);

        var response = await ada.PostAsync("/talki/session/google", Body(google.Key.Sign(Claims(host))));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var session = await response.Content.ReadFromJsonAsync(TalkiJsonContext.Default.SessionResponse);
        Assert.Equal(("Ada Lovelace", true), (session!.DisplayName, session.Verified));
        var cookie = Assert.Single(ada.SetCookieHeaders, c => c.StartsWith("talki.session=", StringComparison.Ordinal));
        Assert.Contains("httponly", cookie, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("secure", cookie, StringComparison.OrdinalIgnoreCase);
        var expires = DateTimeOffset.Parse(cookie.Split(';').Single(p => p.Trim().StartsWith("expires=", StringComparison.OrdinalIgnoreCase)).Split('=')[1], System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(expires - host.Time.GetUtcNow(), TimeSpan.FromHours(23.9), TimeSpan.FromHours(24.1));

        var current = await ada.SendAsync(new HttpRequestMessage(HttpMethod.Get, "/talki/session"));
        Assert.Equal(HttpStatusCode.OK, current.StatusCode);
        var body = await current.Content.ReadFromJsonAsync(TalkiJsonContext.Default.SessionResponse);
        Assert.Equal(("Ada Lovelace", true), (body!.DisplayName, body.Verified));

        var room = await ada.CreateRoomAsync();
        await using var socket = await ada.ConnectAsync(room);
        Assert.True(socket.Welcome!.You.Verified);
        Assert.Equal("Ada Lovelace", socket.Welcome.You.DisplayName);
        Assert.Equal(1, google.Requests);
    }

    [Fact]
    public async Task ValidToken_WithBearerToken_SignsInWithoutCookie()
    {
        await using var google = await FakeGoogle.StartAsync();
        await using var host = await StartHostAsync(google);
        using var ada = new TalkiUser(host);
        var body = JsonSerializer.Serialize(new GoogleSignInRequest { IdToken = google.Key.Sign(Claims(host)), UseBearerToken = true }, TalkiJsonContext.Default.GoogleSignInRequest);

        var response = await ada.PostAsync("/talki/session/google", body);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Null(ada.Cookie);
        var session = (await response.Content.ReadFromJsonAsync(TalkiJsonContext.Default.SessionResponse))!;
        Assert.True(session.Verified);
        ada.BearerToken = session.AccessToken;
        var room = await ada.CreateRoomAsync();
        await using var socket = await ada.ConnectAsync(room);
        Assert.True(socket.Welcome!.You.Verified);
    }

    [Fact]
    public async Task TwoSignInsOfTheSameGoogleAccount_AreTheSameUser_AndAnonymousUsersAreNotVerified()
    {
        await using var google = await FakeGoogle.StartAsync();
        await using var host = await StartHostAsync(google);
        using var admin = new TalkiUser(host);
        Assert.Equal(HttpStatusCode.OK, (await admin.PostAsync("/talki/session/google", Body(google.Key.Sign(Claims(host))))).StatusCode);
        var room = await admin.CreateRoomAsync();
        await using var adminSocket = await admin.ConnectAsync(room);

        using var guest = await host.SignInAsync("Guest");
        var ticket = await guest.JoinAsync(room.Room);
        await using var guestSocket = await guest.ConnectAsync(ticket);
        Assert.False(guestSocket.Welcome!.You.Verified);
        var knock = await adminSocket.ExpectAsync<AdmissionRequestMessage>();
        Assert.False(knock.Member.Verified);
    }

    [Fact]
    public async Task TokenWithoutName_UsesTheEmail()
    {
        await using var google = await FakeGoogle.StartAsync();
        await using var host = await StartHostAsync(google);
        using var user = new TalkiUser(host);
        var claims = Claims(host);
        claims.Remove("name");
        var response = await user.PostAsync("/talki/session/google", Body(google.Key.Sign(claims)));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("ada@example.org", (await response.Content.ReadFromJsonAsync(TalkiJsonContext.Default.SessionResponse))!.DisplayName);
    }

    public static TheoryData<string, SignallingErrorCode> Rejections => new()
    {
        { "wrong audience", SignallingErrorCode.TokenAudienceInvalid },
        { "wrong issuer", SignallingErrorCode.TokenIssuerInvalid },
        { "expired", SignallingErrorCode.TokenExpired },
        { "nbf in the future", SignallingErrorCode.TokenNotYetValid },
        { "iat in the future", SignallingErrorCode.TokenNotYetValid },
        { "signed by another key with the same kid", SignallingErrorCode.TokenSignatureInvalid },
        { "tampered payload", SignallingErrorCode.TokenSignatureInvalid },
        { "alg none", SignallingErrorCode.TokenUnsigned },
        { "alg HS256", SignallingErrorCode.TokenUnsigned },
        { "abc", SignallingErrorCode.TokenMalformed },
        { "two segments", SignallingErrorCode.TokenMalformed },
        { "bad base64", SignallingErrorCode.TokenMalformed },
        { "payload not JSON", SignallingErrorCode.TokenMalformed },
        { "unknown kid", SignallingErrorCode.TokenKeyUnknown },
        { "email not verified", SignallingErrorCode.EmailNotVerified },
        { "email_verified missing", SignallingErrorCode.EmailNotVerified },
    };

    [Theory]
    [MemberData(nameof(Rejections))]
    public async Task InvalidToken_401_WithItsCode_AndNoSession(string defect, SignallingErrorCode expected)
    {
        await using var google = await FakeGoogle.StartAsync();
        await using var host = await StartHostAsync(google);
        using var user = new TalkiUser(host);
        var token = Defective(defect, google, host);

        var response = await user.PostAsync("/talki/session/google", Body(token));

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        var error = await response.Content.ReadFromJsonAsync(TalkiJsonContext.Default.ErrorResponse);
        Assert.Equal(expected, error!.Code);
        Assert.Contains($"\"code\":\"{expected.ToWireName()}\"", user.HttpBodies[^1], StringComparison.Ordinal);
        Assert.Null(user.Cookie);
        Assert.Equal(HttpStatusCode.Unauthorized, (await user.SendAsync(new HttpRequestMessage(HttpMethod.Get, "/talki/session"))).StatusCode);
    }

    [Fact]
    public async Task TokenThatWasValid_ExpiresOnTheHostClock()
    {
        await using var google = await FakeGoogle.StartAsync();
        await using var host = await StartHostAsync(google);
        using var user = new TalkiUser(host);
        var token = google.Key.Sign(Claims(host));
        host.Time.Advance(TimeSpan.FromHours(1) + TimeSpan.FromMinutes(2));
        var response = await user.PostAsync("/talki/session/google", Body(token));
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal(SignallingErrorCode.TokenExpired, (await response.Content.ReadFromJsonAsync(TalkiJsonContext.Default.ErrorResponse))!.Code);
    }

    [Fact]
    public async Task KeysEndpointFailing_503_IdentityProviderUnavailable_ThenRecovers()
    {
        await using var google = await FakeGoogle.StartAsync();
        await using var host = await StartHostAsync(google);
        using var user = new TalkiUser(host);
        google.Down = true;
        var response = await user.PostAsync("/talki/session/google", Body(google.Key.Sign(Claims(host))));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal(SignallingErrorCode.IdentityProviderUnavailable, (await response.Content.ReadFromJsonAsync(TalkiJsonContext.Default.ErrorResponse))!.Code);
        Assert.Null(user.Cookie);

        google.Down = false;
        Assert.Equal(HttpStatusCode.OK, (await user.PostAsync("/talki/session/google", Body(google.Key.Sign(Claims(host))))).StatusCode);
    }

    [Fact]
    public async Task KeysEndpointUnreachable_503_IdentityProviderUnavailable()
    {
        using var key = new SigningKey("key-1");
        await using var host = await TestHost.StartAsync(o =>
        {
            o.Google.ClientIds.Add(ClientId);
            o.Google.KeysUrl = new Uri($"http://127.0.0.1:{ClosedPort()}/oauth2/v3/certs");
        });
        using var user = new TalkiUser(host);
        var response = await user.PostAsync("/talki/session/google", Body(key.Sign(Claims(host))));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal(SignallingErrorCode.IdentityProviderUnavailable, (await response.Content.ReadFromJsonAsync(TalkiJsonContext.Default.ErrorResponse))!.Code);
    }

    [Fact]
    public async Task Keys_AreCachedPerMaxAge_AndARotatedKeyIsPickedUpAfterAMinute()
    {
        await using var google = await FakeGoogle.StartAsync();
        await using var host = await StartHostAsync(google);
        using var user = new TalkiUser(host);
        Assert.Equal(HttpStatusCode.OK, (await user.PostAsync("/talki/session/google", Body(google.Key.Sign(Claims(host))))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await user.PostAsync("/talki/session/google", Body(google.Key.Sign(Claims(host))))).StatusCode);
        Assert.Equal(1, google.Requests);

        using var rotated = new SigningKey("key-2");
        google.Publish(google.Key, rotated);
        var early = await user.PostAsync("/talki/session/google", Body(rotated.Sign(Claims(host))));
        Assert.Equal(HttpStatusCode.Unauthorized, early.StatusCode);
        Assert.Equal(SignallingErrorCode.TokenKeyUnknown, (await early.Content.ReadFromJsonAsync(TalkiJsonContext.Default.ErrorResponse))!.Code);
        Assert.Equal(1, google.Requests);

        host.Time.Advance(TimeSpan.FromMinutes(1));
        Assert.Equal(HttpStatusCode.OK, (await user.PostAsync("/talki/session/google", Body(rotated.Sign(Claims(host))))).StatusCode);
        Assert.Equal(2, google.Requests);

        host.Time.Advance(FakeGoogle.MaxAge);
        Assert.Equal(HttpStatusCode.OK, (await user.PostAsync("/talki/session/google", Body(google.Key.Sign(Claims(host))))).StatusCode);
        Assert.Equal(3, google.Requests);
    }

    [Fact]
    public async Task NotConfigured_404_InvalidRequest()
    {
        await using var host = await TestHost.StartAsync();
        using var user = new TalkiUser(host);
        var response = await user.PostAsync("/talki/session/google", """{"idToken":"abc"}""");
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        var error = await response.Content.ReadFromJsonAsync(TalkiJsonContext.Default.ErrorResponse);
        Assert.Equal(SignallingErrorCode.InvalidRequest, error!.Code);
        Assert.Contains("not configured", error.Detail, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{}""")]
    [InlineData("""{"idToken":""}""")]
    [InlineData("""{"idToken":"  "}""")]
    [InlineData("""{"idToken":null}""")]
    [InlineData("""{"idToken":""")]
    [InlineData("""not json""")]
    public async Task MissingTokenOrBadBody_400_InvalidRequest(string body)
    {
        await using var google = await FakeGoogle.StartAsync();
        await using var host = await StartHostAsync(google);
        using var user = new TalkiUser(host);
        var response = await user.PostAsync("/talki/session/google", body);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal(SignallingErrorCode.InvalidRequest, (await response.Content.ReadFromJsonAsync(TalkiJsonContext.Default.ErrorResponse))!.Code);
        Assert.Equal(0, google.Requests);
    }

    [Fact]
    public async Task WithoutJsonContentType_415()
    {
        await using var google = await FakeGoogle.StartAsync();
        await using var host = await StartHostAsync(google);
        using var user = new TalkiUser(host);
        var response = await user.PostAsync("/talki/session/google", "idToken=" + google.Key.Sign(Claims(host)), "application/x-www-form-urlencoded");
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, response.StatusCode);
        Assert.Null(user.Cookie);
    }

    private static Task<TestHost> StartHostAsync(FakeGoogle google) => TestHost.StartAsync(o =>
    {
        o.Google.ClientIds.Add(ClientId);
        o.Google.KeysUrl = google.KeysUrl;
    });

    private static string Body(string idToken) => JsonSerializer.Serialize(new GoogleSignInRequest { IdToken = idToken }, TalkiJsonContext.Default.GoogleSignInRequest);

    private static JsonObject Claims(TestHost host)
    {
        var now = host.Time.GetUtcNow();
        return new JsonObject
        {
            ["iss"] = "https://accounts.google.com",
            ["azp"] = ClientId,
            ["aud"] = ClientId,
            ["sub"] = "110169484474386276334",
            ["email"] = "ada@example.org",
            ["email_verified"] = true,
            ["name"] = "Ada Lovelace",
            ["iat"] = now.ToUnixTimeSeconds(),
            ["exp"] = now.AddHours(1).ToUnixTimeSeconds(),
        };
    }

    private static string Defective(string defect, FakeGoogle google, TestHost host)
    {
        var claims = Claims(host);
        var now = host.Time.GetUtcNow();
        switch (defect)
        {
            case "wrong audience": claims["aud"] = "client-of-another-app"; break;
            case "wrong issuer": claims["iss"] = "https://accounts.example.org"; break;
            case "expired":
                claims["iat"] = now.AddHours(-2).ToUnixTimeSeconds();
                claims["exp"] = now.AddMinutes(-2).ToUnixTimeSeconds();
                break;
            case "nbf in the future": claims["nbf"] = now.AddMinutes(10).ToUnixTimeSeconds(); break;
            case "iat in the future": claims["iat"] = now.AddMinutes(10).ToUnixTimeSeconds(); break;
            case "signed by another key with the same kid":
                using (var forger = new SigningKey(google.Key.KeyId))
                {
                    return forger.Sign(claims);
                }

            case "tampered payload":
                var parts = google.Key.Sign(claims).Split('.');
                claims["sub"] = "victim";
                return $"{parts[0]}.{SigningKey.Segment(claims.ToJsonString())}.{parts[2]}";
            case "alg none":
                return $"{SigningKey.Segment("""{"alg":"none","kid":"key-1","typ":"JWT"}""")}.{SigningKey.Segment(claims.ToJsonString())}.";
            case "alg HS256":
                var input = $"{SigningKey.Segment("""{"alg":"HS256","kid":"key-1","typ":"JWT"}""")}.{SigningKey.Segment(claims.ToJsonString())}";
                return input + "." + Base64Url.EncodeToString(HMACSHA256.HashData(Encoding.UTF8.GetBytes("public key as secret"), Encoding.ASCII.GetBytes(input)));
            case "abc": return "abc";
            case "two segments":
                var signed = google.Key.Sign(claims);
                return signed[..signed.LastIndexOf('.')];
            case "bad base64":
                var good = google.Key.Sign(claims).Split('.');
                return $"{good[0]}.{good[1]}!*$.{good[2]}";
            case "payload not JSON":
                return google.Key.SignRaw(SigningKey.Segment("""{"alg":"RS256","kid":"key-1"}"""), SigningKey.Segment("not json"));
            case "unknown kid":
                using (var stranger = new SigningKey("key-google-never-published"))
                {
                    return stranger.Sign(claims);
                }

            case "email not verified": claims["email_verified"] = false; break;
            case "email_verified missing": claims.Remove("email_verified"); break;
            default: throw new ArgumentOutOfRangeException(nameof(defect), defect, null);
        }

        return google.Key.Sign(claims);
    }

    private static int ClosedPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

/// <summary>An RSA key that signs tokens by hand: base64url header and payload, RS256 (PKCS#1 v1.5, SHA-256) signature.</summary>
internal sealed class SigningKey : IDisposable
{
    private readonly RSA _rsa = RSA.Create(2048);

    public SigningKey(string keyId) => KeyId = keyId;

    public string KeyId { get; }

    public static string Segment(string json) => Base64Url.EncodeToString(Encoding.UTF8.GetBytes(json));

    public string Sign(JsonObject claims)
        => SignRaw(Segment(new JsonObject { ["alg"] = "RS256", ["kid"] = KeyId, ["typ"] = "JWT" }.ToJsonString()), Segment(claims.ToJsonString()));

    public string SignRaw(string header, string payload)
    {
        var input = header + "." + payload;
        return input + "." + Base64Url.EncodeToString(_rsa.SignData(Encoding.ASCII.GetBytes(input), HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1));
    }

    public JsonObject Jwk()
    {
        var parameters = _rsa.ExportParameters(includePrivateParameters: false);
        return new JsonObject
        {
            ["kty"] = "RSA",
            ["alg"] = "RS256",
            ["use"] = "sig",
            ["kid"] = KeyId,
            ["n"] = Base64Url.EncodeToString(parameters.Modulus),
            ["e"] = Base64Url.EncodeToString(parameters.Exponent),
        };
    }

    public void Dispose() => _rsa.Dispose();
}

/// <summary>Google's keys endpoint, played by a tiny Kestrel app on 127.0.0.1 (free port): serves a JWKS with <c>Cache-Control: max-age</c>, or 503 while <see cref="Down"/>.</summary>
internal sealed class FakeGoogle : IAsyncDisposable
{
    public static readonly TimeSpan MaxAge = TimeSpan.FromHours(6);

    private readonly WebApplication _app;
    private volatile string _jwks = """{"keys":[]}""";
    private int _requests;

    private FakeGoogle(WebApplication app)
    {
        _app = app;
    }

    public SigningKey Key { get; } = new("key-1");

    public Uri KeysUrl => new(new Uri(_app.Urls.Single()), "/oauth2/v3/certs");

    public int Requests => Volatile.Read(ref _requests);

    public bool Down { get; set; }

    public static async Task<FakeGoogle> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var google = new FakeGoogle(app);
        google.Publish(google.Key);
        app.MapGet("/oauth2/v3/certs", (HttpContext context) =>
        {
            Interlocked.Increment(ref google._requests);
            if (google.Down)
            {
                return Results.StatusCode(StatusCodes.Status503ServiceUnavailable);
            }

            context.Response.Headers.CacheControl = $"public, max-age={(int)MaxAge.TotalSeconds}, must-revalidate, no-transform";
            return Results.Text(google._jwks, "application/json");
        });
        await app.StartAsync();
        return google;
    }

    public void Publish(params SigningKey[] keys) => _jwks = new JsonObject { ["keys"] = new JsonArray([.. keys.Select(k => (JsonNode)k.Jwk())]) }.ToJsonString();

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        Key.Dispose();
    }
}
