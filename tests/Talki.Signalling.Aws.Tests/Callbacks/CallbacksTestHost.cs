using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Talki.Signalling.Aws.Callbacks;
using Talki.Signalling.Http;
using Talki.Signalling.Ports;
using Talki.Signalling.Protocol;
using Talki.Signalling.Testing;

namespace Talki.Signalling.Aws.Tests.Callbacks;

/// <summary>
/// A host on Kestrel at 127.0.0.1: AddTalkiSignalling (in-memory store) + AddApiGatewayCallbacks, with a recording
/// push in place of the self-hosted gateway, and an HTTP client that plays API Gateway and the Lambda Web Adapter.
/// </summary>
internal sealed class CallbacksTestHost : IAsyncDisposable
{
    public const string Secret = "s3cr3t-gateway-value-0123456789";
    public const string MethodArn = "arn:aws:execute-api:us-east-1:123456789012:abcdef123/default/$connect";

    private readonly WebApplication _app;
    private readonly ConcurrentDictionary<string, JsonElement> _contexts = new(StringComparer.Ordinal);

    private CallbacksTestHost(WebApplication app, RecordingPush push, RecordingLoggerProvider logs)
    {
        _app = app;
        Push = push;
        Logs = logs;
        Http = new HttpClient(new SocketsHttpHandler { UseCookies = false }) { BaseAddress = new Uri(app.Urls.Single()) };
    }

    public RecordingPush Push { get; }

    /// <summary>Gets the host's lifetime (a Lambda runtime that cannot go on stops it).</summary>
    public Microsoft.Extensions.Hosting.IHostApplicationLifetime Lifetime => _app.Lifetime;

    public RecordingLoggerProvider Logs { get; }

    public HttpClient Http { get; }

    /// <summary>Every response body the test read, to prove connection ids never leak.</summary>
    public ConcurrentQueue<string> ResponseBodies { get; } = new();

    public static async Task<CallbacksTestHost> StartAsync(Action<ApiGatewayCallbacksOptions>? configure = null, Action<Talki.Signalling.Server.TalkiSignallingOptions>? signalling = null, string? lambdaRuntimeApi = null, Action<IServiceCollection>? services = null)
    {
        var push = new RecordingPush();
        var logs = new RecordingLoggerProvider();
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        builder.Logging.SetMinimumLevel(LogLevel.Debug);
        builder.Logging.AddProvider(logs);
        if (signalling is not null)
        {
            builder.Services.Configure(signalling);
        }

        var talki = builder.Services.AddTalkiSignalling().AddApiGatewayCallbacks(options =>
        {
            options.GatewaySecret = Secret;
            configure?.Invoke(options);
        });
        if (lambdaRuntimeApi is not null)
        {
            talki.AddAwsLambdaRuntime(lambdaRuntimeApi);
        }

        services?.Invoke(builder.Services);

        builder.Services.Replace(ServiceDescriptor.Singleton<IConnectionPush>(push));
        var app = builder.Build();
        app.MapTalkiSignalling();
        app.MapTalkiApiGatewayCallbacks();
        await app.StartAsync();
        return new CallbacksTestHost(app, push, logs);
    }

