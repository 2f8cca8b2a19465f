using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using Talki.Signalling.Http;
using Talki.Signalling.Protocol;
using Talki.Signalling.Server.AspNetCore;

namespace Talki.Signalling.Server.IntegrationTests;

/// <summary>
/// The sample host's composition (AddTalkiSignalling + MapTalkiSignalling) on Kestrel at 127.0.0.1 on a free port, with a
/// fake clock; with <c>connectionLevelUpgrade</c>, the gateway's upgrades are taken at Kestrel's connection level
/// (<c>UseTalkiWebSockets</c>, as in the sample host), and every socket a user connects proves which path served it.
/// </summary>
internal sealed class TestHost : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly HashSet<string> _seenConnectionIds = new(StringComparer.Ordinal);

    private TestHost(WebApplication app, FakeTimeProvider time, bool connectionLevelUpgrade)
    {
        _app = app;
        Time = time;
        ConnectionLevelUpgrade = connectionLevelUpgrade;
        BaseAddress = new Uri(app.Urls.Single());
    }

    public FakeTimeProvider Time { get; }

    /// <summary>Gets the thumbprints of the self-signed certificates the HTTPS tests made (trusted besides the system's).</summary>
    public static System.Collections.Concurrent.ConcurrentDictionary<string, bool> TestCertificates { get; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>A valid certificate, or one of <see cref="TestCertificates"/> (pinned by its SHA-256 thumbprint).</summary>
    public static bool ValidateCertificate(object sender, System.Security.Cryptography.X509Certificates.X509Certificate? certificate, System.Security.Cryptography.X509Certificates.X509Chain? chain, System.Net.Security.SslPolicyErrors errors) =>
        errors == System.Net.Security.SslPolicyErrors.None
        || (certificate is not null && TestCertificates.ContainsKey(certificate.GetCertHashString(System.Security.Cryptography.HashAlgorithmName.SHA256)));

    /// <summary>Gets whether the gateway's upgrades are taken at Kestrel's connection level.</summary>
    public bool ConnectionLevelUpgrade { get; }

    public Uri BaseAddress { get; }

    public SelfHostedGateway Gateway => _app.Services.GetRequiredService<SelfHostedGateway>();

    public IServiceProvider Services => _app.Services;

    /// <summary>Gets every gateway connection id seen by <see cref="RecordConnectionIds"/>.</summary>
    public IReadOnlyCollection<string> SeenConnectionIds
    {
        get
        {
            lock (_seenConnectionIds)
            {
                return [.. _seenConnectionIds];
            }
        }
    }

    public static async Task<TestHost> StartAsync(
        Action<TalkiSignallingOptions>? configure = null,
        Action<IServiceCollection>? services = null,
        FakeTimeProvider? sharedTime = null,
        bool connectionLevelUpgrade = false,
        Action<KestrelServerOptions>? kestrel = null)
    {
        var time = sharedTime ?? new FakeTimeProvider(DateTimeOffset.UtcNow);
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.WebHost.ConfigureKestrel(options =>
        {
            // Endpoint defaults apply to the endpoints configured after them (Listen applies them at once).
            if (connectionLevelUpgrade)
            {
                options.ConfigureEndpointDefaults(endpoint => endpoint.UseTalkiWebSockets());
            }

            kestrel?.Invoke(options);
        });
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton<TimeProvider>(time);
        // Every test user signs in from 127.0.0.1: the per-address sign-in limit is lifted unless a test sets it.
        builder.Services.AddTalkiSignalling(o => o.Limits.SignInsPerAddressPerMinute = 100_000);
        builder.Services.AddTalkiSignalling(configure);
        services?.Invoke(builder.Services);
        var app = builder.Build();
        app.UseCors();
        app.MapTalkiSignalling();
        await app.StartAsync();
        return new TestHost(app, time, connectionLevelUpgrade);
    }

    public void RecordConnectionIds()
    {
        lock (_seenConnectionIds)
        {
            _seenConnectionIds.UnionWith(Gateway.ConnectionIds);
        }
    }

    public async Task<TalkiUser> SignInAsync(string name)
    {
        var user = new TalkiUser(this);
        var response = await user.PostAsync("/talki/session/anonymous", new AnonymousSignInRequest { DisplayName = name });
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return user;
    }

    /// <summary>Stops the host (as a shutdown does: the application's stopping token first); <see cref="DisposeAsync"/> may follow.</summary>
    public Task StopAsync() => _app.StopAsync();

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

/// <summary>A signed-in user: an HTTP client that carries the session cookie by hand (the cookie is Secure; the test host is plain HTTP).</summary>
internal sealed class TalkiUser : IDisposable
{
    private readonly TestHost _host;
    private readonly HttpClient _http;

    public TalkiUser(TestHost host)
    {
        _host = host;
        // The HTTPS tests' host has a self-signed certificate made for the test (on 127.0.0.1 only).
        var handler = new SocketsHttpHandler { UseCookies = false };
        handler.SslOptions.RemoteCertificateValidationCallback = TestHost.ValidateCertificate;
        _http = new HttpClient(handler) { BaseAddress = host.BaseAddress };
    }

    public string? Cookie { get; set; }

    public string? BearerToken { get; set; }

    /// <summary>A POST as a browser page on <paramref name="origin"/> sends it (with the Origin header).</summary>
    public async Task<HttpResponseMessage> PostFromAsync(string origin, string path, string body, string contentType = "application/json")
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(body, Encoding.UTF8, contentType) };
        request.Headers.Add("Origin", origin);
        return await SendAsync(request);
    }

    public List<string> HttpBodies { get; } = [];

    public async Task<HttpResponseMessage> PostAsync(string path, object? body = null, string contentType = "application/json")
    {
        var json = body switch
        {
            null => "{}",
            AnonymousSignInRequest r => JsonSerializer.Serialize(r, TalkiJsonContext.Default.AnonymousSignInRequest),
            string s => s,
            _ => throw new ArgumentException("Unsupported body", nameof(body)),
        };
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(json, Encoding.UTF8, contentType) };
        return await SendAsync(request);
    }

    public async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request)
    {
        if (Cookie is not null)
        {
            request.Headers.Add("Cookie", Cookie);
        }

        if (BearerToken is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", BearerToken);
        }

        var response = await _http.SendAsync(request);
        if (response.Headers.TryGetValues("Set-Cookie", out var setCookies))
        {
            SetCookieHeaders = [.. setCookies];
            var session = setCookies.FirstOrDefault(c => c.StartsWith("talki.session=", StringComparison.Ordinal));
            if (session is not null)
            {
                Cookie = session.Split(';')[0];
            }
        }

        HttpBodies.Add(await response.Content.ReadAsStringAsync());
        return response;
    }

    public IReadOnlyList<string> SetCookieHeaders { get; private set; } = [];

    public async Task<TicketResponse> CreateRoomAsync()
    {
        var response = await PostAsync("/talki/rooms");
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync(TalkiJsonContext.Default.TicketResponse))!;
    }

    public async Task<TicketResponse> JoinAsync(RoomId room)
    {
        var response = await PostAsync($"/talki/rooms/{room}/tickets");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync(TalkiJsonContext.Default.TicketResponse))!;
    }

    public async Task<ErrorResponse> JoinExpectingErrorAsync(RoomId room, HttpStatusCode status)
    {
        var response = await PostAsync($"/talki/rooms/{room}/tickets");
        Assert.Equal(status, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync(TalkiJsonContext.Default.ErrorResponse))!;
    }

    /// <summary>Opens the WebSocket with the ticket, says hello and waits for the welcome.</summary>
    public async Task<TestSocket> ConnectAsync(TicketResponse ticket)
    {
        var socket = await TestSocket.OpenAsync(ticket.WebSocketUrl);

        // Kestrel's HTTP/1.1 answers every request with "Server: Kestrel"; the connection-level upgrade's 101 has no such field.
        Assert.Equal(_host.ConnectionLevelUpgrade, !socket.ResponseHeaders.ContainsKey("Server"));
        _host.Time.Advance(TimeSpan.FromMilliseconds(1)); // as on a real clock, no two hellos share an instant
        await socket.SendAsync("""{"type":"hello","version":1}""");
        socket.Welcome = await socket.ExpectAsync<WelcomeMessage>();
        _host.RecordConnectionIds(); // registered by now: the welcome was pushed through it
        return socket;
    }

    public void Dispose() => _http.Dispose();
}

