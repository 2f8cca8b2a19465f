using Talki.Signalling.Protocol;

namespace Talki.Signalling.Client.Negotiation;

/// <summary>
/// Sends the first offers of a newcomer's links in one <c>signals</c> message (protocol version 2): a member admitted into
/// a room of <c>n</c> members offers to each of them at once, and each offer is ready a gather window later, so holding
/// them for each other costs at most that window and saves <c>n − 1</c> inbound messages (each one billed on API Gateway).
/// </summary>
/// <remarks>
/// <para>
/// <see cref="Expect"/> names the peers whose first offer is awaited. An offer to one of them is held; the batch leaves as
/// soon as every expected offer is held, or <see cref="_window"/> after the first one was held, whichever comes first.
/// Anything else goes at once, except a signal to a peer whose offer is held: candidates join the held offer's entry
/// (after its description, within one signal's limits), anything else makes the batch leave first, so that a link's
/// signals keep their order. A batch that would not fit one gateway frame leaves as several.
/// </para>
/// <para>
/// A held send completes when its batch was handed to the connection (or queued by it), with the connection's answer, so
/// a link's own queue waits for its offer as it would for a direct send.
/// </para>
/// </remarks>
internal sealed class OfferBatch : IDisposable
{
    /// <summary>The largest <c>signals</c> frame built, in UTF-8 JSON bytes: the gateways' 32 KB inbound frame limit, less the correlation id the connection adds.</summary>
    internal const int MaxFrameBytes = PeerNegotiator.MaxSignalBytes;

    /// <summary>The most entries in one <c>signals</c> frame: the server's parser takes at most 64 (rooms of more than 65 members only).</summary>
    internal const int MaxEntriesPerFrame = 64;

    private readonly Func<ClientMessage, ValueTask<bool>> _send;
    private readonly TimeProvider _time;
    private readonly TimeSpan _window;
    private readonly Lock _sync = new();
    private readonly HashSet<MemberId> _expected = [];
    private readonly List<(SignalMessage Message, TaskCompletionSource<bool> Sent)> _held = [];
    private ITimer? _timer;
    private bool _disposed;

    /// <summary>Initializes a new instance of the <see cref="OfferBatch"/> class.</summary>
    /// <param name="send">Sends one message on the signalling connection (<see langword="false"/> once it is closed for good).</param>
    /// <param name="time">The clock of the window.</param>
    /// <param name="window">How long the first held offer waits for the others; <see cref="TimeSpan.Zero"/> turns batching off.</param>
    public OfferBatch(Func<ClientMessage, ValueTask<bool>> send, TimeProvider time, TimeSpan window)
    {
        _send = send;
        _time = time;
        _window = window;
    }

    /// <summary>Awaits the first offer to each of <paramref name="peers"/> (at least two, or nothing is batched).</summary>
    /// <param name="peers">The peers this side offers to, all planned at once.</param>
    public void Expect(IEnumerable<MemberId> peers)
    {
        if (_window <= TimeSpan.Zero)
        {
            return;
        }

        List<(SignalMessage, TaskCompletionSource<bool>)>? stale;
        lock (_sync)
        {
            if (_disposed)
            {
                return;
            }

            // A new plan (a new epoch, a second admission) starts over: what an earlier one still holds leaves now.
            stale = TakeHeld();
            _expected.Clear();
            _expected.UnionWith(peers);
            if (_expected.Count < 2)
            {
                _expected.Clear();
            }
        }

        Release(stale);
    }

    /// <summary>Sends a signal, or holds it for the batch (see the remarks of <see cref="OfferBatch"/>).</summary>
    /// <param name="message">The signal.</param>
    /// <returns><see langword="false"/> when the connection is closed for good.</returns>
    public async ValueTask<bool> SendAsync(SignalMessage message)
    {
        Task<bool>? held = null;
        List<(SignalMessage, TaskCompletionSource<bool>)>? before = null;
        lock (_sync)
        {
            var expected = _expected.Remove(message.To);
            if (expected && message.Description is { Type: SdpType.Offer })
            {
                var sent = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
                _held.Add((message, sent));
                held = sent.Task;
                if (_expected.Count == 0)
                {
                    before = TakeHeld(); // the last one expected: the batch leaves now
                }
                else
                {
                    _timer ??= _time.CreateTimer(static state => ((OfferBatch)state!).OnWindowEnded(), this, _window, Timeout.InfiniteTimeSpan);
                }
            }
            else if (_held.FindIndex(h => h.Message.To == message.To) is var at and >= 0)
            {
                if (message.Description is null && TryMerge(_held[at].Message, message, out var merged))
                {
                    // Candidates for a link whose offer is held (its trickle window ended first, on a busy page): they ride
                    // in the held offer's entry, after its description, as they would have in a signal of their own.
                    _held[at] = (merged, _held[at].Sent);
                    held = _held[at].Sent.Task;
                }
                else
                {
                    before = TakeHeld(); // this link's offer first, then what follows it
                }
            }
            else if (expected && _expected.Count == 0)
            {
                before = TakeHeld(); // nothing else is awaited now
            }
        }

        if (before is not null)
        {
            await ReleaseAsync(before).ConfigureAwait(false);
        }

        return held is not null ? await held.ConfigureAwait(false) : await _send(message).ConfigureAwait(false);
    }

