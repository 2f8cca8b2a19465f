using Microsoft.AspNetCore.DataProtection;
using Microsoft.Extensions.Caching.StackExchangeRedis;
using Talki.Signalling.Redis.Internal;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Keeps Talki sessions in Redis.</summary>
public static class TalkiRedisSessionsExtensions
{
    /// <summary>The Redis key under which the data-protection key ring is kept.</summary>
    public const string DataProtectionKey = "talki:data-protection-keys";

    /// <summary>
    /// Stores sessions (cookie and bearer) in Redis through <c>Microsoft.Extensions.Caching.StackExchangeRedis</c>,
    /// and the ASP.NET Core data-protection key ring that encrypts the session cookie in the same Redis, so that
    /// sessions survive restarts and are shared by every instance of the host. Sign-out deletes the entry;
    /// Redis expires it with the session (24 h, absolute). <c>AddRedis</c> calls it, and adds the room store, the push
    /// backplane and the quota counters on the same connection.
    /// </summary>
    /// <param name="builder">The Talki builder.</param>
    /// <param name="configuration">The StackExchange.Redis configuration string, for example <c>redis.internal:6379,password=…,ssl=true</c>.</param>
    /// <param name="instanceName">The prefix of every cache key.</param>
    /// <returns>The builder.</returns>
    /// <exception cref="ArgumentException"><paramref name="configuration"/> is empty or malformed.</exception>
    public static ITalkiSignallingBuilder AddRedisSessions(this ITalkiSignallingBuilder builder, string configuration, string instanceName = "talki:")
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrWhiteSpace(configuration);
        var connection = new RedisConnection(configuration);
        builder.Services.AddSingleton(_ => connection);
        return AddRedisSessions(builder, connection, instanceName);
    }

    /// <summary>Sessions and the key ring on an existing connection.</summary>
    internal static ITalkiSignallingBuilder AddRedisSessions(ITalkiSignallingBuilder builder, RedisConnection connection, string instanceName)
    {
        builder.Services.AddStackExchangeRedisCache(options =>
        {
            options.InstanceName = instanceName;
            options.ConnectionMultiplexerFactory = connection.GetAsync;
        });
        builder.Services.AddDataProtection()
            .SetApplicationName("Talki.Signalling")
            .PersistKeysToStackExchangeRedis(() => connection.GetDatabaseAsync().GetAwaiter().GetResult(), DataProtectionKey);
        return builder;
    }
}
