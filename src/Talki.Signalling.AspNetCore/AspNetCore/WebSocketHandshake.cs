using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using System.Security.Cryptography;
using System.Text;

namespace Talki.Signalling.Server.AspNetCore;

/// <summary>
/// RFC 6455 opening-handshake primitives for a WebSocket upgrade taken at Kestrel's connection level: where a buffered
/// request head starts and ends, the client's key, and the server's accept value. The gateway's
/// <see cref="ConnectionLevelUpgrade"/> uses them, and the load tool's bare relay compiles this file in.
/// </summary>
internal static class WebSocketHandshake
{
    /// <summary>RFC 6455 §4.2.1 item 5: the key is 16 random bytes, base64-encoded (24 characters).</summary>
    internal const int KeyBytes = 16;

    /// <summary>The length of a base64-encoded <see cref="KeyBytes"/>-byte key.</summary>
    internal const int KeyChars = 24;

    /// <summary>How a buffered start of a connection compares with a request line prefix.</summary>
    internal enum Peeked
    {
        /// <summary>The request line is not the expected one: HTTP/1.1 handles the connection.</summary>
        NotOurs,

        /// <summary>It may be: more bytes are needed.</summary>
        Incomplete,

        /// <summary>The request line is the expected one and the head is complete.</summary>
        Complete,
    }

    /// <summary>The empty line that ends a request head (RFC 9112 §2.1).</summary>
    internal static ReadOnlySpan<byte> HeadEnd => "\r\n\r\n"u8;

    /// <summary>RFC 6455 §1.3 and §4.2.2 item 5.4: the GUID appended to the client's key before hashing.</summary>
    private static ReadOnlySpan<byte> KeyGuid => "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"u8;

    /// <summary>
    /// Whether the buffered start of a connection is a request line that begins with <paramref name="requestLinePrefix"/>
    /// (<c>GET /path</c>) followed by <c>?</c> or a space, and where its head ends within <paramref name="maxHeadBytes"/>.
    /// </summary>
    internal static Peeked Peek(in ReadOnlySequence<byte> buffer, ReadOnlySpan<byte> requestLinePrefix, int maxHeadBytes, out SequencePosition headEnd)
    {
        headEnd = default;
        Span<byte> start = stackalloc byte[requestLinePrefix.Length + 1];
        start = start[..(int)Math.Min(buffer.Length, start.Length)];
        buffer.Slice(0, start.Length).CopyTo(start);
        var prefix = Math.Min(start.Length, requestLinePrefix.Length);
        if (!start[..prefix].SequenceEqual(requestLinePrefix[..prefix]))
        {
            return Peeked.NotOurs;
        }

        if (start.Length <= requestLinePrefix.Length)
        {
            return Peeked.Incomplete;
        }

        // The prefix is the whole path: a query string or the end of the request target follows.
        if (start[^1] is not ((byte)'?' or (byte)' '))
        {
            return Peeked.NotOurs;
        }

        var reader = new SequenceReader<byte>(buffer.Length > maxHeadBytes ? buffer.Slice(0, maxHeadBytes) : buffer);
        if (!reader.TryReadTo(out ReadOnlySequence<byte> _, HeadEnd))
        {
            return Peeked.Incomplete;
        }

        headEnd = reader.Position;
        return Peeked.Complete;
    }

    /// <summary>RFC 6455 §4.2.1 item 5: whether <paramref name="key"/> is the base64 encoding of 16 bytes.</summary>
    internal static bool IsValidKey([NotNullWhen(true)] string? key)
    {
        Span<byte> nonce = stackalloc byte[KeyBytes + 2];
        return key is { Length: KeyChars } && Convert.TryFromBase64String(key, nonce, out var decoded) && decoded == KeyBytes;
    }

    /// <summary>RFC 6455 §4.2.2 item 5.4 (the example in §1.3): base64 of the SHA-1 of the key followed by the GUID.</summary>
    [SuppressMessage("Security", "CA5350:Do Not Use Weak Cryptographic Algorithms", Justification = "RFC 6455 §4.2.2 mandates SHA-1; it proves the server read the handshake, not secrecy.")]
    internal static string AcceptOf(string clientKey)
    {
        Span<byte> keyAndGuid = stackalloc byte[KeyChars + KeyGuid.Length];
        Encoding.ASCII.GetBytes(clientKey, keyAndGuid);
        KeyGuid.CopyTo(keyAndGuid[KeyChars..]);
        Span<byte> hash = stackalloc byte[SHA1.HashSizeInBytes];
        SHA1.HashData(keyAndGuid, hash);
        return Convert.ToBase64String(hash);
    }
}
