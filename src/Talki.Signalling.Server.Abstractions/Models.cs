using System.Diagnostics;
using System.Text.Json.Serialization;

namespace Talki.Signalling;

/// <summary>Who is calling: the signed-in user behind an HTTP request.</summary>
/// <param name="UserId">A stable, opaque id of the user (never shown to other members).</param>
/// <param name="DisplayName">The name other members see.</param>
/// <param name="IsVerified">Whether an identity provider vouched for the user (shown as a tick).</param>
public sealed record CallerIdentity(string UserId, string DisplayName, bool IsVerified);

/// <summary>A room as stored: the join window and its admin.</summary>
/// <param name="Id">The room id.</param>
/// <param name="AdminMember">The member id of the admin (the creator).</param>
/// <param name="CreatedAt">When the room was created.</param>
/// <param name="SealsAt">When the join window closes.</param>
/// <param name="ExpiresAt">When the stored room may be deleted; stores treat it as gone from then on.</param>
public sealed record RoomRecord(RoomId Id, MemberId AdminMember, DateTimeOffset CreatedAt, DateTimeOffset SealsAt, DateTimeOffset ExpiresAt)
{
    private const int MemberIdKeyBytes = 32;
    private const int MemberIdBytes = 12; // as MemberId.New()

    /// <summary>
    /// Gets the room's member-id key (<see cref="NewMemberIdKey"/>), or <see langword="null"/> for a room without one
    /// (created before keys existed), whose member ids are random. In a room with a key the member of a user has the id
    /// <see cref="MemberIdOf"/> gives, the same on every knock: a store may keep the member's own record as the
    /// one-member-per-user guard instead of an item of its own. It is a secret of the server: without it nobody can tell
    /// which user a member id stands for, or link one user's members across rooms. It is never sent to a client, and
    /// <see cref="ToString"/> leaves it out.
    /// </summary>
    public string? MemberIdKey { get; init; }

    /// <summary>Gets a value indicating whether the join window has closed at <paramref name="now"/>.</summary>
    /// <param name="now">The current time.</param>
    /// <returns><see langword="true"/> when sealed.</returns>
    public bool IsSealedAt(DateTimeOffset now) => now >= SealsAt;

    /// <summary>Returns a new member-id key: 32 random bytes, base64url.</summary>
    /// <returns>The key's text.</returns>
    public static string NewMemberIdKey()
    {
        Span<byte> key = stackalloc byte[MemberIdKeyBytes];
        System.Security.Cryptography.RandomNumberGenerator.Fill(key);
        return System.Buffers.Text.Base64Url.EncodeToString(key);
    }

    /// <summary>
    /// Returns the id the member of <paramref name="userId"/> has in this room: the first 12 bytes of
    /// HMAC-SHA256(<see cref="MemberIdKey"/>, a fixed label and the user id's UTF-16 code units, little-endian: every
    /// string its own bytes, lone surrogates included), in the form of <see cref="MemberId.New"/>; or
    /// <see langword="null"/> when the room has no key (its member ids are random).
    /// </summary>
    /// <param name="userId">The user.</param>
    /// <returns>The member id, or <see langword="null"/>.</returns>
    /// <exception cref="InvalidOperationException">The stored key is not 32 bytes of base64url.</exception>
    public MemberId? MemberIdOf(string userId)
    {
        ArgumentNullException.ThrowIfNull(userId);
        if (MemberIdKey is not { } text)
        {
            return null;
        }

        Span<byte> key = stackalloc byte[MemberIdKeyBytes];
        if (!System.Buffers.Text.Base64Url.IsValid(text, out var length) || length != MemberIdKeyBytes
            || System.Buffers.Text.Base64Url.DecodeFromChars(text, key) != MemberIdKeyBytes)
        {
            throw new InvalidOperationException($"Room {Id} has a malformed member-id key.");
        }

        // The label keeps this use of the key apart from any other; the user id's code units follow it (not UTF-8, which
        // would turn every lone surrogate into the same replacement character: two ids, one member id).
        var label = "talki member id\0"u8;
        var message = new byte[label.Length + (2 * userId.Length)];
        label.CopyTo(message);
        for (var i = 0; i < userId.Length; i++)
        {
            System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(message.AsSpan(label.Length + (2 * i)), userId[i]);
        }

        Span<byte> mac = stackalloc byte[32];
        System.Security.Cryptography.HMACSHA256.HashData(key, message, mac);
        return MemberId.TryParse(System.Buffers.Text.Base64Url.EncodeToString(mac[..MemberIdBytes]), out var id)
            ? id
            : throw new UnreachableException("A base64url text of 12 bytes is a well-formed member id.");
    }

