using System.Globalization;
using System.Text.Json.Serialization;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Redis.Storage;

/// <summary>
/// A member as stored in its room's <c>members</c> hash: short JSON names. The Lua scripts read <c>u</c> (user), <c>a</c>
/// (admission), <c>v</c> (version) and <c>x</c> (the member's own expiry, as <see cref="RedisTime.Text"/> so that it
/// compares as a string; absent when the member lives as long as its room). Instants are UTC ticks.
/// </summary>
internal sealed class StoredMember
{
    [JsonPropertyName("i")]
    public required string Id { get; init; }

    [JsonPropertyName("u")]
    public required string UserId { get; init; }

    [JsonPropertyName("n")]
    public required string DisplayName { get; init; }

    [JsonPropertyName("f")]
    public bool IsVerified { get; init; }

    [JsonPropertyName("d")]
    public bool IsAdmin { get; init; }

    [JsonPropertyName("a")]
    public required string Admission { get; init; }

    [JsonPropertyName("e")]
    public long Epoch { get; init; }

    [JsonPropertyName("c")]
    public string? ConnectionId { get; init; }

    [JsonPropertyName("r")]
    public long? ReadyAt { get; init; }

    [JsonPropertyName("s")]
    public long? SuspendedUntil { get; init; }

    /// <summary>The protocol version of the member's hello; absent (0) in records written before version 2, read as 1.</summary>
    [JsonPropertyName("p")]
    public int ProtocolVersion { get; init; }

    [JsonPropertyName("j")]
    public long JoinedAt { get; init; }

    [JsonPropertyName("x")]
    public string? ExpiresAt { get; init; }

    /// <summary>The hash of the one-time ticket the member's record keeps (<see cref="MemberRecord.TicketHash"/>).</summary>
    [JsonPropertyName("t")]
    public string? TicketHash { get; init; }

    [JsonPropertyName("tx")]
    public long? TicketExpiresAt { get; init; }

    [JsonPropertyName("v")]
    public long Version { get; init; }

    public static StoredMember From(MemberRecord member) => new()
    {
        Id = member.Id.Value,
        UserId = member.UserId,
        DisplayName = member.DisplayName,
        IsVerified = member.IsVerified,
        IsAdmin = member.IsAdmin,
        Admission = AdmissionText(member.Admission),
        Epoch = member.Epoch,
        ConnectionId = member.ConnectionId,
        ReadyAt = member.ReadyAt?.UtcTicks,
        SuspendedUntil = member.SuspendedUntil?.UtcTicks,
        ProtocolVersion = member.ProtocolVersion,
        JoinedAt = member.JoinedAt.UtcTicks,
        ExpiresAt = member.ExpiresAt is { } expiresAt ? RedisTime.Text(expiresAt) : null,
        TicketHash = member.TicketHash,
        TicketExpiresAt = member.TicketExpiresAt?.UtcTicks,
        Version = member.Version,
    };

    public MemberRecord ToRecord(RoomId room) => new()
    {
        Room = room,
        Id = RedisIds.Member(Id),
        UserId = UserId,
        DisplayName = DisplayName,
        IsVerified = IsVerified,
        IsAdmin = IsAdmin,
        Admission = Admission switch
        {
            "admitted" => AdmissionStatus.Admitted,
            "denied" => AdmissionStatus.Denied,
            _ => AdmissionStatus.Pending,
        },
        Epoch = Epoch,
        ConnectionId = ConnectionId,
        ReadyAt = ReadyAt is { } readyAt ? RedisTime.FromTicks(readyAt) : null,
        SuspendedUntil = SuspendedUntil is { } suspendedUntil ? RedisTime.FromTicks(suspendedUntil) : null,
        ProtocolVersion = ProtocolVersion > 0 ? ProtocolVersion : 1,
        JoinedAt = RedisTime.FromTicks(JoinedAt),
        ExpiresAt = ExpiresAt is { } expiresAt ? RedisTime.Parse(expiresAt) : null,
        TicketHash = TicketHash,
        TicketExpiresAt = TicketExpiresAt is { } ticketExpiresAt ? RedisTime.FromTicks(ticketExpiresAt) : null,
        Version = Version,
    };

    public static string AdmissionText(AdmissionStatus admission) => admission switch
    {
        AdmissionStatus.Admitted => "admitted",
        AdmissionStatus.Denied => "denied",
        _ => "pending",
    };
}

/// <summary>A one-time ticket as stored under its own key.</summary>
internal sealed class StoredTicket
{
    [JsonPropertyName("h")]
    public required string Hash { get; init; }

    [JsonPropertyName("r")]
    public required string Room { get; init; }

    [JsonPropertyName("m")]
    public required string Member { get; init; }

    [JsonPropertyName("x")]
    public long ExpiresAt { get; init; }
}

/// <summary>A connection binding as stored under its own key.</summary>
internal sealed class StoredConnection
{
    [JsonPropertyName("i")]
    public required string ConnectionId { get; init; }

    [JsonPropertyName("r")]
    public required string Room { get; init; }

    [JsonPropertyName("m")]
    public required string Member { get; init; }

    [JsonPropertyName("e")]
    public long Epoch { get; init; }

    [JsonPropertyName("x")]
    public long ExpiresAt { get; init; }
}

/// <summary>Source-generated JSON of the stored records (no reflection: trim and AOT safe).</summary>
[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(StoredMember))]
[JsonSerializable(typeof(StoredTicket))]
[JsonSerializable(typeof(StoredConnection))]
internal sealed partial class RedisJsonContext : JsonSerializerContext;

/// <summary>Instants as stored: UTC ticks, and the fixed-width text the scripts compare.</summary>
internal static class RedisTime
{
    /// <summary>The instant as 19 digits of UTC ticks: fixed width, so string order is time order (Lua compares strings exactly, numbers only to 2^53).</summary>
    public static string Text(DateTimeOffset instant) => instant.UtcTicks.ToString("D19", CultureInfo.InvariantCulture);

    public static DateTimeOffset Parse(string text) => FromTicks(long.Parse(text, NumberStyles.None, CultureInfo.InvariantCulture));

    public static DateTimeOffset FromTicks(long ticks) => new(ticks, TimeSpan.Zero);

    /// <summary>A Redis time to live (milliseconds, at least 1) that ends at <paramref name="expiresAt"/> by the injected clock's <paramref name="now"/>.</summary>
    public static long TtlMilliseconds(DateTimeOffset expiresAt, DateTimeOffset now)
        => Math.Max(1, (long)Math.Ceiling((expiresAt - now).TotalMilliseconds));
}

/// <summary>Ids read back from Redis.</summary>
internal static class RedisIds
{
    public static RoomId Room(string text)
        => RoomId.TryParse(text, out var id) ? id : throw new InvalidDataException("A stored room id is malformed.");

    public static MemberId Member(string text)
        => MemberId.TryParse(text, out var id) ? id : throw new InvalidDataException("A stored member id is malformed.");
}
