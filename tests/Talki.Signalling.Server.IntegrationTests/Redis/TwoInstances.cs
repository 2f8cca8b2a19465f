using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Talki.Signalling.Redis.Backplane;
using Talki.Signalling.Redis.Internal;
using Talki.Signalling.Server.IntegrationTests.Sessions;

namespace Talki.Signalling.Server.IntegrationTests.Redis;

/// <summary>
/// Two instances of the host (two Kestrel servers on two free ports) sharing one redis-server through <c>AddRedis</c>,
/// under a key prefix of their own, with one clock (as two servers with synchronised clocks).
/// </summary>
internal sealed class TwoInstances : IAsyncDisposable
{
    private TwoInstances(TestHost a, TestHost b, string prefix)
    {
        A = a;
        B = b;
        Prefix = prefix;
    }

    public TestHost A { get; }

    public TestHost B { get; }

    public string Prefix { get; }

    public static async Task<TwoInstances> StartAsync(RedisServerFixture redis, Action<TalkiSignallingOptions>? configure = null)
    {
        var prefix = RedisTestStores.NewPrefix();
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        void AddRedis(IServiceCollection services) => services.AddTalkiSignalling().AddRedis(redis.Configuration, o =>
        {
            o.KeyPrefix = prefix;
            o.RegistrationTtl = TimeSpan.FromSeconds(3);
            o.PushTimeout = TimeSpan.FromSeconds(2);
        });
        var a = await TestHost.StartAsync(configure, AddRedis, time);
        var b = await TestHost.StartAsync(configure, AddRedis, time);
        return new TwoInstances(a, b, prefix);
    }

    /// <summary>The same signed-in user (the session cookie lives in Redis) sending to <paramref name="host"/>.</summary>
    public static TalkiUser On(TestHost host, TalkiUser user) => new(host) { Cookie = user.Cookie };

    /// <summary>Cuts an instance off Redis for good, as when it dies: no answers, no refreshes, no unregistrations.</summary>
    public static async Task KillRedisLinkAsync(TestHost host)
    {
        var connection = await host.Services.GetRequiredService<RedisConnection>().GetAsync();
        await connection.CloseAsync(allowCommandsToComplete: false);
    }

    public static RedisGatewayBackplane Backplane(TestHost host) => host.Services.GetRequiredService<RedisGatewayBackplane>();

    public async ValueTask DisposeAsync()
    {
        await A.DisposeAsync();
        await B.DisposeAsync();
    }
}
