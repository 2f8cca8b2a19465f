using System.Text.Json.Nodes;
using Talki.Signalling.Server.Identity;

namespace Talki.Signalling.Server.Tests.Identity;

public sealed class GoogleIdTokenValidatorTests
{
    [Fact]
    public async Task ValidToken_YieldsSubjectAndName()
    {
        using var google = new GoogleHarness();
        var result = await google.ValidateAsync(google.Key.Sign(google.Claims()));
        Assert.True(result.IsSuccess, result.ToString());
        Assert.Equal(new GoogleIdentity("110169484474386276334", "Ada Lovelace"), result.Value);
        Assert.Equal(GoogleHarness.KeysUrl, google.Endpoint.LastRequestUri);
    }

    [Theory]
    [InlineData("https://accounts.google.com")]
    [InlineData("accounts.google.com")]
    public async Task BothGoogleIssuers_AreAccepted(string issuer)
    {
        using var google = new GoogleHarness();
        var claims = google.Claims();
        claims["iss"] = issuer;
        Assert.True((await google.ValidateAsync(google.Key.Sign(claims))).IsSuccess);
    }

    [Fact]
    public async Task AnyConfiguredClientId_IsAccepted()
    {
        using var google = new GoogleHarness(o => o.Google.ClientIds.Add("client-2"));
        var claims = google.Claims();
        claims["aud"] = "client-2";
        Assert.True((await google.ValidateAsync(google.Key.Sign(claims))).IsSuccess);
    }

    [Fact]
    public async Task WrongAudience_TokenAudienceInvalid()
    {
        using var google = new GoogleHarness();
        var claims = google.Claims();
        claims["aud"] = "someone-elses-client";
        Assert.Equal(SignallingErrorCode.TokenAudienceInvalid, await google.RefusalAsync(google.Key.Sign(claims)));
    }

    [Fact]
    public async Task WrongIssuer_TokenIssuerInvalid()
    {
        using var google = new GoogleHarness();
        var claims = google.Claims();
        claims["iss"] = "https://evil.example.org";
        Assert.Equal(SignallingErrorCode.TokenIssuerInvalid, await google.RefusalAsync(google.Key.Sign(claims)));
    }

    [Fact]
    public async Task Expiry_IsCheckedOnTheInjectedClock_WithClockSkew()
    {
        using var google = new GoogleHarness();
        var token = google.Key.Sign(google.Claims()); // exp = now + 1 h
        google.Time.Advance(TimeSpan.FromHours(1) + TimeSpan.FromSeconds(59)); // within the 1 minute skew
        Assert.True((await google.ValidateAsync(token)).IsSuccess);
        google.Time.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal(SignallingErrorCode.TokenExpired, await google.RefusalAsync(token));
    }

    [Fact]
    public async Task NotBeforeInTheFuture_TokenNotYetValid_UntilItComes()
    {
        using var google = new GoogleHarness();
        var claims = google.Claims();
        claims["nbf"] = google.Time.GetUtcNow().AddMinutes(5).ToUnixTimeSeconds();
        var token = google.Key.Sign(claims);
        Assert.Equal(SignallingErrorCode.TokenNotYetValid, await google.RefusalAsync(token));
        google.Time.Advance(TimeSpan.FromMinutes(4)); // nbf - skew
        Assert.True((await google.ValidateAsync(token)).IsSuccess);
    }

    [Fact]
    public async Task IssuedInTheFuture_BeyondSkew_TokenNotYetValid()
    {
        using var google = new GoogleHarness();
        var claims = google.Claims();
        claims["iat"] = google.Time.GetUtcNow().AddMinutes(2).ToUnixTimeSeconds();
        Assert.Equal(SignallingErrorCode.TokenNotYetValid, await google.RefusalAsync(google.Key.Sign(claims)));
        claims["iat"] = google.Time.GetUtcNow().AddSeconds(50).ToUnixTimeSeconds();
        Assert.True((await google.ValidateAsync(google.Key.Sign(claims))).IsSuccess);
    }

