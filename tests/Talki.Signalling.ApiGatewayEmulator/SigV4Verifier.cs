using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Talki.Signalling.Emulator;

/// <summary>A request as the verifier sees it: the raw request target, the headers (lower-case names) and the body.</summary>
public sealed record SignedRequest(string Method, string RawTarget, IReadOnlyDictionary<string, string> Headers, byte[] Body);

/// <summary>
/// An independent SigV4 (AWS4-HMAC-SHA256) verifier, written from the specification and checked against the AWS test
/// suite: it rebuilds the canonical request from the raw request target (non-S3 services encode the wire path once
/// more), the signed headers and the body hash, and recomputes the signature with the known secret.
/// </summary>
public sealed class SigV4Verifier
{
    private const string Algorithm = "AWS4-HMAC-SHA256";
    private readonly IReadOnlyDictionary<string, string> _secrets;

    public SigV4Verifier(IReadOnlyDictionary<string, string> secretsByAccessKey, string region, string service)
    {
        _secrets = secretsByAccessKey;
        Region = region;
        Service = service;
    }

    public string Region { get; }

    public string Service { get; }

    /// <summary>Gets or sets the clock skew allowed between <c>x-amz-date</c> and <see cref="Now"/>; <see langword="null"/> skips the check.</summary>
    public TimeSpan? MaxSkew { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Gets the clock the skew is checked against (the real clock: the AWS signer uses it).</summary>
    public Func<DateTimeOffset> Now { get; init; } = () => TimeProvider.System.GetUtcNow();

    /// <summary>The access key id in an <c>Authorization</c> header's credential scope, or null.</summary>
    public static string? AccessKeyOf(string? authorization)
    {
        if (authorization is null || !authorization.StartsWith(Algorithm + " ", StringComparison.Ordinal))
        {
            return null;
        }

        const string credential = "Credential=";
        var start = authorization.IndexOf(credential, StringComparison.Ordinal);
        if (start < 0)
        {
            return null;
        }

        start += credential.Length;
        var slash = authorization.IndexOf('/', start);
        return slash < 0 ? null : authorization[start..slash];
    }

    /// <summary>Verifies a request; <see langword="null"/> when valid, otherwise why not.</summary>
    public string? Verify(SignedRequest request)
    {
        if (!request.Headers.TryGetValue("authorization", out var authorization) || !authorization.StartsWith(Algorithm + " ", StringComparison.Ordinal))
        {
            return "missing or foreign Authorization header";
        }

        var parts = authorization[(Algorithm.Length + 1)..]
            .Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .Select(p => p.Split('=', 2))
            .Where(p => p.Length == 2)
            .ToDictionary(p => p[0], p => p[1], StringComparer.Ordinal);
        if (!parts.TryGetValue("Credential", out var credential) || !parts.TryGetValue("SignedHeaders", out var signedHeaders) || !parts.TryGetValue("Signature", out var signature))
        {
            return "incomplete Authorization header";
        }

        var scope = credential.Split('/');
        if (scope.Length != 5 || scope[4] != "aws4_request")
        {
            return "malformed credential scope";
        }

        if (!_secrets.TryGetValue(scope[0], out var secret))
        {
            return "unknown access key";
        }

        if (scope[2] != Region || scope[3] != Service)
        {
            return $"scope {scope[2]}/{scope[3]} is not {Region}/{Service}";
        }

        if (!request.Headers.TryGetValue("x-amz-date", out var amzDate) || !amzDate.StartsWith(scope[1], StringComparison.Ordinal))
        {
            return "x-amz-date missing or not the scope's date";
        }

        var names = signedHeaders.Split(';');
        if (!names.Contains("host") || !names.Contains("x-amz-date"))
        {
            return "host and x-amz-date must be signed";
        }

        if (MaxSkew is { } maxSkew)
        {
            var signedAt = DateTimeOffset.ParseExact(amzDate, "yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal);
            if ((Now() - signedAt).Duration() > maxSkew)
            {
                return "signed too long ago";
            }
        }

        var payloadHash = Hex(SHA256.HashData(request.Body));
        if (request.Headers.TryGetValue("x-amz-content-sha256", out var claimedHash) && claimedHash != payloadHash)
        {
            return "x-amz-content-sha256 does not match the body";
        }

        var canonicalHeaders = new StringBuilder();
        foreach (var name in names)
        {
            if (!request.Headers.TryGetValue(name, out var value))
            {
                return $"signed header {name} is missing";
            }

            canonicalHeaders.Append(name).Append(':').Append(NormalizeHeaderValue(value)).Append('\n');
        }

        var canonicalRequest = CanonicalRequest(request.Method, request.RawTarget, canonicalHeaders.ToString(), signedHeaders, payloadHash);
        var expected = Sign(secret, amzDate, scope[1], scope[2], scope[3], canonicalRequest);
        return CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(expected), Encoding.ASCII.GetBytes(signature))
            ? null
            : "signature mismatch";
    }

    /// <summary>The canonical request: method, canonical URI, canonical query, headers, signed header names, payload hash.</summary>
    public static string CanonicalRequest(string method, string rawTarget, string canonicalHeaders, string signedHeaders, string payloadHash)
    {
        var question = rawTarget.IndexOf('?', StringComparison.Ordinal);
        var path = question < 0 ? rawTarget : rawTarget[..question];
        var query = question < 0 ? string.Empty : rawTarget[(question + 1)..];
        return string.Join('\n', method, CanonicalUri(path), CanonicalQuery(query), canonicalHeaders, signedHeaders, payloadHash);
    }

    /// <summary>The signature: HMAC chain AWS4{secret} → date → region → service → aws4_request over the string to sign.</summary>
    public static string Sign(string secret, string amzDate, string date, string region, string service, string canonicalRequest)
    {
        var stringToSign = string.Join('\n', Algorithm, amzDate, $"{date}/{region}/{service}/aws4_request", Hex(SHA256.HashData(Encoding.UTF8.GetBytes(canonicalRequest))));
        var key = Encoding.UTF8.GetBytes("AWS4" + secret);
        foreach (var step in new[] { date, region, service, "aws4_request" })
        {
            key = HMACSHA256.HashData(key, Encoding.UTF8.GetBytes(step));
        }

        return Hex(HMACSHA256.HashData(key, Encoding.UTF8.GetBytes(stringToSign)));
    }

    private static string CanonicalUri(string wirePath)
    {
        if (wirePath.Length == 0)
        {
            return "/";
        }

        // Non-S3 services: every segment of the (already encoded) wire path is encoded once more.
        return string.Join('/', wirePath.Split('/').Select(Encode));
    }

    private static string CanonicalQuery(string query)
        => string.Join('&', query.Split('&', StringSplitOptions.RemoveEmptyEntries)
            .Select(p => p.Split('=', 2))
            .Select(p => (Key: Encode(Uri.UnescapeDataString(p[0])), Value: Encode(p.Length > 1 ? Uri.UnescapeDataString(p[1].Replace('+', ' ')) : string.Empty)))
            .OrderBy(p => p.Key, StringComparer.Ordinal)
            .ThenBy(p => p.Value, StringComparer.Ordinal)
            .Select(p => p.Key + "=" + p.Value));

    private static string Encode(string value)
    {
        var builder = new StringBuilder(value.Length);
        foreach (var b in Encoding.UTF8.GetBytes(value))
        {
            var c = (char)b;
            if (char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or '~')
            {
                builder.Append(c);
            }
            else
            {
                builder.Append('%').Append(b.ToString("X2", CultureInfo.InvariantCulture));
            }
        }

        return builder.ToString();
    }

    private static string NormalizeHeaderValue(string value)
        => string.Join(' ', value.Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries));

    private static string Hex(byte[] bytes) => Convert.ToHexStringLower(bytes);
}
