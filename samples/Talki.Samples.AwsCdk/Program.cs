using Amazon.CDK;
using Talki.Samples.AwsCdk;

// `cdk synth|deploy|destroy` runs this (cdk.json: "app": "dotnet run --project ."). Context values
// (cdk.json or `-c key=value`) configure the stack; nothing is built here.
var app = new App();

string Context(string key, string fallback) =>
    app.Node.TryGetContext(key) is string { Length: > 0 } value ? value : fallback;

// The published functions (publish-host.sh): each directory must hold the function's `bootstrap`.
string? Published(string key, string fallback, string what)
{
    var path = Path.GetFullPath(Context(key, fallback));
    if (File.Exists(Path.Combine(path, "bootstrap")))
    {
        return path;
    }

    Console.Error.WriteLine($"The {what} is not published at {path} (no 'bootstrap' there). Run ./publish-host.sh first, or pass -c {key}=<dir>.");
    return null;
}

if (Published("talki:hostAssetPath", "artifacts/host", "sample host") is not { } hostAssetPath
    || Published("talki:authorizerAssetPath", "artifacts/authorizer", "authorizer") is not { } authorizerAssetPath)
{
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
