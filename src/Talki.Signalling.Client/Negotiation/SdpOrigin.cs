using System.Globalization;

namespace Talki.Signalling.Client.Negotiation;

/// <summary>
/// Reads the <c>o=</c> line of an SDP: the session id and the session version, which grows with each new description.
/// Also reads, adds and removes attribute lines.
/// </summary>
/// <remarks>
/// A link reads its descriptions several times for every signal (the origin, the ICE ufrag for each candidate, the answer's
/// tag), and a browser runs .NET in an interpreter: the lines are scanned in place (a line ends at <c>\n</c>, <c>\r</c>s
/// before it are not part of it), and only what is returned is allocated, where splitting a 5–7 KB description made a
/// hundred strings each time.
/// </remarks>
internal readonly record struct SdpOrigin(string SessionId, ulong Version)
{
    public static bool TryParse(string? sdp, out SdpOrigin origin)
    {
        origin = default;
        if (string.IsNullOrEmpty(sdp))
        {
            return false;
        }

        for (var start = 0; NextPiece(sdp, ref start, out var piece);)
        {
            var line = piece.TrimEnd('\r');
            if (!line.StartsWith("o=", StringComparison.Ordinal))
            {
                continue;
            }

            // o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address> (RFC 8866, 5.2); fields are
            // separated by one or more spaces here, as they always were.
            var fields = line[2..];
            if (NextField(ref fields, out _)
                && NextField(ref fields, out var sessionId)
                && NextField(ref fields, out var version)
                && ulong.TryParse(version, NumberStyles.None, CultureInfo.InvariantCulture, out var parsed))
            {
                origin = new SdpOrigin(sessionId.ToString(), parsed);
                return true;
            }

            return false;
        }

        return false;
    }

    /// <summary>Reads the value of the first <c>a=name:value</c> line.</summary>
    /// <returns>The value, or null when there is no such line.</returns>
    public static string? ReadAttribute(string? sdp, string name)
    {
        if (sdp is null)
        {
            return null;
        }

        for (var start = 0; NextPiece(sdp, ref start, out var piece);)
        {
            var line = piece.TrimEnd('\r');
            if (IsAttribute(line, name))
            {
                return line[(name.Length + 3)..].ToString();
            }
        }

        return null;
    }

    /// <summary>Adds a session-level attribute line after the <c>t=</c> line (before the first media section).</summary>
    public static string AddAttribute(string sdp, string name, string value)
    {
        var newline = sdp.Contains("\r\n", StringComparison.Ordinal) ? "\r\n" : "\n";
        var line = $"a={name}:{value}{newline}";
        var media = sdp.IndexOf(newline + "m=", StringComparison.Ordinal);
        return media < 0 ? sdp + (sdp.EndsWith(newline, StringComparison.Ordinal) ? string.Empty : newline) + line : sdp.Insert(media + newline.Length, line);
    }

    /// <summary>Removes every line of the attribute (the description is returned as it is when it has none).</summary>
    public static string? RemoveAttribute(string? sdp, string name)
    {
        if (sdp is null)
        {
            return null;
        }

        // Pieces between '\n' (the last one may be empty); a piece is removed with the '\n' that joined it to the rest. The
        // text is scanned twice, to size the result, then to copy what is kept into it.
        var pieces = 0;
        var kept = 0;
        var length = 0;
        for (var start = 0; NextPiece(sdp, ref start, out var piece); pieces++)
        {
            if (!IsAttribute(piece, name))
            {
                kept++;
                length += piece.Length;
            }
        }

        if (kept == pieces)
        {
            return sdp;
        }

        return string.Create(length + Math.Max(kept - 1, 0), (Sdp: sdp, Name: name), static (target, state) =>
        {
            var written = 0;
            var first = true;
            for (var start = 0; NextPiece(state.Sdp, ref start, out var piece);)
            {
                if (IsAttribute(piece, state.Name))
                {
                    continue;
                }

                if (!first)
                {
                    target[written++] = '\n';
                }

                piece.CopyTo(target[written..]);
                written += piece.Length;
                first = false;
            }
        });
    }

    /// <summary>Whether a piece of the description (a trailing <c>\r</c> may remain) is an <c>a=name:</c> line.</summary>
    private static bool IsAttribute(ReadOnlySpan<char> line, string name) =>
        line.Length >= name.Length + 3
        && line.StartsWith("a=", StringComparison.Ordinal)
        && line[2..].StartsWith(name, StringComparison.Ordinal)
        && line[name.Length + 2] == ':';

    /// <summary>The next piece of the text between <c>\n</c>s, from <paramref name="start"/> (moved past it); false after the last.</summary>
    private static bool NextPiece(string text, ref int start, out ReadOnlySpan<char> piece)
    {
        if (start > text.Length)
        {
            piece = default;
            return false;
        }

        var end = text.IndexOf('\n', start);
        piece = text.AsSpan(start, (end < 0 ? text.Length : end) - start);
        start = end < 0 ? text.Length + 1 : end + 1;
        return true;
    }

    /// <summary>The next field of a line, skipping spaces before it; false when none is left.</summary>
    private static bool NextField(ref ReadOnlySpan<char> rest, out ReadOnlySpan<char> field)
    {
        rest = rest.TrimStart(' ');
        if (rest.IsEmpty)
        {
            field = default;
            return false;
        }

        var end = rest.IndexOf(' ');
        field = end < 0 ? rest : rest[..end];
        rest = end < 0 ? default : rest[end..];
        return true;
    }
}
