using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Talki.Signalling.Emulator.Deployment;

/// <summary>A Lambda function of the deployment: its identity, role policy, environment and resource-based policy.</summary>
public sealed class EmulatedFunction
{
    internal EmulatedFunction(string key, string logicalId, string name, string arn, string roleName, IamPolicy policy,
        IReadOnlyDictionary<string, string> environment, TimeSpan timeout, IReadOnlyList<LambdaPermissionStatement> permissions, int memorySizeMb = DefaultMemorySizeMb,
        bool usesWebAdapter = true)
    {
        UsesWebAdapter = usesWebAdapter;
        Key = key;
        LogicalId = logicalId;
        Name = name;
        Arn = arn;
        RoleName = roleName;
        Policy = policy;
        Environment = environment;
        Timeout = timeout;
        Permissions = permissions;
        MemorySizeMb = memorySizeMb;
    }

    /// <summary>
    /// CloudFormation's default <c>MemorySize</c> of an <c>AWS::Lambda::Function</c>: 128 MB
    /// (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-lambda-function.html).
    /// </summary>
    public const int DefaultMemorySizeMb = 128;

    /// <summary>Gets the CDK construct id (the logical id without CDK's 8-character hash), e.g. <c>Backend</c>.</summary>
    public string Key { get; }

    /// <summary>Gets the logical id in the template.</summary>
    public string LogicalId { get; }

    /// <summary>Gets the function name.</summary>
    public string Name { get; }

    /// <summary>Gets the function ARN.</summary>
    public string Arn { get; }

    /// <summary>Gets the execution role's name.</summary>
    public string RoleName { get; }

    /// <summary>Gets the identity-based policy of the execution role (every <c>AWS::IAM::Policy</c> attached to it).</summary>
    public IamPolicy Policy { get; }

    /// <summary>Gets the environment variables, resolved.</summary>
    public IReadOnlyDictionary<string, string> Environment { get; }

    /// <summary>Gets the function timeout.</summary>
    public TimeSpan Timeout { get; }

    /// <summary>
    /// Gets the function's memory size in MB (the template's <c>MemorySize</c>). Lambda gives a function CPU in proportion to
    /// it (<see cref="LambdaCpuShare"/>) and bills its duration by it.
    /// </summary>
    public int MemorySizeMb { get; }

    /// <summary>
    /// Gets whether the Lambda Web Adapter takes the function's invocations: one of its <c>Layers</c> is the adapter's
    /// (<c>LambdaAdapterLayer…</c>, awslabs/aws-lambda-web-adapter), which runs as an extension and forwards each event to the
    /// function's web server (HTTP requests as they are, other events POSTed to <see cref="PassThroughPath"/>). Without it
    /// the function's <c>bootstrap</c> is its runtime and takes the events from the Lambda runtime API itself
    /// (<see cref="LambdaRuntimeApi"/>; https://docs.aws.amazon.com/lambda/latest/dg/runtimes-custom.html).
    /// </summary>
    public bool UsesWebAdapter { get; }

    /// <summary>Gets the resource-based policy: the <c>AWS::Lambda::Permission</c> resources naming this function.</summary>
    public IReadOnlyList<LambdaPermissionStatement> Permissions { get; }

    /// <summary>
    /// Gets the Lambda Web Adapter's pass-through path, where non-HTTP events (the authorizer's) are POSTed:
    /// <c>AWS_LWA_PASS_THROUGH_PATH</c>, default <c>/events</c> (aws-facts.md §8).
    /// </summary>
    public string PassThroughPath => Environment.TryGetValue("AWS_LWA_PASS_THROUGH_PATH", out var path) && path.Length > 0 ? path : "/events";

    /// <summary>The principal ARN IAM names in a denial: the role session Lambda assumes for the function.</summary>
    public string AssumedRoleArn(string partition, string accountId) => $"arn:{partition}:sts::{accountId}:assumed-role/{RoleName}/{Name}";
}

/// <summary>One <c>AWS::Lambda::Permission</c>, resolved.</summary>
public sealed record LambdaPermissionStatement(string LogicalId, string Action, string Principal, string? SourceArn, string? FunctionUrlAuthType, bool? InvokedViaFunctionUrl);

/// <summary>A DynamoDB table of the deployment.</summary>
/// <param name="LogicalId">The logical id.</param>
/// <param name="Name">The table name.</param>
/// <param name="Arn">The table ARN.</param>
/// <param name="CreateTableRequest">The <c>CreateTable</c> request CloudFormation would make (key schema, attributes, billing, indexes).</param>
public sealed record EmulatedTable(string LogicalId, string Name, string Arn, JsonObject CreateTableRequest);

