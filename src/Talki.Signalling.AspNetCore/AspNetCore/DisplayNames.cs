using System.Globalization;
using System.Text;

namespace Talki.Signalling.Server.AspNetCore;

/// <summary>
/// What a display name may be: other members see it, so it must be visible text that cannot disguise itself or what
/// follows it. Names are trimmed and put in Unicode normalization form C; refused are names with control characters,
/// bidirectional controls (U+202A–U+202E, U+2066–U+2069, U+200E, U+200F, U+061C: "Trojan Source" reordering), lone
/// surrogates, names with no visible character (only spaces, zero-width or format characters, combining marks), and
/// names longer than the limit after normalization.
/// </summary>
internal static class DisplayNames
{
    /// <summary>Normalizes a display name, or says why it is refused.</summary>
    /// <param name="value">The name as sent.</param>
    /// <param name="maxLength">The longest name allowed, in UTF-16 code units.</param>
    /// <param name="name">The normalized name.</param>
    /// <param name="problem">Why the name is refused.</param>
    /// <returns><see langword="true"/> when the name is acceptable.</returns>
    public static bool TryNormalize(string? value, int maxLength, out string name, out string problem)
    {
        name = string.Empty;
        var trimmed = value?.Trim();
        if (string.IsNullOrEmpty(trimmed))
        {
            problem = "is required";
            return false;
        }

        var visible = false;
        for (var i = 0; i < trimmed.Length; i++)
        {
            var c = trimmed[i];
            if (char.IsHighSurrogate(c) && i + 1 < trimmed.Length && char.IsLowSurrogate(trimmed[i + 1]))
            {
                visible |= IsVisible(CharUnicodeInfo.GetUnicodeCategory(trimmed, i));
                i++;
                continue;
            }

            if (char.IsSurrogate(c))
            {
                problem = "must be valid Unicode text";
                return false;
            }

            if (char.IsControl(c))
            {
                problem = "must not contain control characters";
                return false;
            }

            if (c is >= '\u202A' and <= '\u202E' or >= '\u2066' and <= '\u2069' or '\u200E' or '\u200F' or '\u061C')
            {
                problem = "must not contain bidirectional control characters";
                return false;
            }

            visible |= IsVisible(CharUnicodeInfo.GetUnicodeCategory(c));
        }

        if (!visible)
        {
            problem = "must contain a visible character";
            return false;
        }

        name = trimmed.Normalize(NormalizationForm.FormC);
        if (name.Length > maxLength)
        {
            problem = $"must be at most {maxLength} characters";
            return false;
        }

        problem = string.Empty;
        return true;
    }

    private static bool IsVisible(UnicodeCategory category) => category switch
    {
        UnicodeCategory.SpaceSeparator or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator
            or UnicodeCategory.Format or UnicodeCategory.Control or UnicodeCategory.NonSpacingMark
            or UnicodeCategory.EnclosingMark or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.Surrogate
            or UnicodeCategory.PrivateUse or UnicodeCategory.OtherNotAssigned => false,
        _ => true,
    };
}
