using System.Buffers;
using System.Buffers.Text;

namespace Talki.Signalling.Server.Engine;

/// <summary>Writes the relayed <c>signal</c> frame straight from the validated inbound bytes into a pooled buffer.</summary>
internal static class RelayFrame
{
    private static ReadOnlySpan<byte> Prefix => "{\"type\":\"signal\",\"from\":\""u8;

    private static ReadOnlySpan<byte> EpochPart => "\",\"fromEpoch\":"u8;

    private static ReadOnlySpan<byte> DescriptionPart => ",\"description\":"u8;

    private static ReadOnlySpan<byte> CandidatesPart => ",\"candidates\":"u8;

    private static ReadOnlySpan<byte> LinkPart => ",\"link\":"u8;

    /// <summary>Writes the frame into a buffer rented from <see cref="ArrayPool{T}.Shared"/>; the caller returns it.</summary>
    public static byte[] Write(MemberId from, long fromEpoch, ReadOnlySpan<byte> description, ReadOnlySpan<byte> candidates, out int length)
        => Write(from, fromEpoch, description, candidates, default, out length);

    /// <summary>Writes the frame, with the receiver's side of the link (protocol version 2, an offer) when <paramref name="link"/> is not empty.</summary>
    public static byte[] Write(MemberId from, long fromEpoch, ReadOnlySpan<byte> description, ReadOnlySpan<byte> candidates, ReadOnlySpan<byte> link, out int length)
    {
        // Member ids are ASCII [A-Za-z0-9_-] (validated on creation), so they need no escaping.
        var id = from.Value;
        var capacity = Prefix.Length + id.Length + EpochPart.Length + 20 + DescriptionPart.Length + description.Length + CandidatesPart.Length + candidates.Length + LinkPart.Length + link.Length + 1;
        var buffer = ArrayPool<byte>.Shared.Rent(capacity);
        var span = buffer.AsSpan();
        var at = 0;
        Prefix.CopyTo(span);
        at += Prefix.Length;
        for (var i = 0; i < id.Length; i++)
        {
            span[at++] = (byte)id[i];
        }

        EpochPart.CopyTo(span[at..]);
        at += EpochPart.Length;
        _ = Utf8Formatter.TryFormat(fromEpoch, span[at..], out var written);
        at += written;
        if (!description.IsEmpty)
        {
            DescriptionPart.CopyTo(span[at..]);
            at += DescriptionPart.Length;
            description.CopyTo(span[at..]);
            at += description.Length;
        }

        if (!candidates.IsEmpty)
        {
            CandidatesPart.CopyTo(span[at..]);
            at += CandidatesPart.Length;
            candidates.CopyTo(span[at..]);
            at += candidates.Length;
        }

        if (!link.IsEmpty)
        {
            LinkPart.CopyTo(span[at..]);
            at += LinkPart.Length;
            link.CopyTo(span[at..]);
            at += link.Length;
        }

        span[at++] = (byte)'}';
        length = at;
        return buffer;
    }
}
