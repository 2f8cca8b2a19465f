using System.Buffers;
using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Talki.Signalling.Emulator.Deployment;

namespace Talki.Signalling.Emulator;

/// <summary>
/// A local API Gateway WebSocket API on Kestrel at 127.0.0.1, with the Lambda pieces around it. Clients connect to
/// <see cref="WebSocketUrl"/> (<c>$connect</c> invokes the REQUEST authorizer function through the Lambda Web Adapter's
/// pass-through path), text messages go to the <c>$default</c> HTTP integration, closes to <c>$disconnect</c>, and the
/// functions push through the SigV4-verified <c>@connections</c> API at <see cref="ManagementEndpoint"/>. In template mode
/// (<see cref="EmulatorOptions.Template"/>) everything comes from the synthesized CloudFormation template: the functions'
/// role policies are enforced on <c>@connections</c> and on the DynamoDB endpoint (<see cref="DynamoDbEndpoint"/>), the
/// function URLs (<see cref="FunctionUrl"/>) check their resource-based policy and spread requests over the function's
/// instances, and the integrations' request parameters map the headers. Quotas, idle timeout and error shapes follow API Gateway.
/// </summary>
public sealed partial class ApiGatewayEmulator : IAsyncDisposable
{
    private const string ConnectionsSegment = "@connections/";
    private const string EncodedConnectionsSegment = "%40connections/";

    /// <summary>The largest Lambda authorizer result API Gateway accepts (aws-facts.md, WebSocket quotas: 8 KB).</summary>
    internal const int MaxAuthorizerResultBytes = 8 * 1024;

    private readonly EmulatorOptions _options;
    private readonly WebApplication _app;
    private readonly HttpClient _http;
    private readonly ConcurrentDictionary<string, EmulatorConnection> _connections = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, StaleImage[]> _replica = new(StringComparer.Ordinal);
    private readonly ILogger _logger;
    private readonly ListenOptions _main;
    private readonly ListenOptions? _dynamoListener;
    private readonly Dictionary<string, ListenOptions> _urlListeners;
    private readonly Dictionary<int, EmulatedFunctionUrl> _urlsByPort = [];
    private readonly Dictionary<string, FunctionPool> _pools = new(StringComparer.Ordinal);
    private readonly Dictionary<string, LambdaRuntimeApi[]> _runtimes = new(StringComparer.Ordinal);
    private readonly Dictionary<string, EmulatedFunction> _functionsByAccessKey = new(StringComparer.Ordinal);
    private SigV4Verifier _verifier = null!;
    private SigV4Verifier _dynamoVerifier = null!;
    private int _disposed;

    private ApiGatewayEmulator(EmulatorOptions options, WebApplication app, ListenOptions main, ListenOptions? dynamo, Dictionary<string, ListenOptions> urls)
    {
        _options = options;
        _app = app;
        _main = main;
        _dynamoListener = dynamo;
        _urlListeners = urls;
        _http = new HttpClient(new SocketsHttpHandler
        {
            AllowAutoRedirect = false,
            UseCookies = false,
            UseProxy = false,
            AutomaticDecompression = DecompressionMethods.None,
        })
        {
            Timeout = Timeout.InfiniteTimeSpan, // bounded per call (integration timeout, function timeout)
        };
        _logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Talki.Signalling.ApiGatewayEmulator");
    }

    /// <summary>Gets the client URL, <c>ws://127.0.0.1:{port}/{stage}</c>.</summary>
    public Uri WebSocketUrl { get; private set; } = null!;

    /// <summary>Gets the management API endpoint, <c>http://127.0.0.1:{port}</c> (the API lives under <c>/{stage}/@connections/{id}</c>).</summary>
    public Uri ManagementEndpoint { get; private set; } = null!;

    /// <summary>Gets the DynamoDB endpoint (<c>http://127.0.0.1:{port}</c>) when <see cref="EmulatorOptions.DynamoDb"/> is set.</summary>
    public Uri? DynamoDbEndpoint { get; private set; }

    /// <summary>
    /// Gets the base URI (ending in <c>/</c>) of the template's function URL: a browser-facing front door on 127.0.0.1
    /// that checks the URL's resource-based policy and forwards any request to the function's instances. Throws
    /// unless the template has exactly one function URL (see <see cref="FunctionUrls"/>).
    /// </summary>
    public Uri FunctionUrl => FunctionUrls.Count == 1 ? FunctionUrls.Values.Single() : throw new InvalidOperationException($"The deployment has {FunctionUrls.Count} function URLs; use FunctionUrls.");

    /// <summary>Gets the function URLs by function construct id (<c>Backend</c>).</summary>
    public IReadOnlyDictionary<string, Uri> FunctionUrls { get; private set; } = new Dictionary<string, Uri>();

    /// <summary>Gets what the emulator runs (from the template, or the legacy set-up).</summary>
    public EmulatedDeployment Deployment { get; private set; } = null!;

    /// <summary>Gets the stage.</summary>
    public string Stage => Deployment.Stage;

    /// <summary>Gets the API id.</summary>
    public string ApiId => _options.ApiId;

    /// <summary>Gets the region.</summary>
    public string Region => _options.Region;

    /// <summary>Gets the counters.</summary>
    public EmulatorCounters Counters { get; } = new();

    /// <summary>Gets the fault injection switches.</summary>
    public EmulatorFaults Faults { get; } = new();

    /// <summary>Gets the ids of the open connections.</summary>
    public IReadOnlyCollection<string> OpenConnectionIds => [.. _connections.Values.Where(c => c.IsOpen).Select(c => c.Id)];

    /// <summary>
    /// Gets the connection time so far: the ended connections' (<see cref="EmulatorCounters.ConnectionTime"/>) plus the open
    /// ones' until now, on <see cref="EmulatorOptions.TimeProvider"/>. API Gateway bills it in connection-minutes.
    /// </summary>
    public TimeSpan ConnectionTime
    {
        get
        {
            var now = _options.TimeProvider.GetUtcNow();
            return Counters.ConnectionTime + _connections.Values.Where(c => c.IsOpen).Aggregate(TimeSpan.Zero, (sum, c) => sum + (now - c.ConnectedAt));
        }
    }