    /// <summary>Writes every member but <see cref="MemberIdKey"/> (a secret: logs and exception texts must not carry it).</summary>
    private bool PrintMembers(System.Text.StringBuilder builder)
    {
        builder.Append(System.Globalization.CultureInfo.InvariantCulture, $"Id = {Id}, AdminMember = {AdminMember}, CreatedAt = {CreatedAt:O}, SealsAt = {SealsAt:O}, ExpiresAt = {ExpiresAt:O}, MemberIdKey = {(MemberIdKey is null ? "none" : "(secret)")}");
        return true;
    }
}

/// <summary>A member of a room as stored. Records are immutable; stores update them with optimistic concurrency on <see cref="Version"/>.</summary>
public sealed record MemberRecord
{
    /// <summary>Gets the room.</summary>
    public required RoomId Room { get; init; }

    /// <summary>Gets the member id.</summary>
    public required MemberId Id { get; init; }

    /// <summary>Gets the user behind the member (unique per room).</summary>
    public required string UserId { get; init; }

    /// <summary>Gets the display name.</summary>
    public required string DisplayName { get; init; }

    /// <summary>Gets a value indicating whether the user is verified.</summary>
    public bool IsVerified { get; init; }

    /// <summary>Gets a value indicating whether the member is the room's admin.</summary>
    public bool IsAdmin { get; init; }

    /// <summary>Gets the admission status.</summary>
    public AdmissionStatus Admission { get; init; }

    /// <summary>Gets the connection epoch: it grows by one on every (re)connect.</summary>
    public long Epoch { get; init; }

    /// <summary>Gets the gateway connection id of the current connection, or <see langword="null"/> when offline. It is a secret: never send it to a client.</summary>
    public string? ConnectionId { get; init; }

    /// <summary>Gets when the current connection said hello, or <see langword="null"/> when it has not (yet).</summary>
    public DateTimeOffset? ReadyAt { get; init; }

    /// <summary>
    /// Gets the protocol version the current connection said hello with (1 until it says otherwise). The engine plans the
    /// mesh by it: two version 2 members link up from the newcomer's plan and its first offer, with no <c>connect_to_peer</c>.
    /// </summary>
    public int ProtocolVersion { get; init; } = 1;

    /// <summary>
    /// Gets until when the member's dropped connection may resume, or <see langword="null"/> when it is not suspended. While
    /// set, the member keeps its epoch (its peers keep their links to it and are told nothing), and messages to it are queued
    /// in the store (<see cref="Ports.IRoomStore.EnqueueMessageAsync"/>) instead of pushed. A reconnect within the grace period
    /// resumes the same epoch; the resumed connection's <c>hello</c> clears it and takes the queue. When it passes without a
    /// resume, the member leaves as it did without a grace period (its peers are told <c>peer_left</c>).
    /// </summary>
    public DateTimeOffset? SuspendedUntil { get; init; }

    /// <summary>Gets when the member was first added to the room.</summary>
    public DateTimeOffset JoinedAt { get; init; }

