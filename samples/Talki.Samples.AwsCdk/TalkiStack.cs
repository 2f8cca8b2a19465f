using Amazon.CDK;
using Amazon.CDK.AWS.Apigatewayv2;
using Amazon.CDK.AWS.DynamoDB;
using Amazon.CDK.AWS.IAM;
using Amazon.CDK.AWS.Lambda;
using Amazon.CDK.AWS.Logs;
using Amazon.CDK.AWS.SSM;
using Constructs;
using CfnParameter = Amazon.CDK.CfnParameter;
using CfnParameterProps = Amazon.CDK.CfnParameterProps;
using Function = Amazon.CDK.AWS.Lambda.Function;
using FunctionProps = Amazon.CDK.AWS.Lambda.FunctionProps;

namespace Talki.Samples.AwsCdk;

/// <summary>
/// Talki signalling on AWS: an API Gateway WebSocket API whose <c>$connect</c> is guarded by a REQUEST
/// authorizer (the ticket in the query string) and whose <c>$default</c>/<c>$disconnect</c> routes call the
/// backend over HTTP (function URL), two Lambda functions running the sample host behind the Lambda Web
/// Adapter, and the DynamoDB table of the room store.
/// </summary>
public sealed class TalkiStack : Stack
{
    /// <summary>Header carrying the API Gateway connection id to the backend.</summary>
    public const string ConnectionIdHeader = "x-talki-connection-id";

    /// <summary>Header carrying the shared secret that proves a call came through the WebSocket API.</summary>
    public const string GatewaySecretHeader = "x-talki-gateway-secret";

    /// <summary>Backend path for <c>$default</c> (messages).</summary>
    public const string DefaultRoutePath = "talki/aws/default";

    /// <summary>Backend path for <c>$disconnect</c>.</summary>
    public const string DisconnectRoutePath = "talki/aws/disconnect";

    /// <summary>
    /// The authorizer's context keys and the integration request headers API Gateway maps them into
    /// (<c>integration.request.header.{header} = context.authorizer.{key}</c>; the values arrive stringified).
    /// </summary>
    public static readonly IReadOnlyDictionary<string, string> AuthorizerContextHeaders = new Dictionary<string, string>
    {
        ["room"] = "x-talki-room",
        ["member"] = "x-talki-member",
        ["epoch"] = "x-talki-epoch",
        ["sealsAt"] = "x-talki-seals-at",
        ["resume"] = "x-talki-resume",
    };

    /// <summary>The port the host listens on inside Lambda; the adapter forwards to it.</summary>
    public const string HostPort = "8080";

    private static readonly string[] ManageConnectionsVerbs = ["POST", "GET", "DELETE"];

    /// <summary>
    /// The DynamoDB actions <c>DynamoDbRoomStore</c> calls on AWS (table creation is off there): nothing else, in
    /// particular no <c>Scan</c> and no batch writes.
    /// </summary>
    public static readonly IReadOnlyList<string> RoomStoreActions =
        ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:Query"];

