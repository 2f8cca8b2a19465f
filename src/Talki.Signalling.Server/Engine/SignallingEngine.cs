using System.Buffers;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Talki.Signalling.Ports;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Server.Engine;

/// <summary>The engine: the whole Talki flow over an <see cref="IRoomStore"/> and an <see cref="IConnectionPush"/>.</summary>
internal sealed class SignallingEngine : ISignallingEngine, IDisposable
{
    private const int MaxWriteAttempts = 32;

    /// <summary>Why a waiting connect (protocol version 4) of a member admitted since its ticket was issued is refused.</summary>
    private const string AdmittedSinceTicketMessage = "Admitted since the ticket was issued: ask for a new ticket and say hello.";

    /// <summary>How long after a member's bind a push that finds its connection gone is tried again (see <see cref="PushDecisionAsync"/>).</summary>
    private static readonly TimeSpan FreshConnectWindow = TimeSpan.FromSeconds(2);

    /// <summary>The first wait before such a push is tried again; each next wait doubles (50, 100, 200, 400, 800 ms).</summary>
    private static readonly TimeSpan FreshConnectFirstRetry = TimeSpan.FromMilliseconds(50);

    /// <summary>How long a resume queue outlives its member's grace period and hello timeout (clock skew between instances).</summary>
    private static readonly TimeSpan QueueExpiryMargin = TimeSpan.FromMinutes(1);

    private readonly IRoomStore _store;
    private readonly IConnectionPush _push;
    private readonly TalkiSignallingOptions _options;
    private readonly TimeProvider _time;
    private readonly SignallingMetrics _metrics;
    private readonly ILogger _logger;
    private readonly IIceServerProvider _iceServers;
    private readonly ConcurrentDictionary<RoomId, ITimer> _sealTimers = new();
    private readonly ConcurrentDictionary<string, ITimer> _helloTimers = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<(RoomId Room, MemberId Member, long Epoch), ITimer> _graceTimers = new();
    private readonly ConnectionRateLimiter _rateLimiter;
    private readonly IQuotaCounter _quotas;
    private int _disposed;

    public SignallingEngine(
        IRoomStore store,
        IConnectionPush push,
        IOptions<TalkiSignallingOptions> options,
        TimeProvider time,
        SignallingMetrics metrics,
        IIceServerProvider iceServers,
        ILogger<SignallingEngine> logger,
        IQuotaCounter quotas)
    {
        _store = store;
        _push = push;
        _options = options.Value;
        _time = time;
        _metrics = metrics;
        _logger = logger;
        _iceServers = iceServers;
        _quotas = quotas;
        _rateLimiter = new ConnectionRateLimiter(time, _options.Limits);
    }

    /// <summary>Gets the number of connections the rate limiter holds state for (for tests of the bound).</summary>
    internal int RateLimitedConnectionCount => _rateLimiter.Count;

    /// <summary>Gets the number of connections waiting for their hello (for tests of the bound).</summary>
    internal int HelloTimerCount => _helloTimers.Count;

    /// <summary>Gets the number of armed seal timers (for tests).</summary>
    internal int SealTimerCount => _sealTimers.Count;

    /// <summary>Gets the number of suspended members this process holds a grace timer for (for tests of the bound).</summary>
    internal int GraceTimerCount => _graceTimers.Count;

    public async ValueTask<SignallingResult<TicketGrant>> CreateRoomAsync(CallerIdentity caller, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(caller);
        using var activity = SignallingActivity.Source.StartActivity("talki.room.create");
        if (!await _quotas.TryAcquireAsync("rooms:" + caller.UserId, _options.Limits.RoomsPerSessionPerHour, TimeSpan.FromHours(1), cancellationToken).ConfigureAwait(false))
        {
            return Fail<TicketGrant>(SignallingErrorCode.RoomQuotaExceeded, $"A session may create at most {_options.Limits.RoomsPerSessionPerHour} rooms per hour.");
        }

        var now = _time.GetUtcNow();
        var sealsAt = now + _options.JoinWindow;
        // Member ids derive from the room's key and the user (RoomRecord.MemberIdOf): a user's member has one id in the
        // room, which lets a store keep one record per member and user instead of two.
        var keyed = new RoomRecord(RoomId.New(), default, now, sealsAt, sealsAt + _options.SealedRoomRetention) { MemberIdKey = RoomRecord.NewMemberIdKey() };
        var room = keyed with { AdminMember = keyed.MemberIdOf(caller.UserId)!.Value };
        var ticketExpiresAt = now + _options.TicketLifetime;
        var ticket = TicketId.New(room.Id, room.AdminMember);
        var admin = new MemberRecord
        {
            Room = room.Id,
            Id = room.AdminMember,
            UserId = caller.UserId,
            DisplayName = caller.DisplayName,
            IsVerified = caller.IsVerified,
            IsAdmin = true,
            Admission = AdmissionStatus.Admitted,
            JoinedAt = now,
            TicketHash = ticket.ComputeHash(),
            TicketExpiresAt = ticketExpiresAt,
        };
        await _store.CreateRoomAsync(room, admin, cancellationToken).ConfigureAwait(false);
        _metrics.RoomCreated();
        Log.RoomCreated(_logger, room.Id, admin.Id, sealsAt);
        activity?.SetTag("talki.room.id", room.Id.Value);
        ScheduleSeal(room);
        return IssuedGrant(room, admin, ticket, ticketExpiresAt);
    }

    public async ValueTask<SignallingResult<TicketGrant>> IssueJoinTicketAsync(CallerIdentity caller, RoomId room, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(caller);
        using var activity = SignallingActivity.Source.StartActivity("talki.room.join");
        activity?.SetTag("talki.room.id", room.Value);
        var record = await _store.GetRoomAsync(room, cancellationToken).ConfigureAwait(false);
        if (record is null)
        {
            return Fail<TicketGrant>(SignallingErrorCode.RoomNotFound, "No such room, or it has expired.");
        }

        var now = _time.GetUtcNow();
        if (record.IsSealedAt(now))
        {
            return Fail<TicketGrant>(SignallingErrorCode.RoomSealed, "The room's join window has closed.");
        }

        var member = await FindMemberOfUserAsync(record, caller.UserId, cancellationToken).ConfigureAwait(false);
        if (member?.Admission is null or AdmissionStatus.Pending && !await _quotas.TryAcquireAsync("knocks:" + caller.UserId, _options.Limits.KnocksPerUserPerMinute, TimeSpan.FromMinutes(1), cancellationToken).ConfigureAwait(false))
        {
            return Fail<TicketGrant>(SignallingErrorCode.KnockRateLimited, $"A user may ask to join at most {_options.Limits.KnocksPerUserPerMinute} times per minute.");
        }

        // Each reconnect is announced to every peer: a member reconnecting in a loop must not turn the server into its amplifier.
        if (member?.Admission == AdmissionStatus.Admitted && !await _quotas.TryAcquireAsync("reconnects:" + caller.UserId, _options.Limits.ReconnectsPerUserPerMinute, TimeSpan.FromMinutes(1), cancellationToken).ConfigureAwait(false))
        {
            return Fail<TicketGrant>(SignallingErrorCode.KnockRateLimited, $"A member may reconnect at most {_options.Limits.ReconnectsPerUserPerMinute} times per minute; retry shortly.");
        }

        // A knock is not a seat: a new member is pending and lives as long as its ticket until it connects. Seats are taken
        // when the admin admits (DecideAsync).
        var ticketExpiresAt = now + _options.TicketLifetime;
        var knocked = false;
        TicketId? held = null; // a ticket kept in the member's record by a write made anyway
        if (member is { Admission: AdmissionStatus.Pending, ExpiresAt: not null })
        {
            // A knock that has not connected yet lives as long as its newest ticket, which its record keeps (replacing the
            // one before: a knock holds one ticket at a time).
            var ticket = TicketId.New(room, member.Id);
            var hash = ticket.ComputeHash();
            var change = await UpdateMemberAsync(
                room,
                member.Id,
                m => m.Admission == AdmissionStatus.Pending && m.ExpiresAt < ticketExpiresAt ? m with { ExpiresAt = ticketExpiresAt, TicketHash = hash, TicketExpiresAt = ticketExpiresAt } : null,
                cancellationToken).ConfigureAwait(false);
            member = change.After ?? change.Before; // null: it expired in between, so this is a new knock
            held = change.After is null ? null : ticket;
        }

        if (member is null)
        {
            var knock = await KnockAsync(caller, record, now, ticketExpiresAt, cancellationToken).ConfigureAwait(false);
            if (!knock.IsSuccess)
            {
                return Fail<TicketGrant>(knock.Error.Code, knock.Error.Message);
            }

            (member, knocked, held) = knock.Value;
        }

        if (member.Admission == AdmissionStatus.Denied)
        {
            return Fail<TicketGrant>(SignallingErrorCode.Denied, "The room's admin denied you.");
        }

        // A member written by this request keeps its ticket; any other (reconnecting, or a concurrent knock's) gets one kept apart.
        var grant = held is { } heldTicket
            ? IssuedGrant(record, member, heldTicket, ticketExpiresAt)
            : await IssueTicketAsync(record, member, ticketExpiresAt, cancellationToken).ConfigureAwait(false);
        if (knocked)
        {
            // The admin hears of every knock at once, connected or not, so that it can deny it.
            var admin = await _store.GetMemberAsync(room, record.AdminMember, cancellationToken).ConfigureAwait(false);
            if (admin is { ConnectionId: { } adminConnection, ReadyAt: not null, SuspendedUntil: null })
            {
                // A suspended admin is re-sent every pending request when it resumes.
                await SendAsync(adminConnection, new AdmissionRequestMessage { Member = ViewOf(member) }, cancellationToken, OwnerOf(adminConnection, admin)).ConfigureAwait(false);
            }
        }

        return grant;
    }

    public async ValueTask<SignallingResult<ConnectionGrant>> ConnectAsync(string connectionId, string? ticket, long? resumeEpoch = null, int? waitingVersion = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(connectionId);
        using var activity = SignallingActivity.Source.StartActivity("talki.connect");
        if (waitingVersion is { } version)
        {
            var waiting = await ConnectWaitingAsync(connectionId, ticket, version, canPush: true, cancellationToken).ConfigureAwait(false);
            RecordRefusal(waiting, activity);
            return waiting;
        }

        var (result, room, _) = await AuthorizeCoreAsync(ticket, resumeEpoch, cancellationToken).ConfigureAwait(false);
        if (result.IsSuccess)
        {
            // One step here: the room the authorization just read is the one to bind in.
            var bound = await BindToRoomAsync(connectionId, result.Value, room!, cancellationToken).ConfigureAwait(false);
            result = bound.IsSuccess
                ? new ConnectionGrant(result.Value.Room, result.Value.Member, bound.Value.Member.Epoch, result.Value.SealsAt) { ResumeEpoch = bound.Value.Resumed ? bound.Value.Member.Epoch : null }
                : SignallingResult<ConnectionGrant>.Failure(bound.Error);
        }

        RecordRefusal(result, activity);
        return result;
    }

    public async ValueTask<SignallingResult<ConnectionGrant>> AuthorizeAsync(string? ticket, long? resumeEpoch = null, CancellationToken cancellationToken = default)
    {
        using var activity = SignallingActivity.Source.StartActivity("talki.authorize");
        var (result, _, _) = await AuthorizeCoreAsync(ticket, resumeEpoch, cancellationToken).ConfigureAwait(false);
        RecordRefusal(result, activity);
        return result;
    }

    public async ValueTask<SignallingResult<ConnectionGrant>> AuthorizeWaitingAsync(string connectionId, string? ticket, int version, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(connectionId);
        using var activity = SignallingActivity.Source.StartActivity("talki.authorize");
        var result = await ConnectWaitingAsync(connectionId, ticket, version, canPush: false, cancellationToken).ConfigureAwait(false);
        RecordRefusal(result, activity);
        return result;
    }