    /// <summary>Starts an emulator.</summary>
    /// <param name="options">The options: <see cref="EmulatorOptions.Template"/> (template mode) or <see cref="EmulatorOptions.Backend"/> and <see cref="EmulatorOptions.GatewaySecret"/> (legacy mode).</param>
    /// <param name="cancellationToken">Cancels the start.</param>
    /// <returns>The running emulator.</returns>
    public static async Task<ApiGatewayEmulator> StartAsync(EmulatorOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        options.ConfigureLogging?.Invoke(builder.Logging);
        ListenOptions? main = null;
        ListenOptions? dynamo = null;
        var urls = new Dictionary<string, ListenOptions>(StringComparer.Ordinal);
        var urlLogicalIds = options.Template is null ? [] : EmulatedDeployment.FunctionUrlLogicalIds(options.Template);
        builder.WebHost.UseKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = null; // function URLs and DynamoDB bound their own bodies
            k.Listen(IPAddress.Loopback, options.Port, l => main = l);
            if (options.DynamoDb is not null)
            {
                k.Listen(IPAddress.Loopback, 0, l => dynamo = l);
            }

            foreach (var url in urlLogicalIds)
            {
                k.Listen(IPAddress.Loopback, 0, l => urls[url] = l);
            }
        });
        builder.Services.AddSingleton<IHostLifetime, ManualLifetime>(); // no Ctrl+C handling: DisposeAsync closes connections first
        var app = builder.Build();
        ApiGatewayEmulator? emulator = null;
        app.UseWebSockets(new WebSocketOptions { KeepAliveInterval = TimeSpan.Zero }); // API Gateway sends no pings
        app.Run(context => emulator!.DispatchAsync(context));
        await app.StartAsync(cancellationToken).ConfigureAwait(false);
        emulator = new ApiGatewayEmulator(options, app, main!, dynamo, urls);
        try
        {
            emulator.Initialize();
            await emulator.StartRuntimeApisAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await emulator.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        return emulator;
    }

    /// <summary>
    /// Creates the template's DynamoDB tables in <see cref="EmulatorOptions.DynamoDb"/>, as CloudFormation would (straight to
    /// dynalite, not through the IAM check), unless they exist; waits until they are active.
    /// </summary>
    /// <param name="cancellationToken">Cancels the creation.</param>
    /// <returns>The tables.</returns>
    public async Task<IReadOnlyList<EmulatedTable>> CreateTablesAsync(CancellationToken cancellationToken = default)
    {
        var dynamo = _options.DynamoDb ?? throw new InvalidOperationException("EmulatorOptions.DynamoDb is not set.");
        foreach (var table in Deployment.Tables)
        {
            using var created = await DynaliteAsync(dynamo, "CreateTable", table.CreateTableRequest.ToJsonString(), cancellationToken).ConfigureAwait(false);
            var body = await created.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
            if (!created.IsSuccessStatusCode && !body.Contains("ResourceInUseException", StringComparison.Ordinal))
            {
                throw new InvalidOperationException($"CreateTable {table.Name} failed: {(int)created.StatusCode} {body}");
            }

            for (var attempt = 0; ; attempt++)
            {
                using var described = await DynaliteAsync(dynamo, "DescribeTable", $"{{\"TableName\":\"{table.Name}\"}}", cancellationToken).ConfigureAwait(false);
                if ((await described.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false)).Contains("\"TableStatus\":\"ACTIVE\"", StringComparison.Ordinal))
                {
                    break;
                }

                if (attempt == 200)
                {
                    throw new TimeoutException($"Table {table.Name} did not become active.");
                }

                await Task.Delay(TimeSpan.FromMilliseconds(50), TimeProvider.System, cancellationToken).ConfigureAwait(false);
            }
        }

        return Deployment.Tables;
    }

    /// <summary>Closes every connection with 1001 (each reported to <c>$disconnect</c>) and stops the host.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        var connections = _connections.Values.ToList();
        await Task.WhenAll(connections.Select(c => c.CloseAsync(WebSocketCloseStatus.EndpointUnavailable, "Going away"))).ConfigureAwait(false);

        try
        {
            await Task.WhenAll(connections.Select(c => c.Completion.Task)).WaitAsync(TimeSpan.FromSeconds(10), TimeProvider.System).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // best effort, like $disconnect itself
        }

        await _app.StopAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
        foreach (var runtime in _runtimes.Values.SelectMany(r => r).OfType<LambdaRuntimeApi>())
        {
            await runtime.DisposeAsync().ConfigureAwait(false);
        }

        _http.Dispose();
    }

    /// <summary>
    /// The runtime API of one instance (execution environment) of a function without the Lambda Web Adapter: its runtime
    /// (started with <c>AWS_LAMBDA_RUNTIME_API</c> = the instance's address's authority) takes its events there.
    /// </summary>
    /// <param name="function">The function's construct id (<c>Authorizer</c>).</param>
    /// <param name="index">The instance.</param>
    /// <returns>The runtime API.</returns>
    /// <exception cref="InvalidOperationException">The function has the Web Adapter (its instances are web servers), or no such instance.</exception>
    public LambdaRuntimeApi RuntimeApi(string function, int index = 0)
        => _runtimes.TryGetValue(function, out var runtimes) && index >= 0 && index < runtimes.Length
            ? runtimes[index]
            : throw new InvalidOperationException($"Function {function} has no runtime API instance {index} (a function with the Lambda Web Adapter has web servers as instances).");

    /// <summary>Listens as the runtime API of every instance of each function that has no Web Adapter, at the instance's address.</summary>
    private async Task StartRuntimeApisAsync(CancellationToken cancellationToken)
    {
        foreach (var function in Deployment.Functions.Where(f => !f.UsesWebAdapter))
        {
            if (!_options.Functions.TryGetValue(function.Key, out var instances))
            {
                continue;
            }

            var runtimes = new LambdaRuntimeApi[instances.Instances.Count];
            _runtimes[function.Key] = runtimes;
            for (var i = 0; i < runtimes.Length; i++)
            {
                runtimes[i] = await LambdaRuntimeApi.StartAsync(function.Arn, instances.Instances[i], cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>A new id in API Gateway's style: 16 base64 characters ending in '=' (11 random bytes).</summary>
    internal static string NewId() => Convert.ToBase64String(RandomNumberGenerator.GetBytes(11));

    private static string TraceId(TimeProvider time)
        => $"Root=1-{time.GetUtcNow().ToUnixTimeSeconds():x8}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12))}";

    private string MethodArn => $"arn:{_options.Partition}:execute-api:{_options.Region}:{_options.AccountId}:{_options.ApiId}/{Stage}/$connect";

    private void Initialize()
    {
        var port = _main.IPEndPoint!.Port;
        ManagementEndpoint = new Uri($"http://127.0.0.1:{port}");
        if (_dynamoListener is not null)
        {
            DynamoDbEndpoint = new Uri($"http://127.0.0.1:{_dynamoListener.IPEndPoint!.Port}");
        }

        var urlBases = _urlListeners.ToDictionary(u => u.Key, u => $"http://127.0.0.1:{u.Value.IPEndPoint!.Port}/", StringComparer.Ordinal);
        if (_options.Template is { } template)
        {
            var context = new TemplateContext(_options.Partition, _options.Region, _options.AccountId, _options.UrlSuffix, _options.StackName, _options.ApiId,
                new Dictionary<string, string>(_options.TemplateParameters, StringComparer.Ordinal));
            Deployment = EmulatedDeployment.FromTemplate(template, context, logicalId => urlBases[logicalId]);
        }
        else
        {
            Deployment = EmulatedDeployment.Legacy(_options);
        }

        foreach (var integration in Deployment.Routes.Values)
        {
            foreach (var (header, source) in integration.RequestParameters)
            {
                if (!IsSupportedSource(source))
                {
                    throw new NotSupportedException($"Route {integration.RouteKey}: the emulator does not map {source} into {header}.");
                }
            }
        }

        var credentials = new Dictionary<string, string>(_options.Credentials, StringComparer.Ordinal);
        foreach (var (key, instances) in _options.Functions)
        {
            var function = Deployment.Function(key);
            _pools[function.Key] = new FunctionPool(function.Key, instances.Instances);
            if (instances.AccessKeyId is { } accessKey)
            {
                credentials[accessKey] = instances.SecretAccessKey!;
                _functionsByAccessKey[accessKey] = function;
            }
        }

        if (_options.Template is null)
        {
            _pools["Backend"] = new FunctionPool("Backend", [_options.Backend!]);
        }

        foreach (var function in Deployment.Functions.Where(f => !_pools.ContainsKey(f.Key)))
        {
            _pools[function.Key] = new FunctionPool(function.Key, []);
        }

        _verifier = new SigV4Verifier(credentials, _options.Region, "execute-api") { MaxSkew = _options.MaxSigningSkew, Now = _options.SigningClock.GetUtcNow };
        _dynamoVerifier = new SigV4Verifier(credentials, _options.Region, "dynamodb") { MaxSkew = _options.MaxSigningSkew, Now = _options.SigningClock.GetUtcNow };
        foreach (var url in Deployment.FunctionUrls)
        {
            _urlsByPort[_urlListeners[url.LogicalId].IPEndPoint!.Port] = url;
        }

        FunctionUrls = Deployment.FunctionUrls.ToDictionary(u => u.Function.Key, u => new Uri(urlBases[u.LogicalId]), StringComparer.Ordinal);
        WebSocketUrl = new Uri($"ws://127.0.0.1:{port}/{Stage}");
    }

    private Task DispatchAsync(HttpContext context)
    {
        var localPort = context.Connection.LocalPort;
        if (_dynamoListener is not null && localPort == _dynamoListener.IPEndPoint!.Port)
        {
            return DynamoDbAsync(context);
        }

        if (_urlsByPort.TryGetValue(localPort, out var functionUrl))
        {
            return FunctionUrlAsync(context, functionUrl);
        }

        var rawTarget = context.Features.GetRequiredFeature<IHttpRequestFeature>().RawTarget;
        var question = rawTarget.IndexOf('?', StringComparison.Ordinal);
        var path = question < 0 ? rawTarget : rawTarget[..question];
        var stagePrefix = "/" + Stage;
        if (path == stagePrefix || path == stagePrefix + "/")
        {
            return ConnectAsync(context);
        }

        if (path.StartsWith(stagePrefix + "/", StringComparison.Ordinal))
        {
            var rest = path[(stagePrefix.Length + 1)..];
            string? encodedId = rest.StartsWith(ConnectionsSegment, StringComparison.Ordinal) ? rest[ConnectionsSegment.Length..]
                : rest.StartsWith(EncodedConnectionsSegment, StringComparison.OrdinalIgnoreCase) ? rest[EncodedConnectionsSegment.Length..]
                : null;
            if (encodedId is { Length: > 0 } && !encodedId.Contains('/', StringComparison.Ordinal))
            {
                return ConnectionsAsync(context, rawTarget, Uri.UnescapeDataString(encodedId));
            }
        }

        // API Gateway answers unknown routes with 403 "Missing Authentication Token".
        return WriteErrorAsync(context, StatusCodes.Status403Forbidden, "MissingAuthenticationTokenException", "Missing Authentication Token");
    }

    // ---------------------------------------------------------------- $connect, frames, $disconnect

    private async Task ConnectAsync(HttpContext context)
    {
        if (!context.WebSockets.IsWebSocketRequest)
        {
            context.Response.StatusCode = StatusCodes.Status426UpgradeRequired;
            return;
        }

        // "If any of the specified identity sources is missing, null, or empty, API Gateway returns a 401 Unauthorized
        // response without calling the authorizer Lambda function."
        // (https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-lambda-auth.html)
        var time = _options.TimeProvider;
        var sourceIp = context.Connection.RemoteIpAddress?.ToString() ?? "127.0.0.1";
        var userAgent = context.Request.Headers.UserAgent.ToString();
        var connection = new EmulatorConnection(NewId(), time.GetUtcNow(), sourceIp, userAgent.Length == 0 ? null : userAgent, time);
        var requestId = NewId();
        var authorizer = Deployment.Authorizer;
        if (authorizer is not null
            && (authorizer.QueryIdentitySources.Any(q => string.IsNullOrEmpty(context.Request.Query[q].ToString()))
                || authorizer.HeaderIdentitySources.Any(h => string.IsNullOrEmpty(context.Request.Headers[h].ToString()))))
        {
            Counters.Rejected();
            WriteAccessLog(new AccessLogEvent("$connect", requestId, connection, connection.ConnectedAt, StatusCodes.Status401Unauthorized, "Unauthorized"));
            connection.Dispose();
            await WriteMessageAsync(context, StatusCodes.Status401Unauthorized, "Unauthorized").ConfigureAwait(false);
            return;
        }

        _connections[connection.Id] = connection; // registered but not open: @connections answers 410 until $connect completes
        try
        {
            var status = authorizer is null ? StatusCodes.Status200OK : await AuthorizeAsync(context, connection, authorizer, requestId).ConfigureAwait(false);
            if (status != StatusCodes.Status200OK || Volatile.Read(ref _disposed) != 0)
            {
                Counters.Rejected();
                var message = status switch
                {
                    StatusCodes.Status401Unauthorized => "Unauthorized",
                    StatusCodes.Status403Forbidden => "Forbidden",
                    _ => "Internal server error",
                };
                WriteAccessLog(new AccessLogEvent("$connect", requestId, connection, connection.ConnectedAt, status, message));
                await WriteMessageAsync(context, status, message).ConfigureAwait(false);
                return;
            }

            var completion = Faults.ConnectCompletionDelay;
            if (completion > TimeSpan.Zero)
            {
                await Task.Delay(completion).ConfigureAwait(false); // authorized, $connect not complete: @connections answers 410
            }

            var socket = await context.WebSockets.AcceptWebSocketAsync().ConfigureAwait(false);
            connection.Opened(socket, _options.IdleTimeout, _options.MaxConnectionDuration);
            Counters.Accepted();
            WriteAccessLog(new AccessLogEvent("$connect", requestId, connection, connection.ConnectedAt, StatusCodes.Status200OK));
            await ReceiveLoopAsync(connection, socket).ConfigureAwait(false);
            connection.Ended();
            Counters.Ended(time.GetUtcNow() - connection.ConnectedAt);
            _connections.TryRemove(connection.Id, out _);

            // "$disconnect is a best-effort event. API Gateway will try its best to deliver the $disconnect event to your
            // integration, but it cannot guarantee delivery." (API Gateway developer guide, "Working with the $connect and
            // $disconnect routes", https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-route-keys-connect-disconnect.html.)
            // Faults.LoseDisconnects drops it, as AWS may. It is not ordered after the frames still in flight either.
            // Its integration gets the authorizer's context as $default's does: a $disconnect event carries
            // requestContext.authorizer (boto/boto3#3789, a logged event with its principalId; aws-facts.md §2). That
            // custom keys come with it is inferred from that event, not documented; the backend falls back to the
            // connection's binding when the headers are missing (ApiGatewayCallbacksTests, the absent case).
            if (!Faults.LoseDisconnects && Deployment.Routes.TryGetValue("$disconnect", out var disconnect))
            {
                await CallIntegrationAsync(disconnect, connection, null).ConfigureAwait(false);
            }

            await connection.InFlightAsync().ConfigureAwait(false);
        }
        finally
        {
            _connections.TryRemove(connection.Id, out _);
            connection.Dispose();
            connection.Completion.TrySetResult();
        }
    }

    /// <summary>
    /// Invokes the REQUEST authorizer function; returns 200 (Allow), 403 (Deny) or 500 (the authorizer failed, its result
    /// is invalid, or API Gateway may not invoke it).
    /// </summary>
    private async Task<int> AuthorizeAsync(HttpContext context, EmulatorConnection connection, EmulatedAuthorizer authorizer, string requestId)
    {
        var function = authorizer.Function;
        if (Deployment.EnforcesIam && !MayApiGatewayInvoke(function, authorizer))
        {
            // API Gateway needs lambda:InvokeFunction in the function's resource-based policy; without it the authorizer
            // call fails with a configuration error and the client gets 500
            // (https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-lambda-auth.html,
            // https://docs.aws.amazon.com/lambda/latest/dg/services-apigateway.html#apigateway-permissions).
            Log.AuthorizerNotPermitted(_logger, function.Name);
            return StatusCodes.Status500InternalServerError;
        }

        var methodArn = MethodArn;
        var body = AuthorizerEvent(context, connection, methodArn, requestId);
        Counters.Authorizer();
        var result = await InvokePassThroughAsync(function, body, context.RequestAborted).ConfigureAwait(false);
        if (result is null)
        {
            return StatusCodes.Status500InternalServerError;
        }

        var decision = DecideAuthorizer(result, methodArn);
        if (decision.Status == StatusCodes.Status200OK)
        {
            connection.AuthorizerContext = decision.Context;
        }
        else if (decision.Status == StatusCodes.Status500InternalServerError)
        {
            Log.AuthorizerResultInvalid(_logger, decision.Reason ?? "invalid result");
        }

        return decision.Status;
    }

    private bool MayApiGatewayInvoke(EmulatedFunction function, EmulatedAuthorizer authorizer)
    {
        var sourceArn = $"arn:{_options.Partition}:execute-api:{_options.Region}:{_options.AccountId}:{_options.ApiId}/authorizers/{authorizer.Id}";
        return function.Permissions.Any(p =>
            (p.Principal == "apigateway.amazonaws.com" || p.Principal == "*")
            && IamPolicy.Matches(p.Action, "lambda:InvokeFunction", ignoreCase: true)
            && (p.SourceArn is null || IamPolicy.Matches(p.SourceArn, sourceArn, ignoreCase: false)));
    }

    /// <summary>
    /// Invokes a function with a non-HTTP event through the Lambda Web Adapter: the adapter POSTs the raw event to the
    /// pass-through path (<c>AWS_LWA_PASS_THROUGH_PATH</c>), discards the HTTP status, and returns the response body as the
    /// Lambda result (aws-facts.md §8; https://github.com/awslabs/aws-lambda-web-adapter, "Non-HTTP Event Triggers").
    /// Null when the instance could not be reached or timed out (a function error).
    /// </summary>
    private async Task<byte[]?> InvokePassThroughAsync(EmulatedFunction function, byte[] body, CancellationToken cancellationToken)
    {
        var pool = _pools[function.Key];
        if (pool.Count == 0)
        {
            Log.NoInstance(_logger, function.Key);
            return null;
        }

        using var lease = pool.Acquire();
        if (!function.UsesWebAdapter)
        {
            return await InvokeRuntimeAsync(function, lease.Index, body, cancellationToken).ConfigureAwait(false);
        }

        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(lease.Instance, function.PassThroughPath)) { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        var timeout = function.Timeout < _options.IntegrationTimeout ? function.Timeout : _options.IntegrationTimeout;
        using var timer = new CancellationTokenSource(timeout, TimeProvider.System);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(timer.Token, cancellationToken);
        var started = TimeProvider.System.GetTimestamp();
        var status = 0;
        try
        {
            using var response = await _http.SendAsync(request, linked.Token).ConfigureAwait(false);
            status = (int)response.StatusCode;
            if (!response.IsSuccessStatusCode)
            {
                Log.PassThroughStatus(_logger, function.Key, status);
            }

            return await response.Content.ReadAsByteArrayAsync(linked.Token).ConfigureAwait(false);
        }
        catch (Exception exception) when (exception is HttpRequestException or OperationCanceledException)
        {
            Log.AuthorizerUnreachable(_logger, exception);
            return null;
        }
        finally
        {
            Counters.Invocation(new InvocationRecord(function.Key, lease.Index, "authorizer", function.PassThroughPath, status, TimeProvider.System.GetElapsedTime(started)));
        }
    }

    /// <summary>
    /// Invokes a custom-runtime function through its instance's runtime API (<see cref="LambdaRuntimeApi"/>): the event as it
    /// is, the response body as the result. An invocation during the instance's init waits for it (a cold start), one at a
    /// time per instance. Null for a function error: an error reported by the runtime, a refused answer, or the function's
    /// timeout (API Gateway's own timeout for an authorizer is not modelled apart: the shorter of the two applies).
    /// </summary>
    private async Task<byte[]?> InvokeRuntimeAsync(EmulatedFunction function, int index, byte[] body, CancellationToken cancellationToken)
    {
        var timeout = function.Timeout < _options.IntegrationTimeout ? function.Timeout : _options.IntegrationTimeout;
        var started = TimeProvider.System.GetTimestamp();
        var status = 0;
        try
        {
            var result = await _runtimes[function.Key][index].InvokeAsync(body, timeout, cancellationToken).ConfigureAwait(false);
            status = result.Succeeded ? StatusCodes.Status200OK : StatusCodes.Status502BadGateway;
            if (!result.Succeeded)
            {
                Log.RuntimeInvocationFailed(_logger, function.Key, result.ErrorType ?? "unknown", result.ErrorMessage ?? string.Empty);
                return null;
            }

            return result.Payload;
        }
        catch (OperationCanceledException)
        {
            return null;
        }
        finally
        {
            Counters.Invocation(new InvocationRecord(function.Key, index, "authorizer", "runtime-api", status, TimeProvider.System.GetElapsedTime(started)));
        }
    }

    /// <summary>What API Gateway makes of an authorizer's result.</summary>
    /// <param name="Status">200 (Allow), 403 (Deny) or 500 (invalid result).</param>
    /// <param name="Context">The context, stringified, with <c>principalId</c>.</param>
    /// <param name="Reason">Why the result is invalid.</param>
    internal sealed record AuthorizerDecision(int Status, IReadOnlyDictionary<string, string> Context, string? Reason);

    /// <summary>
    /// Decides on an authorizer result: at most 8 KB (aws-facts.md, quotas: "Lambda authorizer result size 8 KB"); a JSON
    /// object whose <c>policyDocument</c> allows <c>execute-api:Invoke</c> on the method ARN with no statement denying it;
    /// a <c>context</c> of string, number and boolean values only ("you cannot set a JSON object or array as a valid value
    /// of any key in the context map", https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-lambda-authorizer-output.html).
    /// Anything else is an authorizer error: 500.
    /// </summary>
    internal static AuthorizerDecision DecideAuthorizer(byte[] json, string methodArn)
    {
        var empty = new Dictionary<string, string>(StringComparer.Ordinal);
        if (json.Length > MaxAuthorizerResultBytes)
        {
            return new(StatusCodes.Status500InternalServerError, empty, $"result of {json.Length} bytes exceeds {MaxAuthorizerResultBytes}");
        }

        try
        {
            using var document = JsonDocument.Parse(json);
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                return new(StatusCodes.Status500InternalServerError, empty, "result is not a JSON object");
            }

            var context = new Dictionary<string, string>(StringComparer.Ordinal);
            if (root.TryGetProperty("context", out var contextElement) && contextElement.ValueKind != JsonValueKind.Null)
            {
                if (contextElement.ValueKind != JsonValueKind.Object)
                {
                    return new(StatusCodes.Status500InternalServerError, empty, "context is not an object");
                }

                foreach (var property in contextElement.EnumerateObject())
                {
                    // $context.authorizer.<key> is stringified: "1", "true".
                    context[property.Name] = property.Value.ValueKind switch
                    {
                        JsonValueKind.String => property.Value.GetString()!,
                        JsonValueKind.Number => property.Value.GetRawText(),
                        JsonValueKind.True => "true",
                        JsonValueKind.False => "false",
                        _ => null!,
                    };
                    if (context[property.Name] is null)
                    {
                        return new(StatusCodes.Status500InternalServerError, empty, $"context.{property.Name} is {property.Value.ValueKind}, not a string, number or boolean");
                    }
                }
            }

            if (root.TryGetProperty("principalId", out var principal) && principal.ValueKind == JsonValueKind.String)
            {
                context["principalId"] = principal.GetString()!;
            }

            var status = PolicyDecision(root, methodArn);
            return new(status, status == StatusCodes.Status200OK ? context : empty, status == StatusCodes.Status500InternalServerError ? "no policyDocument.Statement" : null);
        }
        catch (JsonException)
        {
            return new(StatusCodes.Status500InternalServerError, empty, "result is not JSON");
        }
    }

    /// <summary>Allow (200) when a statement allows <c>execute-api:Invoke</c> on the method ARN and none denies it; Deny → 403; not a policy → 500.</summary>
    internal static int PolicyDecision(byte[] json, string methodArn)
    {
        try
        {
            using var document = JsonDocument.Parse(json);
            return document.RootElement.ValueKind == JsonValueKind.Object ? PolicyDecision(document.RootElement, methodArn) : StatusCodes.Status500InternalServerError;
        }
        catch (JsonException)
        {
            return StatusCodes.Status500InternalServerError;
        }
    }

    private static int PolicyDecision(JsonElement root, string methodArn)
    {
        if (!root.TryGetProperty("policyDocument", out var policy) || policy.ValueKind != JsonValueKind.Object || !policy.TryGetProperty("Statement", out var statements))
        {
            return StatusCodes.Status500InternalServerError;
        }

        var allowed = false;
        foreach (var statement in statements.ValueKind == JsonValueKind.Array ? statements.EnumerateArray() : Enumerable.Repeat(statements, 1))
        {
            if (statement.ValueKind != JsonValueKind.Object || !Matches(statement, "Action", "execute-api:Invoke", ignoreCase: true) || !Matches(statement, "Resource", methodArn, ignoreCase: false))
            {
                continue;
            }

            var effect = statement.TryGetProperty("Effect", out var e) && e.ValueKind == JsonValueKind.String ? e.GetString() : null;
            if (string.Equals(effect, "Deny", StringComparison.OrdinalIgnoreCase))
            {
                return StatusCodes.Status403Forbidden;
            }

            allowed |= string.Equals(effect, "Allow", StringComparison.OrdinalIgnoreCase);
        }

        return allowed ? StatusCodes.Status200OK : StatusCodes.Status403Forbidden;
    }

    private static bool Matches(JsonElement statement, string property, string value, bool ignoreCase)
    {
        if (!statement.TryGetProperty(property, out var element))
        {
            return false;
        }

        var patterns = element.ValueKind == JsonValueKind.Array ? element.EnumerateArray().Select(x => x.ValueKind == JsonValueKind.String ? x.GetString() : null) : [element.ValueKind == JsonValueKind.String ? element.GetString() : null];
        return patterns.Any(p => p is not null && IamPolicy.Matches(p, value, ignoreCase));
    }

    /// <summary>The documented WebSocket REQUEST authorizer event.</summary>
    private byte[] AuthorizerEvent(HttpContext context, EmulatorConnection connection, string methodArn, string requestId)
    {
        var now = _options.TimeProvider.GetUtcNow();
        var headers = new List<KeyValuePair<string, string[]>>();
        foreach (var header in context.Request.Headers)
        {
            var name = string.Equals(header.Key, "Host", StringComparison.OrdinalIgnoreCase) ? "Host" : header.Key;
            var values = string.Equals(name, "Host", StringComparison.Ordinal) ? [_options.EffectiveDomainName] : header.Value.Select(v => v ?? string.Empty).ToArray();
            headers.Add(new(name, values));
        }

        void AddIfMissing(string name, string value)
        {
            if (!headers.Any(h => string.Equals(h.Key, name, StringComparison.OrdinalIgnoreCase)))
            {
                headers.Add(new(name, [value]));
            }
        }

        AddIfMissing("X-Amzn-Trace-Id", TraceId(_options.TimeProvider));
        AddIfMissing("X-Forwarded-For", connection.SourceIp);
        AddIfMissing("X-Forwarded-Port", "443");
        AddIfMissing("X-Forwarded-Proto", "https");

        var buffer = new ArrayBufferWriter<byte>();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("type", "REQUEST");
            json.WriteString("methodArn", methodArn);
            json.WriteStartObject("headers");
            foreach (var (name, values) in headers)
            {
                json.WriteString(name, string.Join(',', values));
            }

            json.WriteEndObject();
            json.WriteStartObject("multiValueHeaders");
            foreach (var (name, values) in headers)
            {
                json.WriteStartArray(name);
                foreach (var value in values)
                {
                    json.WriteStringValue(value);
                }

                json.WriteEndArray();
            }

            json.WriteEndObject();
            json.WriteStartObject("queryStringParameters");
            foreach (var (name, values) in context.Request.Query)
            {
                json.WriteString(name, values.Count == 0 ? string.Empty : values[^1]);
            }

            json.WriteEndObject();
            json.WriteStartObject("multiValueQueryStringParameters");
            foreach (var (name, values) in context.Request.Query)
            {
                json.WriteStartArray(name);
                foreach (var value in values)
                {
                    json.WriteStringValue(value);
                }

                json.WriteEndArray();
            }

            json.WriteEndObject();
            json.WriteStartObject("stageVariables");
            json.WriteEndObject();
            json.WriteStartObject("requestContext");
            json.WriteString("routeKey", "$connect");
            json.WriteString("eventType", "CONNECT");
            json.WriteString("extendedRequestId", requestId);
            json.WriteString("requestTime", now.ToString("dd/MMM/yyyy:HH:mm:ss +0000", CultureInfo.InvariantCulture));
            json.WriteString("messageDirection", "IN");
            json.WriteString("stage", Stage);
            json.WriteNumber("connectedAt", connection.ConnectedAt.ToUnixTimeMilliseconds());
            json.WriteNumber("requestTimeEpoch", now.ToUnixTimeMilliseconds());
            json.WriteStartObject("identity");
            json.WriteString("sourceIp", connection.SourceIp);
            if (connection.UserAgent is not null)
            {
                json.WriteString("userAgent", connection.UserAgent);
            }

            json.WriteEndObject();
            json.WriteString("requestId", requestId);
            json.WriteString("domainName", _options.EffectiveDomainName);
            json.WriteString("connectionId", connection.Id);
            json.WriteString("apiId", _options.ApiId);
            json.WriteEndObject();
            json.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    private async Task ReceiveLoopAsync(EmulatorConnection connection, WebSocket socket)
    {
        var buffer = new byte[_options.MaxFrameBytes + 1];
        using var message = new MemoryStream();
        while (true)
        {
            ValueWebSocketReceiveResult result;
            try
            {
                result = await socket.ReceiveAsync(buffer.AsMemory(), CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception exception) when (EmulatorConnection.IsSocketGone(exception))
            {
                return; // the connection was lost or aborted
            }

            if (result.MessageType == WebSocketMessageType.Close)
            {
                if (connection.ClientClosed(socket.CloseStatus, socket.CloseStatusDescription))
                {
                    await connection.AcknowledgeCloseAsync().ConfigureAwait(false);
                }

                return;
            }

            if (!connection.IsOpen)
            {
                continue; // closing: drain until the client's close frame
            }

            if (result.MessageType == WebSocketMessageType.Binary)
            {
                await connection.CloseAsync(WebSocketCloseStatus.InvalidMessageType, "Binary frames are not supported").ConfigureAwait(false);
                continue;
            }

            // A receive never spans two frames, so a read longer than the frame limit means a frame over it.
            if (result.Count > _options.MaxFrameBytes || message.Length + result.Count > _options.MaxMessageBytes)
            {
                await connection.CloseAsync(WebSocketCloseStatus.MessageTooBig, "Message too big").ConfigureAwait(false);
                continue;
            }

            message.Write(buffer, 0, result.Count);
            if (!result.EndOfMessage)
            {
                continue;
            }

            var body = message.ToArray();
            message.SetLength(0);
            Counters.Inbound(body.Length);
            connection.Active(resetIdle: true);
            if (Deployment.Routes.TryGetValue("$default", out var route))
            {
                // Frames are not serialised: each one's integration call is dispatched without waiting for the previous one.
                connection.Track(Task.Run(() => HandleFrameAsync(route, connection, body)));
            }
        }
    }

    private async Task HandleFrameAsync(EmulatedIntegration route, EmulatorConnection connection, byte[] body)
    {
        var jitter = Faults.FrameJitter;
        if (jitter > TimeSpan.Zero)
        {
            await Task.Delay(TimeSpan.FromTicks(Random.Shared.NextInt64(jitter.Ticks)), TimeProvider.System).ConfigureAwait(false);
        }

        if (!await CallIntegrationAsync(route, connection, body).ConfigureAwait(false))
        {
            // What API Gateway sends when an integration fails (unreachable or timed out).
            var error = JsonSerializer.SerializeToUtf8Bytes(
                new Dictionary<string, string> { ["message"] = "Internal server error", ["connectionId"] = connection.Id, ["requestId"] = NewId() },
                EmulatorJsonContext.Default.DictionaryStringString);
            await connection.SendAsync(error, _options.MaxFrameBytes, CancellationToken.None).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Calls a route's HTTP_PROXY integration with the headers its request parameters map and those API Gateway forwards.
    /// True unless the integration was unreachable or timed out: its status and body are not returned to the client (without
    /// a route response, proxy responses are one-way: https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-route-response.html),
    /// so a 4xx/5xx of the backend decides nothing for the client.
    /// </summary>
    private async Task<bool> CallIntegrationAsync(EmulatedIntegration integration, EmulatorConnection connection, byte[]? body)
    {
        var isDefault = integration.RouteKey == "$default";
        if (isDefault)
        {
            Counters.DefaultRoute();
        }
        else
        {
            Counters.DisconnectRoute();
        }

        var messageId = isDefault ? NewId() : null;
        var requestId = NewId();
        using var request = new HttpRequestMessage(new HttpMethod(integration.Method), integration.Uri) { Content = new ByteArrayContent(body ?? []) };
        if (isDefault)
        {
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        }

        var headers = request.Headers;
        headers.TryAddWithoutValidation("User-Agent", "AmazonAPIGateway_" + _options.ApiId);
        headers.TryAddWithoutValidation("x-amzn-apigateway-api-id", _options.ApiId);
        headers.TryAddWithoutValidation("X-Amzn-Trace-Id", TraceId(_options.TimeProvider));
        headers.TryAddWithoutValidation("X-Forwarded-For", connection.SourceIp);
        headers.TryAddWithoutValidation("X-Forwarded-Port", "443");
        headers.TryAddWithoutValidation("X-Forwarded-Proto", "https");

        // integration.request.header.{name} = {source} (https://docs.aws.amazon.com/apigateway/latest/developerguide/websocket-api-data-mapping.html).
        foreach (var (name, source) in integration.RequestParameters)
        {
            var value = SourceValue(source, connection, integration.RouteKey, requestId, messageId);
            headers.Remove(name);
            if (value is not null)
            {
                headers.TryAddWithoutValidation(name, value);
            }
        }

        var timeout = integration.Timeout < _options.IntegrationTimeout ? integration.Timeout : _options.IntegrationTimeout;
        using var timer = new CancellationTokenSource(timeout, TimeProvider.System);
        var requestTime = _options.TimeProvider.GetUtcNow();
        var started = TimeProvider.System.GetTimestamp();
        var status = 0;
        string? failure = null;
        try
        {
            using var response = await _http.SendAsync(request, timer.Token).ConfigureAwait(false);
            status = (int)response.StatusCode;
            await response.Content.LoadIntoBufferAsync(timer.Token).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
            {
                Log.IntegrationStatus(_logger, integration.RouteKey, status);
            }

            return true;
        }
        catch (Exception exception) when (exception is HttpRequestException or OperationCanceledException)
        {
            Log.IntegrationFailed(_logger, integration.RouteKey, exception);
            failure = exception is OperationCanceledException ? "Integration timed out" : "Integration unreachable";
            return false;
        }
        finally
        {
            var latency = TimeProvider.System.GetElapsedTime(started);
            // The message's or disconnect's line: 200 once the integration was called, with the integration's own status
            // beside it; 500 and API Gateway's "Internal server error" when it could not be called. Which status API Gateway
            // logs for a message whose integration answered 4xx or 5xx is not documented; a guess here changes no byte
            // count (three digits either way). Written before the integration is counted, so that whoever waits for the
            // count finds the line.
            WriteAccessLog(new AccessLogEvent(
                integration.RouteKey, requestId, connection, requestTime,
                failure is null ? StatusCodes.Status200OK : StatusCodes.Status500InternalServerError,
                failure is null ? null : "Internal server error",
                status, latency, failure));
            Counters.Integration(new IntegrationRecord(integration.RouteKey, status, latency));
        }
    }

    /// <summary>Writes the stage's access-log line for an event (<see cref="StageAccessLog"/>), when the stage writes access logs.</summary>
    private void WriteAccessLog(AccessLogEvent e)
    {
        if (Deployment.AccessLogFormat is { } format)
        {
            Counters.AccessLogLine(StageAccessLog.Render(format, e, _options.ApiId, Stage, _options.EffectiveDomainName));
        }
    }

    private static bool IsSupportedSource(string source)
        => (source.Length >= 2 && source[0] == '\'' && source[^1] == '\'')
           || source.StartsWith("context.", StringComparison.Ordinal)
           || source.StartsWith("stageVariables.", StringComparison.Ordinal);

    /// <summary>
    /// The value of a request parameter source: <c>'static'</c>, <c>context.X</c> (<c>context.authorizer.X</c>
    /// stringified) or <c>stageVariables.X</c> (the emulated stage has none). Null when the source has no value: the
    /// header is then not sent (what API Gateway does with a missing context value is not documented; the emulator leaves
    /// the header out rather than inventing one).
    /// </summary>
    private string? SourceValue(string source, EmulatorConnection connection, string routeKey, string requestId, string? messageId)
    {
        if (source.Length >= 2 && source[0] == '\'' && source[^1] == '\'')
        {
            return source[1..^1];
        }

        const string contextPrefix = "context.";
        return source.StartsWith(contextPrefix, StringComparison.Ordinal)
            ? ContextVariables.Value(source[contextPrefix.Length..], connection, routeKey, requestId, messageId, _options.TimeProvider.GetUtcNow(), _options.ApiId, Stage, _options.EffectiveDomainName)
            : null; // stageVariables.X: the emulated stage has none
    }

    // ---------------------------------------------------------------- @connections

    private async Task ConnectionsAsync(HttpContext context, string rawTarget, string connectionId)
    {
        var verb = context.Request.Method;
        var status = await HandleConnectionsAsync(context, rawTarget, connectionId, verb).ConfigureAwait(false);
        Counters.ConnectionsCall(verb, status);
    }

    private async Task<int> HandleConnectionsAsync(HttpContext context, string rawTarget, string connectionId, string verb)
    {
        // Read the whole body (bounded): the signature covers its hash.
        byte[] body;
        using (var stream = new MemoryStream())
        {
            var limit = (_options.MaxMessageBytes * 8) + 1;
            var chunk = ArrayPool<byte>.Shared.Rent(16 * 1024);
            try
            {
                int read;
                while ((read = await context.Request.Body.ReadAsync(chunk, context.RequestAborted).ConfigureAwait(false)) > 0 && stream.Length <= limit)
                {
                    stream.Write(chunk, 0, read);
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(chunk);
            }

            if (stream.Length > limit)
            {
                return await WriteErrorAsync(context, StatusCodes.Status413PayloadTooLarge, "PayloadTooLargeException", "Request entity too large").ConfigureAwait(false);
            }

            body = stream.ToArray();
        }

        var headers = context.Request.Headers.ToDictionary(
            h => h.Key.ToLowerInvariant(),
            h => string.Join(',', h.Value.Select(v => v?.Trim())),
            StringComparer.Ordinal);
        var signatureError = headers.ContainsKey("authorization") ? _verifier.Verify(new SignedRequest(verb, rawTarget, headers, body)) : "Missing Authentication Token";
        if (signatureError is not null)
        {
            Log.SignatureRejected(_logger, verb, signatureError);
            return await WriteErrorAsync(context, StatusCodes.Status403Forbidden, "ForbiddenException", signatureError).ConfigureAwait(false);
        }

        if (verb is not ("POST" or "GET" or "DELETE"))
        {
            return await WriteErrorAsync(context, StatusCodes.Status403Forbidden, "ForbiddenException", "No method found matching route").ConfigureAwait(false);
        }

        if (Deployment.EnforcesIam)
        {
            // The caller's identity-based policy must allow execute-api:ManageConnections on
            // arn:{partition}:execute-api:{region}:{account}:{api-id}/{stage}/{VERB}/@connections/{connection-id}
            // (https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-control-access-iam.html);
            // otherwise IAM's 403 AccessDeniedException
            // (https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_access-denied.html).
            var resource = $"arn:{_options.Partition}:execute-api:{_options.Region}:{_options.AccountId}:{_options.ApiId}/{Stage}/{verb}/@connections/{connectionId}";
            var accessKey = SigV4Verifier.AccessKeyOf(headers["authorization"]) ?? string.Empty;
            if (!_functionsByAccessKey.TryGetValue(accessKey, out var function) || !function.Policy.Allows("execute-api:ManageConnections", resource))
            {
                Counters.ConnectionsDenied();
                var principal = function?.AssumedRoleArn(_options.Partition, _options.AccountId) ?? $"arn:{_options.Partition}:iam::{_options.AccountId}:user/{accessKey}";
                var message = $"User: {principal} is not authorized to perform: execute-api:ManageConnections on resource: {resource}";
                Log.AccessDenied(_logger, message);
                context.Response.StatusCode = StatusCodes.Status403Forbidden;
                context.Response.Headers["x-amzn-RequestId"] = NewRequestId();
                context.Response.Headers["x-amzn-ErrorType"] = "AccessDeniedException";
                context.Response.ContentType = "application/json";
                await context.Response.WriteAsync(JsonSerializer.Serialize(new Dictionary<string, string> { ["Message"] = message }, EmulatorJsonContext.Default.DictionaryStringString)).ConfigureAwait(false);
                return StatusCodes.Status403Forbidden;
            }
        }

        var latency = Faults.Latency;
        if (latency > TimeSpan.Zero)
        {
            try
            {
                await Task.Delay(latency, _options.TimeProvider, context.RequestAborted).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return 499; // the caller gave up
            }
        }

        if (verb == "POST")
        {
            if (body.Length > _options.MaxMessageBytes)
            {
                return await WriteErrorAsync(context, StatusCodes.Status413PayloadTooLarge, "PayloadTooLargeException", "Request entity too large").ConfigureAwait(false);
            }

            if (Faults.TryTakeFailure(out var failure))
            {
                return await WriteErrorAsync(context, failure, ErrorType(failure), failure == 429 ? "Too Many Requests" : "Injected fault").ConfigureAwait(false);
            }
        }

        if (!_connections.TryGetValue(connectionId, out var connection) || !connection.IsOpen)
        {
            return await WriteErrorAsync(context, StatusCodes.Status410Gone, "GoneException", null).ConfigureAwait(false);
        }

        switch (verb)
        {
            case "POST":
                if (Faults.TryTakeDrop())
                {
                    Counters.Dropped();
                    return WriteEmpty(context, StatusCodes.Status200OK);
                }

                if (!await connection.SendAsync(body, _options.MaxFrameBytes, context.RequestAborted).ConfigureAwait(false))
                {
                    return await WriteErrorAsync(context, StatusCodes.Status410Gone, "GoneException", null).ConfigureAwait(false);
                }

                Counters.Outbound(body.Length);
                connection.Active(_options.PushesResetIdleTimeout);
                return WriteEmpty(context, StatusCodes.Status200OK);

            case "GET":
                context.Response.StatusCode = StatusCodes.Status200OK;
                context.Response.Headers["x-amzn-RequestId"] = NewRequestId();
                context.Response.ContentType = "application/json";
                var info = new ConnectionInfo
                {
                    ConnectedAt = Iso(connection.ConnectedAt),
                    Identity = new ConnectionIdentity { SourceIp = connection.SourceIp, UserAgent = connection.UserAgent },
                    LastActiveAt = Iso(connection.LastActiveAt),
                };
                await context.Response.WriteAsync(JsonSerializer.Serialize(info, EmulatorJsonContext.Default.ConnectionInfo), context.RequestAborted).ConfigureAwait(false);
                return StatusCodes.Status200OK;

            default: // DELETE
                await connection.CloseAsync(WebSocketCloseStatus.NormalClosure, "Connection Closed Normally").ConfigureAwait(false);
                return WriteEmpty(context, StatusCodes.Status204NoContent);
        }
    }

    private static string Iso(DateTimeOffset time) => time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);

    private static string NewRequestId() => Guid.NewGuid().ToString();

    private static string ErrorType(int status) => status switch
    {
        403 => "ForbiddenException",
        410 => "GoneException",
        413 => "PayloadTooLargeException",
        429 => "LimitExceededException",
        503 => "ServiceUnavailableException",
        >= 500 => "InternalServerErrorException",
        _ => "BadRequestException",
    };

    private static int WriteEmpty(HttpContext context, int status)
    {
        context.Response.StatusCode = status;
        context.Response.Headers["x-amzn-RequestId"] = NewRequestId();
        context.Response.ContentLength = 0;
        return status;
    }

    /// <summary>An AWS rest-json error: <c>x-amzn-ErrorType</c>, <c>x-amzn-RequestId</c>, body <c>{"message":…}</c> (<c>{}</c> for 410).</summary>
    private static async Task<int> WriteErrorAsync(HttpContext context, int status, string errorType, string? message)
    {
        context.Response.StatusCode = status;
        context.Response.Headers["x-amzn-RequestId"] = NewRequestId();
        context.Response.Headers["x-amzn-ErrorType"] = errorType;
        context.Response.ContentType = "application/json";
        var body = message is null ? "{}" : JsonSerializer.Serialize(new Dictionary<string, string> { ["message"] = message }, EmulatorJsonContext.Default.DictionaryStringString);
        await context.Response.WriteAsync(body).ConfigureAwait(false);
        return status;
    }

    /// <summary>The upgrade refusal body API Gateway sends, <c>{"message":"Unauthorized"}</c>.</summary>
    private static async Task WriteMessageAsync(HttpContext context, int status, string message)
    {
        context.Response.StatusCode = status;
        context.Response.Headers["x-amzn-RequestId"] = NewRequestId();
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(JsonSerializer.Serialize(new Dictionary<string, string> { ["message"] = message }, EmulatorJsonContext.Default.DictionaryStringString)).ConfigureAwait(false);
    }
}

/// <summary>A host lifetime that neither waits for nor reacts to console signals: the owner of the emulator stops it.</summary>
internal sealed class ManualLifetime : IHostLifetime
{
    public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