    public TalkiStack(Construct scope, string id, TalkiStackProps props)
        : base(scope, id, props)
    {
        ArgumentNullException.ThrowIfNull(props);
        if (props.LambdaWebAdapterLayerArn.Contains("X86", StringComparison.OrdinalIgnoreCase))
        {
            throw new ArgumentException("The functions run on arm64: use the adapter's arm64 layer (LambdaAdapterLayerArm64).", nameof(props));
        }

        StageName = props.StageName;

        // ---- the gateway secret: a template parameter, never a literal --------------------------------------
        string gatewaySecret;
        if (props.GatewaySecretParameterName is { Length: > 0 } ssmName)
        {
            // Adds a parameter of type AWS::SSM::Parameter::Value<String> whose default is the SSM name;
            // CloudFormation resolves it at deploy time. (SecureString cannot be resolved into Lambda
            // environment variables or API Gateway integration parameters.)
            gatewaySecret = StringParameter.ValueForStringParameter(this, ssmName);
        }
        else
        {
            var parameter = new CfnParameter(this, "GatewaySecret", new CfnParameterProps
            {
                Type = "String",
                NoEcho = true,
                MinLength = 32,
                // Single quotes would break the static integration parameter value ('…').
                AllowedPattern = "^[A-Za-z0-9_\\-]+$",
                Description = "Shared secret API Gateway sends to the backend in the x-talki-gateway-secret header (32+ chars of [A-Za-z0-9_-]).",
            });
            gatewaySecret = parameter.ValueAsString;
        }

        // ---- DynamoDB: the room store's single table ----------------------------------------------------------
        Table = new Table(this, "RoomTable", new TableProps
        {
            PartitionKey = new Amazon.CDK.AWS.DynamoDB.Attribute { Name = "pk", Type = AttributeType.STRING },
            SortKey = new Amazon.CDK.AWS.DynamoDB.Attribute { Name = "sk", Type = AttributeType.STRING },
            BillingMode = BillingMode.PAY_PER_REQUEST,
            TimeToLiveAttribute = "expiresAt",
            RemovalPolicy = RemovalPolicy.DESTROY, // development stack: `cdk destroy` removes the data too
        });

        // ---- the WebSocket API and its stage ------------------------------------------------------------------
        Api = new CfnApi(this, "WebSocketApi", new CfnApiProps
        {
            Name = $"{id}-signalling",
            ProtocolType = "WEBSOCKET",
            RouteSelectionExpression = "$request.body.type",
            Description = "Talki signalling WebSocket API",
        });

        // Access logs (unless props.AccessLogs is false): one JSON line per connect, message and disconnect, including the
        // authorizer's and the integration's outcome. (API Gateway needs the account-level CloudWatch Logs role to write
        // them; see README.)
        AccessLogs = props.AccessLogs
            ? new LogGroup(this, "StageAccessLogs", new LogGroupProps
            {
                Retention = RetentionDays.ONE_MONTH,
                RemovalPolicy = RemovalPolicy.DESTROY,
            })
            : null;
        var stage = new CfnStage(this, "Stage", new CfnStageProps
        {
            ApiId = Api.Ref,
            StageName = props.StageName,
            AutoDeploy = true,
            Description = "Talki signalling stage (auto-deployed)",
            AccessLogSettings = AccessLogs is null ? null : new CfnStage.AccessLogSettingsProperty
            {
                DestinationArn = AccessLogs.LogGroupArn,
                Format = AccessLogFormat,
            },
            // Every route ($connect, $default, $disconnect) is throttled below the account's 10,000 rps / 5,000 burst.
            DefaultRouteSettings = new CfnStage.RouteSettingsProperty
            {
                ThrottlingRateLimit = props.ThrottlingRateLimit,
                ThrottlingBurstLimit = props.ThrottlingBurstLimit,
            },
        });

        var apiEndpoint = $"https://{Api.Ref}.execute-api.{Aws.REGION}.{Aws.URL_SUFFIX}";

        // ---- the two functions: the sample host behind the Lambda Web Adapter, and the authorizer on its own ---
        var adapterLayer = LayerVersion.FromLayerVersionArn(this, "LambdaWebAdapter",
            Fn.Sub(props.LambdaWebAdapterLayerArn)); // ${AWS::Partition} and ${AWS::Region} come from the stack
        var hostCode = Code.FromAsset(props.HostAssetPath);

        var environment = new Dictionary<string, string>
        {
            ["AWS_LWA_PORT"] = HostPort,
            ["AWS_LWA_READINESS_CHECK_PATH"] = "/",
            ["ASPNETCORE_URLS"] = $"http://127.0.0.1:{HostPort}",
            ["Talki__Aws__TableName"] = Table.TableName,
            ["Talki__Aws__ApiEndpoint"] = apiEndpoint,
            ["Talki__Aws__Stage"] = props.StageName,
            ["Talki__Aws__Region"] = Aws.REGION,
            ["Talki__Aws__GatewaySecret"] = gatewaySecret,
            // CloudWatch Logs bills every byte ingested: the host writes warnings and errors only (the stage's access logs
            // keep one line per connect, message and disconnect).
            ["Logging__LogLevel__Default"] = "Warning",
        };

        if (props.RedisConnectionParameterName is { Length: > 0 } redisParameter)
        {
            // Sessions and the key ring in Redis instead of the table: the configuration string is an SSM String
            // parameter that CloudFormation resolves at deploy time, never a literal in the template. (The functions
            // must then reach the Redis endpoint: put them in its VPC, which this sample stack does not do.)
            environment["Talki__Redis"] = StringParameter.ValueForStringParameter(this, redisParameter);
        }

        var backendEnvironment = new Dictionary<string, string>(environment)
        {
            // The backend maps $default/$disconnect and the HTTP API, never the authorizer's /events: its function
            // URL is public, and /events would let anyone consume a ticket and bind it to any connection id.
            ["Talki__Aws__Role"] = "backend",
        };
        Backend = new Function(this, "Backend", HostFunction("backend: $default/$disconnect over HTTP, HTTP API",
            hostCode, adapterLayer, backendEnvironment, Duration.Seconds(29), BackendMemorySizeMb));

        // The authorizer is a Lambda custom runtime of its own (samples/Talki.Samples.AwsAuthorizer, Native AOT): its
        // `bootstrap` takes the events from the Lambda runtime API itself, so the function has no adapter layer, no web
        // server and no readiness check; a cold start (which every connect after an idle spell waits for) builds the
        // engine and the DynamoDB client only. It has no URL: only API Gateway may invoke it.
        var authorizerEnvironment = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, value) in environment)
        {
            if (!name.StartsWith("AWS_LWA_", StringComparison.Ordinal) && name != "ASPNETCORE_URLS")
            {
                authorizerEnvironment[name] = value;
            }
        }

        authorizerEnvironment["Talki__Aws__Role"] = "authorizer";
        AuthorizerFunction = new Function(this, "Authorizer", HostFunction("authorizer: $connect ticket check (custom runtime)",
            Code.FromAsset(props.AuthorizerAssetPath), adapter: null, authorizerEnvironment, Duration.Seconds(10), AuthorizerMemorySizeMb));

        // Public function URL: API Gateway's HTTP integration cannot sign requests, so the URL is AuthType NONE
        // and the host rejects every /talki/aws/* call without the right x-talki-gateway-secret header.
        BackendUrl = Backend.AddFunctionUrl(new FunctionUrlOptions { AuthType = FunctionUrlAuthType.NONE });

        // CDK 2.160 grants the public principal lambda:InvokeFunctionUrl only. Since October 2025 a new function URL
        // with auth NONE also needs lambda:InvokeFunction for that principal, restricted to calls through the URL
        // (condition lambda:InvokedViaFunctionUrl = true) — Lambda developer guide, "Control access to Lambda
        // function URLs" (https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html). CfnPermission in 2.160 has
        // no InvokedViaFunctionUrl property yet, hence the override (CloudFormation: AWS::Lambda::Permission
        // InvokedViaFunctionUrl).
        var invokeViaUrl = new Amazon.CDK.AWS.Lambda.CfnPermission(this, "BackendInvokeViaFunctionUrl", new CfnPermissionProps
        {
            FunctionName = Backend.FunctionArn,
            Action = "lambda:InvokeFunction",
            Principal = "*",
        });
        invokeViaUrl.AddPropertyOverride("InvokedViaFunctionUrl", true);

        // ---- least privilege --------------------------------------------------------------------------------
        // DynamoDB: the store's actions on the table only (no index exists), for both functions.
        foreach (var function in new[] { Backend, AuthorizerFunction })
        {
            function.AddToRolePolicy(new PolicyStatement(new PolicyStatementProps
            {
                Effect = Effect.ALLOW,
                Actions = [.. RoomStoreActions],
                Resources = [Table.TableArn],
            }));
        }

        // @connections: the backend only (pushes, GetConnection, DeleteConnection), on this API and stage.
        Backend.AddToRolePolicy(new PolicyStatement(new PolicyStatementProps
        {
            Effect = Effect.ALLOW,
            Actions = ["execute-api:ManageConnections"],
            Resources = ManageConnectionsVerbs
                .Select(verb => $"arn:{Aws.PARTITION}:execute-api:{Aws.REGION}:{Aws.ACCOUNT_ID}:{Api.Ref}/{props.StageName}/{verb}/@connections/*")
                .ToArray(),
        }));

        // ---- $connect: REQUEST authorizer on the ticket -------------------------------------------------------
        var authorizer = new CfnAuthorizer(this, "TicketAuthorizer", new CfnAuthorizerProps
        {
            ApiId = Api.Ref,
            Name = "ticket",
            AuthorizerType = "REQUEST",
            IdentitySource = ["route.request.querystring.ticket"],
            AuthorizerUri = $"arn:{Aws.PARTITION}:apigateway:{Aws.REGION}:lambda:path/2015-03-31/functions/{AuthorizerFunction.FunctionArn}/invocations",
        });
        AuthorizerFunction.AddPermission("ApiGatewayInvokeAuthorizer", new Permission
        {
            Principal = new ServicePrincipal("apigateway.amazonaws.com"),
            Action = "lambda:InvokeFunction",
            SourceArn = $"arn:{Aws.PARTITION}:execute-api:{Aws.REGION}:{Aws.ACCOUNT_ID}:{Api.Ref}/authorizers/{authorizer.Ref}",
        });

        // The authorizer consumes the ticket and returns the grant as its context; $connect itself only needs
        // an integration that answers 200, so it is a MOCK.
        var connectIntegration = new CfnIntegration(this, "ConnectIntegration", new CfnIntegrationProps
        {
            ApiId = Api.Ref,
            IntegrationType = "MOCK",
            RequestTemplates = new Dictionary<string, string> { ["$default"] = "{\"statusCode\":200}" },
            TemplateSelectionExpression = "\\$default",
        });
        var connectRoute = new CfnRoute(this, "ConnectRoute", new CfnRouteProps
        {
            ApiId = Api.Ref,
            RouteKey = "$connect",
            AuthorizationType = "CUSTOM",
            AuthorizerId = authorizer.Ref,
            Target = $"integrations/{connectIntegration.Ref}",
        });

        // ---- $default and $disconnect: HTTP_PROXY to the backend's function URL --------------------------------
        var requestParameters = new Dictionary<string, string>
        {
            [$"integration.request.header.{ConnectionIdHeader}"] = "context.connectionId",
            [$"integration.request.header.{GatewaySecretHeader}"] = $"'{gatewaySecret}'",
            // API Gateway forwards the handshake's Sec-WebSocket-* headers; ASP.NET Core would take the call for
            // a WebSocket upgrade and answer 400. Overwrite the version with a value no server upgrades on.
            ["integration.request.header.Sec-WebSocket-Version"] = "'0'",
        };
        foreach (var (key, header) in AuthorizerContextHeaders)
        {
            // The authorizer only consumed the ticket; the backend binds the connection from these on its first frame.
            requestParameters[$"integration.request.header.{header}"] = $"context.authorizer.{key}";
        }

        var defaultRoute = HttpRoute("Default", "$default", DefaultRoutePath, requestParameters);
        var disconnectRoute = HttpRoute("Disconnect", "$disconnect", DisconnectRoutePath, requestParameters);

        // Auto-deploy picks up route changes, but the first deployment should see all routes.
        stage.AddDependency(connectRoute);
        stage.AddDependency(defaultRoute);
        stage.AddDependency(disconnectRoute);

        // ---- outputs -------------------------------------------------------------------------------------------
        WebSocketUrl = $"wss://{Api.Ref}.execute-api.{Aws.REGION}.{Aws.URL_SUFFIX}/{props.StageName}";
        _ = new CfnOutput(this, "WebSocketUrlOutput", new CfnOutputProps
        {
            Key = "WebSocketUrl",
            Value = WebSocketUrl,
            Description = "Client WebSocket URL (append ?v=1&ticket=…)",
        });
        _ = new CfnOutput(this, "FunctionUrlOutput", new CfnOutputProps
        {
            Key = "FunctionUrl",
            Value = BackendUrl.Url,
            Description = "Backend function URL (HTTP API: sign-in, rooms, tickets)",
        });
        _ = new CfnOutput(this, "TableNameOutput", new CfnOutputProps
        {
            Key = "TableName",
            Value = Table.TableName,
        });
    }

    /// <summary>
    /// The stage's access log format (JSON, one line per event). CloudWatch Logs bills every byte of every line, keys
    /// included: no field repeats another (the event type is the route key's: <c>$connect</c>, <c>$default</c>,
    /// <c>$disconnect</c>), and the keys are short: <c>id</c> (request), <c>conn</c> (connection), <c>route</c>,
    /// <c>status</c>, <c>time</c> (request time, epoch ms), <c>ip</c> (source), <c>err</c> (the gateway's error message),
    /// <c>authErr</c>, <c>intErr</c>, <c>intStatus</c> and <c>intMs</c> (the integration's error, status and latency).
    /// </summary>
    public const string AccessLogFormat =
        "{\"id\":\"$context.requestId\",\"conn\":\"$context.connectionId\"," +
        "\"route\":\"$context.routeKey\",\"status\":\"$context.status\"," +
        "\"time\":\"$context.requestTimeEpoch\",\"ip\":\"$context.identity.sourceIp\"," +
        "\"err\":\"$context.error.message\",\"authErr\":\"$context.authorizer.error\"," +
        "\"intErr\":\"$context.integration.error\",\"intStatus\":\"$context.integration.status\"," +
        "\"intMs\":\"$context.integration.latency\"}";

    /// <summary>The stage's access log group; <see langword="null"/> when <see cref="TalkiStackProps.AccessLogs"/> is false.</summary>
    public LogGroup? AccessLogs { get; }

    /// <summary>The stage name.</summary>
    public string StageName { get; }

    /// <summary>The room store's table.</summary>
    public Table Table { get; }

    /// <summary>The WebSocket API.</summary>
    public CfnApi Api { get; }

    /// <summary>The backend function (HTTP API and the $default/$disconnect callbacks).</summary>
    public Function Backend { get; }

    /// <summary>The $connect authorizer function.</summary>
    public Function AuthorizerFunction { get; }

    /// <summary>The backend's function URL.</summary>
    public FunctionUrl BackendUrl { get; }

    /// <summary>The client WebSocket URL (a token until deployment).</summary>
    public string WebSocketUrl { get; }

    /// <summary>
    /// The backend's memory size. Lambda gives a function CPU in proportion to its memory (1,769 MB is one vCPU) and bills
    /// its duration by it. Measured with the Native AOT host held to each size's CPU share (benchmarks/lambda-memory.sh,
    /// docs/performance.md): the 4-member call's handlers take about as long at 512 MB as at 1024 (p95 37–53 ms against
    /// 38–53), so the backend's duration costs half; at 256 MB they take longer (p95 68–88 ms) and cost no less.
    /// </summary>
    public const int BackendMemorySizeMb = 512;

    /// <summary>
    /// The authorizer's memory size. It runs once per connect, so its duration is a small part of a call's bill, but its
    /// first answer after a cold start waits on the CPU: 31 ms at 1024 MB, 72 at 512, 153 at 256 (benchmarks/cold-start.py
    /// --memory, after an init at the init burst's full CPU). A connect waits for it.
    /// </summary>
    public const int AuthorizerMemorySizeMb = 1024;

    private static FunctionProps HostFunction(string description, Code code, ILayerVersion? adapter,
        Dictionary<string, string> environment, Duration timeout, int memorySizeMb) => new()
    {
        Description = $"Talki sample - {description}",
        // .NET 10 has no managed Lambda runtime: publish-host.sh publishes for linux-arm64 (Graviton: cheaper per GB-s) as
        // Native AOT executables (--jit: self-contained JIT) on the OS-only runtime. The backend's `bootstrap` script
        // starts the sample host, and the adapter layer (a Lambda extension) turns invocations into HTTP requests to
        // 127.0.0.1:8080; the authorizer's `bootstrap` is its executable, the function's runtime itself.
        Runtime = Runtime.PROVIDED_AL2023,
        Architecture = Architecture.ARM_64,
        Handler = "bootstrap",
        Code = code,
        Layers = adapter is null ? [] : [adapter],
        MemorySize = memorySizeMb,
        Timeout = timeout,
        Environment = environment,
        // Lambda's own START/END/REPORT lines are INFO-level system logs: at WARN they are not written, which is a third
        // of a call's CloudWatch Logs bill (duration, errors and throttles stay in the function's CloudWatch metrics).
        // Log-level filtering needs the JSON log format; the host's own lines (plain text, Warning and above by the
        // environment above) are read as INFO application logs, the default application level, so none is filtered.
        // https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs-log-level.html
        LoggingFormat = LoggingFormat.JSON,
        SystemLogLevelV2 = SystemLogLevel.WARN,
    };

    private CfnRoute HttpRoute(string name, string routeKey, string path, Dictionary<string, string> requestParameters)
    {
        var integration = new CfnIntegration(this, $"{name}Integration", new CfnIntegrationProps
        {
            ApiId = Api.Ref,
            IntegrationType = "HTTP_PROXY",
            IntegrationMethod = "POST",
            IntegrationUri = BackendUrl.Url + path, // the function URL ends with '/'
            RequestParameters = requestParameters,
            TimeoutInMillis = 29_000,
        });
        return new CfnRoute(this, $"{name}Route", new CfnRouteProps
        {
            ApiId = Api.Ref,
            RouteKey = routeKey,
            AuthorizationType = "NONE",
            Target = $"integrations/{integration.Ref}",
        });
    }
}
