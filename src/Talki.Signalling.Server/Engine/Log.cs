using Microsoft.Extensions.Logging;

namespace Talki.Signalling.Server.Engine;

/// <summary>The package's log messages, with stable event ids (1xxx engine, 2xxx gateway, 3xxx HTTP).</summary>
internal static partial class Log
{
    [LoggerMessage(1001, LogLevel.Information, "Room {Room} created by member {Member}; it seals at {SealsAt:O}.", EventName = "RoomCreated")]
    public static partial void RoomCreated(ILogger logger, RoomId room, MemberId member, DateTimeOffset sealsAt);

    [LoggerMessage(1002, LogLevel.Debug, "Ticket issued for member {Member} of room {Room}.", EventName = "TicketIssued")]
    public static partial void TicketIssued(ILogger logger, RoomId room, MemberId member);

    [LoggerMessage(1003, LogLevel.Information, "Connection refused: {Code}.", EventName = "ConnectionRefused")]
    public static partial void ConnectionRefused(ILogger logger, string code);

    [LoggerMessage(1004, LogLevel.Debug, "Member {Member} of room {Room} connected with epoch {Epoch}.", EventName = "MemberConnected")]
    public static partial void MemberConnected(ILogger logger, RoomId room, MemberId member, long epoch);

    [LoggerMessage(1026, LogLevel.Debug, "Member {Member} of room {Room} connected with epoch {Epoch} to wait for admission (no hello).", EventName = "WaitingConnected")]
    public static partial void WaitingConnected(ILogger logger, RoomId room, MemberId member, long epoch);

    [LoggerMessage(1005, LogLevel.Debug, "Member {Member} of room {Room} disconnected (epoch {Epoch}).", EventName = "MemberDisconnected")]
    public static partial void MemberDisconnected(ILogger logger, RoomId room, MemberId member, long epoch);

    [LoggerMessage(1006, LogLevel.Information, "Member {Member} of room {Room} was {Decision} by the admin.", EventName = "AdmissionDecided")]
    public static partial void AdmissionDecided(ILogger logger, RoomId room, MemberId member, string decision);

    [LoggerMessage(1007, LogLevel.Debug, "Client error {Code}: {Message}", EventName = "ClientError")]
    public static partial void ClientError(ILogger logger, string code, string message);

    [LoggerMessage(1008, LogLevel.Error, "Unexpected failure handling a message; correlation id {CorrelationId}.", EventName = "UnexpectedFailure")]
    public static partial void UnexpectedFailure(ILogger logger, Exception exception, string correlationId);

    [LoggerMessage(1009, LogLevel.Information, "Room {Room} sealed; {Connections} connection(s) closed.", EventName = "RoomSealed")]
    public static partial void RoomSealed(ILogger logger, RoomId room, int connections);

    [LoggerMessage(1010, LogLevel.Warning, "A push was refused as too large ({Bytes} bytes).", EventName = "PushTooLarge")]
    public static partial void PushTooLarge(ILogger logger, int bytes);

    [LoggerMessage(1011, LogLevel.Debug, "Concurrent update of member {Member} of room {Room}; retrying.", EventName = "MemberWriteConflict")]
    public static partial void MemberWriteConflict(ILogger logger, RoomId room, MemberId member);

    [LoggerMessage(1012, LogLevel.Error, "Unexpected failure sealing room {Room}.", EventName = "SealFailed")]
    public static partial void SealFailed(ILogger logger, Exception exception, RoomId room);

    [LoggerMessage(1013, LogLevel.Debug, "The seal timer of room {Room} fired {Remaining} early; re-armed.", EventName = "SealRearmed")]
    public static partial void SealRearmed(ILogger logger, RoomId room, TimeSpan remaining);

    [LoggerMessage(1014, LogLevel.Warning, "A connection kept exceeding its message rate ({Refusals} refusals within {Window}); closed (1008).", EventName = "RateLimitClose")]
    public static partial void RateLimitClose(ILogger logger, int refusals, TimeSpan window);

    [LoggerMessage(1015, LogLevel.Information, "Member {Member} of room {Room} did not say hello within {Timeout}; its connection is closed (1008).", EventName = "HelloTimedOut")]
    public static partial void HelloTimedOut(ILogger logger, RoomId room, MemberId member, TimeSpan timeout);

    [LoggerMessage(1016, LogLevel.Debug, "A hello timer fired {Remaining} early; re-armed.", EventName = "HelloTimerRearmed")]
    public static partial void HelloTimerRearmed(ILogger logger, TimeSpan remaining);

    [LoggerMessage(1017, LogLevel.Debug, "Member {Member} knocked on room {Room}.", EventName = "Knocked")]
    public static partial void Knocked(ILogger logger, RoomId room, MemberId member);

    [LoggerMessage(1018, LogLevel.Information, "A knock on room {Room} was refused: {MaxPending} newcomers are waiting already.", EventName = "KnockRefused")]
    public static partial void KnockRefused(ILogger logger, RoomId room, int maxPending);

    [LoggerMessage(1019, LogLevel.Warning, "A signal to member {Member} of room {Room} could not be delivered (throttled, failing or timed out); the member stays.", EventName = "PushUndeliverable")]
    public static partial void PushUndeliverable(ILogger logger, RoomId room, MemberId member);

    [LoggerMessage(1020, LogLevel.Warning, "The room store is unavailable (throttled or failing after its retries); the caller was told to retry.", EventName = "StoreUnavailable")]
    public static partial void StoreUnavailable(ILogger logger, Exception exception);

    [LoggerMessage(1021, LogLevel.Information, "The connection of member {Member} (epoch {Epoch}) of room {Room} dropped; it may resume until {Until} (its peers are not told).", EventName = "MemberSuspended")]
    public static partial void MemberSuspended(ILogger logger, RoomId room, MemberId member, long epoch, DateTimeOffset until);

    [LoggerMessage(1022, LogLevel.Information, "Member {Member} of room {Room} resumed epoch {Epoch}; {Queued} queued messages delivered, {Dropped} dropped.", EventName = "MemberResumed")]
    public static partial void MemberResumed(ILogger logger, RoomId room, MemberId member, long epoch, int queued, int dropped);

    [LoggerMessage(1023, LogLevel.Information, "Member {Member} (epoch {Epoch}) of room {Room} did not resume within the grace period; it left ({Discarded} queued messages discarded).", EventName = "SuspensionEnded")]
    public static partial void SuspensionEnded(ILogger logger, RoomId room, MemberId member, long epoch, int discarded);

    [LoggerMessage(1024, LogLevel.Debug, "A grace timer fired {Remaining} early; re-armed.", EventName = "GraceTimerRearmed")]
    public static partial void GraceTimerRearmed(ILogger logger, TimeSpan remaining);

    [LoggerMessage(1025, LogLevel.Warning, "A message to suspended member {Member} of room {Room} was dropped: its resume queue is full.", EventName = "ResumeQueueFull")]
    public static partial void ResumeQueueFull(ILogger logger, RoomId room, MemberId member);
}
