using System.Net;
using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using Microsoft.IdentityModel.Tokens;
using Talki.Signalling.Server.Identity;

namespace Talki.Signalling.Server.Tests.Identity;

public sealed class GoogleSigningKeyCacheTests
{
    [Fact]
    public async Task Keys_AreCachedForMaxAge_ThenFetchedAgain()
    {
        using var google = new GoogleHarness();
        google.Endpoint.Serve(TestJwt.Jwks(google.Key), maxAge: TimeSpan.FromMinutes(30));
        Assert.Equal(SigningKeyStatus.Found, (await FindAsync(google, "key-1")).Status);
        google.Time.Advance(TimeSpan.FromMinutes(29));
        Assert.Equal(SigningKeyStatus.Found, (await FindAsync(google, "key-1")).Status);
        Assert.Equal(1, google.Endpoint.Requests);

        google.Time.Advance(TimeSpan.FromMinutes(1));
        Assert.Equal(SigningKeyStatus.Found, (await FindAsync(google, "key-1")).Status);
        Assert.Equal(2, google.Endpoint.Requests);
    }

    [Fact]
    public async Task WithoutMaxAge_KeysAreCachedForAnHour()
    {
        using var google = new GoogleHarness();
        google.Endpoint.Serve(TestJwt.Jwks(google.Key), maxAge: null);
        await FindAsync(google, "key-1");
        google.Time.Advance(TimeSpan.FromMinutes(59));
        await FindAsync(google, "key-1");
        Assert.Equal(1, google.Endpoint.Requests);
        google.Time.Advance(TimeSpan.FromMinutes(1));
        await FindAsync(google, "key-1");
        Assert.Equal(2, google.Endpoint.Requests);
    }

    [Theory]
    [InlineData(3600, null, 3600)]
    [InlineData(3600, 600, 3000)]
    [InlineData(0, null, 60)]
    [InlineData(30, null, 60)]
    [InlineData(3600, 7200, 60)]
    [InlineData(10 * 24 * 3600, null, 24 * 3600)]
    public void CacheLifetime_IsMaxAgeLessAge_BetweenOneMinuteAndOneDay(int maxAgeSeconds, int? ageSeconds, int expectedSeconds)
    {
        using var response = new HttpResponseMessage(HttpStatusCode.OK);
        response.Headers.CacheControl = new CacheControlHeaderValue { Public = true, MaxAge = TimeSpan.FromSeconds(maxAgeSeconds) };
        if (ageSeconds is { } age)
        {
            response.Headers.Age = TimeSpan.FromSeconds(age);
        }

        Assert.Equal(TimeSpan.FromSeconds(expectedSeconds), GoogleKeysClient.CacheLifetime(response.Headers));
    }

    [Fact]
    public void CacheLifetime_WithoutCacheControl_IsOneHour()
    {
        using var response = new HttpResponseMessage(HttpStatusCode.OK);
        Assert.Equal(TimeSpan.FromHours(1), GoogleKeysClient.CacheLifetime(response.Headers));
    }

    [Fact]
    public async Task UnknownKeyId_RefetchesAtMostOncePerMinute_AndPicksUpARotatedKey()
    {
        using var google = new GoogleHarness();
        using var rotated = new TestSigningKey("key-2");
        Assert.Equal(SigningKeyStatus.Found, (await FindAsync(google, "key-1")).Status);
        google.Endpoint.Serve(TestJwt.Jwks(google.Key, rotated), TimeSpan.FromHours(6));

        // Fetched less than a minute ago: an unknown id does not fetch again, however often it is asked for.
        for (var i = 0; i < 5; i++)
        {
            Assert.Equal(SigningKeyStatus.Unknown, (await FindAsync(google, "key-2")).Status);
        }

        Assert.Equal(1, google.Endpoint.Requests);

        google.Time.Advance(TimeSpan.FromMinutes(1));
        var found = await FindAsync(google, "key-2");
        Assert.Equal(SigningKeyStatus.Found, found.Status);
        Assert.Equal("key-2", found.Key!.KeyId);
        Assert.Equal(2, google.Endpoint.Requests);

        // A forged id: one fetch, then none for a minute.
        google.Time.Advance(TimeSpan.FromMinutes(1));
        Assert.Equal(SigningKeyStatus.Unknown, (await FindAsync(google, "forged")).Status);
        Assert.Equal(SigningKeyStatus.Unknown, (await FindAsync(google, "forged")).Status);
        Assert.Equal(3, google.Endpoint.Requests);
    }

    [Fact]
    public async Task FirstLookupOfAnUnknownId_FetchesOnce()
    {
        using var google = new GoogleHarness();
        Assert.Equal(SigningKeyStatus.Unknown, (await FindAsync(google, "nope")).Status);
        Assert.Equal(1, google.Endpoint.Requests);
    }

    public static TheoryData<string> Failures => ["unreachable", "status500", "html", "timeout"];

