using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Talki.Signalling.Soak;

namespace Talki.Signalling.Server.IntegrationTests.Soak;

/// <summary>
/// The load tool's WebSocket client (<see cref="LeanClientWebSocket"/>) against ASP.NET Core's server WebSocket, which
/// enforces RFC 6455 on what it receives (a client frame must be masked, §5.1; lengths as §5.2 encodes them), and against
/// hand-written servers that break the protocol: what it sends is what a server accepts, and what goes wrong is a
/// <see cref="WebSocketException"/>, as with <see cref="ClientWebSocket"/>.
/// </summary>
public sealed class LeanClientWebSocketTests
{
    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(125)] // the largest 7-bit length
    [InlineData(126)] // the smallest 16-bit length
    [InlineData(65_535)] // the largest 16-bit length
    [InlineData(65_536)] // the smallest 64-bit length
    [InlineData(300_001)]
    public async Task AMessageOfAnyLengthEncoding_IsEchoedByAServerThatChecksTheMasking_ByteForByte(int length)
    {
        await using var server = await EchoServer.StartAsync();
        using var socket = await LeanClientWebSocket.ConnectAsync(server.Url("/echo"));
        var sent = new byte[length];
        new Random(length).NextBytes(sent);
        for (var i = 0; i < sent.Length; i++)
        {
            sent[i] = (byte)('a' + (sent[i] % 26)); // text
        }

        await socket.SendAsync(sent, WebSocketMessageType.Text, endOfMessage: true, CancellationToken.None);
        var (type, received) = await ReceiveMessageAsync(socket, bufferSize: 1000);

        Assert.Equal(WebSocketMessageType.Text, type);
        Assert.Equal(sent, received);
    }

    [Fact]
    public async Task ManyMessagesInARow_EachKeyDifferent_AllComeBackInOrder()
    {
        await using var server = await EchoServer.StartAsync();
        using var socket = await LeanClientWebSocket.ConnectAsync(server.Url("/echo"));
        for (var i = 0; i < 2_000; i++)
        {
            await socket.SendAsync(Encoding.UTF8.GetBytes($"message {i}"), WebSocketMessageType.Text, true, CancellationToken.None);
        }

        for (var i = 0; i < 2_000; i++)
        {
            var (_, received) = await ReceiveMessageAsync(socket, bufferSize: 64);
            Assert.Equal($"message {i}", Encoding.UTF8.GetString(received));
        }
    }

    [Fact]
    public async Task AMessageSentInFragments_ArrivesWhole()
    {
        await using var server = await EchoServer.StartAsync();
        using var socket = await LeanClientWebSocket.ConnectAsync(server.Url("/echo"));
        await socket.SendAsync("first "u8.ToArray(), WebSocketMessageType.Text, endOfMessage: false, CancellationToken.None);
        await socket.SendAsync("second "u8.ToArray(), WebSocketMessageType.Text, endOfMessage: false, CancellationToken.None);
        await socket.SendAsync("third"u8.ToArray(), WebSocketMessageType.Text, endOfMessage: true, CancellationToken.None);

        var (_, received) = await ReceiveMessageAsync(socket, bufferSize: 4096);
        Assert.Equal("first second third", Encoding.UTF8.GetString(received));
    }

    [Fact]
    public async Task TheServersPings_AreAnswered_SoItsKeepAliveTimeoutNeverEndsAQuietConnection()
    {
        // The server pings every 100 ms and aborts a connection that has not answered within 500 ms (KeepAliveTimeout).
        await using var server = await EchoServer.StartAsync(keepAlive: TimeSpan.FromMilliseconds(100), keepAliveTimeout: TimeSpan.FromMilliseconds(500));
        using var socket = await LeanClientWebSocket.ConnectAsync(server.Url("/echo"));
        var receiving = ReceiveMessageAsync(socket, bufferSize: 64); // answers pings while it waits
        await Task.Delay(TimeSpan.FromSeconds(2));
        Assert.False(receiving.IsCompleted, "the connection ended while quiet: the pings went unanswered");

        await socket.SendAsync("still here"u8.ToArray(), WebSocketMessageType.Text, true, CancellationToken.None);
        var (_, received) = await receiving.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal("still here", Encoding.UTF8.GetString(received));
    }

    [Fact]
    public async Task TheServersClose_IsReported_WithItsStatusAndReason_AndAnswered()
    {
        await using var server = await EchoServer.StartAsync();
        using var socket = await LeanClientWebSocket.ConnectAsync(server.Url("/echo"));
        await socket.SendAsync("close"u8.ToArray(), WebSocketMessageType.Text, true, CancellationToken.None);

        var result = await socket.ReceiveAsync(new byte[64].AsMemory(), CancellationToken.None);
        Assert.Equal(WebSocketMessageType.Close, result.MessageType);
        Assert.Equal(WebSocketCloseStatus.PolicyViolation, socket.CloseStatus);
        Assert.Equal("asked to", socket.CloseStatusDescription);
        Assert.Equal(WebSocketState.CloseReceived, socket.State);

        await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);
        Assert.Equal(WebSocketState.Closed, socket.State);
        Assert.Equal(WebSocketCloseStatus.NormalClosure, await server.ClientCloseStatus.Task.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task ClosingFirst_TheServerAnswers_AndTheStateEndsClosed()
    {
        await using var server = await EchoServer.StartAsync();
        using var socket = await LeanClientWebSocket.ConnectAsync(server.Url("/echo"));
        await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", CancellationToken.None);

        Assert.Equal(WebSocketState.Closed, socket.State);
        Assert.Equal(WebSocketCloseStatus.NormalClosure, await server.ClientCloseStatus.Task.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task AnUpgradeRefused_IsAWebSocketException_NamingTheAnswer()
    {
        await using var server = await EchoServer.StartAsync();
        var e = await Assert.ThrowsAsync<WebSocketException>(() => LeanClientWebSocket.ConnectAsync(server.Url("/refuse")));
        Assert.Contains("404", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AWrongAcceptValue_IsRefused()
    {
        await using var server = await RawServer.StartAsync(async (stream, key) =>
            await stream.WriteAsync(Encoding.ASCII.GetBytes("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + Accept(key + "x") + "\r\n\r\n")));
        var e = await Assert.ThrowsAsync<WebSocketException>(() => LeanClientWebSocket.ConnectAsync(server.Url));
        Assert.Equal(WebSocketError.HeaderError, e.WebSocketErrorCode);
    }

    [Theory]
    [InlineData(new byte[] { 0x81, 0x82, 1, 2, 3, 4, 0x61, 0x62 }, "a masked frame from the server (§5.1)")]
    [InlineData(new byte[] { 0xC1, 0x01, 0x61 }, "a reserved bit with no extension (§5.2)")]
    [InlineData(new byte[] { 0x83, 0x01, 0x61 }, "a reserved opcode (§5.2)")]
    [InlineData(new byte[] { 0x89, 0x7E, 0x00, 0x80 }, "a control frame over 125 bytes (§5.5)")]
    public async Task AProtocolErrorFromTheServer_IsAWebSocketException_AndAbortsTheSocket(byte[] frame, string what)
    {
        await using var server = await RawServer.StartAsync(async (stream, key) =>
        {
            await stream.WriteAsync(Handshake(key));
            await stream.WriteAsync(frame);
        });
        using var socket = await LeanClientWebSocket.ConnectAsync(server.Url);

        await Assert.ThrowsAsync<WebSocketException>(async () => await socket.ReceiveAsync(new byte[64].AsMemory(), CancellationToken.None));
        Assert.True(socket.State == WebSocketState.Aborted, what);
    }

    [Fact]
    public async Task AConnectionDroppedMidFrame_IsAWebSocketException_NotASocketError()
    {
        await using var server = await RawServer.StartAsync(async (stream, key) =>
        {
            await stream.WriteAsync(Handshake(key));
            await stream.WriteAsync(new byte[] { 0x81, 0x05, 0x61, 0x62 }); // five bytes announced, two sent, then the end
        });
        using var socket = await LeanClientWebSocket.ConnectAsync(server.Url);

        var buffer = new byte[64];
        var e = await Assert.ThrowsAsync<WebSocketException>(async () =>
        {
            while (true)
            {
                _ = await socket.ReceiveAsync(buffer.AsMemory(), CancellationToken.None);
            }
        });
        Assert.Equal(WebSocketError.ConnectionClosedPrematurely, e.WebSocketErrorCode);
        Assert.Equal(WebSocketState.Aborted, socket.State);
    }

    [Fact]
    public async Task FramesThatFollowTheHandshakeInTheSameSegment_AreNotLost()
    {
        await using var server = await RawServer.StartAsync(async (stream, key) =>
            await stream.WriteAsync((byte[])[.. Handshake(key), 0x81, 0x02, 0x68, 0x69])); // the 101 and a text frame "hi" in one write
        using var socket = await LeanClientWebSocket.ConnectAsync(server.Url);

        var (_, received) = await ReceiveMessageAsync(socket, bufferSize: 64);
        Assert.Equal("hi", Encoding.UTF8.GetString(received));
    }

    [Fact]
    public async Task OnTheGateway_ALeanMemberAndARuntimeMember_SignalEachOther_ThroughTheWholeFlow()
    {
        // Messages up to 100 KB in (and the relayed frame, a little larger, out): a 64-bit length each way.
        await using var host = await TestHost.StartAsync(o =>
        {
            o.Hosting.MaxInboundMessageBytes = 100_000;
            o.Hosting.MaxOutboundMessageBytes = 110_000;
        });
        using var http = LoadUser.NewHttpClient(host.BaseAddress);
        var ada = new LoadUser(http, "Ada");
        var bob = new LoadUser(http, "Bob");
        await ada.SignInAsync();
        await bob.SignInAsync();
        var room = await ada.CreateRoomAsync();
        var ticket = await bob.JoinAsync(room.Room);
        var adaFrames = Channel.CreateUnbounded<string>();
        var bobFrames = Channel.CreateUnbounded<string>();
        await using var adaSocket = await LoadSocket.ConnectAsync(room.WebSocketUrl, (_, f) => adaFrames.Writer.TryWrite(f.Root.GetRawText()), LoadTransport.Lean);
        await using var bobSocket = await LoadSocket.ConnectAsync(ticket.WebSocketUrl, (_, f) => bobFrames.Writer.TryWrite(f.Root.GetRawText()), LoadTransport.ClientWebSocket);

        adaSocket.Send("""{"type":"hello","version":2}""");
        await ExpectAsync(adaFrames, "welcome");
        bobSocket.Send("""{"type":"hello","version":2}""");
        await ExpectAsync(adaFrames, "admission_request");
        adaSocket.Send($$$"""{"type":"admit","member":"{{{ticket.Member}}}"}""");
        await ExpectAsync(bobFrames, "admitted");

        var big = new string('x', 70_000); // a 64-bit length on the way out and back
        adaSocket.Send($$$"""{"type":"signal","to":"{{{ticket.Member}}}","description":{"type":"offer","sdp":"v=0 {{{big}}}"}}""");
        var offer = await ExpectAsync(bobFrames, "signal");
        Assert.Equal("v=0 " + big, offer.GetProperty("description").GetProperty("sdp").GetString());
        bobSocket.Send($$$"""{"type":"signal","to":"{{{room.Member}}}","description":{"type":"answer","sdp":"v=0 answer"}}""");
        var answer = await ExpectAsync(adaFrames, "signal");
        Assert.Equal("v=0 answer", answer.GetProperty("description").GetProperty("sdp").GetString());
        Assert.Equal(0, adaSocket.SendFailures);
        Assert.Equal(0, adaSocket.HandlerFailures);
    }

    // LoadSocket, the load tool's socket: a frame goes out on the thread pool (or the caller's thread, inline) when the socket
    // is free and queues behind the send in progress otherwise, whichever thread completes that send taking the queue on.

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task LoadSocket_FourThreadsSendingAtOnce_EveryFrameArrivesOnce_InEachSendersOrder(bool inline)
    {
        await using var server = await EchoServer.StartAsync();
        var echoed = new System.Collections.Concurrent.ConcurrentQueue<(int Thread, int N)>();
        await using var socket = await LoadSocket.ConnectAsync(server.Url("/echo"), (_, f) => echoed.Enqueue((f.Root.GetProperty("t").GetInt32(), f.Root.GetProperty("n").GetInt32())), LoadTransport.Lean);
        const int PerThread = 5_000;

        SendFromFourThreads(socket, PerThread, pad: "", inline);

        await AssertEachSendersOrderAsync(socket, echoed, PerThread);
    }

    [Fact]
    public async Task LoadSocket_AServerThatDoesNotRead_NeverBlocksTheSender_AndTheQueuedFramesArriveInOrderOnceItReads()
    {
        await using var server = await EchoServer.StartAsync();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        server.Hold = release.Task;
        var echoed = new System.Collections.Concurrent.ConcurrentQueue<int>();
        await using var socket = await LoadSocket.ConnectAsync(server.Url("/echo"), (_, f) => echoed.Enqueue(f.Root.GetProperty("n").GetInt32()), LoadTransport.Lean);
        var pad = new string('x', 8_000);
        const int Frames = 3_000; // 24 MB: far more than the two sockets' kernel buffers hold

        for (var n = 0; n < Frames; n++)
        {
            socket.Send($$"""{"n":{{n}},"pad":"{{pad}}"}""");
        }

        // Every Send returned while the server read nothing: most of the frames wait in the socket's queue.
        Assert.Equal(0, server.Received);
        Assert.True(socket.Sent < Frames, $"all {Frames} frames were handed to the socket before the server read any");
        release.SetResult();
        await WaitUntilAsync(() => echoed.Count >= Frames);
        Assert.Equal(Enumerable.Range(0, Frames), echoed);
        Assert.Equal(Frames, socket.Sent);
        Assert.Equal(0, socket.SendFailures);
    }

    [Theory]
    [InlineData(LoadTransport.Lean)]
    [InlineData(LoadTransport.ClientWebSocket)]
    public async Task LoadSocket_InlineSendsFromFourThreads_WhileTheServerDoesNotRead_QueueAndArriveInEachSendersOrder(LoadTransport transport)
    {
        await using var server = await EchoServer.StartAsync();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        server.Hold = release.Task;
        var echoed = new System.Collections.Concurrent.ConcurrentQueue<(int Thread, int N)>();
        await using var socket = await LoadSocket.ConnectAsync(server.Url("/echo"), (_, f) => echoed.Enqueue((f.Root.GetProperty("t").GetInt32(), f.Root.GetProperty("n").GetInt32())), transport);
        const int PerThread = 600; // 4 × 600 × 4 KB: the kernel's buffers fill, and most frames queue behind a pending send

        SendFromFourThreads(socket, PerThread, pad: new string('x', 4_000), inline: true); // no sender waits for the server
        release.SetResult();

        await AssertEachSendersOrderAsync(socket, echoed, PerThread);
    }

    /// <summary>Four threads, started together, each send frames <c>{"t":thread,"n":0…perThread-1,"pad":…}</c> in rented arrays; returns once all four have.</summary>
    private static void SendFromFourThreads(LoadSocket socket, int perThread, string pad, bool inline)
    {
        using var start = new Barrier(4);
        var threads = Enumerable.Range(0, 4).Select(t => new Thread(() =>
        {
            start.SignalAndWait();
            for (var n = 0; n < perThread; n++)
            {
                var text = $$"""{"t":{{t}},"n":{{n}},"pad":"{{pad}}"}""";
                var rented = System.Buffers.ArrayPool<byte>.Shared.Rent(Encoding.UTF8.GetMaxByteCount(text.Length));
                socket.SendRented(rented, Encoding.UTF8.GetBytes(text, rented), inline);
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
    }

    /// <summary>Every frame of the four senders came back once, each sender's in the order it sent them, and none failed.</summary>
    private static async Task AssertEachSendersOrderAsync(LoadSocket socket, System.Collections.Concurrent.ConcurrentQueue<(int Thread, int N)> echoed, int perThread)
    {
        await WaitUntilAsync(() => echoed.Count >= 4 * perThread);
        var byThread = echoed.GroupBy(e => e.Thread).ToDictionary(g => g.Key, g => g.Select(e => e.N).ToList());
        Assert.Equal(4, byThread.Count);
        foreach (var (_, numbers) in byThread)
        {
            Assert.Equal(Enumerable.Range(0, perThread), numbers);
        }

        Assert.Equal(4 * perThread, socket.Sent);
        Assert.Equal(0, socket.SendFailures);
    }

    [Fact]
    public async Task LoadSocket_DisposedWithFramesQueued_SendsThemBeforeItsCloseFrame()
    {
        await using var server = await EchoServer.StartAsync();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        server.Hold = release.Task;
        var socket = await LoadSocket.ConnectAsync(server.Url("/echo"), (_, _) => { }, LoadTransport.Lean);
        var pad = new string('x', 8_000);
        for (var n = 0; n < 1_000; n++)
        {
            socket.Send($$"""{"n":{{n}},"pad":"{{pad}}"}""");
        }

        var disposing = socket.DisposeAsync().AsTask();
        socket.Send("""{"n":-1}"""); // after the dispose began: refused, counted
        release.SetResult();
        await disposing;

        Assert.Equal(WebSocketCloseStatus.NormalClosure, await server.ClientCloseStatus.Task.WaitAsync(TimeSpan.FromSeconds(15)));
        Assert.Equal(1_000, server.Received); // every frame queued before the dispose, then the close
        Assert.Equal(1_000, socket.Sent);
        Assert.Equal(1, socket.SendFailures);
    }

    [Fact]
    public async Task LoadSocket_SendingAfterTheServerClosed_CountsAFailure_WithoutThrowingOrHanging()
    {
        await using var server = await EchoServer.StartAsync();
        await using var socket = await LoadSocket.ConnectAsync(server.Url("/echo"), (_, _) => { }, LoadTransport.Lean);
        socket.Send("close"u8.ToArray(), WebSocketMessageType.Text);
        await socket.Closed.WaitAsync(TimeSpan.FromSeconds(15));

        socket.Send("""{"n":1}""");
        socket.Send("""{"n":2}""");
        await socket.FlushAsync(TimeSpan.FromSeconds(15));

        Assert.Equal(WebSocketCloseStatus.PolicyViolation, socket.CloseStatus);
        Assert.Equal(1, socket.Sent);
        Assert.Equal(2, socket.SendFailures);
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "timed out after 30 s");
            await Task.Delay(10);
        }
    }

    private static async Task<JsonElement> ExpectAsync(Channel<string> frames, string type)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        while (true)
        {
            var root = JsonDocument.Parse(await frames.Reader.ReadAsync(timeout.Token)).RootElement;
            if (root.GetProperty("type").GetString() == type)
            {
                return root;
            }
        }
    }

    private static async Task<(WebSocketMessageType Type, byte[] Message)> ReceiveMessageAsync(WebSocket socket, int bufferSize)
    {
        var buffer = new byte[bufferSize];
        using var message = new MemoryStream();
        while (true)
        {
            var result = await socket.ReceiveAsync(buffer.AsMemory(), CancellationToken.None);
            if (result.MessageType == WebSocketMessageType.Close)
            {
                throw new InvalidOperationException($"closed: {socket.CloseStatus} {socket.CloseStatusDescription}");
            }

            message.Write(buffer, 0, result.Count);
            if (result.EndOfMessage)
            {
                return (result.MessageType, message.ToArray());
            }
        }
    }

#pragma warning disable CA5350 // The handshake's accept value is SHA-1 by definition (RFC 6455 §4.2.2).
    private static string Accept(string key) => Convert.ToBase64String(SHA1.HashData(Encoding.ASCII.GetBytes(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")));
#pragma warning restore CA5350

    private static byte[] Handshake(string key) =>
        Encoding.ASCII.GetBytes($"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {Accept(key)}\r\n\r\n");

    /// <summary>ASP.NET Core's WebSockets on Kestrel, 127.0.0.1, a free port: <c>/echo</c> sends every message back whole; "close" closes with 1008.</summary>
    private sealed class EchoServer : IAsyncDisposable
    {
        private readonly WebApplication _app;
        private int _received;

        private EchoServer(WebApplication app) => _app = app;

        public TaskCompletionSource<WebSocketCloseStatus?> ClientCloseStatus { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>Gets the messages the server has read, the closes not counted.</summary>
        public int Received => Volatile.Read(ref _received);

        /// <summary>Gets or sets a task the server waits for before it reads anything of a new socket (its kernel buffers fill meanwhile).</summary>
        public Task Hold { get; set; } = Task.CompletedTask;

        public static async Task<EchoServer> StartAsync(TimeSpan? keepAlive = null, TimeSpan? keepAliveTimeout = null)
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.WebHost.UseUrls("http://127.0.0.1:0");
            builder.Logging.ClearProviders();
            var app = builder.Build();
            var server = new EchoServer(app);
            app.UseWebSockets();
            app.Map("/echo", async context =>
            {
                if (!context.WebSockets.IsWebSocketRequest)
                {
                    context.Response.StatusCode = StatusCodes.Status400BadRequest;
                    return;
                }

                var accept = new WebSocketAcceptContext();
                if (keepAlive is { } interval)
                {
                    accept.KeepAliveInterval = interval;
                    accept.KeepAliveTimeout = keepAliveTimeout ?? Timeout.InfiniteTimeSpan; // pings, not unsolicited pongs
                }

                using var socket = await context.WebSockets.AcceptWebSocketAsync(accept);
                await server.EchoAsync(socket);
            });
            await app.StartAsync();
            return server;
        }

        public Uri Url(string path) => new(new Uri(_app.Urls.Single().Replace("http://", "ws://", StringComparison.Ordinal)), path);

        public async ValueTask DisposeAsync()
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }

        private async Task EchoAsync(WebSocket socket)
        {
            var buffer = new byte[4096];
            using var message = new MemoryStream();
            await Hold;
            try
            {
                while (true)
                {
                    var result = await socket.ReceiveAsync(buffer.AsMemory(), CancellationToken.None);
                    if (result.MessageType == WebSocketMessageType.Close)
                    {
                        ClientCloseStatus.TrySetResult(socket.CloseStatus);
                        if (socket.State == WebSocketState.CloseReceived)
                        {
                            await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);
                        }

                        return;
                    }

                    message.Write(buffer, 0, result.Count);
                    if (!result.EndOfMessage)
                    {
                        continue;
                    }

                    var bytes = message.ToArray();
                    message.SetLength(0);
                    Interlocked.Increment(ref _received);
                    if (bytes.AsSpan().SequenceEqual("close"u8))
                    {
                        await socket.CloseOutputAsync(WebSocketCloseStatus.PolicyViolation, "asked to", CancellationToken.None);
                        continue; // the client's answer ends the loop
                    }

                    await socket.SendAsync(bytes, result.MessageType, true, CancellationToken.None);
                }
            }
            catch (WebSocketException e)
            {
                ClientCloseStatus.TrySetException(e);
            }
        }
    }

    /// <summary>A TCP listener on 127.0.0.1 that reads one upgrade request and answers it as told (the request's key given).</summary>
    private sealed class RawServer : IAsyncDisposable
    {
        private readonly TcpListener _listener;
        private readonly Task _serving;

        private RawServer(TcpListener listener, Func<NetworkStream, string, Task> answer)
        {
            _listener = listener;
            _serving = ServeAsync(answer);
        }

        public Uri Url => new($"ws://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}/");

        public static Task<RawServer> StartAsync(Func<NetworkStream, string, Task> answer)
        {
            var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            return Task.FromResult(new RawServer(listener, answer));
        }

        public async ValueTask DisposeAsync()
        {
            _listener.Stop();
            await _serving.WaitAsync(TimeSpan.FromSeconds(10)).ContinueWith(_ => { }, TaskScheduler.Default);
        }

        private async Task ServeAsync(Func<NetworkStream, string, Task> answer)
        {
            using var client = await _listener.AcceptTcpClientAsync();
            using var stream = client.GetStream();
            var head = new StringBuilder();
            var buffer = new byte[4096];
            while (!head.ToString().Contains("\r\n\r\n", StringComparison.Ordinal))
            {
                var n = await stream.ReadAsync(buffer);
                if (n == 0)
                {
                    return;
                }

                head.Append(Encoding.ASCII.GetString(buffer, 0, n));
            }

            var key = head.ToString().Split("\r\n").Single(l => l.StartsWith("Sec-WebSocket-Key:", StringComparison.OrdinalIgnoreCase))["Sec-WebSocket-Key:".Length..].Trim();
            await answer(stream, key);
            await stream.FlushAsync();
            await Task.Delay(200); // the client reads what was written before the connection ends
        }
    }
}