    /// <summary>The documented REQUEST authorizer event (aws-facts.md §2) for a connection and a query string.</summary>
    public static string AuthorizerEvent(string connectionId, IReadOnlyDictionary<string, string>? query)
    {
        using var stream = new MemoryStream();
        using (var json = new Utf8JsonWriter(stream))
        {
            json.WriteStartObject();
            json.WriteString("type", "REQUEST");
            json.WriteString("methodArn", MethodArn);
            json.WriteStartObject("headers");
            json.WriteString("Connection", "upgrade");
            json.WriteString("content-length", "0");
            json.WriteString("Host", "abcdef123.execute-api.us-east-1.amazonaws.com");
            json.WriteString("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits");
            json.WriteString("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==");
            json.WriteString("Sec-WebSocket-Version", "13");
            json.WriteString("Upgrade", "websocket");
            json.WriteString("X-Forwarded-For", "203.0.113.7");
            json.WriteString("X-Forwarded-Port", "443");
            json.WriteString("X-Forwarded-Proto", "https");
            json.WriteEndObject();
            json.WriteStartObject("multiValueHeaders");
            json.WriteStartArray("Upgrade");
            json.WriteStringValue("websocket");
            json.WriteEndArray();
            json.WriteEndObject();
            if (query is not null)
            {
                json.WriteStartObject("queryStringParameters");
                foreach (var (key, value) in query)
                {
                    json.WriteString(key, value);
                }

                json.WriteEndObject();
                json.WriteStartObject("multiValueQueryStringParameters");
                foreach (var (key, value) in query)
                {
                    json.WriteStartArray(key);
                    json.WriteStringValue(value);
                    json.WriteEndArray();
                }

                json.WriteEndObject();
            }

            json.WriteStartObject("stageVariables");
            json.WriteEndObject();
            json.WriteStartObject("requestContext");
            json.WriteString("routeKey", "$connect");
            json.WriteString("eventType", "CONNECT");
            json.WriteString("extendedRequestId", "R0oXAHcwoAMFZcg=");
            json.WriteString("requestTime", "19/Jan/2023:21:13:26 +0000");
            json.WriteString("messageDirection", "IN");
            json.WriteString("stage", "default");
            json.WriteNumber("connectedAt", 1674162806344);
            json.WriteNumber("requestTimeEpoch", 1674162806345);
            json.WriteStartObject("identity");
            json.WriteString("sourceIp", "203.0.113.7");
            json.WriteEndObject();
            json.WriteString("requestId", "R0oXAHcwoAMFZcg=");
            json.WriteString("domainName", "abcdef123.execute-api.us-east-1.amazonaws.com");
            json.WriteString("connectionId", connectionId);
            json.WriteString("apiId", "abcdef123");
            json.WriteEndObject();
            json.WriteEndObject();
        }

        return Encoding.UTF8.GetString(stream.ToArray());
    }

    public static Dictionary<string, string> TicketQuery(string ticket) => new() { ["v"] = "1", ["ticket"] = ticket };

