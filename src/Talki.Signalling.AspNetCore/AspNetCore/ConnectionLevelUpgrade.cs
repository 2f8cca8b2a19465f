using System.Buffers;
using System.IO.Pipelines;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Talki.Signalling.Http;
using Talki.Signalling.Protocol;

using static Talki.Signalling.Server.AspNetCore.WebSocketHandshake;

namespace Talki.Signalling.Server.AspNetCore;

/// <summary>
/// The self-hosted gateway's WebSocket upgrade at Kestrel's connection level, before HTTP/1.1: an upgraded socket keeps
/// no <c>HttpContext</c>, request and response headers, <c>Activity</c>, logging scopes, request services or middleware
/// frames for its whole life, only Kestrel's connection, the WebSocket and the gateway's own state.
/// </summary>
/// <remarks>
/// <para>
/// Every connection's first bytes are peeked at without consuming anything. The fast path takes a connection only when
/// its first request is, byte for byte, a well-formed RFC 6455 opening handshake for <c>GET {PathPrefix}/ws</c>: an
/// HTTP/1.1 request line whose target is printable ASCII, header fields of token names and printable values, exactly one
/// <c>Host</c> and one valid <c>Sec-WebSocket-Key</c>, <c>Upgrade: websocket</c>, <c>Connection: Upgrade</c>,
/// <c>Sec-WebSocket-Version: 13</c>, no body, and a head within <see cref="MaxHeadBytes"/> and Kestrel's own limits
/// (<see cref="KestrelServerLimits.MaxRequestLineSize"/>, <see cref="KestrelServerLimits.MaxRequestHeadersTotalSize"/>,
/// <see cref="KestrelServerLimits.MaxRequestHeaderCount"/>). Anything else (another
/// path or method, another case or a percent-encoded path, a malformed or oversized head, TLS or HTTP/2 bytes) goes on to
/// Kestrel's HTTP/1.1 untouched, where the same gateway endpoint, Kestrel's parser and its limits answer it as without
/// this middleware. So the fast path only ever answers what the endpoint would have answered the same way.
/// </para>
/// <para>
/// A taken handshake is authorized as on the endpoint (<see cref="SelfHostedGateway.AuthorizeAsync"/>: version, one-time
/// ticket, backplane) and answered <c>101</c>, or with the endpoint's problem document (<c>application/problem+json</c>,
/// the stable <c>code</c>) and the connection closed. A client that starts a handshake and does not finish its head within
/// Kestrel's <see cref="KestrelServerLimits.RequestHeadersTimeout"/> is disconnected, as Kestrel does.
/// </para>
/// </remarks>
internal sealed class ConnectionLevelUpgrade
{
    /// <summary>The most the request line and header fields of a handshake taken here may take; a longer head goes to HTTP/1.1.</summary>
    internal const int MaxHeadBytes = 8 * 1024;

    /// <summary>The longest delay a timer takes (<c>uint.MaxValue − 1</c> milliseconds).</summary>
    private static readonly TimeSpan MaxTimerDelay = TimeSpan.FromMilliseconds(uint.MaxValue - 1);

    private readonly ConnectionDelegate _next;
    private readonly IServiceProvider _services;
    private readonly KestrelServerOptions _kestrel;
    private State? _state;

    public ConnectionLevelUpgrade(ConnectionDelegate next, IServiceProvider services, KestrelServerOptions kestrel)
    {
        _next = next;
        _services = services;
        _kestrel = kestrel;
    }

    public Task OnConnectionAsync(ConnectionContext connection)
    {
        // Resolved on the first connection, not when the listener is configured: the options are validated at start-up.
        var state = _state ??= State.Create(_services);
        return state.Gateway is null
            ? _next(connection) // nothing to take here (see State.Create)
            : Serving(AcceptAsync(connection, state.Gateway, state));
    }

