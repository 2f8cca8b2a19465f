using Microsoft.Extensions.Options;
using Talki.Signalling.Redis;
using Talki.Signalling.Redis.Internal;
using Talki.Signalling.Redis.Quotas;
using Talki.Signalling.Redis.Storage;

namespace Talki.Signalling.Server.IntegrationTests.Redis;

/// <summary>Builds the Redis adapters over a test's redis-server, each under its own key prefix (a deployment of its own).</summary>
internal static class RedisTestStores
{
    public static string NewPrefix() => $"t{Guid.NewGuid():N}:";

    public static RedisRoomStore Store(RedisConnection connection, TimeProvider time, string? prefix = null)
        => new(connection, Options.Create(new TalkiRedisOptions { KeyPrefix = prefix ?? NewPrefix() }), time);

    public static RedisQuotaCounter Counter(RedisConnection connection, TimeProvider time, string prefix)
        => new(connection, Options.Create(new TalkiRedisOptions { KeyPrefix = prefix }), time);
}