    public async Task<CallbacksUser> SignInAsync(string name)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/talki/session/anonymous")
        {
            Content = new StringContent(JsonSerializer.Serialize(new AnonymousSignInRequest { DisplayName = name }, TalkiJsonContext.Default.AnonymousSignInRequest), Encoding.UTF8, "application/json"),
        };
        using var response = await Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var cookie = response.Headers.GetValues("Set-Cookie").Single(c => c.StartsWith("talki.session=", StringComparison.Ordinal)).Split(';')[0];
        return new CallbacksUser(this, cookie);
    }

    /// <summary>Posts a raw event to the pass-through path, as the Lambda Web Adapter does.</summary>
    public async Task<(HttpStatusCode Status, string Body)> PostEventAsync(string body, string path = "/events")
    {
        using var response = await Http.PostAsync(path, new StringContent(body, Encoding.UTF8, "application/json"));
        var text = await response.Content.ReadAsStringAsync();
        ResponseBodies.Enqueue(text);
        RememberContext(body, text);
        return (response.StatusCode, text);
    }

    /// <summary>Keeps an Allow's context for the connection's later integration calls, as API Gateway does.</summary>
    private void RememberContext(string requestBody, string responseBody)
    {
        try
        {
            using var request = JsonDocument.Parse(requestBody);
            using var response = JsonDocument.Parse(responseBody);
            if (request.RootElement.TryGetProperty("requestContext", out var requestContext)
                && requestContext.TryGetProperty("connectionId", out var id) && id.GetString() is { } connectionId
                && response.RootElement.TryGetProperty("context", out var context)
                && response.RootElement.GetProperty("policyDocument").GetProperty("Statement")[0].GetProperty("Effect").GetString() == "Allow")
            {
                _contexts[connectionId] = context.Clone();
            }
        }
        catch (Exception exception) when (exception is JsonException or KeyNotFoundException or InvalidOperationException or IndexOutOfRangeException)
        {
            // not an authorizer exchange the gateway would keep anything from
        }
    }

    public async Task<AuthorizerAnswer> AuthorizeAsync(string connectionId, IReadOnlyDictionary<string, string>? query)
    {
        var (status, body) = await PostEventAsync(AuthorizerEvent(connectionId, query));
        Assert.Equal(HttpStatusCode.OK, status);
        return AuthorizerAnswer.Parse(body);
    }

    /// <summary>Calls an HTTP integration as API Gateway does (connection id and secret headers, plus what it forwards).</summary>
    public async Task<(HttpStatusCode Status, string Body)> CallIntegrationAsync(
        string path, string? connectionId, string body, string? secret = Secret, Action<HttpRequestMessage>? decorate = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(body, Encoding.UTF8) };
        request.Content.Headers.ContentType = null;
        if (connectionId is not null)
        {
            request.Headers.TryAddWithoutValidation("x-talki-connection-id", connectionId);
            AddContextHeaders(request, connectionId);
        }

        if (secret is not null)
        {
            request.Headers.TryAddWithoutValidation("x-talki-gateway-secret", secret);
        }

        request.Headers.TryAddWithoutValidation("User-Agent", "AmazonAPIGateway_abcdef123");
        request.Headers.TryAddWithoutValidation("x-amzn-apigateway-api-id", "abcdef123");
        decorate?.Invoke(request);
        using var response = await Http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        ResponseBodies.Enqueue(text);
        return (response.StatusCode, text);
    }

    /// <summary>
    /// Whether integration calls carry the authorizer's context as API Gateway maps it
    /// (<c>integration.request.header.x-talki-room = context.authorizer.room</c>, … — values stringified).
    /// </summary>
    public bool MapAuthorizerContext { get; set; } = true;

    private string ContextHeaderPrefix => _app.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<ApiGatewayCallbacksOptions>>().Value.AuthorizerContextHeaderPrefix;

    private void AddContextHeaders(HttpRequestMessage request, string connectionId)
    {
        if (!MapAuthorizerContext || !_contexts.TryGetValue(connectionId, out var context))
        {
            return;
        }

        var prefix = ContextHeaderPrefix;
        foreach (var (key, header) in new[] { ("room", "room"), ("member", "member"), ("epoch", "epoch"), ("sealsAt", "seals-at"), ("resume", "resume") })
        {
            if (context.TryGetProperty(key, out var value))
            {
                request.Headers.TryAddWithoutValidation(prefix + header, value.ValueKind == JsonValueKind.String ? value.GetString() : value.GetRawText());
            }
        }
    }

    public Task<(HttpStatusCode Status, string Body)> SendFrameAsync(string connectionId, string frame, string? secret = Secret, Action<HttpRequestMessage>? decorate = null)
        => CallIntegrationAsync("/talki/aws/default", connectionId, frame, secret, decorate);

    public Task<(HttpStatusCode Status, string Body)> DisconnectAsync(string connectionId, string? secret = Secret)
        => CallIntegrationAsync("/talki/aws/disconnect", connectionId, string.Empty, secret);

    /// <summary>Authorizes a connection with the ticket and says hello; returns the pushed welcome.</summary>
    public async Task<WelcomeMessage> ConnectAsync(string connectionId, TicketResponse ticket)
    {
        var answer = await AuthorizeAsync(connectionId, TicketQuery(ticket.Ticket));
        Assert.Equal("Allow", answer.Effect);
        var (status, body) = await SendFrameAsync(connectionId, """{"type":"hello","version":1}""");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(string.Empty, body);
        return await Push.ExpectAsync<WelcomeMessage>(connectionId);
    }

    public static ErrorResponse ParseError(string body) => JsonSerializer.Deserialize(body, TalkiJsonContext.Default.ErrorResponse)!;

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

