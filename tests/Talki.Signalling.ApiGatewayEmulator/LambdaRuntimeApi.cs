using System.Globalization;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Talki.Signalling.Emulator;

/// <summary>
/// One Lambda execution environment's runtime API, for a function whose runtime is its own <c>bootstrap</c> (a custom
/// runtime on <c>provided.al2023</c>, no Lambda Web Adapter): the runtime started with <c>AWS_LAMBDA_RUNTIME_API</c> =
/// <see cref="RuntimeApi"/> takes each event and answers it. What it models, from "Using the Lambda runtime API for custom
/// runtimes" (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html, OpenAPI spec 2018-06-01) and "Lambda
/// execution environment lifecycle" (https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html):
/// <list type="bullet">
/// <item><c>GET /2018-06-01/runtime/invocation/next</c> blocks until there is an event (the docs: no timeout on it); 200 with
/// the event as its body and the headers <c>Lambda-Runtime-Aws-Request-Id</c>, <c>Lambda-Runtime-Deadline-Ms</c>,
/// <c>Lambda-Runtime-Invoked-Function-Arn</c> and <c>Lambda-Runtime-Trace-Id</c>. The first one ends the init phase
/// (<see cref="Initialized"/>): an invocation sent during init waits for it, as a cold start does;</item>
/// <item>the event belongs to the environment, not to one HTTP request: every <c>GET …/next</c> made while an invocation
/// is in progress gets that invocation (same request id), and one dropped before or while the event went out (a
/// cancelled request, a reset connection) loses nothing: the runtime's next ask gets it. The docs say nothing of a
/// repeated or dropped <c>…/next</c>; this follows AWS's own runtime interface emulator
/// (https://github.com/aws/aws-lambda-runtime-interface-emulator, <c>internal/lambda/rapi/handler/invocationnext.go</c>:
/// a <c>…/next</c> in the "running" state renders the current event again, <c>internal/lambda/core/states.go</c>);</item>
/// <item><c>POST …/invocation/{id}/response</c>: 202 and the invocation succeeds with that body; 400 for an id that is not the
/// invocation in progress; 413 beyond the 6 MB synchronous response limit (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html),
/// and the invocation fails;</item>
/// <item><c>POST …/invocation/{id}/error</c> (type in <c>Lambda-Runtime-Function-Error-Type</c>) and
/// <c>POST /2018-06-01/runtime/init/error</c>: 202, the invocation (or the environment) fails;</item>
/// <item>one invocation at a time per environment: <see cref="InvokeAsync"/> waits for the one before, and its event is
/// not handed out before the one before was answered (or failed);</item>
/// <item>an invocation not answered by the function's timeout fails ("Task timed out").</item>
/// </list>
/// Faults (<see cref="NextStatus"/>, <see cref="ResponseStatus"/>, <see cref="OmitRequestId"/>) make it answer as the spec
/// allows it to fail: 403 or 500 ("Container error. Non-recoverable state. Runtime should exit promptly.").
/// </summary>
public sealed class LambdaRuntimeApi : IAsyncDisposable
{
    /// <summary>The largest synchronous invocation response, in bytes (Lambda's quota: 6 MB).</summary>
    public const int MaxResponseBytes = 6 * 1024 * 1024;

    private const string Prefix = "/2018-06-01/runtime/";

    private readonly WebApplication _app;
    private readonly SemaphoreSlim _oneAtATime = new(1, 1);
    private readonly CancellationTokenSource _stopping = new();
    private TaskCompletionSource<Invocation> _offered = NewOffer();
    private TaskCompletionSource _initialized = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly System.Collections.Concurrent.ConcurrentQueue<string> _reported = new();
    private long _invocations;

    private LambdaRuntimeApi(WebApplication app, string functionArn)
    {
        _app = app;
        FunctionArn = functionArn;
        app.MapGet(Prefix + "invocation/next", NextAsync);
        app.MapPost(Prefix + "invocation/{id}/response", (HttpContext context, string id) => AnswerAsync(context, id, error: false));
        app.MapPost(Prefix + "invocation/{id}/error", (HttpContext context, string id) => AnswerAsync(context, id, error: true));
        app.MapPost(Prefix + "init/error", InitErrorAsync);
    }

