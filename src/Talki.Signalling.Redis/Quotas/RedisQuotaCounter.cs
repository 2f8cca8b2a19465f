using Microsoft.Extensions.Options;
using Talki.Signalling.Ports;
using Talki.Signalling.Redis.Internal;

namespace Talki.Signalling.Redis.Quotas;

/// <summary>
/// The quota counter every instance shares: a fixed window per key in one Redis hash (<c>Pquota:{key}</c>: <c>s</c>, the
/// window's start, and <c>c</c>, the count), read, checked and counted by one Lua script, so concurrent events on any
/// number of instances are counted exactly. The window starts with its first event and lasts by the host's
/// <see cref="TimeProvider"/> (as the in-process counter); Redis expires the hash when the window ends.
/// </summary>
internal sealed class RedisQuotaCounter : IQuotaCounter
{
    /// <summary>KEYS: the counter. ARGV: now (Unix ms), window (ms), limit. Returns 1 when counted, 0 when over the limit.</summary>
    internal const string Script = """
        local now = tonumber(ARGV[1])
        local window = tonumber(ARGV[2])
        local s = redis.call('HGET', KEYS[1], 's')
        local start = tonumber(s)
        local count = tonumber(redis.call('HGET', KEYS[1], 'c')) or 0
        if not start or now - start >= window then
          s = ARGV[1]
          start = now
          count = 0
        end
        if count >= tonumber(ARGV[3]) then return 0 end
        redis.call('HSET', KEYS[1], 's', s, 'c', count + 1)
        redis.call('PEXPIRE', KEYS[1], math.max(1, start + window - now))
        return 1
        """;

    private readonly RedisConnection _redis;
    private readonly string _prefix;
    private readonly TimeProvider _time;

    public RedisQuotaCounter(RedisConnection redis, IOptions<TalkiRedisOptions> options, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(redis);
        ArgumentNullException.ThrowIfNull(options);
        _redis = redis;
        _prefix = options.Value.KeyPrefix + "quota:";
        _time = time;
    }

    public ValueTask<bool> TryAcquireAsync(string key, int limit, TimeSpan window, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        return RedisFailures.Guard(TryAcquireCoreAsync(key, limit, window));
    }

    private async Task<bool> TryAcquireCoreAsync(string key, int limit, TimeSpan window)
    {
        var db = await _redis.GetDatabaseAsync().ConfigureAwait(false);
        var counted = (long)await db.ScriptEvaluateAsync(
            Script,
            [_prefix + key],
            [_time.GetUtcNow().ToUnixTimeMilliseconds(), (long)window.TotalMilliseconds, limit]).ConfigureAwait(false);
        return counted == 1;
    }
}
