using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;

namespace Talki.Signalling.Server.AspNetCore;

/// <summary>
/// The sessions of a server with no shared cache, in this process: each under the SHA-256 of its key (as in a shared cache,
/// so that the table yields no usable session), with its expiry. It replaces <c>MemoryDistributedCache</c> for them, whose
/// entry costs about 290 bytes besides the session's own (its <c>CacheEntry</c>, its dictionary node, and a 57-character
/// string key): here a dictionary node of 80 bytes holds the hash and the expiry, beside the session's bytes (a member
/// held idle at 10,000 costs about 200 bytes less; docs/performance.md).
/// </summary>
/// <remarks>
/// Bounded as the cache it replaces is: by <c>MemoryDistributedCacheOptions.SizeLimit</c>, 200 MiB by default, counted
/// there on the values' lengths (the store passes the host's limit on; here each entry also counts its overhead). Over its
/// limit <c>MemoryCache</c> does not add the new entry (it expires it with <c>EvictionReason.Capacity</c>), removes the
/// entry it was to replace, and starts a compaction that evicts others (dotnet/runtime,
/// src/libraries/Microsoft.Extensions.Caching.Memory/src/MemoryCache.cs, <c>SetEntry</c> and
/// <c>TriggerOvercapacityCompaction</c>): a sign-in then got a cookie for a session never stored, and live sessions could
/// be pushed out. This table never evicts a live session to make room: once the expired ones are swept, a session
/// that does not fit is refused (<see cref="TrySet"/> returns <see langword="false"/>, sign-in answers
/// <c>service_unavailable</c>) and the one it was to replace stays. Expired entries are never returned, and are removed by
/// a sweep at most once a minute, started on an access that finds one due (as <c>MemoryCache</c> scans every
/// <c>ExpirationScanFrequency</c>, one minute by default), on the thread pool.
/// </remarks>
internal sealed class InProcessSessionTable
{
    /// <summary>The bytes the table may hold by default, as <c>MemoryDistributedCacheOptions.SizeLimit</c>: 200 MiB.</summary>
    internal const long DefaultCapacityBytes = 200L * 1024 * 1024;

    /// <summary>What an entry costs besides its session's bytes: the dictionary node (80 bytes) and the byte array's header (24).</summary>
    internal const int EntryOverheadBytes = 104;

    /// <summary>How often at most expired entries are swept.</summary>
    internal static readonly TimeSpan SweepInterval = TimeSpan.FromMinutes(1);

    private readonly ConcurrentDictionary<SessionDigest, Entry> _entries = new();
    private readonly TimeProvider _time;
    private readonly long _capacity;
    private readonly Lock _sweepGate = new();
    private long _bytes;
    private long _nextSweepTicks;
    private int _sweepQueued;