/// <summary>The <c>$connect</c> REQUEST authorizer.</summary>
/// <param name="Id">The authorizer id.</param>
/// <param name="Function">The Lambda function it invokes.</param>
/// <param name="QueryIdentitySources">The <c>route.request.querystring.X</c> identity sources.</param>
/// <param name="HeaderIdentitySources">The <c>route.request.header.X</c> identity sources.</param>
public sealed record EmulatedAuthorizer(string Id, EmulatedFunction Function, IReadOnlyList<string> QueryIdentitySources, IReadOnlyList<string> HeaderIdentitySources);

/// <summary>An HTTP_PROXY integration of a route.</summary>
/// <param name="RouteKey"><c>$default</c>, <c>$disconnect</c>, …</param>
/// <param name="Method">The integration method.</param>
/// <param name="Uri">The integration URI, resolved (the emulator's function URL when the template points at one).</param>
/// <param name="RequestParameters">Integration header name → source expression (<c>context.connectionId</c>, <c>'static'</c>, …).</param>
/// <param name="Timeout">The integration timeout.</param>
public sealed record EmulatedIntegration(string RouteKey, string Method, Uri Uri, IReadOnlyList<KeyValuePair<string, string>> RequestParameters, TimeSpan Timeout);

/// <summary>A function URL.</summary>
/// <param name="LogicalId">The <c>AWS::Lambda::Url</c> logical id.</param>
/// <param name="Function">Its function.</param>
/// <param name="AuthType"><c>NONE</c> or <c>AWS_IAM</c>.</param>
public sealed record EmulatedFunctionUrl(string LogicalId, EmulatedFunction Function, string AuthType);

/// <summary>
/// What the emulator runs: from a synthesized CloudFormation template (functions, their role policies and
/// permissions, the WebSocket API's authorizer, routes and integrations, tables), or the legacy single-backend set-up.
/// </summary>
public sealed partial class EmulatedDeployment
{
    private EmulatedDeployment(string stage, bool enforcesIam, IReadOnlyList<EmulatedFunction> functions, IReadOnlyList<EmulatedTable> tables,
        EmulatedAuthorizer? authorizer, IReadOnlyDictionary<string, EmulatedIntegration> routes, IReadOnlyList<EmulatedFunctionUrl> functionUrls,
        string? accessLogFormat = null)
    {
        Stage = stage;
        AccessLogFormat = accessLogFormat;
        EnforcesIam = enforcesIam;
        Functions = functions;
        Tables = tables;
        Authorizer = authorizer;
        Routes = routes;
        FunctionUrls = functionUrls;
    }

    /// <summary>Gets the stage.</summary>
    public string Stage { get; }

    /// <summary>
    /// Gets the stage's access-log format (<c>AccessLogSettings.Format</c>), or <see langword="null"/> when the stage
    /// writes no access logs.
    /// </summary>
    public string? AccessLogFormat { get; }

    /// <summary>Gets whether IAM and resource-based policies are enforced (template mode).</summary>
    public bool EnforcesIam { get; }

    /// <summary>Gets the functions.</summary>
    public IReadOnlyList<EmulatedFunction> Functions { get; }

    /// <summary>Gets the tables.</summary>
    public IReadOnlyList<EmulatedTable> Tables { get; }

    /// <summary>Gets the <c>$connect</c> authorizer, if any.</summary>
    public EmulatedAuthorizer? Authorizer { get; }

    /// <summary>Gets the HTTP integrations by route key.</summary>
    public IReadOnlyDictionary<string, EmulatedIntegration> Routes { get; }

    /// <summary>Gets the function URLs.</summary>
    public IReadOnlyList<EmulatedFunctionUrl> FunctionUrls { get; }

    /// <summary>Gets a function by its construct id (<c>Backend</c>), logical id, or name.</summary>
    public EmulatedFunction Function(string key)
        => Functions.FirstOrDefault(f => string.Equals(f.Key, key, StringComparison.Ordinal) || string.Equals(f.LogicalId, key, StringComparison.Ordinal) || string.Equals(f.Name, key, StringComparison.Ordinal))
           ?? throw new KeyNotFoundException($"The deployment has no function '{key}' (it has {string.Join(", ", Functions.Select(f => f.Key))}).");

