using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;

namespace Talki.Samples.Browser.EndToEndTests.Wire;

/// <summary>
/// A user of the sample host without a browser, on the wire as a page uses it: the HTTP API with the session cookie (carried
/// by hand: it is Secure and the host is plain HTTP on 127.0.0.1) and the page's <c>Origin</c>, and the gateway's WebSocket.
/// Messages are read by their <c>type</c> only: a black box, as a client in another language would see the host.
/// </summary>
internal sealed class WireClient : IDisposable
{
    private readonly HttpClient _http;
    private readonly string _origin;
    private string? _cookie;

    private WireClient(Uri baseAddress)
    {
        _http = new HttpClient { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(30) };
        _origin = baseAddress.GetLeftPart(UriPartial.Authority);
    }

    /// <summary>Signs in anonymously as <paramref name="name"/>.</summary>
    public static async Task<WireClient> SignInAsync(Uri baseAddress, string name)
    {
        var client = new WireClient(baseAddress);
        using var _ = await client.PostAsync("/talki/session/anonymous", JsonSerializer.Serialize(new { displayName = name }), 200);
        return client;
    }

    /// <summary>Creates a room: the admin's ticket.</summary>
    public async Task<WireTicket> CreateRoomAsync()
    {
        using var body = await PostAsync("/talki/rooms", "{}", 201);
        return WireTicket.From(body.RootElement);
    }

    /// <summary>Asks to join <paramref name="room"/>: a ticket whose socket waits for the admin's answer.</summary>
    public async Task<WireTicket> JoinAsync(string room)
    {
        using var body = await PostAsync($"/talki/rooms/{room}/tickets", "{}", 200);
        return WireTicket.From(body.RootElement);
    }

    public void Dispose() => _http.Dispose();

    private async Task<JsonDocument> PostAsync(string path, string json, int expected)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        request.Headers.Add("Origin", _origin);
        if (_cookie is not null)
        {
            request.Headers.Add("Cookie", _cookie);
        }

        using var response = await _http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == expected, $"POST {path} answered {(int)response.StatusCode}, not {expected}: {text}");
        if (response.Headers.TryGetValues("Set-Cookie", out var cookies)
            && cookies.FirstOrDefault(c => c.StartsWith("talki.session=", StringComparison.Ordinal)) is { } session)
        {
            _cookie = session.Split(';')[0];
        }

        return JsonDocument.Parse(text);
    }
}

/// <summary>A ticket from the HTTP API.</summary>
internal sealed record WireTicket(string Room, string Member, Uri WebSocketUrl)
{
    public static WireTicket From(JsonElement json) => new(
        json.GetProperty("room").GetString()!,
        json.GetProperty("member").GetString()!,
        new Uri(json.GetProperty("webSocketUrl").GetString()!));
}

