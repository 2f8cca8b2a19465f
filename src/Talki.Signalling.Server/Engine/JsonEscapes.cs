using System.Buffers;
using System.Runtime.Intrinsics;

namespace Talki.Signalling.Server.Engine;

/// <summary>
/// Makes long escaped strings cheap to validate. <see cref="System.Text.Json.Utf8JsonReader"/> checks a
/// string byte by byte from its first backslash on (an SDP has one every ~40 bytes), so for strings longer
/// than <see cref="LongString"/> this pass validates the escapes itself with vectorised searches and hands
/// the reader a copy in which those escapes are replaced by plain letters of the same length. Byte ranges
/// found in the copy therefore point at the same values in the original, which is what gets relayed.
/// </summary>
/// <remarks>
/// Only strings the engine never interprets can be that long (ids, types and keys are at most 64 bytes),
/// so the substitution changes no decision; short strings keep their escapes. Anything unexpected (an
/// invalid escape, a raw control character, an unterminated string) abandons the copy, so the reader
/// reports the error on the original exactly as it would without this pass.
/// </remarks>
internal static class JsonEscapes
{
    /// <summary>Strings longer than this many bytes get their escapes validated here.</summary>
    public const int LongString = 256;

    /// <summary>
    /// Returns a copy (rented from <see cref="ArrayPool{T}.Shared"/>; the caller returns it) with the escapes of
    /// long strings blanked, or <see langword="null"/> when there is nothing to blank or the JSON is invalid
    /// (then the reader, on the original, reports the error).
    /// </summary>
    public static byte[]? BlankLongEscapedStrings(ReadOnlySpan<byte> json)
    {
        var first = json.Length <= LongString ? -1 : json.IndexOf((byte)'\\');
        if (first < 0)
        {
            return null;
        }

        // No quote before the first backslash can be escaped, so each delimits a string: after an odd number of them the
        // backslash is inside the string the last one opened, and the walk from string to string starts there. After an
        // even number it is outside any string, which the reader reports.
        var before = json[..first];
        if ((before.Count((byte)'"') & 1) == 0)
        {
            return null;
        }

        var copy = ArrayPool<byte>.Shared.Rent(json.Length);
        json.CopyTo(copy);
        var target = copy.AsSpan(0, json.Length);
        var blankedAny = false;
        var i = before.LastIndexOf((byte)'"');
        while (true)
        {
            var open = json[i..].IndexOf((byte)'"');
            if (open < 0)
            {
                break;
            }

            var start = i + open + 1;
            var end = BlankString(json, target, start, out var escaped);
            if (end < 0)
            {
                ArrayPool<byte>.Shared.Return(copy);
                return null;
            }

            if (escaped)
            {
                if (end - start > LongString)
                {
                    blankedAny = true;
                }
                else
                {
                    // Short strings may be interpreted (ids, types): keep their escapes for the reader.
                    json[start..end].CopyTo(target[start..]);
                }
            }

            i = end + 1;
        }

        if (!blankedAny)
        {
            ArrayPool<byte>.Shared.Return(copy);
            return null;
        }

        return copy;
    }

    /// <summary>
    /// Finds the closing quote of the string whose content starts at <paramref name="start"/>, validating and
    /// blanking (in <paramref name="target"/>) its escapes; -1 when the string is invalid or unterminated.
    /// </summary>
    private static int BlankString(ReadOnlySpan<byte> json, Span<byte> target, int start, out bool escaped)
    {
        escaped = false;
        var i = start;
        while (true)
        {
            i = BlankPlainEscapes(json, target, i, ref escaped);
            var at = json[i..].IndexOfAny((byte)'"', (byte)'\\');
            if (at < 0)
            {
                return -1;
            }

            i += at;
            if (json[i] == (byte)'"')
            {
                // Raw control characters are not allowed in a string: one vectorised check of the whole content.
                return json[start..i].IndexOfAnyInRange((byte)0, (byte)0x1F) < 0 ? i : -1;
            }

            // Escapes come in runs (\r\n): take the whole run without searching again.
            do
            {
                var length = EscapeLength(json[i..]);
                if (length == 0)
                {
                    return -1;
                }

                target.Slice(i, length).Fill((byte)'x');
                escaped = true;
                i += length;
            }
            while (i < json.Length && json[i] == (byte)'\\');
        }
    }

