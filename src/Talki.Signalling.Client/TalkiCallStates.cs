namespace Talki.Signalling.Client;

/// <summary>
/// The state of a <see cref="TalkiCall"/>'s signalling connection (the WebSocket to the server), like SignalR's
/// <c>HubConnectionState</c>. It says nothing about whether this member is in the call: that is <see cref="TalkiAdmissionState"/>.
/// Once the room sealed the connection is <see cref="Disconnected"/> for good while the call goes on peer to peer.
/// </summary>
/// <remarks>
/// Transitions (any other is refused): <see cref="Disconnected"/> → <see cref="Connecting"/> (start);
/// <see cref="Connecting"/> → <see cref="Connected"/> | <see cref="Disconnected"/>;
/// <see cref="Connected"/> → <see cref="Reconnecting"/> | <see cref="Disconnected"/>;
/// <see cref="Reconnecting"/> → <see cref="Connected"/> | <see cref="Disconnected"/>.
/// A call starts once: after it reached <see cref="Disconnected"/> again it stays there.
/// </remarks>
public enum TalkiConnectionState
{
    /// <summary>Not connected: not started yet, or ended (see <see cref="TalkiCall.Disconnected"/> for why).</summary>
    Disconnected = 0,

    /// <summary>Getting the first ticket, opening the socket and waiting for the server's <c>welcome</c>.</summary>
    Connecting,

    /// <summary>Connected: messages go straight to the server.</summary>
    Connected,

    /// <summary>
    /// The signalling socket dropped; a fresh ticket is being fetched and the socket reopened. Every peer link stays up
    /// (media never needed the server) and messages are queued. Within the server's grace period the member resumes its
    /// epoch: peers notice nothing, and the queued messages go out. After it, the member rejoins with a new epoch (its
    /// approval is remembered) and its links are rebuilt.
    /// </summary>
    Reconnecting,
}

/// <summary>
/// Whether this member is in the room's call, as the admin and the room decided. Independent of <see cref="TalkiConnectionState"/>:
/// an admitted member stays <see cref="Admitted"/> while the socket reconnects.
/// </summary>
/// <remarks>
/// Transitions (any other is refused): <see cref="None"/> → <see cref="Waiting"/> | <see cref="Admitted"/> | <see cref="Denied"/> | <see cref="Left"/>;
/// <see cref="Waiting"/> → <see cref="Admitted"/> | <see cref="Denied"/> | <see cref="Left"/>;
/// <see cref="Admitted"/> → <see cref="Sealed"/> | <see cref="Left"/>;
/// <see cref="Sealed"/> → <see cref="Left"/>. <see cref="Denied"/> and <see cref="Left"/> are final.
/// </remarks>
public enum TalkiAdmissionState
{
    /// <summary>Not in a room yet (not started, or the server has not welcomed this member).</summary>
    None = 0,

    /// <summary>In the room, waiting for the admin's answer.</summary>
    Waiting,

    /// <summary>Admitted (the admin is admitted from the start): the mesh forms and heals through the server.</summary>
    Admitted,

    /// <summary>Admitted, and the room sealed: the server is gone, the call goes on peer to peer and renegotiates in-band.</summary>
    Sealed,

    /// <summary>The admin denied the request to join. Final.</summary>
    Denied,

    /// <summary>This member left (<see cref="TalkiCall.LeaveAsync"/> or <see cref="TalkiCall.DisposeAsync"/>). Final.</summary>
    Left,
}

/// <summary>Why the signalling connection of a <see cref="TalkiCall"/> reached <see cref="TalkiConnectionState.Disconnected"/>.</summary>
public enum TalkiDisconnectReason
{
    /// <summary>The application left (<see cref="TalkiCall.LeaveAsync"/> or <see cref="TalkiCall.DisposeAsync"/>).</summary>
    Left = 0,

    /// <summary>The application cancelled the start (the token given to <see cref="TalkiCall.CreateRoomAsync"/> or <see cref="TalkiCall.JoinRoomAsync"/>).</summary>
    Cancelled,

    /// <summary>The room sealed: the server is gone. An admitted member's call goes on peer to peer; a waiting one was never let in.</summary>
    RoomSealed,

    /// <summary>The admin denied the request to join.</summary>
    Denied,

