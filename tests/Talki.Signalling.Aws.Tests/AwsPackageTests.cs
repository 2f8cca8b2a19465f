using Talki.Signalling.Aws;

namespace Talki.Signalling.Aws.Tests;

public sealed class AwsPackageTests
{
    [Fact]
    public void UserAgentSuffix_NamesTheSdkAndItsVersion()
        => Assert.Matches(@"^lib/Talki\.Signalling#\d+\.\d+\.\d+$", AwsPackage.UserAgentSuffix);
}
