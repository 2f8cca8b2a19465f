using System.Buffers;
using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Talki.Signalling;

/// <summary>Identifies a room. Room ids are random, URL-safe and may be shared in links.</summary>
[JsonConverter(typeof(RoomIdJsonConverter))]
public readonly record struct RoomId
{
    /// <summary>The longest accepted id, in characters.</summary>
    public const int MaxLength = 64;

    private readonly string? _value;

    private RoomId(string value) => _value = value;

    /// <summary>Gets the id's text (empty for <c>default</c>).</summary>
    public string Value => _value ?? string.Empty;

    /// <summary>Creates a new random room id (128 bits, base64url).</summary>
    /// <returns>The new id.</returns>
    public static RoomId New() => new(IdText.NewRandom(16));

    /// <summary>Parses a room id received from outside.</summary>
    /// <param name="text">The text to parse.</param>
    /// <param name="id">The id, when the text is well-formed.</param>
    /// <returns><see langword="true"/> when <paramref name="text"/> is a well-formed id.</returns>
    public static bool TryParse(string? text, out RoomId id)
    {
        id = IdText.IsWellFormed(text) ? new RoomId(text!) : default;
        return id._value is not null;
    }

    /// <inheritdoc />
    public override string ToString() => Value;
}

/// <summary>Identifies a member of one room. A user keeps the same member id in a room across reconnects.</summary>
[JsonConverter(typeof(MemberIdJsonConverter))]
public readonly record struct MemberId
{
    private readonly string? _value;

    private MemberId(string value) => _value = value;

    /// <summary>Gets the id's text (empty for <c>default</c>).</summary>
    public string Value => _value ?? string.Empty;

    /// <summary>Creates a new random member id (96 bits, base64url).</summary>
    /// <returns>The new id.</returns>
    public static MemberId New() => new(IdText.NewRandom(12));

    /// <summary>Parses a member id received from outside.</summary>
    /// <param name="text">The text to parse.</param>
    /// <param name="id">The id, when the text is well-formed.</param>
    /// <returns><see langword="true"/> when <paramref name="text"/> is a well-formed id.</returns>
    public static bool TryParse(string? text, out MemberId id)
    {
        id = IdText.IsWellFormed(text) ? new MemberId(text!) : default;
        return id._value is not null;
    }


    /// <summary>Parses a member id from UTF-8 text (as read from JSON without escapes).</summary>
    /// <param name="utf8">The UTF-8 text to parse.</param>
    /// <param name="id">The id, when the text is well-formed.</param>
    /// <returns><see langword="true"/> when <paramref name="utf8"/> is a well-formed id.</returns>
    public static bool TryParseUtf8(ReadOnlySpan<byte> utf8, out MemberId id)
    {
        id = IdText.IsWellFormedUtf8(utf8) ? new MemberId(System.Text.Encoding.ASCII.GetString(utf8)) : default;
        return id._value is not null;
    }

    /// <inheritdoc />
    public override string ToString() => Value;
}

internal static class IdText
{
    public static string NewRandom(int bytes)
    {
        Span<byte> buffer = stackalloc byte[32];
        RandomNumberGenerator.Fill(buffer[..bytes]);
        return Base64Url.EncodeToString(buffer[..bytes]);
    }

    public static bool IsWellFormed(ReadOnlySpan<char> text)
    {
        if (text.IsEmpty || text.Length > RoomId.MaxLength)
        {
            return false;
        }

        foreach (var c in text)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '-' or '_'))
            {
                return false;
            }
        }

        return true;
    }

    public static bool IsWellFormed(string? text) => text is not null && IsWellFormed(text.AsSpan());

    public static bool IsWellFormedUtf8(ReadOnlySpan<byte> text)
    {
        if (text.IsEmpty || text.Length > RoomId.MaxLength)
        {
            return false;
        }

        foreach (var b in text)
        {
            if (!(char.IsAsciiLetterOrDigit((char)b) || b is (byte)'-' or (byte)'_'))
            {
                return false;
            }
        }

        return true;
    }

    public static string ReadId(ref Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.String)
        {
            throw new JsonException("An id must be a JSON string.");
        }

        var text = reader.GetString();
        if (!IsWellFormed(text))
        {
            throw new JsonException("An id must be 1 to 64 characters of A-Z, a-z, 0-9, '-' or '_'.");
        }

        return text!;
    }
}

internal sealed class RoomIdJsonConverter : JsonConverter<RoomId>
{
    public override RoomId Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        _ = RoomId.TryParse(IdText.ReadId(ref reader), out var id);
        return id;
    }

    public override void Write(Utf8JsonWriter writer, RoomId value, JsonSerializerOptions options) => writer.WriteStringValue(value.Value);
}

internal sealed class MemberIdJsonConverter : JsonConverter<MemberId>
{
    public override MemberId Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        _ = MemberId.TryParse(IdText.ReadId(ref reader), out var id);
        return id;
    }

    public override void Write(Utf8JsonWriter writer, MemberId value, JsonSerializerOptions options) => writer.WriteStringValue(value.Value);
}

