using System.Buffers;
using System.Buffers.Text;
using System.Security.Cryptography;

namespace Talki.Signalling.Aws.ApiGateway;

/// <summary>
/// Stamps a pushed server message with a delivery id (<c>"mid"</c>, see <c>ServerMessage.MessageId</c>): a random prefix per
/// process (so two Lambda instances never collide) and a counter. The id goes before the object's closing brace, so the
/// message needs no parsing.
/// </summary>
internal static class MessageStamp
{
    private static readonly byte[] Prefix = CreatePrefix();
    private static long _sequence;

    private static ReadOnlySpan<byte> Opening => ",\"mid\":\""u8;

    /// <summary>
    /// Returns the stamped message in a buffer rented from <see cref="ArrayPool{T}.Shared"/> (the caller returns it), or
    /// <see langword="null"/> when the payload is not a JSON object with at least one member (it is sent unstamped).
    /// </summary>
    public static byte[]? TryStamp(ReadOnlySpan<byte> payload, out int length)
    {
        length = 0;
        if (payload.Length < 3 || payload[0] != (byte)'{' || payload[^1] != (byte)'}')
        {
            return null;
        }

        var sequence = Interlocked.Increment(ref _sequence);
        var buffer = ArrayPool<byte>.Shared.Rent(payload.Length + Opening.Length + Prefix.Length + 20 + 2);
        var span = buffer.AsSpan();
        payload[..^1].CopyTo(span);
        var at = payload.Length - 1;
        Opening.CopyTo(span[at..]);
        at += Opening.Length;
        Prefix.CopyTo(span[at..]);
        at += Prefix.Length;
        _ = Utf8Formatter.TryFormat(sequence, span[at..], out var written, new StandardFormat('x'));
        at += written;
        span[at++] = (byte)'"';
        span[at++] = (byte)'}';
        length = at;
        return buffer;
    }

    private static byte[] CreatePrefix()
    {
        // 9 random bytes → 12 base64url characters, then a separator before the counter.
        Span<byte> random = stackalloc byte[9];
        RandomNumberGenerator.Fill(random);
        var prefix = new byte[13];
        _ = Base64Url.EncodeToUtf8(random, prefix);
        prefix[12] = (byte)'.';
        return prefix;
    }
}
