using System.Buffers.Text;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Talki.Signalling.Server.Identity;

namespace Talki.Signalling.Server.Tests.Identity;

/// <summary>An RSA key that signs test tokens by hand (base64url header and payload, RS256 signature) and publishes itself as a JWK.</summary>
internal sealed class TestSigningKey : IDisposable
{
    public TestSigningKey(string keyId, int bits = 2048)
    {
        KeyId = keyId;
        Rsa = RSA.Create(bits);
    }

    public string KeyId { get; }

    public RSA Rsa { get; }

    public JsonObject Jwk()
    {
        var parameters = Rsa.ExportParameters(includePrivateParameters: false);
        return new JsonObject
        {
            ["kty"] = "RSA",
            ["use"] = "sig",
            ["alg"] = "RS256",
            ["kid"] = KeyId,
            ["n"] = Base64Url.EncodeToString(parameters.Modulus),
            ["e"] = Base64Url.EncodeToString(parameters.Exponent),
        };
    }

    /// <summary>A token with the given payload, header <c>{"alg":"RS256","kid":KeyId,"typ":"JWT"}</c> unless another is given.</summary>
    public string Sign(JsonObject payload, JsonObject? header = null)
    {
        header ??= new JsonObject { ["alg"] = "RS256", ["kid"] = KeyId, ["typ"] = "JWT" };
        var signingInput = TestJwt.Segment(header) + "." + TestJwt.Segment(payload);
        var signature = Rsa.SignData(Encoding.ASCII.GetBytes(signingInput), HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        return signingInput + "." + Base64Url.EncodeToString(signature);
    }

    public void Dispose() => Rsa.Dispose();
}

internal static class TestJwt
{
    public const string ClientId = "client-1";

    public static string Segment(JsonNode json) => Base64Url.EncodeToString(Encoding.UTF8.GetBytes(json.ToJsonString()));

    public static string Segment(string raw) => Base64Url.EncodeToString(Encoding.UTF8.GetBytes(raw));

    /// <summary>The claims of a typical Google ID token issued at <paramref name="now"/>, valid for an hour.</summary>
    public static JsonObject GoogleClaims(DateTimeOffset now) => new()
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

    public static string Jwks(params TestSigningKey[] keys) => new JsonObject { ["keys"] = new JsonArray([.. keys.Select(k => (JsonNode)k.Jwk())]) }.ToJsonString();
}

/// <summary>A JWKS endpoint in memory: answers what <see cref="Respond"/> says and counts requests.</summary>
internal sealed class FakeKeysEndpoint : HttpMessageHandler
{
    private int _requests;

    public int Requests => Volatile.Read(ref _requests);

    /// <summary>Gets or sets the answer; it may throw (an unreachable endpoint) or wait.</summary>
    public Func<HttpRequestMessage, Task<HttpResponseMessage>> Respond { get; set; } = _ => Task.FromResult(new HttpResponseMessage(HttpStatusCode.NotFound));

    public Uri? LastRequestUri { get; private set; }

    public void Serve(string jwks, TimeSpan? maxAge = null, TimeSpan? age = null) => Respond = _ =>
    {
        var response = new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent(jwks, Encoding.UTF8, "application/json") };
        if (maxAge is { } m)
        {
            response.Headers.CacheControl = new CacheControlHeaderValue { Public = true, MaxAge = m };
        }

        if (age is { } a)
        {
            response.Headers.Age = a;
        }

        return Task.FromResult(response);
    };

    public void Down() => Respond = _ => throw new HttpRequestException("Connection refused.");

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _requests);
        LastRequestUri = request.RequestUri;
        return Respond(request);
    }
}

/// <summary>The Google sign-in services as <c>AddTalkiSignalling</c> registers them, with an in-memory keys endpoint and a fake clock.</summary>
internal sealed class GoogleHarness : IDisposable
{
    public static readonly Uri KeysUrl = new("https://keys.test/oauth2/v3/certs");

    private readonly ServiceProvider _provider;

    public GoogleHarness(Action<TalkiSignallingOptions>? configure = null)
    {
        var services = new ServiceCollection().AddLogging();
        services.AddSingleton<TimeProvider>(Time);
        services.AddTalkiSignalling(o =>
        {
            o.Google.ClientIds.Add(TestJwt.ClientId);
            o.Google.KeysUrl = KeysUrl;
            configure?.Invoke(o);
        });
        services.AddHttpClient<GoogleKeysClient>().ConfigurePrimaryHttpMessageHandler(() => Endpoint);
        _provider = services.BuildServiceProvider(validateScopes: true);
        Endpoint.Serve(TestJwt.Jwks(Key), TimeSpan.FromHours(6));
    }

    public FakeTimeProvider Time { get; } = new(new DateTimeOffset(2030, 1, 2, 3, 4, 5, TimeSpan.Zero));

    public FakeKeysEndpoint Endpoint { get; } = new();

    public TestSigningKey Key { get; } = new("key-1");

    public GoogleIdTokenValidator Validator => _provider.GetRequiredService<GoogleIdTokenValidator>();

    public GoogleSigningKeyCache Cache => _provider.GetRequiredService<GoogleSigningKeyCache>();

    public JsonObject Claims() => TestJwt.GoogleClaims(Time.GetUtcNow());

    public Task<SignallingResult<GoogleIdentity>> ValidateAsync(string token) => Validator.ValidateAsync(token, CancellationToken.None);

    public async Task<SignallingErrorCode> RefusalAsync(string token)
    {
        var result = await ValidateAsync(token);
        Assert.False(result.IsSuccess, "The token was accepted.");
        return result.Error.Code;
    }

    public void Dispose()
    {
        _provider.Dispose();
        Key.Dispose();
    }
}
