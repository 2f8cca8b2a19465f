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
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Talki.Signalling.Emulator;

/// <summary>
/// A local API Gateway WebSocket API on Kestrel at 127.0.0.1: clients connect to <see cref="WebSocketUrl"/>
/// (<c>$connect</c> runs the REQUEST authorizer against the backend's <c>/events</c>), text messages go to the backend's
/// <c>$default</c> HTTP integration, closes to <c>$disconnect</c>, and the backend pushes through the SigV4-verified
/// <c>@connections</c> API at <see cref="ManagementEndpoint"/>. Quotas, idle timeout and error shapes follow API Gateway.
/// </summary>
public sealed class ApiGatewayEmulator : IAsyncDisposable
{
    private const string ConnectionsSegment = "@connections/";
    private const string EncodedConnectionsSegment = "%40connections/";

    private readonly EmulatorOptions _options;
    private readonly WebApplication _app;
    private readonly HttpClient _backend;
    private readonly SigV4Verifier _verifier;
    private readonly ConcurrentDictionary<string, EmulatorConnection> _connections = new(StringComparer.Ordinal);
    private readonly ILogger _logger;
    private int _disposed;

    private ApiGatewayEmulator(EmulatorOptions options, WebApplication app)
    {
        _options = options;
        _app = app;
        _backend = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false, UseCookies = false })
        {
            BaseAddress = options.Backend,
            Timeout = Timeout.InfiniteTimeSpan, // bounded per call by IntegrationTimeout
        };
        var clock = options.SigningClock;
        _verifier = new SigV4Verifier(new Dictionary<string, string>(options.Credentials, StringComparer.Ordinal), options.Region, "execute-api")
        {
            MaxSkew = options.MaxSigningSkew,
            Now = clock.GetUtcNow,
        };
        _logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Talki.Signalling.ApiGatewayEmulator");
    }

    /// <summary>Gets the client URL, <c>ws://127.0.0.1:{port}/{stage}</c>.</summary>
    public Uri WebSocketUrl { get; private set; } = null!;

    /// <summary>Gets the management API endpoint, <c>http://127.0.0.1:{port}</c> (the API lives under <c>/{stage}/@connections/{id}</c>).</summary>
    public Uri ManagementEndpoint { get; private set; } = null!;

    /// <summary>Gets the stage.</summary>
    public string Stage => _options.Stage;

    /// <summary>Gets the counters.</summary>
    public EmulatorCounters Counters { get; } = new();

    /// <summary>Gets the fault injection switches.</summary>
    public EmulatorFaults Faults { get; } = new();

    /// <summary>Gets the ids of the open connections.</summary>
    public IReadOnlyCollection<string> OpenConnectionIds => [.. _connections.Values.Where(c => c.IsOpen).Select(c => c.Id)];

    /// <summary>Starts an emulator.</summary>
    /// <param name="options">The options; <see cref="EmulatorOptions.Backend"/> and <see cref="EmulatorOptions.GatewaySecret"/> are required.</param>
    /// <param name="cancellationToken">Cancels the start.</param>
    /// <returns>The running emulator.</returns>
    public static async Task<ApiGatewayEmulator> StartAsync(EmulatorOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        options.ConfigureLogging?.Invoke(builder.Logging);
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, options.Port));
        builder.Services.AddSingleton<IHostLifetime, ManualLifetime>(); // no Ctrl+C handling: DisposeAsync closes connections first
        var app = builder.Build();
        var emulator = new ApiGatewayEmulator(options, app);
        app.UseWebSockets(new WebSocketOptions { KeepAliveInterval = TimeSpan.Zero }); // API Gateway sends no pings
        app.Run(emulator.DispatchAsync);
        await app.StartAsync(cancellationToken).ConfigureAwait(false);
        var address = new Uri(app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.First());
        emulator.ManagementEndpoint = new Uri($"http://127.0.0.1:{address.Port}");
        emulator.WebSocketUrl = new Uri($"ws://127.0.0.1:{address.Port}/{options.Stage}");
        return emulator;
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
        _backend.Dispose();
    }

    /// <summary>A new id in API Gateway's style: 16 base64 characters ending in '=' (11 random bytes).</summary>
    internal static string NewId() => Convert.ToBase64String(RandomNumberGenerator.GetBytes(11));

    private static string TraceId(TimeProvider time)
        => $"Root=1-{time.GetUtcNow().ToUnixTimeSeconds():x8}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12))}";

    private Task DispatchAsync(HttpContext context)
    {
        var rawTarget = context.Features.GetRequiredFeature<IHttpRequestFeature>().RawTarget;
        var question = rawTarget.IndexOf('?', StringComparison.Ordinal);
        var path = question < 0 ? rawTarget : rawTarget[..question];
        var stagePrefix = "/" + _options.Stage;
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

        var query = context.Request.Query;
        if (string.IsNullOrEmpty(query[_options.IdentitySourceQueryParameter].ToString()))
        {
            Counters.Rejected();
            await WriteMessageAsync(context, StatusCodes.Status401Unauthorized, "Unauthorized").ConfigureAwait(false);
            return;
        }

        var time = _options.TimeProvider;
        var sourceIp = context.Connection.RemoteIpAddress?.ToString() ?? "127.0.0.1";
        var userAgent = context.Request.Headers.UserAgent.ToString();
        var connection = new EmulatorConnection(NewId(), time.GetUtcNow(), sourceIp, userAgent.Length == 0 ? null : userAgent, time);
        _connections[connection.Id] = connection; // registered but not open: @connections answers 410 until $connect completes
        try
        {
            var status = await AuthorizeAsync(context, connection).ConfigureAwait(false);
            if (status != StatusCodes.Status200OK || Volatile.Read(ref _disposed) != 0)
            {
                Counters.Rejected();
                await WriteMessageAsync(context, status, status switch
                {
                    StatusCodes.Status401Unauthorized => "Unauthorized",
                    StatusCodes.Status403Forbidden => "Forbidden",
                    _ => "Internal server error",
                }).ConfigureAwait(false);
                return;
            }

            var socket = await context.WebSockets.AcceptWebSocketAsync().ConfigureAwait(false);
            connection.Opened(socket, _options.IdleTimeout, _options.MaxConnectionDuration);
            Counters.Accepted();
            await ReceiveLoopAsync(connection, socket).ConfigureAwait(false);
            connection.Ended();
            Counters.Ended(time.GetUtcNow() - connection.ConnectedAt);
            _connections.TryRemove(connection.Id, out _);

            // "$disconnect is a best-effort event. API Gateway will try its best to deliver the $disconnect event to your
            // integration, but it cannot guarantee delivery." (API Gateway developer guide, "Working with the $connect and
            // $disconnect routes".) Faults.LoseDisconnects drops it, as AWS may.
            if (!Faults.LoseDisconnects)
            {
                await PostIntegrationAsync(_options.DisconnectRoutePath, connection, null).ConfigureAwait(false);
            }
        }
        finally
        {
            _connections.TryRemove(connection.Id, out _);
            connection.Dispose();
            connection.Completion.TrySetResult();
        }
    }

    /// <summary>Calls the REQUEST authorizer; returns 200 (Allow), 401, 403 (Deny) or 500 (authorizer failure).</summary>
    private async Task<int> AuthorizeAsync(HttpContext context, EmulatorConnection connection)
    {
        var methodArn = _options.MethodArn;
        var body = AuthorizerEvent(context, connection, methodArn);
        Counters.Authorizer();
        using var request = new HttpRequestMessage(HttpMethod.Post, _options.AuthorizerPath) { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using var timeout = new CancellationTokenSource(_options.IntegrationTimeout, TimeProvider.System);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, context.RequestAborted);
        try
        {
            using var response = await _backend.SendAsync(request, linked.Token).ConfigureAwait(false);
            if (response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
            {
                return (int)response.StatusCode;
            }

            if (!response.IsSuccessStatusCode)
            {
                Log.AuthorizerFailed(_logger, (int)response.StatusCode);
                return StatusCodes.Status500InternalServerError;
            }

            var json = await response.Content.ReadAsByteArrayAsync(linked.Token).ConfigureAwait(false);
            return PolicyDecision(json, methodArn);
        }
        catch (Exception exception) when (exception is HttpRequestException or OperationCanceledException)
        {
            Log.AuthorizerUnreachable(_logger, exception);
            return StatusCodes.Status500InternalServerError;
        }
    }

    /// <summary>Allow (200) when a statement allows <c>execute-api:Invoke</c> on the method ARN and none denies it; Deny → 403; not a policy → 500.</summary>
    internal static int PolicyDecision(byte[] json, string methodArn)
    {
        try
        {
            using var document = JsonDocument.Parse(json);
            if (!document.RootElement.TryGetProperty("policyDocument", out var policy) || !policy.TryGetProperty("Statement", out var statements))
            {
                return StatusCodes.Status500InternalServerError;
            }

            var allowed = false;
            foreach (var statement in statements.ValueKind == JsonValueKind.Array ? statements.EnumerateArray() : Enumerable.Repeat(statements, 1))
            {
                if (!Matches(statement, "Action", "execute-api:Invoke") || !Matches(statement, "Resource", methodArn))
                {
                    continue;
                }

                var effect = statement.TryGetProperty("Effect", out var e) ? e.GetString() : null;
                if (string.Equals(effect, "Deny", StringComparison.OrdinalIgnoreCase))
                {
                    return StatusCodes.Status403Forbidden;
                }

                allowed |= string.Equals(effect, "Allow", StringComparison.OrdinalIgnoreCase);
            }

            return allowed ? StatusCodes.Status200OK : StatusCodes.Status403Forbidden;
        }
        catch (Exception exception) when (exception is JsonException or InvalidOperationException)
        {
            return StatusCodes.Status500InternalServerError;
        }
    }

    private static bool Matches(JsonElement statement, string property, string value)
    {
        if (!statement.TryGetProperty(property, out var element))
        {
            return false;
        }

        var patterns = element.ValueKind == JsonValueKind.Array ? element.EnumerateArray().Select(x => x.GetString()) : [element.GetString()];
        return patterns.Any(p => p is not null && Glob(p, value));
    }

    /// <summary>IAM wildcard matching: <c>*</c> any run, <c>?</c> one character.</summary>
    private static bool Glob(string pattern, string value)
    {
        if (!pattern.Contains('*', StringComparison.Ordinal) && !pattern.Contains('?', StringComparison.Ordinal))
        {
            return string.Equals(pattern, value, StringComparison.Ordinal);
        }

        var regex = "^" + System.Text.RegularExpressions.Regex.Escape(pattern).Replace("\\*", ".*", StringComparison.Ordinal).Replace("\\?", ".", StringComparison.Ordinal) + "$";
        return System.Text.RegularExpressions.Regex.IsMatch(value, regex, System.Text.RegularExpressions.RegexOptions.None, TimeSpan.FromSeconds(1));
    }

    /// <summary>The documented WebSocket REQUEST authorizer event.</summary>
    private byte[] AuthorizerEvent(HttpContext context, EmulatorConnection connection, string methodArn)
    {
        var now = _options.TimeProvider.GetUtcNow();
        var requestId = NewId();
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
            json.WriteString("stage", _options.Stage);
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
            catch (Exception exception) when (exception is WebSocketException or IOException or ObjectDisposedException or OperationCanceledException)
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
            var ok = await PostIntegrationAsync(_options.DefaultRoutePath, connection, body).ConfigureAwait(false);
            if (!ok)
            {
                // What API Gateway sends when an integration fails (unreachable or timed out).
                var error = JsonSerializer.SerializeToUtf8Bytes(
                    new Dictionary<string, string> { ["message"] = "Internal server error", ["connectionId"] = connection.Id, ["requestId"] = NewId() },
                    EmulatorJsonContext.Default.DictionaryStringString);
                await connection.SendAsync(error, _options.MaxFrameBytes, CancellationToken.None).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// POSTs to an HTTP integration with the mapped headers and those API Gateway forwards; true unless the backend was
    /// unreachable or timed out (its status and body are not returned to the client: proxy responses are one-way).
    /// </summary>
    private async Task<bool> PostIntegrationAsync(string path, EmulatorConnection connection, byte[]? body)
    {
        var isDefault = body is not null;
        if (isDefault)
        {
            Counters.DefaultRoute();
        }
        else
        {
            Counters.DisconnectRoute();
        }

        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new ByteArrayContent(body ?? []) };
        if (isDefault)
        {
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        }

        var headers = request.Headers;
        headers.TryAddWithoutValidation(_options.ConnectionIdHeader, connection.Id);
        headers.TryAddWithoutValidation(_options.GatewaySecretHeader, _options.GatewaySecret);
        headers.TryAddWithoutValidation("Sec-WebSocket-Version", "0"); // the request-parameter mapping workaround
        headers.TryAddWithoutValidation("User-Agent", "AmazonAPIGateway_" + _options.ApiId);
        headers.TryAddWithoutValidation("x-amzn-apigateway-api-id", _options.ApiId);
        headers.TryAddWithoutValidation("X-Amzn-Trace-Id", TraceId(_options.TimeProvider));
        headers.TryAddWithoutValidation("X-Forwarded-For", connection.SourceIp);
        headers.TryAddWithoutValidation("X-Forwarded-Port", "443");
        headers.TryAddWithoutValidation("X-Forwarded-Proto", "https");
        using var timeout = new CancellationTokenSource(_options.IntegrationTimeout, TimeProvider.System);
        try
        {
            using var response = await _backend.SendAsync(request, timeout.Token).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
            {
                Log.IntegrationStatus(_logger, path, (int)response.StatusCode);
            }

            return true;
        }
        catch (Exception exception) when (exception is HttpRequestException or OperationCanceledException)
        {
            Log.IntegrationFailed(_logger, path, exception);
            return false;
        }
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
