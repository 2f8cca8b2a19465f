namespace Talki.Signalling.Ports;

/// <summary>
/// Thrown by an <see cref="IRoomStore"/> when the backing store is temporarily unavailable after its own retries
/// (throttled, overloaded or unreachable). The engine answers the caller <c>service_unavailable</c> (HTTP 503) and keeps
/// every connection: it is an expected, transient failure, not a bug. Store implementations translate their
/// provider's throttling and server errors into it; anything else stays a bug.
/// </summary>
public sealed class RoomStoreUnavailableException : Exception
{
    /// <summary>Initializes a new instance of the <see cref="RoomStoreUnavailableException"/> class.</summary>
    public RoomStoreUnavailableException()
        : base("The room store is temporarily unavailable.")
    {
    }

    /// <summary>Initializes a new instance of the <see cref="RoomStoreUnavailableException"/> class.</summary>
    /// <param name="message">What happened.</param>
    public RoomStoreUnavailableException(string message)
        : base(message)
    {
    }

    /// <summary>Initializes a new instance of the <see cref="RoomStoreUnavailableException"/> class.</summary>
    /// <param name="message">What happened.</param>
    /// <param name="innerException">The provider's exception.</param>
    public RoomStoreUnavailableException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