    /// <summary>
    /// The connect of a member that waits for admission and says no hello (protocol version 4, <c>wait=1</c>): the ticket is
    /// taken, and the connection bound to its member ready, at <paramref name="version"/> (in the authorizer, for a knock's
    /// ticket, in one store write with the take; else in the write a hello would have made). Nothing is sent: the member hears nothing until its admission (its welcome) or denial. A member admitted or
    /// denied since its ticket was issued is refused (<c>ticket_invalid</c> or <c>denied</c>): its client expects no
    /// welcome it did not ask for, so it asks for a new ticket, which tells it where it stands.
    /// </summary>
    /// <param name="connectionId">The connection.</param>
    /// <param name="ticket">The ticket.</param>
    /// <param name="version">The version the client speaks (at least <see cref="ProtocolVersion.WaitingConnect"/>).</param>
    /// <param name="canPush">
    /// Whether this step may reach other connections: a self-hosted gateway's may (it closes the member's previous
    /// connection and tells the admin that epoch left, as a hello's bind does); API Gateway's authorizer may not (its role
    /// has no <c>execute-api:ManageConnections</c>): a previous connection is then left to find out at its next message
    /// (<c>stale_epoch</c>) or its own disconnect.
    /// </param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    private async ValueTask<SignallingResult<ConnectionGrant>> ConnectWaitingAsync(string connectionId, string? ticket, int version, bool canPush, CancellationToken cancellationToken)
    {
        if (version < ProtocolVersion.WaitingConnect || !IsServed(version))
        {
            // Refused before the ticket is taken: the client may still use it the way its version knows.
            return SignallingResult<ConnectionGrant>.Failure(
                SignallingErrorCode.UnsupportedVersion,
                version < ProtocolVersion.WaitingConnect
                    ? $"Waiting without hello (wait=1) needs protocol version {ProtocolVersion.WaitingConnect} or later."
                    : $"This server speaks protocol versions {_options.MinimumProtocolVersion} to {ProtocolVersion.Current}.");
        }

        if (!canPush && TicketId.TryParse(ticket, out var parsed) && parsed.TryGetHolder(out var heldRoom, out var heldMember))
        {
            // The authorizer's usual case, a knock's ticket kept in its record: the take and the bind in one store write. When
            // it does nothing (the ticket used or expired, the member admitted or denied since, the room gone or sealed), the
            // ordinary path below takes the ticket and says why.
            var held = await _store.GetRoomAsync(heldRoom, cancellationToken).ConfigureAwait(false);
            var now = _time.GetUtcNow();
            if (held is not null && !held.IsSealedAt(now)
                && await _store.TakeMemberTicketToWaitAsync(heldRoom, heldMember, parsed.ComputeHash(), connectionId, version, now, cancellationToken).ConfigureAwait(false) is { } before)
            {
                _metrics.ConnectionOpened();
                Log.MemberConnected(_logger, heldRoom, heldMember, before.Epoch + 1);
                Log.WaitingConnected(_logger, heldRoom, heldMember, before.Epoch + 1);
                return new ConnectionGrant(heldRoom, heldMember, before.Epoch + 1, held.SealsAt);
            }
        }

        var (result, room, member) = await AuthorizeCoreAsync(ticket, resumeEpoch: null, cancellationToken).ConfigureAwait(false);
        if (!result.IsSuccess)
        {
            return result;
        }

        if (member!.Admission != AdmissionStatus.Pending)
        {
            return AdmittedSinceTicket();
        }

        var bound = await BindToRoomAsync(connectionId, result.Value, room!, cancellationToken, member, version, writeBinding: canPush, waiting: canPush ? WaitingBind.CanPush : WaitingBind.CannotPush).ConfigureAwait(false);
        if (!bound.IsSuccess)
        {
            return SignallingResult<ConnectionGrant>.Failure(bound.Error);
        }

        Log.WaitingConnected(_logger, room!.Id, bound.Value.Member.Id, bound.Value.Member.Epoch);
        return new ConnectionGrant(result.Value.Room, result.Value.Member, bound.Value.Member.Epoch, result.Value.SealsAt);
    }

    private static SignallingResult<ConnectionGrant> AdmittedSinceTicket()
        => SignallingResult<ConnectionGrant>.Failure(SignallingErrorCode.TicketInvalid, AdmittedSinceTicketMessage);

