using System.Buffers;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Net.WebSockets;
using System.Text;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.WebUtilities;
using Talki.Signalling.Server.AspNetCore;
using static Talki.Signalling.Server.AspNetCore.WebSocketHandshake;

/// <summary>
/// The relay's WebSocket upgrade at Kestrel's connection level (<c>--transport</c>), before HTTP/1.1: an upgraded
/// connection keeps no HttpContext, request, headers, Activity, logging scope or request timers, only Kestrel's
/// connection and its pipes, the WebSocket and the relay's own client.
/// </summary>
/// <remarks>
/// The middleware peeks at the start of every connection without consuming anything. A request line that does not begin
/// with <c>GET /relay?</c> or <c>GET /relay </c> goes on to HTTP/1.1 as soon as a byte differs. For one that does, it
/// waits (at most <see cref="MaxHeadBytes"/> bytes and <see cref="HandshakeTimeout"/>) for the whole request head; a
/// head that is not a well-formed HTTP/1.1 request with <c>Upgrade: websocket</c> also goes on to HTTP/1.1 untouched
/// (where the relay's <c>/relay</c> endpoint or Kestrel answers it as in the plain mode). A well-formed upgrade is
/// answered here: 101 and the relay, or 400 (426 for another WebSocket version, 431 for a head over the bound) and the
/// connection closed.
/// Only the first request of a connection is looked at: an upgrade after other requests on a kept-alive connection goes
/// through the request pipeline as in the plain mode.
/// </remarks>
internal sealed class ConnectionUpgrade(ConnectionDelegate next, Relay relay)
{
    /// <summary>The most the request line and header fields of a handshake may take.</summary>
    private const int MaxHeadBytes = 8 * 1024;

    /// <summary>How long a client whose request line starts as a handshake may take to send its whole head (slow clients).</summary>
    private static readonly TimeSpan HandshakeTimeout = TimeSpan.FromSeconds(10);

    private static ReadOnlySpan<byte> RequestLinePrefix => "GET /relay"u8;

    public async Task OnConnectionAsync(ConnectionContext connection)
    {
        // The handshake is read in a method of its own so that its timeout (a timer) and state are gone before the
        // connection's long life as a WebSocket starts.
        switch (await ReadHandshakeAsync(connection))
        {
            case null:
                await next(connection);
                return;
            case { IsTimedOut: true }:
                // A handshake that trickles in: the slow client does not get to hold the connection.
                connection.Abort(new ConnectionAbortedException("the WebSocket handshake took too long"));
                return;
            case { Status: { } status } rejected:
                await RejectAsync(connection, status, rejected.ExtraHeaders);
                return;
            case { Id: { } id, Accept: { } accept }:
                // RFC 6455 §4.2.2 item 5: 101, |Upgrade: websocket|, |Connection: Upgrade| and |Sec-WebSocket-Accept|. No
                // subprotocol and no extension is selected (items 5.5 and 5.6: the fields are left out, so any the client
                // offered, such as permessage-deflate, are declined; §9.1).
                await connection.Transport.Output.WriteAsync(Encoding.ASCII.GetBytes(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + accept + "\r\n\r\n"));

                // As the plain mode's UseWebSockets: no keep-alive pings (KeepAliveInterval zero: no timer per socket). No
                // cancellation token either: a closed connection completes the pipe and ends the receive loop; a token would
                // cost a registration per pending receive.
                using (var socket = WebSocket.CreateFromStream(new DuplexPipeStream(connection.Transport), new WebSocketCreationOptions { IsServer = true, KeepAliveInterval = TimeSpan.Zero }))
                {
                    await relay.ServeAsync(id, socket, CancellationToken.None);
                }

                return;
            default:
                throw new UnreachableException("a handshake is rejected, timed out or accepted");
        }
    }

    /// <summary>
    /// Reads the start of a connection without consuming it: null when it is not the relay's handshake (nothing consumed,
    /// HTTP/1.1 gets it), otherwise the head is consumed and the answer returned.
    /// </summary>
    private static async Task<Handshake?> ReadHandshakeAsync(ConnectionContext connection)
    {
        var input = connection.Transport.Input;

        // What the earlier reads examined. Pipe readers reject an examined position before the last one, so handing the
        // connection on with nothing consumed examines that much again: less than the buffer (the last read brought new
        // bytes), so HTTP/1.1's first read returns at once with everything.
        long examined = 0;
        using var timeout = new CancellationTokenSource(HandshakeTimeout);
        while (true)
        {
            ReadResult result;
            try
            {
                result = await input.ReadAsync(timeout.Token);
            }
            catch (OperationCanceledException) when (timeout.IsCancellationRequested)
            {
                // Nothing sent yet (a browser's preconnect, say): HTTP/1.1 and its own keep-alive timeout take over.
                return examined == 0 ? null : Handshake.TimedOut;
            }

            var buffer = result.Buffer;
            var peeked = Peek(buffer, RequestLinePrefix, MaxHeadBytes, out var headEnd);
            if (peeked == Peeked.Complete)
            {
                if (Parse(Encoding.Latin1.GetString(buffer.Slice(0, headEnd))) is { } handshake)
                {
                    input.AdvanceTo(headEnd);
                    return handshake;
                }

                peeked = Peeked.NotOurs;
            }

            if (peeked == Peeked.NotOurs || result.IsCompleted)
            {
                input.AdvanceTo(buffer.Start, buffer.GetPosition(examined));
                return null;
            }

            if (buffer.Length >= MaxHeadBytes)
            {
                input.AdvanceTo(buffer.End);
                return Handshake.Reject("431 Request Header Fields Too Large");
            }

            input.AdvanceTo(buffer.Start, buffer.End);
            examined = buffer.Length;
        }
    }

