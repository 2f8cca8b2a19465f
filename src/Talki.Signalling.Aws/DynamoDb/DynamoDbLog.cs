using Microsoft.Extensions.Logging;

namespace Talki.Signalling.Aws.DynamoDb;

/// <summary>The DynamoDB store's log messages, with stable event ids (5xxx).</summary>
internal static partial class DynamoDbLog
{
    [LoggerMessage(5001, LogLevel.Information, "Created the DynamoDB table {Table}.", EventName = "TableCreated")]
    public static partial void TableCreated(ILogger logger, string table);

    [LoggerMessage(5002, LogLevel.Warning, "The DynamoDB endpoint does not support time to live on table {Table} ({Reason}); expired items stay until deleted, and reads ignore them.", EventName = "TimeToLiveUnsupported")]
    public static partial void TimeToLiveUnsupported(ILogger logger, string table, string reason);

    [LoggerMessage(5003, LogLevel.Information, "Enabled time to live on attribute {Attribute} of the DynamoDB table {Table}.", EventName = "TimeToLiveEnabled")]
    public static partial void TimeToLiveEnabled(ILogger logger, string table, string attribute);

    [LoggerMessage(5004, LogLevel.Warning, "Member {Member} of room {Room} had its user guard but no member item; completed the interrupted add.", EventName = "InterruptedAddCompleted")]
    public static partial void InterruptedAddCompleted(ILogger logger, RoomId room, MemberId member);
}
