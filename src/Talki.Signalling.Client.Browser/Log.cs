using Microsoft.Extensions.Logging;

namespace Talki.Signalling.Client.Browser;

/// <summary>The adapter's log messages (event ids 5xxx).</summary>
internal static partial class Log
{
    [LoggerMessage(5001, LogLevel.Warning, "Handling a peer connection event for member {Peer} failed.", EventName = "PeerEventFailed")]
    public static partial void EventFailed(ILogger logger, MemberId peer, Exception exception);

    [LoggerMessage(5002, LogLevel.Debug, "Closing the peer connection to member {Peer} failed.", EventName = "PeerCloseFailed")]
    public static partial void CloseFailed(ILogger logger, MemberId peer, Exception exception);

    [LoggerMessage(5003, LogLevel.Debug, "Peer connection created for member {Peer} (epoch {Epoch}).", EventName = "PeerCreated")]
    public static partial void PeerCreated(ILogger logger, MemberId peer, long epoch);

    [LoggerMessage(5004, LogLevel.Information, "Local media started: {Status} ({Error}).", EventName = "LocalMediaStarted")]
    public static partial void LocalMediaStarted(ILogger logger, LocalMediaStatus status, string? error);

    [LoggerMessage(5005, LogLevel.Warning, "A remote track handler failed.", EventName = "RemoteTrackHandlerFailed")]
    public static partial void RemoteTrackHandlerFailed(ILogger logger, Exception exception);

    [LoggerMessage(5006, LogLevel.Warning, "Reading the {Side} description of the peer connection to member {Peer} failed; the last one read stands.", EventName = "PeerDescriptionReadFailed")]
    public static partial void DescriptionReadFailed(ILogger logger, string side, MemberId peer, Exception exception);
}
