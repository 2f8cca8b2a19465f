using Amazon.Runtime;

namespace Talki.Signalling.Aws.ApiGateway;

/// <summary>
/// Options of the API Gateway <c>@connections</c> push client: where the WebSocket API lives, how requests are
/// signed, and how long and how often a push is tried. Validated at start-up.
/// </summary>
public sealed class ApiGatewayPushOptions
{
    /// <summary>
    /// Gets or sets the endpoint of the WebSocket API, <c>https://{api-id}.execute-api.{region}.amazonaws.com</c>
    /// (or a custom domain, optionally with a base path). Plain <c>http</c> is accepted only for loopback hosts (local emulators).
    /// </summary>
    public Uri? Endpoint { get; set; }

    /// <summary>Gets or sets the deployment stage, for example <c>prod</c>: requests go to <c>/{stage}/@connections/{id}</c>.</summary>
    public string Stage { get; set; } = string.Empty;

    /// <summary>Gets or sets the signing region, for example <c>eu-west-1</c>.</summary>
    public string Region { get; set; } = string.Empty;

    /// <summary>
    /// Gets or sets the credentials that sign the requests. When <see langword="null"/> (the default) they come from
    /// the standard AWS chain (environment, profile, container or instance role), resolved on every request.
    /// </summary>
    public AWSCredentials? Credentials { get; set; }

    /// <summary>Gets how throttled (429) and failed (5xx, transport errors, attempt timeouts) requests are retried.</summary>
    public ApiGatewayRetryOptions Retry { get; } = new();

    /// <summary>Gets the time limits of one attempt and of a whole operation.</summary>
    public ApiGatewayTimeoutOptions Timeouts { get; } = new();
}

/// <summary>Retries of the <c>@connections</c> client: jittered exponential backoff with a cap.</summary>
public sealed class ApiGatewayRetryOptions
{
    /// <summary>Gets or sets how many times a request is retried after the first attempt (0 to 10; default 3).</summary>
    public int MaxRetryAttempts { get; set; } = 3;

    /// <summary>Gets or sets the median delay before the first retry; later retries back off exponentially (default 100 ms).</summary>
    public TimeSpan BaseDelay { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Gets or sets the longest delay between two attempts (default 1 s).</summary>
    public TimeSpan MaxDelay { get; set; } = TimeSpan.FromSeconds(1);
}

/// <summary>Time limits of the <c>@connections</c> client.</summary>
public sealed class ApiGatewayTimeoutOptions
{
    /// <summary>Gets or sets the limit of one HTTP attempt; an attempt that exceeds it is retried (default 2 s).</summary>
    public TimeSpan Attempt { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Gets or sets the limit of a whole operation, retries and delays included (default 5 s).</summary>
    public TimeSpan Total { get; set; } = TimeSpan.FromSeconds(5);
}