    /// <summary>Gets the runtime API's <c>host:port</c>: the function's <c>AWS_LAMBDA_RUNTIME_API</c>.</summary>
    public string RuntimeApi => new Uri(_app.Urls.Single()).Authority;

    /// <summary>Gets the function's ARN, sent with each event.</summary>
    public string FunctionArn { get; }

    /// <summary>Gets a task that completes when the runtime first asks for an event (the end of the init phase), or fails with its init error.</summary>
    public Task Initialized => Volatile.Read(ref _initialized).Task;

    /// <summary>Gets how many invocations the runtime has taken.</summary>
    public long Invocations => Interlocked.Read(ref _invocations);

    /// <summary>Gets or sets the status the next <c>GET …/next</c> answers instead of an event (403, 500); null: an event.</summary>
    public int? NextStatus { get; set; }

    /// <summary>Gets or sets the status the runtime's answers get instead of 202 (400, 403, 413, 500); the invocation then fails. Null: 202.</summary>
    public int? ResponseStatus { get; set; }

    /// <summary>Gets or sets whether events go out without <c>Lambda-Runtime-Aws-Request-Id</c> (a broken runtime API).</summary>
    public bool OmitRequestId { get; set; }

    /// <summary>Gets the error types the runtime reported (<c>…/error</c> and <c>init/error</c>), in order.</summary>
    public IReadOnlyCollection<string> ReportedErrors => _reported;

    /// <summary>Starts the runtime API on a loopback port.</summary>
    /// <param name="functionArn">The function's ARN.</param>
    /// <param name="address">Where to listen (<c>http://127.0.0.1:{port}</c>); <see langword="null"/>: a free port.</param>
    /// <param name="cancellationToken">Cancels the start.</param>
    /// <returns>The started runtime API.</returns>
    public static async Task<LambdaRuntimeApi> StartAsync(string functionArn = "arn:aws:lambda:us-east-1:123456789012:function:talki-authorizer", Uri? address = null, CancellationToken cancellationToken = default)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls(address?.GetLeftPart(UriPartial.Authority) ?? "http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var runtime = new LambdaRuntimeApi(builder.Build(), functionArn);
        await runtime._app.StartAsync(cancellationToken).ConfigureAwait(false);
        return runtime;
    }

