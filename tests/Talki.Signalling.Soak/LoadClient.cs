using System.Buffers;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using Talki.Signalling.Http;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Soak;

/// <summary>A signed-in user of the HTTP API, with a bearer token (no cookies: thousands of users share one client).</summary>
public sealed class LoadUser
{
    private readonly HttpClient _http;
    private string? _token;

    public LoadUser(HttpClient http, string displayName)
    {
        _http = http;
        DisplayName = displayName;
    }

    public string DisplayName { get; }

    public async Task SignInAsync()
    {
        var body = JsonSerializer.Serialize(new AnonymousSignInRequest { DisplayName = DisplayName, UseBearerToken = true }, TalkiJsonContext.Default.AnonymousSignInRequest);
        using var response = await SendAsync("/talki/session/anonymous", body);
        await EnsureAsync(response, HttpStatusCode.OK);
        var session = await response.Content.ReadFromJsonAsync(TalkiJsonContext.Default.SessionResponse);
        _token = session?.AccessToken ?? throw new InvalidOperationException("The sign-in returned no access token.");
    }

    public async Task<TicketResponse> CreateRoomAsync()
    {
        using var response = await SendAsync("/talki/rooms", "{}");
        await EnsureAsync(response, HttpStatusCode.Created);
        return (await response.Content.ReadFromJsonAsync(TalkiJsonContext.Default.TicketResponse))!;
    }

    public async Task<TicketResponse> JoinAsync(RoomId room)
    {
        using var response = await SendAsync($"/talki/rooms/{room}/tickets", "{}");
        await EnsureAsync(response, HttpStatusCode.OK);
        return (await response.Content.ReadFromJsonAsync(TalkiJsonContext.Default.TicketResponse))!;
    }

    /// <summary>One HTTP client for a load: no cookies, no connection limit.</summary>
    public static HttpClient NewHttpClient(Uri baseAddress) =>
        new(new SocketsHttpHandler { UseCookies = false, PooledConnectionLifetime = TimeSpan.FromMinutes(10) }) { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(60) };

