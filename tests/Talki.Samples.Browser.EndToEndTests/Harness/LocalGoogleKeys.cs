using System.Buffers.Text;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Talki.Signalling.Emulator;

namespace Talki.Samples.Browser.EndToEndTests.Harness;

/// <summary>
/// Plays Google for a verified sign-in: an RSA key that signs ID tokens (RS256) and its JWKS served on 127.0.0.1 (free port)
/// by an <see cref="HttpListener"/>, for the host's <c>Talki:Google:KeysUrl</c>.
/// </summary>
internal sealed class LocalGoogleKeys : IAsyncDisposable
{
    private const string KeyId = "e2e-key";
    private readonly RSA _rsa = RSA.Create(2048);
    private readonly HttpListener _listener = new();
    private readonly Task _serving;

    public LocalGoogleKeys()
    {
        var port = LoopbackPorts.Choose();
        KeysUrl = new Uri($"http://127.0.0.1:{port}/oauth2/v3/certs");
        _listener.Prefixes.Add($"http://127.0.0.1:{port}/");
        _listener.Start();
        _serving = ServeAsync();
    }

    public Uri KeysUrl { get; }

    /// <summary>Signs an ID token for <paramref name="clientId"/> with a verified email and the given name.</summary>
    public string IdToken(string clientId, string name)
    {
        var now = DateTimeOffset.UtcNow;
        var header = Segment(new JsonObject { ["alg"] = "RS256", ["kid"] = KeyId, ["typ"] = "JWT" });
        var payload = Segment(new JsonObject
        {
            ["iss"] = "https://accounts.google.com",
            ["aud"] = clientId,
            ["sub"] = "e2e-" + Guid.NewGuid().ToString("N"),
            ["email"] = "grace@example.test",
            ["email_verified"] = true,
            ["name"] = name,
            ["iat"] = now.AddMinutes(-1).ToUnixTimeSeconds(),
            ["exp"] = now.AddMinutes(30).ToUnixTimeSeconds(),
        });
        var input = header + "." + payload;
        return input + "." + Base64Url.EncodeToString(_rsa.SignData(Encoding.ASCII.GetBytes(input), HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1));
    }

    public async ValueTask DisposeAsync()
    {
        _listener.Stop();
        _listener.Close();
        try
        {
            await _serving;
        }
        catch (Exception ex) when (ex is HttpListenerException or ObjectDisposedException)
        {
            // Stopped.
        }

        _rsa.Dispose();
    }

    private static string Segment(JsonObject json) => Base64Url.EncodeToString(Encoding.UTF8.GetBytes(json.ToJsonString()));


    private async Task ServeAsync()
    {
        var parameters = _rsa.ExportParameters(includePrivateParameters: false);
        var jwks = Encoding.UTF8.GetBytes(new JsonObject
        {
            ["keys"] = new JsonArray(new JsonObject
            {
                ["kty"] = "RSA",
                ["alg"] = "RS256",
                ["use"] = "sig",
                ["kid"] = KeyId,
                ["n"] = Base64Url.EncodeToString(parameters.Modulus),
                ["e"] = Base64Url.EncodeToString(parameters.Exponent),
            }),
        }.ToJsonString());
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync();
            }
            catch (Exception ex) when (ex is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return;
            }

            context.Response.ContentType = "application/json";
            context.Response.Headers["Cache-Control"] = "public, max-age=3600";
            await context.Response.OutputStream.WriteAsync(jwks);
            context.Response.Close();
        }
    }
}
