using System.Net;
using System.Net.Http.Json;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Talki.Signalling.Http;
using Talki.Signalling.Protocol;
using Talki.Signalling.Server.AspNetCore;
using Talki.Signalling.Testing;

namespace Talki.Signalling.Server.IntegrationTests.AspNetCore;

/// <summary>
/// A server with no shared cache keeps its sessions in a bounded table of its own: anyone with the link can sign in, and
/// anyone signing in without end must not push out the members already signed in, nor be handed a session that was never
/// stored.
/// </summary>
public sealed class SessionTableCapacityTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task SignIns_IntoATableFullOfLiveSessions_Are503ServiceUnavailable_WithNoSession_AndTheMembersSignedInKeepTheirs(bool bearer)
    {
        // Room for three sessions of these names (the same length each): measured on a first sign-in, then bounded.
        long entry;
        await using (var probe = await TestHost.StartAsync())
        {
            using var user = await SignInAsync(probe, "Ada0", bearer, HttpStatusCode.OK);
            entry = probe.Services.GetRequiredService<DistributedSessionStore>().Local!.Bytes;
        }

        // Bounded as a host bounds the in-process cache: its size limit.
        var logs = new RecordingLoggerProvider();
        await using var host = await TestHost.StartAsync(services: services =>
        {
            services.Configure<MemoryDistributedCacheOptions>(o => o.SizeLimit = 3 * entry);
            services.AddSingleton<ILoggerProvider>(logs);
        });
        var members = new List<TalkiUser>();
        for (var i = 0; i < 3; i++)
        {
            members.Add(await SignInAsync(host, $"Ada{i}", bearer, HttpStatusCode.OK));
        }

        for (var i = 0; i < 5; i++)
        {
            using var eve = await SignInAsync(host, $"Eve{i}", bearer, HttpStatusCode.ServiceUnavailable);
            var error = System.Text.Json.JsonSerializer.Deserialize(eve.HttpBodies[^1], TalkiJsonContext.Default.ErrorResponse)!;
            Assert.Equal(SignallingErrorCode.ServiceUnavailable, error.Code);
            Assert.Equal(TalkiHttpApi.SessionStoreFullMessage, error.Detail);
            Assert.Null(eve.Cookie);
            Assert.Null(eve.BearerToken);
            Assert.Null(await WhoAmIAsync(eve));
        }

        for (var i = 0; i < 3; i++)
        {
            Assert.Equal($"Ada{i}", await WhoAmIAsync(members[i]));
        }

        // The log counts the sessions started, not the refused ones, and says why those were refused.
        Assert.Equal(3, logs.Entries.Count(e => e.EventId.Name == "SessionStarted"));
        Assert.Equal(5, logs.Entries.Count(e => e.EventId.Name == "SessionStoreFull" && e.Level == LogLevel.Warning));

        // Signing out makes room at once; sessions past their lifetime make room for the next sign-in.
        Assert.Equal(HttpStatusCode.NoContent, (await members[0].PostAsync("/talki/session/sign-out")).StatusCode);
        using (var next = await SignInAsync(host, "Bob0", bearer, HttpStatusCode.OK))
        {
            Assert.Equal("Bob0", await WhoAmIAsync(next));
        }

        host.Time.Advance(host.Services.GetRequiredService<IOptions<TalkiSignallingOptions>>().Value.Hosting.SessionLifetime);
        Assert.Null(await WhoAmIAsync(members[1]));
        for (var i = 0; i < 3; i++)
        {
            using var late = await SignInAsync(host, $"Cyd{i}", bearer, HttpStatusCode.OK);
            Assert.Equal($"Cyd{i}", await WhoAmIAsync(late));
        }

        foreach (var member in members)
        {
            member.Dispose();
        }
    }

    private static async Task<TalkiUser> SignInAsync(TestHost host, string name, bool bearer, HttpStatusCode expected)
    {
        var user = new TalkiUser(host);
        using var response = await user.PostAsync("/talki/session/anonymous", new AnonymousSignInRequest { DisplayName = name, UseBearerToken = bearer });
        Assert.Equal(expected, response.StatusCode);
        if (expected == HttpStatusCode.OK && bearer)
        {
            user.BearerToken = (await response.Content.ReadFromJsonAsync(TalkiJsonContext.Default.SessionResponse))!.AccessToken;
        }

        if (expected == HttpStatusCode.ServiceUnavailable)
        {
            Assert.NotNull(response.Headers.RetryAfter);
        }

        return user;
    }

    private static async Task<string?> WhoAmIAsync(TalkiUser user)
    {
        using var response = await user.SendAsync(new HttpRequestMessage(HttpMethod.Get, "/talki/session"));
        return response.StatusCode == HttpStatusCode.OK
            ? (await response.Content.ReadFromJsonAsync(TalkiJsonContext.Default.SessionResponse))!.DisplayName
            : null;
    }
}
