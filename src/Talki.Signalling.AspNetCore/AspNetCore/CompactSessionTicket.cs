using System.Buffers.Binary;
using System.Security.Claims;
using System.Text;
using Microsoft.AspNetCore.Authentication;

namespace Talki.Signalling.Server.AspNetCore;

/// <summary>
/// A compact encoding of the sessions Talki itself starts (one identity with the user id, the display name and the
/// verified flag; the persistent, refresh, issued and expires properties), for the in-process session cache: about 80
/// bytes where <see cref="TicketSerializer"/> writes about 320 (the claim type URIs, issuers and property strings in
/// full), measured at 10,000 idle members. Any other ticket is not taken (<see cref="TryWrite"/> returns
/// <see langword="false"/>) and keeps the standard format, and so does every session in a shared cache (Redis), which
/// instances of another version may read during a rolling upgrade.
/// </summary>
internal static class CompactSessionTicket
{
    /// <summary>The first byte of the encoding. <see cref="TicketSerializer"/> starts with its format version as a little-endian 32-bit integer (5), so never with this byte.</summary>
    public const byte Marker = 0xA7;

    private const byte Persistent = 1;
    private const byte HasAllowRefresh = 2;
    private const byte AllowRefresh = 4;
    private const byte Verified = 8;
    private const byte KnownFlags = Persistent | HasAllowRefresh | AllowRefresh | Verified;

    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>Encodes <paramref name="ticket"/> when it has exactly the shape Talki's sign-ins give it; otherwise <see langword="false"/>.</summary>
    public static bool TryWrite(AuthenticationTicket ticket, out byte[] bytes)
    {
        bytes = [];
        if (!TryDeconstruct(ticket, out var parts))
        {
            return false;
        }

        var strings = new[] { ticket.AuthenticationScheme, parts.AuthenticationType, parts.UserId, parts.DisplayName };
        var length = 1 + 1 + 8 + 8;
        foreach (var text in strings)
        {
            int count;
            try
            {
                count = Utf8.GetByteCount(text);
            }
            catch (EncoderFallbackException)
            {
                return false; // a lone surrogate: the standard format keeps it (as its replacement character)
            }

            if (count > ushort.MaxValue)
            {
                return false;
            }

            length += 2 + count;
        }

        var buffer = new byte[length];
        var span = buffer.AsSpan();
        span[0] = Marker;
        span[1] = parts.Flags;
        BinaryPrimitives.WriteInt64LittleEndian(span[2..], parts.Issued.UtcTicks);
        BinaryPrimitives.WriteInt64LittleEndian(span[10..], parts.Expires.UtcTicks);
        var at = 18;
        foreach (var text in strings)
        {
            var count = Utf8.GetBytes(text, span[(at + 2)..]);
            BinaryPrimitives.WriteUInt16LittleEndian(span[at..], (ushort)count);
            at += 2 + count;
        }

        bytes = buffer;
        return true;
    }

    /// <summary>Decodes what <see cref="TryWrite"/> wrote, or returns <see langword="null"/> for anything else (never throws on bad input).</summary>
    public static AuthenticationTicket? Read(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length < 18 || bytes[0] != Marker || (bytes[1] & ~KnownFlags) != 0)
        {
            return null;
        }

        var flags = bytes[1];
        var issuedTicks = BinaryPrimitives.ReadInt64LittleEndian(bytes[2..]);
        var expiresTicks = BinaryPrimitives.ReadInt64LittleEndian(bytes[10..]);
        if (!IsValidTicks(issuedTicks) || !IsValidTicks(expiresTicks))
        {
            return null;
        }

        var rest = bytes[18..];
        if (!TryReadString(ref rest, out var scheme) || !TryReadString(ref rest, out var authenticationType)
            || !TryReadString(ref rest, out var userId) || !TryReadString(ref rest, out var displayName) || !rest.IsEmpty
            || scheme.Length == 0 || authenticationType.Length == 0)
        {
            return null;
        }

