using Talki.Signalling.Protocol;

namespace Talki.Signalling.Client.Negotiation;

/// <summary>The signalling state of a peer connection (W3C <c>RTCSignalingState</c>, without provisional answers).</summary>
public enum PeerSignalingState
{
    /// <summary><c>stable</c>: no offer/answer exchange is in progress.</summary>
    Stable = 0,

    /// <summary><c>have-local-offer</c>: a local offer was applied and awaits an answer.</summary>
    HaveLocalOffer,

    /// <summary><c>have-remote-offer</c>: a remote offer was applied and awaits a local answer.</summary>
    HaveRemoteOffer,

    /// <summary><c>closed</c>: the connection was closed.</summary>
    Closed,
}

/// <summary>The aggregate connection state of a peer connection (W3C <c>RTCPeerConnectionState</c>).</summary>
public enum PeerConnectionState
{
    /// <summary><c>new</c>.</summary>
    New = 0,

    /// <summary><c>connecting</c>.</summary>
    Connecting,

    /// <summary><c>connected</c>.</summary>
    Connected,

    /// <summary><c>disconnected</c>.</summary>
    Disconnected,

    /// <summary><c>failed</c>: an ICE restart is needed.</summary>
    Failed,

    /// <summary><c>closed</c>.</summary>
    Closed,
}

/// <summary>
/// The ICE gathering state of a peer connection (W3C <c>RTCIceGatheringState</c>,
/// https://w3c.github.io/webrtc-pc/#dom-rtcicegatheringstate; MDN:
/// https://developer.mozilla.org/en-US/docs/Web/API/RTCPeerConnection/iceGatheringState).
/// </summary>
public enum PeerIceGatheringState
{
    /// <summary><c>new</c>: no gathering has started (or there are no transports).</summary>
    New = 0,

    /// <summary><c>gathering</c>: the ICE agent is gathering candidates.</summary>
    Gathering,

    /// <summary><c>complete</c>: every transport finished gathering; it reverts to <see cref="Gathering"/> when a new generation starts (an ICE restart).</summary>
    Complete,
}

/// <summary>The kind of failure a <see cref="IPeerConnection"/> operation reports, as the W3C DOMException names.</summary>
public enum PeerConnectionErrorKind
{
    /// <summary><c>InvalidStateError</c>: the operation is not allowed in the current state.</summary>
    InvalidState = 0,

    /// <summary><c>RTCError(sdp-syntax-error)</c> or <c>InvalidAccessError</c>: the description is malformed or was rejected.</summary>
    InvalidDescription,

    /// <summary><c>OperationError</c>: the operation failed (for example a candidate matching no description).</summary>
    OperationError,
}

/// <summary>A failed <see cref="IPeerConnection"/> operation.</summary>
public sealed class PeerConnectionException : Exception
{
    /// <summary>Initializes a new instance of the <see cref="PeerConnectionException"/> class.</summary>
    public PeerConnectionException()
    {
    }

    /// <summary>Initializes a new instance of the <see cref="PeerConnectionException"/> class.</summary>
    /// <param name="message">The message.</param>
    public PeerConnectionException(string message)
        : base(message)
    {
    }

    /// <summary>Initializes a new instance of the <see cref="PeerConnectionException"/> class.</summary>
    /// <param name="message">The message.</param>
    /// <param name="innerException">The cause.</param>
    public PeerConnectionException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Initializes a new instance of the <see cref="PeerConnectionException"/> class.</summary>
    /// <param name="kind">The kind of failure.</param>
    /// <param name="message">The message.</param>
    public PeerConnectionException(PeerConnectionErrorKind kind, string message)
        : base(message) => Kind = kind;

    /// <summary>Gets the kind of failure.</summary>
    public PeerConnectionErrorKind Kind { get; }
}

/// <summary>A message received on a data channel.</summary>
/// <param name="Label">The channel's label.</param>
/// <param name="Text">The text received.</param>
public sealed record DataChannelMessage(string Label, string Text);

/// <summary>A data channel of a peer connection (W3C <c>RTCDataChannel</c>, text only).</summary>
public interface IPeerDataChannel
{
    /// <summary>Gets the channel's label.</summary>
    string Label { get; }

    /// <summary>Gets a value indicating whether the channel is open.</summary>
    bool IsOpen { get; }

    /// <summary>Sends a text message.</summary>
    /// <param name="text">The text.</param>
    /// <param name="cancellationToken">Cancels the send.</param>
    /// <returns>A task that completes when the message was queued.</returns>
    /// <exception cref="PeerConnectionException">The channel is not open (<see cref="PeerConnectionErrorKind.InvalidState"/>).</exception>
    ValueTask SendAsync(string text, CancellationToken cancellationToken = default);
}

/// <summary>
/// The port to a WebRTC peer connection (the subset of W3C <c>RTCPeerConnection</c> that perfect negotiation needs).
/// Implementations must follow JSEP: <see cref="SetLocalDescriptionAsync"/> without an argument creates the offer or answer
/// the state calls for, and <see cref="SetRemoteDescriptionAsync"/> with an offer in <see cref="PeerSignalingState.HaveLocalOffer"/>
/// rolls the local offer back implicitly. Events may be raised on any thread, but never concurrently for one connection.
/// </summary>
public interface IPeerConnection : IDisposable
{
    /// <summary>Raised when the connection needs an offer/answer exchange (<c>negotiationneeded</c>); only raised in <see cref="PeerSignalingState.Stable"/>.</summary>
    event EventHandler? NegotiationNeeded;

