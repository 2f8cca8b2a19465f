using Amazon.Runtime;
using Microsoft.Extensions.DependencyInjection;
using Talki.Signalling.Aws.ApiGateway;

namespace Talki.Signalling.Aws.Tests.ApiGateway;

/// <summary>Builds the DI container the way a host does: <c>AddTalkiSignalling().AddApiGatewayPush(…)</c> against the fake.</summary>
internal static class ApiGatewayTestHost
{
    public static ServiceProvider Create(Uri endpoint, Action<ApiGatewayPushOptions>? configure = null, TimeProvider? time = null)
    {
        var services = new ServiceCollection();
        if (time is not null)
        {
            services.AddSingleton(time);
        }

        services.AddTalkiSignalling().AddApiGatewayPush(options =>
        {
            options.Endpoint = endpoint;
            options.Stage = FakeConnectionsServer.Stage;
            options.Region = FakeConnectionsServer.Region;
            options.Credentials = new BasicAWSCredentials(FakeConnectionsServer.AccessKey, FakeConnectionsServer.SecretKey);
            options.Retry.MaxRetryAttempts = 3;
            options.Retry.BaseDelay = TimeSpan.FromMilliseconds(5);
            options.Retry.MaxDelay = TimeSpan.FromMilliseconds(20);
            options.Timeouts.Attempt = TimeSpan.FromSeconds(5);
            options.Timeouts.Total = TimeSpan.FromSeconds(15);
            configure?.Invoke(options);
        });
        return services.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true, ValidateScopes = true });
    }
}
