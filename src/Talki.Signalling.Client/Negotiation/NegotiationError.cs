using Talki.Signalling.Protocol;

namespace Talki.Signalling.Client.Negotiation;

/// <summary>What went wrong on a link.</summary>
public enum NegotiationErrorKind
{
    /// <summary>The peer connection rejected a remote description (malformed or refused); the link was reset.</summary>
    RemoteDescriptionRejected = 0,

    /// <summary>Creating or applying a local description failed; the link was reset.</summary>
    LocalDescriptionFailed,

    /// <summary>A remote ICE candidate was rejected; the link goes on.</summary>
    CandidateRejected,

    /// <summary>Sending a signal failed; the link goes on.</summary>
    SendFailed,

    /// <summary>A message on the link's control data channel was not valid JSON of the protocol; it was ignored.</summary>
    InBandMessageMalformed,

    /// <summary>A signalling frame concerning this link was malformed; the link was reset.</summary>
    MalformedSignal,

    /// <summary>The link did not connect within the link-up timeout; it was reset (or, after three resets in a row, left as it is).</summary>
    LinkUpTimedOut,

    /// <summary>The peer-connection factory threw while creating this link's connection; the link is not created, other links are untouched.</summary>
    ConnectionCreationFailed,
}

/// <summary>Describes an error on one link of the mesh.</summary>
internal sealed class NegotiationErrorEventArgs : EventArgs
{
    /// <summary>Initializes a new instance of the <see cref="NegotiationErrorEventArgs"/> class.</summary>
    /// <param name="peer">The remote member.</param>
    /// <param name="peerEpoch">The remote member's epoch.</param>
    /// <param name="kind">What went wrong.</param>
    /// <param name="exception">The cause.</param>
    public NegotiationErrorEventArgs(MemberId peer, long peerEpoch, NegotiationErrorKind kind, Exception? exception)
    {
        Peer = peer;
        PeerEpoch = peerEpoch;
        Kind = kind;
        Exception = exception;
    }

    /// <summary>Gets the remote member.</summary>
    public MemberId Peer { get; }

    /// <summary>Gets the remote member's epoch.</summary>
    public long PeerEpoch { get; }

    /// <summary>Gets what went wrong.</summary>
    public NegotiationErrorKind Kind { get; }

    /// <summary>Gets the cause, if any.</summary>
    public Exception? Exception { get; }
}

/// <summary>A snapshot of one link of the mesh.</summary>
/// <param name="Peer">The remote member.</param>
/// <param name="PeerEpoch">The remote member's epoch.</param>
/// <param name="Offerer">Whether this side made the first offer.</param>
/// <param name="Polite">Whether this side is polite.</param>
/// <param name="SignalingState">The signalling state.</param>
/// <param name="ConnectionState">The connection state.</param>
public sealed record PeerLinkState(MemberId Peer, long PeerEpoch, bool Offerer, bool Polite, PeerSignalingState SignalingState, PeerConnectionState ConnectionState);
