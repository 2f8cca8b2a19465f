using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.JSInterop;
using Talki.Signalling.Client.Negotiation;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Client.Browser;

/// <summary>An <see cref="IPeerConnection"/> over the browser's <c>RTCPeerConnection</c> (one per link), driven through <c>talki-webrtc.js</c>.</summary>
internal sealed class BrowserPeerConnection : IPeerConnection
{
    private readonly TalkiWebRtcInterop _interop;
    private readonly BrowserMedia _media;
    private readonly ILogger _logger;
    private readonly DotNetObjectReference<BrowserPeerConnection>? _self;
    private readonly Dictionary<string, BrowserPeerDataChannel> _channels = new(StringComparer.Ordinal);
    private readonly int _id;
    private PeerStateSnapshot _state = new(0, PeerSignalingState.Stable, PeerConnectionState.New, PeerIceGatheringState.New, 0, 0, null);
    // The descriptions last read from the browser, with their versions: read again only when a snapshot reports a newer
    // version (version 0 is no description, as the module starts).
    private (long Version, SessionDescription? Value) _local;
    private (long Version, SessionDescription? Value) _remote;
    private bool _closed;

    public BrowserPeerConnection(TalkiWebRtcInterop interop, BrowserMedia media, ILogger logger, PeerLinkPlan plan, BrowserIceTransportPolicy policy = BrowserIceTransportPolicy.All)
    {
        _interop = interop;
        _media = media;
        _logger = logger;
        Plan = plan;
        var calls = interop.Calls;
        // In the browser the module calls PeerEvents directly, and a reference per link would only be created and disposed.
        _self = calls.EventsByReference ? DotNetObjectReference.Create(this) : null;
        _id = calls.CreatePeer(_self, IceServersJson(plan.IceServers), plan.Peer.Value, plan.PeerEpoch, policy == BrowserIceTransportPolicy.Relay ? "relay" : "all");
        PeerEvents.Register(_id, this); // before the browser runs any of the link's events (they are queued tasks)
    }

    public event EventHandler? NegotiationNeeded;

    public event EventHandler<IceCandidate>? LocalIceCandidate;

    public event EventHandler<PeerSignalingState>? SignalingStateChanged;

    public event EventHandler<PeerIceGatheringState>? IceGatheringStateChanged;

    public event EventHandler<PeerConnectionState>? ConnectionStateChanged;

    public event EventHandler<DataChannelMessage>? DataChannelMessageReceived;

    public event EventHandler<IPeerDataChannel>? DataChannelOpened;

    public PeerLinkPlan Plan { get; }

    /// <summary>Gets the module's id of the link.</summary>
    internal int Id => _id;

    public PeerSignalingState SignalingState => _closed ? PeerSignalingState.Closed : _state.SignalingState;

    public PeerConnectionState ConnectionState => _closed ? PeerConnectionState.Closed : _state.ConnectionState;

    public PeerIceGatheringState IceGatheringState => _state.IceGatheringState;

    /// <remarks>Read from the browser when the last snapshot reports a version not read yet (one synchronous call), else from the last read.</remarks>
    public SessionDescription? LocalDescription => Read(ref _local, _state.LocalVersion, "local");

    /// <remarks>Read from the browser when the last snapshot reports a version not read yet (one synchronous call), else from the last read.</remarks>
    public SessionDescription? RemoteDescription => Read(ref _remote, _state.RemoteVersion, "remote");

    public ValueTask SetLocalDescriptionAsync(CancellationToken cancellationToken = default) =>
        RunAsync(calls => calls.SetLocalDescriptionAsync(_id), cancellationToken);

    public ValueTask SetRemoteDescriptionAsync(SessionDescription description, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(description);
        var type = description.Type switch
        {
            SdpType.Offer => "offer",
            SdpType.Answer => "answer",
            SdpType.Pranswer => "pranswer",
            _ => "rollback",
        };
        var sdp = description.Sdp ?? string.Empty;
        return RunAsync(calls => calls.SetRemoteDescriptionAsync(_id, type, sdp), cancellationToken);
    }