    /// <summary>
    /// Stops batching and drops what is held: the batch ends with its mesh (a new epoch replaced it, or the call ended), so
    /// the links whose offers wait here are closed, and a closed link's description is never sent. Their sends complete.
    /// </summary>
    public void Dispose()
    {
        List<(SignalMessage, TaskCompletionSource<bool>)>? held;
        lock (_sync)
        {
            _disposed = true;
            _expected.Clear();
            held = TakeHeld();
        }

        foreach (var (_, sent) in held ?? [])
        {
            sent.TrySetResult(true);
        }
    }

    /// <summary>
    /// Splits held signals into <c>signals</c> frames of at most <see cref="MaxFrameBytes"/> and <see cref="MaxEntriesPerFrame"/>
    /// entries (a lone signal goes as a plain <c>signal</c>). Sized by bounds (<see cref="SignalSize"/>): a signal joins the
    /// frame while the upper bounds fit, starts the next one when even the lower bounds do not, and only in between are the
    /// frame's entries serialized for their exact sizes, so the frames are those the exact sizes make.
    /// </summary>
    internal static List<List<SignalMessage>> Frames(IReadOnlyList<SignalMessage> signals)
    {
        const int Envelope = 64; // {"type":"signals","signals":[…]} and the separators
        var frames = new List<List<SignalMessage>>();
        List<SignalMessage>? current = null;
        long most = 0, least = 0; // the frame's size so far: at most, at least (equal once exact)
        var exact = false;
        foreach (var signal in signals)
        {
            long upper, lower;
            if (exact)
            {
                upper = lower = SignalSize.ExactEntry(signal) + 1;
            }
            else
            {
                var bounds = SignalSize.Bounds(signal);
                (lower, upper) = (bounds.Least + 1, bounds.Most + 1);
            }

            if (current is not null && !exact && current.Count < MaxEntriesPerFrame && most + upper > MaxFrameBytes && least + lower <= MaxFrameBytes)
            {
                // The bounds cannot tell: what the entries really take decides.
                most = least = Envelope + current.Sum(s => SignalSize.ExactEntry(s) + 1L);
                upper = lower = SignalSize.ExactEntry(signal) + 1;
                exact = true;
            }

            if (current is null || least + lower > MaxFrameBytes || current.Count == MaxEntriesPerFrame)
            {
                current = [];
                frames.Add(current);
                most = least = Envelope;
                exact = false;
            }

            current.Add(signal);
            most += upper;
            least += lower;
        }

        return frames;
    }

    /// <summary>Appends a candidates-only signal's candidates to a held one, if the result stays within one signal's limits.</summary>
    private static bool TryMerge(SignalMessage held, SignalMessage more, out SignalMessage merged)
    {
        merged = held;
        if (more.Candidates is not { Count: > 0 } candidates || (held.Candidates?.Count ?? 0) + candidates.Count > PeerNegotiator.MaxCandidatesPerSignal)
        {
            return false;
        }

        merged = held with { Candidates = [.. held.Candidates ?? [], .. candidates] };
        return SignalSize.Fits(merged, PeerNegotiator.MaxSignalBytes);
    }

    private void OnWindowEnded()
    {
        List<(SignalMessage, TaskCompletionSource<bool>)>? held;
        lock (_sync)
        {
            _expected.Clear(); // an offer that is later than the window goes alone
            held = TakeHeld();
        }

        Release(held);
    }

    private List<(SignalMessage, TaskCompletionSource<bool>)>? TakeHeld()
    {
        _timer?.Dispose();
        _timer = null;
        if (_held.Count == 0)
        {
            return null;
        }

        var held = new List<(SignalMessage, TaskCompletionSource<bool>)>(_held);
        _held.Clear();
        return held;
    }

    private void Release(List<(SignalMessage, TaskCompletionSource<bool>)>? held)
    {
        if (held is not null)
        {
            _ = ReleaseAsync(held);
        }
    }

    private async Task ReleaseAsync(List<(SignalMessage Message, TaskCompletionSource<bool> Sent)> held)
    {
        var result = true;
        try
        {
            foreach (var frame in Frames([.. held.Select(h => h.Message)]))
            {
                ClientMessage message = frame is [var only] ? only : new SignalsMessage { Signals = frame };
                result &= await _send(message).ConfigureAwait(false);
            }
        }
#pragma warning disable CA1031 // The failure belongs to each held send: their links report it as a failed send.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            foreach (var (_, sent) in held)
            {
                sent.TrySetException(ex);
            }

            return;
        }

        foreach (var (_, sent) in held)
        {
            sent.TrySetResult(result);
        }
    }
}
