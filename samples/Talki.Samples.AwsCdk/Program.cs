using Amazon.CDK;
using Talki.Samples.AwsCdk;

// `cdk synth|deploy|destroy` runs this (cdk.json: "app": "dotnet run --project ."). Context values
// (cdk.json or `-c key=value`) configure the stack; nothing is built here.
var app = new App();

string Context(string key, string fallback) =>
    app.Node.TryGetContext(key) is string { Length: > 0 } value ? value : fallback;

var hostAssetPath = Path.GetFullPath(Context("talki:hostAssetPath", "artifacts/host"));
if (!File.Exists(Path.Combine(hostAssetPath, "bootstrap")))
{
    await Console.Error.WriteLineAsync(
        $"The sample host is not published at {hostAssetPath} (no 'bootstrap' there). Run ./publish-host.sh first, " +
        "or pass -c talki:hostAssetPath=<dir>.").ConfigureAwait(false);
    return 1;
}

var authorizerAssetPath = Path.GetFullPath(Context("talki:authorizerAssetPath", "artifacts/authorizer"));
if (!File.Exists(Path.Combine(authorizerAssetPath, "bootstrap")))
{
    await Console.Error.WriteLineAsync(
        $"The authorizer is not published at {authorizerAssetPath} (no 'bootstrap' there). Run ./publish-host.sh first, " +
        "or pass -c talki:authorizerAssetPath=<dir>.").ConfigureAwait(false);
    return 1;
}

// talki:accessLogs: true (default; also when empty, as the other keys) or false; a JSON boolean in cdk.json, a string with -c.
bool? accessLogs = app.Node.TryGetContext("talki:accessLogs") switch
{
    null or "" => true,
    bool flag => flag,
    string text when bool.TryParse(text, out var flag) => flag,
    _ => null,
};
if (accessLogs is not { } writeAccessLogs)
{
    await Console.Error.WriteLineAsync(
        $"talki:accessLogs is '{app.Node.TryGetContext("talki:accessLogs")}'; expected true or false.").ConfigureAwait(false);
    return 1;
}

_ = new TalkiStack(app, Context("talki:stackName", "TalkiSignalling"), new TalkiStackProps
{
    StageName = Context("talki:stage", "dev"),
    HostAssetPath = hostAssetPath,
    AuthorizerAssetPath = authorizerAssetPath,
    GatewaySecretParameterName = app.Node.TryGetContext("talki:gatewaySecretParameterName") as string is { Length: > 0 } name ? name : null,
    RedisConnectionParameterName = app.Node.TryGetContext("talki:redisParameterName") as string is { Length: > 0 } redis ? redis : null,
    LambdaWebAdapterLayerArn = Context("talki:lambdaWebAdapterLayerArn", TalkiStackProps.DefaultLambdaWebAdapterLayerArn),
    AccessLogs = writeAccessLogs,
    Env = new Amazon.CDK.Environment
    {
        Account = System.Environment.GetEnvironmentVariable("CDK_DEFAULT_ACCOUNT"),
        Region = System.Environment.GetEnvironmentVariable("CDK_DEFAULT_REGION"),
    },
    Description = "Talki signalling: API Gateway WebSocket API + Lambda (sample host behind the Lambda Web Adapter, the authorizer a Native AOT custom runtime) + DynamoDB",
});

app.Synth();
return 0;