    public InProcessSessionTable(TimeProvider time, long capacityBytes = DefaultCapacityBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacityBytes);
        _time = time;
        _capacity = capacityBytes;
        _nextSweepTicks = time.GetUtcNow().UtcTicks + SweepInterval.Ticks;
    }

    /// <summary>Gets the bytes the table may hold.</summary>
    internal long Capacity => _capacity;

    /// <summary>Gets the number of entries held, expired or not.</summary>
    internal int Count => _entries.Count;

    /// <summary>Gets the bytes the entries are counted for (their sessions' bytes and <see cref="EntryOverheadBytes"/> each).</summary>
    internal long Bytes => Interlocked.Read(ref _bytes);

    /// <summary>Gets the table key of a session key: the SHA-256 of its UTF-8 bytes.</summary>
    public static SessionDigest DigestOf(string key)
    {
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(Encoding.UTF8.GetBytes(key), hash);
        return MemoryMarshal.Read<SessionDigest>(hash);
    }

    /// <summary>
    /// Stores or replaces a session until <paramref name="expiresAt"/>. Returns <see langword="false"/>, storing nothing, when
    /// a session not held yet would take the table past its capacity even after the expired ones are swept.
    /// </summary>
    public bool TrySet(SessionDigest key, byte[] session, DateTimeOffset expiresAt)
    {
        ArgumentNullException.ThrowIfNull(session);
        var entry = new Entry(session, expiresAt.UtcTicks);
        var size = SizeOf(entry);
        var now = _time.GetUtcNow().UtcTicks;
        SweepIfDue(now);
        while (true)
        {
            if (_entries.TryGetValue(key, out var old))
            {
                // A renewal: a larger session reserves what it adds first, as a new one does.
                var delta = size - SizeOf(old);
                if (delta > 0 && !TryReserve(delta))
                {
                    if (!SweepNow(now, delta))
                    {
                        return false;
                    }

                    continue;
                }

                if (_entries.TryUpdate(key, entry, old))
                {
                    if (delta < 0)
                    {
                        Interlocked.Add(ref _bytes, delta);
                    }

                    return true;
                }

                if (delta > 0)
                {
                    Interlocked.Add(ref _bytes, -delta);
                }

                continue;
            }

            if (!TryReserve(size))
            {
                if (!SweepNow(now, size))
                {
                    return false;
                }

                continue;
            }

            if (_entries.TryAdd(key, entry))
            {
                return true;
            }

            Interlocked.Add(ref _bytes, -size);
        }
    }

    /// <summary>Gets a session's bytes, or <see langword="null"/> when there is none or it has expired (which removes it).</summary>
    public byte[]? Get(SessionDigest key)
    {
        var now = _time.GetUtcNow().UtcTicks;
        SweepIfDue(now);
        if (!_entries.TryGetValue(key, out var entry))
        {
            return null;
        }

        if (entry.ExpiresAtTicks <= now)
        {
            RemoveEntry(key, entry);
            return null;
        }

        return entry.Session;
    }

    /// <summary>Removes a session, if it is held.</summary>
    public void Remove(SessionDigest key)
    {
        if (_entries.TryRemove(key, out var entry))
        {
            Interlocked.Add(ref _bytes, -SizeOf(entry));
        }
    }

    /// <summary>Removes every entry expired at <paramref name="nowTicks"/> (UTC ticks) and returns how many it removed.</summary>
    internal int Sweep(long nowTicks)
    {
        var removed = 0;
        foreach (var (key, entry) in _entries)
        {
            if (entry.ExpiresAtTicks <= nowTicks && RemoveEntry(key, entry))
            {
                removed++;
            }
        }

        return removed;
    }

    private static long SizeOf(Entry entry) => entry.Session.Length + EntryOverheadBytes;

    /// <summary>Counts <paramref name="bytes"/> more if they fit under the capacity; otherwise counts nothing.</summary>
    private bool TryReserve(long bytes)
    {
        if (Interlocked.Add(ref _bytes, bytes) <= _capacity)
        {
            return true;
        }

        Interlocked.Add(ref _bytes, -bytes);
        return false;
    }

    private bool RemoveEntry(SessionDigest key, Entry entry)
    {
        // Only the entry seen: a session renewed meanwhile under the same key stays.
        if (_entries.TryRemove(new KeyValuePair<SessionDigest, Entry>(key, entry)))
        {
            Interlocked.Add(ref _bytes, -SizeOf(entry));
            return true;
        }

        return false;
    }

    private void SweepIfDue(long nowTicks)
    {
        if (nowTicks < Volatile.Read(ref _nextSweepTicks) || Interlocked.Exchange(ref _sweepQueued, 1) != 0)
        {
            return;
        }

        Volatile.Write(ref _nextSweepTicks, nowTicks + SweepInterval.Ticks);
        ThreadPool.UnsafeQueueUserWorkItem(
            static state =>
            {
                try
                {
                    lock (state._sweepGate)
                    {
                        state.Sweep(state._time.GetUtcNow().UtcTicks);
                    }
                }
                finally
                {
                    Volatile.Write(ref state._sweepQueued, 0);
                }
            },
            this,
            preferLocal: false);
    }

    /// <summary>
    /// A table too full for <paramref name="size"/> more bytes: sweeps what has expired now, on this thread (one sweep at a
    /// time), and says whether it is worth trying again (room made meanwhile, or entries removed).
    /// </summary>
    private bool SweepNow(long nowTicks, long size)
    {
        lock (_sweepGate)
        {
            // Another thread's sweep or removals may have made room while this one waited.
            return Interlocked.Read(ref _bytes) + size <= _capacity || Sweep(nowTicks) > 0;
        }
    }

    private readonly record struct Entry(byte[] Session, long ExpiresAtTicks);
}

/// <summary>A session key's SHA-256: 32 bytes, compared whole, hashed by its first 8 (a hash already).</summary>
[StructLayout(LayoutKind.Sequential)]
internal readonly struct SessionDigest : IEquatable<SessionDigest>
{
    private readonly ulong _a;
    private readonly ulong _b;
    private readonly ulong _c;
    private readonly ulong _d;

    public bool Equals(SessionDigest other) => _a == other._a && _b == other._b && _c == other._c && _d == other._d;

    public override bool Equals(object? obj) => obj is SessionDigest other && Equals(other);

    public override int GetHashCode() => (int)_a ^ (int)(_a >> 32);
}
