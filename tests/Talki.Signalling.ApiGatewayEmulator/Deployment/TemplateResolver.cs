using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Talki.Signalling.Emulator.Deployment;

/// <summary>
/// Resolves the CloudFormation intrinsic functions a CDK template uses
/// (https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/intrinsic-function-reference.html):
/// <c>Ref</c> (parameters, pseudo parameters, resources), <c>Fn::GetAtt</c>, <c>Fn::Join</c>, <c>Fn::Sub</c>,
/// <c>Fn::Select</c> and <c>Fn::Split</c>. Physical names are what CloudFormation would generate, made deterministic:
/// <c>{stack}-{logicalId}</c>.
/// </summary>
internal sealed partial class TemplateResolver
{
    private readonly JsonObject _resources;
    private readonly JsonObject _parameters;
    private readonly IReadOnlyDictionary<string, string> _parameterValues;
    private readonly Func<string, string> _functionUrl;

    public TemplateResolver(JsonObject template, TemplateContext context, Func<string, string> functionUrlOfUrlResource)
    {
        _resources = template[nameof(Resources)] as JsonObject ?? throw new ArgumentException("The template has no Resources.");
        _parameters = template["Parameters"] as JsonObject ?? [];
        _parameterValues = context.Parameters;
        Context = context;
        _functionUrl = functionUrlOfUrlResource;
    }

    public TemplateContext Context { get; }

    public JsonObject Resources => _resources;

    public IEnumerable<(string LogicalId, JsonObject Properties)> OfType(string type)
        => _resources
            .Where(r => (string?)r.Value?["Type"] == type)
            .Select(r => (r.Key, r.Value!["Properties"] as JsonObject ?? []));

    public string TypeOf(string logicalId)
        => (string?)_resources[logicalId]?["Type"] ?? throw new InvalidOperationException($"The template has no resource {logicalId}.");

    /// <summary>The physical name CloudFormation gives a resource without an explicit name.</summary>
    public string PhysicalName(string logicalId)
    {
        var properties = _resources[logicalId]?["Properties"];
        var explicitName = TypeOf(logicalId) switch
        {
            "AWS::Lambda::Function" => properties?["FunctionName"],
            "AWS::DynamoDB::Table" => properties?["TableName"],
            "AWS::IAM::Role" => properties?["RoleName"],
            "AWS::Logs::LogGroup" => properties?["LogGroupName"],
            _ => null,
        };
        return explicitName is null ? $"{Context.StackName}-{logicalId}" : ResolveString(explicitName);
    }

    /// <summary>Resolves a node to a string (numbers and booleans as their JSON text).</summary>
    public string ResolveString(JsonNode? node)
    {
        var resolved = Resolve(node);
        return resolved switch
        {
            JsonValue value when value.TryGetValue<string>(out var text) => text,
            JsonValue value => value.ToJsonString(),
            null => throw new InvalidOperationException("A template value resolved to null."),
            _ => throw new InvalidOperationException($"A template value resolved to {resolved.ToJsonString()}, not a string."),
        };
    }

    /// <summary>Resolves every intrinsic function in a node (a deep copy; the template is not changed).</summary>
    public JsonNode? Resolve(JsonNode? node)
    {
        switch (node)
        {
            case null:
                return null;
            case JsonArray array:
                return new JsonArray([.. array.Select(Resolve)]);
            case JsonObject obj when obj.Count == 1 && obj.First() is var (name, argument) && (name == "Ref" || name.StartsWith("Fn::", StringComparison.Ordinal)):
                return Intrinsic(name, argument);
            case JsonObject obj:
                var copy = new JsonObject();
                foreach (var (key, value) in obj)
                {
                    copy[key] = Resolve(value);
                }

                return copy;
            default:
                return node.DeepClone();
        }
    }

    private JsonNode? Intrinsic(string name, JsonNode? argument)
    {
        switch (name)
        {
            case "Ref":
                return Ref((string?)argument ?? throw new InvalidOperationException("Ref needs a name."));
            case "Fn::GetAtt":
                var parts = argument is JsonArray getAtt
                    ? [.. getAtt.Select(ResolveString)]
                    : ((string?)argument ?? string.Empty).Split('.', 2);
                return GetAtt(parts[0], parts[1]);
            case "Fn::Join":
                var join = (JsonArray)argument!;
                var separator = ResolveString(join[0]);
                var items = Resolve(join[1]) as JsonArray ?? throw new InvalidOperationException("Fn::Join needs a list.");
                return string.Join(separator, items.Select(i => ResolveString(i)));
            case "Fn::Select":
                var select = (JsonArray)argument!;
                var index = int.Parse(ResolveString(select[0]), CultureInfo.InvariantCulture);
                return (Resolve(select[1]) as JsonArray ?? throw new InvalidOperationException("Fn::Select needs a list."))[index]?.DeepClone();
            case "Fn::Split":
                var split = (JsonArray)argument!;
                return new JsonArray([.. ResolveString(split[1]).Split(ResolveString(split[0])).Select(s => (JsonNode)s)]);
            case "Fn::Sub":
                return argument is JsonArray sub
                    ? Sub(ResolveString(sub[0]), sub[1] as JsonObject)
                    : Sub((string?)argument ?? string.Empty, null);
            default:
                throw new NotSupportedException($"The emulator does not resolve {name}.");
        }
    }