    /// <summary>The call could not start, or could not reconnect (see <see cref="TalkiDisconnectedEventArgs.Error"/>).</summary>
    Failed,
}

/// <summary>Describes a change of <see cref="TalkiCall.ConnectionState"/>.</summary>
public sealed class TalkiConnectionStateChangedEventArgs : EventArgs
{
    /// <summary>Initializes a new instance of the <see cref="TalkiConnectionStateChangedEventArgs"/> class.</summary>
    /// <param name="oldState">The state before.</param>
    /// <param name="newState">The state now.</param>
    /// <param name="error">Why, for a drop or an end that was not asked for.</param>
    public TalkiConnectionStateChangedEventArgs(TalkiConnectionState oldState, TalkiConnectionState newState, SignallingError? error)
    {
        OldState = oldState;
        NewState = newState;
        Error = error;
    }

    /// <summary>Gets the state before the change.</summary>
    public TalkiConnectionState OldState { get; }

    /// <summary>Gets the state after the change.</summary>
    public TalkiConnectionState NewState { get; }

    /// <summary>Gets why the socket dropped or closed, when it was not the application's doing.</summary>
    public SignallingError? Error { get; }
}

/// <summary>Describes a change of <see cref="TalkiCall.AdmissionState"/>.</summary>
public sealed class TalkiAdmissionStateChangedEventArgs : EventArgs
{
    /// <summary>Initializes a new instance of the <see cref="TalkiAdmissionStateChangedEventArgs"/> class.</summary>
    /// <param name="oldState">The state before.</param>
    /// <param name="newState">The state now.</param>
    /// <param name="error">Why, for <see cref="TalkiAdmissionState.Denied"/>.</param>
    public TalkiAdmissionStateChangedEventArgs(TalkiAdmissionState oldState, TalkiAdmissionState newState, SignallingError? error)
    {
        OldState = oldState;
        NewState = newState;
        Error = error;
    }

    /// <summary>Gets the state before the change.</summary>
    public TalkiAdmissionState OldState { get; }

    /// <summary>Gets the state after the change.</summary>
    public TalkiAdmissionState NewState { get; }

    /// <summary>Gets the server's reason, for <see cref="TalkiAdmissionState.Denied"/>.</summary>
    public SignallingError? Error { get; }
}

/// <summary>Describes the end of a <see cref="TalkiCall"/>'s signalling connection.</summary>
public sealed class TalkiDisconnectedEventArgs : EventArgs
{
    /// <summary>Initializes a new instance of the <see cref="TalkiDisconnectedEventArgs"/> class.</summary>
    /// <param name="reason">Why the connection ended.</param>
    /// <param name="error">The server's or the transport's error, when there is one.</param>
    public TalkiDisconnectedEventArgs(TalkiDisconnectReason reason, SignallingError? error)
    {
        Reason = reason;
        Error = error;
    }

    /// <summary>Gets why the connection ended.</summary>
    public TalkiDisconnectReason Reason { get; }

    /// <summary>Gets the error behind <see cref="Reason"/> (its stable <see cref="SignallingError.Code"/> and a message), when there is one.</summary>
    public SignallingError? Error { get; }
}

/// <summary>A member of the room, for <see cref="TalkiCall.AdmissionRequested"/>, <see cref="TalkiCall.MemberJoined"/> and <see cref="TalkiCall.MemberLeft"/>.</summary>
public sealed class TalkiMemberEventArgs : EventArgs
{
    /// <summary>Initializes a new instance of the <see cref="TalkiMemberEventArgs"/> class.</summary>
    /// <param name="member">The member's id.</param>
    /// <param name="displayName">The member's display name.</param>
    /// <param name="verified">Whether the member's identity is verified.</param>
    public TalkiMemberEventArgs(MemberId member, string displayName, bool verified)
    {
        Member = member;
        DisplayName = displayName;
        Verified = verified;
    }

    /// <summary>Gets the member's id (pass it to <see cref="TalkiCall.AdmitAsync"/> or <see cref="TalkiCall.DenyAsync"/>).</summary>
    public MemberId Member { get; }

    /// <summary>Gets the member's display name.</summary>
    public string DisplayName { get; }

    /// <summary>Gets a value indicating whether the member's identity is verified (show a tick).</summary>
    public bool Verified { get; }
}
