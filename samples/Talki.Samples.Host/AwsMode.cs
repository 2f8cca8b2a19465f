using Amazon.DynamoDBv2;
using Amazon.Runtime;
using Talki.Signalling.Server;

/// <summary>
/// AWS mode of the sample host: when <c>Talki:Aws:TableName</c> is configured (the CDK stack sets the
/// <c>Talki__Aws__*</c> environment variables), rooms live in DynamoDB, pushes go through API Gateway's
/// <c>@connections</c> API and API Gateway's callbacks are mapped. Without it, the embedded defaults run.
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

        var apiEndpoint = new Uri(Required(aws, "ApiEndpoint"));
        var stage = Required(aws, "Stage");
        var region = aws["Region"] is { Length: > 0 } configured ? configured : "us-east-1";

        // Local development and tests point the store at dynalite and the push at the emulator.
        if (aws["DynamoDbServiceUrl"] is { Length: > 0 } serviceUrl)
        {
            talki.Services.AddSingleton<IAmazonDynamoDB>(_ => new AmazonDynamoDBClient(
                new BasicAWSCredentials("local", "local"),
                new AmazonDynamoDBConfig { ServiceURL = serviceUrl, AuthenticationRegion = region }));
        }

        talki.Services.Configure<TalkiSignallingOptions>(options =>
        {
            // Lambda instances come and go: sealing is enforced on every read instead of on a timer.
            options.SealRoomsOnTimer = false;
            options.Hosting.PublicWebSocketUrl = aws["WebSocketUrl"] is { Length: > 0 } webSocketUrl
                ? new Uri(webSocketUrl)
                : new UriBuilder(apiEndpoint) { Scheme = apiEndpoint.Scheme == "http" ? "ws" : "wss", Path = stage }.Uri;
        });

        talki.UseDynamoDbRoomStore(options =>
            {
                options.TableName = aws["TableName"]!;
                options.CreateTableIfMissing = string.Equals(aws["CreateTable"], "true", StringComparison.OrdinalIgnoreCase);
            })
            .UseApiGatewayPush(options =>
            {
                options.Endpoint = apiEndpoint;
                options.Stage = stage;
                options.Region = region;

                // Only for local emulators; on AWS the standard credential chain (the function's role) is used.
                if (aws["AccessKeyId"] is { Length: > 0 } accessKey && aws["SecretAccessKey"] is { Length: > 0 } secretKey)
                {
                    options.Credentials = new BasicAWSCredentials(accessKey, secretKey);
                }
            })
            .AddApiGatewayCallbacks(options => options.GatewaySecret = Required(aws, "GatewaySecret"));
        return true;
    }

    private static string Required(IConfigurationSection section, string key)
        => section[key] is { Length: > 0 } value ? value : throw new InvalidOperationException($"AWS mode needs Talki:Aws:{key} (environment variable Talki__Aws__{key}).");
}