    private string Sub(string text, JsonObject? variables)
        => SubVariable().Replace(text, match =>
        {
            var variable = match.Groups[1].Value;
            if (variable.StartsWith('!'))
            {
                return "${" + variable[1..] + "}"; // ${!Literal} is written as ${Literal}
            }

            if (variables?[variable] is { } value)
            {
                return ResolveString(value);
            }

            return variable.Contains('.', StringComparison.Ordinal) && !variable.StartsWith("AWS::", StringComparison.Ordinal)
                ? ResolveString(GetAtt(variable[..variable.IndexOf('.', StringComparison.Ordinal)], variable[(variable.IndexOf('.', StringComparison.Ordinal) + 1)..]))
                : ResolveString(Ref(variable));
        });

    private JsonNode Ref(string name)
    {
        switch (name)
        {
            case "AWS::Partition": return Context.Partition;
            case "AWS::Region": return Context.Region;
            case "AWS::AccountId": return Context.AccountId;
            case "AWS::URLSuffix": return Context.UrlSuffix;
            case "AWS::StackName": return Context.StackName;
            case "AWS::StackId": return $"arn:{Context.Partition}:cloudformation:{Context.Region}:{Context.AccountId}:stack/{Context.StackName}/00000000-0000-0000-0000-000000000000";
            case "AWS::NoValue": throw new NotSupportedException("AWS::NoValue is not resolved.");
        }

        if (_parameters[name] is JsonObject parameter)
        {
            if (_parameterValues.TryGetValue(name, out var supplied))
            {
                return supplied;
            }

            return (string?)parameter["Type"] is { } type && type.StartsWith("AWS::SSM::Parameter::Value", StringComparison.Ordinal)
                ? throw new InvalidOperationException($"Template parameter {name} is resolved from SSM at deploy time; supply its value in EmulatorOptions.TemplateParameters.")
                : parameter["Default"] is { } fallback
                    ? ResolveString(fallback)
                    : throw new InvalidOperationException($"Template parameter {name} has no default; supply its value in EmulatorOptions.TemplateParameters.");
        }

        return TypeOf(name) switch
        {
            "AWS::ApiGatewayV2::Api" => Context.ApiId,
            "AWS::ApiGatewayV2::Authorizer" or "AWS::ApiGatewayV2::Integration" or "AWS::ApiGatewayV2::Route" or "AWS::ApiGatewayV2::Stage" => ShortId(name),
            _ => PhysicalName(name),
        };
    }

    private JsonNode GetAtt(string logicalId, string attribute)
    {
        var p = Context.Partition;
        var r = Context.Region;
        var a = Context.AccountId;
        return (TypeOf(logicalId), attribute) switch
        {
            ("AWS::Lambda::Function", "Arn") => $"arn:{p}:lambda:{r}:{a}:function:{PhysicalName(logicalId)}",
            ("AWS::DynamoDB::Table", "Arn") => $"arn:{p}:dynamodb:{r}:{a}:table/{PhysicalName(logicalId)}",
            ("AWS::IAM::Role", "Arn") => $"arn:{p}:iam::{a}:role/{PhysicalName(logicalId)}",
            ("AWS::Logs::LogGroup", "Arn") => $"arn:{p}:logs:{r}:{a}:log-group:{PhysicalName(logicalId)}:*",
            ("AWS::Lambda::Url", "FunctionUrl") => _functionUrl(logicalId),
            ("AWS::Lambda::Url", "FunctionArn") => ResolveString(_resources[logicalId]!["Properties"]!["TargetFunctionArn"]),
            ("AWS::ApiGatewayV2::Api", "ApiEndpoint") => $"wss://{Context.ApiId}.execute-api.{r}.{Context.UrlSuffix}",
            var (type, _) => throw new NotSupportedException($"The emulator does not resolve Fn::GetAtt {logicalId}.{attribute} ({type})."),
        };
    }

    /// <summary>A 10-character id in API Gateway's style (lower-case letters and digits), stable for a logical id.</summary>
    internal static string ShortId(string logicalId)
    {
        var hash = System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(logicalId));
        var builder = new StringBuilder(7);
        foreach (var b in hash.AsSpan(0, 7))
        {
            builder.Append("abcdefghijklmnopqrstuvwxyz0123456789"[b % 36]);
        }

        return builder.ToString();
    }

    [GeneratedRegex(@"\$\{([^}]+)\}", RegexOptions.CultureInvariant)]
    private static partial Regex SubVariable();
}

/// <summary>What the pseudo parameters, the API and the template parameters resolve to.</summary>
internal sealed record TemplateContext(
    string Partition,
    string Region,
    string AccountId,
    string UrlSuffix,
    string StackName,
    string ApiId,
    IReadOnlyDictionary<string, string> Parameters);
