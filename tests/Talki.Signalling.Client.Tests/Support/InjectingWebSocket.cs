using System.Net.WebSockets;
using System.Text;
using System.Threading.Channels;

namespace Talki.Signalling.Client.Tests.Support;

/// <summary>
/// A real client WebSocket that records what the client sends and lets a test slip frames in front of the server's
/// (as if a broken or newer server had sent them).
/// </summary>
internal sealed class InjectingWebSocket(ClientWebSocket inner) : WebSocket
{
    private readonly Channel<byte[]> _injected = Channel.CreateUnbounded<byte[]>();
    private readonly List<string> _sent = [];
    private Task<ValueWebSocketReceiveResult>? _pendingReal;
    private byte[]? _pendingRealCopy;
    private int _pendingInjected;
    private int _receiveCalls;
    private int _lastInjectedAtCall;

    private readonly List<string> _received = [];
    private readonly List<string> _swallowed = [];
    private readonly List<byte> _partial = [];

    /// <summary>
    /// Gets or sets a value indicating whether sends succeed without reaching the server, as on a socket whose connection
    /// died without either side noticing yet (a half-open TCP connection, a browser socket already closing).
    /// </summary>
    public bool SwallowSends { get; set; }

    /// <summary>
    /// Gets or sets a value indicating whether text frames from the server vanish instead of reaching the client, as on a
    /// socket whose connection died while the server still wrote into it (the server saw its writes succeed).
    /// </summary>
    public bool SwallowReceives { get; set; }

    /// <summary>Gets the text frames (or parts of them) that <see cref="SwallowReceives"/> made vanish.</summary>
    public IReadOnlyList<string> Swallowed
    {
        get
        {
            lock (_swallowed)
            {
                return [.. _swallowed];
            }
        }
    }

    /// <summary>Gets or sets what runs with each frame just before it goes to the server (to see the client's state at that instant).</summary>
    public Action<string>? BeforeSend { get; set; }

    public IReadOnlyList<string> Sent
    {
        get
        {
            lock (_sent)
            {
                return [.. _sent];
            }
        }
    }

    /// <summary>Gets a value indicating whether every injected frame was returned and the client asked for the next frame since.</summary>
    public bool InjectedFramesHandled => Volatile.Read(ref _pendingInjected) == 0 && Volatile.Read(ref _receiveCalls) > Volatile.Read(ref _lastInjectedAtCall);

    public override WebSocketCloseStatus? CloseStatus => inner.CloseStatus;

    public override string? CloseStatusDescription => inner.CloseStatusDescription;

    public override WebSocketState State => inner.State;

    public override string? SubProtocol => inner.SubProtocol;

    public void Inject(string frame)
    {
        Interlocked.Increment(ref _pendingInjected);
        _injected.Writer.TryWrite(Encoding.UTF8.GetBytes(frame));
    }

    public override void Abort() => inner.Abort();

    public override Task CloseAsync(WebSocketCloseStatus closeStatus, string? statusDescription, CancellationToken cancellationToken) =>
        inner.CloseAsync(closeStatus, statusDescription, cancellationToken);

    public override Task CloseOutputAsync(WebSocketCloseStatus closeStatus, string? statusDescription, CancellationToken cancellationToken) =>
        inner.CloseOutputAsync(closeStatus, statusDescription, cancellationToken);

    public override void Dispose() => inner.Dispose();

    public override Task<WebSocketReceiveResult> ReceiveAsync(ArraySegment<byte> buffer, CancellationToken cancellationToken) =>
        throw new NotSupportedException("The client uses the Memory overload.");

    public override async ValueTask<ValueWebSocketReceiveResult> ReceiveAsync(Memory<byte> buffer, CancellationToken cancellationToken)
    {
        // An injected frame wins over the server's next one; a real receive already in flight is kept for the next call.
        var call = Interlocked.Increment(ref _receiveCalls);
        if (_injected.Reader.TryRead(out var ready))
        {
            return Injected(ready, buffer, call);
        }

        if (_pendingReal is null)
        {
            _pendingRealCopy = new byte[buffer.Length];
            _pendingReal = inner.ReceiveAsync(_pendingRealCopy.AsMemory(), cancellationToken).AsTask();
        }

        while (true)
        {
            var waitInjected = _injected.Reader.WaitToReadAsync(cancellationToken).AsTask();
            var first = await Task.WhenAny(_pendingReal, waitInjected);
            if (first == _pendingReal)
            {
                var result = await _pendingReal;
                _pendingReal = null;
                if (SwallowReceives && result.MessageType == WebSocketMessageType.Text)
                {
                    lock (_swallowed)
                    {
                        _swallowed.Add(Encoding.UTF8.GetString(_pendingRealCopy.AsSpan(0, result.Count)));
                    }

                    _pendingReal = inner.ReceiveAsync(_pendingRealCopy.AsMemory(), cancellationToken).AsTask();
                    continue;
                }

                _pendingRealCopy.AsSpan(0, result.Count).CopyTo(buffer.Span);
                Record(_pendingRealCopy.AsSpan(0, result.Count), result.EndOfMessage, result.MessageType);
                return result;
            }

            if (await waitInjected && _injected.Reader.TryRead(out var frame))
            {
                return Injected(frame, buffer, call);
            }
        }
    }

    /// <summary>Gets the text frames the server sent (injected ones excluded), whole.</summary>
    public IReadOnlyList<string> Received
    {
        get
        {
            lock (_received)
            {
                return [.. _received];
            }
        }
    }

    private void Record(ReadOnlySpan<byte> chunk, bool endOfMessage, WebSocketMessageType type)
    {
        if (type != WebSocketMessageType.Text)
        {
            return;
        }

        lock (_received)
        {
            _partial.AddRange(chunk);
            if (endOfMessage)
            {
                _received.Add(System.Text.Encoding.UTF8.GetString([.. _partial]));
                _partial.Clear();
            }
        }
    }

    private ValueWebSocketReceiveResult Injected(byte[] frame, Memory<byte> buffer, int call)
    {
        frame.CopyTo(buffer);
        Volatile.Write(ref _lastInjectedAtCall, call);
        Interlocked.Decrement(ref _pendingInjected);
        return new ValueWebSocketReceiveResult(frame.Length, WebSocketMessageType.Text, true);
    }

    public override Task SendAsync(ArraySegment<byte> buffer, WebSocketMessageType messageType, bool endOfMessage, CancellationToken cancellationToken)
    {
        var frame = Encoding.UTF8.GetString(buffer);
        lock (_sent)
        {
            _sent.Add(frame);
        }

        BeforeSend?.Invoke(frame);

        return SwallowSends ? Task.CompletedTask : inner.SendAsync(buffer, messageType, endOfMessage, cancellationToken);
    }

    public override ValueTask SendAsync(ReadOnlyMemory<byte> buffer, WebSocketMessageType messageType, bool endOfMessage, CancellationToken cancellationToken)
    {
        var frame = Encoding.UTF8.GetString(buffer.Span);
        lock (_sent)
        {
            _sent.Add(frame);
        }

        BeforeSend?.Invoke(frame);

        return SwallowSends ? ValueTask.CompletedTask : inner.SendAsync(buffer, messageType, endOfMessage, cancellationToken);
    }
}
