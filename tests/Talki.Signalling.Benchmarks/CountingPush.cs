using System.Text;
using Talki.Signalling.Ports;

namespace Talki.Signalling.Benchmarks;

/// <summary>
/// The push port of the benchmark: a gateway that accepts every message and does the least any real
/// gateway must do with it, which is to look at where it goes and how long it is. It copies nothing:
/// <see cref="IConnectionPush.PushAsync"/>'s payload is only valid until the call completes, and a gateway
/// that writes to its socket inline (as API Gateway's PostToConnection or a WebSocket SendAsync does)
/// needs no copy either. What such a gateway spends on the wire is its own cost, not the engine's, so
/// it stays out of the measurement. The <see cref="RelayBenchmarks.CopyOnly"/> baseline shows what
/// one copy of the bytes costs.
/// </summary>
/// <remarks>
/// In <see cref="Capture"/> mode (set-up only) it keeps a decoded copy of every message so the set-up can
/// check that the engine really relays; in measurement it only counts, which keeps it allocation-free.
/// </remarks>
internal sealed class CountingPush : IConnectionPush
{
    private readonly List<(string ConnectionId, string Text)> _captured = [];

    /// <summary>Gets or sets a value indicating whether messages are copied into <see cref="Captured"/>.</summary>
    public bool Capture { get; set; }

    /// <summary>Gets or sets the connection every push is expected to go to (for <see cref="Misdirected"/>).</summary>
    public string? ExpectedTarget { get; set; }

    /// <summary>Gets the number of pushes.</summary>
    public long Pushes { get; private set; }

    /// <summary>Gets the number of bytes pushed.</summary>
    public long Bytes { get; private set; }

    /// <summary>Gets the number of pushes that did not go to <see cref="ExpectedTarget"/> (an error back to the sender, say).</summary>
    public long Misdirected { get; private set; }

    /// <summary>Gets the number of connections the engine closed.</summary>
    public long Closes { get; private set; }

    /// <summary>Gets the captured messages, oldest first.</summary>
    public IReadOnlyList<(string ConnectionId, string Text)> Captured => _captured;

    public ValueTask<PushOutcome> PushAsync(string connectionId, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
    {
        Pushes++;
        Bytes += payload.Length;
        if (ExpectedTarget is not null && !string.Equals(connectionId, ExpectedTarget, StringComparison.Ordinal))
        {
            Misdirected++;
        }

        if (Capture)
        {
            _captured.Add((connectionId, Encoding.UTF8.GetString(payload.Span)));
        }

        return new ValueTask<PushOutcome>(PushOutcome.Delivered);
    }

    public ValueTask CloseAsync(string connectionId, CancellationToken cancellationToken = default)
    {
        Closes++;
        return ValueTask.CompletedTask;
    }

    /// <summary>Forgets the captured messages and zeroes the counters.</summary>
    public void Reset()
    {
        _captured.Clear();
        Pushes = 0;
        Bytes = 0;
        Misdirected = 0;
        Closes = 0;
    }
}