    [Fact]
    public async Task ClockSkew_IsConfigurable()
    {
        using var google = new GoogleHarness(o => o.Google.ClockSkew = TimeSpan.Zero);
        var token = google.Key.Sign(google.Claims());
        google.Time.Advance(TimeSpan.FromHours(1) + TimeSpan.FromSeconds(1));
        Assert.Equal(SignallingErrorCode.TokenExpired, await google.RefusalAsync(token));
    }

    [Fact]
    public async Task SignedByAnotherKeyWithTheSameKid_TokenSignatureInvalid()
    {
        using var google = new GoogleHarness();
        using var forger = new TestSigningKey(google.Key.KeyId);
        Assert.Equal(SignallingErrorCode.TokenSignatureInvalid, await google.RefusalAsync(forger.Sign(google.Claims())));
    }

    [Fact]
    public async Task TamperedPayload_TokenSignatureInvalid()
    {
        using var google = new GoogleHarness();
        var parts = google.Key.Sign(google.Claims()).Split('.');
        var claims = google.Claims();
        claims["sub"] = "someone-else";
        Assert.Equal(SignallingErrorCode.TokenSignatureInvalid, await google.RefusalAsync($"{parts[0]}.{TestJwt.Segment(claims)}.{parts[2]}"));
    }

    [Fact]
    public async Task EmptySignature_TokenSignatureInvalid()
    {
        using var google = new GoogleHarness();
        var parts = google.Key.Sign(google.Claims()).Split('.');
        Assert.Equal(SignallingErrorCode.TokenSignatureInvalid, await google.RefusalAsync($"{parts[0]}.{parts[1]}."));
    }

    [Theory]
    [InlineData("""{"alg":"none","kid":"key-1"}""")]
    [InlineData("""{"alg":"None","kid":"key-1"}""")]
    [InlineData("""{"alg":"HS256","kid":"key-1"}""")]
    [InlineData("""{"alg":"RS512","kid":"key-1"}""")]
    [InlineData("""{"alg":"ES256","kid":"key-1"}""")]
    [InlineData("""{"alg":"PS256","kid":"key-1"}""")]
    [InlineData("""{"kid":"key-1"}""")]
    public async Task AnythingButRs256_TokenUnsigned(string header)
    {
        using var google = new GoogleHarness();
        var payload = TestJwt.Segment(google.Claims());
        var headerSegment = TestJwt.Segment(header);
        Assert.Equal(SignallingErrorCode.TokenUnsigned, await google.RefusalAsync($"{headerSegment}.{payload}."));
        // A signature (here the real one over other bytes) changes nothing: the algorithm is refused first.
        var signature = google.Key.Sign(google.Claims()).Split('.')[2];
        Assert.Equal(SignallingErrorCode.TokenUnsigned, await google.RefusalAsync($"{headerSegment}.{payload}.{signature}"));
        Assert.Equal(0, google.Endpoint.Requests);
    }

    [Theory]
    [InlineData("abc")]
    [InlineData("a.b")]
    [InlineData("a.b.c.d")]
    [InlineData("a.b.c.d.e")]
    [InlineData(".e30.")]
    [InlineData("e30..")]
    [InlineData("!!!.e30.sig")]
    [InlineData("e30.@@@.sig")]
    [InlineData("e30.e30.***")]
    [InlineData("bm90IGpzb24.e30.")]
    [InlineData("e30.bm90IGpzb24.")]
    [InlineData("WzFd.e30.")]
    [InlineData("eyJhbGciOiJSUzI1NiJ9.eyJpYXQiOiJ4In0.")]
    public async Task NotAJwt_TokenMalformed(string token)
    {
        using var google = new GoogleHarness();
        Assert.Equal(SignallingErrorCode.TokenMalformed, await google.RefusalAsync(token));
        Assert.Equal(0, google.Endpoint.Requests);
    }

    [Fact]
    public async Task HugeToken_TokenMalformed()
    {
        using var google = new GoogleHarness();
        var claims = google.Claims();
        claims["padding"] = new string('x', GoogleIdTokenValidator.MaxTokenLength);
        Assert.Equal(SignallingErrorCode.TokenMalformed, await google.RefusalAsync(google.Key.Sign(claims)));
    }

