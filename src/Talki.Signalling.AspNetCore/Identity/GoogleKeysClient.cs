using System.Buffers.Text;
using System.Collections.Frozen;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.IdentityModel.Tokens;

namespace Talki.Signalling.Server.Identity;

/// <summary>
/// Fetches Google's signing keys (a JWKS document). A typed <see cref="HttpClient"/> from
/// <c>IHttpClientFactory</c>; <see cref="GoogleSigningKeyCache"/> decides when to call it.
/// </summary>
internal sealed class GoogleKeysClient
{
    /// <summary>The largest JWKS document accepted (Google's is about 2 KB).</summary>
    internal const int MaxResponseBytes = 256 * 1024;

    /// <summary>How long one fetch may take.</summary>
    internal static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    /// <summary>How long keys are cached when the response has no <c>Cache-Control: max-age</c>.</summary>
    internal static readonly TimeSpan DefaultLifetime = TimeSpan.FromHours(1);

    /// <summary>The shortest cache lifetime, whatever the response says: at most one fetch a minute.</summary>
    internal static readonly TimeSpan MinLifetime = TimeSpan.FromMinutes(1);

    /// <summary>The longest cache lifetime, whatever the response says: rotated keys are picked up within a day.</summary>
    internal static readonly TimeSpan MaxLifetime = TimeSpan.FromHours(24);

    private const int MinModulusBits = 2048;

    private readonly HttpClient _http;

    public GoogleKeysClient(HttpClient http) => _http = http;

    /// <summary>Fetches and parses the keys.</summary>
    /// <param name="url">The JWKS URL.</param>
    /// <param name="cancellationToken">Cancels the fetch.</param>
    /// <returns>The usable RS256 keys by key id, and how long to cache them.</returns>
    /// <exception cref="HttpRequestException">The endpoint could not be reached or did not answer 2xx.</exception>
    /// <exception cref="TaskCanceledException">The fetch timed out.</exception>
    /// <exception cref="InvalidDataException">The body is not a JWKS document.</exception>
    public async Task<FetchedSigningKeys> FetchAsync(Uri url, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        using var response = await _http.SendAsync(request, cancellationToken).ConfigureAwait(false);
        response.EnsureSuccessStatusCode();
        var json = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
        JsonWebKeySet set;
        try
        {
            set = new JsonWebKeySet(json);
        }
        catch (Exception exception) when (exception is ArgumentException or JsonException or FormatException or InvalidOperationException)
        {
            throw new InvalidDataException("The signing keys endpoint did not answer a JWKS document.", exception);
        }

        var keys = new Dictionary<string, SecurityKey>(StringComparer.Ordinal);
        foreach (var jwk in set.Keys)
        {
            if (ToSigningKey(jwk) is { } key)
            {
                keys.TryAdd(key.KeyId, key);
            }
        }

        return new FetchedSigningKeys(keys.ToFrozenDictionary(StringComparer.Ordinal), CacheLifetime(response.Headers));
    }

    /// <summary>
    /// How long a response may be cached: its <c>Cache-Control: max-age</c> less its <c>Age</c>, kept between
    /// <see cref="MinLifetime"/> and <see cref="MaxLifetime"/>; <see cref="DefaultLifetime"/> without <c>max-age</c>.
    /// </summary>
    internal static TimeSpan CacheLifetime(HttpResponseHeaders headers)
    {
        if (headers.CacheControl?.MaxAge is not { } maxAge)
        {
            return DefaultLifetime;
        }

        var lifetime = maxAge - (headers.Age ?? TimeSpan.Zero);
        return lifetime < MinLifetime ? MinLifetime : lifetime > MaxLifetime ? MaxLifetime : lifetime;
    }

    /// <summary>An RS256 verification key from a JWK, or <see langword="null"/> when the JWK is not one (other key type, use or algorithm, no id, or a modulus under 2048 bits).</summary>
    internal static RsaSecurityKey? ToSigningKey(JsonWebKey jwk)
    {
        if (!string.Equals(jwk.Kty, JsonWebAlgorithmsKeyTypes.RSA, StringComparison.Ordinal)
            || string.IsNullOrEmpty(jwk.Kid)
            || string.IsNullOrEmpty(jwk.N)
            || string.IsNullOrEmpty(jwk.E)
            || (!string.IsNullOrEmpty(jwk.Use) && !string.Equals(jwk.Use, JsonWebKeyUseNames.Sig, StringComparison.Ordinal))
            || (!string.IsNullOrEmpty(jwk.Alg) && !string.Equals(jwk.Alg, SecurityAlgorithms.RsaSha256, StringComparison.Ordinal)))
        {
            return null;
        }

        byte[] modulus;
        byte[] exponent;
        try
        {
            modulus = Base64Url.DecodeFromChars(jwk.N);
            exponent = Base64Url.DecodeFromChars(jwk.E);
        }
        catch (FormatException)
        {
            return null;
        }

        var significant = modulus.AsSpan().TrimStart((byte)0);
        if (significant.Length * 8 < MinModulusBits || exponent.Length == 0)
        {
            return null;
        }

        return new RsaSecurityKey(new RSAParameters { Modulus = significant.ToArray(), Exponent = exponent }) { KeyId = jwk.Kid };
    }
}

/// <summary>Keys fetched from the JWKS endpoint.</summary>
/// <param name="Keys">The usable RS256 keys by key id (<c>kid</c>).</param>
/// <param name="Lifetime">How long they may be cached.</param>
internal sealed record FetchedSigningKeys(FrozenDictionary<string, SecurityKey> Keys, TimeSpan Lifetime);
