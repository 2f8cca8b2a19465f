using System.Text.Json.Serialization;

namespace Talki.Signalling.Aws.Callbacks;

/// <summary>The API Gateway WebSocket REQUEST authorizer event (<c>$connect</c> only); unknown members are ignored.</summary>
internal sealed record AuthorizerRequest
{
    /// <summary>Gets the authorizer type; <c>REQUEST</c> for WebSocket APIs.</summary>
    public string? Type { get; init; }

    /// <summary>Gets <c>arn:aws:execute-api:{region}:{account}:{apiId}/{stage}/$connect</c>.</summary>
    public string? MethodArn { get; init; }

    /// <summary>Gets the upgrade request's headers.</summary>
    public Dictionary<string, string?>? Headers { get; init; }

    /// <summary>Gets the upgrade request's query string parameters (absent when there are none).</summary>
    public Dictionary<string, string?>? QueryStringParameters { get; init; }

    /// <summary>Gets the request context.</summary>
    public AuthorizerRequestContext? RequestContext { get; init; }
}

/// <summary>The <c>requestContext</c> member of WebSocket events.</summary>
internal sealed record AuthorizerRequestContext
{
    /// <summary>Gets the route key, <c>$connect</c>.</summary>
    public string? RouteKey { get; init; }

    /// <summary>Gets the event type, <c>CONNECT</c>.</summary>
    public string? EventType { get; init; }

    /// <summary>Gets the new connection's id (a secret: it lets anyone holding it post to the connection).</summary>
    public string? ConnectionId { get; init; }

    /// <summary>Gets the stage.</summary>
    public string? Stage { get; init; }

    /// <summary>Gets the API id.</summary>
    public string? ApiId { get; init; }

    /// <summary>Gets the API's domain name.</summary>
    public string? DomainName { get; init; }

    /// <summary>Gets the request id.</summary>
    public string? RequestId { get; init; }

    /// <summary>Gets the extended request id.</summary>
    public string? ExtendedRequestId { get; init; }

    /// <summary>Gets the message direction, <c>IN</c>.</summary>
    public string? MessageDirection { get; init; }

    /// <summary>Gets the request time (CLF format).</summary>
    public string? RequestTime { get; init; }

    /// <summary>Gets when the connection was made (epoch milliseconds).</summary>
    [JsonNumberHandling(JsonNumberHandling.AllowReadingFromString)]
    public long? ConnectedAt { get; init; }

    /// <summary>Gets the request time (epoch milliseconds).</summary>
    [JsonNumberHandling(JsonNumberHandling.AllowReadingFromString)]
    public long? RequestTimeEpoch { get; init; }

    /// <summary>Gets the caller's identity.</summary>
    public AuthorizerIdentity? Identity { get; init; }
}

/// <summary>The <c>requestContext.identity</c> member.</summary>
internal sealed record AuthorizerIdentity
{
    /// <summary>Gets the caller's IP address.</summary>
    public string? SourceIp { get; init; }

    /// <summary>Gets the caller's user agent.</summary>
    public string? UserAgent { get; init; }
}

/// <summary>The authorizer's answer: an IAM policy for <c>execute-api:Invoke</c> on the method ARN, plus a context.</summary>
internal sealed record AuthorizerResponse
{
    /// <summary>Gets the principal (available as <c>$context.authorizer.principalId</c>).</summary>
    public required string PrincipalId { get; init; }

    /// <summary>Gets the policy.</summary>
    public required PolicyDocument PolicyDocument { get; init; }

    /// <summary>Gets the context (string, number and boolean values only); absent on Deny.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public AuthorizerContext? Context { get; init; }
}

/// <summary>An IAM policy document (PascalCase members).</summary>
internal sealed record PolicyDocument
{
    /// <summary>Gets the policy language version.</summary>
    [JsonPropertyName("Version")]
    public string Version { get; init; } = "2012-10-17";

    /// <summary>Gets the statements.</summary>
    [JsonPropertyName("Statement")]
    public required IReadOnlyList<PolicyStatement> Statement { get; init; }
}

/// <summary>One IAM policy statement.</summary>
internal sealed record PolicyStatement
{
    /// <summary>Gets the action, <c>execute-api:Invoke</c>.</summary>
    [JsonPropertyName("Action")]
    public string Action { get; init; } = "execute-api:Invoke";

    /// <summary>Gets <c>Allow</c> or <c>Deny</c>.</summary>
    [JsonPropertyName("Effect")]
    public required string Effect { get; init; }

    /// <summary>Gets the resource: the event's method ARN.</summary>
    [JsonPropertyName("Resource")]
    public required string Resource { get; init; }
}

/// <summary>
/// The authorizer context handed to later integrations as <c>$context.authorizer.room</c> and so on: flat strings only
/// (API Gateway accepts string, number and boolean values and stringifies them in mappings; numbers are sent as decimal
/// strings here so that their rendering never depends on API Gateway's number formatting), far under the 8 KB limit.
/// </summary>
internal sealed record AuthorizerContext
{
    /// <summary>Gets the room id.</summary>
    public required string Room { get; init; }

    /// <summary>Gets the member id.</summary>
    public required string Member { get; init; }

    /// <summary>Gets the epoch the connection takes when it binds, in decimal.</summary>
    public required string Epoch { get; init; }

    /// <summary>Gets when the room seals, in Unix milliseconds, in decimal.</summary>
    public required string SealsAt { get; init; }

    /// <summary>Gets the epoch the connection asks to resume, in decimal, or <c>"0"</c> for a fresh start (always present, so that the mapping always has a value).</summary>
    public required string Resume { get; init; }
}

/// <summary>Source-generated JSON for the API Gateway callbacks (AOT-safe).</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(AuthorizerRequest))]
[JsonSerializable(typeof(AuthorizerResponse))]
internal sealed partial class ApiGatewayCallbacksJsonContext : JsonSerializerContext;
