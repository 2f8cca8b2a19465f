using System.Net.WebSockets;
using Talki.Signalling.Ports;

namespace Talki.Signalling.Server.AspNetCore;

/// <summary>
/// The self-hosted gateway's link to the other instances of the host (a scale-out backplane such as Redis pub/sub):
/// the gateway registers every socket it holds and hands it the pushes and closes for sockets it does not hold. Without
/// a backplane (one instance), a socket that is not here is gone.
/// </summary>
internal interface IGatewayBackplane
{
    /// <summary>Records that this instance holds <paramref name="connectionId"/>, before the socket is accepted.</summary>
    /// <exception cref="RoomStoreUnavailableException">The backplane is unavailable: the upgrade is refused with 503.</exception>
    ValueTask RegisterAsync(string connectionId, CancellationToken cancellationToken);

    /// <summary>Forgets <paramref name="connectionId"/> after its socket has ended (best effort: registrations also expire).</summary>
    ValueTask UnregisterAsync(string connectionId);

    /// <summary>Delivers a push to a socket this instance does not hold: through the instance that holds it, or <see cref="PushOutcome.Gone"/> when no instance does.</summary>
    ValueTask<PushOutcome> PushAsync(string connectionId, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken);

    /// <summary>Asks the instance that holds <paramref name="connectionId"/> to close it (no-op when none does).</summary>
    ValueTask CloseAsync(string connectionId, WebSocketCloseStatus status, string reason, CancellationToken cancellationToken);
}