/// <summary>
/// The gateway's WebSocket. Reading is optional: a socket opened with <c>read: false</c> takes nothing from its connection
/// (the kernel's buffers fill up and the server's sends to it wait) until <see cref="StartReading"/>.
/// </summary>
internal sealed class WireSocket : IAsyncDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(15);
    private readonly ClientWebSocket _socket;
    private readonly Channel<JsonElement> _messages = Channel.CreateUnbounded<JsonElement>();
    private Task _receiving = Task.CompletedTask;
    private int _pings;

    private WireSocket(ClientWebSocket socket) => _socket = socket;

    /// <summary>Gets the close status the server sent, if it closed the socket.</summary>
    public WebSocketCloseStatus? CloseStatus => _socket.CloseStatus;

    /// <summary>Gets whether the connection has ended (a close frame came, or the connection broke) while reading.</summary>
    public bool Ended => _receiving.IsCompleted && _socket.State != WebSocketState.Open;

    /// <summary>Gets the <c>code</c> of every <c>error</c> message received.</summary>
    public List<string> ErrorCodes { get; } = [];

    /// <summary>Gets each <c>error</c> message received as <c>code: message</c> (for a failing assertion to show).</summary>
    public List<string> Errors { get; } = [];

    /// <summary>
    /// Opens the socket with the ticket and says hello; with <paramref name="read"/>, waits for the welcome. The socket's
    /// receive buffer is 4 KiB, so a client that does not read holds little in its kernel.
    /// </summary>
    public static async Task<WireSocket> ConnectAsync(WireTicket ticket, bool read = true)
    {
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = static async (context, cancellationToken) =>
            {
                var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true, ReceiveBufferSize = 4096 };
                try
                {
                    await socket.ConnectAsync(context.DnsEndPoint, cancellationToken);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
        };
        var client = new ClientWebSocket();
        client.Options.KeepAliveInterval = TimeSpan.Zero;
        using var invoker = new HttpMessageInvoker(handler);
        await client.ConnectAsync(ticket.WebSocketUrl, invoker, CancellationToken.None);
        var socket = new WireSocket(client);
        await socket.SendAsync("""{"type":"hello","version":2}""");
        if (read)
        {
            socket.StartReading();
            await socket.ExpectAsync("welcome");
        }

        return socket;
    }

    /// <summary>Starts taking messages from the connection.</summary>
    public void StartReading() => _receiving = ReceiveAsync();

    public Task SendAsync(string json) => _socket.SendAsync(Encoding.UTF8.GetBytes(json), WebSocketMessageType.Text, true, CancellationToken.None);

    /// <summary>Sends a relayed signal carrying one ICE candidate to <paramref name="member"/>.</summary>
    public Task SignalAsync(string member, string candidate) =>
        SendAsync($$$"""{"type":"signal","to":"{{{member}}}","candidates":[{"candidate":"{{{candidate}}}"}]}""");

    /// <summary>Reads messages until one of <paramref name="type"/> (matching <paramref name="match"/>) comes; others are skipped.</summary>
    public async Task<JsonElement> ExpectAsync(string type, Func<JsonElement, bool>? match = null, TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? Timeout);
        var skipped = new List<string>();
        try
        {
            while (true)
            {
                var message = await _messages.Reader.ReadAsync(cts.Token);
                if (message.GetProperty("type").GetString() == type && (match?.Invoke(message) ?? true))
                {
                    return message;
                }

                if (skipped.Count < 20)
                {
                    skipped.Add(message.GetRawText());
                }
            }
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"No '{type}' within {timeout ?? Timeout}. Skipped: {string.Join(" | ", skipped)}");
        }
        catch (ChannelClosedException)
        {
            throw new InvalidOperationException($"The socket closed ({CloseStatus}) before a '{type}'. Skipped: {string.Join(" | ", skipped)}");
        }
    }

    /// <summary>A ping and its pong: everything the server queued for this socket before is read by then.</summary>
    public async Task PingAsync()
    {
        var id = "p" + Interlocked.Increment(ref _pings);
        await SendAsync($$$"""{"type":"ping","id":"{{{id}}}"}""");
        await ExpectAsync("pong", m => m.TryGetProperty("id", out var pong) && pong.GetString() == id);
    }

    /// <summary>Waits until the server has ended the connection (a close frame, or the connection's end).</summary>
    public Task WaitClosedAsync(TimeSpan timeout) => _receiving.WaitAsync(timeout);

    public async ValueTask DisposeAsync()
    {
        if (_socket.State == WebSocketState.Open)
        {
            try
            {
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                await _socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, cts.Token);
            }
            catch (Exception e) when (e is WebSocketException or OperationCanceledException or IOException)
            {
            }
        }

        _socket.Abort();
        await _receiving.WaitAsync(TimeSpan.FromSeconds(10)).ContinueWith(_ => { }, TaskScheduler.Default);
        _socket.Dispose();
    }

    private async Task ReceiveAsync()
    {
        var buffer = new byte[64 * 1024];
        try
        {
            while (true)
            {
                var total = 0;
                ValueWebSocketReceiveResult result;
                do
                {
                    if (total == buffer.Length)
                    {
                        Array.Resize(ref buffer, buffer.Length * 2);
                    }

                    result = await _socket.ReceiveAsync(buffer.AsMemory(total), CancellationToken.None);
                    total += result.Count;
                }
                while (!result.EndOfMessage && result.MessageType != WebSocketMessageType.Close);

                if (result.MessageType == WebSocketMessageType.Close)
                {
                    return;
                }

                var message = JsonDocument.Parse(buffer.AsMemory(0, total)).RootElement.Clone();
                if (message.GetProperty("type").GetString() == "error" && message.TryGetProperty("code", out var code))
                {
                    lock (ErrorCodes)
                    {
                        ErrorCodes.Add(code.GetString() ?? "");
                        Errors.Add($"{code.GetString()}: {(message.TryGetProperty("message", out var text) ? text.GetString() : null)}");
                    }
                }

                await _messages.Writer.WriteAsync(message);
            }
        }
        catch (Exception e) when (e is WebSocketException or IOException or OperationCanceledException)
        {
            // The connection ended without a close frame (an abort): the server let go of it.
        }
        finally
        {
            _messages.Writer.TryComplete();
        }
    }
}
