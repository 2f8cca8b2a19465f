using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Unicode;
using System.Text.Json;
using Talki.Signalling.Soak;

namespace Talki.Benchmarks.Load;

/// <summary>
/// One direction of a pair: a client socket and the peer it sends to. Every message is an ICE candidate as a browser
/// trickles it (about 200 bytes) whose foundation is the sequence number and whose last attribute, <c>ts</c>, is the
/// Stopwatch time it counts from; the receiving link records the latency and counts it.
/// </summary>
internal sealed class Link
{
    private readonly Target _target;
    private readonly Func<int>? _externalErrors;
    private readonly Lock _sending = new();
    private readonly (byte[] Prefix, byte[] Suffix) _envelope;
    private long _sequence;
    private long _sent;
    private long _received;
    private long _lastReceivedSequence;
    private long _outOfOrder;
    private int _errorFrames;
    private string? _firstError;
    private long _rawFrames;
    private long _rawMismatches;

    public Link(Target target, LoadSocket socket, string to, long toEpoch = 0, Func<int>? externalErrors = null)
    {
        _target = target;
        Socket = socket;
        To = to;
        ToEpoch = toEpoch;
        _externalErrors = externalErrors;
        var (prefix, suffix) = target.Envelope(this);
        _envelope = (Encoding.UTF8.GetBytes(prefix), Encoding.UTF8.GetBytes(suffix));
        socket.State = this;
        socket.RawFrame = static (socket, frame, timestamp) => ((Link)socket.State!).OnRawFrame(frame, timestamp);
    }

    public LoadSocket Socket { get; }

    /// <summary>Gets the id the server knows the peer by.</summary>
    public string To { get; }

    /// <summary>Gets the peer's connection epoch (Talki's <c>toEpoch</c>; 0 elsewhere).</summary>
    public long ToEpoch { get; }

    /// <summary>Gets or sets the run the received messages are reported to.</summary>
    public TrafficRun? Run { get; set; }

    /// <summary>Gets the latencies (Stopwatch ticks) of the messages received with a time stamp in the run's window; written by this socket's receive loop only.</summary>
    public List<long> Latencies { get; } = [];

    /// <summary>Gets the time stamps (Stopwatch ticks) of <see cref="Latencies"/>, in the same order, when the run is traced (empty otherwise).</summary>
    public List<long> Stamps { get; } = [];

    public long Sent => Interlocked.Read(ref _sent);

    public long Received => Interlocked.Read(ref _received);

    /// <summary>Gets the messages that arrived with a sequence number not above the last one (duplicated or reordered).</summary>
    public long OutOfOrder => Interlocked.Read(ref _outOfOrder);

    /// <summary>
    /// Gets the relayed messages taken from their bytes whose figures the parser read differently: every 1,024th is read
    /// both ways (the first one included), and any difference makes the run invalid.
    /// </summary>
    public long RawMismatches => Interlocked.Read(ref _rawMismatches);

    /// <summary>Gets the error frames the server sent to this socket.</summary>
    public int ErrorFrames => Volatile.Read(ref _errorFrames) + (_externalErrors?.Invoke() ?? 0);

    /// <summary>
    /// Gets the first error frame this link's socket received since <see cref="ClearFirstError"/>, as the server sent it
    /// (an invalid run says why in the report); <see langword="null"/> when none came.
    /// </summary>
    public string? FirstError => Volatile.Read(ref _firstError);

    /// <summary>Forgets the first error frame, at the start of a run.</summary>
    public void ClearFirstError() => Volatile.Write(ref _firstError, null);

    /// <summary>Sends the next message, counting from <paramref name="stamp"/> (a Stopwatch timestamp); on this thread when <paramref name="inline"/> and the socket is free (<see cref="LoadSocket.SendRented"/>).</summary>
    /// <remarks>
    /// Numbered and queued under a lock: the sequence numbers go out in order even when two threads send. Written as UTF-8
    /// straight into a pooled array (the target's envelope around the candidate), which the socket returns once sent.
    /// </remarks>
    public void Send(long stamp, bool inline = false)
    {
        var (prefix, suffix) = _envelope;
        lock (_sending)
        {
            var sequence = ++_sequence;
            var buffer = ArrayPool<byte>.Shared.Rent(prefix.Length + suffix.Length + 256);
            prefix.CopyTo(buffer, 0);
            if (!Utf8.TryWrite(
                buffer.AsSpan(prefix.Length, buffer.Length - prefix.Length - suffix.Length),
                CultureInfo.InvariantCulture,
                $$"""{"candidate":"candidate:{{sequence}} 1 udp 2122260223 192.168.1.23 54321 typ host generation 0 ufrag Zx3a network-id 1 network-cost 10 ts {{stamp}}","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"Zx3a"}""",
                out var written))
            {
                throw new InvalidOperationException("The candidate does not fit its buffer.");
            }

            suffix.CopyTo(buffer, prefix.Length + written);
            Interlocked.Increment(ref _sent);
            Socket.SendRented(buffer, prefix.Length + written + suffix.Length, inline);
        }
    }

