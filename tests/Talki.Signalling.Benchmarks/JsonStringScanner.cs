namespace Talki.Signalling.Benchmarks;

/// <summary>
/// A prototype, for <see cref="RelayBreakdownBenchmarks.ProposedSdpScan"/> only: validates one JSON string
/// token by jumping from escape to escape with a vectorized search, where <c>Utf8JsonReader</c> walks
/// the rest of a string byte by byte from its first backslash on. It measures what the SDP string could
/// cost if <c>ClientFrame.Parse</c> validated it this way; it is not used by the relay.
/// </summary>
internal static class JsonStringScanner
{
    /// <summary>Scans the string token that starts at <paramref name="json"/>[0] (a quote).</summary>
    /// <param name="json">The bytes from the opening quote on (already known to be valid UTF-8).</param>
    /// <returns>The token's length including both quotes, or -1 when it is not a valid JSON string.</returns>
    public static int Scan(ReadOnlySpan<byte> json)
    {
        if (json.IsEmpty || json[0] != (byte)'"')
        {
            return -1;
        }

        var i = 1;
        while (true)
        {
            // Jump to the next quote or backslash (vectorized); escapes come in runs (\r\n), so take a
            // run of them without searching again.
            var at = json[i..].IndexOfAny((byte)'"', (byte)'\\');
            if (at < 0)
            {
                return -1;
            }

            i += at;
            while (json[i] == (byte)'\\')
            {
                if (i + 1 >= json.Length)
                {
                    return -1;
                }

                switch (json[i + 1])
                {
                    case (byte)'"' or (byte)'\\' or (byte)'/' or (byte)'b' or (byte)'f' or (byte)'n' or (byte)'r' or (byte)'t':
                        i += 2;
                        break;
                    case (byte)'u' when i + 6 <= json.Length && IsHex(json[i + 2]) && IsHex(json[i + 3]) && IsHex(json[i + 4]) && IsHex(json[i + 5]):
                        i += 6;
                        break;
                    default:
                        return -1;
                }

                if (i >= json.Length)
                {
                    return -1;
                }
            }

            if (json[i] == (byte)'"')
            {
                // Raw control characters are not allowed in a JSON string: one vectorized check of the whole token.
                return json[1..i].ContainsAnyInRange((byte)0x00, (byte)0x1F) ? -1 : i + 1;
            }
        }
    }

    private static bool IsHex(byte b) => char.IsAsciiHexDigit((char)b);
}
