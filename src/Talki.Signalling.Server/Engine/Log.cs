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

    [LoggerMessage(2001, LogLevel.Debug, "Gateway connection opened.", EventName = "GatewayConnectionOpened")]
    public static partial void GatewayConnectionOpened(ILogger logger);

    [LoggerMessage(2002, LogLevel.Debug, "Gateway connection closed: {Reason}.", EventName = "GatewayConnectionClosed")]
    public static partial void GatewayConnectionClosed(ILogger logger, string reason);

    [LoggerMessage(2003, LogLevel.Warning, "Gateway connection closed: its outbound queue is full (slow consumer).", EventName = "SlowConsumer")]
    public static partial void SlowConsumer(ILogger logger);

    [LoggerMessage(2004, LogLevel.Information, "Gateway refused an oversized message of at least {Bytes} bytes.", EventName = "MessageTooLarge")]
    public static partial void MessageTooLarge(ILogger logger, long bytes);

    [LoggerMessage(2005, LogLevel.Error, "Unexpected failure in the WebSocket gateway; correlation id {CorrelationId}.", EventName = "GatewayFailure")]
    public static partial void GatewayFailure(ILogger logger, Exception exception, string correlationId);

    [LoggerMessage(3001, LogLevel.Error, "Unexpected failure in the HTTP API; correlation id {CorrelationId}.", EventName = "HttpFailure")]
    public static partial void HttpFailure(ILogger logger, Exception exception, string correlationId);

    [LoggerMessage(3002, LogLevel.Information, "Session started for a {Kind} user.", EventName = "SessionStarted")]
    public static partial void SessionStarted(ILogger logger, string kind);

    [LoggerMessage(3010, LogLevel.Information, "Google sign-in refused: {Code}.", EventName = "GoogleSignInRefused")]
    public static partial void GoogleSignInRefused(ILogger logger, string code);

    [LoggerMessage(3011, LogLevel.Debug, "Fetched {Count} Google signing key(s); they are cached for {Lifetime}.", EventName = "GoogleKeysFetched")]
    public static partial void GoogleKeysFetched(ILogger logger, int count, TimeSpan lifetime);

    [LoggerMessage(3012, LogLevel.Warning, "Google's signing keys could not be fetched from {KeysUrl}.", EventName = "GoogleKeysUnavailable")]
    public static partial void GoogleKeysUnavailable(ILogger logger, Exception exception, Uri keysUrl);

    [LoggerMessage(3013, LogLevel.Debug, "A token names the unknown signing key {KeyId}; the keys were fetched less than a minute ago, so they are not fetched again.", EventName = "GoogleKeyUnknownNotRefetched")]
    public static partial void GoogleKeyUnknownNotRefetched(ILogger logger, string keyId);
}
