using Talki.Signalling.Client.Negotiation;
using Talki.Signalling.Client.Tests.Negotiation;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Client.Tests.Support;

/// <summary>Creates simulated peer connections whose operations are serialized across the whole fabric.</summary>
internal sealed class LockedPeerConnectionFactory(SimulatedFabric fabric, object gate, string owner) : IPeerConnectionFactory
{
    private readonly SimulatedPeerConnectionFactory _inner = new(fabric, owner);

    public List<SimulatedPeerConnection> Created
    {
        get
        {
            lock (_inner)
            {
                return [.. _inner.Created];
            }
        }
    }

    /// <summary>Gets or sets what runs on each new connection before the mesh uses it (a test holds its first operation).</summary>
    public Action<SimulatedPeerConnection>? AfterCreate { get; set; }

    public IPeerConnection Create(PeerLinkPlan plan)
    {
        lock (_inner)
        {
            var pc = (SimulatedPeerConnection)_inner.Create(plan);
            AfterCreate?.Invoke(pc);
            return new LockedPeerConnection(pc, gate);
        }
    }

    /// <summary>The live (not closed) connection to <paramref name="peer"/>.</summary>
    public SimulatedPeerConnection Live(MemberId peer) => Created.Last(pc => pc.Plan.Peer == peer && pc.SignalingState != PeerSignalingState.Closed);
}

/// <summary>Serializes every operation of a simulated connection on one fabric-wide lock (events are raised inside it).</summary>
internal sealed class LockedPeerConnection : IPeerConnection
{
    private readonly SimulatedPeerConnection _inner;
    private readonly object _gate;

    public LockedPeerConnection(SimulatedPeerConnection inner, object gate)
    {
        _inner = inner;
        _gate = gate;
        inner.NegotiationNeeded += (_, e) => NegotiationNeeded?.Invoke(this, e);
        inner.LocalIceCandidate += (_, e) => LocalIceCandidate?.Invoke(this, e);
        inner.SignalingStateChanged += (_, e) => SignalingStateChanged?.Invoke(this, e);
        inner.IceGatheringStateChanged += (_, e) => IceGatheringStateChanged?.Invoke(this, e);
        inner.ConnectionStateChanged += (_, e) => ConnectionStateChanged?.Invoke(this, e);
        inner.DataChannelMessageReceived += (_, e) => DataChannelMessageReceived?.Invoke(this, e);
        inner.DataChannelOpened += (_, e) => DataChannelOpened?.Invoke(this, new LockedChannel(e, gate));
    }

    public event EventHandler? NegotiationNeeded;

    public event EventHandler<IceCandidate>? LocalIceCandidate;

    public event EventHandler<PeerSignalingState>? SignalingStateChanged;

    public event EventHandler<PeerIceGatheringState>? IceGatheringStateChanged;

    public event EventHandler<PeerConnectionState>? ConnectionStateChanged;

    public event EventHandler<DataChannelMessage>? DataChannelMessageReceived;

    public event EventHandler<IPeerDataChannel>? DataChannelOpened;

    public PeerSignalingState SignalingState => _inner.SignalingState;

    public PeerConnectionState ConnectionState => _inner.ConnectionState;

    public PeerIceGatheringState IceGatheringState => _inner.IceGatheringState;

    public SessionDescription? LocalDescription => _inner.LocalDescription;

    public SessionDescription? RemoteDescription => _inner.RemoteDescription;

    public ValueTask SetLocalDescriptionAsync(CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            return _inner.SetLocalDescriptionAsync(cancellationToken);
        }
    }

    public ValueTask SetRemoteDescriptionAsync(SessionDescription description, CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            return _inner.SetRemoteDescriptionAsync(description, cancellationToken);
        }
    }

    public ValueTask AddIceCandidateAsync(IceCandidate candidate, CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            return _inner.AddIceCandidateAsync(candidate, cancellationToken);
        }
    }

    public void RestartIce()
    {
        lock (_gate)
        {
            _inner.RestartIce();
        }
    }

    public IPeerDataChannel CreateDataChannel(string label)
    {
        lock (_gate)
        {
            return new LockedChannel(_inner.CreateDataChannel(label), _gate);
        }
    }

    public void Close()
    {
        lock (_gate)
        {
            _inner.Close();
        }
    }

    public void Dispose() => Close();

    private sealed class LockedChannel(IPeerDataChannel inner, object gate) : IPeerDataChannel
    {
        public string Label => inner.Label;

        public bool IsOpen => inner.IsOpen;

        public ValueTask SendAsync(string text, CancellationToken cancellationToken = default)
        {
            lock (gate)
            {
                return inner.SendAsync(text, cancellationToken);
            }
        }
    }
}
