using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;

namespace Talki.Signalling.Server.Engine;

/// <summary>One-time tickets: 256 random bits, base64url; only their SHA-256 is ever stored.</summary>
internal static class Tickets
{
    public const int RandomBytes = 32;

    /// <summary>The length of a ticket's text (base64url of 32 bytes).</summary>
    public const int TextLength = 43;

    public static string New()
    {
        Span<byte> bytes = stackalloc byte[RandomBytes];
        RandomNumberGenerator.Fill(bytes);
        return Base64Url.EncodeToString(bytes);
    }

    /// <summary>Hashes a well-formed ticket; returns <see langword="null"/> for anything that cannot be a ticket.</summary>
    public static string? HashOf(string? ticket)
    {
        if (ticket is null || ticket.Length != TextLength || !Base64Url.IsValid(ticket))
        {
            return null;
        }

        Span<byte> ascii = stackalloc byte[TextLength];
        var written = Encoding.ASCII.GetBytes(ticket, ascii);
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(ascii[..written], hash);
        return Base64Url.EncodeToString(hash);
    }
}
