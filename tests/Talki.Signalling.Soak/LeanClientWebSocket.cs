using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;

namespace Talki.Signalling.Soak;

/// <summary>
/// A small client side of RFC 6455 for load generation: one frame per send, straight to the socket, and frames read from
/// one buffer. It differs from <see cref="ClientWebSocket"/> in what the load tool measured as its own cost, not in what a
/// server sees: the same frames, masked (RFC 6455 §5.1, §5.3), one frame per send as a browser's <c>send()</c>.
/// </summary>
/// <remarks>
/// <para>
/// The mask keys. RFC 6455 §5.3 asks for keys from "a strong source of entropy"; their purpose is to stop a script in a
/// browser from choosing the bytes an intermediary sees on the wire (§10.3, cache poisoning). <see cref="ClientWebSocket"/>
/// draws each frame's key from the cryptographic generator, which on Linux is OpenSSL's and costs a <c>getpid</c> call
/// each time: about 16 % of the load tool's CPU in a profile (docs/performance.md). This client runs on the loopback
/// interface against the servers under test, with no intermediary, and draws its keys from a per-socket xorshift
/// generator seeded once from the cryptographic one. A server unmasks every frame the same way whatever the key, so its
/// cost is unchanged. Not for use across a network.
/// </para>
/// <para>
/// What it handles: text, binary and continuation frames (a message may come in several frames), close (answered, the
/// status and reason kept), ping (answered with a pong carrying its payload, §5.5.3), pong (ignored). A masked frame from
/// the server, a reserved bit or an unknown opcode is a protocol error (§5.1, §5.2): the socket is aborted and the
/// receive throws. <see cref="WebSocketException"/> reports every transport failure, as <see cref="ClientWebSocket"/>'s
/// callers expect.
/// </para>
/// <para>One receive and one send may run at the same time (as with <see cref="ClientWebSocket"/>); sends are serialised.</para>
/// <para>
/// Its asynchronous methods pool their state (<see cref="PoolingAsyncValueTaskMethodBuilder"/>): at a moderate rate every
/// receive waits, and each waiting method of the chain otherwise allocated its state once per message, about half of what
/// the tool allocated at 2,000 msg/s (18 MiB per 10 s window, 1–2 of its own collections, whose pauses count as latency).
/// A <see cref="ValueTask"/> it returns must be awaited once, as any.
/// </para>
/// </remarks>
public sealed class LeanClientWebSocket : WebSocket
{
    private const string AcceptGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"; // RFC 6455 §1.3
    private readonly Socket _socket;
    private readonly SemaphoreSlim _sending = new(1, 1);
    private byte[] _receive = new byte[16 * 1024];
    private int _start;
    private int _end;
    private long _frameLeft;
    private bool _inFrame;
    private bool _frameFinal;
    private WebSocketMessageType _messageType;
    private ulong _mask;
    private bool _sendingFragments;
    private volatile WebSocketState _state = WebSocketState.Open;
    private WebSocketCloseStatus? _closeStatus;
    private string? _closeDescription;

    private LeanClientWebSocket(Socket socket, ReadOnlySpan<byte> leftover)
    {
        _socket = socket;
        leftover.CopyTo(_receive);
        _end = leftover.Length;
        Span<byte> seed = stackalloc byte[8];
        do
        {
            RandomNumberGenerator.Fill(seed);
            _mask = BinaryPrimitives.ReadUInt64LittleEndian(seed);
        }
        while (_mask == 0); // xorshift's one fixed point
    }

    public override WebSocketCloseStatus? CloseStatus => _closeStatus;

    public override string? CloseStatusDescription => _closeDescription;

    public override WebSocketState State => _state;

    public override string? SubProtocol => null;

