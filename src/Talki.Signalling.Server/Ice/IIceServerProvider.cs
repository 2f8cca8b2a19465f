using Talki.Signalling.Protocol;

namespace Talki.Signalling.Server.Ice;

/// <summary>Chooses the ICE servers a member receives in its <c>welcome</c> (fresh on every connect, so a rejoin refreshes TURN credentials).</summary>
internal interface IIceServerProvider
{
    /// <summary>Gets the ICE servers for a member of a room.</summary>
    /// <param name="room">The room.</param>
    /// <param name="member">The member being welcomed.</param>
    /// <returns>The servers.</returns>
    IReadOnlyList<IceServer> GetIceServers(RoomRecord room, MemberRecord member);
}
