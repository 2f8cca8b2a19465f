using System.Globalization;
using System.Text.Json;

namespace Talki.Samples.Browser.EndToEndTests.Harness;

/// <summary>One peer link as reported by the adapter's hook <c>window.talkiWebRtc.links()</c>.</summary>
internal sealed record LinkStats(
    string Peer,
    string Epoch,
    string ConnectionState,
    string IceConnectionState,
    string SignalingState,
    long BytesReceived,
    long VideoBytesReceived,
    long FramesDecoded,
    double? ConnectedAt)
{
    public bool IsConnected => ConnectionState == "connected";

    public override string ToString() =>
        $"{Peer}@{Epoch} {ConnectionState}/{IceConnectionState}/{SignalingState} bytes={BytesReceived} video={VideoBytesReceived} frames={FramesDecoded}";

    /// <summary>Reads the hook's JSON tolerantly (ids may be strings or numbers, counters may be missing).</summary>
    public static IReadOnlyList<LinkStats> ParseArray(string json)
    {
        using var document = JsonDocument.Parse(json);
        if (document.RootElement.ValueKind != JsonValueKind.Array)
        {
            return [];
        }

        return [.. document.RootElement.EnumerateArray().Select(Parse)];
    }

    private static LinkStats Parse(JsonElement link) => new(
        Text(link, "peer"),
        Text(link, "epoch"),
        Text(link, "connectionState"),
        Text(link, "iceConnectionState"),
        Text(link, "signalingState"),
        (long)(Number(link, "bytesReceived") ?? 0),
        (long)(Number(link, "videoBytesReceived") ?? 0),
        (long)(Number(link, "framesDecoded") ?? 0),
        Number(link, "connectedAt"));

    private static string Text(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value)
            ? value.ValueKind switch
            {
                JsonValueKind.String => value.GetString() ?? "",
                JsonValueKind.Null or JsonValueKind.Undefined => "",
                _ => value.GetRawText(),
            }
            : "";

    private static double? Number(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value)
            ? value.ValueKind switch
            {
                JsonValueKind.Number => value.GetDouble(),
                JsonValueKind.String when double.TryParse(value.GetString(), NumberStyles.Float, CultureInfo.InvariantCulture, out var parsed) => parsed,
                _ => null,
            }
            : null;
}

/// <summary>A <c>video-tile</c> as shown on a page.</summary>
internal sealed record VideoTile(string MemberId, string Name, bool Self, int VideoWidth, int VideoHeight, int ReadyState)
{
    public bool IsRendering => VideoWidth > 0 && VideoHeight > 0 && ReadyState >= 2;

    public override string ToString() => $"{Name} ({MemberId}{(Self ? ", self" : "")}) video {VideoWidth}x{VideoHeight} readyState={ReadyState}";
}

/// <summary>The join window's countdown as a page shows it.</summary>
internal sealed record SealCountdown(long SecondsLeft, bool Sealed, string Text);

/// <summary>The page's <c>call-state</c> element: <c>data-state</c> (the call's <c>TalkiAdmissionState</c>) and <c>data-signalling</c> (<c>open</c> when connected).</summary>
internal sealed record CallState(string State, string Signalling)
{
    public static readonly CallState Missing = new("(no call-state)", "");

    public override string ToString() => $"{State} (signalling {Signalling})";
}