/// <summary>
/// A one-time ticket: 256 random bits in base64url (43 characters), the secret. The ticket is held only by the member it
/// was issued to; stores keep its <see cref="ComputeHash">hash</see>. A ticket kept in its member's record (see
/// <see cref="New(RoomId, MemberId)"/>) says which record after the secret: <c>secret.room.member</c>. Either form is opaque
/// to clients. <see cref="ToString"/> is redacted so that a ticket never ends up in a log by accident; use
/// <see cref="Value"/> to send it.
/// </summary>
public readonly record struct TicketId
{
    /// <summary>The length of a ticket's secret: the whole text of a ticket that names no member record.</summary>
    public const int Length = 43;

    private const int RandomBytes = 32;

    private const int MaxTextLength = Length + 1 + RoomId.MaxLength + 1 + RoomId.MaxLength;

    private readonly string? _value;

    private TicketId(string value) => _value = value;

    /// <summary>Gets the ticket's secret text (empty for <c>default</c>).</summary>
    public string Value => _value ?? string.Empty;

    /// <summary>Creates a new random ticket, kept apart from any member record (a store keeps it under its hash).</summary>
    /// <returns>The ticket.</returns>
    public static TicketId New() => new(IdText.NewRandom(RandomBytes));

    /// <summary>
    /// Creates a new random ticket kept in the record of <paramref name="member"/> of <paramref name="room"/>: its text
    /// names them after the secret, so that the ticket is taken from that record without a look-up by hash.
    /// </summary>
    /// <param name="room">The room.</param>
    /// <param name="member">The member whose record keeps the ticket's hash.</param>
    /// <returns>The ticket.</returns>
    /// <exception cref="ArgumentException"><paramref name="room"/> or <paramref name="member"/> is <c>default</c>.</exception>
    public static TicketId New(RoomId room, MemberId member)
    {
        if (room.Value.Length == 0 || member.Value.Length == 0)
        {
            throw new ArgumentException("A ticket kept in a member record names its room and member.");
        }

        return new(string.Concat(IdText.NewRandom(RandomBytes), ".", room.Value, ".", member.Value));
    }

    /// <summary>Parses a ticket received from outside (checks its form, not whether it was issued).</summary>
    /// <param name="text">The text to parse.</param>
    /// <param name="ticket">The ticket, when the text is well-formed.</param>
    /// <returns><see langword="true"/> when <paramref name="text"/> has the form of a ticket.</returns>
    public static bool TryParse(string? text, out TicketId ticket)
    {
        ticket = IsWellFormed(text) ? new TicketId(text!) : default;
        return ticket._value is not null;
    }

    /// <summary>Gets the member record that keeps this ticket, when it is one created by <see cref="New(RoomId, MemberId)"/>.</summary>
    /// <param name="room">The room.</param>
    /// <param name="member">The member.</param>
    /// <returns><see langword="true"/> when the ticket names a member record; <see langword="false"/> for a ticket kept apart.</returns>
    public bool TryGetHolder(out RoomId room, out MemberId member)
    {
        room = default;
        member = default;
        if (_value is not { Length: > Length } text)
        {
            return false;
        }

        var rest = text.AsSpan(Length + 1);
        var dot = rest.IndexOf('.');
        return dot > 0 && RoomId.TryParse(rest[..dot].ToString(), out room) && MemberId.TryParse(rest[(dot + 1)..].ToString(), out member);
    }

    /// <summary>Computes the SHA-256 hash (base64url) under which stores keep the ticket.</summary>
    /// <returns>The hash.</returns>
    /// <exception cref="InvalidOperationException">The ticket is <c>default</c>.</exception>
    public string ComputeHash()
    {
        if (_value is null)
        {
            throw new InvalidOperationException("A default ticket has no hash.");
        }

        Span<byte> ascii = stackalloc byte[MaxTextLength];
        var written = System.Text.Encoding.ASCII.GetBytes(_value, ascii);
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(ascii[..written], hash);
        return Base64Url.EncodeToString(hash);
    }

    private static bool IsWellFormed(string? text)
    {
        if (text is null || text.Length < Length || text.Length > MaxTextLength || !Base64Url.IsValid(text.AsSpan(0, Length)))
        {
            return false;
        }

        if (text.Length == Length)
        {
            return true;
        }

        // secret.room.member: both ids well-formed (their alphabet has no dot).
        var rest = text.AsSpan(Length);
        if (rest[0] != '.')
        {
            return false;
        }

        rest = rest[1..];
        var dot = rest.IndexOf('.');
        return dot > 0 && IdText.IsWellFormed(rest[..dot]) && IdText.IsWellFormed(rest[(dot + 1)..]);
    }

    /// <summary>Returns a redacted text: tickets are secrets.</summary>
    /// <returns><c>TicketId(redacted)</c>.</returns>
    public override string ToString() => "TicketId(redacted)";
}