    [Theory]
    [MemberData(nameof(Failures))]
    public async Task EndpointFailing_Unavailable_UntilItRecovers(string failure)
    {
        using var google = new GoogleHarness();
        google.Endpoint.Respond = failure switch
        {
            "unreachable" => _ => throw new HttpRequestException("Connection refused."),
            "status500" => _ => Task.FromResult(new HttpResponseMessage(HttpStatusCode.InternalServerError)),
            "html" => _ => Task.FromResult(new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent("<html>maintenance</html>") }),
            _ => _ => throw new TaskCanceledException("The request timed out."),
        };
        Assert.Equal(SigningKeyStatus.Unavailable, (await FindAsync(google, "key-1")).Status);
        Assert.Equal(SigningKeyStatus.Unavailable, (await FindAsync(google, "key-1")).Status);

        google.Endpoint.Serve(TestJwt.Jwks(google.Key), TimeSpan.FromHours(1));
        Assert.Equal(SigningKeyStatus.Found, (await FindAsync(google, "key-1")).Status);
    }

    [Fact]
    public async Task ExpiredKeys_AreNotUsed_WhenTheyCannotBeRefreshed()
    {
        using var google = new GoogleHarness();
        await FindAsync(google, "key-1");
        google.Endpoint.Down();
        google.Time.Advance(TimeSpan.FromHours(6));
        Assert.Equal(SigningKeyStatus.Unavailable, (await FindAsync(google, "key-1")).Status);
    }

    [Fact]
    public async Task FailedRefetchForAnUnknownId_KeepsTheFreshKeys_AndAnswersUnavailableForThatMinute()
    {
        using var google = new GoogleHarness();
        await FindAsync(google, "key-1");
        google.Endpoint.Down();
        google.Time.Advance(TimeSpan.FromMinutes(1));
        Assert.Equal(SigningKeyStatus.Unavailable, (await FindAsync(google, "key-2")).Status);
        Assert.Equal(SigningKeyStatus.Unavailable, (await FindAsync(google, "key-2")).Status);
        Assert.Equal(SigningKeyStatus.Found, (await FindAsync(google, "key-1")).Status);
        Assert.Equal(2, google.Endpoint.Requests);
    }

    [Fact]
    public async Task ConcurrentLookups_ShareOneFetch()
    {
        using var google = new GoogleHarness();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var jwks = TestJwt.Jwks(google.Key);
        google.Endpoint.Respond = async _ =>
        {
            await release.Task;
            return new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent(jwks) };
        };
        var lookups = Enumerable.Range(0, 20).Select(i => FindAsync(google, i % 2 == 0 ? "key-1" : "unknown").AsTask()).ToList();
        await Task.Delay(50);
        release.SetResult();
        var results = await Task.WhenAll(lookups);
        Assert.Equal(1, google.Endpoint.Requests);
        Assert.All(results.Where((_, i) => i % 2 == 0), r => Assert.Equal(SigningKeyStatus.Found, r.Status));
        Assert.All(results.Where((_, i) => i % 2 == 1), r => Assert.Equal(SigningKeyStatus.Unknown, r.Status));
    }

    [Fact]
    public async Task ConcurrentLookups_WhileTheEndpointIsDown_CostOneFetch()
    {
        using var google = new GoogleHarness();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        google.Endpoint.Respond = async _ =>
        {
            await release.Task;
            throw new HttpRequestException("Connection refused.");
        };
        var lookups = Enumerable.Range(0, 10).Select(_ => FindAsync(google, "key-1").AsTask()).ToList();
        await Task.Delay(50);
        release.SetResult();
        Assert.All(await Task.WhenAll(lookups), r => Assert.Equal(SigningKeyStatus.Unavailable, r.Status));
        Assert.Equal(1, google.Endpoint.Requests);
    }

    [Fact]
    public void Jwks_KeepsOnlyRs256SigningKeysOfAtLeast2048Bits()
    {
        using var good = new TestSigningKey("good");
        using var small = new TestSigningKey("small", 1024);
        Assert.NotNull(GoogleKeysClient.ToSigningKey(new JsonWebKey(good.Jwk().ToJsonString())));
        Assert.Null(GoogleKeysClient.ToSigningKey(new JsonWebKey(small.Jwk().ToJsonString())));
        foreach (var (property, value) in new (string, string?)[] { ("use", "enc"), ("alg", "RS384"), ("kty", "EC"), ("kid", null), ("n", null), ("e", null), ("n", "***") })
        {
            var jwk = good.Jwk();
            jwk[property] = value is null ? null : JsonValue.Create(value);
            Assert.Null(GoogleKeysClient.ToSigningKey(new JsonWebKey(jwk.ToJsonString())));
        }

        var withoutUseAndAlg = good.Jwk();
        withoutUseAndAlg.Remove("use");
        withoutUseAndAlg.Remove("alg");
        Assert.Equal("good", GoogleKeysClient.ToSigningKey(new JsonWebKey(withoutUseAndAlg.ToJsonString()))!.KeyId);
    }

    private static ValueTask<SigningKeyLookup> FindAsync(GoogleHarness google, string keyId) => google.Cache.FindAsync(keyId, CancellationToken.None);
}
