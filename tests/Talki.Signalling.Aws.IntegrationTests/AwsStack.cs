extern alias SampleHost;

using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using Amazon.DynamoDBv2;
using Amazon.Runtime;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Talki.Signalling.Aws.Tests.DynamoDb;
using Talki.Signalling.Emulator;
using Talki.Signalling.Http;
using Talki.Signalling.Protocol;
using SampleHostProgram = SampleHost::Program;

namespace Talki.Signalling.Aws.IntegrationTests;

/// <summary>
/// The AWS path on one machine: WebSocket clients → the API Gateway emulator → the Talki host in AWS mode
/// (DynamoDB store, API Gateway push and callbacks) → dynalite. DynamoDB calls are counted by an HTTP
/// handler on the SDK client.
/// </summary>
internal sealed class AwsStack : IAsyncDisposable
{
    private readonly Func<WebApplicationFactory<SampleHostProgram>> _createHost;
    private WebApplicationFactory<SampleHostProgram> _host;

    private AwsStack(Func<WebApplicationFactory<SampleHostProgram>> createHost, ApiGatewayEmulator emulator, DynamoDbCounter dynamo, Uri hostAddress)
    {
        _createHost = createHost;
        _host = createHost();
        Emulator = emulator;
        Dynamo = dynamo;
        HostAddress = hostAddress;
    }

    public ApiGatewayEmulator Emulator { get; }

    public DynamoDbCounter Dynamo { get; }

    public Uri HostAddress { get; }

    /// <summary>Starts dynalite's table, the emulator, and the sample host (its own Program) in AWS mode on Kestrel.</summary>
    public static async Task<AwsStack> StartAsync(DynaliteFixture dynalite, string table)
    {
        await dynalite.EnsureTableAsync(table);
        const string secret = "integration-gateway-secret-0123456789";
        var hostPort = FreePort();
        var emulator = await ApiGatewayEmulator.StartAsync(new EmulatorOptions
        {
            Backend = new Uri($"http://127.0.0.1:{hostPort}"),
            GatewaySecret = secret,
            Stage = "test",
        });

        var dynamo = new DynamoDbCounter();
        WebApplicationFactory<SampleHostProgram> CreateHost()
        {
        var host = new WebApplicationFactory<SampleHostProgram>().WithWebHostBuilder(web =>
        {
            web.UseSetting("urls", $"http://127.0.0.1:{hostPort}");
            web.UseSetting("Talki:Aws:TableName", table);
            web.UseSetting("Talki:Aws:ApiEndpoint", emulator.ManagementEndpoint.ToString());
            web.UseSetting("Talki:Aws:Stage", emulator.Stage);
            web.UseSetting("Talki:Aws:Region", "us-east-1");
            web.UseSetting("Talki:Aws:GatewaySecret", secret);
            web.UseSetting("Talki:Aws:WebSocketUrl", emulator.WebSocketUrl.ToString());
            web.UseSetting("Talki:Aws:AccessKeyId", EmulatorOptions.DefaultAccessKeyId);
            web.UseSetting("Talki:Aws:SecretAccessKey", EmulatorOptions.DefaultSecretAccessKey);
            web.UseSetting("Talki:IceServers:0", "stun:127.0.0.1:3478");
            web.ConfigureLogging(logging => logging.ClearProviders());

            // The store's DynamoDB client, counting every operation (a handler on the SDK client).
            web.ConfigureTestServices(services => services.AddSingleton<IAmazonDynamoDB>(new AmazonDynamoDBClient(
                new BasicAWSCredentials("local", "local"),
                new AmazonDynamoDBConfig { ServiceURL = dynalite.ServiceUrl, HttpClientFactory = dynamo })));
        });
        host.UseKestrel(hostPort);
        host.StartServer();
        return host;
        }

        return new AwsStack(CreateHost, emulator, dynamo, new Uri($"http://127.0.0.1:{hostPort}"));
    }

    /// <summary>
    /// Restarts the backend mid-call, as Lambda replaces an instance: the process and its memory are gone, the sockets
    /// (held by API Gateway) and the rooms (in DynamoDB) are not. A new instance serves the next integration call.
    /// </summary>
    public async Task RestartBackendAsync()
    {
        await _host.DisposeAsync();
        _host = _createHost();
    }

    public async Task<AwsUser> SignInAsync(string name)
    {
        var user = new AwsUser(HostAddress);
        var response = await user.PostAsync("/talki/session/anonymous", $$$"""{"displayName":"{{{name}}}"}""");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return user;
    }

    public async ValueTask DisposeAsync()
    {
        await Emulator.DisposeAsync();
        await _host.DisposeAsync();
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

/// <summary>Counts DynamoDB operations by their <c>X-Amz-Target</c>.</summary>
internal sealed class DynamoDbCounter : HttpClientFactory
{
    private static readonly string[] ReadOperations = ["GetItem", "Query", "Scan", "BatchGetItem"];

    public ConcurrentDictionary<string, long> Operations { get; } = new(StringComparer.Ordinal);

    public long Reads => Operations.Where(p => ReadOperations.Contains(p.Key)).Sum(p => p.Value);

    public long Writes => Operations.Where(p => !ReadOperations.Contains(p.Key) && p.Key is not ("DescribeTable" or "CreateTable" or "UpdateTimeToLive")).Sum(p => p.Value);

    public void Reset() => Operations.Clear();

    public override HttpClient CreateHttpClient(IClientConfig clientConfig) => new(new CountingHandler(this) { InnerHandler = new SocketsHttpHandler() });

    private sealed class CountingHandler(DynamoDbCounter counter) : DelegatingHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            if (request.Headers.TryGetValues("X-Amz-Target", out var targets))
            {
                var operation = targets.First().Split('.').Last();
                counter.Operations.AddOrUpdate(operation, 1, (_, n) => n + 1);
            }

            return base.SendAsync(request, cancellationToken);
        }
    }
}

