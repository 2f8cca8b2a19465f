using System.Text.Json;
using Talki.Signalling.Client.Negotiation;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Client.Browser;

/// <summary>
/// The state of a browser peer connection as the JS module reports it after each operation and event. The descriptions
/// are reported by version only (<see cref="LocalVersion"/>, <see cref="RemoteVersion"/>; -1 when the module did not
/// say, a closed link): their text is read with <see cref="ParseDescription(string)"/> when a version is missing.
/// </summary>
internal sealed record PeerStateSnapshot(
    long Sequence,
    PeerSignalingState SignalingState,
    PeerConnectionState ConnectionState,
    PeerIceGatheringState IceGatheringState,
    long LocalVersion,
    long RemoteVersion,
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
            Version(root, "localV"),
            Version(root, "remoteV"),
            error);
    }

    /// <summary>Parses what the module's <c>description()</c> returns: <c>version\ntype\nsdp</c>, type and sdp empty when there is no description.</summary>
    /// <returns>The version, and the description or null.</returns>
    /// <exception cref="FormatException">The text is not of that form.</exception>
    public static (long Version, SessionDescription? Description) ParseDescription(string text)
    {
        var first = text.IndexOf('\n', StringComparison.Ordinal);
        var second = first < 0 ? -1 : text.IndexOf('\n', first + 1);
        if (second < 0 || !long.TryParse(text.AsSpan(0, first), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var version))
        {
            throw new FormatException("A description from the browser is not \"version\\ntype\\nsdp\".");
        }

        SdpType? type = text.AsSpan(first + 1, second - first - 1) switch
        {
            "offer" => SdpType.Offer,
            "answer" => SdpType.Answer,
            "pranswer" => SdpType.Pranswer,
            "rollback" => SdpType.Rollback,
            _ => null,
        };
        return (version, type is { } t ? new SessionDescription { Type = t, Sdp = text[(second + 1)..] } : null);
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

    private static long Version(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out var version) ? version : -1;

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
