using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using System.Text;
using System.Text.Json;
using Talki.Signalling.Http;
using Talki.Signalling.Protocol;
using Talki.Signalling.Server.AspNetCore;
using Talki.Signalling.Testing;

namespace Talki.Signalling.Server.IntegrationTests.AspNetCore;

/// <summary>
/// The gateway's upgrade at Kestrel's connection level (<c>UseTalkiWebSockets</c>) against raw TCP clients: what it takes,
/// what it leaves to HTTP/1.1, and what a client with the link can do to it. Kestrel's HTTP/1.1 puts <c>Server: Kestrel</c>
/// in every answer and the connection-level path does not, so each answer shows which path served it.
/// </summary>
public sealed class ConnectionLevelUpgradeTests
{
    private const string Key = "dGhlIHNhbXBsZSBub25jZQ==";

    [Fact]
    public async Task Handshake_IsAnsweredAtTheConnectionLevel_WithTheRfc6455AcceptValue_AndTheSocketWorks()
    {
        await using var host = await TestHost.StartAsync(connectionLevelUpgrade: true);
        using var ada = await host.SignInAsync("Ada");
        var room = await ada.CreateRoomAsync();
        await using var client = await RawClient.ConnectAsync(host);

        await client.SendAsync(Handshake(room.Ticket));
        var answer = await client.ReadResponseAsync();

        Assert.Equal(101, answer.Status);
        Assert.False(answer.ServedByKestrelHttp);
        Assert.Equal("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", answer.Header("Sec-WebSocket-Accept")); // RFC 6455 §1.3's example
        Assert.Equal("websocket", answer.Header("Upgrade"), ignoreCase: true);
        var socket = client.AsWebSocket();
        await SendAsync(socket, """{"type":"hello","version":2}""");
        Assert.IsType<WelcomeMessage>(await ReceiveAsync(socket));
    }

    [Fact]
    public async Task FirstFrameSentWithTheHead_IsNotLost()
    {
        await using var host = await TestHost.StartAsync(connectionLevelUpgrade: true);
        using var ada = await host.SignInAsync("Ada");
        var room = await ada.CreateRoomAsync();
        await using var client = await RawClient.ConnectAsync(host);

        // The head and a masked hello frame in one write: the bytes after the head belong to the WebSocket.
        await client.SendAsync([.. Encoding.ASCII.GetBytes(Handshake(room.Ticket)), .. MaskedTextFrame("""{"type":"hello","version":2}""")]);

        Assert.Equal(101, (await client.ReadResponseAsync()).Status);
        Assert.IsType<WelcomeMessage>(await ReceiveAsync(client.AsWebSocket()));
    }

