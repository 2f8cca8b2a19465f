using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;

namespace Talki.Signalling.Emulator;

/// <summary>Where one Lambda function of the template runs: its execution environments and the role identity they sign with.</summary>
public sealed class FunctionInstances
{
    /// <summary>Gets the base URIs of the function's instances (each one a host behind the Lambda Web Adapter).</summary>
    public IList<Uri> Instances { get; } = [];

    /// <summary>Gets or sets the access key id the instances sign AWS requests with: the identity of the function's execution role.</summary>
    public string? AccessKeyId { get; set; }

    /// <summary>Gets or sets the secret access key of <see cref="AccessKeyId"/>.</summary>
    public string? SecretAccessKey { get; set; }
}

/// <summary>How the emulated API Gateway WebSocket API is set up. The defaults are API Gateway's quotas.</summary>
public sealed class EmulatorOptions
{
    /// <summary>The access key id the emulator accepts by default (the AWS SigV4 test-suite key).</summary>
    public const string DefaultAccessKeyId = "AKIDEXAMPLE";

    /// <summary>The secret access key of <see cref="DefaultAccessKeyId"/> (the AWS SigV4 test-suite secret).</summary>
    public const string DefaultSecretAccessKey = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    /// <summary>
    /// Gets or sets the synthesized CloudFormation template to run (template mode): the functions, their role policies
    /// (enforced on <c>@connections</c> and DynamoDB), their permissions (enforced on the function URLs and the authorizer
    /// invocation), the WebSocket API's stage, authorizer, routes and integrations. When null, the legacy mode runs: one
    /// <see cref="Backend"/> plays every function, nothing is enforced, and the integration headers are fixed.
    /// </summary>
    public JsonObject? Template { get; set; }

    /// <summary>Gets the values of the template's parameters (e.g. <c>GatewaySecret</c>), by logical id.</summary>
    public IDictionary<string, string> TemplateParameters { get; } = new Dictionary<string, string>(StringComparer.Ordinal);

    /// <summary>
    /// Gets where the template's functions run, keyed by CDK construct id (<c>Backend</c>, <c>Authorizer</c>: the logical id
    /// without CDK's hash), logical id, or function name.
    /// </summary>
    public IDictionary<string, FunctionInstances> Functions { get; } = new Dictionary<string, FunctionInstances>(StringComparer.Ordinal);

    /// <summary>Gets or sets the stack name (template mode): physical names are <c>{stack}-{logicalId}</c>.</summary>
    public string StackName { get; set; } = "emu";

    /// <summary>Gets or sets the partition (<c>AWS::Partition</c>).</summary>
    public string Partition { get; set; } = "aws";

    /// <summary>Gets or sets the URL suffix (<c>AWS::URLSuffix</c>).</summary>
    public string UrlSuffix { get; set; } = "amazonaws.com";

    /// <summary>
    /// Gets or sets the DynamoDB the emulator's DynamoDB endpoint forwards to (dynalite); null: no DynamoDB endpoint. In
    /// template mode every request is checked against the signing function's role policy first.
    /// </summary>
    public Uri? DynamoDb { get; set; }

    /// <summary>Gets or sets the backend base address, e.g. <c>http://127.0.0.1:5080</c> (legacy mode, required there).</summary>
    public Uri? Backend { get; set; }

    /// <summary>Gets or sets the shared secret sent in <see cref="GatewaySecretHeader"/> on integration calls (legacy mode, required there).</summary>
    public string? GatewaySecret { get; set; }

    /// <summary>Gets or sets the port on 127.0.0.1; 0 (the default) picks a free port.</summary>
    public int Port { get; set; }

    /// <summary>Gets or sets the stage: clients connect to <c>/{stage}</c>, the management API is <c>/{stage}/@connections/{id}</c>.</summary>
    public string Stage { get; set; } = "test";

    /// <summary>Gets or sets the API id (used in the method ARN, the domain name and the integration user agent).</summary>
    public string ApiId { get; set; } = "emu0api001";

    /// <summary>Gets or sets the region (SigV4 scope of the management API, method ARN).</summary>
    public string Region { get; set; } = "us-east-1";

    /// <summary>Gets or sets the account id in the method ARN.</summary>
    public string AccountId { get; set; } = "123456789012";

    /// <summary>Gets or sets the domain name reported in events; the default is <c>{apiId}.execute-api.{region}.amazonaws.com</c>.</summary>
    public string? DomainName { get; set; }

