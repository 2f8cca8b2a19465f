using System.Buffers;
using System.Text.Json;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Client.Negotiation;

/// <summary>
/// The size of a signal as UTF-8 JSON, bounded from its strings' lengths without serializing it. Signals are sized to keep
/// each frame under the gateway's limit: the description with its candidates (<see cref="PeerNegotiator.Batch(MemberId, long, SessionDescription?, IReadOnlyList{IceCandidate})"/>),
/// then a newcomer's offers together (<see cref="OfferBatch.Frames"/>), and the connection serializes each once more to
/// send it. Serializing a few kilobytes of SDP only to measure it is what costs in .NET's WebAssembly interpreter. The upper
/// bound counts the characters an encoder may escape at their longest, the lower one every character at its shortest; the
/// exact size is taken only where the two cannot tell whether a limit is kept.
/// </summary>
internal static class SignalSize
{
    /// <summary>
    /// Everything of a signal but its strings' contents, as a <see cref="ClientMessage"/> (with <c>"type":"signal"</c>), at
    /// the longest: <c>{"type":"signal","id":"","to":"","toEpoch":-9223372036854775808,"description":{"type":"rollback","sdp":""},"candidates":[]}</c>
    /// is 123 bytes.
    /// </summary>
    private const int Fixed = 160;

    /// <summary>One candidate but its strings: <c>{"candidate":"","sdpMid":"","sdpMLineIndex":-2147483648,"usernameFragment":""},</c> is 79 bytes.</summary>
    private const int PerCandidate = 96;

    /// <summary>The bytes a character outside <see cref="PlainOrLineBreak"/> takes at most: <c>\uXXXX</c> (a UTF-8 sequence is at most 3 bytes per UTF-16 unit).</summary>
    private const int Escaped = 6;

    /// <summary>The bytes of a line break (<c>\r</c>, <c>\n</c>): two, as System.Text.Json's encoders write them; SDP ends every line with both.</summary>
    private const int LineBreak = 2;

    /// <summary>
    /// Printable ASCII that every JSON encoder writes as one byte, and the line breaks. Left out: <c>"</c> and <c>\</c>
    /// (always escaped), and <c>&lt; &gt; &amp; ' + `</c> (the default <c>JavaScriptEncoder</c> escapes them).
    /// </summary>
    private static readonly SearchValues<char> PlainOrLineBreak = SearchValues.Create("\r\n !#$%()*,-./0123456789:;=?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]^_abcdefghijklmnopqrstuvwxyz{|}~");

    /// <summary>An upper bound of the signal's size as a serialized <see cref="ClientMessage"/> (and so as an entry of <c>signals</c>, which has no <c>type</c>).</summary>
    /// <param name="signal">The signal.</param>
    /// <returns>At least the number of bytes the signal serializes to.</returns>
    public static long AtMost(SignalMessage signal) => Bounds(signal).Most;

    /// <summary>
    /// A lower bound of the signal's size as an entry of <c>signals</c> (and so as a <see cref="ClientMessage"/>): its
    /// strings at one byte a character and two a line break, and the shortest JSON the fields it has can take.
    /// </summary>
    /// <param name="signal">The signal.</param>
    /// <returns>At most the number of bytes the signal serializes to.</returns>
    public static long AtLeast(SignalMessage signal) => Bounds(signal).Least;

    /// <summary>Both bounds of the signal's size (<see cref="AtLeast"/>, <see cref="AtMost"/>), each string read once.</summary>
    /// <param name="signal">The signal.</param>
    /// <returns>The lower and the upper bound.</returns>
    public static (long Least, long Most) Bounds(SignalMessage signal)
    {
        var to = Text(signal.To.Value);
        var id = Text(signal.Id);
        var sdp = Text(signal.Description?.Sdp);
        var least = 9 + to.Least; // {"to":""}
        var most = Fixed + to.Most + id.Most + sdp.Most;
        if (signal.Id is not null)
        {
            least += 8 + id.Least; // "id":"",
        }

        if (signal.ToEpoch is not null)
        {
            least += 12; // ,"toEpoch":0
        }

        if (signal.Description is { } description)
        {
            least += 31; // ,"description":{"type":"offer"} (the shortest type)
            if (description.Sdp is not null)
            {
                least += 9 + sdp.Least; // ,"sdp":""
            }
        }

        if (signal.Candidates is { } candidates)
        {
            least += 15; // ,"candidates":[] less the comma the first candidate does not have
            foreach (var candidate in candidates)
            {
                var line = Text(candidate.Candidate);
                least += 17 + line.Least; // {"candidate":""},
                most += PerCandidate + line.Most + Text(candidate.SdpMid).Most + Text(candidate.UsernameFragment).Most;
            }
        }

        return (least, most);
    }

    /// <summary>The signal's exact size as a serialized <see cref="ClientMessage"/>.</summary>
    /// <param name="signal">The signal.</param>
    /// <returns>The number of bytes.</returns>
    public static int Exact(SignalMessage signal) => JsonSerializer.SerializeToUtf8Bytes<ClientMessage>(signal, TalkiJsonContext.Default.ClientMessage).Length;

    /// <summary>The signal's exact size as an entry of <c>signals</c> (a <see cref="SignalMessage"/>, no <c>type</c>).</summary>
    /// <param name="signal">The signal.</param>
    /// <returns>The number of bytes.</returns>
    public static int ExactEntry(SignalMessage signal) => JsonSerializer.SerializeToUtf8Bytes(signal, TalkiJsonContext.Default.SignalMessage).Length;

    /// <summary>Whether the signal serializes to at most <paramref name="limit"/> bytes; serialized only when the bounds cannot tell.</summary>
    /// <param name="signal">The signal.</param>
    /// <param name="limit">The most bytes.</param>
    /// <returns><see langword="true"/> when it fits.</returns>
    public static bool Fits(SignalMessage signal, int limit)
    {
        var (least, most) = Bounds(signal);
        return most <= limit || (least <= limit && Exact(signal) <= limit);
    }

    /// <summary>
    /// Bounds of a string's size in JSON, without its quotes: at least a byte a character and two a line break, at most that
    /// plus five for each other character an encoder may escape.
    /// </summary>
    private static (long Least, long Most) Text(string? text)
    {
        if (text is null)
        {
            return (0, 0);
        }

        // Three vectorized passes over an SDP (the line breaks counted, then one look for anything else to escape),
        // instead of one search per line break.
        var span = text.AsSpan();
        var least = span.Length + ((long)(span.Count('\r') + span.Count('\n')) * (LineBreak - 1));
        var most = least;
        var at = span.IndexOfAnyExcept(PlainOrLineBreak);
        while (at >= 0)
        {
            most += Escaped - 1;
            span = span[(at + 1)..];
            at = span.IndexOfAnyExcept(PlainOrLineBreak);
        }

        return (least, most);
    }
}
