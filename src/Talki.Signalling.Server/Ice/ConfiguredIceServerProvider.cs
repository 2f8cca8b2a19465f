using Microsoft.Extensions.Options;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Server.Ice;

/// <summary>The ICE servers from <see cref="TalkiSignallingOptions.IceServers"/>.</summary>
internal sealed class ConfiguredIceServerProvider : IIceServerProvider
{
    private readonly IceServer[] _servers;

    public ConfiguredIceServerProvider(IOptions<TalkiSignallingOptions> options) => _servers = [.. options.Value.IceServers];

    public IReadOnlyList<IceServer> GetIceServers(RoomRecord room, MemberRecord member) => _servers;
}