/// <summary>A signed-in browser user: cookie carried by hand, sockets through the emulator.</summary>
internal sealed class AwsUser(Uri host) : IDisposable
{
    private readonly HttpClient _http = new(new SocketsHttpHandler { UseCookies = false }) { BaseAddress = host };
    private string? _cookie;

    public List<string> Bodies { get; } = [];

    public async Task<HttpResponseMessage> PostAsync(string path, string body = "{}")
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        if (_cookie is not null)
        {
            request.Headers.Add("Cookie", _cookie);
        }

        var response = await _http.SendAsync(request);
        if (response.Headers.TryGetValues("Set-Cookie", out var cookies) && cookies.FirstOrDefault(c => c.StartsWith("talki.session=", StringComparison.Ordinal)) is { } session)
        {
            _cookie = session.Split(';')[0];
        }

        Bodies.Add(await response.Content.ReadAsStringAsync());
        return response;
    }

    public async Task<TicketResponse> TicketAsync(string path, HttpStatusCode expected)
    {
        var response = await PostAsync(path);
        Assert.Equal(expected, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync(TalkiJsonContext.Default.TicketResponse))!;
    }

    public async Task<AwsSocket> ConnectAsync(TicketResponse ticket)
    {
        var socket = await AwsSocket.OpenAsync(ticket.WebSocketUrl);
        await socket.SendAsync("""{"type":"hello","version":1}""");
        socket.Welcome = await socket.ExpectAsync<WelcomeMessage>();
        return socket;
    }

    public void Dispose() => _http.Dispose();
}

internal sealed class AwsSocket : IAsyncDisposable
{
    private readonly ClientWebSocket _socket;
    private readonly Channel<string> _frames = Channel.CreateUnbounded<string>();
    private readonly List<string> _all = [];
    private readonly List<ServerMessage> _pending = [];
    private readonly Task _receiving;

    private AwsSocket(ClientWebSocket socket)
    {
        _socket = socket;
        _receiving = ReceiveAsync();
    }

    public WelcomeMessage? Welcome { get; set; }

    public IReadOnlyList<string> AllFrames
    {
        get
        {
            lock (_all)
            {
                return [.. _all];
            }
        }
    }

    public static async Task<AwsSocket> OpenAsync(Uri url)
    {
        var socket = new ClientWebSocket();
        socket.Options.CollectHttpResponseDetails = true;
        await socket.ConnectAsync(url, CancellationToken.None);
        return new AwsSocket(socket);
    }

    public static async Task<HttpStatusCode> RefusedStatusAsync(Uri url)
    {
        using var socket = new ClientWebSocket();
        socket.Options.CollectHttpResponseDetails = true;
        await Assert.ThrowsAsync<WebSocketException>(() => socket.ConnectAsync(url, CancellationToken.None));
        return socket.HttpStatusCode;
    }

    public Task SendAsync(string json) => _socket.SendAsync(Encoding.UTF8.GetBytes(json), WebSocketMessageType.Text, true, CancellationToken.None);

    /// <summary>Returns the first message of type <typeparamref name="T"/> matching <paramref name="match"/>; others stay queued for later calls.</summary>
    public async Task<T> ExpectAsync<T>(Func<T, bool>? match = null) where T : ServerMessage
    {
        for (var i = 0; i < _pending.Count; i++)
        {
            if (_pending[i] is T queued && (match?.Invoke(queued) ?? true))
            {
                _pending.RemoveAt(i);
                return queued;
            }
        }

        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        try
        {
            while (true)
            {
                var json = await _frames.Reader.ReadAsync(cts.Token);
                var message = JsonSerializer.Deserialize(json, TalkiJsonContext.Default.ServerMessage)!;
                if (message is T wanted && (match?.Invoke(wanted) ?? true))
                {
                    return wanted;
                }

                _pending.Add(message);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or ChannelClosedException)
        {
            throw new TimeoutException($"No {typeof(T).Name} arrived. Queued: {string.Join(" | ", _pending.Select(m => m.GetType().Name))}");
        }
    }

    public async Task WaitClosedAsync() => await _receiving.WaitAsync(TimeSpan.FromSeconds(20));

    public async ValueTask DisposeAsync()
    {
        if (_socket.State == WebSocketState.Open)
        {
            try
            {
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                await _socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, cts.Token);
            }
            catch (Exception e) when (e is WebSocketException or OperationCanceledException)
            {
            }
        }

        await _receiving.WaitAsync(TimeSpan.FromSeconds(10)).ContinueWith(_ => { }, TaskScheduler.Default);
        _socket.Dispose();
    }

    private async Task ReceiveAsync()
    {
        var buffer = new byte[256 * 1024];
        try
        {
            while (true)
            {
                var total = 0;
                ValueWebSocketReceiveResult result;
                do
                {
                    result = await _socket.ReceiveAsync(buffer.AsMemory(total), CancellationToken.None);
                    total += result.Count;
                }
                while (!result.EndOfMessage && result.MessageType != WebSocketMessageType.Close);

                if (result.MessageType == WebSocketMessageType.Close)
                {
                    if (_socket.State == WebSocketState.CloseReceived)
                    {
                        await _socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);
                    }

                    return;
                }

                var json = Encoding.UTF8.GetString(buffer, 0, total);
                lock (_all)
                {
                    _all.Add(json);
                }

                await _frames.Writer.WriteAsync(json);
            }
        }
        catch (WebSocketException)
        {
        }
        finally
        {
            _frames.Writer.TryComplete();
        }
    }
}
