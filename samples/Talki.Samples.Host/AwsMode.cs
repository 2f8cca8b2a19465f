/// <summary>
/// AWS mode of the sample host: when <c>Talki:Aws:TableName</c> is configured (the CDK stack sets the
/// <c>Talki__Aws__*</c> environment variables), rooms live in DynamoDB, pushes go through API Gateway's
/// <c>@connections</c> API and <c>MapTalkiSignalling</c> maps API Gateway's callbacks. Without it, the embedded defaults run.
/// </summary>
internal static class AwsMode
{
    /// <summary>Switches the Talki registration to AWS when configured.</summary>
    /// <returns><see langword="true"/> when AWS mode is on.</returns>
    public static bool TryAdd(ITalkiSignallingBuilder talki, IConfiguration configuration)
    {
        var aws = configuration.GetSection("Talki:Aws");
        if (string.IsNullOrEmpty(aws["TableName"]))
        {
            return false;
        }

        talki.AddAwsGateway(aws);
        return true;
    }
}
