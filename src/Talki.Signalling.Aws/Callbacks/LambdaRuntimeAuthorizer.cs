using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Talki.Signalling.Aws.Callbacks;

/// <summary>
/// The <c>$connect</c> authorizer as a Lambda custom runtime: it takes each invocation from the Lambda runtime API and posts
/// the authorizer's answer back, with no web server and no Lambda Web Adapter in the function. What it follows, from
/// "Using the Lambda runtime API for custom runtimes" (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html) and
/// "Building a custom runtime" (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-custom.html):
/// <list type="bullet">
/// <item>the endpoint is <c>AWS_LAMBDA_RUNTIME_API</c> (<c>host:port</c>), under the API version <c>2018-06-01</c>;</item>
/// <item><c>GET /runtime/invocation/next</c> blocks until there is an event ("do not set a timeout on the GET request"): the
/// body is the event, <c>Lambda-Runtime-Aws-Request-Id</c> names the invocation, <c>Lambda-Runtime-Trace-Id</c> is the X-Ray
/// header the runtime puts in <c>_X_AMZN_TRACE_ID</c>;</item>
/// <item><c>POST /runtime/invocation/{id}/response</c> answers it (202); 400, 403 and 413 refuse that one answer, and the
/// runtime goes on to the next event;</item>
/// <item>a 500 is a container error, "non-recoverable state, runtime should exit promptly": for an answer, and any status but
/// 200 for the next event (the spec's others are 403 and 500), or an event without a request id, stops the host with exit
/// code 1 (Lambda then reports <c>Runtime.ExitError</c> and starts a fresh environment), as when the runtime API cannot be
/// reached at all.</item>
/// </list>
/// One invocation at a time, as Lambda sends them to an execution environment. A malformed, oversized or empty event is
/// answered with a Deny, as on the pass-through path; the answer is the same JSON.
/// </summary>
internal sealed class LambdaRuntimeAuthorizer : BackgroundService
{
    /// <summary>The environment variable Lambda sets to the runtime API's <c>host:port</c>.</summary>
    internal const string RuntimeApiVariable = "AWS_LAMBDA_RUNTIME_API";

    /// <summary>The environment variable a custom runtime sets to each invocation's X-Ray trace header.</summary>
    internal const string TraceIdVariable = "_X_AMZN_TRACE_ID";

    private readonly ApiGatewayCallbacks _callbacks;
    private readonly HttpClient _http;
    private readonly Uri _next;
    private readonly string _invocationPrefix;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly ILogger _logger;

    public LambdaRuntimeAuthorizer(ApiGatewayCallbacks callbacks, string runtimeApi, HttpMessageHandler handler, IHostApplicationLifetime lifetime, ILogger<LambdaRuntimeAuthorizer> logger)
    {
        _callbacks = callbacks;
        var root = ParseRuntimeApi(runtimeApi) ?? throw new ArgumentException($"'{runtimeApi}' is not a runtime API endpoint (host:port).", nameof(runtimeApi));
        _next = new Uri(root, "2018-06-01/runtime/invocation/next");
        _invocationPrefix = new Uri(root, "2018-06-01/runtime/invocation/").AbsoluteUri;

        // The GET for the next event waits as long as the environment is idle (it may be frozen in between).
        _http = new HttpClient(handler, disposeHandler: true) { Timeout = Timeout.InfiniteTimeSpan };
        _lifetime = lifetime;
        _logger = logger;
    }

    /// <summary>The handler the runtime's client uses: the runtime API is local, never through a proxy, no cookies, no redirects.</summary>
    internal static SocketsHttpHandler CreateHandler() => new()
    {
        UseProxy = false,
        UseCookies = false,
        AllowAutoRedirect = false,
        ConnectTimeout = TimeSpan.FromSeconds(10),
        PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
        PooledConnectionLifetime = Timeout.InfiniteTimeSpan,
    };

