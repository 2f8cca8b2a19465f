using System.Collections.Concurrent;

namespace Talki.Signalling.Server.Engine;

/// <summary>What the rate limiter decided for one inbound message.</summary>
internal enum RateDecision
{
    /// <summary>Within the rate: handle the message.</summary>
    Allowed,

    /// <summary>Over the rate: drop the message and answer <c>rate_limited</c>.</summary>
    Refused,

    /// <summary>Over the rate, and this refusal is the one that reaches the abuse limit: refuse it and close the connection.</summary>
    RefusedAndClose,
}

/// <summary>
/// A token bucket per gateway connection for every inbound client message, counted twice: in messages and in bytes (a
/// message needs room in both), on the injected clock's monotonic timestamps (a wall-clock step neither refills nor drains
/// a bucket), plus a count of the refusals in a fixed window that tells an abusive sender apart from a client that overran
/// the burst once.
/// </summary>
/// <remarks>
/// <para>
/// It lives in the engine, so both gateways (the self-hosted one and API Gateway's callbacks) go through it. Like the
/// other abuse limits it counts per process: behind a load balancer, or across Lambda instances, each instance counts
/// on its own.
/// </para>
/// <para>
/// Growth is bounded: a connection's state is released when it disconnects, and a sweep (at most once per
/// <see cref="_sweepInterval"/>, on the calling thread) drops every bucket that is at rest (refilled to full with no
/// refusal in the current window). Dropping such a bucket loses nothing (a new one is identical), so the entries are at
/// most the connections that sent something within the last sweep interval, whether or not their disconnect reached
/// this process: a hostile client opening and closing sockets leaves nothing behind.
/// </para>
/// </remarks>
internal sealed class ConnectionRateLimiter
{
    private readonly ConcurrentDictionary<string, Bucket> _buckets = new(StringComparer.Ordinal);
    private readonly TimeProvider _time;
    private readonly double _burst;
    // The refill rates per unit of the clock's timestamps (its frequency is fixed), divided once rather than per message.
    private readonly double _perTimestamp;
    private readonly double _bytesPerTimestamp;
    private readonly double _byteBurst;
    private readonly int _refusalsBeforeClose;
    private readonly long _window;
    private readonly long _sweepInterval;
    private long _nextSweep;

    public ConnectionRateLimiter(TimeProvider time, TalkiLimitsOptions limits)
    {
        _time = time;
        double perSecond = limits.MessagesPerSecond;
        _burst = limits.MessageBurst;
        double bytesPerSecond = limits.MessageBytesPerSecond;
        _perTimestamp = perSecond / time.TimestampFrequency;
        _bytesPerTimestamp = bytesPerSecond / time.TimestampFrequency;
        _byteBurst = limits.MessageBytesBurst;
        _refusalsBeforeClose = limits.RateLimitedMessagesBeforeClose;
        _window = time.ToTimestampUnits(limits.RateLimitWindow);

        // Long enough for a bucket to refill and for its refusal window to end, so a sweep finds the idle ones at rest.
        var refill = time.ToTimestampUnits(TimeSpan.FromSeconds(Math.Max(_burst / perSecond, _byteBurst / bytesPerSecond)));
        _sweepInterval = Math.Max(refill, _window) + time.ToTimestampUnits(TimeSpan.FromSeconds(1));
        _nextSweep = time.GetTimestamp() + _sweepInterval;
    }

    /// <summary>Gets the number of connections with state (for tests of the bound).</summary>
    internal int Count => _buckets.Count;

    /// <summary>Takes one token, and no bytes, for a message of <paramref name="connectionId"/>.</summary>
    public RateDecision TryAcquire(string connectionId) => TryAcquire(connectionId, 1);

    /// <summary>
    /// Takes <paramref name="tokens"/> tokens, and no bytes, at once (a <c>signals</c> frame pays one per entry beyond the
    /// first, its bytes having been paid on arrival), or none: a refusal counts once towards the abuse limit, like a
    /// refused single message.
    /// </summary>
    public RateDecision TryAcquire(string connectionId, int tokens) => TryAcquireAt(connectionId, tokens, 0, _time.GetTimestamp());

