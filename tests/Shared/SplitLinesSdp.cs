namespace Talki.Signalling.Testing;

/// <summary>
/// How the client read descriptions until 2026-12-07 (<c>SdpOrigin</c> before it scanned in place): every read split the
/// whole description on <c>\n</c> and trimmed each line's trailing <c>\r</c>s. The tests' oracle and the benchmark's baseline.
/// </summary>
internal static class SplitLinesSdp
{
    public static bool TryParse(string? sdp, out string? sessionId, out ulong version)
    {
        sessionId = null;
        version = 0;
        if (string.IsNullOrEmpty(sdp))
        {
            return false;
        }

        foreach (var raw in sdp.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            if (!line.StartsWith("o=", StringComparison.Ordinal))
            {
                continue;
            }

            var parts = line[2..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length >= 3 && ulong.TryParse(parts[2], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out version))
            {
                sessionId = parts[1];
                return true;
            }

            return false;
        }

        return false;
    }

    public static string? ReadAttribute(string? sdp, string name)
    {
        if (sdp is null)
        {
            return null;
        }

        var prefix = "a=" + name + ":";
        foreach (var raw in sdp.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            if (line.StartsWith(prefix, StringComparison.Ordinal))
            {
                return line[prefix.Length..];
            }
        }

        return null;
    }

    public static string? RemoveAttribute(string? sdp, string name)
    {
        if (sdp is null)
        {
            return null;
        }

        var prefix = "a=" + name + ":";
        var lines = sdp.Split('\n');
        return lines.Any(l => l.StartsWith(prefix, StringComparison.Ordinal))
            ? string.Join('\n', lines.Where(l => !l.StartsWith(prefix, StringComparison.Ordinal)))
            : sdp;
    }
}