    private async Task<HttpResponseMessage> SendAsync(string path, string json)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        if (_token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _token);
        }

        return await _http.SendAsync(request);
    }

    private async Task EnsureAsync(HttpResponseMessage response, HttpStatusCode expected)
    {
        if (response.StatusCode != expected)
        {
            throw new InvalidOperationException($"{DisplayName}: {response.RequestMessage?.RequestUri?.AbsolutePath} answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        }
    }
}

/// <summary>Which WebSocket client a <see cref="LoadSocket"/> runs on.</summary>
public enum LoadTransport
{
    /// <summary><see cref="ClientWebSocket"/>, the runtime's client.</summary>
    ClientWebSocket,

    /// <summary><see cref="LeanClientWebSocket"/>: the same frames for a fraction of the client's CPU (loopback only).</summary>
    Lean,
}

/// <summary>
/// Handles a received text frame from its bytes, before (and instead of) parsing it: returns whether it did. The span is
/// valid only during the call.
/// </summary>
public delegate bool RawFrameHandler(LoadSocket socket, ReadOnlySpan<byte> frame, long timestamp);

/// <summary>A frame received by a <see cref="LoadSocket"/>: its <c>type</c>, the parsed root, and when it arrived.</summary>
public readonly record struct LoadFrame(string Type, JsonElement Root, long Timestamp, DateTimeOffset ReceivedAt);

/// <summary>
/// A real WebSocket client for load: one send at a time, frames in the order they were given. A frame given while a send
/// is in progress waits in the socket's queue, and whichever thread completes that send goes on with the queue; one given
/// while the socket is free is sent on the thread pool, or on the caller's own thread when it asks
/// (<see cref="SendRented(byte[], int, bool)"/>, as a browser's <c>send()</c> writes from its one thread). A frame handler
/// never waits for the socket. A receive loop hands every text frame, parsed, to the handler on the receive loop.
/// </summary>
/// <remarks>
/// Until 2026-12-05 every frame went through an unbounded channel to a send loop of its own: at saturation, a rented array
/// returned on another thread than the one that rented it left <see cref="ArrayPool{T}.Shared"/> short, and the tool
/// allocated about 400 bytes a message (docs/performance.md, "The load tool's sends").
/// </remarks>
public sealed class LoadSocket : IAsyncDisposable
{
    private readonly WebSocket _socket;
    private readonly Action<LoadSocket, LoadFrame> _onFrame;
    private readonly Lock _sendGate = new();
    private readonly Queue<Outbound> _pending = new();
    private readonly TaskCompletionSource _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private bool _sendBusy; // a frame is being sent: the next ones queue in _pending (under _sendGate)
    private bool _sendClosed; // no new frame is taken: the socket was disposed, or its receive loop ended (under _sendGate)
    private Task? _receiving;
    private long _sent;
    private long _sendFailures;
    private long _received;
    private long _handlerFailures;
    private long _queued;

    private LoadSocket(WebSocket socket, Action<LoadSocket, LoadFrame> onFrame)
    {
        _socket = socket;
        _onFrame = onFrame;
    }

    /// <summary>Gets or sets what the scenario keeps with the socket.</summary>
    public object? State { get; set; }

    /// <summary>
    /// Gets or sets which WebSocket client <see cref="ConnectAsync(Uri, Action{LoadSocket, LoadFrame}, CancellationToken)"/>
    /// uses (set once by a load tool before it connects; the default is the runtime's <see cref="ClientWebSocket"/>).
    /// </summary>
    public static LoadTransport DefaultTransport { get; set; } = LoadTransport.ClientWebSocket;

    /// <summary>Gets or sets a handler that takes frames it recognises from their bytes, unparsed (the load's relayed messages).</summary>
    public RawFrameHandler? RawFrame { get; set; }

    /// <summary>Gets the number of frames handed to the WebSocket without error.</summary>
    public long Sent => Interlocked.Read(ref _sent);

    /// <summary>Gets the number of queued frames that could not be sent (the socket had closed).</summary>
    public long SendFailures => Interlocked.Read(ref _sendFailures);

    public long Received => Interlocked.Read(ref _received);

    /// <summary>Gets the number of received frames the handler threw on.</summary>
    public long HandlerFailures => Interlocked.Read(ref _handlerFailures);

    public string? LastHandlerFailure { get; private set; }

    /// <summary>Gets a task that completes when the receive loop has ended (the server closed, or the connection broke).</summary>
    public Task Closed => _closed.Task;

    public WebSocketCloseStatus? CloseStatus => _socket.CloseStatus;

    public string? CloseDescription => _socket.CloseStatusDescription;

    /// <summary>Gets when the close frame (or the break) arrived.</summary>
    public DateTimeOffset? ClosedAt { get; private set; }

    /// <summary>Gets whether this side closed the socket (<see cref="DisposeAsync"/>) rather than the server.</summary>
    public bool ClosedByClient { get; private set; }

    public static Task<LoadSocket> ConnectAsync(Uri url, Action<LoadSocket, LoadFrame> onFrame, CancellationToken cancellationToken = default)
        => ConnectAsync(url, onFrame, DefaultTransport, cancellationToken);

    public static async Task<LoadSocket> ConnectAsync(Uri url, Action<LoadSocket, LoadFrame> onFrame, LoadTransport transport, CancellationToken cancellationToken = default)
    {
        WebSocket client;
        if (transport == LoadTransport.Lean)
        {
            client = await LeanClientWebSocket.ConnectAsync(url, cancellationToken);
        }
        else
        {
            var runtime = new ClientWebSocket();
            runtime.Options.KeepAliveInterval = TimeSpan.Zero;
            try
            {
                await runtime.ConnectAsync(url, cancellationToken);
            }
            catch
            {
                runtime.Dispose();
                throw;
            }

            client = runtime;
        }

        var socket = new LoadSocket(client, onFrame);
        // On the thread pool, never on a caller's synchronization context (xUnit's runs every test's continuations on two
        // threads): a frame's receipt and its timestamp must not wait for whatever else holds that context.
        socket._receiving = Task.Run(socket.ReceiveLoopAsync, CancellationToken.None); // the loop lives as long as the socket, not the connect call
        return socket;
    }

    public void Send(string json) => Send(Encoding.UTF8.GetBytes(json), WebSocketMessageType.Text);

    public void Send(byte[] bytes, WebSocketMessageType type) => Enqueue(new Outbound(bytes, bytes.Length, type, Rented: false), inline: false);

    /// <summary>Sends the first <paramref name="length"/> bytes of <paramref name="rented"/> as a text frame; the array, rented from <see cref="ArrayPool{T}.Shared"/>, goes back to it once sent.</summary>
    /// <param name="rented">The frame's bytes, in an array rented from <see cref="ArrayPool{T}.Shared"/>.</param>
    /// <param name="length">The frame's length.</param>
    /// <param name="inline">
    /// Whether a free socket sends it on this thread (no thread-pool hop: a saturation run's receive loop answering what it
    /// received) rather than on the thread pool (an open-loop schedule serving many sockets from one thread must not wait
    /// for each send).
    /// </param>
    public void SendRented(byte[] rented, int length, bool inline = false) => Enqueue(new Outbound(rented, length, WebSocketMessageType.Text, Rented: true), inline);

    private void Enqueue(Outbound frame, bool inline)
    {
        Interlocked.Increment(ref _queued);
        lock (_sendGate)
        {
            if (_sendClosed)
            {
                Fail(frame);
                return;
            }

            if (_sendBusy)
            {
                _pending.Enqueue(frame);
                return;
            }

            _sendBusy = true;
        }

        if (inline)
        {
            Pump(frame);
        }
        else
        {
            ThreadPool.UnsafeQueueUserWorkItem(static state => state.Socket.Pump(state.Frame), (Socket: this, Frame: frame), preferLocal: false);
        }
    }

    /// <summary>Waits until everything queued so far has been handed to the socket (or failed).</summary>
    public async Task FlushAsync(TimeSpan timeout)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        while (Interlocked.Read(ref _queued) > 0 && Stopwatch.GetTimestamp() < deadline)
        {
            await Task.Delay(5);
        }
    }

    public async ValueTask DisposeAsync()
    {
        lock (_sendGate)
        {
            _sendClosed = true;
        }

        await FlushAsync(TimeSpan.FromSeconds(5)); // what was queued before goes out before the close frame
        if (_socket.State == WebSocketState.Open)
        {
            ClosedByClient = true;
            try
            {
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                await _socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, cts.Token);
            }
            catch (Exception e) when (e is WebSocketException or OperationCanceledException or ObjectDisposedException or InvalidOperationException)
            {
            }
        }

        await Task.WhenAny(_closed.Task, Task.Delay(TimeSpan.FromSeconds(10)));
        _socket.Abort();
        await FlushAsync(TimeSpan.FromSeconds(5)); // a send the abort ended has failed by now: its frame is released
        _socket.Dispose();
    }

    /// <summary>
    /// Sends <paramref name="frame"/>, then each frame queued meanwhile, on this thread for as long as the socket takes
    /// them at once; a send that has to wait continues on its completion (<see cref="ContinueAsync"/>).
    /// </summary>
    private void Pump(Outbound frame)
    {
        while (true)
        {
            ValueTask send;
            try
            {
                send = _socket.SendAsync(frame.Bytes.AsMemory(0, frame.Length), frame.Type, endOfMessage: true, CancellationToken.None);
            }
            catch (Exception e) when (IsSendFailure(e))
            {
                OnSendFailed(frame);
                return;
            }

            if (!send.IsCompleted)
            {
                _ = ContinueAsync(send, frame);
                return;
            }

            try
            {
                send.GetAwaiter().GetResult();
            }
            catch (Exception e) when (IsSendFailure(e))
            {
                OnSendFailed(frame);
                return;
            }

            OnSent(frame);
            if (!TryTakeNext(out frame))
            {
                return;
            }
        }
    }

    private async Task ContinueAsync(ValueTask send, Outbound frame)
    {
        try
        {
            await send.ConfigureAwait(false);
        }
        catch (Exception e) when (IsSendFailure(e))
        {
            OnSendFailed(frame);
            return;
        }

        OnSent(frame);
        if (TryTakeNext(out var next))
        {
            Pump(next);
        }
    }

    /// <summary>The next queued frame, or false with the socket marked free.</summary>
    private bool TryTakeNext(out Outbound next)
    {
        lock (_sendGate)
        {
            if (_pending.TryDequeue(out next))
            {
                return true;
            }

            _sendBusy = false;
            return false;
        }
    }

    // What a send on a closing or broken socket throws (as the send loop caught it), and the socket layer's own errors: a
    // send that fails is counted, never thrown into a receive loop or, worse, out of a thread-pool work item.
    private static bool IsSendFailure(Exception e) => e is WebSocketException or ObjectDisposedException or InvalidOperationException or IOException
        or System.Net.Sockets.SocketException or OperationCanceledException;

    private void OnSent(Outbound frame)
    {
        Interlocked.Increment(ref _sent);
        Interlocked.Decrement(ref _queued);
        frame.Release();
    }

    /// <summary>
    /// A send failed: the frame and everything queued behind it are counted as failures. A socket that can no longer send
    /// takes no new frame; one still open takes the next frame again.
    /// </summary>
    private void OnSendFailed(Outbound frame)
    {
        Fail(frame);
        lock (_sendGate)
        {
            while (_pending.TryDequeue(out var dropped))
            {
                Fail(dropped);
            }

            if (_socket.State is WebSocketState.Closed or WebSocketState.Aborted or WebSocketState.CloseReceived or WebSocketState.CloseSent)
            {
                _sendClosed = true;
            }

            _sendBusy = false;
        }
    }

    private void Fail(Outbound frame)
    {
        Interlocked.Increment(ref _sendFailures);
        Interlocked.Decrement(ref _queued);
        frame.Release();
    }

    private async Task ReceiveLoopAsync()
    {
        await Task.Yield();
        var buffer = new byte[8 * 1024];
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
                    ClosedAt = DateTimeOffset.UtcNow;
                    if (_socket.State == WebSocketState.CloseReceived)
                    {
                        try
                        {
                            await _socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);
                        }
                        catch (Exception e) when (e is WebSocketException or ObjectDisposedException)
                        {
                        }
                    }

                    return;
                }

                var timestamp = Stopwatch.GetTimestamp();
                Interlocked.Increment(ref _received);
                try
                {
                    if (RawFrame is { } raw && result.MessageType == WebSocketMessageType.Text && raw(this, buffer.AsSpan(0, total), timestamp))
                    {
                        continue;
                    }

                    var now = DateTimeOffset.UtcNow;
                    using var document = JsonDocument.Parse(buffer.AsMemory(0, total));
                    var type = document.RootElement.TryGetProperty("type", out var t) ? t.GetString() ?? "" : "";
                    _onFrame(this, new LoadFrame(type, document.RootElement, timestamp, now));
                }
                catch (Exception e)
                {
                    // A frame the scenario could not handle (e.g. text it cannot decode): counted, never fatal to the loop.
                    Interlocked.Increment(ref _handlerFailures);
                    LastHandlerFailure = $"{e.GetType().Name}: {e.Message} in {Encoding.UTF8.GetString(buffer, 0, Math.Min(total, 300))}";
                }
            }
        }
        catch (Exception e) when (e is WebSocketException or ObjectDisposedException or OperationCanceledException)
        {
            ClosedAt ??= DateTimeOffset.UtcNow;
        }
        finally
        {
            lock (_sendGate)
            {
                _sendClosed = true; // frames already queued are still tried (and fail if the socket cannot send)
            }

            _closed.TrySetResult();
        }
    }

    private readonly record struct Outbound(byte[] Bytes, int Length, WebSocketMessageType Type, bool Rented)
    {
        public void Release()
        {
            if (Rented)
            {
                ArrayPool<byte>.Shared.Return(Bytes);
            }
        }
    }
}