    /// <summary>
    /// Takes <paramref name="tokens"/> tokens and <paramref name="bytes"/> bytes at <paramref name="now"/>, a
    /// <see cref="TimeProvider.GetTimestamp"/> of this limiter's clock the caller has just read (the engine's per-message
    /// one: one clock read per message, not two), or nothing when either bucket is short.
    /// </summary>
    public RateDecision TryAcquireAt(string connectionId, int tokens, int bytes, long now)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(tokens, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        SweepIfDue(now);
        while (true)
        {
            var bucket = _buckets.GetOrAdd(connectionId, static (_, state) => new Bucket(state.Burst, state.ByteBurst, state.Now), (Burst: _burst, ByteBurst: _byteBurst, Now: now));
            lock (bucket)
            {
                if (bucket.Removed)
                {
                    continue; // swept between the lookup and the lock: take the fresh one
                }

                bucket.Refill(now, _perTimestamp, _burst, _bytesPerTimestamp, _byteBurst);
                if (bucket.Tokens >= tokens && bucket.Bytes >= bytes)
                {
                    bucket.Tokens -= tokens;
                    bucket.Bytes -= bytes;
                    return RateDecision.Allowed;
                }

                if (now - bucket.WindowStart >= _window)
                {
                    bucket.WindowStart = now;
                    bucket.Refusals = 0;
                }

                bucket.Refusals++;
                return bucket.Refusals == _refusalsBeforeClose ? RateDecision.RefusedAndClose : RateDecision.Refused;
            }
        }
    }

    /// <summary>
    /// Gives back <paramref name="tokens"/> and <paramref name="bytes"/> a message took but did not use (a <c>signals</c>
    /// frame refused as a whole returns what its frame paid on arrival), up to the bursts. A connection without state has
    /// nothing to give back to.
    /// </summary>
    public void Return(string connectionId, int tokens, int bytes = 0)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(tokens, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        if (_buckets.TryGetValue(connectionId, out var bucket))
        {
            lock (bucket)
            {
                if (!bucket.Removed)
                {
                    bucket.Tokens = Math.Min(_burst, bucket.Tokens + tokens);
                    bucket.Bytes = Math.Min(_byteBurst, bucket.Bytes + bytes);
                }
            }
        }
    }

    /// <summary>Forgets a connection (it has disconnected).</summary>
    public void Release(string connectionId)
    {
        if (_buckets.TryRemove(connectionId, out var bucket))
        {
            lock (bucket)
            {
                bucket.Removed = true;
            }
        }
    }

    /// <summary>
    /// Hands a member's previous connection's bucket to its new one: reconnecting (the previous connection is superseded)
    /// must not buy a fresh burst. The refusal count goes along; the new connection starts unpunished otherwise.
    /// </summary>
    public void Transfer(string previousConnectionId, string connectionId)
    {
        if (!_buckets.TryRemove(previousConnectionId, out var previous))
        {
            return;
        }

        Bucket copy;
        lock (previous)
        {
            previous.Removed = true;
            copy = new Bucket(previous.Tokens, previous.Bytes, previous.RefilledAt) { WindowStart = previous.WindowStart, Refusals = previous.Refusals };
        }

        _buckets[connectionId] = copy;
    }

    private void SweepIfDue(long now)
    {
        var due = Interlocked.Read(ref _nextSweep);
        if (now < due || Interlocked.CompareExchange(ref _nextSweep, now + _sweepInterval, due) != due)
        {
            return;
        }

        foreach (var (connectionId, bucket) in _buckets)
        {
            lock (bucket)
            {
                bucket.Refill(now, _perTimestamp, _burst, _bytesPerTimestamp, _byteBurst);
                if (bucket.Tokens >= _burst && bucket.Bytes >= _byteBurst && (bucket.Refusals == 0 || now - bucket.WindowStart >= _window))
                {
                    bucket.Removed = true;
                    _buckets.TryRemove(new KeyValuePair<string, Bucket>(connectionId, bucket));
                }
            }
        }
    }

    /// <summary>One connection's state; guarded by its own lock.</summary>
    /// <remarks>Instants are timestamps of <see cref="TimeProvider.GetTimestamp"/>.</remarks>
    private sealed class Bucket(double tokens, double bytes, long refilledAt)
    {
        public double Tokens { get; set; } = tokens;

        public double Bytes { get; set; } = bytes;

        public long RefilledAt { get; private set; } = refilledAt;

        public long WindowStart { get; set; } = refilledAt;

        public int Refusals { get; set; }

        public bool Removed { get; set; }

        public void Refill(long now, double perTimestampUnit, double burst, double bytesPerTimestampUnit, double byteBurst)
        {
            var elapsed = now - RefilledAt;
            if (elapsed > 0)
            {
                Tokens = Math.Min(burst, Tokens + (elapsed * perTimestampUnit));
                Bytes = Math.Min(byteBurst, Bytes + (elapsed * bytesPerTimestampUnit));
                RefilledAt = now;
            }
        }
    }
}
