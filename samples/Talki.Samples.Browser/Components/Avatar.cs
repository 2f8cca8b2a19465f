namespace Talki.Samples.Browser.Components;

/// <summary>Initials and a stable colour for a display name.</summary>
public static class Avatar
{
    /// <summary>Gets up to two initials.</summary>
    public static string Initials(string? name)
    {
        var parts = (name ?? string.Empty).Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return parts.Length switch
        {
            0 => "?",
            1 => parts[0][..1].ToUpperInvariant(),
            _ => string.Concat(parts[0][..1], parts[^1][..1]).ToUpperInvariant(),
        };
    }

    /// <summary>Gets a hue (0–359) derived from the name.</summary>
    public static int Hue(string? name)
    {
        var hash = 17;
        foreach (var c in name ?? string.Empty)
        {
            hash = unchecked((hash * 31) + c);
        }

        return (int)((uint)hash % 360);
    }
}
