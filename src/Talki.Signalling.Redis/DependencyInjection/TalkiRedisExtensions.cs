using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Talki.Signalling.Ports;
using Talki.Signalling.Redis;
using Talki.Signalling.Redis.Backplane;
using Talki.Signalling.Redis.Internal;
using Talki.Signalling.Redis.Quotas;
using Talki.Signalling.Redis.Storage;
using Talki.Signalling.Server.AspNetCore;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Runs Talki on several instances of the self-hosted host behind a load balancer, sharing one Redis.</summary>
public static class TalkiRedisExtensions
{
    /// <summary>
    /// Puts everything the instances must share in Redis, on one connection: sessions and the cookie's key ring
    /// (<see cref="TalkiRedisSessionsExtensions.AddRedisSessions(ITalkiSignallingBuilder, string, string)"/>), the room
    /// store (rooms, members, one-time tickets, connection bindings; Lua scripts for every check-and-write), the push
    /// backplane (each instance registers the sockets it holds; a push to a socket held elsewhere goes through Redis pub/sub
    /// to that instance, and <c>Gone</c> means no instance holds it), and the quota counters (rooms per user per hour,
    /// knocks per user per minute, sign-ins per address per minute). Call it after <c>AddTalkiSignalling</c>; calling it
    /// again only applies <paramref name="configure"/>.
    /// </summary>
    /// <remarks>
    /// The connection is made on first use and never aborts: while Redis is unreachable, requests are answered 503
    /// <c>service_unavailable</c>, open sockets stay open, and the connection keeps retrying. The options are validated at
    /// start-up.
    /// </remarks>
    /// <param name="builder">The Talki builder.</param>
    /// <param name="configuration">The StackExchange.Redis configuration string, for example <c>redis.internal:6379,password=…,ssl=true</c>.</param>
    /// <param name="configure">Configures the options (key prefix per deployment, registration time to live, push timeout).</param>
    /// <returns>The builder.</returns>
    /// <exception cref="ArgumentException"><paramref name="configuration"/> is empty or malformed.</exception>
    public static ITalkiSignallingBuilder AddRedis(this ITalkiSignallingBuilder builder, string configuration, Action<TalkiRedisOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrWhiteSpace(configuration);
        var services = builder.Services;
        var optionsBuilder = services.AddOptions<TalkiRedisOptions>();
        if (configure is not null)
        {
            optionsBuilder.Configure(configure);
        }

        if (services.Any(d => d.ServiceType == typeof(TalkiRedisMarker)))
        {
            return builder;
        }

        var connection = new RedisConnection(configuration);
        var sessionsPrefix = new TalkiRedisOptions();
        configure?.Invoke(sessionsPrefix);

        services.AddSingleton<TalkiRedisMarker>();
        optionsBuilder.ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<TalkiRedisOptions>, TalkiRedisOptionsValidator>());
        services.AddSingleton(_ => connection); // created by a factory: the container disposes it
        TalkiRedisSessionsExtensions.AddRedisSessions(builder, connection, sessionsPrefix.KeyPrefix);

        services.TryAddSingleton<RedisRoomStore>();
        services.RemoveAll<IRoomStore>();
        services.AddSingleton<IRoomStore>(static sp => sp.GetRequiredService<RedisRoomStore>());

        services.TryAddSingleton<RedisQuotaCounter>();
        services.RemoveAll<IQuotaCounter>();
        services.AddSingleton<IQuotaCounter>(static sp => sp.GetRequiredService<RedisQuotaCounter>());

        services.TryAddSingleton<RedisGatewayBackplane>();
        services.Replace(ServiceDescriptor.Singleton<IGatewayBackplane>(static sp => sp.GetRequiredService<RedisGatewayBackplane>()));
        services.AddHostedService(static sp => sp.GetRequiredService<RedisGatewayBackplane>());
        return builder;
    }

    /// <summary>Marks that <c>AddRedis</c> ran.</summary>
    private sealed class TalkiRedisMarker;
}