    /// <summary>
    /// Blanks, 32 or 16 bytes at a time, the backslashes of the escapes an SDP is made of (<c>\r</c>, <c>\n</c>, <c>\t</c>,
    /// <c>\b</c>, <c>\f</c>, <c>\/</c>) inside a string, and returns where the scalar loop must go on: at the first block
    /// with a quote or any other escape (<c>\"</c>, <c>\\</c>, <c>\u</c>), or near the end of the input.
    /// </summary>
    /// <remarks>
    /// <paramref name="i"/> is at an escape boundary (never on the second byte of an escape), and so is every block this
    /// takes: a block is taken only when each backslash in it is followed by one of those six letters, which are never a
    /// backslash themselves. Blanking the backslash alone is enough: the letter after it is then plain text of the same
    /// length. Control characters are left to the check at the closing quote, which covers the whole string.
    /// </remarks>
    private static int BlankPlainEscapes(ReadOnlySpan<byte> json, Span<byte> target, int i, ref bool escaped)
    {
        if (Vector256.IsHardwareAccelerated)
        {
            // 32 bytes at a time first; the 16-byte loop below then takes what it can of the block that stopped this one.
            i = BlankPlainEscapes256(json, target, i, ref escaped);
        }

        if (!Vector128.IsHardwareAccelerated)
        {
            return i;
        }

        var backslash = Vector128.Create((byte)'\\');
        var quote = Vector128.Create((byte)'"');
        var blank = Vector128.Create((byte)'x');

        // The letter after a backslash in the last lane is read from the next block: one byte beyond, hence the strict '<'.
        while (i + Vector128<byte>.Count < json.Length)
        {
            var bytes = Vector128.Create(json.Slice(i, Vector128<byte>.Count));
            var slashes = Vector128.Equals(bytes, backslash);
            if (Vector128.EqualsAny(bytes, quote))
            {
                return i;
            }

            if (slashes != Vector128<byte>.Zero)
            {
                var next = Vector128.Create(json.Slice(i + 1, Vector128<byte>.Count));
                var plain = Vector128.Equals(next, Vector128.Create((byte)'r')) | Vector128.Equals(next, Vector128.Create((byte)'n'))
                    | Vector128.Equals(next, Vector128.Create((byte)'t')) | Vector128.Equals(next, Vector128.Create((byte)'b'))
                    | Vector128.Equals(next, Vector128.Create((byte)'f')) | Vector128.Equals(next, Vector128.Create((byte)'/'));
                if (Vector128.AndNot(slashes, plain) != Vector128<byte>.Zero)
                {
                    return i;
                }

                Vector128.ConditionalSelect(slashes, blank, bytes).CopyTo(target[i..]);
                escaped = true;
            }

            i += Vector128<byte>.Count;
        }

        return i;
    }

    /// <summary>The loop of <see cref="BlankPlainEscapes"/> on 32-byte blocks, with the same rules.</summary>
    private static int BlankPlainEscapes256(ReadOnlySpan<byte> json, Span<byte> target, int i, ref bool escaped)
    {
        var backslash = Vector256.Create((byte)'\\');
        var quote = Vector256.Create((byte)'"');
        var blank = Vector256.Create((byte)'x');
        while (i + Vector256<byte>.Count < json.Length)
        {
            var bytes = Vector256.Create(json.Slice(i, Vector256<byte>.Count));
            var slashes = Vector256.Equals(bytes, backslash);
            if (Vector256.EqualsAny(bytes, quote))
            {
                return i;
            }

            if (slashes != Vector256<byte>.Zero)
            {
                var next = Vector256.Create(json.Slice(i + 1, Vector256<byte>.Count));
                var plain = Vector256.Equals(next, Vector256.Create((byte)'r')) | Vector256.Equals(next, Vector256.Create((byte)'n'))
                    | Vector256.Equals(next, Vector256.Create((byte)'t')) | Vector256.Equals(next, Vector256.Create((byte)'b'))
                    | Vector256.Equals(next, Vector256.Create((byte)'f')) | Vector256.Equals(next, Vector256.Create((byte)'/'));
                if (Vector256.AndNot(slashes, plain) != Vector256<byte>.Zero)
                {
                    return i;
                }

                Vector256.ConditionalSelect(slashes, blank, bytes).CopyTo(target[i..]);
                escaped = true;
            }

            i += Vector256<byte>.Count;
        }

        return i;
    }

    /// <summary>
    /// The length of the valid escape sequence at the start of <paramref name="escape"/>, or 0. A surrogate escape is
    /// valid only as a high-low pair (12 bytes): a lone one (<c>\ud800</c>) is not valid Unicode, and the reader decides
    /// about it on the original (a long key, type or id with one is malformed there; blanked here it would not be).
    /// </summary>
    private static int EscapeLength(ReadOnlySpan<byte> escape)
    {
        if (escape.Length < 2)
        {
            return 0;
        }

        return escape[1] switch
        {
            (byte)'"' or (byte)'\\' or (byte)'/' or (byte)'b' or (byte)'f' or (byte)'n' or (byte)'r' or (byte)'t' => 2,
            (byte)'u' when TryReadHex4(escape[2..], out var unit) => !char.IsSurrogate(unit)
                ? 6
                : char.IsHighSurrogate(unit) && escape.Length >= 8 && escape[6] == (byte)'\\' && escape[7] == (byte)'u'
                    && TryReadHex4(escape[8..], out var low) && char.IsLowSurrogate(low) ? 12 : 0,
            _ => 0,
        };
    }

    private static bool TryReadHex4(ReadOnlySpan<byte> hex, out char unit)
    {
        unit = default;
        if (hex.Length < 4)
        {
            return false;
        }

        var value = 0;
        foreach (var digit in hex[..4])
        {
            if (!char.IsAsciiHexDigit((char)digit))
            {
                return false;
            }

            value = (value << 4) | (digit <= (byte)'9' ? digit - '0' : (digit | 0x20) - 'a' + 10);
        }

        unit = (char)value;
        return true;
    }
}
