using Talki.Signalling.Server.Ice;

namespace Talki.Signalling.Server.Tests.Ice;

public sealed class TurnRestCredentialsTests
{
    private static readonly MemberId Member = ParseMember("AbCdEfGhIjKlMnOp");

    // Vectors computed independently of .NET:
    //   echo -n '1795867200:AbCdEfGhIjKlMnOp' | openssl dgst -sha1 -hmac north-wind-secret -binary | base64
    //   python3 -c "import hmac,hashlib,base64; print(base64.b64encode(hmac.new('clé-secrète'.encode(), b'1795867200:AbCdEfGhIjKlMnOp', hashlib.sha1).digest()).decode())"
    [Theory]
    [InlineData("north-wind-secret", "PXAPOeuxPnXzU4lu8spUXl0tAXA=")]
    [InlineData("clé-secrète", "2Wp+/JfHdaJ50cTCYQRyIEs8GPM=")]
    public void Mint_MatchesIndependentlyComputedVectors(string secret, string expectedCredential)
    {
        var expiresAt = new DateTimeOffset(2026, 11, 28, 12, 0, 0, TimeSpan.Zero); // 1795867200

        var (username, credential) = TurnRestCredentials.Mint(secret, Member, expiresAt);

        Assert.Equal("1795867200:AbCdEfGhIjKlMnOp", username);
        Assert.Equal(expectedCredential, credential);
        Assert.Equal(expectedCredential, TurnRestCredentials.ComputeCredential(secret, username));
    }

    [Fact]
    public void Username_IsUnixSecondsInUtc_WithTheSubSecondPartDropped()
    {
        var expiresAt = new DateTimeOffset(2026, 11, 28, 13, 0, 0, 999, TimeSpan.FromHours(1)); // 12:00:00.999 UTC

        Assert.Equal("1795867200:AbCdEfGhIjKlMnOp", TurnRestCredentials.CreateUsername(expiresAt, Member));
    }

    [Fact]
    public void Credential_DependsOnTheSecret_AndOnEveryPartOfTheUsername()
    {
        var expiresAt = new DateTimeOffset(2026, 11, 28, 12, 0, 0, TimeSpan.Zero);
        var reference = TurnRestCredentials.Mint("north-wind-secret", Member, expiresAt).Credential;

        Assert.NotEqual(reference, TurnRestCredentials.Mint("south-wind-secret", Member, expiresAt).Credential);
        Assert.NotEqual(reference, TurnRestCredentials.Mint("north-wind-secret", ParseMember("AbCdEfGhIjKlMnOq"), expiresAt).Credential);
        Assert.NotEqual(reference, TurnRestCredentials.Mint("north-wind-secret", Member, expiresAt.AddSeconds(1)).Credential);
    }

    [Fact]
    public void Mint_RefusesAnEmptySecretOrMember()
    {
        var expiresAt = new DateTimeOffset(2026, 11, 28, 12, 0, 0, TimeSpan.Zero);

        Assert.Throws<ArgumentException>(() => TurnRestCredentials.Mint(string.Empty, Member, expiresAt));
        Assert.Throws<ArgumentException>(() => TurnRestCredentials.Mint("north-wind-secret", default, expiresAt));
    }

    private static MemberId ParseMember(string text)
    {
        Assert.True(MemberId.TryParse(text, out var member));
        return member;
    }
}
