namespace Talki.Signalling.Client.Negotiation;

/// <summary>Reads the <c>o=</c> line of an SDP: the session id and the session version, which grows with each new description.</summary>
internal readonly record struct SdpOrigin(string SessionId, ulong Version)
{
    public static bool TryParse(string? sdp, out SdpOrigin origin)
    {
        origin = default;
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
            if (parts.Length >= 3 && ulong.TryParse(parts[2], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var version))
            {
                origin = new SdpOrigin(parts[1], version);
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

    /// <summary>Adds a session-level attribute line after the <c>t=</c> line (before the first media section).</summary>
    public static string AddAttribute(string sdp, string name, string value)
    {
        var newline = sdp.Contains("\r\n", StringComparison.Ordinal) ? "\r\n" : "\n";
        var line = $"a={name}:{value}{newline}";
        var media = sdp.IndexOf(newline + "m=", StringComparison.Ordinal);
        return media < 0 ? sdp + (sdp.EndsWith(newline, StringComparison.Ordinal) ? string.Empty : newline) + line : sdp.Insert(media + newline.Length, line);
    }

    /// <summary>Removes every line of the attribute.</summary>
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