    /// <summary>Gets the credentials accepted by the management API (access key id → secret access key).</summary>
    public IDictionary<string, string> Credentials { get; } = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        [DefaultAccessKeyId] = DefaultSecretAccessKey,
    };

    /// <summary>Gets or sets the authorizer's identity source, <c>route.request.querystring.{name}</c>: missing or empty → 401 without calling the authorizer.</summary>
    public string IdentitySourceQueryParameter { get; set; } = "ticket";

    /// <summary>Gets or sets the backend path the REQUEST authorizer event is POSTed to (the Lambda Web Adapter pass-through path).</summary>
    public string AuthorizerPath { get; set; } = "/events";

    /// <summary>Gets or sets the backend path of the <c>$default</c> HTTP integration.</summary>
    public string DefaultRoutePath { get; set; } = "/talki/aws/default";

    /// <summary>Gets or sets the backend path of the <c>$disconnect</c> HTTP integration.</summary>
    public string DisconnectRoutePath { get; set; } = "/talki/aws/disconnect";

    /// <summary>Gets or sets the integration request header mapped from <c>context.connectionId</c>.</summary>
    public string ConnectionIdHeader { get; set; } = "x-talki-connection-id";

    /// <summary>Gets or sets the integration request header carrying <see cref="GatewaySecret"/>.</summary>
    public string GatewaySecretHeader { get; set; } = "x-talki-gateway-secret";

    /// <summary>Gets or sets the idle timeout (10 min on API Gateway): a connection without data messages is closed with 1001.</summary>
    public TimeSpan IdleTimeout { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>
    /// Gets or sets how long after a write an eventually consistent <c>GetItem</c> may still see the item as it was before
    /// it. DynamoDB: "the responses may not reflect the results of a recently completed write operation. If you repeat your
    /// read request after a short time, the response should eventually return the more recent item" (Developer Guide,
    /// "DynamoDB read consistency"); it gives no figure for one region, its global tables replicate "usually within a
    /// second". Within this span the emulator answers such a read with the item as it was before the latest write, absent
    /// when that write created it: the most a replica may lag. Strongly consistent reads always see the latest write;
    /// eventually consistent <c>Query</c> and <c>Scan</c> are not modelled (the room store makes none). Zero turns the model
    /// off. Default 1 second.
    /// </summary>
    public TimeSpan DynamoDbReplicaLag { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Gets or sets whether delivered pushes reset the idle timer as well as inbound messages (default false: only the
    /// client's messages keep a connection alive, the conservative reading of the AWS documentation).
    /// </summary>
    public bool PushesResetIdleTimeout { get; set; }

    /// <summary>Gets or sets the longest connection (2 h on API Gateway); then the connection is closed with 1001.</summary>
    public TimeSpan MaxConnectionDuration { get; set; } = TimeSpan.FromHours(2);

    /// <summary>Gets or sets the largest frame (32 KB); a larger inbound frame closes the connection with 1009.</summary>
    public int MaxFrameBytes { get; set; } = 32 * 1024;

    /// <summary>Gets or sets the largest message (128 KB); a larger inbound message closes with 1009, a larger push answers 413.</summary>
    public int MaxMessageBytes { get; set; } = 128 * 1024;

    /// <summary>
    /// Gets or sets the integration timeout (29 s on API Gateway). It bounds HTTP calls, so it runs on the real clock:
    /// advancing a fake <see cref="TimeProvider"/> never fails a call in flight.
    /// </summary>
    public TimeSpan IntegrationTimeout { get; set; } = TimeSpan.FromSeconds(29);

    /// <summary>Gets or sets the clock of timestamps, idle timeouts, connection durations, and latency faults.</summary>
    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;

    /// <summary>Gets or sets the clock SigV4 <c>x-amz-date</c> skew is checked against (the AWS signer uses the real clock).</summary>
    public TimeProvider SigningClock { get; set; } = TimeProvider.System;

    /// <summary>Gets or sets the allowed SigV4 clock skew; <see langword="null"/> skips the check.</summary>
    public TimeSpan? MaxSigningSkew { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Gets or sets a logging configuration; by default the emulator does not log.</summary>
    public Action<ILoggingBuilder>? ConfigureLogging { get; set; }

    private static readonly System.Buffers.SearchValues<char> ForbiddenStageChars = System.Buffers.SearchValues.Create("/?#% @");

    internal string EffectiveDomainName => DomainName ?? $"{ApiId}.execute-api.{Region}.amazonaws.com";

    internal void Validate()
    {
        if (Template is null && Backend is not { IsAbsoluteUri: true })
        {
            throw new ArgumentException("EmulatorOptions.Backend must be an absolute URI (or set EmulatorOptions.Template).");
        }

        if (Template is null && string.IsNullOrEmpty(GatewaySecret))
        {
            throw new ArgumentException("EmulatorOptions.GatewaySecret is required (or set EmulatorOptions.Template).");
        }

        foreach (var (key, function) in Functions)
        {
            if (function.Instances.Any(i => !i.IsAbsoluteUri) || (function.AccessKeyId is null) != (function.SecretAccessKey is null))
            {
                throw new ArgumentException($"EmulatorOptions.Functions[{key}]: instances must be absolute URIs, and the access key id and secret come together.");
            }
        }

        if (string.IsNullOrEmpty(Stage) || Stage.AsSpan().IndexOfAny(ForbiddenStageChars) >= 0)
        {
            throw new ArgumentException("EmulatorOptions.Stage must be a plain stage name.");
        }

        if (Port is < 0 or > 65535 || MaxFrameBytes <= 0 || MaxMessageBytes < MaxFrameBytes || IdleTimeout <= TimeSpan.Zero
            || MaxConnectionDuration <= TimeSpan.Zero || IntegrationTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentException("EmulatorOptions: Port, sizes and timeouts must be in range.");
        }
    }
}
