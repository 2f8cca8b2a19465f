using System.Net;
using System.Net.Http.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.HttpOverrides;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Talki.Signalling.Http;
using Talki.Signalling.Protocol;
using Talki.Signalling.Server.AspNetCore;

namespace Talki.Signalling.Server.IntegrationTests.AspNetCore;

/// <summary>Unlimited sign-ins would let anyone with the link mint identities to knock with: sign-ins are limited per client address.</summary>
public sealed class SignInRateLimitTests
{
    [Fact]
    public async Task SignIns_BeyondThePerAddressLimit_Are429RateLimited_AnotherForwardedAddressIsNotAffected()
    {
        await using var app = await StartBehindAProxyAsync(signInsPerMinute: 5);
        using var http = new HttpClient { BaseAddress = new Uri(app.Urls.Single()) };

        var first = new List<HttpStatusCode>();
        for (var i = 0; i < 8; i++)
        {
            first.Add((await SignInAsync(http, "203.0.113.7", $"Eve{i}")).StatusCode);
        }

        Assert.Equal(Enumerable.Repeat(HttpStatusCode.OK, 5).Concat(Enumerable.Repeat(HttpStatusCode.TooManyRequests, 3)), first);
        using var refused = await SignInAsync(http, "203.0.113.7", "Eve9");
        Assert.Equal(SignallingErrorCode.RateLimited, (await refused.Content.ReadFromJsonAsync(TalkiJsonContext.Default.ErrorResponse))!.Code);
        Assert.NotNull(refused.Headers.RetryAfter);

        using var other = await SignInAsync(http, "198.51.100.20", "Ada");
        Assert.Equal(HttpStatusCode.OK, other.StatusCode);
    }

    [Fact]
    public async Task RotatingAddressesWithinOneIPv6Slash64_ShareOneBudget()
    {
        await using var app = await StartBehindAProxyAsync(signInsPerMinute: 3);
        using var http = new HttpClient { BaseAddress = new Uri(app.Urls.Single()) };

        var statuses = new List<HttpStatusCode>();
        for (var i = 1; i <= 5; i++)
        {
            statuses.Add((await SignInAsync(http, $"2001:db8:1:2::{i:x}", $"Eve{i}")).StatusCode);
        }

        Assert.Equal([HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.TooManyRequests, HttpStatusCode.TooManyRequests], statuses);
        Assert.Equal(HttpStatusCode.OK, (await SignInAsync(http, "2001:db8:1:3::1", "Ada")).StatusCode); // another /64
    }

    [Theory]
    [InlineData("203.0.113.7", "203.0.113.7")]
    [InlineData("::ffff:203.0.113.7", "203.0.113.7")]
    [InlineData("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64")]
    public void PartitionKey_IsTheAddress_IPv6ByItsSlash64(string address, string key)
        => Assert.Equal(key, SignInRateLimiter.PartitionKey(IPAddress.Parse(address)));

    private static async Task<HttpResponseMessage> SignInAsync(HttpClient http, string forwardedFor, string name)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/talki/session/anonymous")
        {
            Content = JsonContent.Create(new AnonymousSignInRequest { DisplayName = name }, TalkiJsonContext.Default.AnonymousSignInRequest),
        };
        request.Headers.Add("X-Forwarded-For", forwardedFor);
        return await http.SendAsync(request);
    }

    /// <summary>The host as documented behind a reverse proxy: forwarded headers from the (loopback) proxy are trusted.</summary>
    private static async Task<WebApplication> StartBehindAProxyAsync(int signInsPerMinute)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        builder.Services.Configure<ForwardedHeadersOptions>(o => o.ForwardedHeaders = ForwardedHeaders.XForwardedFor); // loopback proxies are trusted by default
        builder.Services.AddTalkiSignalling(o => o.Limits.SignInsPerAddressPerMinute = signInsPerMinute);
        var app = builder.Build();
        app.UseForwardedHeaders();
        app.MapTalkiSignalling();
        await app.StartAsync();
        return app;
    }
}