    /// <summary>The construct id of a CDK logical id: without the 8-character hash CDK appends (<c>BackendEC8447F5</c> → <c>Backend</c>).</summary>
    public static string ConstructKey(string logicalId)
        => CdkHash().Match(logicalId) is { Success: true } match ? match.Groups[1].Value : logicalId;

    /// <summary>The legacy set-up: one backend plays every function; nothing is enforced; the integration headers are fixed.</summary>
    internal static EmulatedDeployment Legacy(EmulatorOptions options)
    {
        var backend = new EmulatedFunction(
            "Backend", "Backend", "backend", $"arn:aws:lambda:{options.Region}:{options.AccountId}:function:backend", "backend-role", IamPolicy.Empty,
            new Dictionary<string, string>(StringComparer.Ordinal) { ["AWS_LWA_PASS_THROUGH_PATH"] = options.AuthorizerPath },
            options.IntegrationTimeout, []);
        IReadOnlyList<KeyValuePair<string, string>> parameters =
        [
            new(options.ConnectionIdHeader, "context.connectionId"),
            new(options.GatewaySecretHeader, $"'{options.GatewaySecret}'"),
            new("Sec-WebSocket-Version", "'0'"), // the request-parameter mapping workaround (aws-facts.md §3)
        ];
        var routes = new Dictionary<string, EmulatedIntegration>(StringComparer.Ordinal)
        {
            ["$default"] = new("$default", "POST", new Uri(options.Backend!, options.DefaultRoutePath), parameters, options.IntegrationTimeout),
            ["$disconnect"] = new("$disconnect", "POST", new Uri(options.Backend!, options.DisconnectRoutePath), parameters, options.IntegrationTimeout),
        };
        var authorizer = new EmulatedAuthorizer("legacy", backend, [options.IdentitySourceQueryParameter], []);
        return new EmulatedDeployment(options.Stage, enforcesIam: false, [backend], [], authorizer, routes, []);
    }

    /// <summary>Builds the deployment from a synthesized template.</summary>
    internal static EmulatedDeployment FromTemplate(JsonObject template, TemplateContext context, Func<string, string> functionUrlOfUrlResource)
    {
        var resolver = new TemplateResolver(template, context, functionUrlOfUrlResource);

        // Role → statements of every AWS::IAM::Policy attached to it.
        var roleStatements = new Dictionary<string, List<IamStatement>>(StringComparer.Ordinal);
        foreach (var (_, properties) in resolver.OfType("AWS::IAM::Policy"))
        {
            var statements = IamPolicy.ReadStatements(resolver.Resolve(properties["PolicyDocument"])).ToList();
            foreach (var role in properties["Roles"] as JsonArray ?? [])
            {
                var roleName = resolver.ResolveString(role);
                if (!roleStatements.TryGetValue(roleName, out var list))
                {
                    roleStatements[roleName] = list = [];
                }

                list.AddRange(statements);
            }
        }

        foreach (var (logicalId, properties) in resolver.OfType("AWS::IAM::Role"))
        {
            // Inline policies of the role itself.
            foreach (var policy in properties["Policies"] as JsonArray ?? [])
            {
                var roleName = resolver.PhysicalName(logicalId);
                if (!roleStatements.TryGetValue(roleName, out var list))
                {
                    roleStatements[roleName] = list = [];
                }

                list.AddRange(IamPolicy.ReadStatements(resolver.Resolve(policy?["PolicyDocument"])));
            }
        }

        var permissions = resolver.OfType("AWS::Lambda::Permission")
            .Select(p => (FunctionArn: FunctionArnOf(resolver, p.Properties["FunctionName"]), Permission: new LambdaPermissionStatement(
                p.LogicalId,
                resolver.ResolveString(p.Properties["Action"]),
                resolver.ResolveString(p.Properties["Principal"]),
                p.Properties["SourceArn"] is { } source ? resolver.ResolveString(source) : null,
                p.Properties["FunctionUrlAuthType"] is { } authType ? resolver.ResolveString(authType) : null,
                p.Properties["InvokedViaFunctionUrl"] is { } via ? string.Equals(resolver.ResolveString(via), "true", StringComparison.OrdinalIgnoreCase) : null)))
            .ToList();

        var functions = new List<EmulatedFunction>();
        foreach (var (logicalId, properties) in resolver.OfType("AWS::Lambda::Function"))
        {
            var name = resolver.PhysicalName(logicalId);
            var arn = $"arn:{context.Partition}:lambda:{context.Region}:{context.AccountId}:function:{name}";
            var roleArn = resolver.ResolveString(properties["Role"]);
            var roleName = roleArn[(roleArn.LastIndexOf('/') + 1)..];
            var environment = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var (key, value) in properties["Environment"]?["Variables"] as JsonObject ?? [])
            {
                environment[key] = resolver.ResolveString(value);
            }

            var timeout = properties["Timeout"] is { } seconds ? TimeSpan.FromSeconds(double.Parse(resolver.ResolveString(seconds), System.Globalization.CultureInfo.InvariantCulture)) : TimeSpan.FromSeconds(3);
            var memory = properties["MemorySize"] is { } size ? int.Parse(resolver.ResolveString(size), System.Globalization.CultureInfo.InvariantCulture) : EmulatedFunction.DefaultMemorySizeMb;
            var usesWebAdapter = (properties["Layers"] as JsonArray ?? []).Any(layer => layer?.ToJsonString().Contains("LambdaAdapterLayer", StringComparison.Ordinal) == true);
            functions.Add(new EmulatedFunction(
                ConstructKey(logicalId), logicalId, name, arn, roleName,
                new IamPolicy(roleStatements.TryGetValue(roleName, out var statements) ? statements : []),
                environment, timeout,
                [.. permissions.Where(p => p.FunctionArn == arn || p.FunctionArn == name).Select(p => p.Permission)],
                memory,
                usesWebAdapter));
        }