    /// <summary>
    /// The relay's answer to a complete request head, or null when it is not a well-formed HTTP/1.1 request with
    /// <c>Upgrade: websocket</c> (HTTP/1.1 then handles it: its parser judges what is malformed, the endpoint what is not an upgrade).
    /// </summary>
    private static Handshake? Parse(string head)
    {
        var lines = head[..^HeadEnd.Length].Split("\r\n");
        var requestLine = lines[0].Split(' ');
        if (requestLine.Length != 3 || requestLine[1].Length == 0)
        {
            return null;
        }

        List<string> upgrade = [], connection = [], host = [], key = [], version = [], body = [];
        foreach (var line in lines.AsSpan(1))
        {
            // RFC 9112 §5: field-name ":" OWS field-value OWS; no whitespace before the colon, no line folding (§5.2).
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon <= 0 || line.AsSpan(0, colon).ContainsAny(" \t") || line.AsSpan().ContainsAny("\r\n\0"))
            {
                return null;
            }

            var value = line[(colon + 1)..].Trim(' ', '\t');
            var list = line[..colon].ToUpperInvariant() switch
            {
                "UPGRADE" => upgrade,
                "CONNECTION" => connection,
                "HOST" => host,
                "SEC-WEBSOCKET-KEY" => key,
                "SEC-WEBSOCKET-VERSION" => version,
                "CONTENT-LENGTH" or "TRANSFER-ENCODING" => body,
                _ => null,
            };
            list?.Add(value);
        }

        // RFC 6455 §4.2.1 item 3: an |Upgrade| header field containing "websocket" (case-insensitive). Without it, not ours.
        if (!HasToken(upgrade, "websocket"))
        {
            return null;
        }

        // §4.2.1 item 1: an HTTP/1.1 GET (the method is the prefix); §4.2.1 items 2 and 4: a |Host| header field, and a
        // |Connection| header field that includes the token "Upgrade". A GET with a body is not a handshake either.
        var target = requestLine[1];
        if (requestLine[2] != "HTTP/1.1" || host.Count != 1 || !HasToken(connection, "Upgrade") || body is not ([] or ["0"]))
        {
            return Handshake.Reject("400 Bad Request");
        }

        // §4.2.1 item 6 and §4.2.2 item 4 (and §4.4): another version gets 426 and the version this server speaks.
        if (version is not ["13"])
        {
            return Handshake.Reject("426 Upgrade Required", "Sec-WebSocket-Version: 13\r\n");
        }

        // §4.2.1 item 5: a |Sec-WebSocket-Key| that decodes to 16 bytes; §4.2.2 item 4 (/key/) takes it without leading or
        // trailing whitespace (trimmed above), as item 5.4 hashes it.
        if (key is not [var clientKey] || !IsValidKey(clientKey))
        {
            return Handshake.Reject("400 Bad Request");
        }

        // The relay's own check, as its endpoint makes it in the plain mode: one non-empty id, at most 128 characters.
        var query = target.IndexOf('?', StringComparison.Ordinal) is var q and >= 0 ? target[q..] : "";
        var ids = QueryHelpers.ParseQuery(query).GetValueOrDefault("id");
        return Relay.IdOf(ids) is { } id ? new Handshake(null, null, id, AcceptOf(clientKey)) : Handshake.Reject("400 Bad Request");
    }

    /// <summary>Whether one of the comma-separated values of a header field is <paramref name="token"/> (case-insensitive).</summary>
    private static bool HasToken(List<string> values, string token) =>
        values.Exists(v => v.Split(',', StringSplitOptions.TrimEntries).Contains(token, StringComparer.OrdinalIgnoreCase));

    /// <summary>An error status without a body; the connection closes when the middleware returns.</summary>
    private static async Task RejectAsync(ConnectionContext connection, string status, string? extraHeaders = null)
    {
        var response = Encoding.ASCII.GetBytes("HTTP/1.1 " + status + "\r\n" + extraHeaders + "Content-Length: 0\r\nConnection: close\r\n\r\n");
        await connection.Transport.Output.WriteAsync(response);
    }

    /// <summary>
    /// A handshake's answer: an error <see cref="Status"/> (with <see cref="ExtraHeaders"/>), the client's id and accept
    /// value, or <see cref="IsTimedOut"/>.
    /// </summary>
    private sealed record Handshake(string? Status, string? ExtraHeaders, string? Id, string? Accept, bool IsTimedOut = false)
    {
        /// <summary>Gets the answer to a head not complete within <see cref="HandshakeTimeout"/>: the connection is aborted.</summary>
        public static Handshake TimedOut { get; } = new(null, null, null, null, IsTimedOut: true);

        public static Handshake Reject(string status, string? extraHeaders = null) => new(status, extraHeaders, null, null);
    }
}