    /// <summary>
    /// Gets when the member stops existing, or <see langword="null"/> when it lives as long as its room. A knock that has not
    /// connected lives as long as its join ticket: if it never connects it vanishes with the ticket, so it cannot hold a
    /// place in the room. Stores treat it as gone from this instant on (reads, updates, and a new add for the same user).
    /// </summary>
    public DateTimeOffset? ExpiresAt { get; init; }

    /// <summary>
    /// Gets the SHA-256 hash (<see cref="TicketId.ComputeHash"/>) of the one-time ticket this record keeps, or
    /// <see langword="null"/>. A ticket issued with the write that creates or extends a member
    /// (<see cref="TicketId.New(RoomId, MemberId)"/>) is kept here rather than as an item of its own: one write fewer per
    /// ticket, and it is taken by <see cref="Ports.IRoomStore.TakeMemberTicketAsync"/>. A record keeps one such ticket: a newer
    /// one replaces it. Stores copy it like any other field.
    /// </summary>
    public string? TicketHash { get; init; }

    /// <summary>Gets when the ticket of <see cref="TicketHash"/> stops being valid, or <see langword="null"/> when there is none.</summary>
    public DateTimeOffset? TicketExpiresAt { get; init; }

    /// <summary>Gets the version for optimistic concurrency; stores bump it on every successful write.</summary>
    public long Version { get; init; }

    /// <summary>Gets a value indicating whether the member has expired at <paramref name="now"/> (see <see cref="ExpiresAt"/>).</summary>
    /// <param name="now">The current time.</param>
    /// <returns><see langword="true"/> when expired.</returns>
    public bool IsExpiredAt(DateTimeOffset now) => ExpiresAt is { } expiresAt && now >= expiresAt;

    /// <summary>Gets a value indicating whether the member is connected, has said hello and is admitted.</summary>
    [JsonIgnore]
    public bool IsLive => Admission == AdmissionStatus.Admitted && ConnectionId is not null && ReadyAt is not null;

    /// <summary>
    /// Gets a value indicating whether the member is in the call as its peers see it: admitted and ready, connected or
    /// suspended (<see cref="SuspendedUntil"/>: its connection dropped and may resume, its peer links stay up).
    /// </summary>
    [JsonIgnore]
    public bool IsPresent => Admission == AdmissionStatus.Admitted && ReadyAt is not null && (ConnectionId is not null || SuspendedUntil is not null);
}

/// <summary>A one-time ticket as stored: only the hash of the secret, bound to a room and member.</summary>
/// <param name="Hash">The SHA-256 hash of the ticket (base64url); the secret itself is never stored.</param>
/// <param name="Room">The room the ticket admits to.</param>
/// <param name="Member">The member the ticket was issued for.</param>
/// <param name="ExpiresAt">When the ticket stops being valid.</param>
public sealed record TicketRecord(string Hash, RoomId Room, MemberId Member, DateTimeOffset ExpiresAt);

/// <summary>Which member and connection epoch a gateway connection belongs to.</summary>
/// <param name="ConnectionId">The gateway's connection id (secret).</param>
/// <param name="Room">The room.</param>
/// <param name="Member">The member.</param>
/// <param name="Epoch">The member's epoch when this connection was made.</param>
/// <param name="ExpiresAt">When the binding may be deleted.</param>
public sealed record ConnectionRecord(string ConnectionId, RoomId Room, MemberId Member, long Epoch, DateTimeOffset ExpiresAt);

/// <summary>The messages a suspended member's queue held when it was taken (<see cref="Ports.IRoomStore.TakeQueuedMessagesAsync"/>).</summary>
/// <param name="Messages">The queued messages (UTF-8 JSON frames), oldest first.</param>
/// <param name="Dropped">How many messages were refused because the queue was full.</param>
public sealed record QueuedMessages(IReadOnlyList<ReadOnlyMemory<byte>> Messages, int Dropped)
{
    /// <summary>Gets an empty result: nothing queued, nothing dropped.</summary>
    public static QueuedMessages Empty { get; } = new([], 0);
}
