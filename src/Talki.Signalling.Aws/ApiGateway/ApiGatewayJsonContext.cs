using System.Text.Json.Serialization;

namespace Talki.Signalling.Aws.ApiGateway;

/// <summary>The GetConnection response body (lower camelCase, ISO 8601 timestamps).</summary>
internal sealed class GetConnectionResponse
{
    public DateTimeOffset? ConnectedAt { get; set; }

    public DateTimeOffset? LastActiveAt { get; set; }

    public GetConnectionIdentity? Identity { get; set; }
}

/// <summary>The <c>identity</c> member of the GetConnection response.</summary>
internal sealed class GetConnectionIdentity
{
    public string? SourceIp { get; set; }

    public string? UserAgent { get; set; }
}

/// <summary>Source-generated JSON for the <c>@connections</c> API (AOT-safe).</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, PropertyNameCaseInsensitive = true)]
[JsonSerializable(typeof(GetConnectionResponse))]
internal sealed partial class ApiGatewayJsonContext : JsonSerializerContext;