    /// <summary>
    /// Takes a relayed message from its bytes (on the receive loop), as <see cref="OnFrame"/> does from the parsed frame:
    /// the frame must carry the target's relay marker and the candidate line this tool writes, whole; anything else
    /// (an error, a greeting, a message this did not write) is left to the parser.
    /// </summary>
    public bool OnRawFrame(ReadOnlySpan<byte> frame, long timestamp)
    {
        if (frame.IndexOf(_target.RelayedMarker) < 0)
        {
            return false;
        }

        var at = frame.IndexOf("\"candidate\":\"candidate:"u8);
        if (at < 0 || !TryDigits(frame[(at + 23)..], out var sequence, out var used) || frame[at + 23 + used] != (byte)' ')
        {
            return false;
        }

        var rest = frame[(at + 23 + used)..];
        var ts = rest.IndexOf(" ts "u8);
        if (ts < 0 || !TryDigits(rest[(ts + 4)..], out var stamp, out used) || rest[ts + 4 + used] != (byte)'"')
        {
            return false;
        }

        if ((_rawFrames++ & 1023) == 0 && !ParsedAlike(frame, sequence, stamp))
        {
            Interlocked.Increment(ref _rawMismatches);
        }

        OnCandidate(sequence, stamp, timestamp);
        return true;
    }

    /// <summary>Whether the parser finds the same candidate line, sequence number and time stamp in <paramref name="frame"/>.</summary>
    private bool ParsedAlike(ReadOnlySpan<byte> frame, long sequence, long stamp)
    {
        using var document = JsonDocument.Parse(frame.ToArray());
        return _target.CandidateOf(document.RootElement)?.GetString() is { } text
            && Figures(text) == (sequence, stamp);
    }

    /// <summary>The sequence number (the foundation) and the time stamp (the last attribute) of a candidate line this tool wrote.</summary>
    private static (long Sequence, long Stamp) Figures(string text) =>
        (long.Parse(text.AsSpan(10, text.IndexOf(' ', StringComparison.Ordinal) - 10), CultureInfo.InvariantCulture),
         long.Parse(text.AsSpan(text.LastIndexOf(' ') + 1), CultureInfo.InvariantCulture));

    /// <summary>Handles a frame this link's socket received (on its receive loop).</summary>
    public void OnFrame(LoadFrame frame)
    {
        var candidate = _target.CandidateOf(frame.Root);
        if (candidate is null)
        {
            if (_target.IsError(frame.Root))
            {
                Interlocked.Increment(ref _errorFrames);
                Interlocked.CompareExchange(ref _firstError, frame.Root.GetRawText(), null);
            }

            return;
        }

        var (sequence, stamp) = Figures(candidate.Value.GetString()!);
        OnCandidate(sequence, stamp, frame.Timestamp);
    }

    /// <summary>A run of ASCII digits at the start of <paramref name="text"/>, as a number (at most 18 digits).</summary>
    private static bool TryDigits(ReadOnlySpan<byte> text, out long value, out int length)
    {
        value = 0;
        length = 0;
        while (length < text.Length && length < 18 && text[length] - (uint)'0' <= 9)
        {
            value = (value * 10) + (text[length] - '0');
            length++;
        }

        return length > 0 && length < text.Length;
    }

    private void OnCandidate(long sequence, long stamp, long receivedAt)
    {
        if (sequence <= _lastReceivedSequence)
        {
            Interlocked.Increment(ref _outOfOrder);
        }

        _lastReceivedSequence = sequence;
        Interlocked.Increment(ref _received);
        Run?.OnReceived(this, stamp, receivedAt);
    }
}

/// <summary>The candidate of a frame, as <see cref="Target.CandidateOf"/> finds it.</summary>
internal static class JsonPath
{
    /// <summary>Follows <paramref name="path"/> (property names, or "0" for an array's first item) to a string, or null.</summary>
    public static JsonElement? Find(JsonElement root, params ReadOnlySpan<string> path)
    {
        var current = root;
        foreach (var step in path)
        {
            if (step == "0" && current.ValueKind == JsonValueKind.Array && current.GetArrayLength() > 0)
            {
                current = current[0];
            }
            else if (current.ValueKind != JsonValueKind.Object || !current.TryGetProperty(step, out current))
            {
                return null;
            }
        }

        return current.ValueKind == JsonValueKind.String ? current : null;
    }
}
