using Talki.Signalling.Client.Negotiation;

namespace Talki.Signalling.Client;

/// <summary>What kind of problem a <see cref="TalkiCallErrorEventArgs"/> reports.</summary>
public enum TalkiCallErrorKind
{
    /// <summary>The server refused a message (its <see cref="TalkiCallErrorEventArgs.Code"/> is the server's code).</summary>
    ServerError = 0,

    /// <summary>A frame from the server was not valid protocol JSON; it was skipped, and the link it concerned (if any) reset.</summary>
    MalformedMessage,

    /// <summary>
    /// A link's negotiation failed (see <see cref="TalkiCallErrorEventArgs.Negotiation"/>); other links are untouched. Only the
    /// current link to a peer reports: one already replaced (reset) or removed says nothing of what it still had in flight.
    /// </summary>
    Negotiation,

    /// <summary>The signalling connection dropped or closed (see <see cref="TalkiCallErrorEventArgs.Code"/>).</summary>
    Connection,
}

/// <summary>A problem during a call. Errors are reported, never thrown into the application.</summary>
public sealed class TalkiCallErrorEventArgs : EventArgs
{
    /// <summary>Initializes a new instance of the <see cref="TalkiCallErrorEventArgs"/> class.</summary>
    /// <param name="kind">The kind.</param>
    /// <param name="code">The stable error code, when there is one.</param>
    /// <param name="message">A human-readable description.</param>
    public TalkiCallErrorEventArgs(TalkiCallErrorKind kind, SignallingErrorCode? code, string message)
    {
        Kind = kind;
        Code = code;
        Message = message;
    }

    /// <summary>Gets the kind.</summary>
    public TalkiCallErrorKind Kind { get; }

    /// <summary>Gets the stable error code (the server's for <see cref="TalkiCallErrorKind.ServerError"/>), when there is one.</summary>
    public SignallingErrorCode? Code { get; }

    /// <summary>Gets a human-readable description.</summary>
    public string Message { get; }

    /// <summary>Gets the remote member the problem concerns, when it concerns one link.</summary>
    public MemberId? Peer { get; init; }

    /// <summary>Gets the negotiation failure, for <see cref="TalkiCallErrorKind.Negotiation"/>.</summary>
    public NegotiationErrorKind? Negotiation { get; init; }

    /// <summary>Gets the correlation id of the message the server refused, for <see cref="TalkiCallErrorKind.ServerError"/>.</summary>
    public string? CorrelationId { get; init; }

    /// <summary>Gets the type of the message the server refused (<c>admit</c>, <c>signal</c>…), when known.</summary>
    public string? RequestType { get; init; }

    /// <summary>Gets the server's reference for an internal error (quote it to the operator).</summary>
    public string? Reference { get; init; }
}
