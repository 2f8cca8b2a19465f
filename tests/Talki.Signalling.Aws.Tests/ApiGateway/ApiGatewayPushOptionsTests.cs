using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Talki.Signalling.Aws.ApiGateway;

namespace Talki.Signalling.Aws.Tests.ApiGateway;

/// <summary>The options are validated at start-up.</summary>
public sealed class ApiGatewayPushOptionsTests
{
    private static readonly Uri AwsEndpoint = new("https://abc123.execute-api.eu-west-1.amazonaws.com");

    [Fact]
    public void ValidOptions_PassTheStartupValidation()
    {
        using var services = ApiGatewayTestHost.Create(AwsEndpoint);

        services.GetRequiredService<IStartupValidator>().Validate();
    }

    [Fact]
    public void DefaultsWithEndpointStageAndRegion_AreValid()
    {
        var options = new ApiGatewayPushOptions { Endpoint = AwsEndpoint, Stage = "prod", Region = "eu-west-1" };

        Assert.True(new ApiGatewayPushOptionsValidator().Validate(null, options).Succeeded);
    }

    [Fact]
    public void MissingEndpointStageAndRegion_FailAtStartup()
    {
        using var services = ApiGatewayTestHost.Create(AwsEndpoint, o =>
        {
            o.Endpoint = null;
            o.Stage = "";
            o.Region = "";
        });

        var error = Assert.Throws<OptionsValidationException>(() => services.GetRequiredService<IStartupValidator>().Validate());

        Assert.Contains(error.Failures, f => f.Contains("Endpoint", StringComparison.Ordinal));
        Assert.Contains(error.Failures, f => f.Contains("Stage", StringComparison.Ordinal));
        Assert.Contains(error.Failures, f => f.Contains("Region", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("http://abc123.execute-api.eu-west-1.amazonaws.com", "prod", "eu-west-1")]
    [InlineData("https://abc123.execute-api.eu-west-1.amazonaws.com/?x=1", "prod", "eu-west-1")]
    [InlineData("https://abc123.execute-api.eu-west-1.amazonaws.com", "prod/x", "eu-west-1")]
    [InlineData("https://abc123.execute-api.eu-west-1.amazonaws.com", "prod", "EU_WEST_1")]
    public void BadEndpointStageOrRegion_AreRejected(string endpoint, string stage, string region)
    {
        var options = new ApiGatewayPushOptions { Endpoint = new Uri(endpoint), Stage = stage, Region = region };

        Assert.True(new ApiGatewayPushOptionsValidator().Validate(null, options).Failed);
    }

    [Fact]
    public void BadRetryAndTimeouts_AreRejected()
    {
        var options = new ApiGatewayPushOptions { Endpoint = AwsEndpoint, Stage = "prod", Region = "eu-west-1" };
        options.Retry.MaxRetryAttempts = 11;
        options.Retry.BaseDelay = TimeSpan.FromSeconds(2);
        options.Retry.MaxDelay = TimeSpan.FromSeconds(1);
        options.Timeouts.Attempt = TimeSpan.FromSeconds(10);
        options.Timeouts.Total = TimeSpan.FromSeconds(5);

        var result = new ApiGatewayPushOptionsValidator().Validate(null, options);

        Assert.Equal(3, result.Failures!.Count());
    }

    [Fact]
    public void BaseAddress_EndsWithTheStage_AndKeepsACustomDomainsBasePath()
    {
        Assert.Equal(
            "https://abc123.execute-api.eu-west-1.amazonaws.com/prod/",
            ApiGatewayHttp.BaseAddress(new ApiGatewayPushOptions { Endpoint = AwsEndpoint, Stage = "prod" }).AbsoluteUri);
        Assert.Equal(
            "https://ws.example.org/chat/prod/",
            ApiGatewayHttp.BaseAddress(new ApiGatewayPushOptions { Endpoint = new Uri("https://ws.example.org/chat/"), Stage = "prod" }).AbsoluteUri);
    }
}
