using Microsoft.Extensions.Logging;

namespace Talki.Signalling.Aws.Sessions;

/// <summary>The DynamoDB session cache's and key ring's log messages, with stable event ids (51xx).</summary>
internal static partial class SessionsLog
{
    [LoggerMessage(5101, LogLevel.Information, "Stored the data-protection key {FriendlyName} in the DynamoDB table {Table}.", EventName = "DataProtectionKeyStored")]
    public static partial void DataProtectionKeyStored(ILogger logger, string friendlyName, string table);

    [LoggerMessage(5102, LogLevel.Debug, "The sliding expiration of a cache entry in the DynamoDB table {Table} was not extended: the entry changed meanwhile.", EventName = "CacheRefreshSkipped")]
    public static partial void CacheRefreshSkipped(ILogger logger, string table);
}