    /// <summary>
    /// Raised for each gathered local ICE candidate (<c>icecandidate</c>); an empty candidate line ends gathering. The browser's
    /// null candidate (all transports done) is an empty line with neither <see cref="IceCandidate.SdpMid"/> nor
    /// <see cref="IceCandidate.SdpMLineIndex"/>; an empty line with them is one transport's end-of-candidates.
    /// </summary>
    event EventHandler<IceCandidate>? LocalIceCandidate;

    /// <summary>
    /// Raised when <see cref="IceGatheringState"/> changes (<c>icegatheringstatechange</c>). The mesh sends a new local
    /// description with the candidates gathered so far once gathering completes (or its gather window ends). The default
    /// implementation never raises it: such a connection's descriptions wait for the null candidate or the window.
    /// </summary>
    event EventHandler<PeerIceGatheringState>? IceGatheringStateChanged
    {
        add { }
        remove { }
    }

    /// <summary>Gets the ICE gathering state (<c>iceGatheringState</c>); the default implementation always reports <see cref="PeerIceGatheringState.New"/>.</summary>
    PeerIceGatheringState IceGatheringState => PeerIceGatheringState.New;

    /// <summary>Raised when <see cref="SignalingState"/> changes (<c>signalingstatechange</c>).</summary>
    event EventHandler<PeerSignalingState>? SignalingStateChanged;

    /// <summary>Raised when <see cref="ConnectionState"/> changes (<c>connectionstatechange</c>), including to <see cref="PeerConnectionState.Failed"/>.</summary>
    event EventHandler<PeerConnectionState>? ConnectionStateChanged;

    /// <summary>Raised when a data channel (local or remotely created) receives a message.</summary>
    event EventHandler<DataChannelMessage>? DataChannelMessageReceived;

    /// <summary>
    /// Raised when a data channel opens, whether this side created it or the remote side did (<c>datachannel</c> + <c>open</c>).
    /// The mesh uses it to renegotiate in-band once the server is gone.
    /// </summary>
    event EventHandler<IPeerDataChannel>? DataChannelOpened;

    /// <summary>Gets the signalling state.</summary>
    PeerSignalingState SignalingState { get; }

    /// <summary>Gets the connection state.</summary>
    PeerConnectionState ConnectionState { get; }

    /// <summary>Gets the pending local description if any, else the current one.</summary>
    SessionDescription? LocalDescription { get; }

    /// <summary>Gets the pending remote description if any, else the current one.</summary>
    SessionDescription? RemoteDescription { get; }

    /// <summary>Creates and applies the offer or answer the state calls for (W3C <c>setLocalDescription()</c> with no argument).</summary>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <returns>A task that completes when the description is applied; read it from <see cref="LocalDescription"/>.</returns>
    /// <exception cref="PeerConnectionException">The state forbids it.</exception>
    ValueTask SetLocalDescriptionAsync(CancellationToken cancellationToken = default);

    /// <summary>Applies a remote description; an offer in <see cref="PeerSignalingState.HaveLocalOffer"/> rolls the local offer back first.</summary>
    /// <param name="description">The remote description (offer, answer or rollback).</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <returns>A task that completes when the description is applied.</returns>
    /// <exception cref="PeerConnectionException">The description is malformed or rejected, or the state forbids it.</exception>
    ValueTask SetRemoteDescriptionAsync(SessionDescription description, CancellationToken cancellationToken = default);

    /// <summary>Adds a remote ICE candidate.</summary>
    /// <param name="candidate">The candidate.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <returns>A task that completes when the candidate is added.</returns>
    /// <exception cref="PeerConnectionException"><see cref="PeerConnectionErrorKind.InvalidState"/> when there is no remote description; <see cref="PeerConnectionErrorKind.OperationError"/> when it matches no description.</exception>
    ValueTask AddIceCandidateAsync(IceCandidate candidate, CancellationToken cancellationToken = default);

    /// <summary>Asks for an ICE restart at the next offer (W3C <c>restartIce()</c>); raises <see cref="NegotiationNeeded"/>.</summary>
    void RestartIce();

    /// <summary>Creates a data channel (used for in-band renegotiation once the server is gone).</summary>
    /// <param name="label">The label.</param>
    /// <returns>The channel.</returns>
    IPeerDataChannel CreateDataChannel(string label);

    /// <summary>Closes the connection; further operations fail with <see cref="PeerConnectionErrorKind.InvalidState"/>.</summary>
    void Close();
}

/// <summary>Describes the link a peer connection is created for.</summary>
/// <param name="Peer">The remote member.</param>
/// <param name="PeerEpoch">The remote member's connection epoch.</param>
/// <param name="Offerer">Whether this side makes the first offer.</param>
/// <param name="Polite">Whether this side is the polite peer.</param>
public sealed record PeerLinkPlan(MemberId Peer, long PeerEpoch, bool Offerer, bool Polite)
{
    /// <summary>Gets the STUN/TURN servers the connection should use (from the server's <c>welcome</c>).</summary>
    public IReadOnlyList<IceServer> IceServers { get; init; } = [];
}

/// <summary>Creates peer connections for the mesh.</summary>
public interface IPeerConnectionFactory
{
    /// <summary>Creates a new peer connection for one link.</summary>
    /// <param name="plan">The link.</param>
    /// <returns>A new connection in <see cref="PeerSignalingState.Stable"/>.</returns>
    IPeerConnection Create(PeerLinkPlan plan);
}