    /// <summary>The runtime API's root URL from its <c>host:port</c>, or <see langword="null"/> when it is anything else.</summary>
    internal static Uri? ParseRuntimeApi(string? runtimeApi)
    {
        if (string.IsNullOrWhiteSpace(runtimeApi) || runtimeApi.Contains('/', StringComparison.Ordinal) || runtimeApi.Contains('@', StringComparison.Ordinal)
            || !Uri.TryCreate("http://" + runtimeApi + "/", UriKind.Absolute, out var root)
            || root.IsDefaultPort && !runtimeApi.EndsWith(":80", StringComparison.Ordinal)
            || root.PathAndQuery != "/" || root.Fragment.Length > 0)
        {
            return null;
        }

        return root;
    }

    public override void Dispose()
    {
        _http.Dispose();
        base.Dispose();
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // The first GET once the host has started: initialization is over (Lambda's init phase ends at the first /next), and
        // a runtime API that refuses at once stops a started host, not one half way through its start (Host.StartAsync
        // cancels the services still starting and throws; CI, 2026-12-07: a test host's Kestrel cancelled while binding).
        if (!await StartedAsync(stoppingToken).ConfigureAwait(false))
        {
            return;
        }

        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                if (!await ServeNextAsync(stoppingToken).ConfigureAwait(false))
                {
                    Fail();
                    return;
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception exception) when (exception is HttpRequestException or IOException)
            {
                Log.RuntimeApiUnreachable(_logger, exception);
                Fail();
                return;
            }
        }
    }

    /// <summary>Serves one invocation; <see langword="false"/> when the runtime API says the environment cannot go on.</summary>
    private async Task<bool> ServeNextAsync(CancellationToken cancellationToken)
    {
        string requestId;
        AuthorizerResponse? answer;
        using (var next = await _http.GetAsync(_next, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false))
        {
            if (next.StatusCode != HttpStatusCode.OK)
            {
                Log.RuntimeNextRefused(_logger, (int)next.StatusCode);
                return false;
            }

            if (!next.Headers.TryGetValues("Lambda-Runtime-Aws-Request-Id", out var ids) || ids.FirstOrDefault() is not { Length: > 0 } id)
            {
                // Nothing to answer to: a runtime API that does not name its invocations is not one to go on with.
                Log.RuntimeNoRequestId(_logger);
                return false;
            }

            requestId = id;
            Environment.SetEnvironmentVariable(
                TraceIdVariable,
                next.Headers.TryGetValues("Lambda-Runtime-Trace-Id", out var traces) ? traces.FirstOrDefault() : null);
            var content = await next.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
            await using (content.ConfigureAwait(false))
            {
                using var body = await ApiGatewayCallbacks.RentedBody.ReadAsync(content, next.Content.Headers.ContentLength, ApiGatewayCallbacks.MaxAuthorizerEventBytes, cancellationToken).ConfigureAwait(false);
                answer = await _callbacks.DecideAsync(body, cancellationToken).ConfigureAwait(false);
            }
        }

        if (answer is null)
        {
            return true; // stopping: the loop ends on the token
        }

        using var response = new ByteArrayContent(JsonSerializer.SerializeToUtf8Bytes(answer, ApiGatewayCallbacksJsonContext.Default.AuthorizerResponse));
        response.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        var target = new Uri(_invocationPrefix + Uri.EscapeDataString(requestId) + "/response");
        using var posted = await _http.PostAsync(target, response, cancellationToken).ConfigureAwait(false);
        switch ((int)posted.StatusCode)
        {
            case >= 200 and < 300:
                return true;
            case >= 500:
                Log.RuntimeResponseFailed(_logger, (int)posted.StatusCode);
                return false;
            default:
                // 400, 403, 413: this answer is refused (Lambda reports the invocation as failed); the next one may not be.
                Log.RuntimeResponseRefused(_logger, (int)posted.StatusCode);
                return true;
        }
    }

    /// <summary>Waits until the host has started (<see langword="false"/>: it is stopping first, or never started).</summary>
    private async Task<bool> StartedAsync(CancellationToken stoppingToken)
    {
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var onStarted = _lifetime.ApplicationStarted.Register(static state => ((TaskCompletionSource)state!).TrySetResult(), started);
        using var onStopping = stoppingToken.Register(static state => ((TaskCompletionSource)state!).TrySetCanceled(), started);
        try
        {
            await started.Task.ConfigureAwait(false);
            return !stoppingToken.IsCancellationRequested;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private void Fail()
    {
        Environment.ExitCode = 1;
        _lifetime.StopApplication();
    }
}
