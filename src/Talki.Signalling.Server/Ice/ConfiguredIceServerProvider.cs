using Microsoft.Extensions.Options;
using Talki.Signalling.Ports;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Server.Ice;

/// <summary>
/// The ICE servers from <see cref="TalkiSignallingOptions.IceServers"/>, followed, when <see cref="TalkiTurnOptions.Urls"/>
/// is not empty, by one TURN server with ephemeral credentials (<see cref="TurnRestCredentials"/>) minted for the member.
/// </summary>
/// <remarks>
/// The credentials expire at the room's <see cref="RoomRecord.SealsAt"/> plus <see cref="TalkiTurnOptions.CredentialMargin"/>:
/// the call goes on after the join window closes, but not for ever. They are minted on every call, that is on every
/// <c>welcome</c>, so they always reflect the current secret and room.
/// </remarks>
internal sealed class ConfiguredIceServerProvider : IIceServerProvider
{
    private readonly IceServer[] _servers;
    private readonly string[] _turnUrls;
    private readonly string _sharedSecret = string.Empty;
    private readonly TimeSpan _credentialMargin;

    public ConfiguredIceServerProvider(IOptions<TalkiSignallingOptions> options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var value = options.Value;
        _servers = [.. value.IceServers];
        _turnUrls = [.. value.Turn.Urls];
        _credentialMargin = value.Turn.CredentialMargin;
        if (_turnUrls.Length > 0)
        {
            if (string.IsNullOrEmpty(value.Turn.SharedSecret))
            {
                throw new InvalidOperationException("Turn.SharedSecret is required when Turn.Urls is not empty.");
            }

            _sharedSecret = value.Turn.SharedSecret;
        }
    }

    public ValueTask<IReadOnlyList<IceServer>> GetIceServersAsync(RoomRecord room, MemberRecord member, CancellationToken cancellationToken = default)
        => new(GetIceServers(room, member));

    internal IReadOnlyList<IceServer> GetIceServers(RoomRecord room, MemberRecord member)
    {
        ArgumentNullException.ThrowIfNull(room);
        ArgumentNullException.ThrowIfNull(member);
        if (_turnUrls.Length == 0)
        {
            return _servers;
        }

        var (username, credential) = TurnRestCredentials.Mint(_sharedSecret, member.Id, room.SealsAt + _credentialMargin);
        return [.. _servers, new IceServer { Urls = _turnUrls, Username = username, Credential = credential }];
    }
}
