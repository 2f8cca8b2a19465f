using System.Text.Json;
using Talki.Signalling.Client.Negotiation;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Client.Browser;

/// <summary>The state of a browser peer connection as the JS module reports it after each operation and event.</summary>
internal sealed record PeerStateSnapshot(
    long Sequence,
    PeerSignalingState SignalingState,
    PeerConnectionState ConnectionState,
    PeerIceGatheringState IceGatheringState,
    SessionDescription? Local,
    SessionDescription? Remote,
    PeerConnectionException? Error)
{
    public static PeerStateSnapshot Parse(JsonElement root)
    {
        var error = root.TryGetProperty("error", out var e) && e.ValueKind == JsonValueKind.Object ? ParseError(e) : null;
        return new PeerStateSnapshot(
            root.TryGetProperty("seq", out var seq) ? seq.GetInt64() : 0,
            ParseSignalingState(String(root, "signalingState")),
            ParseConnectionState(String(root, "connectionState")),
            ParseIceGatheringState(String(root, "iceGatheringState")),
            ParseDescription(root, "local"),
            ParseDescription(root, "remote"),
            error);
    }

    public static PeerConnectionException ParseError(JsonElement error)
    {
        var kind = String(error, "kind") switch
        {
            "InvalidState" => PeerConnectionErrorKind.InvalidState,
            "InvalidDescription" => PeerConnectionErrorKind.InvalidDescription,
            _ => PeerConnectionErrorKind.OperationError,
        };
        return new PeerConnectionException(kind, $"{String(error, "name") ?? "Error"}: {String(error, "message")}");
    }

    public static string? String(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    private static SessionDescription? ParseDescription(JsonElement root, string name)
    {
        if (!root.TryGetProperty(name, out var d) || d.ValueKind != JsonValueKind.Object)
        {
            return null;
        }

        SdpType? type = String(d, "type") switch
        {
            "offer" => SdpType.Offer,
            "answer" => SdpType.Answer,
            "pranswer" => SdpType.Pranswer,
            "rollback" => SdpType.Rollback,
            _ => null,
        };
        return type is { } t ? new SessionDescription { Type = t, Sdp = String(d, "sdp") } : null;
    }

    private static PeerSignalingState ParseSignalingState(string? state) => state switch
    {
        "stable" => PeerSignalingState.Stable,
        "have-local-offer" or "have-remote-pranswer" => PeerSignalingState.HaveLocalOffer,
        "have-remote-offer" or "have-local-pranswer" => PeerSignalingState.HaveRemoteOffer,
        _ => PeerSignalingState.Closed,
    };

    private static PeerIceGatheringState ParseIceGatheringState(string? state) => state switch
    {
        "gathering" => PeerIceGatheringState.Gathering,
        "complete" => PeerIceGatheringState.Complete,
        _ => PeerIceGatheringState.New,
    };

    private static PeerConnectionState ParseConnectionState(string? state) => state switch
    {
        "new" => PeerConnectionState.New,
        "connecting" => PeerConnectionState.Connecting,
        "connected" => PeerConnectionState.Connected,
        "disconnected" => PeerConnectionState.Disconnected,
        "failed" => PeerConnectionState.Failed,
        _ => PeerConnectionState.Closed,
    };
}