    [Theory]
    [InlineData("sub")]
    [InlineData("exp")]
    [InlineData("iat")]
    public async Task MissingRequiredClaim_TokenMalformed(string claim)
    {
        using var google = new GoogleHarness();
        var claims = google.Claims();
        claims.Remove(claim);
        Assert.Equal(SignallingErrorCode.TokenMalformed, await google.RefusalAsync(google.Key.Sign(claims)));
    }

    [Fact]
    public async Task UnknownKeyId_TokenKeyUnknown()
    {
        using var google = new GoogleHarness();
        using var other = new TestSigningKey("key-that-google-never-published");
        Assert.Equal(SignallingErrorCode.TokenKeyUnknown, await google.RefusalAsync(other.Sign(google.Claims())));
    }

    [Fact]
    public async Task NoKeyId_TokenKeyUnknown()
    {
        using var google = new GoogleHarness();
        Assert.Equal(SignallingErrorCode.TokenKeyUnknown, await google.RefusalAsync(google.Key.Sign(google.Claims(), new JsonObject { ["alg"] = "RS256" })));
    }

    [Theory]
    [InlineData("false")]
    [InlineData("\"false\"")]
    [InlineData("null")]
    [InlineData(null)]
    public async Task EmailNotVerified_EmailNotVerified(string? verified)
    {
        using var google = new GoogleHarness();
        var claims = google.Claims();
        claims.Remove("email_verified");
        if (verified is not null)
        {
            claims["email_verified"] = JsonNode.Parse(verified);
        }

        Assert.Equal(SignallingErrorCode.EmailNotVerified, await google.RefusalAsync(google.Key.Sign(claims)));
    }

    [Fact]
    public async Task EmailVerifiedAsString_IsAccepted()
    {
        using var google = new GoogleHarness();
        var claims = google.Claims();
        claims["email_verified"] = "true";
        Assert.True((await google.ValidateAsync(google.Key.Sign(claims))).IsSuccess);
    }

    [Fact]
    public async Task EmailNotVerified_IsAccepted_WhenNotRequired()
    {
        using var google = new GoogleHarness(o => o.Google.RequireVerifiedEmail = false);
        var claims = google.Claims();
        claims["email_verified"] = false;
        Assert.True((await google.ValidateAsync(google.Key.Sign(claims))).IsSuccess);
    }

    [Fact]
    public async Task KeysEndpointDown_IdentityProviderUnavailable()
    {
        using var google = new GoogleHarness();
        google.Endpoint.Down();
        Assert.Equal(SignallingErrorCode.IdentityProviderUnavailable, await google.RefusalAsync(google.Key.Sign(google.Claims())));
    }

    [Theory]
    [InlineData("Ada Lovelace", "ada@example.org", 64, "Ada Lovelace")]
    [InlineData("  Ada  ", "ada@example.org", 64, "Ada")]
    [InlineData(null, "ada@example.org", 64, "ada@example.org")]
    [InlineData("   ", "ada@example.org", 64, "ada@example.org")]
    [InlineData("\u0007\u0008", "ada@example.org", 64, "ada@example.org")]
    [InlineData("Ada\u0000 Lovelace", null, 64, "Ada Lovelace")]
    [InlineData(null, null, 64, "Google user")]
    [InlineData("", "", 64, "Google user")]
    [InlineData("Augusta Ada King, Countess of Lovelace", null, 10, "Augusta Ad")]
    [InlineData("Ada Lovelace", null, 4, "Ada")]
    [InlineData(null, null, 6, "Google")]
    [InlineData("abc\U0001F600", null, 4, "abc")]
    public void DisplayName_FallsBackAndIsTrimmed(string? name, string? email, int max, string expected)
        => Assert.Equal(expected, GoogleIdTokenValidator.DisplayNameFrom(name, email, max));

    [Fact]
    public async Task DisplayName_FromTokenWithoutName_IsTheEmail_TrimmedToTheLimit()
    {
        using var google = new GoogleHarness(o => o.MaxDisplayNameLength = 5);
        var claims = google.Claims();
        claims.Remove("name");
        Assert.Equal("ada@e", (await google.ValidateAsync(google.Key.Sign(claims))).Value.DisplayName);
    }
}
