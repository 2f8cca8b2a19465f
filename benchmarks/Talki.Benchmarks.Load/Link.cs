using System.Globalization;
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
    private long _sequence;
    private long _sent;
    private long _received;
    private long _lastReceivedSequence;
    private long _outOfOrder;
    private int _errorFrames;

    public Link(Target target, LoadSocket socket, string to, long toEpoch = 0, Func<int>? externalErrors = null)
    {
        _target = target;
        Socket = socket;
        To = to;
        ToEpoch = toEpoch;
        _externalErrors = externalErrors;
        socket.State = this;
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

    public long Sent => Interlocked.Read(ref _sent);

    public long Received => Interlocked.Read(ref _received);

    /// <summary>Gets the messages that arrived with a sequence number not above the last one (duplicated or reordered).</summary>
    public long OutOfOrder => Interlocked.Read(ref _outOfOrder);

    /// <summary>Gets the error frames the server sent to this socket.</summary>
    public int ErrorFrames => Volatile.Read(ref _errorFrames) + (_externalErrors?.Invoke() ?? 0);

    /// <summary>Sends the next message, counting from <paramref name="stamp"/> (a Stopwatch timestamp).</summary>
    /// <remarks>Numbered and queued under a lock: the sequence numbers go out in order even when two threads send.</remarks>
    public void Send(long stamp)
    {
        lock (_sending)
        {
            var sequence = ++_sequence;
            var candidate = string.Create(
                CultureInfo.InvariantCulture,
                $$"""{"candidate":"candidate:{{sequence}} 1 udp 2122260223 192.168.1.23 54321 typ host generation 0 ufrag Zx3a network-id 1 network-cost 10 ts {{stamp}}","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"Zx3a"}""");
            Interlocked.Increment(ref _sent);
            Socket.Send(_target.Message(this, candidate));
        }
    }

    /// <summary>Handles a frame this link's socket received (on its receive loop).</summary>
    public void OnFrame(LoadFrame frame)
    {
        var candidate = _target.CandidateOf(frame.Root);
        if (candidate is null)
        {
            if (_target.IsError(frame.Root))
            {
                Interlocked.Increment(ref _errorFrames);
            }

            return;
        }

        var text = candidate.Value.GetString()!;
        var sequence = long.Parse(text.AsSpan(10, text.IndexOf(' ', StringComparison.Ordinal) - 10), CultureInfo.InvariantCulture);
        var stamp = long.Parse(text.AsSpan(text.LastIndexOf(' ') + 1), CultureInfo.InvariantCulture);
        if (sequence <= _lastReceivedSequence)
        {
            Interlocked.Increment(ref _outOfOrder);
        }

        _lastReceivedSequence = sequence;
        Interlocked.Increment(ref _received);
        Run?.OnReceived(this, stamp, frame.Timestamp);
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