    public ValueTask AddIceCandidateAsync(IceCandidate candidate, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(candidate);
        return RunAsync(calls => calls.AddIceCandidateAsync(_id, candidate.Candidate, candidate.SdpMid, candidate.SdpMLineIndex, candidate.UsernameFragment), cancellationToken);
    }

    public void RestartIce()
    {
        ThrowIfClosed();
        _interop.Calls.RestartIce(_id);
    }

    public IPeerDataChannel CreateDataChannel(string label)
    {
        ArgumentNullException.ThrowIfNull(label);
        ThrowIfClosed();
        var readyState = _interop.Calls.CreateDataChannel(_id, label);
        var channel = Channel(label);
        channel.IsOpen = string.Equals(readyState, "open", StringComparison.Ordinal);
        return channel;
    }

    public void Close()
    {
        if (_closed)
        {
            return;
        }

        _closed = true;
        foreach (var channel in _channels.Values)
        {
            channel.IsOpen = false;
        }

        try
        {
            _interop.Calls.Close(_id);
        }
        catch (ObjectDisposedException)
        {
            // The module is gone with the page.
        }
#pragma warning disable CA1031 // whatever the browser throws ([JSImport] and Blazor have their own JSException), the link is closed for .NET
        catch (Exception ex)
#pragma warning restore CA1031
        {
            Log.CloseFailed(_logger, Plan.Peer, ex);
        }
    }

    public void Dispose()
    {
        Close();
        PeerEvents.Unregister(_id, this);
        _self?.Dispose();
    }

    /// <summary>
    /// Receives the module's events (JSON: <c>kind</c>, the state snapshot and the event's fields): from <see cref="PeerEvents"/>
    /// in the browser, through the link's <c>DotNetObjectReference</c> elsewhere.
    /// </summary>
    /// <param name="json">The event.</param>
    [JSInvokable]
    public void OnEvent(string json)
    {
        if (_closed)
        {
            return;
        }

        try
        {
            using var document = JsonDocument.Parse(json);
            var root = document.RootElement;
            var before = _state;
            Apply(PeerStateSnapshot.Parse(root));
            Dispatch(PeerStateSnapshot.String(root, "kind"), root, before);
        }
#pragma warning disable CA1031 // an exception must not escape into the browser's event loop
        catch (Exception ex)
#pragma warning restore CA1031
        {
            Log.EventFailed(_logger, Plan.Peer, ex);
        }
    }

    internal async ValueTask SendAsync(string label, string text, CancellationToken cancellationToken)
    {
        ThrowIfClosed();
        var error = await _interop.Module.InvokeAsync<string?>("send", cancellationToken, _id, label, text).ConfigureAwait(false);
        if (error is not null)
        {
            using var document = JsonDocument.Parse(error);
            throw PeerStateSnapshot.ParseError(document.RootElement);
        }
    }

    private void Dispatch(string? kind, JsonElement root, PeerStateSnapshot before)
    {
        switch (kind)
        {
            case "negotiationneeded":
                NegotiationNeeded?.Invoke(this, EventArgs.Empty);
                break;
            case "icecandidate":
                LocalIceCandidate?.Invoke(this, new IceCandidate
                {
                    Candidate = PeerStateSnapshot.String(root, "candidate") ?? string.Empty,
                    SdpMid = PeerStateSnapshot.String(root, "sdpMid"),
                    SdpMLineIndex = root.TryGetProperty("sdpMLineIndex", out var index) && index.ValueKind == JsonValueKind.Number ? index.GetInt32() : null,
                    UsernameFragment = PeerStateSnapshot.String(root, "usernameFragment"),
                });
                break;
            case "icegatheringstatechange":
                // The event's own state, raised for every event (not only when the snapshot changed): an operation's
                // snapshot may have shown the new state first, and the event is what tells the mesh that gathering ended.
                IceGatheringStateChanged?.Invoke(this, PeerStateSnapshot.Parse(root).IceGatheringState);
                break;
            case "signalingstatechange":
                if (before.SignalingState != _state.SignalingState)
                {
                    SignalingStateChanged?.Invoke(this, _state.SignalingState);
                }

                break;
            case "connectionstatechange":
                if (before.ConnectionState != _state.ConnectionState)
                {
                    ConnectionStateChanged?.Invoke(this, _state.ConnectionState);
                }

                break;
            case "channelopen":
                var opened = Channel(PeerStateSnapshot.String(root, "label") ?? string.Empty);
                opened.IsOpen = true;
                DataChannelOpened?.Invoke(this, opened);
                break;
            case "channelclose":
                Channel(PeerStateSnapshot.String(root, "label") ?? string.Empty).IsOpen = false;
                break;
            case "message":
                DataChannelMessageReceived?.Invoke(this, new DataChannelMessage(PeerStateSnapshot.String(root, "label") ?? string.Empty, PeerStateSnapshot.String(root, "text") ?? string.Empty));
                break;
            case "track":
                _media.OnRemoteTrack(Plan.Peer, Plan.PeerEpoch, PeerStateSnapshot.String(root, "trackKind") ?? string.Empty);
                break;
            default:
                break;
        }
    }