        EmulatedFunction FunctionByArn(string arnOrName)
            => functions.FirstOrDefault(f => f.Arn == arnOrName || f.Name == arnOrName)
               ?? throw new InvalidOperationException($"The template names a function {arnOrName} it does not define.");

        var tables = resolver.OfType("AWS::DynamoDB::Table").Select(t =>
        {
            var name = resolver.PhysicalName(t.LogicalId);
            var request = new JsonObject { ["TableName"] = name };
            foreach (var key in new[] { "AttributeDefinitions", "KeySchema", "BillingMode", "ProvisionedThroughput", "GlobalSecondaryIndexes", "LocalSecondaryIndexes" })
            {
                if (t.Properties[key] is { } value)
                {
                    request[key] = resolver.Resolve(value);
                }
            }

            return new EmulatedTable(t.LogicalId, name, $"arn:{context.Partition}:dynamodb:{context.Region}:{context.AccountId}:table/{name}", request);
        }).ToList();

        var stageResources = resolver.OfType("AWS::ApiGatewayV2::Stage").ToList();
        if (stageResources.Count != 1)
        {
            throw new InvalidOperationException($"The emulator runs one stage; the template has {stageResources.Count}.");
        }

        var stage = resolver.ResolveString(stageResources[0].Properties["StageName"]);
        var accessLogFormat = stageResources[0].Properties["AccessLogSettings"]?["Format"] is { } format ? resolver.ResolveString(format) : null;
        if (accessLogFormat is not null)
        {
            StageAccessLog.Validate(accessLogFormat);
        }

