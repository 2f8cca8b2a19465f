using Amazon.CDK;

namespace Talki.Samples.AwsCdk;

/// <summary>What <see cref="TalkiStack"/> needs to know besides the usual stack properties.</summary>
public sealed class TalkiStackProps : StackProps
{
    /// <summary>
    /// The default Lambda Web Adapter layer (arm64, like the functions), as published by awslabs/aws-lambda-web-adapter;
    /// the partition and region come from the stack.
    /// </summary>
    public const string DefaultLambdaWebAdapterLayerArn =
        "arn:${AWS::Partition}:lambda:${AWS::Region}:753240598075:layer:LambdaAdapterLayerArm64:25";

    /// <summary>The API Gateway stage name; part of the WebSocket URL and of the <c>@connections</c> ARN. Default <c>dev</c>.</summary>
    public string StageName { get; init; } = "dev";

    /// <summary>
    /// The directory holding the sample host published for linux-arm64 (self-contained) plus the <c>bootstrap</c>
    /// script (see <c>publish-host.sh</c>). Nothing is built during synth; the directory must exist.
    /// </summary>
    public required string HostAssetPath { get; init; }

    /// <summary>
    /// The directory holding the <c>$connect</c> authorizer (<c>samples/Talki.Samples.AwsAuthorizer</c>) published for
    /// linux-arm64 with Native AOT as one executable named <c>bootstrap</c>: the function is a Lambda custom runtime, with no
    /// Web Adapter layer (see <c>publish-host.sh</c>). Nothing is built during synth; the directory must exist.
    /// </summary>
    public required string AuthorizerAssetPath { get; init; }

    /// <summary>
    /// The name of an SSM <b>String</b> parameter holding the gateway secret. When set, the template gets a
    /// parameter of type <c>AWS::SSM::Parameter::Value&lt;String&gt;</c> defaulting to that name; when null, the
    /// template gets a <c>NoEcho</c> <c>GatewaySecret</c> parameter to pass at deploy time. The secret itself is
    /// never written into the template.
    /// </summary>
    public string? GatewaySecretParameterName { get; init; }

    /// <summary>
    /// The name of an SSM <b>String</b> parameter holding a StackExchange.Redis configuration string. When set, the
    /// functions keep sessions and the data-protection key ring in that Redis (environment <c>Talki__Redis</c>, resolved
    /// by CloudFormation at deploy time) instead of the DynamoDB table. Default null: the table.
    /// </summary>
    public string? RedisConnectionParameterName { get; init; }

    /// <summary>
    /// The Lambda Web Adapter layer ARN (arm64). <c>${AWS::Partition}</c> and <c>${AWS::Region}</c> are replaced by the stack's.
    /// Default <see cref="DefaultLambdaWebAdapterLayerArn"/>.
    /// </summary>
    public string LambdaWebAdapterLayerArn { get; init; } = DefaultLambdaWebAdapterLayerArn;

    /// <summary>
    /// Whether the stage writes access logs: one JSON line per connect, message and disconnect (<see cref="TalkiStack.AccessLogFormat"/>)
    /// to a log group kept one month. Default <see langword="true"/>. API Gateway writes them through the account's API
    /// Gateway CloudWatch Logs role (API Gateway settings, <c>AWS::ApiGateway::Account</c>), an account-and-region-wide setting
    /// this stack does not own: <see langword="false"/> deploys into an account that has none, and saves the lines'
    /// ingestion (CloudWatch Logs bills every byte). The functions' own logs and metrics are unchanged.
    /// </summary>
    public bool AccessLogs { get; init; } = true;

    /// <summary>Steady-state requests per second the stage allows on every route. Default 100.</summary>
    public double ThrottlingRateLimit { get; init; } = 100;

    /// <summary>Burst the stage allows on every route. Default 200.</summary>
    public int ThrottlingBurstLimit { get; init; } = 200;
}