    [Fact]
    public async Task HeadSentOneByteAtATime_IsTaken()
    {
        await using var host = await TestHost.StartAsync(connectionLevelUpgrade: true);
        using var ada = await host.SignInAsync("Ada");
        var room = await ada.CreateRoomAsync();
        await using var client = await RawClient.ConnectAsync(host);

        foreach (var b in Encoding.ASCII.GetBytes(Handshake(room.Ticket)))
        {
            await client.SendAsync([b]);
            await Task.Delay(1);
        }

        var answer = await client.ReadResponseAsync();
        Assert.Equal(101, answer.Status);
        Assert.False(answer.ServedByKestrelHttp);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ForgedTicket_GetsTheSameProblemDocumentOnBothPaths_AndTheConnectionCloses(bool connectionLevel)
    {
        await using var host = await TestHost.StartAsync(connectionLevelUpgrade: connectionLevel);
        await using var client = await RawClient.ConnectAsync(host);

        await client.SendAsync(Handshake("forged-ticket"));
        var answer = await client.ReadResponseAsync();

        Assert.Equal(401, answer.Status);
        Assert.Equal(!connectionLevel, answer.ServedByKestrelHttp);
        Assert.StartsWith("application/problem+json", answer.Header("Content-Type"), StringComparison.Ordinal);
        Assert.Equal("no-store", answer.Header("Cache-Control"));
        var problem = JsonSerializer.Deserialize(answer.Body, TalkiJsonContext.Default.ErrorResponse)!;
        Assert.Equal(SignallingErrorCode.TicketInvalid, problem.Code);
        Assert.Equal(401, problem.Status);
        if (connectionLevel)
        {
            Assert.Equal("close", answer.Header("Connection"));
            Assert.True(await client.IsClosedByServerAsync());
        }
    }

    [Theory]
    [InlineData("v=99", 400, SignallingErrorCode.UnsupportedVersion)]
    [InlineData("v=x", 400, SignallingErrorCode.UnsupportedVersion)]
    [InlineData("", 401, SignallingErrorCode.TicketInvalid)]
    public async Task RefusedUpgrade_GetsItsStatusAndCode_AtTheConnectionLevel(string query, int status, SignallingErrorCode code)
    {
        await using var host = await TestHost.StartAsync(connectionLevelUpgrade: true);
        await using var client = await RawClient.ConnectAsync(host);

        await client.SendAsync(HandshakeTo("/talki/ws" + (query.Length > 0 ? "?" + query : string.Empty)));
        var answer = await client.ReadResponseAsync();

        Assert.Equal(status, answer.Status);
        Assert.False(answer.ServedByKestrelHttp);
        Assert.Equal(code, JsonSerializer.Deserialize(answer.Body, TalkiJsonContext.Default.ErrorResponse)!.Code);
    }

    [Fact]
    public async Task Ticket_WorksOnce_WhicheverPathTheReplayTakes()
    {
        await using var host = await TestHost.StartAsync(connectionLevelUpgrade: true);
        using var ada = await host.SignInAsync("Ada");
        var room = await ada.CreateRoomAsync();
        await using var first = await RawClient.ConnectAsync(host);
        await first.SendAsync(Handshake(room.Ticket));
        Assert.Equal(101, (await first.ReadResponseAsync()).Status);

        // Replayed as is (the connection level), and with an upper-case path that only HTTP/1.1's routing matches.
        await using var replay = await RawClient.ConnectAsync(host);
        await replay.SendAsync(Handshake(room.Ticket));
        var again = await replay.ReadResponseAsync();
        await using var replayUpper = await RawClient.ConnectAsync(host);
        await replayUpper.SendAsync(HandshakeTo("/TALKI/WS?ticket=" + Uri.EscapeDataString(room.Ticket)));
        var upper = await replayUpper.ReadResponseAsync();

        Assert.Equal((401, false), (again.Status, again.ServedByKestrelHttp));
        Assert.Equal((401, true), (upper.Status, upper.ServedByKestrelHttp));
    }

    /// <summary>Handshakes in any form but the strict one go to HTTP/1.1, where the endpoint (or Kestrel) answers them as without the middleware.</summary>
    [Theory]
    [InlineData("GET /TALKI/ws?ticket={0} HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + Key + "\r\nSec-WebSocket-Version: 13\r\n\r\n", 101)]
    [InlineData("GET /talki/%77s?ticket={0} HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + Key + "\r\nSec-WebSocket-Version: 13\r\n\r\n", 101)]
    [InlineData("GET /talki/ws?ticket={0} HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + Key + "\r\nSec-WebSocket-Version: 8\r\n\r\n", 400)]
    [InlineData("GET /talki/ws?ticket={0} HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n", 400)]
    [InlineData("GET /talki/ws?ticket={0} HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n", 400)]
    [InlineData("GET /talki/ws?ticket={0} HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + Key + "\r\nSec-WebSocket-Version: 13\r\n\r\n", 400)]
    [InlineData("GET /talki/ws?ticket={0} HTTP/1.1\r\nHost: h\r\nHost: i\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + Key + "\r\nSec-WebSocket-Version: 13\r\n\r\n", 400)]
    [InlineData("GET /talki/ws?ticket={0} HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + Key + "\r\nSec-WebSocket-Version: 13\r\nContent-Length: 5\r\n\r\nhello", 400)]
    [InlineData("GET /talki/ws?ticket={0} HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n Connection: Upgrade\r\nSec-WebSocket-Key: " + Key + "\r\nSec-WebSocket-Version: 13\r\n\r\n", 400)]
    [InlineData("GET /talki/ws?ticket={0} HTTP/1.1\r\nHost: h\r\nUpgrade : websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + Key + "\r\nSec-WebSocket-Version: 13\r\n\r\n", 400)]
    [InlineData("GET /talki/ws?ticket={0} HTTP/1.0\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + Key + "\r\nSec-WebSocket-Version: 13\r\n\r\n", 101)]
    [InlineData("GET /talki/wsx?ticket={0} HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + Key + "\r\nSec-WebSocket-Version: 13\r\n\r\n", 404)]
    [InlineData("GET /talki/ws/?ticket={0} HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + Key + "\r\nSec-WebSocket-Version: 13\r\n\r\n", 101)]
    [InlineData("POST /talki/ws?ticket={0} HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + Key + "\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n", 400)]
    public async Task HandshakeNotInTheStrictForm_IsLeftToHttp(string request, int expected)
    {
        await using var host = await TestHost.StartAsync(connectionLevelUpgrade: true);
        using var ada = await host.SignInAsync("Ada");
        var room = await ada.CreateRoomAsync();
        await using var client = await RawClient.ConnectAsync(host);

        await client.SendAsync(string.Format(System.Globalization.CultureInfo.InvariantCulture, request, Uri.EscapeDataString(room.Ticket)));
        var answer = await client.ReadResponseAsync();

        Assert.True(answer.ServedByKestrelHttp, $"answered {answer.Status} without Kestrel's Server field");
        Assert.Equal(expected, answer.Status);
    }

    [Fact]
    public async Task HeadOverTheBound_IsLeftToHttp_WhichTakesItWithinItsOwnLimits()
    {
        await using var host = await TestHost.StartAsync(connectionLevelUpgrade: true);
        using var ada = await host.SignInAsync("Ada");
        var room = await ada.CreateRoomAsync();
        await using var client = await RawClient.ConnectAsync(host);

        var cookies = "Cookie: big=" + new string('c', 9_000) + "\r\n";
        await client.SendAsync(Handshake(room.Ticket).Replace("Host: h\r\n", "Host: h\r\n" + cookies, StringComparison.Ordinal));
        var answer = await client.ReadResponseAsync();

        Assert.Equal((101, true), (answer.Status, answer.ServedByKestrelHttp));
    }

    /// <summary>Kestrel's own head limits stay in force: a handshake over them is left to HTTP/1.1, which refuses it (431).</summary>
    [Theory]
    [InlineData("count")]
    [InlineData("size")]
    public async Task HandshakeOverKestrelsHeadLimits_IsLeftToHttp_WhichRefusesIt(string limit)
    {
        await using var host = await TestHost.StartAsync(connectionLevelUpgrade: true, kestrel: k =>
        {
            if (limit == "count")
            {
                k.Limits.MaxRequestHeaderCount = 5;
            }
            else
            {
                k.Limits.MaxRequestHeadersTotalSize = 1024;
            }
        });
        await using var client = await RawClient.ConnectAsync(host);

        var extra = limit == "count" ? "X-Extra: 1\r\n" : "Cookie: big=" + new string('c', 2_000) + "\r\n";
        await client.SendAsync(Handshake("any-ticket").Replace("Host: h\r\n", "Host: h\r\n" + extra, StringComparison.Ordinal));
        var answer = await client.ReadResponseAsync();

        Assert.Equal((431, true), (answer.Status, answer.ServedByKestrelHttp));
    }

    [Fact]
    public async Task OtherRequests_AndAHandshakeAfterThemOnAKeptAliveConnection_AreServedByHttp()
    {
        await using var host = await TestHost.StartAsync(connectionLevelUpgrade: true);
        using var ada = await host.SignInAsync("Ada");
        var room = await ada.CreateRoomAsync();
        await using var client = await RawClient.ConnectAsync(host);

        await client.SendAsync("GET /talki/session HTTP/1.1\r\nHost: h\r\n\r\n");
        var session = await client.ReadResponseAsync();
        await client.SendAsync(Handshake(room.Ticket));
        var upgrade = await client.ReadResponseAsync();

        Assert.Equal((401, true), (session.Status, session.ServedByKestrelHttp));
        Assert.Equal((101, true), (upgrade.Status, upgrade.ServedByKestrelHttp));
    }

    [Fact]
    public async Task HeadThatTricklesPastTheHeadersTimeout_IsDisconnected_OnTheRealClock()
    {
        await using var host = await TestHost.StartAsync(connectionLevelUpgrade: true, kestrel: k => k.Limits.RequestHeadersTimeout = TimeSpan.FromSeconds(1));
        await using var slow = await RawClient.ConnectAsync(host);
        var started = TimeProvider.System.GetTimestamp();

        await slow.SendAsync("GET /talki/ws?ticket=x HTTP/1.1\r\nHost: h\r\n");
        var closed = await slow.IsClosedByServerAsync(TimeSpan.FromSeconds(10));
        var elapsed = TimeProvider.System.GetElapsedTime(started);

        Assert.True(closed);
        Assert.InRange(elapsed, TimeSpan.FromSeconds(0.9), TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task InfiniteHeadersTimeout_HandshakesAreStillTaken()
    {
        await using var host = await TestHost.StartAsync(connectionLevelUpgrade: true, kestrel: k => k.Limits.RequestHeadersTimeout = Timeout.InfiniteTimeSpan);
        using var ada = await host.SignInAsync("Ada");
        var room = await ada.CreateRoomAsync();
        await using var client = await RawClient.ConnectAsync(host);

        await client.SendAsync(Handshake(room.Ticket));
        var answer = await client.ReadResponseAsync();

        Assert.Equal((101, false), (answer.Status, answer.ServedByKestrelHttp));
    }

    [Fact]
    public async Task ConnectionSilentPastTheHeadersTimeout_IsStillServedByHttp()
    {
        await using var host = await TestHost.StartAsync(connectionLevelUpgrade: true, kestrel: k => k.Limits.RequestHeadersTimeout = TimeSpan.FromSeconds(1));
        await using var preconnect = await RawClient.ConnectAsync(host);

        await Task.Delay(TimeSpan.FromSeconds(1.5));
        await preconnect.SendAsync("GET /talki/session HTTP/1.1\r\nHost: h\r\n\r\n");

        var answer = await preconnect.ReadResponseAsync();
        Assert.Equal((401, true), (answer.Status, answer.ServedByKestrelHttp));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Shutdown_ClosesOpenSockets_With1001(bool connectionLevel)
    {
        await using var host = await TestHost.StartAsync(connectionLevelUpgrade: connectionLevel);
        using var ada = await host.SignInAsync("Ada");
        var room = await ada.CreateRoomAsync();
        await using var socket = await ada.ConnectAsync(room);

        var stopping = host.StopAsync();
        await socket.WaitClosedAsync();
        await stopping;

        Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, socket.CloseStatus);
        Assert.Equal("server shutting down", socket.CloseDescription);
    }

    /// <summary>
    /// On HTTPS the middleware must see the decrypted bytes: after <c>UseHttps</c> on the endpoint it takes the handshake;
    /// as an endpoint default it comes before <c>UseHttps</c> (Kestrel applies the defaults first), never matches the TLS
    /// bytes, and every handshake is left to HTTP/1.1, which still answers it.
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task OverHttps_TakenAfterUseHttps_LeftToHttpAsAnEndpointDefault(bool afterUseHttps)
    {
        using var certificate = SelfSignedCertificate();
        await using var host = await TestHost.StartAsync(
            connectionLevelUpgrade: !afterUseHttps,
            kestrel: k => k.Listen(IPAddress.Loopback, 0, endpoint =>
            {
                endpoint.UseHttps(certificate);
                if (afterUseHttps)
                {
                    endpoint.UseTalkiWebSockets();
                }
            }));
        Assert.Equal("https", host.BaseAddress.Scheme);
        using var ada = await host.SignInAsync("Ada");
        var room = await ada.CreateRoomAsync();
        Assert.Equal("wss", room.WebSocketUrl.Scheme);

        await using var socket = await TestSocket.OpenAsync(room.WebSocketUrl);
        await socket.SendAsync("""{"type":"hello","version":2}""");

        Assert.Equal(AdmissionStatus.Admitted, (await socket.ExpectAsync<WelcomeMessage>()).Status);
        Assert.Equal(afterUseHttps, !socket.ResponseHeaders.ContainsKey("Server"));
    }

    /// <summary>
    /// 300 handshakes, each the valid one with one to three bytes of its head changed (its final empty line kept), all
    /// carrying the same ticket: the server answers nearly all of them, never takes the ticket twice, and serves a fresh
    /// member afterwards.
    /// </summary>
    [Fact]
    public async Task MutatedHandshakes_NeverTakeATicketTwice_AndLeaveTheServerServing()
    {
        await using var host = await TestHost.StartAsync(connectionLevelUpgrade: true, kestrel: k => k.Limits.RequestHeadersTimeout = TimeSpan.FromSeconds(1));
        using var ada = await host.SignInAsync("Ada");
        var room = await ada.CreateRoomAsync();
        var valid = Encoding.ASCII.GetBytes(Handshake(room.Ticket));
        var random = new Random(1234);
        int upgrades = 0, answered = 0;
        for (var i = 0; i < 300; i++)
        {
            var bytes = (byte[])valid.Clone();
            for (var m = random.Next(1, 4); m > 0; m--)
            {
                bytes[random.Next(bytes.Length - 4)] = (byte)random.Next(256);
            }

            await using var client = await RawClient.ConnectAsync(host);
            await client.SendAsync(bytes);
            var answer = await client.TryReadResponseAsync(TimeSpan.FromSeconds(3));
            answered += answer is null ? 0 : 1;
            upgrades += answer?.Status == 101 ? 1 : 0;
        }

        Assert.InRange(upgrades, 0, 1);
        Assert.InRange(answered, 270, 300); // a mutated head may end early (a CR LF CR LF drawn into it) and wait for more
        var fresh = await ada.CreateRoomAsync();
        await using var socket = await ada.ConnectAsync(fresh);
        Assert.Equal(AdmissionStatus.Admitted, socket.Welcome!.Status);
    }

    private static X509Certificate2 SelfSignedCertificate()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=127.0.0.1", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(names.Build());
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddHours(1));
        TestHost.TestCertificates[certificate.GetCertHashString(HashAlgorithmName.SHA256)] = true;
        return X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pfx), null); // with its key, as SslStream needs on every platform
    }

    [Theory]
    [InlineData(1)]
    [InlineData(20)]
    public async Task SmallFramesPackedInOneWrite_AreEachHandled_NoneWaitsInTheWebSocketsBuffer(int pairs)
    {
        // An empty text frame (6 bytes) and a 2-byte one (8 bytes) are the 14 bytes the WebSocket reads a header into: a
        // stream that handed it more than the first frame would leave the second in its buffer, where a connection that
        // idles on the pipe would never see it.
        await using var host = await TestHost.StartAsync(connectionLevelUpgrade: true);
        await using var open = await OpenSocketAsync(host);
        var (client, socket) = (open.Client, open.Socket);

        var packed = new List<byte>();
        for (var i = 0; i < pairs; i++)
        {
            packed.AddRange(MaskedFrame(0x1, []));
            packed.AddRange(MaskedTextFrame("{}"));
        }

        await client.SendAsync([.. packed]);
        for (var i = 0; i < 2 * pairs; i++)
        {
            Assert.IsType<ErrorMessage>(await ReceiveAsync(socket)); // each one answered, none left waiting
        }

        await SendAsync(socket, """{"type":"ping"}""");
        Assert.IsType<PongMessage>(await ReceiveAsync(socket));
    }

    [Fact]
    public async Task PingFramePackedWithAMessage_IsAnswered_AndTheMessageHandled()
    {
        await using var host = await TestHost.StartAsync(connectionLevelUpgrade: true);
        await using var open = await OpenSocketAsync(host);
        var (client, socket) = (open.Client, open.Socket);

        // A ping control frame (opcode 9, empty) and a message in one write: the server answers the ping (the client's
        // WebSocket takes the pong) and then the message.
        await client.SendAsync([.. MaskedFrame(0x9, []), .. MaskedTextFrame("""{"type":"ping"}""")]);
        Assert.IsType<PongMessage>(await ReceiveAsync(socket));
    }

    [Fact]
    public async Task ClientThatNeverAnswersTheCloseFrame_IsDisconnectedAfterTheCloseHandshakeTimeout()
    {
        // Idle between messages, the connection waits on the pipe; the close handshake's timeout must end that wait too.
        await using var host = await TestHost.StartAsync(o => o.JoinWindow = TimeSpan.FromHours(1), connectionLevelUpgrade: true);
        await using var open = await OpenSocketAsync(host);
        var (client, socket) = (open.Client, open.Socket);

        host.Time.Advance(TimeSpan.FromMinutes(10)); // the idle timeout: the server sends its close frame
        using (var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10)))
        {
            var close = await socket.ReceiveAsync(new byte[1024], timeout.Token);
            Assert.Equal(WebSocketMessageType.Close, close.MessageType);
        }

        // The client does not answer. Within the timeout the server keeps the connection; after it, it drops it.
        Assert.False(await client.IsClosedByServerAsync(TimeSpan.FromMilliseconds(300)));
        host.Time.Advance(SelfHostedGateway.CloseHandshakeTimeout * 2 + TimeSpan.FromSeconds(1));
        Assert.True(await client.IsClosedByServerAsync());
    }

    [Fact]
    public async Task OnTheRealClock_ClientThatNeverAnswersTheCloseFrame_IsDisconnectedAfterTheCloseHandshakeTimeout()
    {
        // The same on the system clock: the idle timeout's close, then the close handshake's timeout end the pipe wait.
        await using var host = await TestHost.StartAsync(
            o =>
            {
                o.Hosting.IdleTimeout = TimeSpan.FromSeconds(1);
                o.JoinWindow = TimeSpan.FromHours(1);
            },
            services => services.AddSingleton(TimeProvider.System),
            connectionLevelUpgrade: true);
        await using var open = await OpenSocketAsync(host);
        using (var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10)))
        {
            var close = await open.Socket.ReceiveAsync(new byte[1024], timeout.Token);
            Assert.Equal(WebSocketMessageType.Close, close.MessageType);
        }

        // Not answered: kept for the close handshake's timeout (5 s), not much longer.
        var unanswered = System.Diagnostics.Stopwatch.StartNew();
        Assert.True(await open.Client.IsClosedByServerAsync(SelfHostedGateway.CloseHandshakeTimeout + TimeSpan.FromSeconds(5)));
        Assert.InRange(unanswered.Elapsed, SelfHostedGateway.CloseHandshakeTimeout - TimeSpan.FromSeconds(0.5), SelfHostedGateway.CloseHandshakeTimeout + TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task MemberThatStopsReading_WhileAPeerFloodsIt_IsClosedAndReleased_OnTheRealClock_AndThePeerIsServedThroughout()
    {
        // The hostile case of the gateway's I/O on the pipe, which passes the WebSocket no cancellation token: a member stops
        // reading (a small receive window, and it never reads again) while the other floods it with 28 KB signals. The
        // server's sends then wait for that client: the kernel's buffers fill, then the pipe's, then the outbound queue,
        // whose limit closes the connection as a slow consumer. Its close frame cannot go out either, so only the abort
        // (twice the close handshake's timeout after the close) releases the waiting send and ends the connection.
        await using var host = await TestHost.StartAsync(
            o =>
            {
                o.JoinWindow = TimeSpan.FromHours(1);
                o.Limits.MaxMembersPerRoom = 2;
                o.Limits.MessagesPerSecond = 10_000;
                o.Limits.MessageBurst = 100;
                o.Limits.MessageBytesPerSecond = 64 * 1024 * 1024; // the flood's 17 MB pass the byte limits (the most they allow)
                o.Limits.MessageBytesBurst = 64 * 1024 * 1024;
                o.Hosting.OutboundQueueCapacity = 8;
            },
            services => services.AddSingleton(TimeProvider.System),
            connectionLevelUpgrade: true);
        using var ada = await host.SignInAsync("Ada");
        var room = await ada.CreateRoomAsync();
        await using var adaSocket = await ada.ConnectAsync(room);
        using var bob = await host.SignInAsync("Bob");
        var bobTicket = await bob.JoinAsync(room.Room);
        await using var client = await RawClient.ConnectAsync(host, receiveBufferSize: 4096);
        await client.SendAsync(Handshake(bobTicket.Ticket));
        Assert.Equal(101, (await client.ReadResponseAsync()).Status);
        var socket = client.AsWebSocket();
        await SendAsync(socket, """{"type":"hello","version":2}""");
        Assert.IsType<WelcomeMessage>(await ReceiveAsync(socket));
        await adaSocket.ExpectAsync<AdmissionRequestMessage>();
        await adaSocket.SendAsync($$$"""{"type":"admit","member":"{{{bobTicket.Member}}}"}""");
        while (await ReceiveAsync(socket) is not AdmittedMessage)
        {
        }

        Assert.Equal(2, host.Gateway.ConnectionCount);

        // Bob reads nothing from here on. 600 signals of 28 KB are 17 MB: more than the kernel's buffers, the pipe and the
        // queue (8 + 100 frames, 3 MB) hold.
        var signal = $$$"""{"type":"signal","to":"{{{bobTicket.Member}}}","description":{"type":"answer","sdp":"{{{new string('a', 28_000)}}}"}}""";
        for (var i = 0; i < 600; i++)
        {
            await adaSocket.SendAsync(signal);
            if (i % 50 == 49)
            {
                await Task.Delay(10); // at most 5,000 a second: Ada stays within her own rate limit (10,000, burst 100)
            }
        }

        var flooded = System.Diagnostics.Stopwatch.StartNew();
        while (host.Gateway.ConnectionCount > 1 && flooded.Elapsed < SelfHostedGateway.CloseHandshakeTimeout * 2 + TimeSpan.FromSeconds(15))
        {
            await Task.Delay(100);
        }

        Assert.Equal(1, host.Gateway.ConnectionCount); // Bob's connection ended and was released
        await adaSocket.SendAsync("""{"type":"ping"}""");
        await adaSocket.ExpectAsync<PongMessage>(); // Ada was served throughout, and still is
    }

    [Fact]
    public async Task IdleAfterAControlFrameOrAPartOfAHeader_HoldsNoReceiveBuffer_AndTheMessageStillComes()
    {
        // An idle member holds no receive buffer. The gateway skips the WebSocket's zero-byte read when a whole data frame
        // is in the pipe; a whole control frame must not count as one: the WebSocket handles it inside a receive and then
        // waits there for the next frame, which after a client's keep-alive (an unsolicited pong) may be minutes away.
        await using var host = await TestHost.StartAsync(connectionLevelUpgrade: true);
        await using var open = await OpenSocketAsync(host);
        var (client, socket) = (open.Client, open.Socket);
        await WaitForNoBufferAsync(host);

        await SendThenHoldNoBufferAsync(host, client, MaskedFrame(0xA, [])); // an unsolicited pong: the .NET client's keep-alive
        await SendThenHoldNoBufferAsync(host, client, MaskedFrame(0x9, [1, 2])); // a ping (answered with a pong, which the client's WebSocket takes)
        var message = MaskedTextFrame("""{"type":"ping"}""");
        await SendThenHoldNoBufferAsync(host, client, message[..1]); // the first byte of a header
        await client.SendAsync(message[1..]);
        Assert.IsType<PongMessage>(await ReceiveAsync(socket));
        await WaitForNoBufferAsync(host); // returned once the message was handled

        // A control frame and a message in one write: the message behind the control frame is still taken.
        await client.SendAsync([.. MaskedFrame(0xA, []), .. message]);
        Assert.IsType<PongMessage>(await ReceiveAsync(socket));
        await WaitForNoBufferAsync(host);
    }

    [Fact]
    public async Task MemberThatTricklesAMessage_HoldsNoReceiveBufferUntilItIsThere_AndTheMessageStillComes()
    {
        // Hostile: a member sends a frame's header and a byte of it, or the first fragment of a message, and then nothing.
        // The receive buffer (the gateway's limit, 32 KiB + 1, which the pool serves from its 64 KiB bucket) is rented only
        // once the message can be read without waiting for the client: what a trickling member holds is what it sent.
        await using var host = await TestHost.StartAsync(connectionLevelUpgrade: true);
        await using var open = await OpenSocketAsync(host);
        var (client, socket) = (open.Client, open.Socket);
        await WaitForNoBufferAsync(host);

        // A header and one byte of the payload.
        var message = MaskedTextFrame("""{"type":"ping"}""");
        await SendThenHoldNoBufferAsync(host, client, message[..7]);
        await client.SendAsync(message[7..]);
        Assert.IsType<PongMessage>(await ReceiveAsync(socket));
        await WaitForNoBufferAsync(host);

        // A message in fragments (RFC 6455 §5.4): the first whole, then nothing; a ping between the fragments; then the last.
        var text = Encoding.UTF8.GetBytes("""{"type":"ping"}""");
        await SendThenHoldNoBufferAsync(host, client, MaskedFrame(0x1, text[..5], fin: false));
        await SendThenHoldNoBufferAsync(host, client, MaskedFrame(0x9, [7]));
        var last = MaskedFrame(0x0, text[5..]);
        await SendThenHoldNoBufferAsync(host, client, last[..3]);
        await client.SendAsync(last[3..]);
        Assert.IsType<PongMessage>(await ReceiveAsync(socket)); // the message put together again
        await WaitForNoBufferAsync(host);

        // A frame that announces more than the limit, and a little of it: nothing is rented for the promise.
        var huge = new byte[40 * 1024];
        huge.AsSpan().Fill((byte)' ');
        var tooLarge = MaskedFrame(0x1, huge);
        await SendThenHoldNoBufferAsync(host, client, tooLarge[..100]);
        await client.SendAsync(tooLarge[100..]); // the rest: discarded and answered, and the socket goes on
        var error = Assert.IsType<ErrorMessage>(await ReceiveAsync(socket));
        Assert.Equal(SignallingErrorCode.MessageTooLarge, error.Code);
        await SendAsync(socket, """{"type":"ping"}""");
        Assert.IsType<PongMessage>(await ReceiveAsync(socket));
        await WaitForNoBufferAsync(host);
    }

    /// <summary>Sends <paramref name="bytes"/>, waits 300 ms on the real clock, and asserts the gateway holds no receive buffer.</summary>
    private static async Task SendThenHoldNoBufferAsync(TestHost host, RawClient client, byte[] bytes)
    {
        await client.SendAsync(bytes);
        await Task.Delay(300);
        Assert.Equal(0, host.Gateway.ReceiveBuffersHeld);
    }

    private static async Task WaitForNoBufferAsync(TestHost host)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (host.Gateway.ReceiveBuffersHeld != 0 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20);
        }

        Assert.Equal(0, host.Gateway.ReceiveBuffersHeld);
    }

    [Fact]
    public async Task ClientThatResetsTheConnectionWhileIdle_IsReleased_AndNothingIsLoggedAsAnError()
    {
        // A reset ends the connection's input with an exception; waiting on the pipe, the gateway sees it itself.
        var logs = new RecordingLoggerProvider();
        await using var host = await TestHost.StartAsync(connectionLevelUpgrade: true, services: s => s.AddSingleton<ILoggerProvider>(logs));
        await using var open = await OpenSocketAsync(host);
        await Task.Delay(200); // idle: waiting on the pipe

        open.Client.Reset();
        await using var again = await OpenSocketAsync(host); // the server goes on serving
        await SendAsync(again.Socket, """{"type":"ping"}""");
        Assert.IsType<PongMessage>(await ReceiveAsync(again.Socket));
        await Task.Delay(200);
        Assert.DoesNotContain(logs.Entries, e => e.Level >= LogLevel.Error);
    }

    [Fact]
    public async Task IdleOnThePipe_TheSocketGetsTheGatewaysSharedKeepAlive_UnsolicitedPongsAndNothingElse_OnTheRealClock()
    {
        // No keep-alive timeout: the socket idles on the pipe, and its WebSocket has no keep-alive timer of its own; the
        // gateway's one timer sends the unsolicited pongs (RFC 6455 §5.5.3) the WebSocket would have sent.
        await using var host = await TestHost.StartAsync(
            connectionLevelUpgrade: true,
            services: s =>
            {
                s.AddSingleton(TimeProvider.System);
                s.Configure<WebSocketOptions>(o => o.KeepAliveInterval = TimeSpan.FromMilliseconds(300));
            });
        await using var open = await OpenSocketAsync(host);

        var frames = Frames(await open.Client.ReadRawAsync(TimeSpan.FromSeconds(1.5)));
        Assert.True(frames.Count >= 3, $"{frames.Count} keep-alives in 1.5 s at a 300 ms interval");
        Assert.All(frames, f => Assert.Equal((0xA, 0), (f.Opcode, f.Payload.Length))); // pongs, FIN, no payload, nothing else

        await SendAsync(open.Socket, """{"type":"ping"}"""); // the client's WebSocket skips the pongs; the socket works
        Assert.IsType<PongMessage>(await ReceiveAsync(open.Socket));
    }

    [Fact]
    public async Task IdleOnThePipe_KeepAlivesDoNotCountAsActivity_TheIdleTimeoutStillClosesTheSocket()
    {
        await using var host = await TestHost.StartAsync(
            o => o.JoinWindow = TimeSpan.FromHours(1),
            connectionLevelUpgrade: true,
            services: s => s.Configure<WebSocketOptions>(o => o.KeepAliveInterval = TimeSpan.FromMinutes(1)));
        await using var open = await OpenSocketAsync(host);

        // Half a minute at a time: every step is a keep-alive tick, with a pong for the silent socket.
        for (var i = 0; i < 19; i++)
        {
            host.Time.Advance(TimeSpan.FromSeconds(30));
        }

        var pongs = Frames(await open.Client.ReadRawAsync(TimeSpan.FromMilliseconds(500)));
        Assert.True(pongs.Count >= 15, $"{pongs.Count} keep-alives in 9.5 minutes at a 1-minute interval");
        Assert.All(pongs, f => Assert.Equal(0xA, f.Opcode));

        host.Time.Advance(TimeSpan.FromSeconds(31)); // 10 minutes and a second without a message: the idle timeout
        var last = Frames(await open.Client.ReadRawAsync(TimeSpan.FromSeconds(2)));
        var close = Assert.Single(last, f => f.Opcode == 0x8);
        Assert.Equal((int)WebSocketCloseStatus.EndpointUnavailable, (close.Payload[0] << 8) | close.Payload[1]);
    }

    /// <summary>RFC 6455 §5.2: a server's frames (unmasked), each whole; fails on a partial one.</summary>
    private static List<(int Opcode, byte[] Payload)> Frames(byte[] bytes)
    {
        var frames = new List<(int, byte[])>();
        var at = 0;
        while (at < bytes.Length)
        {
            Assert.True(bytes.Length - at >= 2, "a partial frame header");
            Assert.Equal(0x80, bytes[at] & 0xF0); // FIN, no RSV bits
            Assert.Equal(0, bytes[at + 1] & 0x80); // a server's frame is not masked
            var length = bytes[at + 1] & 0x7F;
            Assert.True(length < 126 && bytes.Length - at - 2 >= length, "a frame longer than the test expects, or cut");
            frames.Add((bytes[at] & 0x0F, bytes.AsSpan(at + 2, length).ToArray()));
            at += 2 + length;
        }

        return frames;
    }

    [Fact]
    public async Task WithAKeepAliveTimeout_PingsAreAnsweredWhileIdle_AndTheSocketStillWorks_OnTheRealClock()
    {
        // With a keep-alive timeout the server's WebSocket reads ahead for the pong while no receive is pending; the
        // connection must then idle in a receive, not on the pipe (one pipe, one reader).
        await using var host = await TestHost.StartAsync(
            connectionLevelUpgrade: true,
            services: s => s.Configure<WebSocketOptions>(o =>
            {
                o.KeepAliveInterval = TimeSpan.FromMilliseconds(100);
                o.KeepAliveTimeout = TimeSpan.FromSeconds(3);
            }));
        await using var open = await OpenSocketAsync(host);
        var socket = open.Socket;

        // First no receive on the client, so no pong: the server's WebSocket pings on its heartbeat (at most once a
        // second, dotnet/runtime ManagedWebSocket.KeepAlive.cs) and reads ahead for the pong. Then a pending receive
        // answers the pings, the server idle all along.
        await Task.Delay(TimeSpan.FromMilliseconds(2000));
        var pending = ReceiveAsync(socket);
        await Task.Delay(TimeSpan.FromSeconds(1));
        Assert.False(pending.IsCompleted);
        await SendAsync(socket, """{"type":"ping"}""");
        Assert.IsType<PongMessage>(await pending);
        await SendAsync(socket, """{"type":"ping"}""");
        Assert.IsType<PongMessage>(await ReceiveAsync(socket));
    }

    /// <summary>A member's socket taken at the connection level, welcomed: a signed-in user, a room, a raw client past its 101.</summary>
    private static async Task<OpenSocket> OpenSocketAsync(TestHost host)
    {
        var ada = await host.SignInAsync("Ada");
        var room = await ada.CreateRoomAsync();
        var client = await RawClient.ConnectAsync(host);
        await client.SendAsync(Handshake(room.Ticket));
        Assert.Equal(101, (await client.ReadResponseAsync()).Status);
        var socket = client.AsWebSocket();
        await SendAsync(socket, """{"type":"hello","version":2}""");
        Assert.IsType<WelcomeMessage>(await ReceiveAsync(socket));
        return new OpenSocket(ada, client, socket);
    }

    private static string Handshake(string ticket) => HandshakeTo("/talki/ws?ticket=" + Uri.EscapeDataString(ticket) + "&v=2");

    private static string HandshakeTo(string target) =>
        $"GET {target} HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {Key}\r\nSec-WebSocket-Version: 13\r\n\r\n";

    /// <summary>RFC 6455 §5.2: FIN, opcode 1 (text), MASK with a key, a 7-bit length (the payload is under 126 bytes).</summary>
    private static byte[] MaskedTextFrame(string text) => MaskedFrame(0x1, Encoding.UTF8.GetBytes(text));

    /// <summary>RFC 6455 §5.2: FIN (unless <paramref name="fin"/> is false), the opcode, MASK with a key, the length in 7 or 7 + 16 bits.</summary>
    private static byte[] MaskedFrame(byte opcode, byte[] payload, bool fin = true)
    {
        byte[] mask = [0x12, 0x34, 0x56, 0x78];
        var extended = payload.Length < 126 ? 0 : 2;
        Assert.True(payload.Length <= ushort.MaxValue);
        var frame = new byte[2 + extended + 4 + payload.Length];
        frame[0] = (byte)((fin ? 0x80 : 0) | opcode);
        frame[1] = (byte)(0x80 | (extended == 0 ? payload.Length : 126));
        if (extended != 0)
        {
            System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(2), (ushort)payload.Length);
        }

        mask.CopyTo(frame, 2 + extended);
        for (var i = 0; i < payload.Length; i++)
        {
            frame[2 + extended + 4 + i] = (byte)(payload[i] ^ mask[i % 4]);
        }

        return frame;
    }

    private static Task SendAsync(WebSocket socket, string json) =>
        socket.SendAsync(Encoding.UTF8.GetBytes(json), WebSocketMessageType.Text, true, CancellationToken.None);

    private static async Task<ServerMessage> ReceiveAsync(WebSocket socket)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var buffer = new byte[64 * 1024];
        var result = await socket.ReceiveAsync(buffer, timeout.Token);
        Assert.True(result.EndOfMessage);
        return JsonSerializer.Deserialize(buffer.AsSpan(0, result.Count), TalkiJsonContext.Default.ServerMessage)!;
    }

    private sealed record OpenSocket(TalkiUser User, RawClient Client, WebSocket Socket) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await Client.DisposeAsync();
            User.Dispose();
        }
    }

    /// <summary>A TCP client that writes bytes as given and reads HTTP/1.1 answers.</summary>
    private sealed class RawClient : IAsyncDisposable
    {
        private readonly TcpClient _tcp;
        private readonly NetworkStream _stream;
        private readonly MemoryStream _pending = new();

        private RawClient(TcpClient tcp)
        {
            _tcp = tcp;
            _stream = tcp.GetStream();
        }

        /// <summary>Connects to the host; <paramref name="receiveBufferSize"/> sets the socket's receive buffer before it connects (a small window).</summary>
        public static async Task<RawClient> ConnectAsync(TestHost host, int? receiveBufferSize = null)
        {
            var tcp = new TcpClient();
            if (receiveBufferSize is { } size)
            {
                tcp.ReceiveBufferSize = size;
            }

            await tcp.ConnectAsync(IPAddress.Loopback, host.BaseAddress.Port);
            return new RawClient(tcp);
        }

        public Task SendAsync(string text) => SendAsync(Encoding.ASCII.GetBytes(text));

        public async Task SendAsync(byte[] bytes)
        {
            try
            {
                await _stream.WriteAsync(bytes);
            }
            catch (IOException)
            {
                // The server closed first; what it answered is still to be read.
            }
        }

        public async Task<RawResponse> ReadResponseAsync() =>
            await TryReadResponseAsync(TimeSpan.FromSeconds(15)) ?? throw new InvalidOperationException("The server closed the connection without an answer.");

        /// <summary>Reads one answer (head and Content-Length body), or null when the connection ends first.</summary>
        public async Task<RawResponse?> TryReadResponseAsync(TimeSpan timeout)
        {
            using var cts = new CancellationTokenSource(timeout);
            var buffer = new byte[4096];
            while (true)
            {
                var data = _pending.ToArray();
                var end = data.AsSpan().IndexOf("\r\n\r\n"u8);
                if (end >= 0)
                {
                    var head = Encoding.ASCII.GetString(data, 0, end).Split("\r\n");
                    var headers = head.Skip(1).Select(l => l.Split(':', 2)).ToDictionary(p => p[0].Trim(), p => p[1].Trim(), StringComparer.OrdinalIgnoreCase);
                    var status = int.Parse(head[0].Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
                    var rest = data.AsSpan(end + 4);
                    var (body, used) = status == 101 ? ([], 0)
                        : string.Equals(headers.GetValueOrDefault("Transfer-Encoding"), "chunked", StringComparison.OrdinalIgnoreCase) ? Unchunk(rest)
                        : int.Parse(headers.GetValueOrDefault("Content-Length", "0"), System.Globalization.CultureInfo.InvariantCulture) is var length && rest.Length >= length ? (rest[..length].ToArray(), length)
                        : (null, 0);
                    if (body is not null)
                    {
                        _pending.SetLength(0);
                        _pending.Write(data, end + 4 + used, data.Length - end - 4 - used);
                        return new RawResponse(status, headers, body);
                    }
                }

                int read;
                try
                {
                    read = await _stream.ReadAsync(buffer, cts.Token);
                }
                catch (Exception exception) when (exception is IOException or OperationCanceledException)
                {
                    return null;
                }

                if (read == 0)
                {
                    return null;
                }

                _pending.Write(buffer, 0, read);
            }
        }

        /// <summary>RFC 9112 §7.1: the body of a chunked message and the bytes it took, or null while it is incomplete.</summary>
        private static (byte[]? Body, int Used) Unchunk(ReadOnlySpan<byte> data)
        {
            var body = new List<byte>();
            var at = 0;
            while (true)
            {
                var lineEnd = data[at..].IndexOf("\r\n"u8);
                if (lineEnd < 0)
                {
                    return (null, 0);
                }

                var size = Convert.ToInt32(Encoding.ASCII.GetString(data.Slice(at, lineEnd)).Split(';')[0], 16);
                at += lineEnd + 2;
                if (data.Length < at + size + 2)
                {
                    return (null, 0);
                }

                body.AddRange(data.Slice(at, size));
                at += size + 2;
                if (size == 0)
                {
                    return ([.. body], at);
                }
            }
        }

        /// <summary>Every byte the server sends within <paramref name="duration"/> (after the WebSocket's last read; nothing must be pending in it).</summary>
        public async Task<byte[]> ReadRawAsync(TimeSpan duration)
        {
            using var cts = new CancellationTokenSource(duration);
            var received = new MemoryStream();
            var buffer = new byte[4096];
            try
            {
                int read;
                while ((read = await _stream.ReadAsync(buffer, cts.Token)) > 0)
                {
                    received.Write(buffer, 0, read);
                }
            }
            catch (OperationCanceledException)
            {
                // the duration is over
            }

            return received.ToArray();
        }

        /// <summary>Whether the server closes the connection (end of stream or reset) within <paramref name="timeout"/>.</summary>
        public async Task<bool> IsClosedByServerAsync(TimeSpan? timeout = null)
        {
            using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(10));
            var buffer = new byte[4096];
            try
            {
                while (await _stream.ReadAsync(buffer, cts.Token) > 0)
                {
                }

                return true;
            }
            catch (IOException)
            {
                return true;
            }
            catch (OperationCanceledException)
            {
                return false;
            }
        }

        /// <summary>The connection as the client side of a WebSocket, after a 101 (with the bytes already read after it).</summary>
        public WebSocket AsWebSocket()
        {
            var read = _pending.ToArray();
            _pending.SetLength(0);
            return WebSocket.CreateFromStream(new ReadAheadStream(_stream, read), new WebSocketCreationOptions { IsServer = false, KeepAliveInterval = TimeSpan.Zero });
        }

        /// <summary>Closes with a TCP reset (RST, linger 0) instead of a FIN.</summary>
        public void Reset()
        {
            _tcp.Client.LingerState = new LingerOption(true, 0);
            _tcp.Close();
        }

        public ValueTask DisposeAsync()
        {
            _tcp.Dispose();
            return ValueTask.CompletedTask;
        }
    }

    /// <summary>A stream whose reads return <c>readAhead</c> first, then the inner stream's bytes; writes go to the inner stream.</summary>
    private sealed class ReadAheadStream(Stream inner, byte[] readAhead) : Stream
    {
        private int _offset;

        public override bool CanRead => true;

        public override bool CanWrite => true;

        public override bool CanSeek => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (_offset < readAhead.Length)
            {
                var count = Math.Min(buffer.Length, readAhead.Length - _offset);
                readAhead.AsSpan(_offset, count).CopyTo(buffer.Span);
                _offset += count;
                return ValueTask.FromResult(count);
            }

            return inner.ReadAsync(buffer, cancellationToken);
        }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => inner.WriteAsync(buffer, cancellationToken);

        public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

        public override void Flush() => inner.Flush();

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();
    }

    private sealed record RawResponse(int Status, Dictionary<string, string> Headers, byte[] Body)
    {
        public bool ServedByKestrelHttp => Headers.ContainsKey("Server");

        public string? Header(string name) => Headers.GetValueOrDefault(name);
    }
}
