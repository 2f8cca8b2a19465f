using System.Collections.Frozen;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.Tokens;
using Talki.Signalling.Server.AspNetCore;

namespace Talki.Signalling.Server.Identity;

/// <summary>The outcome of looking a signing key up.</summary>
internal enum SigningKeyStatus
{
    /// <summary>The key is published.</summary>
    Found,

    /// <summary>The key is not among the published keys.</summary>
    Unknown,

    /// <summary>The published keys could not be fetched.</summary>
    Unavailable,
}

/// <summary>A signing key looked up by id.</summary>
/// <param name="Status">Whether it was found.</param>
/// <param name="Key">The key when <see cref="SigningKeyStatus.Found"/>.</param>
internal readonly record struct SigningKeyLookup(SigningKeyStatus Status, SecurityKey? Key);

/// <summary>
/// Google's signing keys, cached for the response's <c>Cache-Control: max-age</c> (1 hour without one).
/// A token that names a key the cache does not hold triggers a new fetch, at most once a minute, so
/// rotated keys are picked up at once while forged key ids cannot make the server hammer Google.
/// </summary>
/// <remarks>
/// Fetches are serialised: callers that waited while another caller fetched take that fetch's outcome
/// instead of fetching again, so an unreachable endpoint costs one timeout, not one per queued request.
/// A fetch runs without the request's cancellation token (it serves every waiting caller) and is bounded
/// by <see cref="GoogleKeysClient.Timeout"/>. Expired keys are never used: when they cannot be refreshed,
/// sign-in answers <c>identity_provider_unavailable</c>; so does a key id the cache lacks while the last
/// fetch failed (nobody can tell whether Google publishes it). Keys still fresh keep working meanwhile.
/// </remarks>
internal sealed class GoogleSigningKeyCache : IDisposable
{
    /// <summary>The shortest interval between two fetches triggered by unknown key ids.</summary>
    internal static readonly TimeSpan RefetchInterval = TimeSpan.FromMinutes(1);

    private readonly IServiceProvider _services;
    private readonly Uri _keysUrl;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private volatile Snapshot? _snapshot;
    private long _completedFetches;
    private DateTimeOffset _lastAttemptAt = DateTimeOffset.MinValue;
    private bool _lastAttemptFailed;

    public GoogleSigningKeyCache(IServiceProvider services, IOptions<TalkiSignallingOptions> options, TimeProvider time, ILogger<GoogleSigningKeyCache> logger)
    {
        _services = services;
        _keysUrl = options.Value.Google.KeysUrl;
        _time = time;
        _logger = logger;
    }

    /// <summary>Finds the published key with id <paramref name="keyId"/>, fetching the keys when needed.</summary>
    /// <param name="keyId">The token's <c>kid</c>.</param>
    /// <param name="cancellationToken">Cancels waiting (not a fetch other callers share).</param>
    /// <returns>The key, or why there is none.</returns>
    public async ValueTask<SigningKeyLookup> FindAsync(string keyId, CancellationToken cancellationToken)
    {
        var snapshot = _snapshot;
        if (snapshot is not null && snapshot.Keys.TryGetValue(keyId, out var cached) && _time.GetUtcNow() < snapshot.ExpiresAt)
        {
            return new SigningKeyLookup(SigningKeyStatus.Found, cached);
        }

        var fetchesSeen = Interlocked.Read(ref _completedFetches);
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var now = _time.GetUtcNow();
            snapshot = _snapshot;
            var fresh = snapshot is not null && now < snapshot.ExpiresAt;
            if (fresh && snapshot!.Keys.TryGetValue(keyId, out var key))
            {
                return new SigningKeyLookup(SigningKeyStatus.Found, key);
            }

            if (Interlocked.Read(ref _completedFetches) != fetchesSeen)
            {
                // A fetch completed while this caller waited: take its outcome.
                return NotFound(fresh);
            }

            if (fresh && now - _lastAttemptAt < RefetchInterval)
            {
                HostingLog.GoogleKeyUnknownNotRefetched(_logger, keyId);
                return NotFound(fresh);
            }

            _lastAttemptAt = now;
            FetchedSigningKeys fetched;
            try
            {
                var client = _services.GetRequiredService<GoogleKeysClient>();
                fetched = await client.FetchAsync(_keysUrl, CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception exception) when (exception is HttpRequestException or TaskCanceledException or InvalidDataException)
            {
                _lastAttemptFailed = true;
                HostingLog.GoogleKeysUnavailable(_logger, exception, _keysUrl);
                return NotFound(fresh);
            }
            finally
            {
                Interlocked.Increment(ref _completedFetches);
            }

            _lastAttemptFailed = false;
            _snapshot = new Snapshot(fetched.Keys, _time.GetUtcNow() + fetched.Lifetime);
            HostingLog.GoogleKeysFetched(_logger, fetched.Keys.Count, fetched.Lifetime);
            return fetched.Keys.TryGetValue(keyId, out key)
                ? new SigningKeyLookup(SigningKeyStatus.Found, key)
                : new SigningKeyLookup(SigningKeyStatus.Unknown, null);
        }
        finally
        {
            _gate.Release();
        }
    }

    public void Dispose() => _gate.Dispose();

    /// <summary>
    /// The answer for a key the cache does not hold: unknown when fresh keys were fetched and lack it;
    /// unavailable when the keys expired or the last fetch failed, since then nobody can tell.
    /// </summary>
    private SigningKeyLookup NotFound(bool fresh)
        => new(fresh && !_lastAttemptFailed ? SigningKeyStatus.Unknown : SigningKeyStatus.Unavailable, null);

    private sealed record Snapshot(FrozenDictionary<string, SecurityKey> Keys, DateTimeOffset ExpiresAt);
}