/// <summary>A real WebSocket client that records every frame it receives.</summary>
internal sealed class TestSocket : IAsyncDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(15);
    private readonly ClientWebSocket _socket;
    private readonly Channel<(string Json, DateTimeOffset ReceivedAt)> _frames = Channel.CreateUnbounded<(string, DateTimeOffset)>();
    private readonly List<string> _all = [];
    private readonly Task _receiving;
    private int _pings;

    private TestSocket(ClientWebSocket socket)
    {
        _socket = socket;

        // Off xUnit's synchronization context: its two threads run every test's continuations, so a frame's receipt
        // (and its timestamp) would wait for whatever other test holds them.
        _receiving = Task.Run(ReceiveAsync);
    }

    /// <summary>Gets when the server's close frame was read off the socket, if it was.</summary>
    public DateTimeOffset? CloseReceivedAt { get; private set; }

    public WelcomeMessage? Welcome { get; set; }

    /// <summary>Gets the header fields of the server's 101 answer.</summary>
    public IReadOnlyDictionary<string, IEnumerable<string>> ResponseHeaders => _socket.HttpResponseHeaders ?? new Dictionary<string, IEnumerable<string>>();

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

    public WebSocketCloseStatus? CloseStatus => _socket.CloseStatus;

    public string? CloseDescription => _socket.CloseStatusDescription;

    public static async Task<TestSocket> OpenAsync(Uri url)
    {
        var socket = new ClientWebSocket();
        socket.Options.CollectHttpResponseDetails = true;
        socket.Options.RemoteCertificateValidationCallback = TestHost.ValidateCertificate; // the HTTPS tests' self-signed certificate
        await socket.ConnectAsync(url, CancellationToken.None);
        return new TestSocket(socket);
    }

    /// <summary>Tries to open a socket and returns the HTTP status of the refused upgrade.</summary>
    public static async Task<HttpStatusCode> RefusedStatusAsync(Uri url)
    {
        using var socket = new ClientWebSocket();
        socket.Options.CollectHttpResponseDetails = true;
        await Assert.ThrowsAsync<WebSocketException>(() => socket.ConnectAsync(url, CancellationToken.None));
        return socket.HttpStatusCode;
    }

    public Task SendAsync(string json) => _socket.SendAsync(Encoding.UTF8.GetBytes(json), WebSocketMessageType.Text, true, CancellationToken.None);

    public Task SendBytesAsync(byte[] bytes, WebSocketMessageType type) => _socket.SendAsync(bytes, type, true, CancellationToken.None);

    /// <summary>Sends one text message as several frames (the last one ends the message).</summary>
    public async Task SendFragmentsAsync(params string[] fragments)
    {
        for (var i = 0; i < fragments.Length; i++)
        {
            await _socket.SendAsync(Encoding.UTF8.GetBytes(fragments[i]), WebSocketMessageType.Text, i == fragments.Length - 1, CancellationToken.None);
        }
    }

    /// <summary>Reads frames until one of type <typeparamref name="T"/> (matching <paramref name="match"/>) arrives; other frames are skipped.</summary>
    public async Task<T> ExpectAsync<T>(Func<T, bool>? match = null) where T : ServerMessage
        => (await ExpectTimedAsync(match)).Message;

    /// <summary>Like <see cref="ExpectAsync{T}"/>, with the instant the frame was read off the socket (not when the caller resumed).</summary>
    public async Task<(T Message, DateTimeOffset ReceivedAt)> ExpectTimedAsync<T>(Func<T, bool>? match = null) where T : ServerMessage
    {
        using var cts = new CancellationTokenSource(Timeout);
        var skipped = new List<string>();
        try
        {
            while (true)
            {
                var (json, receivedAt) = await _frames.Reader.ReadAsync(cts.Token);
                if (JsonSerializer.Deserialize(json, TalkiJsonContext.Default.ServerMessage) is T message && (match?.Invoke(message) ?? true))
                {
                    return (message, receivedAt);
                }

                skipped.Add(json);
            }
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"No {typeof(T).Name} arrived. Skipped: {string.Join(" | ", skipped)}");
        }
        catch (ChannelClosedException)
        {
            throw new InvalidOperationException($"The socket closed ({CloseStatus} {CloseDescription}) before a {typeof(T).Name} arrived. Skipped: {string.Join(" | ", skipped)}");
        }
    }

    /// <summary>
    /// Ping-pong: when it returns, everything the server had queued for this socket before the ping has been
    /// received, and everything else in the channel before the pong is returned (unread until now).
    /// </summary>
    public async Task<IReadOnlyList<ServerMessage>> DrainAsync()
    {
        var id = "barrier-" + Interlocked.Increment(ref _pings);
        await SendAsync($$$"""{"type":"ping","id":"{{{id}}}"}""");
        var before = new List<ServerMessage>();
        using var cts = new CancellationTokenSource(Timeout);
        while (true)
        {
            var (json, _) = await _frames.Reader.ReadAsync(cts.Token);
            var message = JsonSerializer.Deserialize(json, TalkiJsonContext.Default.ServerMessage)!;
            if (message is PongMessage pong && pong.Id == id)
            {
                return before;
            }

            before.Add(message);
        }
    }

    public async Task WaitClosedAsync()
    {
        await _receiving.WaitAsync(Timeout);
    }

    /// <summary>Waits until the server has closed the socket, at most <paramref name="timeout"/>.</summary>
    public Task WaitClosedAsync(TimeSpan timeout) => _receiving.WaitAsync(timeout);

    public async ValueTask DisposeAsync()
    {
        if (_socket.State == WebSocketState.Open)
        {
            try
            {
                await _socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, new CancellationTokenSource(TimeSpan.FromSeconds(5)).Token);
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

                var receivedAt = DateTimeOffset.UtcNow;
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    CloseReceivedAt = receivedAt;
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

                await _frames.Writer.WriteAsync((json, receivedAt));
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
