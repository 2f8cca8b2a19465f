using System.Net.WebSockets;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Talki.Signalling.Client.Negotiation;

namespace Talki.Signalling.Client;

/// <summary>Creates <see cref="TalkiCall"/>s (registered by <c>services.AddTalkiClient(...)</c>).</summary>
public sealed class TalkiCallFactory
{
    private readonly Func<TalkiApiClient> _api;
    private readonly TalkiClientOptions _options;
    private readonly TimeProvider _time;
    private readonly ILoggerFactory _loggers;
    private readonly Func<Uri, CancellationToken, Task<WebSocket>>? _connect;

    /// <summary>Initializes a new instance of the <see cref="TalkiCallFactory"/> class (outside dependency injection).</summary>
    /// <param name="api">The API client.</param>
    /// <param name="options">The options, or <see langword="null"/> for the defaults.</param>
    /// <param name="timeProvider">The clock for pings and backoff, or <see langword="null"/> for the system clock.</param>
    /// <param name="loggerFactory">The logger factory, or <see langword="null"/> for none.</param>
    /// <exception cref="ArgumentNullException"><paramref name="api"/> is <see langword="null"/>.</exception>
    public TalkiCallFactory(TalkiApiClient api, TalkiClientOptions? options = null, TimeProvider? timeProvider = null, ILoggerFactory? loggerFactory = null)
        : this(() => api, options ?? new TalkiClientOptions(), timeProvider ?? TimeProvider.System, loggerFactory ?? NullLoggerFactory.Instance)
    {
        ArgumentNullException.ThrowIfNull(api);
    }

    internal TalkiCallFactory(Func<TalkiApiClient> api, TalkiClientOptions options, TimeProvider time, ILoggerFactory loggers, Func<Uri, CancellationToken, Task<WebSocket>>? connect = null)
    {
        options.Validate();
        _api = api;
        _options = options;
        _time = time;
        _loggers = loggers;
        _connect = connect;
    }

    /// <summary>Creates a call whose links use <paramref name="peers"/> (for example the browser's <c>RTCPeerConnection</c>).</summary>
    /// <param name="peers">Creates the peer connections.</param>
    /// <returns>A call not started (<see cref="TalkiConnectionState.Disconnected"/>, <see cref="TalkiAdmissionState.None"/>); start it with <see cref="TalkiCall.CreateRoomAsync"/> or <see cref="TalkiCall.JoinRoomAsync"/>.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="peers"/> is <see langword="null"/>.</exception>
    public TalkiCall Create(IPeerConnectionFactory peers)
    {
        ArgumentNullException.ThrowIfNull(peers);
        return new TalkiCall(_api(), peers, _options, _time, _loggers.CreateLogger<TalkiCall>(), _connect);
    }
}