        var identity = new ClaimsIdentity(
            [
                new Claim(ClaimTypes.NameIdentifier, userId),
                new Claim(ClaimTypes.Name, displayName),
                new Claim(TalkiAuthenticationDefaults.VerifiedClaimType, (flags & Verified) != 0 ? "true" : "false"),
            ],
            authenticationType);
        var properties = Properties(flags, new DateTimeOffset(issuedTicks, TimeSpan.Zero), new DateTimeOffset(expiresTicks, TimeSpan.Zero));
        return new AuthenticationTicket(new ClaimsPrincipal(identity), properties, scheme);
    }

    private static bool IsValidTicks(long ticks) => ticks >= DateTimeOffset.MinValue.UtcTicks && ticks <= DateTimeOffset.MaxValue.UtcTicks;

    private static bool TryReadString(ref ReadOnlySpan<byte> bytes, out string text)
    {
        text = string.Empty;
        if (bytes.Length < 2)
        {
            return false;
        }

        var count = BinaryPrimitives.ReadUInt16LittleEndian(bytes);
        if (bytes.Length < 2 + count)
        {
            return false;
        }

        try
        {
            text = Utf8.GetString(bytes.Slice(2, count));
        }
        catch (DecoderFallbackException)
        {
            return false;
        }

        bytes = bytes[(2 + count)..];
        return true;
    }

    private static AuthenticationProperties Properties(byte flags, DateTimeOffset issued, DateTimeOffset expires) => new()
    {
        IsPersistent = (flags & Persistent) != 0,
        AllowRefresh = (flags & HasAllowRefresh) != 0 ? (flags & AllowRefresh) != 0 : null,
        IssuedUtc = issued,
        ExpiresUtc = expires,
    };

    /// <summary>
    /// Whether the ticket is exactly one the encoding rebuilds unchanged: a plain principal with one plain identity
    /// carrying the three claims in Talki's order with the default issuer and value type, and properties that the
    /// four setters give (anything else, a claim property, an actor or another item, and the ticket is not taken).
    /// </summary>
    private static bool TryDeconstruct(AuthenticationTicket ticket, out Parts parts)
    {
        parts = default;
        var principal = ticket.Principal;
        if (principal.GetType() != typeof(ClaimsPrincipal) || principal.Identities.Count() != 1)
        {
            return false;
        }

        var identity = principal.Identities.First();
        if (identity.GetType() != typeof(ClaimsIdentity) || identity.AuthenticationType is not { Length: > 0 } authenticationType
            || identity.NameClaimType != ClaimsIdentity.DefaultNameClaimType || identity.RoleClaimType != ClaimsIdentity.DefaultRoleClaimType
            || identity.Actor is not null || identity.BootstrapContext is not null || identity.Label is not null
            || ticket.AuthenticationScheme is not { Length: > 0 })
        {
            return false;
        }

        var claims = identity.Claims.ToList();
        if (claims.Count != 3 || !IsPlain(claims[0], ClaimTypes.NameIdentifier) || !IsPlain(claims[1], ClaimTypes.Name)
            || !IsPlain(claims[2], TalkiAuthenticationDefaults.VerifiedClaimType) || claims[2].Value is not ("true" or "false"))
        {
            return false;
        }

        var properties = ticket.Properties;
        if (properties.IssuedUtc is not { } issued || properties.ExpiresUtc is not { } expires)
        {
            return false;
        }

        var flags = (byte)((properties.IsPersistent ? Persistent : 0)
            | (properties.AllowRefresh is { } refresh ? HasAllowRefresh | (refresh ? AllowRefresh : 0) : 0)
            | (claims[2].Value == "true" ? Verified : 0));

        // The items must be exactly what the setters write (the dates as the cookie handler keeps them, to the second).
        var rebuilt = Properties(flags, issued, expires).Items;
        if (rebuilt.Count != properties.Items.Count
            || rebuilt.Any(item => !properties.Items.TryGetValue(item.Key, out var value) || !string.Equals(value, item.Value, StringComparison.Ordinal)))
        {
            return false;
        }

        parts = new Parts(authenticationType, claims[0].Value, claims[1].Value, flags, issued, expires);
        return true;
    }

    private static bool IsPlain(Claim claim, string type) =>
        claim.Type == type && claim.ValueType == ClaimValueTypes.String && claim.Issuer == ClaimsIdentity.DefaultIssuer
        && claim.OriginalIssuer == ClaimsIdentity.DefaultIssuer && claim.Properties.Count == 0;

    private readonly record struct Parts(string AuthenticationType, string UserId, string DisplayName, byte Flags, DateTimeOffset Issued, DateTimeOffset Expires);
}