        // Routes → integrations (by the Ref id in the route's target, "integrations/{id}").
        var integrations = resolver.OfType("AWS::ApiGatewayV2::Integration").ToDictionary(i => TemplateResolver.ShortId(i.LogicalId), i => i.Properties, StringComparer.Ordinal);
        var authorizers = resolver.OfType("AWS::ApiGatewayV2::Authorizer").ToDictionary(a => TemplateResolver.ShortId(a.LogicalId), a => a.Properties, StringComparer.Ordinal);
        var routes = new Dictionary<string, EmulatedIntegration>(StringComparer.Ordinal);
        EmulatedAuthorizer? authorizer = null;
        foreach (var (_, route) in resolver.OfType("AWS::ApiGatewayV2::Route"))
        {
            var routeKey = resolver.ResolveString(route["RouteKey"]);
            if (routeKey == "$connect")
            {
                if (string.Equals((string?)route["AuthorizationType"], "CUSTOM", StringComparison.Ordinal))
                {
                    var authorizerId = resolver.ResolveString(route["AuthorizerId"]);
                    var properties = authorizers[authorizerId];
                    if (!string.Equals(resolver.ResolveString(properties["AuthorizerType"]), "REQUEST", StringComparison.Ordinal))
                    {
                        throw new NotSupportedException("The emulator runs REQUEST authorizers only.");
                    }

                    // arn:{partition}:apigateway:{region}:lambda:path/2015-03-31/functions/{function arn}/invocations
                    var uri = resolver.ResolveString(properties["AuthorizerUri"]);
                    var match = AuthorizerUri().Match(uri);
                    if (!match.Success)
                    {
                        throw new NotSupportedException($"Authorizer URI {uri} is not a Lambda invocation URI.");
                    }

                    var sources = (resolver.Resolve(properties["IdentitySource"]) as JsonArray ?? []).Select(s => (string)s!).ToList();
                    authorizer = new EmulatedAuthorizer(
                        authorizerId,
                        FunctionByArn(match.Groups[1].Value),
                        [.. sources.Where(s => s.StartsWith("route.request.querystring.", StringComparison.Ordinal)).Select(s => s["route.request.querystring.".Length..])],
                        [.. sources.Where(s => s.StartsWith("route.request.header.", StringComparison.Ordinal)).Select(s => s["route.request.header.".Length..])]);
                }

                continue; // the $connect integration (a MOCK here) answers 200 once authorized
            }

            var target = resolver.ResolveString(route["Target"]);
            if (!target.StartsWith("integrations/", StringComparison.Ordinal) || !integrations.TryGetValue(target["integrations/".Length..], out var integration))
            {
                throw new InvalidOperationException($"Route {routeKey} targets {target}, which the template does not define.");
            }

            var type = resolver.ResolveString(integration["IntegrationType"]);
            if (type != "HTTP_PROXY")
            {
                throw new NotSupportedException($"Route {routeKey}: the emulator runs HTTP_PROXY integrations only, not {type}.");
            }

            var parameters = new List<KeyValuePair<string, string>>();
            foreach (var (key, value) in integration["RequestParameters"] as JsonObject ?? [])
            {
                const string headerPrefix = "integration.request.header.";
                if (!key.StartsWith(headerPrefix, StringComparison.Ordinal))
                {
                    throw new NotSupportedException($"Route {routeKey}: request parameter {key} is not a header mapping.");
                }

                parameters.Add(new(key[headerPrefix.Length..], resolver.ResolveString(value)));
            }

            routes[routeKey] = new EmulatedIntegration(
                routeKey,
                integration["IntegrationMethod"] is { } method ? resolver.ResolveString(method) : "POST",
                new Uri(resolver.ResolveString(integration["IntegrationUri"])),
                parameters,
                TimeSpan.FromMilliseconds(integration["TimeoutInMillis"] is { } ms ? double.Parse(resolver.ResolveString(ms), System.Globalization.CultureInfo.InvariantCulture) : 29_000));
        }

        var urls = resolver.OfType("AWS::Lambda::Url")
            .Select(u => new EmulatedFunctionUrl(u.LogicalId, FunctionByArn(FunctionArnOf(resolver, u.Properties["TargetFunctionArn"])), resolver.ResolveString(u.Properties["AuthType"])))
            .ToList();
        if (urls.FirstOrDefault(u => !u.Function.UsesWebAdapter) is { } custom)
        {
            // A function URL hands a custom runtime its requests as payload-format-2.0 events, which the emulator does not build.
            throw new NotSupportedException($"Function URL {custom.LogicalId}: the emulator serves function URLs through the Lambda Web Adapter only, and {custom.Function.Key} has no adapter layer.");
        }

        return new EmulatedDeployment(stage, enforcesIam: true, functions, tables, authorizer, routes, urls, accessLogFormat);
    }

    /// <summary>Logical ids of the function URLs, before anything is resolved (the emulator listens on one port per URL).</summary>
    internal static IReadOnlyList<string> FunctionUrlLogicalIds(JsonObject template)
        => [.. (template["Resources"] as JsonObject ?? []).Where(r => (string?)r.Value?["Type"] == "AWS::Lambda::Url").Select(r => r.Key)];

    private static string FunctionArnOf(TemplateResolver resolver, JsonNode? functionName)
    {
        var value = resolver.ResolveString(functionName);
        // FunctionName may be a name, an ARN, or a qualified ARN (…:function:name:alias).
        var match = FunctionArn().Match(value);
        return match.Success ? match.Groups[1].Value : value;
    }

    [GeneratedRegex(@"^(.+?)[0-9A-F]{8}$", RegexOptions.CultureInvariant)]
    private static partial Regex CdkHash();

    [GeneratedRegex(@"/functions/(arn:[^/]+:lambda:[^/]+:function:[^/:]+)(?::[^/]+)?/invocations$", RegexOptions.CultureInvariant)]
    private static partial Regex AuthorizerUri();

    [GeneratedRegex(@"^(arn:[^:]+:lambda:[^:]+:[^:]+:function:[^:]+)(?::.+)?$", RegexOptions.CultureInvariant)]
    private static partial Regex FunctionArn();
}
