namespace Talki.Signalling.Client.Negotiation;

/// <summary>
/// Lets the signalling socket's receive loop read on while relayed signals are applied, up to a bound. Each signal is
/// applied on its own link's queue, so a link still applies its signals in the order they came; what no longer waits is
/// every other link. A newcomer gets the answers of all its links at about the same time, and each answer is a round
/// trip to the browser (<c>setRemoteDescription</c>, then the candidates): one at a time, the last link started only
/// when all the others had been applied.
/// </summary>
/// <remarks>
/// The bound is the backpressure the receive loop gave before: with <see cref="Limit"/> signals in flight the loop waits
/// for the next one it hands on, so a member that floods signals at a link that never settles its operations holds at
/// most that many, and the socket stops being read (the server's outbound queue for this member then fills, and the
/// server applies its own limit).
/// </remarks>
internal sealed class InFlightSignals
{
    private int _count;

    /// <summary>Initializes a new instance of the <see cref="InFlightSignals"/> class.</summary>
    /// <param name="limit">How many signals may be in flight before the receive loop waits for one.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="limit"/> is not positive.</exception>
    public InFlightSignals(int limit)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(limit);
        Limit = limit;
    }

    /// <summary>Gets how many signals may be in flight before the receive loop waits for one.</summary>
    public int Limit { get; }

    /// <summary>Gets how many signals are being applied now.</summary>
    public int Count => Volatile.Read(ref _count);

    /// <summary>Takes a signal that is being applied.</summary>
    /// <param name="applying">The link's task for it (it completes when the signal was applied, or the link closed).</param>
    /// <returns>
    /// What the receive loop awaits: a completed task while no more than <see cref="Limit"/> signals are in flight, this
    /// signal's own task beyond that.
    /// </returns>
    public Task Track(Task applying)
    {
        ArgumentNullException.ThrowIfNull(applying);
        if (applying.IsCompleted)
        {
            return applying;
        }

        // Continuations that run where the link completes its task, so the count is right the moment it does (an await
        // would be posted elsewhere under a synchronization context).
        if (Interlocked.Increment(ref _count) <= Limit)
        {
            _ = applying.ContinueWith(static (_, state) => ((InFlightSignals)state!).Release(), this, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            return Task.CompletedTask;
        }

        return applying.ContinueWith(
            static (applied, state) =>
            {
                ((InFlightSignals)state!).Release();
                applied.GetAwaiter().GetResult(); // the loop sees what the link's task ended with, as when it awaited it directly
            },
            this,
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
    }

    private void Release() => Interlocked.Decrement(ref _count);
}
