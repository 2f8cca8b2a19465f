using System.Net;
using Microsoft.Extensions.DependencyInjection;

namespace Talki.Signalling.Server.IntegrationTests.Sessions;

/// <summary>Sessions in a real redis-server: one switch, restarts, sign-out, expiry.</summary>
public sealed class RedisSessionTests(RedisServerFixture redis) : IClassFixture<RedisServerFixture>
{
    private Task<TestHost> StartAsync(string instance, Action<TalkiSignallingOptions>? configure = null)
        => TestHost.StartAsync(configure, services => services.AddTalkiSignalling().AddRedisSessions(redis.Configuration, instance));

    [Fact]
    public async Task Session_LivesInRedis_AndSurvivesARestartOfTheHost()
    {
        var instance = $"talki-{Guid.NewGuid():N}:";
        string? cookie;
        await using (var first = await StartAsync(instance))
        {
            using var ada = await first.SignInAsync("Ada");
            cookie = ada.Cookie;
            Assert.Equal(1, redis.CountKeys(instance + "talki:session:*"));
        }

        await using var second = await StartAsync(instance);
        using var again = new TalkiUser(second) { Cookie = cookie };
        Assert.Equal(HttpStatusCode.OK, (await again.SendAsync(new HttpRequestMessage(HttpMethod.Get, "/talki/session"))).StatusCode);
        Assert.Equal(HttpStatusCode.Created, (await again.PostAsync("/talki/rooms")).StatusCode);
    }

    [Fact]
    public async Task SignOut_DeletesTheEntryInRedis()
    {
        var instance = $"talki-{Guid.NewGuid():N}:";
        await using var host = await StartAsync(instance);
        using var ada = await host.SignInAsync("Ada");
        using var bob = new TalkiUser(host);
        await bob.PostAsync("/talki/session/anonymous", """{"displayName":"Bob","useBearerToken":true}""");
        Assert.Equal(2, redis.CountKeys(instance + "talki:session:*"));

        var stolen = ada.Cookie;
        Assert.Equal(HttpStatusCode.NoContent, (await ada.PostAsync("/talki/session/sign-out")).StatusCode);
        Assert.Equal(1, redis.CountKeys(instance + "talki:session:*"));
        ada.Cookie = stolen;
        Assert.Equal(HttpStatusCode.Unauthorized, (await ada.PostAsync("/talki/rooms")).StatusCode);
    }

    [Fact]
    public async Task Session_IsGoneFromRedisAfterItsLifetime()
    {
        var instance = $"talki-{Guid.NewGuid():N}:";
        await using var host = await StartAsync(instance, o => o.Hosting.SessionLifetime = TimeSpan.FromSeconds(2));
        using var ada = await host.SignInAsync("Ada");
        var ttl = await redis.Client.GetDatabase().KeyTimeToLiveAsync(redis.Client.GetServer(redis.Client.GetEndPoints()[0]).Keys(pattern: instance + "talki:session:*").Single());
        Assert.InRange(ttl!.Value, TimeSpan.FromMilliseconds(1), TimeSpan.FromSeconds(2));

        for (var i = 0; i < 100 && redis.CountKeys(instance + "talki:session:*") > 0; i++)
        {
            await Task.Delay(100);
        }

        Assert.Equal(0, redis.CountKeys(instance + "talki:session:*"));
        // The host's (fake) clock has not moved: only Redis' expiry can have ended the session.
        Assert.Equal(HttpStatusCode.Unauthorized, (await ada.SendAsync(new HttpRequestMessage(HttpMethod.Get, "/talki/session"))).StatusCode);
    }

    [Fact]
    public async Task DataProtectionKeys_AreSharedThroughRedis()
    {
        var instance = $"talki-{Guid.NewGuid():N}:";
        await using var host = await StartAsync(instance);
        using var ada = await host.SignInAsync("Ada");
        Assert.True(await redis.Client.GetDatabase().KeyExistsAsync(TalkiRedisSessionsExtensions.DataProtectionKey));
    }
}