/// <summary>A signed-in user of the HTTP API (the session cookie carried by hand: it is Secure, the host is plain HTTP).</summary>
internal sealed class CallbacksUser(CallbacksTestHost host, string cookie)
{
    public async Task<TicketResponse> CreateRoomAsync()
    {
        using var response = await PostAsync("/talki/rooms");
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync(TalkiJsonContext.Default.TicketResponse))!;
    }

    public async Task<TicketResponse> JoinAsync(RoomId room)
    {
        using var response = await PostAsync($"/talki/rooms/{room}/tickets");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync(TalkiJsonContext.Default.TicketResponse))!;
    }

    private async Task<HttpResponseMessage> PostAsync(string path)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent("{}", Encoding.UTF8, "application/json") };
        request.Headers.Add("Cookie", cookie);
        return await host.Http.SendAsync(request);
    }
}

/// <summary>The parts of an authorizer response the tests check.</summary>
internal sealed record AuthorizerAnswer(string PrincipalId, string Version, string Action, string Effect, string Resource, JsonElement? Context, string Raw)
{
    public static AuthorizerAnswer Parse(string body)
    {
        using var document = JsonDocument.Parse(body);
        var root = document.RootElement;
        var policy = root.GetProperty("policyDocument");
        var statement = Assert.Single(policy.GetProperty("Statement").EnumerateArray().ToArray());
        JsonElement? context = root.TryGetProperty("context", out var c) ? c.Clone() : null;
        return new AuthorizerAnswer(
            root.GetProperty("principalId").GetString()!,
            policy.GetProperty(nameof(Version)).GetString()!,
            statement.GetProperty(nameof(Action)).GetString()!,
            statement.GetProperty(nameof(Effect)).GetString()!,
            statement.GetProperty(nameof(Resource)).GetString()!,
            context,
            body);
    }
}

/// <summary>An <see cref="IConnectionPush"/> that records every push and close.</summary>
internal sealed class RecordingPush : IConnectionPush
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);
    private readonly List<(string ConnectionId, string Json)> _pushes = [];
    private readonly List<string> _closes = [];

    public IReadOnlyList<(string ConnectionId, string Json)> Pushes
    {
        get
        {
            lock (_pushes)
            {
                return [.. _pushes];
            }
        }
    }

    public IReadOnlyList<string> Closes
    {
        get
        {
            lock (_pushes)
            {
                return [.. _closes];
            }
        }
    }

    /// <summary>Gets the connections whose pushes answer <see cref="PushOutcome.Gone"/> (API Gateway's 410: a socket that died without a $disconnect yet).</summary>
    public ConcurrentDictionary<string, bool> Gone { get; } = new();

    public ValueTask<PushOutcome> PushAsync(string connectionId, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
    {
        if (Gone.ContainsKey(connectionId))
        {
            return new(PushOutcome.Gone);
        }

        lock (_pushes)
        {
            _pushes.Add((connectionId, Encoding.UTF8.GetString(payload.Span)));
        }

        return new(PushOutcome.Delivered);
    }

    public ValueTask CloseAsync(string connectionId, CancellationToken cancellationToken = default)
    {
        lock (_pushes)
        {
            _closes.Add(connectionId);
        }

        return ValueTask.CompletedTask;
    }

    public IEnumerable<ServerMessage> MessagesTo(string connectionId)
        => Pushes.Where(p => p.ConnectionId == connectionId).Select(p => JsonSerializer.Deserialize(p.Json, TalkiJsonContext.Default.ServerMessage)!);

    /// <summary>Waits until a message of type <typeparamref name="T"/> (matching <paramref name="match"/>) has been pushed to the connection.</summary>
    public async Task<T> ExpectAsync<T>(string connectionId, Func<T, bool>? match = null) where T : ServerMessage
    {
        var deadline = DateTime.UtcNow + Timeout;
        while (true)
        {
            var found = MessagesTo(connectionId).OfType<T>().FirstOrDefault(m => match?.Invoke(m) ?? true);
            if (found is not null)
            {
                return found;
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"No {typeof(T).Name} was pushed. Pushed: {string.Join(" | ", Pushes.Where(p => p.ConnectionId == connectionId).Select(p => p.Json))}");
            }

            await Task.Delay(10);
        }
    }
}