    public ValueTask HandleMessageAsync(string connectionId, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
        => HandleMessageCoreAsync(connectionId, null, payload, cancellationToken);

    public ValueTask HandleAuthorizedMessageAsync(string connectionId, ConnectionGrant grant, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(grant);
        return HandleMessageCoreAsync(connectionId, grant, payload, cancellationToken);
    }

    private void RecordRefusal(SignallingResult<ConnectionGrant> result, Activity? activity)
    {
        if (!result.IsSuccess)
        {
            _metrics.TicketRefused(result.Error.Code);
            _metrics.Error(result.Error.Code);
            Log.ConnectionRefused(_logger, result.Error.Code.ToWireName());
            activity?.SetStatus(ActivityStatusCode.Error, result.Error.Code.ToWireName());
        }
    }

    private async ValueTask HandleMessageCoreAsync(string connectionId, ConnectionGrant? grant, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(connectionId);
        var started = _time.GetTimestamp();
        string? correlationId = null;
        try
        {
            // First, before any parsing or store read: a flood costs one token bucket look-up per message. A message over
            // the size limit pays for the largest allowed one (it is refused below): the byte burst always holds that much.
            var charged = Math.Min(payload.Length, _options.Hosting.MaxInboundMessageBytes);
            var decision = _rateLimiter.TryAcquireAt(connectionId, 1, charged, started);
            if (decision != RateDecision.Allowed)
            {
                await RefuseRateLimitedAsync(connectionId, payload, decision, cancellationToken).ConfigureAwait(false);
                return;
            }

            if (payload.Length > _options.Hosting.MaxInboundMessageBytes)
            {
                await SendErrorAsync(connectionId, SignallingErrorCode.MessageTooLarge, $"A message may be at most {_options.Hosting.MaxInboundMessageBytes} bytes.", null, cancellationToken).ConfigureAwait(false);
                return;
            }

            var frame = ClientFrame.Parse(payload.Span);
            correlationId = frame.CorrelationId;
            if (frame.Kind == ClientFrameKind.Invalid)
            {
                await SendErrorAsync(connectionId, frame.ErrorCode, frame.ErrorMessage!, correlationId, cancellationToken).ConfigureAwait(false);
                return;
            }

            if (frame.Kind == ClientFrameKind.Signals)
            {
                // One entry per other member at most; each entry pays one token, like the signal it stands for (the first
                // was paid above): batching must not multiply what a sender may push.
                var entries = frame.Signals!.Length;
                if (entries > _options.Limits.MaxMembersPerRoom - 1)
                {
                    await SendErrorAsync(connectionId, SignallingErrorCode.MalformedMessage, $"'signals' may carry at most one entry per other member ({_options.Limits.MaxMembersPerRoom - 1}).", correlationId, cancellationToken).ConfigureAwait(false);
                    return;
                }

                if (entries > 1 && _rateLimiter.TryAcquire(connectionId, entries - 1) is var more && more != RateDecision.Allowed)
                {
                    _rateLimiter.Return(connectionId, 1, charged); // refused whole, like a lone signal: what the frame paid back
                    await RefuseRateLimitedAsync(connectionId, payload, more, cancellationToken).ConfigureAwait(false);
                    return;
                }
            }

            // The frame's instant: every time check of this frame uses it (the seal, a target's suspension), one clock
            // read instead of one per check.
            var now = _time.GetUtcNow();
            if (grant is not null && grant.SealsAt <= now)
            {
                // The authorizer's grant says when the room seals: a straggler after it costs no store read.
                await SendAsync(connectionId, new RoomSealedMessage { Room = grant.Room, SealedAt = grant.SealsAt }, cancellationToken, OwnerOf(connectionId, grant)).ConfigureAwait(false);
                await _push.CloseAsync(connectionId, cancellationToken).ConfigureAwait(false);
                return;
            }

            RoomRecord? room = null;
            MemberRecord? self;
            var greetedByBind = false;
            MemberRecord? receiver = null;
            var receiverRead = false;
            IReadOnlyList<MemberRecord>? roster = null;
            if (grant is not null)
            {
                // The grant names the member: one read tells whether this connection is bound to it (the room is read only
                // when a frame needs it). A signal reads its sender and its receiver together: one store request; a
                // batch of signals reads the room's members, its sender among them: one request for all of them.
                if (frame.Kind == ClientFrameKind.Signals)
                {
                    roster = await _store.ListMembersAsync(grant.Room, cancellationToken).ConfigureAwait(false);
                    self = FindMember(roster, grant.Member);
                }
                else if (frame.Kind == ClientFrameKind.Signal && frame.To != grant.Member)
                {
                    (self, receiver) = await _store.GetMemberPairAsync(grant.Room, grant.Member, frame.To, cancellationToken).ConfigureAwait(false);
                    receiverRead = true;
                }
                else
                {
                    self = await _store.GetMemberAsync(grant.Room, grant.Member, cancellationToken).ConfigureAwait(false);
                }

                if (self is null || self.ConnectionId != connectionId)
                {
                    var binding = grant.ResumeEpoch is null ? null : await _store.GetConnectionAsync(connectionId, cancellationToken).ConfigureAwait(false);
                    if (binding is not null)
                    {
                        // Bound once and since replaced (its binding is written after the member): a resume grant must not
                        // take the member back from its newer connection.
                        self = await _store.GetMemberAsync(grant.Room, grant.Member, cancellationToken).ConfigureAwait(false);
                        if (self?.ConnectionId != connectionId)
                        {
                            await SendErrorAsync(connectionId, SignallingErrorCode.StaleEpoch, "A newer connection of this member has replaced this one.", correlationId, cancellationToken).ConfigureAwait(false);
                            await _push.CloseAsync(connectionId, cancellationToken).ConfigureAwait(false);
                            return;
                        }
                    }
                    else
                    {
                        // Two-phase gateways (API Gateway): the authorizer only consumed the ticket; the first frame binds.
                        // A replaced connection's grant is older than the member's epoch: the bind answers stale_epoch.
                        var helloVersion = frame.Kind == ClientFrameKind.Hello && IsServed(frame.Version ?? 1) ? frame.Version ?? 1 : (int?)null;
                        var bound = await BindAsync(connectionId, grant, self, helloVersion, cancellationToken).ConfigureAwait(false);
                        if (!bound.IsSuccess)
                        {
                            await SendErrorAsync(connectionId, bound.Error.Code, bound.Error.Message, correlationId, cancellationToken).ConfigureAwait(false);
                            await _push.CloseAsync(connectionId, cancellationToken).ConfigureAwait(false);
                            return;
                        }

                        (room, self, _, greetedByBind) = bound.Value; // greeted: the bind wrote this hello's state too
                    }
                }
            }
            else
            {
                // The binding names the room and the member; a signal reads its sender and its receiver together, as with a grant.
                var connection = await _store.GetConnectionAsync(connectionId, cancellationToken).ConfigureAwait(false);
                if (connection is null)
                {
                    self = null;
                }
                else if (frame.Kind == ClientFrameKind.Signal && frame.To != connection.Member)
                {
                    (self, receiver) = await _store.GetMemberPairAsync(connection.Room, connection.Member, frame.To, cancellationToken).ConfigureAwait(false);
                    receiverRead = true;
                }
                else
                {
                    self = await _store.GetMemberAsync(connection.Room, connection.Member, cancellationToken).ConfigureAwait(false);
                }

                room = connection is null ? null : await _store.GetRoomAsync(connection.Room, cancellationToken).ConfigureAwait(false);
                if (connection is null || self is null || room is null)
                {
                    await SendErrorAsync(connectionId, SignallingErrorCode.RoomNotFound, "The connection's room no longer exists.", correlationId, cancellationToken).ConfigureAwait(false);
                    await _push.CloseAsync(connectionId, cancellationToken).ConfigureAwait(false);
                    return;
                }

                if (self.ConnectionId != connectionId || self.Epoch != connection.Epoch)
                {
                    await SendErrorAsync(connectionId, SignallingErrorCode.StaleEpoch, "A newer connection of this member has replaced this one.", correlationId, cancellationToken).ConfigureAwait(false);
                    await _push.CloseAsync(connectionId, cancellationToken).ConfigureAwait(false);
                    return;
                }

                if (room.IsSealedAt(now))
                {
                    await SendAsync(connectionId, new RoomSealedMessage { Room = room.Id, SealedAt = room.SealsAt }, cancellationToken).ConfigureAwait(false);
                    await _push.CloseAsync(connectionId, cancellationToken).ConfigureAwait(false);
                    return;
                }
            }

            if (frame.Kind == ClientFrameKind.Signal)
            {
                await RelayAsync(connectionId, self, payload, new SignalEntry(frame.To, frame.ToEpoch, frame.Description, frame.Candidates, frame.CorrelationId, frame.IsOffer), started, now, receiverRead, receiver, cancellationToken).ConfigureAwait(false);
                return;
            }

            if (frame.Kind == ClientFrameKind.Signals)
            {
                await RelayBatchAsync(connectionId, self, payload, frame, started, now, roster, cancellationToken).ConfigureAwait(false);
                return;
            }

            using var activity = SignallingActivity.Source.StartActivity("talki.message");
            activity?.SetTag("talki.message.type", frame.Kind.ToString());
            activity?.SetTag(TalkiDiagnostics.CorrelationIdTag, correlationId);
            if (frame.Kind is ClientFrameKind.Hello or ClientFrameKind.Admit or ClientFrameKind.Deny)
            {
                room ??= await _store.GetRoomAsync(self.Room, cancellationToken).ConfigureAwait(false);
                if (room is null)
                {
                    await SendErrorAsync(connectionId, SignallingErrorCode.RoomNotFound, "The connection's room no longer exists.", correlationId, cancellationToken).ConfigureAwait(false);
                    await _push.CloseAsync(connectionId, cancellationToken).ConfigureAwait(false);
                    return;
                }
            }

            switch (frame.Kind)
            {
                case ClientFrameKind.Hello:
                    await HelloAsync(connectionId, room!, self, frame, greetedByBind, cancellationToken).ConfigureAwait(false);
                    break;
                case ClientFrameKind.Ping:
                    await SendAsync(connectionId, new PongMessage { Id = correlationId }, cancellationToken, OwnerOf(connectionId, self)).ConfigureAwait(false);
                    break;
                case ClientFrameKind.Leave:
                    await DisconnectCoreAsync(connectionId, cancellationToken, leaving: true, OwnerOf(connectionId, self)).ConfigureAwait(false);
                    await _push.CloseAsync(connectionId, cancellationToken).ConfigureAwait(false);
                    break;
                case ClientFrameKind.Admit:
                case ClientFrameKind.Deny:
                    await DecideAsync(connectionId, room!, self, frame, cancellationToken).ConfigureAwait(false);
                    break;
                default:
                    throw new UnreachableException($"Unhandled frame kind {frame.Kind}.");
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw;
        }
        catch (RoomStoreUnavailableException exception)
        {
            // Expected and transient: the caller is told to retry; the connection and everybody else stay.
            Log.StoreUnavailable(_logger, exception);
            await TrySendErrorAsync(connectionId, SignallingErrorCode.ServiceUnavailable, "The server is busy; retry in a moment.", correlationId).ConfigureAwait(false);
        }
#pragma warning disable CA1031 // An unexpected failure must not take the connection or the process down.
        catch (Exception exception)
#pragma warning restore CA1031
        {
            var reference = NewCorrelationId();
            Log.UnexpectedFailure(_logger, exception, reference);
            await TrySendInternalErrorAsync(connectionId, correlationId, reference).ConfigureAwait(false);
        }
    }

    public ValueTask DisconnectAsync(string connectionId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(connectionId);
        return DisconnectLoggedAsync(connectionId, null, cancellationToken);
    }

    private async ValueTask DisconnectLoggedAsync(string connectionId, ConnectionRecord? owner, CancellationToken cancellationToken)
    {
        try
        {
            await DisconnectCoreAsync(connectionId, cancellationToken, owner: owner).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw;
        }
#pragma warning disable CA1031 // A failed clean-up is logged; the gateway cannot act on it.
        catch (Exception exception)
#pragma warning restore CA1031
        {
            Log.UnexpectedFailure(_logger, exception, NewCorrelationId());
        }
    }

    public ValueTask HandleAuthorizedDisconnectAsync(string connectionId, ConnectionGrant grant, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(connectionId);
        ArgumentNullException.ThrowIfNull(grant);

        // The gateway carries the seal in whole milliseconds, truncated: one more and the room's own instant has passed.
        if (_time.GetUtcNow() < grant.SealsAt + TimeSpan.FromMilliseconds(1))
        {
            // The grant names the member: its record is the binding (a connection bound through a grant has no other).
            // The member is suspended or leaves only if its record still names this connection.
            _metrics.ConnectionClosed();
            return DisconnectLoggedAsync(connectionId, OwnerOf(connectionId, grant), cancellationToken);
        }

        // After the seal a disconnect changes nothing in the store (see DisconnectCoreAsync): nobody is told, nobody resumes,
        // and the member's record and the connection's binding expire with the room. Every call ends this way, and
        // on DynamoDB this skips a delete and a read per member. Only this process's state for the connection is let go.
        _rateLimiter.Release(connectionId);
        CancelHelloTimeout(connectionId);
        _metrics.ConnectionClosed(); // a connection that never sent a frame never bound, and is counted closed all the same
        Log.MemberDisconnected(_logger, grant.Room, grant.Member, grant.Epoch);
        return ValueTask.CompletedTask;
    }

    /// <summary>Seals a room whose join window has closed: tells every connected member and closes their sockets.</summary>
    /// <remarks>
    /// Called before <see cref="RoomRecord.SealsAt"/>, it seals nothing and keeps (or re-arms) the room's timer: timers
    /// can fire a little before the wall clock reaches their due instant (<see cref="System.Threading.Timer"/> counts whole
    /// milliseconds of a monotonic clock, and <see cref="TimeProvider.System"/> truncates the due time to them), and an
    /// early firing must never cancel the seal.
    /// </remarks>
    internal async ValueTask SealRoomAsync(RoomId roomId, CancellationToken cancellationToken = default)
    {
        var room = await _store.GetRoomAsync(roomId, cancellationToken).ConfigureAwait(false);
        if (room is not null && !room.IsSealedAt(_time.GetUtcNow()))
        {
            RearmSealTimer(room);
            return;
        }

        if (_sealTimers.TryRemove(roomId, out var timer))
        {
            await timer.DisposeAsync().ConfigureAwait(false);
        }

        if (room is null)
        {
            return;
        }

        var members = await _store.ListMembersAsync(roomId, cancellationToken).ConfigureAwait(false);
        var sealedMessage = Serialize(new RoomSealedMessage { Room = room.Id, SealedAt = room.SealsAt });
        var closed = 0;
        foreach (var member in members)
        {
            if (member.ConnectionId is { } connectionId)
            {
                _ = await _push.PushAsync(connectionId, sealedMessage, cancellationToken).ConfigureAwait(false);
                await _push.CloseAsync(connectionId, cancellationToken).ConfigureAwait(false);
                closed++;
            }
        }

        Log.RoomSealed(_logger, room.Id, closed);
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            foreach (var timer in _sealTimers.Values)
            {
                timer.Dispose();
            }

            _sealTimers.Clear();
            foreach (var timer in _helloTimers.Values)
            {
                timer.Dispose();
            }

            _helloTimers.Clear();
            foreach (var timer in _graceTimers.Values)
            {
                timer.Dispose();
            }

            _graceTimers.Clear();
        }
    }

    /// <summary>Adds a new pending member for <paramref name="caller"/> (or finds the one a concurrent knock added).</summary>
    /// <returns>The member, whether this call added it (a new knock), and then the ticket its record keeps.</returns>
    private async ValueTask<SignallingResult<(MemberRecord Member, bool Added, TicketId? Ticket)>> KnockAsync(CallerIdentity caller, RoomRecord room, DateTimeOffset now, DateTimeOffset expiresAt, CancellationToken cancellationToken)
    {
        var capacity = _options.Limits.MaxMembersPerRoom;
        var members = await _store.ListMembersAsync(room.Id, cancellationToken).ConfigureAwait(false);
        if (members.Count(m => m.Admission == AdmissionStatus.Admitted) >= capacity)
        {
            // A courtesy only (the seat is checked atomically on admission): nobody could be admitted now.
            return SignallingResult<(MemberRecord, bool, TicketId?)>.Failure(SignallingErrorCode.RoomFull, $"The room already has {capacity} members.");
        }

        var id = room.MemberIdOf(caller.UserId) ?? MemberId.New();
        var ticket = TicketId.New(room.Id, id);
        var candidate = new MemberRecord
        {
            Room = room.Id,
            Id = id,
            UserId = caller.UserId,
            DisplayName = caller.DisplayName,
            IsVerified = caller.IsVerified,
            Admission = AdmissionStatus.Pending,
            JoinedAt = now,
            ExpiresAt = expiresAt,
            TicketHash = ticket.ComputeHash(),
            TicketExpiresAt = expiresAt,

            // A user knocking again after its knock lapsed gets the same id (derived from the room's key): the new record
            // starts at a random version, so that a writer still holding the lapsed record (its versions counted up from
            // another random start) cannot write over its successor by a version that happens to match.
            Version = room.MemberIdKey is null ? 0 : RandomNumberGenerator.GetInt32(1, int.MaxValue),
        };
        switch (await _store.TryAddMemberAsync(candidate, capacity, _options.Limits.MaxPendingPerRoom, cancellationToken).ConfigureAwait(false))
        {
            case AddMemberOutcome.Added:
                Log.Knocked(_logger, room.Id, candidate.Id);
                return (candidate, true, ticket);
            case AddMemberOutcome.TooManyPending:
                Log.KnockRefused(_logger, room.Id, _options.Limits.MaxPendingPerRoom);
                return SignallingResult<(MemberRecord, bool, TicketId?)>.Failure(SignallingErrorCode.KnockRateLimited, $"The room already has {_options.Limits.MaxPendingPerRoom} newcomers waiting for the admin; try again later.");
            case AddMemberOutcome.RoomFull:
                return SignallingResult<(MemberRecord, bool, TicketId?)>.Failure(SignallingErrorCode.RoomFull, $"The room already has {capacity} members.");
            case AddMemberOutcome.UserExists when await FindMemberOfUserAsync(room, caller.UserId, cancellationToken).ConfigureAwait(false) is { } existing:
                return (existing, false, null);
            default:
                return SignallingResult<(MemberRecord, bool, TicketId?)>.Failure(SignallingErrorCode.RoomNotFound, "No such room, or it has expired.");
        }
    }

    /// <summary>
    /// The live member of <paramref name="userId"/> in <paramref name="room"/>: in a room with a member-id key, the member
    /// whose id that user's id derives (one read by key; its user is checked all the same); in a room without one, the
    /// store's look-up by user.
    /// </summary>
    private async ValueTask<MemberRecord?> FindMemberOfUserAsync(RoomRecord room, string userId, CancellationToken cancellationToken)
    {
        if (room.MemberIdOf(userId) is not { } derived)
        {
            return await _store.FindMemberByUserAsync(room.Id, userId, cancellationToken).ConfigureAwait(false);
        }

        var member = await _store.GetMemberAsync(room.Id, derived, cancellationToken).ConfigureAwait(false);
        return member is not null && string.Equals(member.UserId, userId, StringComparison.Ordinal) ? member : null;
    }

    private async ValueTask<SignallingResult<TicketGrant>> IssueTicketAsync(RoomRecord room, MemberRecord member, DateTimeOffset expiresAt, CancellationToken cancellationToken)
    {
        var ticket = TicketId.New();
        await _store.StoreTicketAsync(new TicketRecord(ticket.ComputeHash(), room.Id, member.Id, expiresAt), cancellationToken).ConfigureAwait(false);
        return IssuedGrant(room, member, ticket, expiresAt);
    }

    /// <summary>The grant of a ticket already stored: kept apart, or in <paramref name="member"/>'s record, written with it.</summary>
    private TicketGrant IssuedGrant(RoomRecord room, MemberRecord member, TicketId ticket, DateTimeOffset expiresAt)
    {
        _metrics.TicketIssued();
        Log.TicketIssued(_logger, room.Id, member.Id);
        return new TicketGrant(room.Id, member.Id, member.IsAdmin, ticket, expiresAt, room.SealsAt) { Status = member.Admission, DisplayName = member.DisplayName, IsVerified = member.IsVerified };
    }

    /// <summary>Consumes the ticket (once) and returns the grant (and the room it read), without binding any connection.</summary>
    private async ValueTask<(SignallingResult<ConnectionGrant> Result, RoomRecord? Room, MemberRecord? Member)> AuthorizeCoreAsync(string? ticket, long? resumeEpoch, CancellationToken cancellationToken)
    {
        // A ticket its member's record keeps is taken from that record (one conditional write, which returns the member: no
        // read of it); a ticket kept apart is consumed from its own item.
        (RoomId Room, MemberId Member, DateTimeOffset ExpiresAt)? record = null;
        MemberRecord? holder = null;
        if (TicketId.TryParse(ticket, out var parsed))
        {
            if (parsed.TryGetHolder(out var heldRoom, out var heldMember))
            {
                holder = await _store.TakeMemberTicketAsync(heldRoom, heldMember, parsed.ComputeHash(), cancellationToken).ConfigureAwait(false);
                record = holder is null ? null : (heldRoom, heldMember, holder.TicketExpiresAt ?? DateTimeOffset.MinValue);
            }
            else if (await _store.ConsumeTicketAsync(parsed.ComputeHash(), cancellationToken).ConfigureAwait(false) is { } apart)
            {
                record = (apart.Room, apart.Member, apart.ExpiresAt);
            }
        }

        if (record is not { } taken)
        {
            return (SignallingResult<ConnectionGrant>.Failure(SignallingErrorCode.TicketInvalid, "The ticket is unknown or has been used."), null, null);
        }

        var now = _time.GetUtcNow();
        if (now >= taken.ExpiresAt)
        {
            return (SignallingResult<ConnectionGrant>.Failure(SignallingErrorCode.TicketExpired, "The ticket has expired; ask for a new one."), null, null);
        }

        var room = await _store.GetRoomAsync(taken.Room, cancellationToken).ConfigureAwait(false);
        if (room is null)
        {
            return (SignallingResult<ConnectionGrant>.Failure(SignallingErrorCode.RoomNotFound, "No such room, or it has expired."), null, null);
        }

        if (room.IsSealedAt(now))
        {
            return (SignallingResult<ConnectionGrant>.Failure(SignallingErrorCode.RoomSealed, "The room's join window has closed."), null, null);
        }

        var member = holder ?? await _store.GetMemberAsync(taken.Room, taken.Member, cancellationToken).ConfigureAwait(false);
        if (member is null)
        {
            return (SignallingResult<ConnectionGrant>.Failure(SignallingErrorCode.RoomNotFound, "No such member, or the room has expired."), null, null);
        }

        if (member.Admission == AdmissionStatus.Denied)
        {
            return (SignallingResult<ConnectionGrant>.Failure(SignallingErrorCode.Denied, "The room's admin denied you."), null, null);
        }

        // The epoch the connection takes when it binds. Nothing is written here: a grant whose connection never binds
        // (the socket failed after the authorizer) changes nothing, and the member rejoins with a fresh ticket.
        // A resume is only worth carrying for the member's current epoch; whether it still can resume is decided at the bind.
        var resume = resumeEpoch == member.Epoch && _options.ResumeGracePeriod > TimeSpan.Zero ? resumeEpoch : null;
        // The member as now stored: a take cleared the ticket its record kept and bumped the version (IRoomStore's contract),
        // so that a write from it (a waiting connect's bind) needs no read and meets no conflict.
        var stored = holder is null ? member : member with { TicketHash = null, TicketExpiresAt = null, Version = member.Version + 1 };
        return (new ConnectionGrant(room.Id, member.Id, member.Epoch + 1, room.SealsAt) { ResumeEpoch = resume }, room, stored);
    }

    /// <summary>
    /// Binds a connection to the member of its grant: the member's record takes the grant's epoch and the connection, the
    /// previous connection (if any) is closed and its departure told. Idempotent for the same connection (a gateway that
    /// does not serialise a connection's frames may bind twice concurrently); a grant older than the member's epoch is stale.
    /// A grant that asks to resume the member's current epoch, while that epoch's connection is suspended within its grace
    /// period or still recorded, keeps the epoch instead: the previous connection is closed and nobody is told anything.
    /// </summary>
    /// <param name="connectionId">The connection.</param>
    /// <param name="grant">The connection's grant.</param>
    /// <param name="known">The member as the frame read it (the first write starts from it).</param>
    /// <param name="helloVersion">
    /// When the first frame is a hello of a supported version: a new epoch is bound ready, with that version, in the same
    /// write (one write fewer; <see cref="HelloAsync"/> then only greets). A resume is bound as usual.
    /// </param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    private async ValueTask<SignallingResult<(RoomRecord Room, MemberRecord Member, bool Resumed, bool Greeted)>> BindAsync(string connectionId, ConnectionGrant grant, MemberRecord? known, int? helloVersion, CancellationToken cancellationToken)
    {
        // The gateway carries the grant on every frame and on the disconnect: the member's record is the binding, and no
        // record by connection id is written (one write per connection fewer; on DynamoDB, per member of every call). A
        // resume grant's connection gets one all the same: a later frame of it must tell "bound once and replaced since"
        // from "not bound yet" (see HandleMessageCoreAsync), or it would take the member back from its newer connection.
        var room = await _store.GetRoomAsync(grant.Room, cancellationToken).ConfigureAwait(false);
        return room is null
            ? SignallingResult<(RoomRecord, MemberRecord, bool, bool)>.Failure(SignallingErrorCode.RoomNotFound, "No such room, or it has expired.")
            : await BindToRoomAsync(connectionId, grant, room, cancellationToken, known, helloVersion, writeBinding: grant.ResumeEpoch is not null).ConfigureAwait(false);
    }

    private async ValueTask<SignallingResult<(RoomRecord Room, MemberRecord Member, bool Resumed, bool Greeted)>> BindToRoomAsync(string connectionId, ConnectionGrant grant, RoomRecord room, CancellationToken cancellationToken, MemberRecord? known = null, int? helloVersion = null, bool writeBinding = true, WaitingBind waiting = WaitingBind.No)
    {
        var now = _time.GetUtcNow();
        if (room.IsSealedAt(now))
        {
            return SignallingResult<(RoomRecord, MemberRecord, bool, bool)>.Failure(SignallingErrorCode.RoomSealed, "The room's join window has closed.");
        }

        var change = await UpdateMemberAsync(
            grant.Room,
            grant.Member,
            m =>
            {
                if (m.Admission == AdmissionStatus.Denied || m.ConnectionId == connectionId || (waiting != WaitingBind.No && m.Admission != AdmissionStatus.Pending))
                {
                    return null;
                }

                if (CanResume(m, grant, now))
                {
                    // Same epoch. Messages to it stay queued until this connection's hello has its welcome.
                    return m with { ConnectionId = connectionId, SuspendedUntil = m.SuspendedUntil ?? now + _options.ResumeGracePeriod, ExpiresAt = null };
                }

                return m.Epoch >= grant.Epoch
                    ? null
                    : m with
                    {
                        Epoch = grant.Epoch,
                        ConnectionId = connectionId,
                        ReadyAt = helloVersion is null ? null : now,
                        ProtocolVersion = helloVersion ?? m.ProtocolVersion,
                        ExpiresAt = null,
                        SuspendedUntil = null,
                    };
            },
            cancellationToken,
            known).ConfigureAwait(false);
        if (change.After is not { } member)
        {
            var current = change.Before;
            if (current is null)
            {
                return SignallingResult<(RoomRecord, MemberRecord, bool, bool)>.Failure(SignallingErrorCode.RoomNotFound, "No such member, or the room has expired.");
            }

            if (current.Admission == AdmissionStatus.Denied)
            {
                return SignallingResult<(RoomRecord, MemberRecord, bool, bool)>.Failure(SignallingErrorCode.Denied, "The room's admin denied you.");
            }

            if (waiting != WaitingBind.No && current.Admission != AdmissionStatus.Pending)
            {
                return SignallingResult<(RoomRecord, MemberRecord, bool, bool)>.Failure(SignallingErrorCode.TicketInvalid, AdmittedSinceTicketMessage);
            }

            if (current.ConnectionId != connectionId)
            {
                return SignallingResult<(RoomRecord, MemberRecord, bool, bool)>.Failure(SignallingErrorCode.StaleEpoch, "A newer connection of this member has replaced this one; connect again with a fresh ticket.");
            }

            // Already bound by a concurrent frame of the same connection (or a bind whose connection record was lost):
            // writing the record again is harmless and heals the second case.
            if (writeBinding)
            {
                await _store.PutConnectionAsync(new ConnectionRecord(connectionId, room.Id, current.Id, current.Epoch, room.ExpiresAt), cancellationToken).ConfigureAwait(false);
            }

            return (room, current, current.Epoch != grant.Epoch, false);
        }

        var before = change.Before!;
        var resumed = member.Epoch == before.Epoch;
        if (writeBinding)
        {
            await _store.PutConnectionAsync(new ConnectionRecord(connectionId, room.Id, member.Id, member.Epoch, room.ExpiresAt), cancellationToken).ConfigureAwait(false);
        }

        _metrics.ConnectionOpened();
        if (resumed)
        {
            _metrics.Resume("resumed");
        }

        Log.MemberConnected(_logger, room.Id, member.Id, member.Epoch);

        // A refresh: the previous connection is superseded. Close it and end its links; its binding (if it has one) stays
        // until its own disconnect, so anything it still sends is answered with stale_epoch (through a grant, by the grant's
        // epoch, older than the member's now). A resume closes it too, but
        // the member never left: its peers keep their links and hear nothing.
        if (waiting == WaitingBind.No)
        {
            ScheduleHelloTimeout(connectionId, room.Id, member.Id); // a waiting connect stood for its hello
        }

        // API Gateway's authorizer cannot reach other connections: the previous one (if any) finds out at its next message
        // (stale_epoch) or its own disconnect, and nobody is told it left (the waiting member did not leave).
        var canPush = waiting != WaitingBind.CannotPush;
        if (canPush && before.ConnectionId is { } previous && previous != connectionId)
        {
            _rateLimiter.Transfer(previous, connectionId); // a reconnect does not buy a fresh burst
            await _push.CloseAsync(previous, cancellationToken).ConfigureAwait(false);
            if (!resumed && before.ReadyAt is not null)
            {
                await AnnounceDepartureAsync(before, cancellationToken).ConfigureAwait(false);
            }
        }
        else if (canPush && !resumed && before.ReadyAt is not null && before.SuspendedUntil is not null)
        {
            // A fresh start over a suspended epoch (the client did not ask to resume): that epoch has left.
            await _store.TakeQueuedMessagesAsync(room.Id, member.Id, before.Epoch, cancellationToken).ConfigureAwait(false);
            await AnnounceDepartureAsync(before, cancellationToken).ConfigureAwait(false);
        }

        return (room, member, resumed, !resumed && member.ReadyAt is not null);
    }

    /// <summary>How a bind stands for a waiting member's hello (protocol version 4, <c>wait=1</c>).</summary>
    private enum WaitingBind
    {
        /// <summary>An ordinary bind: a hello is expected.</summary>
        No,

        /// <summary>A waiting connect that may reach other connections (self-hosted).</summary>
        CanPush,

        /// <summary>A waiting connect in API Gateway's authorizer, which cannot reach other connections.</summary>
        CannotPush,
    }

    /// <summary>Whether <paramref name="grant"/> resumes <paramref name="member"/>'s epoch: it asked for exactly that epoch, and
    /// the epoch's connection said hello and is suspended within its grace period or still recorded (its drop not yet seen).</summary>
    private bool CanResume(MemberRecord member, ConnectionGrant grant, DateTimeOffset now)
        => _options.ResumeGracePeriod > TimeSpan.Zero
            && grant.ResumeEpoch == member.Epoch
            && grant.Epoch == member.Epoch + 1
            && member.ReadyAt is not null
            && (member.ConnectionId is not null || member.SuspendedUntil > now);

    /// <summary>Whether a suspended member's grace period has passed with no connection: it has left, whether or not a timer said so yet.</summary>
    private static bool SuspensionExpired(MemberRecord member, DateTimeOffset now)
        => member.ConnectionId is null && member.SuspendedUntil is { } until && until <= now;

    /// <summary>Whether the member is in the call at <paramref name="now"/> (<see cref="MemberRecord.IsPresent"/>, an expired suspension excluded).</summary>
    private static bool IsPresentAt(MemberRecord member, DateTimeOffset now) => member.IsPresent && !SuspensionExpired(member, now);

    /// <param name="connectionId">The connection.</param>
    /// <param name="room">The room.</param>
    /// <param name="self">The member as last read (or as the bind wrote it).</param>
    /// <param name="frame">The hello.</param>
    /// <param name="greetedByBind">Whether the bind of this first frame already recorded the hello (a new epoch, ready).</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    private async ValueTask HelloAsync(string connectionId, RoomRecord room, MemberRecord self, ClientFrame frame, bool greetedByBind, CancellationToken cancellationToken)
    {
        var version = frame.Version ?? 1; // the first version had no negotiation
        if (!IsServed(version))
        {
            await SendErrorAsync(connectionId, SignallingErrorCode.UnsupportedVersion, $"This server speaks protocol versions {_options.MinimumProtocolVersion} to {ProtocolVersion.Current}.", frame.CorrelationId, cancellationToken).ConfigureAwait(false);
            return;
        }

        var now = _time.GetUtcNow();
        var change = greetedByBind
            ? new MemberChange(self with { ReadyAt = null }, self)
            : await UpdateMemberAsync(
                room.Id,
                self.Id,
                m => m.ConnectionId == connectionId && m.ReadyAt is null ? m with { ReadyAt = now, ProtocolVersion = version } : null,
                cancellationToken,
                self).ConfigureAwait(false);
        var current = change.After ?? change.Before;
        if (current?.ConnectionId == connectionId)
        {
            CancelHelloTimeout(connectionId);
        }

        if (current is null || current.ConnectionId != connectionId)
        {
            await SendErrorAsync(connectionId, SignallingErrorCode.StaleEpoch, "A newer connection of this member has replaced this one.", frame.CorrelationId, cancellationToken).ConfigureAwait(false);
            return;
        }

        // A resumed connection (bound with its member's epoch, which said hello before): messages to it are queued until now.
        var resuming = change.After is null && current.SuspendedUntil is not null;
        var queued = resuming ? await _store.TakeQueuedMessagesAsync(room.Id, current.Id, current.Epoch, cancellationToken).ConfigureAwait(false) : null;
        if (current.Admission == AdmissionStatus.Pending && current.ProtocolVersion >= 3)
        {
            // Version 3: a waiting member hears nothing of the room until the admin decides; its welcome is its admission.
            await AwaitAdmissionAsync(connectionId, room, current, resuming, queued, change.After is not null, cancellationToken).ConfigureAwait(false);
            return;
        }

        var members = await _store.ListMembersAsync(room.Id, cancellationToken).ConfigureAwait(false);

        // A first hello of an admitted member plans its mesh; a version 2 member gets its side of the plan in the welcome.
        // A resumed version 2 member gets it again: an admission written into its dying socket (the server saw the write
        // succeed and queued nothing) carried its plan, and the client takes it only when it had not been admitted.
        var plan = current.Admission == AdmissionStatus.Admitted && (change.After is not null || (resuming && current.ProtocolVersion >= 2))
            ? await CollectMeshAsync(current, members, cancellationToken).ConfigureAwait(false)
            : null;
        await SendAsync(
            connectionId,
            await WelcomeOfAsync(room, current, members, plan, resuming, queued?.Dropped ?? 0, cancellationToken).ConfigureAwait(false),
            cancellationToken,
            OwnerOf(connectionId, current)).ConfigureAwait(false);

        if (resuming)
        {
            await ResumeAsync(connectionId, room, current, members, queued!, cancellationToken).ConfigureAwait(false);
            return;
        }

        if (change.After is null)
        {
            return; // A repeated hello only re-sends the welcome.
        }

        if (current.IsAdmin)
        {
            // Every pending member (connected or only knocking) is re-sent when the admin (re)connects, so it can deny any of them.
            foreach (var member in members)
            {
                if (member.Admission == AdmissionStatus.Pending)
                {
                    await SendAsync(connectionId, new AdmissionRequestMessage { Member = ViewOf(member) }, cancellationToken, OwnerOf(connectionId, current)).ConfigureAwait(false);
                }
            }
        }

        if (plan is not null)
        {
            await DeliverMeshAsync(current, plan, cancellationToken).ConfigureAwait(false);
        }
        else if (current.Admission == AdmissionStatus.Pending)
        {
            // A version 1 admin hears of the knock again when the newcomer says hello. A version 2 admin heard of it at the
            // knock (or with every pending request at its own hello or resume) and keeps it until it decides: once is enough.
            await AskVersion1AdminAgainAsync(FindAdmin(members, room), current, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Whether this server serves <paramref name="version"/> (<see cref="TalkiSignallingOptions.MinimumProtocolVersion"/> to the current one).</summary>
    private bool IsServed(int version) => ProtocolVersion.IsSupported(version) && version >= _options.MinimumProtocolVersion;

    /// <summary>
    /// The hello of a version 3 member that waits for admission: answered with nothing (no member list, no ICE servers);
    /// a resumed connection gets what was queued for it. A version 1 admin hears of the knock again, as at any hello.
    /// </summary>
    /// <param name="connectionId">The connection.</param>
    /// <param name="room">The room.</param>
    /// <param name="self">The waiting member.</param>
    /// <param name="resuming">Whether the connection resumed the member's previous one.</param>
    /// <param name="queued">What was queued for a resumed connection.</param>
    /// <param name="first">Whether this is the connection's first hello.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    private async ValueTask AwaitAdmissionAsync(string connectionId, RoomRecord room, MemberRecord self, bool resuming, QueuedMessages? queued, bool first, CancellationToken cancellationToken)
    {
        if (resuming)
        {
            await ResumeAsync(connectionId, room, self, [], queued!, cancellationToken).ConfigureAwait(false);
            return;
        }

        if (!first)
        {
            return;
        }

        var admin = await _store.GetMemberAsync(room.Id, room.AdminMember, cancellationToken).ConfigureAwait(false);
        await AskVersion1AdminAgainAsync(admin, self, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Sends a connected version 1 <paramref name="admin"/> the request of <paramref name="newcomer"/> again, at the newcomer's hello, as that version expects.</summary>
    private async ValueTask AskVersion1AdminAgainAsync(MemberRecord? admin, MemberRecord newcomer, CancellationToken cancellationToken)
    {
        if (admin is { ConnectionId: { } adminConnection, ReadyAt: not null, SuspendedUntil: null, ProtocolVersion: < 2 })
        {
            await SendAsync(adminConnection, new AdmissionRequestMessage { Member = ViewOf(newcomer) }, cancellationToken, OwnerOf(adminConnection, admin)).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// The welcome of <paramref name="self"/>: the room, its other admitted members, the ICE servers, and the member's side
    /// of <paramref name="plan"/> (version 2 and later).
    /// </summary>
    private async ValueTask<WelcomeMessage> WelcomeOfAsync(RoomRecord room, MemberRecord self, IReadOnlyList<MemberRecord> members, List<MemberRecord>? plan, bool resumed, int missed, CancellationToken cancellationToken)
    {
        var others = new List<MemberView>(members.Count);
        foreach (var member in members)
        {
            if (member.Id != self.Id && member.Admission == AdmissionStatus.Admitted)
            {
                others.Add(ViewOf(member));
            }
        }

        return new WelcomeMessage
        {
            ProtocolVersion = self.ProtocolVersion,
            Links = plan is not null ? LinksFor(self, plan) : null,
            You = ViewOf(self),
            Room = new RoomView { Id = room.Id, Admin = room.AdminMember, CreatedAt = room.CreatedAt, SealsAt = room.SealsAt },
            Members = others,
            Status = self.Admission,
            IceServers = await _iceServers.GetIceServersAsync(room, self, cancellationToken).ConfigureAwait(false),
            ServerTime = _time.GetUtcNow(),
            IdleTimeoutSeconds = (int)Math.Min(int.MaxValue, Math.Floor(_options.Hosting.IdleTimeout.TotalSeconds)),
            Resumed = resumed,
            Missed = missed,
        };
    }

    /// <summary>
    /// Ends a resume after its welcome: stops queueing (the member is live again) and delivers, in order, what was queued
    /// before the welcome and what arrived between it and the switch. A sender that queues after the switch delivers its
    /// message itself (<see cref="EnqueueAsync"/>). A resumed admin gets every pending request again.
    /// </summary>
    private async ValueTask ResumeAsync(string connectionId, RoomRecord room, MemberRecord self, IReadOnlyList<MemberRecord> members, QueuedMessages queued, CancellationToken cancellationToken)
    {
        var cleared = await UpdateMemberAsync(
            room.Id,
            self.Id,
            m => m.ConnectionId == connectionId && m.Epoch == self.Epoch && m.SuspendedUntil is not null ? m with { SuspendedUntil = null } : null,
            cancellationToken).ConfigureAwait(false);
        var delivered = await PushAllAsync(connectionId, self, queued.Messages, cancellationToken).ConfigureAwait(false);
        var dropped = queued.Dropped;
        if (cleared.After is not null)
        {
            var stragglers = await _store.TakeQueuedMessagesAsync(room.Id, self.Id, self.Epoch, cancellationToken).ConfigureAwait(false);
            delivered += await PushAllAsync(connectionId, self, stragglers.Messages, cancellationToken).ConfigureAwait(false);
            dropped += stragglers.Dropped;
        }

        Log.MemberResumed(_logger, room.Id, self.Id, self.Epoch, delivered, dropped);
        if (cleared.After is { Admission: AdmissionStatus.Admitted } live)
        {
            await AnnounceResumeAsync(live, self.SuspendedUntil!.Value - _options.ResumeGracePeriod, members, cancellationToken).ConfigureAwait(false);
        }

        if (self.IsAdmin)
        {
            foreach (var member in members)
            {
                if (member.Admission == AdmissionStatus.Pending)
                {
                    await SendAsync(connectionId, new AdmissionRequestMessage { Member = ViewOf(member) }, cancellationToken, OwnerOf(connectionId, self)).ConfigureAwait(false);
                }
            }
        }
    }

    /// <summary>
    /// Tells the resumed member's peers (version 2) that it resumed: what was relayed into its socket between the drop and
    /// the moment this server noticed it (<paramref name="suspendedAt"/>) may be lost, and each peer sends it again what it
    /// sent since shortly before then. A suspended peer hears it at its own resume (queued).
    /// </summary>
    private async ValueTask AnnounceResumeAsync(MemberRecord resumed, DateTimeOffset suspendedAt, IReadOnlyList<MemberRecord> members, CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        byte[]? message = null;
        foreach (var member in members)
        {
            if (member.Id != resumed.Id && member.ProtocolVersion >= 2 && IsPresentAt(member, now))
            {
                message ??= Serialize(new PeerResumedMessage
                {
                    Member = resumed.Id,
                    Epoch = resumed.Epoch,
                    SuspendedMilliseconds = Math.Max(0, (long)(now - suspendedAt).TotalMilliseconds),
                });
                _ = await DeliverAsync(member, message, cancellationToken, handleGone: false).ConfigureAwait(false);
            }
        }
    }

    private async ValueTask<int> PushAllAsync(string connectionId, MemberRecord owner, IReadOnlyList<ReadOnlyMemory<byte>> messages, CancellationToken cancellationToken)
    {
        foreach (var message in messages)
        {
            if (await _push.PushAsync(connectionId, message, cancellationToken).ConfigureAwait(false) == PushOutcome.Gone)
            {
                await DisconnectCoreAsync(connectionId, cancellationToken, owner: OwnerOf(connectionId, owner)).ConfigureAwait(false);
                return 0;
            }
        }

        return messages.Count;
    }

    private async ValueTask DecideAsync(string connectionId, RoomRecord room, MemberRecord self, ClientFrame frame, CancellationToken cancellationToken)
    {
        var admit = frame.Kind == ClientFrameKind.Admit;
        if (self.ReadyAt is null)
        {
            await SendErrorAsync(connectionId, SignallingErrorCode.NotReady, "Send hello first.", frame.CorrelationId, cancellationToken).ConfigureAwait(false);
            return;
        }

        if (!self.IsAdmin)
        {
            await SendErrorAsync(connectionId, SignallingErrorCode.NotAdmin, "Only the room's admin may admit or deny.", frame.CorrelationId, cancellationToken).ConfigureAwait(false);
            return;
        }

        var decision = admit ? AdmissionStatus.Admitted : AdmissionStatus.Denied;
        MemberChange change;
        if (admit)
        {
            var (admission, full) = await AdmitAsync(room.Id, frame.Member, cancellationToken).ConfigureAwait(false);
            if (full)
            {
                // Nothing was written: the newcomer keeps waiting (and hears nothing). Admitted members keep their seats while
                // the room lives, offline or not, so that they can come back.
                await SendErrorAsync(connectionId, SignallingErrorCode.RoomFull, $"The room already has {_options.Limits.MaxMembersPerRoom} members; the newcomer keeps waiting.", frame.CorrelationId, cancellationToken).ConfigureAwait(false);
                return;
            }

            change = admission;
        }
        else
        {
            // A denial is kept for the room's life (no expiry), so a denied user cannot knock again.
            change = await UpdateMemberAsync(
                room.Id,
                frame.Member,
                m => m.Admission == AdmissionStatus.Pending ? m with { Admission = decision, ExpiresAt = null } : null,
                cancellationToken).ConfigureAwait(false);
        }

        if (change.Before is null)
        {
            await SendErrorAsync(connectionId, SignallingErrorCode.MemberNotFound, "No such member in this room.", frame.CorrelationId, cancellationToken).ConfigureAwait(false);
            return;
        }

        if (change.After is not { } target)
        {
            if (change.Before.Admission == decision && !change.Before.IsAdmin)
            {
                return; // Repeating a decision is harmless.
            }

            await SendErrorAsync(connectionId, SignallingErrorCode.MemberNotPending, "That member is not waiting for admission.", frame.CorrelationId, cancellationToken).ConfigureAwait(false);
            return;
        }

        Log.AdmissionDecided(_logger, room.Id, target.Id, admit ? "admitted" : "denied");
        var view = ViewOf(target);
        ServerMessage notice = admit ? new AdmittedMessage { Member = view } : new DeniedMessage { Member = view };
        if (!admit || self.ProtocolVersion < 2)
        {
            // A version 2 admin is not echoed an admission: the newcomer's first offer tells it (one message fewer per knock).
            await SendAsync(connectionId, notice, cancellationToken, OwnerOf(connectionId, self)).ConfigureAwait(false);
        }

        if (!admit)
        {
            if (target.ConnectionId is { } deniedConnection && target.SuspendedUntil is null)
            {
                if (await PushDecisionAsync(target, deniedConnection, Serialize(notice), cancellationToken).ConfigureAwait(false) == PushOutcome.Gone)
                {
                    await DisconnectCoreAsync(deniedConnection, cancellationToken, owner: OwnerOf(deniedConnection, target)).ConfigureAwait(false);
                }

                await _push.CloseAsync(deniedConnection, cancellationToken).ConfigureAwait(false);
            }
            else if (target.ConnectionId is { } resumingConnection)
            {
                await _push.CloseAsync(resumingConnection, cancellationToken).ConfigureAwait(false); // its resume ends as denied
            }

            return;
        }

        if (target.ConnectionId is null && target.SuspendedUntil is null)
        {
            return; // a knock that is not connected learns it when it connects
        }

        // A suspended newcomer gets the notice and its plan when it resumes, in order.
        if (target.ReadyAt is null)
        {
            _ = await DeliverAsync(target, Serialize(notice), cancellationToken).ConfigureAwait(false); // its hello plans the mesh
            return;
        }

        var members = await _store.ListMembersAsync(room.Id, cancellationToken).ConfigureAwait(false);
        var plan = await CollectMeshAsync(target, members, cancellationToken).ConfigureAwait(false);
        if (target.ProtocolVersion < 3)
        {
            _ = await DeliverAsync(target, Serialize(new AdmittedMessage { Member = view, Links = LinksFor(target, plan) }), cancellationToken).ConfigureAwait(false);
        }
        else if (target.SuspendedUntil is null)
        {
            // Version 3: the admission is the newcomer's welcome. A suspended one gets it at its resume (its resumed
            // welcome carries the plan), or at the hello of a fresh connection: nothing is queued for it.
            _ = await DeliverAsync(target, Serialize(await WelcomeOfAsync(room, target, members, plan, resumed: false, missed: 0, cancellationToken).ConfigureAwait(false)), cancellationToken, decision: true).ConfigureAwait(false);
        }

        await DeliverMeshAsync(target, plan, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The members a newcomer links up with: every present member but itself (a suspended one is in the call: what is
    /// meant for it is queued for its resume). A suspension that has expired unannounced ends here.
    /// </summary>
    private async ValueTask<List<MemberRecord>> CollectMeshAsync(MemberRecord newcomer, IReadOnlyList<MemberRecord> members, CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        var plan = new List<MemberRecord>(members.Count);
        foreach (var existing in members)
        {
            if (existing.Id == newcomer.Id)
            {
                continue;
            }

            if (SuspensionExpired(existing, now))
            {
                await FinalizeSuspensionAsync(existing.Room, existing.Id, existing.Epoch, cancellationToken).ConfigureAwait(false);
                continue;
            }

            if (existing.IsPresent)
            {
                plan.Add(existing);
            }
        }

        return plan;
    }

    /// <summary>
    /// Whether <paramref name="member"/> is the polite side of its link to <paramref name="peer"/>: the one that became
    /// ready later (ties by id). It depends only on the pair, so every plan of the pair agrees, in either version.
    /// </summary>
    private static bool IsPolite(MemberRecord member, MemberRecord peer) =>
        peer.ReadyAt < member.ReadyAt || (peer.ReadyAt == member.ReadyAt && string.CompareOrdinal(peer.Id.Value, member.Id.Value) < 0);

    /// <summary>
    /// A version 2 newcomer's side of its plan, folded into the welcome or the admission it is sent anyway; <see langword="null"/>
    /// for a version 1 newcomer (it gets <c>connect_to_peer</c> messages). With a version 2 peer the newcomer offers; with a
    /// version 1 peer the roles are version 1's (who became ready first offers).
    /// </summary>
    private static List<PeerLink>? LinksFor(MemberRecord newcomer, List<MemberRecord> plan)
    {
        if (newcomer.ProtocolVersion < 2)
        {
            return null;
        }

        var links = new List<PeerLink>(plan.Count);
        foreach (var existing in plan)
        {
            var polite = IsPolite(newcomer, existing);
            links.Add(new PeerLink { Peer = ViewOf(existing), PeerEpoch = existing.Epoch, Offerer = existing.ProtocolVersion >= 2 || !polite, Polite = polite });
        }

        return links;
    }

    /// <summary>
    /// Sends what the plan still needs after the newcomer's welcome or admission: <c>connect_to_peer</c> to every version 1
    /// end. Two version 2 members need nothing more: the newcomer's first offer carries the receiver's side (<see cref="SignalRelayMessage.Link"/>).
    /// </summary>
    private async ValueTask DeliverMeshAsync(MemberRecord newcomer, List<MemberRecord> plan, CancellationToken cancellationToken)
    {
        var newcomerView = ViewOf(newcomer);
        foreach (var existing in plan)
        {
            if (newcomer.ProtocolVersion >= 2 && existing.ProtocolVersion >= 2)
            {
                continue;
            }

            var existingPolite = IsPolite(existing, newcomer);
            _ = await DeliverAsync(
                existing,
                Serialize(new ConnectToPeerMessage { Peer = newcomerView, PeerEpoch = newcomer.Epoch, Offerer = !existingPolite, Polite = existingPolite }),
                cancellationToken).ConfigureAwait(false);
            if (newcomer.ProtocolVersion < 2)
            {
                _ = await DeliverAsync(
                    newcomer,
                    Serialize(new ConnectToPeerMessage { Peer = ViewOf(existing), PeerEpoch = existing.Epoch, Offerer = existingPolite, Polite = !existingPolite }),
                    cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// Relays each entry of a <c>signals</c> frame as if it had come alone, in order, from one read of the room's members
    /// (<paramref name="roster"/>, or read here when the frame's path did not). An entry that fails gets its own error;
    /// the others still go.
    /// </summary>
    private async ValueTask RelayBatchAsync(string connectionId, MemberRecord self, ReadOnlyMemory<byte> payload, ClientFrame frame, long started, DateTimeOffset now, IReadOnlyList<MemberRecord>? roster, CancellationToken cancellationToken)
    {
        if (!self.IsLive)
        {
            var code = self.ReadyAt is null ? SignallingErrorCode.NotReady : SignallingErrorCode.NotAdmitted;
            await SendErrorAsync(connectionId, code, code == SignallingErrorCode.NotReady ? "Send hello first." : "Wait for the admin to admit you.", frame.CorrelationId, cancellationToken).ConfigureAwait(false);
            return;
        }

        // The roster is the sender's room's: a member of another room is simply not in it.
        roster ??= await _store.ListMembersAsync(self.Room, cancellationToken).ConfigureAwait(false);
        foreach (var entry in frame.Signals!)
        {
            var target = FindMember(roster, entry.To);
            await RelayAsync(connectionId, self, payload, entry with { CorrelationId = entry.CorrelationId ?? frame.CorrelationId }, started, now, receiverRead: true, target, cancellationToken).ConfigureAwait(false);
        }
    }

    private static MemberRecord? FindMember(IReadOnlyList<MemberRecord> members, MemberId id)
    {
        foreach (var member in members)
        {
            if (member.Id == id)
            {
                return member;
            }
        }

        return null;
    }

    private async ValueTask RelayAsync(string connectionId, MemberRecord self, ReadOnlyMemory<byte> payload, SignalEntry signal, long started, DateTimeOffset now, bool receiverRead, MemberRecord? receiver, CancellationToken cancellationToken)
    {
        using var activity = SignallingActivity.Source.StartActivity("talki.signal.relay");
        if (activity is not null)
        {
            activity.SetTag("talki.room.id", self.Room.Value);
            activity.SetTag("talki.member.from", self.Id.Value);
            activity.SetTag("talki.member.to", signal.To.Value);
            activity.SetTag(TalkiDiagnostics.CorrelationIdTag, signal.CorrelationId);
        }

        if (!self.IsLive)
        {
            var code = self.ReadyAt is null ? SignallingErrorCode.NotReady : SignallingErrorCode.NotAdmitted;
            await SendErrorAsync(connectionId, code, code == SignallingErrorCode.NotReady ? "Send hello first." : "Wait for the admin to admit you.", signal.CorrelationId, cancellationToken).ConfigureAwait(false);
            return;
        }

        // The lookup is scoped to the sender's room: a member of another room is simply not found.
        var target = receiverRead ? receiver : await _store.GetMemberAsync(self.Room, signal.To, cancellationToken).ConfigureAwait(false);
        if (target is null || target.Id == self.Id)
        {
            await SendErrorAsync(connectionId, SignallingErrorCode.MemberNotFound, "No such member in this room.", signal.CorrelationId, cancellationToken).ConfigureAwait(false);
            return;
        }

        if (SuspensionExpired(target, now))
        {
            // No timer told the room yet (a stateless host, or the process that saw the drop is gone): this is the moment.
            await FinalizeSuspensionAsync(target.Room, target.Id, target.Epoch, cancellationToken).ConfigureAwait(false);
        }

        if (!IsPresentAt(target, now))
        {
            await SendErrorAsync(connectionId, SignallingErrorCode.PeerUnavailable, "That member is not connected and admitted.", signal.CorrelationId, cancellationToken).ConfigureAwait(false);
            return;
        }

        if (signal.ToEpoch is { } toEpoch && toEpoch != target.Epoch)
        {
            await SendErrorAsync(connectionId, SignallingErrorCode.StaleEpoch, "The signal was for an earlier connection of that member; it was dropped.", signal.CorrelationId, cancellationToken).ConfigureAwait(false);
            return;
        }

        var span = payload.Span;
        var link = self.ProtocolVersion >= 2 && target.ProtocolVersion >= 2 && signal.IsOffer
            ? JsonSerializer.SerializeToUtf8Bytes(
                new PeerLink { Peer = ViewOf(self), PeerEpoch = self.Epoch, Offerer = false, Polite = IsPolite(target, self) },
                TalkiJsonContext.Default.PeerLink)
            : null;
        var buffer = RelayFrame.Write(self.Id, self.Epoch, span[signal.Description], span[signal.Candidates], link, out var length);
        Delivery outcome;
        try
        {
            outcome = await DeliverAsync(target, buffer.AsMemory(0, length), cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        switch (outcome)
        {
            case Delivery.Delivered:
            case Delivery.Queued:
                _metrics.SignalRelayed(_time, started);
                break;
            case Delivery.QueueFull:
                await SendErrorAsync(connectionId, SignallingErrorCode.DeliveryFailed, "That member's connection is resuming and its queue is full; the signal was dropped.", signal.CorrelationId, cancellationToken).ConfigureAwait(false);
                break;
            case Delivery.Gone:
                await SendErrorAsync(connectionId, SignallingErrorCode.PeerUnavailable, "That member's connection is gone.", signal.CorrelationId, cancellationToken).ConfigureAwait(false);
                break;
            case Delivery.Undeliverable:
                // Not a departure: the gateway could not say. The member stays; the sender may retry.
                Log.PushUndeliverable(_logger, self.Room, target.Id);
                await SendErrorAsync(connectionId, SignallingErrorCode.DeliveryFailed, "The signal could not be delivered now; that member was not removed. Retry.", signal.CorrelationId, cancellationToken).ConfigureAwait(false);
                break;
            default:
                Log.PushTooLarge(_logger, length);
                await SendErrorAsync(connectionId, SignallingErrorCode.MessageTooLarge, "The relayed signal is larger than the gateway allows.", signal.CorrelationId, cancellationToken).ConfigureAwait(false);
                break;
        }
    }

    /// <summary>
    /// Ends a connection. A member that said hello is suspended for the grace period (<see cref="TalkiSignallingOptions.ResumeGracePeriod"/>):
    /// nobody is told, and it may resume; one that leaves (<paramref name="leaving"/>), or with no grace period, leaves now.
    /// </summary>
    /// <param name="connectionId">The connection.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <param name="leaving">Whether the member leaves (no grace period).</param>
    /// <param name="owner">
    /// Whose the connection is, when the caller knows (a grant, or the member a push went to): the member's record is
    /// changed only if it still names this connection, and the binding is neither read nor removed (a connection bound
    /// through a grant has none; the gateway's own disconnect removes any other). Otherwise the binding says whose it was.
    /// </param>
    private async ValueTask DisconnectCoreAsync(string connectionId, CancellationToken cancellationToken, bool leaving = false, ConnectionRecord? owner = null)
    {
        _rateLimiter.Release(connectionId);
        CancelHelloTimeout(connectionId);
        var connection = owner ?? await _store.RemoveConnectionAsync(connectionId, cancellationToken).ConfigureAwait(false);
        if (connection is null)
        {
            return;
        }

        if (owner is null)
        {
            _metrics.ConnectionClosed();
        }

        var now = _time.GetUtcNow();
        var room = await _store.GetRoomAsync(connection.Room, cancellationToken).ConfigureAwait(false);
        if (room is null || room.IsSealedAt(now))
        {
            // After the seal the server has left the scene: nobody is told, nobody resumes or reconnects, so the member's
            // record is left as it is until it expires with the room. Every call ends this way (the clients close at the
            // seal), and on DynamoDB that is one write per member fewer (a read of the room instead of a read and a write).
            Log.MemberDisconnected(_logger, connection.Room, connection.Member, connection.Epoch);
            return;
        }

        var suspend = !leaving && _options.ResumeGracePeriod > TimeSpan.Zero;
        var change = await UpdateMemberAsync(
            connection.Room,
            connection.Member,
            m =>
            {
                if (m.ConnectionId != connectionId)
                {
                    return null;
                }

                if (suspend && m.ReadyAt is not null)
                {
                    // A resumed connection that drops again keeps its first deadline: reconnecting never extends the grace.
                    var until = m.SuspendedUntil ?? now + _options.ResumeGracePeriod;
                    var expires = m.Admission == AdmissionStatus.Pending ? Max(now + _options.TicketLifetime, until) : m.ExpiresAt;
                    return m with { ConnectionId = null, SuspendedUntil = until, ExpiresAt = expires };
                }

                return m with { ConnectionId = null, ReadyAt = null, SuspendedUntil = null, ExpiresAt = m.Admission == AdmissionStatus.Pending ? now + _options.TicketLifetime : m.ExpiresAt };
            },
            cancellationToken).ConfigureAwait(false);
        if (change.After is null || change.Before!.ReadyAt is null)
        {
            return; // Superseded by a newer connection, or never said hello: nobody knew of it.
        }

        if (change.After.SuspendedUntil is { } suspendedUntil)
        {
            _metrics.Resume("suspended");
            Log.MemberSuspended(_logger, connection.Room, connection.Member, change.After.Epoch, suspendedUntil);
            ScheduleGraceTimer(change.After, suspendedUntil);
            return;
        }

        if (change.Before.SuspendedUntil is not null)
        {
            // Left while its messages were still queued (a resumed connection that said goodbye before its hello).
            await _store.TakeQueuedMessagesAsync(connection.Room, connection.Member, change.Before.Epoch, cancellationToken).ConfigureAwait(false);
        }

        Log.MemberDisconnected(_logger, connection.Room, connection.Member, connection.Epoch);
        if (room.IsSealedAt(_time.GetUtcNow()))
        {
            return; // Sealed meanwhile: the server has left the scene.
        }

        await AnnounceDepartureAsync(change.Before, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Tells the room that a ready connection of a member ended: live members for an admitted member, the admin for a pending one.</summary>
    private async ValueTask AnnounceDepartureAsync(MemberRecord departed, CancellationToken cancellationToken)
    {
        var members = await _store.ListMembersAsync(departed.Room, cancellationToken).ConfigureAwait(false);
        var message = Serialize(new PeerLeftMessage { Member = departed.Id, Epoch = departed.Epoch });
        var now = _time.GetUtcNow();
        foreach (var member in members)
        {
            // A suspended member hears it when it resumes (queued); one whose grace has passed has left itself.
            var tell = departed.Admission == AdmissionStatus.Admitted ? IsPresentAt(member, now) : member.IsAdmin && member.ReadyAt is not null && !SuspensionExpired(member, now);
            if (member.Id != departed.Id && tell && (member.ConnectionId is not null || member.SuspendedUntil is not null))
            {
                _ = await DeliverAsync(member, message, cancellationToken, handleGone: false).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// Sends a message to a member: pushed to its connection, or queued while it is suspended (or resuming, until its
    /// welcome). A push that finds the connection gone suspends the member (when it said hello) and queues the message.
    /// </summary>
    /// <param name="target">The member as last read.</param>
    /// <param name="message">The UTF-8 JSON frame.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <param name="handleGone">Whether a gone connection is handled (suspended, or unbound) here.</param>
    /// <param name="decision">Whether the message is an admin's decision for a waiting member (see <see cref="PushDecisionAsync"/>).</param>
    private async ValueTask<Delivery> DeliverAsync(MemberRecord target, ReadOnlyMemory<byte> message, CancellationToken cancellationToken, bool handleGone = true, bool decision = false)
    {
        if (target.SuspendedUntil is not null)
        {
            return await EnqueueAsync(target, message, cancellationToken).ConfigureAwait(false);
        }

        if (target.ConnectionId is not { } connectionId)
        {
            return Delivery.Gone;
        }

        switch (decision ? await PushDecisionAsync(target, connectionId, message, cancellationToken).ConfigureAwait(false) : await _push.PushAsync(connectionId, message, cancellationToken).ConfigureAwait(false))
        {
            case PushOutcome.Delivered:
                return Delivery.Delivered;
            case PushOutcome.Undeliverable:
                return Delivery.Undeliverable;
            case PushOutcome.PayloadTooLarge:
                return Delivery.TooLarge;
        }

        if (!handleGone)
        {
            return Delivery.Gone;
        }

        // The gateway says the socket is gone (its $disconnect may never come): the member's grace period starts now.
        await DisconnectCoreAsync(connectionId, cancellationToken, owner: OwnerOf(connectionId, target)).ConfigureAwait(false);
        var after = await _store.GetMemberAsync(target.Room, target.Id, cancellationToken).ConfigureAwait(false);
        if (after is null || after.Epoch != target.Epoch)
        {
            return Delivery.Gone; // left, or started a new epoch: this message was for the old one
        }

        if (after.SuspendedUntil is not null)
        {
            return await EnqueueAsync(after, message, cancellationToken).ConfigureAwait(false);
        }

        // Resumed on another socket meanwhile (its welcome is out): deliver there.
        return after.ConnectionId is { } resumed && resumed != connectionId
            ? await DeliverAsync(after, message, cancellationToken, handleGone: false).ConfigureAwait(false)
            : Delivery.Gone;
    }

    /// <summary>
    /// Pushes the admin's decision to a waiting member's connection. A connection that the member's connect bound moments ago
    /// (protocol version 4: bound ready in API Gateway's authorizer) may not be open yet: API Gateway answers 410 to a post to a connection whose
    /// <c>$connect</c> has not completed ("GoneException ... the connection is not yet established": AWS re:Post knowledge
    /// center, https://repost.aws/knowledge-center/410-gone-api-gateway). An admin deciding within that moment must not
    /// lose the newcomer: such a push is tried again, a few times over about a second and a half, before it counts as
    /// gone. Any other push is tried once.
    /// </summary>
    private async ValueTask<PushOutcome> PushDecisionAsync(MemberRecord target, string connectionId, ReadOnlyMemory<byte> message, CancellationToken cancellationToken)
    {
        var outcome = await _push.PushAsync(connectionId, message, cancellationToken).ConfigureAwait(false);
        if (outcome != PushOutcome.Gone || target.ProtocolVersion < ProtocolVersion.WaitingConnect || target.ReadyAt is not { } boundAt)
        {
            return outcome;
        }

        var delay = FreshConnectFirstRetry;
        while (outcome == PushOutcome.Gone && _time.GetUtcNow() - boundAt < FreshConnectWindow)
        {
            await Task.Delay(delay, _time, cancellationToken).ConfigureAwait(false);
            delay *= 2;
            outcome = await _push.PushAsync(connectionId, message, cancellationToken).ConfigureAwait(false);
        }

        return outcome;
    }

    /// <summary>Queues a message for a suspended member's resume (bounded), or ends a suspension whose grace has passed.</summary>
    private async ValueTask<Delivery> EnqueueAsync(MemberRecord target, ReadOnlyMemory<byte> message, CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        if (SuspensionExpired(target, now))
        {
            await FinalizeSuspensionAsync(target.Room, target.Id, target.Epoch, cancellationToken).ConfigureAwait(false);
            return Delivery.Gone;
        }

        // Long enough for a resume at the last moment and its hello; every append may extend it.
        var until = target.SuspendedUntil!.Value;
        var expiresAt = (until > now ? until : now) + _options.Limits.HelloTimeout + QueueExpiryMargin;
        var limits = _options.Limits;
        var queued = await _store.EnqueueMessageAsync(target.Room, target.Id, target.Epoch, message, limits.MaxQueuedMessagesPerMember, limits.MaxQueuedBytesPerMember, expiresAt, cancellationToken).ConfigureAwait(false);
        if (!queued)
        {
            Log.ResumeQueueFull(_logger, target.Room, target.Id);
        }

        // The resumed connection's welcome may have taken the queue while this was appended: whoever sees the switch to live
        // delivers what is left (the take is atomic, so nothing is delivered twice).
        var again = await _store.GetMemberAsync(target.Room, target.Id, cancellationToken).ConfigureAwait(false);
        if (again is { SuspendedUntil: null, ConnectionId: { } resumed } && again.Epoch == target.Epoch)
        {
            var rest = await _store.TakeQueuedMessagesAsync(target.Room, target.Id, target.Epoch, cancellationToken).ConfigureAwait(false);
            _ = await PushAllAsync(resumed, again, rest.Messages, cancellationToken).ConfigureAwait(false);
        }

        return queued ? Delivery.Queued : Delivery.QueueFull;
    }

    /// <summary>
    /// Ends a suspension whose grace period has passed without a resume: the member leaves as it would have without one
    /// (<c>peer_left</c> to the room, unless it sealed), and its queue is discarded. Idempotent: only one caller wins.
    /// </summary>
    private async ValueTask FinalizeSuspensionAsync(RoomId roomId, MemberId memberId, long epoch, CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        var change = await UpdateMemberAsync(
            roomId,
            memberId,
            m => m.Epoch == epoch && SuspensionExpired(m, now) ? m with { SuspendedUntil = null, ReadyAt = null } : null,
            cancellationToken).ConfigureAwait(false);
        if (_graceTimers.TryRemove((roomId, memberId, epoch), out var timer))
        {
            await timer.DisposeAsync().ConfigureAwait(false);
        }

        if (change.After is null)
        {
            return; // resumed, already ended, or a newer epoch
        }

        var discarded = await _store.TakeQueuedMessagesAsync(roomId, memberId, epoch, cancellationToken).ConfigureAwait(false);
        _metrics.Resume("expired");
        Log.SuspensionEnded(_logger, roomId, memberId, epoch, discarded.Messages.Count + discarded.Dropped);
        var room = await _store.GetRoomAsync(roomId, cancellationToken).ConfigureAwait(false);
        if (room is null || room.IsSealedAt(now))
        {
            return; // After sealing the server has left the scene.
        }

        await AnnounceDepartureAsync(change.Before!, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Arms the timer that ends a suspension at <paramref name="until"/> (in this process; others end it lazily when they meet it).</summary>
    private void ScheduleGraceTimer(MemberRecord member, DateTimeOffset until)
    {
        if (Volatile.Read(ref _disposed) != 0)
        {
            return;
        }

        var key = (member.Room, member.Id, member.Epoch);
        var timer = _time.CreateContextFreeTimer(
            static state =>
            {
                var (engine, key, until) = ((SignallingEngine, (RoomId, MemberId, long), DateTimeOffset))state!;
                _ = engine.GraceTimerFiredAsync(key, until);
            },
            (this, key, until),
            Timeout.InfiniteTimeSpan,
            Timeout.InfiniteTimeSpan);
        if (_graceTimers.TryAdd(key, timer))
        {
            var due = until - _time.GetUtcNow();
            timer.Change(due < TimeSpan.Zero ? TimeSpan.Zero : due, Timeout.InfiniteTimeSpan);
        }
        else
        {
            timer.Dispose(); // a timer for this epoch runs already (a resumed connection that dropped again keeps its deadline)
        }
    }

    private async Task GraceTimerFiredAsync((RoomId Room, MemberId Member, long Epoch) key, DateTimeOffset until)
    {
        try
        {
            var remaining = until - _time.GetUtcNow();
            if (remaining > TimeSpan.Zero && _graceTimers.TryGetValue(key, out var timer))
            {
                // Like the seal: a timer that fires before the clock reaches the deadline re-arms for the remainder.
                if (timer.Change(RearmDelay(remaining), Timeout.InfiniteTimeSpan))
                {
                    Log.GraceTimerRearmed(_logger, remaining);
                }

                return;
            }

            await FinalizeSuspensionAsync(key.Room, key.Member, key.Epoch, CancellationToken.None).ConfigureAwait(false);
        }
#pragma warning disable CA1031 // A timer callback must not throw.
        catch (Exception exception)
#pragma warning restore CA1031
        {
            Log.UnexpectedFailure(_logger, exception, NewCorrelationId());
        }
    }

    private static DateTimeOffset Max(DateTimeOffset a, DateTimeOffset b) => a > b ? a : b;

    /// <summary>Admits a pending member, taking a seat atomically in the store.</summary>
    /// <returns>The change (as <see cref="UpdateMemberAsync"/> reports it), or full when no seat is free (nothing was written).</returns>
    private async ValueTask<(MemberChange Change, bool Full)> AdmitAsync(RoomId room, MemberId member, CancellationToken cancellationToken)
    {
        for (var attempt = 0; attempt < MaxWriteAttempts; attempt++)
        {
            var current = await _store.GetMemberAsync(room, member, cancellationToken).ConfigureAwait(false);
            if (current is null || current.Admission != AdmissionStatus.Pending)
            {
                return (new MemberChange(current, null), false);
            }

            var admitted = current with { Admission = AdmissionStatus.Admitted, ExpiresAt = null };
            switch (await _store.TryAdmitMemberAsync(admitted, _options.Limits.MaxMembersPerRoom, cancellationToken).ConfigureAwait(false))
            {
                case AdmitMemberOutcome.Admitted:
                    return (new MemberChange(current, admitted with { Version = admitted.Version + 1 }), false);
                case AdmitMemberOutcome.RoomFull:
                    return (new MemberChange(current, null), true);
                default:
                    Log.MemberWriteConflict(_logger, room, member);
                    break;
            }
        }

        throw new InvalidOperationException($"Member {member} of room {room} is under too much contention ({MaxWriteAttempts} conflicting writes).");
    }

    /// <summary>
    /// Reads the member, applies <paramref name="change"/> and writes the result if nobody wrote in between (the store's
    /// version check), retrying on a conflict.
    /// </summary>
    /// <param name="room">The member's room.</param>
    /// <param name="member">The member.</param>
    /// <param name="change">The new record for the current one, or <see langword="null"/> to change nothing.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <param name="known">
    /// The member as this handler read it a moment ago: the first attempt writes from it without reading again (one store
    /// read fewer). A stale record only costs a conflict and a fresh read; a decision to change nothing is made on a fresh
    /// read only.
    /// </param>
    private async ValueTask<MemberChange> UpdateMemberAsync(RoomId room, MemberId member, Func<MemberRecord, MemberRecord?> change, CancellationToken cancellationToken, MemberRecord? known = null)
    {
        for (var attempt = 0; attempt < MaxWriteAttempts; attempt++)
        {
            var fromKnown = known is not null && known.Room == room && known.Id == member;
            var current = fromKnown ? known : await _store.GetMemberAsync(room, member, cancellationToken).ConfigureAwait(false);
            known = null;
            if (current is null)
            {
                return default;
            }

            var next = change(current);
            if (next is null && fromKnown)
            {
                current = await _store.GetMemberAsync(room, member, cancellationToken).ConfigureAwait(false);
                if (current is null)
                {
                    return default;
                }

                next = change(current);
            }

            if (next is null)
            {
                return new MemberChange(current, null);
            }

            var stored = await _store.TryUpdateMemberAsync(next, cancellationToken).ConfigureAwait(false);
            if (stored is not null)
            {
                return new MemberChange(current, stored);
            }

            Log.MemberWriteConflict(_logger, room, member);
        }

        throw new InvalidOperationException($"Member {member} of room {room} is under too much contention ({MaxWriteAttempts} conflicting writes).");
    }

    private void ScheduleSeal(RoomRecord room)
    {
        if (!_options.SealRoomsOnTimer || Volatile.Read(ref _disposed) != 0)
        {
            return;
        }

        var due = room.SealsAt - _time.GetUtcNow();
        var timer = _time.CreateContextFreeTimer(
            static state =>
            {
                var (engine, id) = ((SignallingEngine, RoomId))state!;
                _ = engine.SealOnTimerAsync(id);
            },
            (this, room.Id),
            due < TimeSpan.Zero ? TimeSpan.Zero : due,
            Timeout.InfiniteTimeSpan);
        _sealTimers[room.Id] = timer;
    }

    /// <summary>The delay that re-arms a timer that fired early: the remainder rounded up to the next whole millisecond,
    /// because the timer truncates and a sub-millisecond remainder would fire at once.</summary>
    private static TimeSpan RearmDelay(TimeSpan remaining) => TimeSpan.FromMilliseconds(Math.Max(1, Math.Ceiling(remaining.TotalMilliseconds)));

    private void RearmSealTimer(RoomRecord room)
    {
        if (!_sealTimers.TryGetValue(room.Id, out var timer))
        {
            return;
        }

        var remaining = room.SealsAt - _time.GetUtcNow();
        if (timer.Change(RearmDelay(remaining), Timeout.InfiniteTimeSpan))
        {
            Log.SealRearmed(_logger, room.Id, remaining);
        }
    }

    private async Task SealOnTimerAsync(RoomId room)
    {
        try
        {
            await SealRoomAsync(room).ConfigureAwait(false);
        }
#pragma warning disable CA1031 // A timer callback must not throw.
        catch (Exception exception)
#pragma warning restore CA1031
        {
            Log.SealFailed(_logger, exception, room);
        }
    }

    /// <summary>Drops a message over the connection's rate with <c>rate_limited</c>, and closes the connection when it keeps on.</summary>
    private async ValueTask RefuseRateLimitedAsync(string connectionId, ReadOnlyMemory<byte> payload, RateDecision decision, CancellationToken cancellationToken)
    {
        // The refused message's id, so the client knows which one was dropped (parsing is bounded by the size limit).
        var correlationId = payload.Length <= _options.Hosting.MaxInboundMessageBytes ? ClientFrame.Parse(payload.Span).CorrelationId : null;
        var limits = _options.Limits;
        await SendErrorAsync(
            connectionId,
            SignallingErrorCode.RateLimited,
            $"At most {limits.MessagesPerSecond} messages per second (bursts of {limits.MessageBurst}); the message was dropped.",
            correlationId,
            cancellationToken).ConfigureAwait(false);
        if (decision == RateDecision.RefusedAndClose)
        {
            Log.RateLimitClose(_logger, limits.RateLimitedMessagesBeforeClose, limits.RateLimitWindow);
            await ClosePolicyViolationAsync(connectionId, "rate limit exceeded", cancellationToken).ConfigureAwait(false);
        }
    }

    private ValueTask ClosePolicyViolationAsync(string connectionId, string reason, CancellationToken cancellationToken)
        => _push is IPolicyClosingPush policy ? policy.ClosePolicyViolationAsync(connectionId, reason, cancellationToken) : _push.CloseAsync(connectionId, cancellationToken);

    /// <summary>Arms the connection's hello timeout (cancelled by its hello or its disconnect).</summary>
    private void ScheduleHelloTimeout(string connectionId, RoomId room, MemberId member)
    {
        if (Volatile.Read(ref _disposed) != 0)
        {
            return;
        }

        var dueAt = _time.GetUtcNow() + _options.Limits.HelloTimeout;
        var timer = _time.CreateContextFreeTimer(
            static state =>
            {
                var (engine, id, owner, due) = ((SignallingEngine, string, (RoomId, MemberId), DateTimeOffset))state!;
                _ = engine.HelloTimeoutOnTimerAsync(id, owner.Item1, owner.Item2, due);
            },
            (this, connectionId, (room, member), dueAt),
            Timeout.InfiniteTimeSpan,
            Timeout.InfiniteTimeSpan);
        if (_helloTimers.TryAdd(connectionId, timer))
        {
            // Armed only once registered, so that a firing always finds its timer.
            timer.Change(_options.Limits.HelloTimeout, Timeout.InfiniteTimeSpan);
        }
        else
        {
            timer.Dispose(); // a connection id is connected once
        }
    }

    private void CancelHelloTimeout(string connectionId)
    {
        if (_helloTimers.TryRemove(connectionId, out var timer))
        {
            timer.Dispose();
        }
    }

    private async Task HelloTimeoutOnTimerAsync(string connectionId, RoomId room, MemberId member, DateTimeOffset dueAt)
    {
        try
        {
            await HelloTimeoutAsync(connectionId, room, member, dueAt).ConfigureAwait(false);
        }
#pragma warning disable CA1031 // A timer callback must not throw.
        catch (Exception exception)
#pragma warning restore CA1031
        {
            Log.UnexpectedFailure(_logger, exception, NewCorrelationId());
        }
    }

    /// <summary>
    /// Closes a connection that has not said hello by <paramref name="dueAt"/>. Like the seal, a timer that fires before
    /// the clock reaches the due instant re-arms for the remainder instead of closing early or giving up.
    /// </summary>
    /// <param name="connectionId">The connection.</param>
    /// <param name="room">The room it was bound in.</param>
    /// <param name="memberId">The member it was bound to (the timer carries it: a connection bound through a grant has no binding to read).</param>
    /// <param name="dueAt">When the timeout is due.</param>
    private async ValueTask HelloTimeoutAsync(string connectionId, RoomId room, MemberId memberId, DateTimeOffset dueAt)
    {
        if (!_helloTimers.TryGetValue(connectionId, out var timer))
        {
            return; // said hello, or disconnected
        }

        var remaining = dueAt - _time.GetUtcNow();
        if (remaining > TimeSpan.Zero)
        {
            if (timer.Change(RearmDelay(remaining), Timeout.InfiniteTimeSpan))
            {
                Log.HelloTimerRearmed(_logger, remaining);
            }

            return;
        }

        if (!_helloTimers.TryRemove(new KeyValuePair<string, ITimer>(connectionId, timer)))
        {
            return;
        }

        await timer.DisposeAsync().ConfigureAwait(false);
        var member = await _store.GetMemberAsync(room, memberId).ConfigureAwait(false);
        // A resumed connection keeps its member's ReadyAt from before the drop: its own hello is what clears SuspendedUntil.
        if (member is null || member.ConnectionId != connectionId || (member.ReadyAt is not null && member.SuspendedUntil is null))
        {
            return; // gone, superseded (and closed as such), or said hello meanwhile
        }

        Log.HelloTimedOut(_logger, room, member.Id, _options.Limits.HelloTimeout);
        await ClosePolicyViolationAsync(connectionId, "no hello within the hello timeout", CancellationToken.None).ConfigureAwait(false);
    }

    private static MemberRecord? FindAdmin(IReadOnlyList<MemberRecord> members, RoomRecord room)
    {
        foreach (var member in members)
        {
            if (member.Id == room.AdminMember)
            {
                return member;
            }
        }

        return null;
    }

    private static MemberView ViewOf(MemberRecord member) => new()
    {
        Id = member.Id,
        DisplayName = member.DisplayName,
        Verified = member.IsVerified,
        Admin = member.IsAdmin,
        Status = member.Admission,
        Online = member.ReadyAt is not null && (member.ConnectionId is not null || member.SuspendedUntil is not null),
        Epoch = member.Epoch,
    };

    private SignallingResult<T> Fail<T>(SignallingErrorCode code, string message)
    {
        _metrics.Error(code);
        return SignallingResult<T>.Failure(code, message);
    }

    private static byte[] Serialize(ServerMessage message) => JsonSerializer.SerializeToUtf8Bytes(message, TalkiJsonContext.Default.ServerMessage);

    /// <param name="connectionId">The connection.</param>
    /// <param name="message">The message.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <param name="owner">Whose the connection is, when known (see <see cref="DisconnectCoreAsync"/>): a gone connection is then ended without its binding.</param>
    private async ValueTask SendAsync(string connectionId, ServerMessage message, CancellationToken cancellationToken, ConnectionRecord? owner = null)
    {
        var outcome = await _push.PushAsync(connectionId, Serialize(message), cancellationToken).ConfigureAwait(false);
        if (outcome == PushOutcome.Gone)
        {
            await DisconnectCoreAsync(connectionId, cancellationToken, owner: owner).ConfigureAwait(false);
        }
    }

    /// <summary>The owner of <paramref name="connectionId"/> as <see cref="DisconnectCoreAsync"/> takes it: the member it was bound to.</summary>
    private static ConnectionRecord OwnerOf(string connectionId, MemberRecord member) => new(connectionId, member.Room, member.Id, member.Epoch, DateTimeOffset.MaxValue);

    /// <summary>The owner of <paramref name="connectionId"/> as its grant names it.</summary>
    private static ConnectionRecord OwnerOf(string connectionId, ConnectionGrant grant) => new(connectionId, grant.Room, grant.Member, grant.Epoch, grant.SealsAt);

    private async ValueTask SendErrorAsync(string connectionId, SignallingErrorCode code, string message, string? correlationId, CancellationToken cancellationToken)
    {
        _metrics.Error(code);
        Log.ClientError(_logger, code.ToWireName(), message);
        _ = await _push.PushAsync(connectionId, Serialize(new ErrorMessage { Code = code, Message = message, Id = correlationId }), cancellationToken).ConfigureAwait(false);
    }

    private async ValueTask TrySendErrorAsync(string connectionId, SignallingErrorCode code, string message, string? correlationId, string? reference = null)
    {
        _metrics.Error(code);
        try
        {
            var error = new ErrorMessage { Code = code, Message = message, Id = correlationId, Reference = reference };
            _ = await _push.PushAsync(connectionId, Serialize(error), CancellationToken.None).ConfigureAwait(false);
        }
#pragma warning disable CA1031 // Best effort: the failure is logged already.
        catch (Exception)
#pragma warning restore CA1031
        {
        }
    }

    private ValueTask TrySendInternalErrorAsync(string connectionId, string? correlationId, string reference)
        => TrySendErrorAsync(connectionId, SignallingErrorCode.Internal, "An unexpected error occurred; quote the reference to the operator.", correlationId, reference);

    /// <summary>
    /// A fresh reference for one failure: random, so two failures on one connection never share it and it is never the
    /// client's own <c>traceparent</c> (the trace id reaches the operator through the log's activity, not the client).
    /// </summary>
    internal static string NewCorrelationId() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));

    private readonly record struct MemberChange(MemberRecord? Before, MemberRecord? After);

    /// <summary>What became of a message to a member.</summary>
    private enum Delivery
    {
        Delivered,
        Queued,
        QueueFull,
        Gone,
        Undeliverable,
        TooLarge,
    }
}