    /// <summary>Connects to a <c>ws://</c> address by TCP and completes the opening handshake (RFC 6455 §4.1).</summary>
    /// <exception cref="WebSocketException">The connection failed, or the server did not switch protocols properly.</exception>
    public static async Task<LeanClientWebSocket> ConnectAsync(Uri uri, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(uri);
        if (uri.Scheme != "ws")
        {
            throw new ArgumentException("Only ws:// addresses (the loopback servers under test).", nameof(uri));
        }

        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(new DnsEndPoint(uri.Host, uri.Port), cancellationToken).ConfigureAwait(false);
            var key = Convert.ToBase64String(RandomNumberGenerator.GetBytes(16));
            var request = $"GET {uri.PathAndQuery} HTTP/1.1\r\nHost: {uri.Authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n";
            await SendAllAsync(socket, Encoding.ASCII.GetBytes(request), cancellationToken).ConfigureAwait(false);

            // The response's head, and whatever frames came right behind it.
            var buffer = new byte[8 * 1024];
            var read = 0;
            int headEnd;
            while ((headEnd = buffer.AsSpan(0, read).IndexOf("\r\n\r\n"u8)) < 0)
            {
                if (read == buffer.Length)
                {
                    throw new WebSocketException(WebSocketError.HeaderError, "The handshake response's head is larger than 8 KiB.");
                }

                var n = await socket.ReceiveAsync(buffer.AsMemory(read), SocketFlags.None, cancellationToken).ConfigureAwait(false);
                if (n == 0)
                {
                    throw new WebSocketException(WebSocketError.ConnectionClosedPrematurely, "The server closed the connection during the handshake.");
                }

                read += n;
            }

            var head = Encoding.ASCII.GetString(buffer, 0, headEnd).Split("\r\n");
            if (head[0].Split(' ') is not [_, "101", ..])
            {
                throw new WebSocketException(WebSocketError.NotAWebSocket, $"The server answered the upgrade with '{head[0]}'.");
            }

#pragma warning disable CA5350 // The handshake's accept value is SHA-1 by definition (RFC 6455 §4.2.2), not a security use.
            var expected = Convert.ToBase64String(SHA1.HashData(Encoding.ASCII.GetBytes(key + AcceptGuid)));
#pragma warning restore CA5350
            var accept = head.Skip(1).Select(line => line.Split(':', 2)).FirstOrDefault(h => h.Length == 2 && h[0].Trim().Equals("Sec-WebSocket-Accept", StringComparison.OrdinalIgnoreCase));
            if (accept is null || accept[1].Trim() != expected)
            {
                throw new WebSocketException(WebSocketError.HeaderError, "The server's Sec-WebSocket-Accept does not match the key (RFC 6455 §4.1).");
            }

            return new LeanClientWebSocket(socket, buffer.AsSpan(headEnd + 4, read - headEnd - 4));
        }
        catch (Exception e) when (e is SocketException or IOException)
        {
            socket.Dispose();
            throw new WebSocketException(WebSocketError.Faulted, e.Message, e);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    public override async Task<WebSocketReceiveResult> ReceiveAsync(ArraySegment<byte> buffer, CancellationToken cancellationToken)
    {
        var result = await ReceiveAsync(buffer.AsMemory(), cancellationToken).ConfigureAwait(false);
        return result.MessageType == WebSocketMessageType.Close
            ? new WebSocketReceiveResult(0, WebSocketMessageType.Close, true, _closeStatus, _closeDescription)
            : new WebSocketReceiveResult(result.Count, result.MessageType, result.EndOfMessage);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public override async ValueTask<ValueWebSocketReceiveResult> ReceiveAsync(Memory<byte> buffer, CancellationToken cancellationToken)
    {
        try
        {
            while (true)
            {
                if (!_inFrame)
                {
                    if (await ReadHeaderAsync(cancellationToken).ConfigureAwait(false) is { } control)
                    {
                        return control; // a close
                    }

                    continue; // a data frame's header was read (or a ping or pong handled)
                }

                if (_frameLeft == 0)
                {
                    _inFrame = false;
                    return new ValueWebSocketReceiveResult(0, _messageType, _frameFinal);
                }

                if (_end == _start)
                {
                    await FillAsync(1, cancellationToken).ConfigureAwait(false);
                }

                var count = (int)Math.Min(Math.Min(buffer.Length, _frameLeft), _end - _start);
                _receive.AsSpan(_start, count).CopyTo(buffer.Span);
                _start += count;
                _frameLeft -= count;
                var done = _frameLeft == 0;
                if (done)
                {
                    _inFrame = false;
                }

                return new ValueWebSocketReceiveResult(count, _messageType, done && _frameFinal);
            }
        }
        catch (Exception e) when (e is SocketException or IOException)
        {
            _state = WebSocketState.Aborted;
            throw new WebSocketException(WebSocketError.ConnectionClosedPrematurely, e.Message, e);
        }
    }

    public override Task SendAsync(ArraySegment<byte> buffer, WebSocketMessageType messageType, bool endOfMessage, CancellationToken cancellationToken)
        => SendAsync(buffer.AsMemory(), messageType, endOfMessage, cancellationToken).AsTask();

    public override ValueTask SendAsync(ReadOnlyMemory<byte> buffer, WebSocketMessageType messageType, bool endOfMessage, CancellationToken cancellationToken)
    {
        if (_state is not (WebSocketState.Open or WebSocketState.CloseReceived))
        {
            throw new WebSocketException(WebSocketError.InvalidState, $"The WebSocket is {_state}.");
        }

        var opcode = messageType switch
        {
            WebSocketMessageType.Text => 0x1,
            WebSocketMessageType.Binary => 0x2,
            _ => throw new ArgumentOutOfRangeException(nameof(messageType), messageType, "Close with CloseOutputAsync."),
        };

        // A message's later fragments are continuation frames (§5.4); one sender at a time, as with ClientWebSocket.
        if (_sendingFragments)
        {
            opcode = 0x0;
        }

        _sendingFragments = !endOfMessage;
        return SendFrameAsync(opcode, endOfMessage, buffer, cancellationToken);
    }

    public override async Task CloseOutputAsync(WebSocketCloseStatus closeStatus, string? statusDescription, CancellationToken cancellationToken)
    {
        if (_state is not (WebSocketState.Open or WebSocketState.CloseReceived))
        {
            return;
        }

        var reason = Encoding.UTF8.GetBytes(statusDescription ?? "");
        var payload = new byte[2 + reason.Length];
        BinaryPrimitives.WriteUInt16BigEndian(payload, (ushort)closeStatus);
        reason.CopyTo(payload, 2);
        await SendFrameAsync(0x8, true, payload, cancellationToken).ConfigureAwait(false);
        _state = _state == WebSocketState.CloseReceived ? WebSocketState.Closed : WebSocketState.CloseSent;
    }

    public override async Task CloseAsync(WebSocketCloseStatus closeStatus, string? statusDescription, CancellationToken cancellationToken)
    {
        await CloseOutputAsync(closeStatus, statusDescription, cancellationToken).ConfigureAwait(false);
        var discard = new byte[4096];
        while (_state == WebSocketState.CloseSent)
        {
            var result = await ReceiveAsync(discard.AsMemory(), cancellationToken).ConfigureAwait(false);
            if (result.MessageType == WebSocketMessageType.Close)
            {
                break;
            }
        }
    }

    public override void Abort()
    {
        if (_state != WebSocketState.Closed)
        {
            _state = WebSocketState.Aborted;
        }

        _socket.Dispose();
    }

    public override void Dispose()
    {
        if (_state is not (WebSocketState.Closed or WebSocketState.Aborted))
        {
            _state = WebSocketState.Closed;
        }

        _socket.Dispose();
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private static async ValueTask SendAllAsync(Socket socket, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        while (!data.IsEmpty)
        {
            var n = await socket.SendAsync(data, SocketFlags.None, cancellationToken).ConfigureAwait(false);
            data = data[n..];
        }
    }

    /// <summary>Writes one masked frame (RFC 6455 §5.2) and sends it in one call.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask SendFrameAsync(int opcode, bool final, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
    {
        var length = payload.Length;
        var headerLength = 2 + (length < 126 ? 0 : length <= ushort.MaxValue ? 2 : 8) + 4;
        var frame = ArrayPool<byte>.Shared.Rent(headerLength + length);
        try
        {
            frame[0] = (byte)((final ? 0x80 : 0) | opcode);
            int at;
            if (length < 126)
            {
                frame[1] = (byte)(0x80 | length);
                at = 2;
            }
            else if (length <= ushort.MaxValue)
            {
                frame[1] = 0x80 | 126;
                BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(2), (ushort)length);
                at = 4;
            }
            else
            {
                frame[1] = 0x80 | 127;
                BinaryPrimitives.WriteUInt64BigEndian(frame.AsSpan(2), (ulong)length);
                at = 10;
            }

            await _sending.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                var key = NextMask();
                BinaryPrimitives.WriteUInt32LittleEndian(frame.AsSpan(at), key);
                Mask(payload.Span, frame.AsSpan(at + 4, length), key);
                await SendAllAsync(_socket, frame.AsMemory(0, headerLength + length), cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is SocketException or IOException or ObjectDisposedException)
            {
                _state = WebSocketState.Aborted;
                throw new WebSocketException(WebSocketError.ConnectionClosedPrematurely, e.Message, e);
            }
            finally
            {
                _sending.Release();
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(frame);
        }
    }

    /// <summary>Marsaglia's xorshift64; the low 32 bits are the key (its bytes in wire order, as the key is applied byte by byte).</summary>
    private uint NextMask()
    {
        var x = _mask;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        _mask = x;
        return (uint)x;
    }

    /// <summary>Copies <paramref name="source"/> into <paramref name="destination"/> XORed with the key, byte i with key byte i mod 4 (§5.3).</summary>
    private static void Mask(ReadOnlySpan<byte> source, Span<byte> destination, uint key)
    {
        var i = 0;
        var wide = ((ulong)key << 32) | key; // little-endian: bytes k0 k1 k2 k3 k0 k1 k2 k3
        for (; i + 8 <= source.Length; i += 8)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(destination[i..], BinaryPrimitives.ReadUInt64LittleEndian(source[i..]) ^ wide);
        }

        for (; i < source.Length; i++)
        {
            destination[i] = (byte)(source[i] ^ (byte)(key >> (8 * (i & 3))));
        }
    }

    /// <summary>Makes at least <paramref name="count"/> unread bytes available in the receive buffer.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask FillAsync(int count, CancellationToken cancellationToken)
    {
        if (_end - _start >= count)
        {
            return;
        }

        if (_start > 0)
        {
            _receive.AsSpan(_start, _end - _start).CopyTo(_receive);
            _end -= _start;
            _start = 0;
        }

        if (count > _receive.Length)
        {
            Array.Resize(ref _receive, Math.Max(count, _receive.Length * 2));
        }

        while (_end < count)
        {
            var n = await _socket.ReceiveAsync(_receive.AsMemory(_end), SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                _state = WebSocketState.Aborted;
                throw new WebSocketException(WebSocketError.ConnectionClosedPrematurely, "The server ended the connection without a close frame.");
            }

            _end += n;
        }
    }

    /// <summary>Reads a frame's header; handles a control frame whole. Returns the result to give for a close, else null.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<ValueWebSocketReceiveResult?> ReadHeaderAsync(CancellationToken cancellationToken)
    {
        await FillAsync(2, cancellationToken).ConfigureAwait(false);
        var (b0, b1) = (_receive[_start], _receive[_start + 1]);
        var opcode = b0 & 0x0F;
        var lengthBytes = (b1 & 0x7F) switch { 126 => 2, 127 => 8, _ => 0 };
        if ((b0 & 0x70) != 0 || (b1 & 0x80) != 0 || opcode is not (0x0 or 0x1 or 0x2 or 0x8 or 0x9 or 0xA))
        {
            Abort();
            throw new WebSocketException(WebSocketError.Faulted, $"Protocol error: reserved bits, a masked server frame or opcode {opcode} (RFC 6455 §5.1, §5.2).");
        }

        await FillAsync(2 + lengthBytes, cancellationToken).ConfigureAwait(false);
        long length = lengthBytes switch
        {
            2 => BinaryPrimitives.ReadUInt16BigEndian(_receive.AsSpan(_start + 2)),
            8 => (long)BinaryPrimitives.ReadUInt64BigEndian(_receive.AsSpan(_start + 2)),
            _ => b1 & 0x7F,
        };
        var final = (b0 & 0x80) != 0;
        if (opcode >= 0x8)
        {
            if (length > 125 || !final)
            {
                Abort();
                throw new WebSocketException(WebSocketError.Faulted, "Protocol error: a control frame over 125 bytes or fragmented (RFC 6455 §5.5).");
            }

            await FillAsync(2 + (int)length, cancellationToken).ConfigureAwait(false);
            var payload = _receive.AsSpan(_start + 2, (int)length).ToArray();
            _start += 2 + (int)length;
            switch (opcode)
            {
                case 0x8:
                    if (payload.Length >= 2)
                    {
                        _closeStatus = (WebSocketCloseStatus)BinaryPrimitives.ReadUInt16BigEndian(payload);
                        _closeDescription = Encoding.UTF8.GetString(payload, 2, payload.Length - 2);
                    }
                    else
                    {
                        _closeStatus = WebSocketCloseStatus.Empty;
                    }

                    _state = _state == WebSocketState.CloseSent ? WebSocketState.Closed : WebSocketState.CloseReceived;
                    return new ValueWebSocketReceiveResult(0, WebSocketMessageType.Close, true);
                case 0x9:
                    await SendFrameAsync(0xA, true, payload, cancellationToken).ConfigureAwait(false); // §5.5.3
                    return null;
                default:
                    return null; // an unsolicited pong (§5.5.3): nothing to answer
            }
        }

        _start += 2 + lengthBytes;
        if (opcode != 0x0)
        {
            _messageType = opcode == 0x1 ? WebSocketMessageType.Text : WebSocketMessageType.Binary;
        }

        _frameLeft = length;
        _frameFinal = final;
        _inFrame = true;
        return null;
    }
}
