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
    public static long AtMost(SignalMessage signal)
    {
        var size = Fixed + Text(signal.Id) + Text(signal.To.Value) + Text(signal.Description?.Sdp);
        if (signal.Candidates is { } candidates)
        {
            foreach (var candidate in candidates)
            {
                size += PerCandidate + Text(candidate.Candidate) + Text(candidate.SdpMid) + Text(candidate.UsernameFragment);
            }
        }

        return size;
    }

    /// <summary>
    /// A lower bound of the signal's size as an entry of <c>signals</c> (and so as a <see cref="ClientMessage"/>): its
    /// strings at one byte a character and two a line break, and the shortest JSON the fields it has can take.
    /// </summary>
    /// <param name="signal">The signal.</param>
    /// <returns>At most the number of bytes the signal serializes to.</returns>
    public static long AtLeast(SignalMessage signal)
    {
        // {"to":""}
        var size = 9 + Unescaped(signal.To.Value);
        if (signal.Id is { } id)
        {
            size += 8 + Unescaped(id); // "id":"",
        }

        if (signal.ToEpoch is not null)
        {
            size += 12; // ,"toEpoch":0
        }

        if (signal.Description is { } description)
        {
            size += 31; // ,"description":{"type":"offer"} (the shortest type)
            if (description.Sdp is { } sdp)
            {
                size += 9 + Unescaped(sdp); // ,"sdp":""
            }
        }

        if (signal.Candidates is { } candidates)
        {
            size += 15; // ,"candidates":[] less the comma the first candidate does not have
            foreach (var candidate in candidates)
            {
                size += 17 + Unescaped(candidate.Candidate); // {"candidate":""},
            }
        }

        return size;
    }

    /// <summary>The signal's exact size as a serialized <see cref="ClientMessage"/>.</summary>
    /// <param name="signal">The signal.</param>
    /// <returns>The number of bytes.</returns>
    public static int Exact(SignalMessage signal) => JsonSerializer.SerializeToUtf8Bytes<ClientMessage>(signal, TalkiJsonContext.Default.ClientMessage).Length;

    /// <summary>The signal's exact size as an entry of <c>signals</c> (a <see cref="SignalMessage"/>, no <c>type</c>).</summary>
    /// <param name="signal">The signal.</param>
    /// <returns>The number of bytes.</returns>
    public static int ExactEntry(SignalMessage signal) => JsonSerializer.SerializeToUtf8Bytes(signal, TalkiJsonContext.Default.SignalMessage).Length;

    /// <summary>Whether the signal serializes to at most <paramref name="limit"/> bytes; serialized only when the bound exceeds it.</summary>
    /// <param name="signal">The signal.</param>
    /// <param name="limit">The most bytes.</param>
    /// <returns><see langword="true"/> when it fits.</returns>
    public static bool Fits(SignalMessage signal, int limit) => AtMost(signal) <= limit || Exact(signal) <= limit;

    /// <summary>An upper bound of a string's size in JSON, without its quotes.</summary>
    private static long Text(string? text)
    {
        if (text is null)
        {
            return 0;
        }

        // Three vectorized passes over an SDP (the line breaks counted, then one look for anything else to escape),
        // instead of one search per line break.
        var span = text.AsSpan();
        var size = Unescaped(text);
        var at = span.IndexOfAnyExcept(PlainOrLineBreak);
        while (at >= 0)
        {
            size += Escaped - 1;
            span = span[(at + 1)..];
            at = span.IndexOfAnyExcept(PlainOrLineBreak);
        }

        return size;
    }

    /// <summary>A lower bound of a string's size in JSON, without its quotes: a byte a character, two a line break.</summary>
    private static long Unescaped(string text) =>
        text.Length + ((long)(text.AsSpan().Count('\r') + text.AsSpan().Count('\n')) * (LineBreak - 1));
}
