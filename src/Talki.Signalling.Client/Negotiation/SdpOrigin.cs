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
}
