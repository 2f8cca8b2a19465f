using System.Text;

namespace Talki.Signalling.Emulator.Tests;

/// <summary>The emulator's verifier reproduces the AWS "Signature Version 4 Test Suite", so its verdicts are real.</summary>
public sealed class SigV4VerifierTests
{
    private const string Secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    [Fact]
    public void GetVanilla_MatchesTheTestSuite()
    {
        var canonical = SigV4Verifier.CanonicalRequest(
            "GET", "/", "host:example.amazonaws.com\nx-amz-date:20150830T123600Z\n", "host;x-amz-date",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");

        var signature = SigV4Verifier.Sign(Secret, "20150830T123600Z", "20150830", "us-east-1", "service", canonical);

        Assert.Equal("5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31", signature);
    }

    [Fact]
    public void PostFormUrlEncoded_MatchesTheTestSuite()
    {
        var body = Encoding.UTF8.GetBytes("Param1=value1");
        var request = new SignedRequest("POST", "/", new Dictionary<string, string>
        {
            ["content-type"] = "application/x-www-form-urlencoded",
            ["host"] = "example.amazonaws.com",
            ["x-amz-date"] = "20150830T123600Z",
            ["authorization"] = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
        }, body);
        var verifier = new SigV4Verifier(new Dictionary<string, string> { ["AKIDEXAMPLE"] = Secret }, "us-east-1", "service") { MaxSkew = null };

        Assert.Null(verifier.Verify(request));
        Assert.Equal("signature mismatch", verifier.Verify(request with { Body = Encoding.UTF8.GetBytes("Param1=value2") }));
        Assert.Equal("signature mismatch", verifier.Verify(request with { RawTarget = "/other" }));
    }

    [Fact]
    public void ConnectionPath_IsEncodedOnceMore_InTheCanonicalRequest()
    {
        var canonical = SigV4Verifier.CanonicalRequest("POST", "/prod/@connections/R0oXAdfD0kwCH6w%3D", "host:h\n", "host", "x");

        Assert.StartsWith("POST\n/prod/%40connections/R0oXAdfD0kwCH6w%253D\n\n", canonical, StringComparison.Ordinal);
    }
}