    /// <summary>The task of what <see cref="AcceptAsync"/> started (the socket, or HTTP/1.1), once it has started it.</summary>
    private static Task Serving(Task<Task> accepting) =>
        accepting.IsCompletedSuccessfully ? accepting.Result : accepting.Unwrap();

    /// <summary>
    /// Reads the handshake, authorizes it and accepts the socket, then returns without awaiting what serves the connection
    /// from there (the gateway's socket, or HTTP/1.1): this frame is gone once the socket is open, and the socket's life
    /// is one frame, the gateway's (each frame an idle member keeps costs about 250 bytes; the proxy task of
    /// <see cref="Serving"/> about 80).
    /// </summary>
    private async Task<Task> AcceptAsync(ConnectionContext connection, SelfHostedGateway gateway, State state)
    {
        // The handshake is read in a method of its own so that its timeout (a timer) is gone before the socket's long life.
        var handshake = await ReadHandshakeAsync(connection, state.RequestLinePrefix, _kestrel.Limits).ConfigureAwait(false);
        if (handshake is null)
        {
            return _next(connection);
        }

        if (handshake.IsTimedOut)
        {
            // A head that trickles in: the slow client does not get to hold the connection (Kestrel closes it too).
            HostingLog.ConnectionLevelHandshakeTimedOut(state.Logger);
            connection.Abort(new ConnectionAbortedException("The WebSocket handshake was not complete within the request headers timeout."));
            return Task.CompletedTask;
        }

        var accept = AcceptOf(handshake.Key);
        SelfHostedGateway.Upgrade upgrade;
        try
        {
            upgrade = await gateway.AuthorizeAsync(handshake.QueryString, state.Engine, connection.ConnectionClosed).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (connection.ConnectionClosed.IsCancellationRequested)
        {
            return Task.CompletedTask; // the client went away while its ticket was checked (AuthorizeAsync undid what it had done)
        }

        if (upgrade.Refusal is { } refusal)
        {
            await connection.Transport.Output.WriteAsync(ProblemResponse(refusal)).ConfigureAwait(false);
            return Task.CompletedTask; // Kestrel closes the connection when the middleware returns ("Connection: close" says so)
        }

        WebSocket socket;
        DuplexPipeStream transport;
        try
        {
            // RFC 6455 §4.2.2 item 5: 101, |Upgrade: websocket|, |Connection: Upgrade| and |Sec-WebSocket-Accept|. No
            // subprotocol and no extension is selected (items 5.5 and 5.6: the fields are left out, so any the client
            // offered, such as permessage-deflate, are declined; §9.1), as the endpoint's AcceptWebSocketAsync() does.
            var flushed = await connection.Transport.Output.WriteAsync(Encoding.ASCII.GetBytes(
                "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: " + accept + "\r\n\r\n")).ConfigureAwait(false);
            if (flushed.IsCompleted || flushed.IsCanceled)
            {
                throw new ConnectionAbortedException("The client went away before the handshake's answer.");
            }

            // The endpoint's WebSocket options (UseWebSockets reads the same IOptions<WebSocketOptions>): the same keep-alive.
            // A socket idle on the pipe (no keep-alive timeout) gets it from the gateway's one timer instead of a timer of
            // its own: the same unsolicited pongs (ManagedWebSocket sends those when no timeout is set).
            transport = new DuplexPipeStream(connection.Transport);
            socket = WebSocket.CreateFromStream(transport, new WebSocketCreationOptions
            {
                IsServer = true,
                KeepAliveInterval = IdlesOnPipe(state) ? TimeSpan.Zero : state.WebSockets.KeepAliveInterval,
                KeepAliveTimeout = state.WebSockets.KeepAliveTimeout,
            });
        }
        catch (Exception exception)
        {
            // No socket: the authorized connection is released whatever happened; a client that went away is no error.
            await gateway.ReleaseAsync(upgrade.ConnectionId, state.Engine).ConfigureAwait(false);
            if (exception is IOException or ConnectionAbortedException or ObjectDisposedException or OperationCanceledException)
            {
                return Task.CompletedTask;
            }

            throw;
        }

        HostingLog.ConnectionLevelUpgrade(state.Logger);
        // With a keep-alive timeout the WebSocket reads ahead on its own while no receive is pending, to see the pong in
        // time (dotnet/runtime, ManagedWebSocket.KeepAlive.cs: a read-ahead on the heartbeat while a pong is awaited), so
        // the connection must not also wait on the pipe: one pipe, one reader. Then it idles in a receive, as before.
        return IdlesOnPipe(state)
            ? gateway.ServeAsync(socket, transport, upgrade.ConnectionId, upgrade.Grant!, state.Engine, state.Stopping, state.WebSockets.KeepAliveInterval)
            : gateway.ServeAsync(socket, null, upgrade.ConnectionId, upgrade.Grant!, state.Engine, state.Stopping);
    }

    private static bool IdlesOnPipe(State state) => state.WebSockets.KeepAliveTimeout == Timeout.InfiniteTimeSpan;

    /// <summary>
    /// Reads the start of a connection without consuming it: null when it is not a handshake taken here (nothing consumed,
    /// HTTP/1.1 gets it all), otherwise the head is consumed and the handshake returned.
    /// </summary>
    private static async Task<Handshake?> ReadHandshakeAsync(ConnectionContext connection, byte[] requestLinePrefix, KestrelServerLimits limits)
    {
        var input = connection.Transport.Input;

        // Within Kestrel's limits too: what HTTP/1.1 would refuse as too long (414, 431) is left to it.
        var maxHeadBytes = Math.Min(MaxHeadBytes, Math.Min(limits.MaxRequestLineSize, limits.MaxRequestHeadersTotalSize));
        var timeout = limits.RequestHeadersTimeout;

        // What the earlier reads examined. Pipe readers refuse an examined position before the last one, so handing the
        // connection on with nothing consumed examines that much again: less than the buffer (the last read brought new
        // bytes), so HTTP/1.1's first read returns at once with everything.
        long examined = 0;
        // Kestrel keeps an infinite RequestHeadersTimeout as TimeSpan.MaxValue, beyond what a timer takes (about 49 days):
        // no deadline then, as HTTP/1.1 has none.
        using var deadline = timeout < MaxTimerDelay ? new CancellationTokenSource(timeout) : new CancellationTokenSource();
        while (true)
        {
            ReadResult result;
            try
            {
                result = await input.ReadAsync(deadline.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (deadline.IsCancellationRequested)
            {
                // Nothing sent yet (a browser's preconnect, say): HTTP/1.1 and its own keep-alive timeout take over.
                return examined == 0 ? null : Handshake.TimedOut;
            }

            var buffer = result.Buffer;
            var peeked = Peek(buffer, requestLinePrefix, maxHeadBytes, out var headEnd);
            if (peeked == Peeked.Complete)
            {
                if (Parse(buffer.Slice(0, headEnd), limits.MaxRequestHeaderCount) is { } handshake)
                {
                    input.AdvanceTo(headEnd);
                    return handshake;
                }

                peeked = Peeked.NotOurs;
            }

            if (peeked == Peeked.NotOurs || result.IsCompleted || result.IsCanceled || buffer.Length >= maxHeadBytes)
            {
                input.AdvanceTo(buffer.Start, buffer.GetPosition(examined));
                return null;
            }

            input.AdvanceTo(buffer.Start, buffer.End);
            examined = buffer.Length;
        }
    }

    /// <summary>
    /// The handshake in a complete request head (its request line starts with the gateway's prefix), or null when the
    /// head is anything but a well-formed HTTP/1.1 WebSocket opening handshake without a body: HTTP/1.1 then judges it.
    /// </summary>
    internal static Handshake? Parse(in ReadOnlySequence<byte> head, int maxHeaderCount)
    {
        // Printable ASCII, horizontal tabs and the line ends only: no NUL, no bare CR or LF, no obs-text (Kestrel's own
        // parser refuses most of these; what it might accept is left to it).
        var bytes = head.ToArray();
        foreach (var b in bytes)
        {
            if (b is not ((>= 0x20 and <= 0x7E) or (byte)'\t' or (byte)'\r' or (byte)'\n'))
            {
                return null;
            }
        }

        var lines = Encoding.ASCII.GetString(bytes, 0, bytes.Length - HeadEnd.Length).Split("\r\n");
        if (lines.Length - 1 > maxHeaderCount || Array.Exists(lines, static line => line.Contains('\r', StringComparison.Ordinal) || line.Contains('\n', StringComparison.Ordinal)))
        {
            return null;
        }

        // RFC 9112 §3: method SP request-target SP HTTP-version; the method and the path are the prefix already.
        var requestLine = lines[0].Split(' ');
        if (requestLine.Length != 3 || requestLine[2] != "HTTP/1.1" || requestLine[1].Contains('\t', StringComparison.Ordinal) || requestLine[1].Contains('#', StringComparison.Ordinal))
        {
            return null;
        }

        string? host = null, key = null, version = null;
        bool upgrade = false, connectionUpgrade = false;
        foreach (var line in lines.AsSpan(1))
        {
            // RFC 9112 §5: field-name ":" OWS field-value OWS; a token name, no whitespace before the colon, no line
            // folding (§5.2: a line starting with whitespace).
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon <= 0 || !IsToken(line.AsSpan(0, colon)))
            {
                return null;
            }

            var value = line[(colon + 1)..].Trim(' ', '\t');
            switch (line[..colon].ToUpperInvariant())
            {
                case "HOST" when host is null:
                    host = value;
                    break;
                case "SEC-WEBSOCKET-KEY" when key is null:
                    key = value;
                    break;
                case "SEC-WEBSOCKET-VERSION" when version is null:
                    version = value;
                    break;
                case "UPGRADE":
                    upgrade |= HasToken(value, "websocket");
                    break;
                case "CONNECTION":
                    connectionUpgrade |= HasToken(value, "Upgrade");
                    break;
                case "HOST" or "SEC-WEBSOCKET-KEY" or "SEC-WEBSOCKET-VERSION":
                    return null; // repeated
                case "CONTENT-LENGTH" or "TRANSFER-ENCODING":
                    return null; // a GET with a body (or a framing to argue about) is not a handshake taken here
                default:
                    break;
            }
        }

        // RFC 6455 §4.2.1: an HTTP/1.1 GET (item 1), a |Host| (item 2), |Upgrade: websocket| (item 3), |Connection:
        // Upgrade| (item 4), a |Sec-WebSocket-Key| that decodes to 16 bytes (item 5), |Sec-WebSocket-Version: 13| (item 6).
        if (host is not { Length: > 0 } || !upgrade || !connectionUpgrade || version != "13" || !IsValidKey(key))
        {
            return null;
        }

        var target = requestLine[1];
        var question = target.IndexOf('?', StringComparison.Ordinal);
        return new Handshake(question < 0 ? string.Empty : target[question..], key);
    }

    /// <summary>RFC 9110 §5.6.2: a token is one or more tchar.</summary>
    private static bool IsToken(ReadOnlySpan<char> name)
    {
        foreach (var c in name)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || "!#$%&'*+-.^_`|~".Contains(c, StringComparison.Ordinal)))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Whether one of the comma-separated values of a header field is <paramref name="token"/> (case-insensitive).</summary>
    private static bool HasToken(string value, string token)
    {
        foreach (var part in value.Split(',', StringSplitOptions.TrimEntries))
        {
            if (string.Equals(part, token, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// The endpoint's refusal as a whole HTTP/1.1 response: the status, <c>Cache-Control: no-store</c>, the problem document
    /// (<see cref="ErrorResponse"/>, the stable <c>code</c>), <c>Retry-After: 1</c> when the store is busy, and <c>Connection: close</c>.
    /// </summary>
    internal static byte[] ProblemResponse(SelfHostedGateway.UpgradeRefusal refusal)
    {
        var document = HttpErrors.Document(refusal.Status, refusal.Code, refusal.Message, refusal.Reference);
        var body = JsonSerializer.SerializeToUtf8Bytes(document, TalkiJsonContext.Default.ErrorResponse);
        var head = Encoding.ASCII.GetBytes(
            $"HTTP/1.1 {refusal.Status} {document.Title}\r\nContent-Type: application/problem+json\r\nCache-Control: no-store\r\n{(refusal.RetryLater ? "Retry-After: 1\r\n" : string.Empty)}Content-Length: {body.Length}\r\nConnection: close\r\n\r\n");
        return [.. head, .. body];
    }

    /// <summary>A handshake taken here: the request target's query string (with its <c>?</c>) and the client's key.</summary>
    internal sealed record Handshake(string QueryString, string Key, bool IsTimedOut = false)
    {
        /// <summary>Gets the answer to a head not complete within the timeout: the connection is aborted.</summary>
        public static Handshake TimedOut { get; } = new(string.Empty, string.Empty, IsTimedOut: true);
    }

    /// <summary>What the middleware needs from the application, resolved once.</summary>
    private sealed class State
    {
        private static readonly State PassThrough = new(null!, null!, new WebSocketOptions(), [], NullLogger.Instance, CancellationToken.None);

        private State(SelfHostedGateway gateway, ISignallingEngine engine, WebSocketOptions webSockets, byte[] requestLinePrefix, ILogger logger, CancellationToken stopping)
        {
            Gateway = gateway;
            Logger = logger;
            Engine = engine;
            WebSockets = webSockets;
            Stopping = stopping;
            RequestLinePrefix = requestLinePrefix;
        }

        /// <summary>Gets the gateway, or null when every connection goes on to HTTP/1.1.</summary>
        public SelfHostedGateway? Gateway { get; }

        public ISignallingEngine Engine { get; }

        public ILogger Logger { get; }

        public WebSocketOptions WebSockets { get; }

        public CancellationToken Stopping { get; }

        /// <summary>Gets <c>GET {PathPrefix}/ws</c> in ASCII.</summary>
        public byte[] RequestLinePrefix { get; }

        /// <summary>
        /// The state, or the pass-through state when the self-hosted gateway is not the application's (a gateway adapter
        /// such as AWS replaced it) or its path cannot appear verbatim in a request line.
        /// </summary>
        public static State Create(IServiceProvider services)
        {
            if (services.GetService<TalkiGatewayEndpoints>() is not SelfHostedGatewayEndpoints)
            {
                return PassThrough;
            }

            var options = services.GetRequiredService<IOptions<TalkiSignallingOptions>>().Value;
            var path = "GET " + options.Hosting.PathPrefix.TrimEnd('/') + "/ws";

            // A prefix that is not printable ASCII without spaces never appears verbatim in a request line (clients
            // percent-encode it): its handshakes all go to the endpoint, which decodes the path.
            if (path.AsSpan(4).ContainsAnyExceptInRange((char)0x21, (char)0x7E))
            {
                return PassThrough;
            }

            return new State(
                services.GetRequiredService<SelfHostedGateway>(),
                services.GetRequiredService<ISignallingEngine>(),
                services.GetRequiredService<IOptions<WebSocketOptions>>().Value,
                Encoding.ASCII.GetBytes(path),
                services.GetRequiredService<ILogger<ConnectionLevelUpgrade>>(),
                services.GetService<IHostApplicationLifetime>()?.ApplicationStopping ?? CancellationToken.None);
        }
    }
}