    private async ValueTask RunAsync(Func<IPeerCalls, Task<string>> call, CancellationToken cancellationToken)
    {
        ThrowIfClosed();
        var json = await call(_interop.Calls).WaitAsync(cancellationToken).ConfigureAwait(false);
        using var document = JsonDocument.Parse(json);
        var snapshot = PeerStateSnapshot.Parse(document.RootElement);
        var before = _state;
        Apply(snapshot);
        if (before.SignalingState != _state.SignalingState && !_closed)
        {
            // The signalingstatechange event may still be queued; report the change now so that it is never missed.
            SignalingStateChanged?.Invoke(this, _state.SignalingState);
        }

        if (snapshot.Error is { } error)
        {
            throw error;
        }
    }

    private void Apply(PeerStateSnapshot snapshot)
    {
        if (snapshot.Sequence >= _state.Sequence)
        {
            // A snapshot of a closed link has no versions: the last ones stand.
            _state = snapshot with
            {
                Error = null,
                LocalVersion = snapshot.LocalVersion < 0 ? _state.LocalVersion : snapshot.LocalVersion,
                RemoteVersion = snapshot.RemoteVersion < 0 ? _state.RemoteVersion : snapshot.RemoteVersion,
            };
        }
    }

    /// <summary>
    /// The description of <paramref name="side"/>: the last one read while it is at least <paramref name="version"/> (the
    /// browser's versions only grow), else the browser's current one, which may be newer still (a candidate gathered since).
    /// </summary>
    private SessionDescription? Read(ref (long Version, SessionDescription? Value) known, long version, string side)
    {
        if (known.Version >= version || _closed)
        {
            return known.Value;
        }

        try
        {
            var text = _interop.Calls.Description(_id, side);
            if (text is not null)
            {
                known = PeerStateSnapshot.ParseDescription(text);
            }
        }
#pragma warning disable CA1031 // whatever the browser throws ([JSImport] and Blazor have their own JSException), the last description read stands
        catch (Exception ex)
#pragma warning restore CA1031
        {
            Log.DescriptionReadFailed(_logger, side, Plan.Peer, ex);
        }

        return known.Value;
    }

    private BrowserPeerDataChannel Channel(string label)
    {
        if (!_channels.TryGetValue(label, out var channel))
        {
            channel = new BrowserPeerDataChannel(this, label);
            _channels[label] = channel;
        }

        return channel;
    }

    private void ThrowIfClosed()
    {
        if (_closed)
        {
            throw new PeerConnectionException(PeerConnectionErrorKind.InvalidState, "The peer connection is closed.");
        }
    }

    private static string IceServersJson(IReadOnlyList<IceServer> servers)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartArray();
            foreach (var server in servers)
            {
                writer.WriteStartObject();
                writer.WriteStartArray("urls");
                foreach (var url in server.Urls)
                {
                    writer.WriteStringValue(url);
                }

                writer.WriteEndArray();
                if (server.Username is { } username)
                {
                    writer.WriteString("username", username);
                }

                if (server.Credential is { } credential)
                {
                    writer.WriteString("credential", credential);
                }

                writer.WriteEndObject();
            }

            writer.WriteEndArray();
        }

        return System.Text.Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
    }
}