    /// <summary>
    /// Invokes the function synchronously with <paramref name="payload"/>: waits for the environment to be free (and
    /// initialized), hands the event to the runtime's next <c>GET …/next</c>, and returns its answer.
    /// </summary>
    /// <param name="payload">The event.</param>
    /// <param name="timeout">The function's timeout; the invocation fails after it.</param>
    /// <param name="cancellationToken">Cancels the wait (the caller gave up).</param>
    /// <returns>The result.</returns>
    public async Task<LambdaInvocationResult> InvokeAsync(byte[] payload, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(payload);
        await _oneAtATime.WaitAsync(cancellationToken).ConfigureAwait(false);
        var run = RunAsync(new Invocation(Guid.NewGuid().ToString(), payload, DateTimeOffset.UtcNow + timeout), timeout);
        return await run.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Runs one invocation while holding the environment: until the runtime answers, or the function's timeout. A caller
    /// that gives up does not end it (a synchronous invocation runs on when its client goes away), so the environment stays
    /// busy and the next invocation still waits for it.
    /// </summary>
    private async Task<LambdaInvocationResult> RunAsync(Invocation invocation, TimeSpan timeout)
    {
        try
        {
            Offer(invocation);
            try
            {
                return await invocation.Result.Task.WaitAsync(timeout).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                invocation.Result.TrySetResult(LambdaInvocationResult.Failure("Sandbox.Timedout", "Task timed out"));
                return await invocation.Result.Task.ConfigureAwait(false);
            }
        }
        finally
        {
            Withdraw(invocation);
            _oneAtATime.Release();
        }
    }

    /// <summary>
    /// A fresh execution environment behind the same address, as after Lambda replaced one (its runtime crashed, or it was
    /// recycled): the invocation in progress fails, and the next invocation waits for the new runtime's first <c>GET …/next</c>.
    /// </summary>
    public void BeginNewEnvironment()
    {
        Current?.Result.TrySetResult(LambdaInvocationResult.Failure("Runtime.ExitError", "The execution environment was replaced."));
        var previous = Interlocked.Exchange(ref _initialized, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        previous.TrySetCanceled();
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        Volatile.Read(ref _initialized).TrySetCanceled();
        Current?.Result.TrySetResult(LambdaInvocationResult.Failure("Runtime.ExitError", "The execution environment was shut down."));
        await _app.DisposeAsync().ConfigureAwait(false);
        _stopping.Dispose(); // _oneAtATime is not disposed: a run ending after this still releases it (it holds no wait handle)
    }

    /// <summary>The invocation offered to the runtime: in progress, or just finished and not yet withdrawn; null between invocations.</summary>
    private Invocation? Current => Volatile.Read(ref _offered).Task is { IsCompletedSuccessfully: true } offered ? offered.Result : null;

    private static TaskCompletionSource<Invocation> NewOffer() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    // Only InvokeAsync offers (one at a time, under _oneAtATime), so the offer it finds holds nothing or a finished invocation.
    private void Offer(Invocation invocation)
    {
        while (true)
        {
            var offer = Volatile.Read(ref _offered);
            if (offer.TrySetResult(invocation))
            {
                return;
            }

            Interlocked.CompareExchange(ref _offered, NewOffer(), offer);
        }
    }

    // Replaces the offer that holds a finished invocation with an empty one (whoever sees it first: InvokeAsync or a …/next).
    private void Withdraw(Invocation finished)
    {
        var offer = Volatile.Read(ref _offered);
        if (offer.Task.IsCompletedSuccessfully && ReferenceEquals(offer.Task.Result, finished))
        {
            Interlocked.CompareExchange(ref _offered, NewOffer(), offer);
        }
    }

    private async Task NextAsync(HttpContext context)
    {
        Volatile.Read(ref _initialized).TrySetResult();
        if (NextStatus is { } refused)
        {
            await WriteErrorAsync(context, refused, refused == 403 ? "Forbidden" : "ContainerError").ConfigureAwait(false);
            return;
        }

        using var waiting = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, _stopping.Token);
        Invocation invocation;
        while (true)
        {
            var offer = Volatile.Read(ref _offered);
            try
            {
                invocation = await offer.Task.WaitAsync(waiting.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return; // the runtime went away, or the environment is shut down
            }

            if (!invocation.Result.Task.IsCompleted)
            {
                break;
            }

            Withdraw(invocation); // answered, timed out or abandoned: wait for the next one
        }

        if (invocation.MarkTaken())
        {
            Interlocked.Increment(ref _invocations);
        }

        var response = context.Response;
        response.StatusCode = StatusCodes.Status200OK;
        if (!OmitRequestId)
        {
            response.Headers["Lambda-Runtime-Aws-Request-Id"] = invocation.RequestId;
        }

        response.Headers["Lambda-Runtime-Deadline-Ms"] = invocation.Deadline.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture);
        response.Headers["Lambda-Runtime-Invoked-Function-Arn"] = FunctionArn;
        response.Headers["Lambda-Runtime-Trace-Id"] = $"Root=1-{invocation.Deadline.ToUnixTimeSeconds():x8}-{invocation.RequestId.Replace("-", string.Empty, StringComparison.Ordinal)[..24]};Parent=9a9197af755a6419;Sampled=0";
        response.ContentType = "application/json";
        response.ContentLength = invocation.Payload.Length;
        try
        {
            await response.Body.WriteAsync(invocation.Payload, context.RequestAborted).ConfigureAwait(false);
        }
        catch (Exception exception) when (exception is OperationCanceledException or IOException)
        {
            // The request went away while the event went out: the event stays in progress for the runtime's next ask.
        }
    }

    private async Task AnswerAsync(HttpContext context, string id, bool error)
    {
        var current = Current;
        if (current is null || !string.Equals(current.RequestId, id, StringComparison.Ordinal) || current.Result.Task.IsCompleted)
        {
            await WriteErrorAsync(context, StatusCodes.Status400BadRequest, "InvalidRequestID").ConfigureAwait(false);
            return;
        }

        var body = await ReadAsync(context.Request, MaxResponseBytes).ConfigureAwait(false);
        if (ResponseStatus is { } refused)
        {
            current.Result.TrySetResult(LambdaInvocationResult.Failure("Runtime.ResponseRefused", $"the runtime API answered {refused}"));
            await WriteErrorAsync(context, refused, refused == 413 ? "RequestEntityTooLarge" : "ContainerError").ConfigureAwait(false);
            return;
        }

        if (body is null)
        {
            current.Result.TrySetResult(LambdaInvocationResult.Failure("Function.ResponseSizeTooLarge", $"Response payload size exceeded maximum allowed payload size ({MaxResponseBytes} bytes)."));
            await WriteErrorAsync(context, StatusCodes.Status413PayloadTooLarge, "RequestEntityTooLarge").ConfigureAwait(false);
            return;
        }

        if (error)
        {
            var type = context.Request.Headers["Lambda-Runtime-Function-Error-Type"].ToString();
            _reported.Enqueue(type);
            current.Result.TrySetResult(LambdaInvocationResult.Failure(type.Length > 0 ? type : "Unhandled", Encoding.UTF8.GetString(body)));
        }
        else
        {
            current.Result.TrySetResult(LambdaInvocationResult.Success(body));
        }

        context.Response.StatusCode = StatusCodes.Status202Accepted;
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync("{\"status\":\"OK\"}").ConfigureAwait(false);
    }

    private async Task InitErrorAsync(HttpContext context)
    {
        var type = context.Request.Headers["Lambda-Runtime-Function-Error-Type"].ToString();
        _reported.Enqueue(type);
        Volatile.Read(ref _initialized).TrySetException(new InvalidOperationException($"The runtime reported an init error ({type})."));
        context.Response.StatusCode = StatusCodes.Status202Accepted;
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync("{\"status\":\"OK\"}").ConfigureAwait(false);
    }

    private static async Task<byte[]?> ReadAsync(HttpRequest request, int limit)
    {
        using var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int read;
        while ((read = await request.Body.ReadAsync(chunk).ConfigureAwait(false)) > 0)
        {
            buffer.Write(chunk, 0, read);
            if (buffer.Length > limit)
            {
                return null;
            }
        }

        return buffer.ToArray();
    }

    private static Task WriteErrorAsync(HttpContext context, int status, string type)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        return context.Response.WriteAsync($"{{\"errorMessage\":\"{type}\",\"errorType\":\"{type}\"}}");
    }

    private sealed class Invocation(string requestId, byte[] payload, DateTimeOffset deadline)
    {
        private int _taken;

        public string RequestId { get; } = requestId;

        public byte[] Payload { get; } = payload;

        public DateTimeOffset Deadline { get; } = deadline;

        public TaskCompletionSource<LambdaInvocationResult> Result { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>Marks the event handed out; true the first time only.</summary>
        public bool MarkTaken() => Interlocked.Exchange(ref _taken, 1) == 0;
    }
}

/// <summary>What a synchronous invocation returned.</summary>
/// <param name="Succeeded">Whether the runtime answered with a response (not an error, a timeout or a refused answer).</param>
/// <param name="Payload">The response body (empty on failure).</param>
/// <param name="ErrorType">The failure's type (<c>Sandbox.Timedout</c>, the runtime's <c>Lambda-Runtime-Function-Error-Type</c>, …).</param>
/// <param name="ErrorMessage">What the failure says.</param>
public sealed record LambdaInvocationResult(bool Succeeded, byte[] Payload, string? ErrorType, string? ErrorMessage)
{
    internal static LambdaInvocationResult Success(byte[] payload) => new(true, payload, null, null);

    internal static LambdaInvocationResult Failure(string type, string message) => new(false, [], type, message);
}
