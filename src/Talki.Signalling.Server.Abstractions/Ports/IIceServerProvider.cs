using Talki.Signalling.Protocol;

namespace Talki.Signalling.Ports;

/// <summary>
/// Chooses the ICE servers (STUN, TURN) a member receives in its <c>welcome</c>. It is asked on every connect, so a
/// rejoin refreshes short-lived TURN credentials. Replace it to mint per-user credentials from a TURN service: register
/// your implementation as a singleton <see cref="IIceServerProvider"/> after <c>AddTalkiSignalling</c>.
/// </summary>
/// <remarks>
/// Called once per <c>hello</c>, on the connection's path: keep it fast, cache what you can, and honour
/// the cancellation token. An exception fails that <c>hello</c> with the generic <c>internal</c> error
/// (logged with a correlation id); the client retries with a fresh ticket.
/// </remarks>
public interface IIceServerProvider
{
    /// <summary>Gets the ICE servers for a member of a room.</summary>
    /// <param name="room">The room.</param>
    /// <param name="member">The member being welcomed.</param>
    /// <param name="cancellationToken">Cancels the lookup.</param>
    /// <returns>The servers, in the order the browser should try them.</returns>
    ValueTask<IReadOnlyList<IceServer>> GetIceServersAsync(RoomRecord room, MemberRecord member, CancellationToken cancellationToken = default);
}
