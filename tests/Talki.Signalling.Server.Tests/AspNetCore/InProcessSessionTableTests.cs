using System.Diagnostics;
using System.Security.Cryptography;
using CsCheck;
using Microsoft.Extensions.Time.Testing;
using Talki.Signalling.Server.AspNetCore;

namespace Talki.Signalling.Server.Tests.AspNetCore;

/// <summary>
/// The sessions of a server with no shared cache: held under their key's hash until they expire, never returned after,
/// swept at most once a minute, and bounded without ever evicting a live session to make room.
/// </summary>
public sealed class InProcessSessionTableTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 5, 22, 0, 0, TimeSpan.Zero);

    [Fact]
    public void ASession_ReadsBackUnderItsKeysHash_ReplacedInPlace_AndGoneWhenRemoved_WithItsBytesCounted()
    {
        var clock = new FakeTimeProvider(Now);
        var table = new InProcessSessionTable(clock);
        var key = InProcessSessionTable.DigestOf("k1");

        Assert.True(table.TrySet(key, new byte[100], Now.AddHours(1)));
        Assert.Equal(100, table.Get(key)!.Length);
        Assert.Equal(100 + InProcessSessionTable.EntryOverheadBytes, table.Bytes);
        Assert.Null(table.Get(InProcessSessionTable.DigestOf("k2")));
        Assert.Null(table.Get(InProcessSessionTable.DigestOf("K1"))); // the hash of another string, however close

        Assert.True(table.TrySet(key, new byte[60], Now.AddHours(1)));
        Assert.Equal(60, table.Get(key)!.Length);
        Assert.Equal(1, table.Count);
        Assert.Equal(60 + InProcessSessionTable.EntryOverheadBytes, table.Bytes);

        table.Remove(key);
        table.Remove(key); // twice: nothing more to remove
        Assert.Null(table.Get(key));
        Assert.Equal(0, table.Count);
        Assert.Equal(0, table.Bytes);
    }

    [Fact]
    public void AnExpiredSession_IsNeverReturned_FromItsExpiryOn_AndTheReadThatFindsItRemovesIt()
    {
        var clock = new FakeTimeProvider(Now);
        var table = new InProcessSessionTable(clock);
        var key = InProcessSessionTable.DigestOf("k");
        Assert.True(table.TrySet(key, new byte[10], Now.AddSeconds(30)));

        clock.Advance(TimeSpan.FromSeconds(30) - TimeSpan.FromTicks(1));
        Assert.NotNull(table.Get(key));
        clock.Advance(TimeSpan.FromTicks(1));
        Assert.Null(table.Get(key));
        Assert.Equal(0, table.Count);
        Assert.Equal(0, table.Bytes);
    }

    [Fact]
    public async Task ExpiredSessions_AreSwept_ByTheFirstAccessAMinuteAfterTheLastSweep_NotBefore_AndLiveOnesStay()
    {
        var clock = new FakeTimeProvider(Now);
        var table = new InProcessSessionTable(clock);
        for (var i = 0; i < 50; i++)
        {
            Assert.True(table.TrySet(InProcessSessionTable.DigestOf("old" + i), new byte[10], Now.AddSeconds(10)));
        }

        var live = InProcessSessionTable.DigestOf("live");
        Assert.True(table.TrySet(live, new byte[10], Now.AddHours(1)));

        clock.Advance(TimeSpan.FromSeconds(59));
        Assert.NotNull(table.Get(live)); // the 50 have expired, but no sweep is due yet
        await Task.Delay(100);
        Assert.Equal(51, table.Count);

        clock.Advance(TimeSpan.FromSeconds(1));
        Assert.NotNull(table.Get(live)); // due: this access starts one, on the thread pool
        await WaitUntilAsync(() => table.Count == 1);
        Assert.Equal(10 + InProcessSessionTable.EntryOverheadBytes, table.Bytes);
        Assert.NotNull(table.Get(live));
    }

    [Fact]
    public void AFullTable_RefusesANewSession_EvictsNoLiveOne_StillRenewsAHeldOne_AndTakesNewOnesOnceSomeHaveExpired()
    {
        var clock = new FakeTimeProvider(Now);
        const int Entry = 100 + InProcessSessionTable.EntryOverheadBytes;
        var table = new InProcessSessionTable(clock, capacityBytes: 3 * Entry);
        var a = InProcessSessionTable.DigestOf("a");
        var b = InProcessSessionTable.DigestOf("b");
        var c = InProcessSessionTable.DigestOf("c");
        Assert.True(table.TrySet(a, new byte[100], Now.AddMinutes(5)));
        Assert.True(table.TrySet(b, new byte[100], Now.AddHours(1)));
        Assert.True(table.TrySet(c, new byte[100], Now.AddHours(1)));

        // An attacker signing in without end gets refusals; the members signed in keep their sessions.
        for (var i = 0; i < 20; i++)
        {
            Assert.False(table.TrySet(InProcessSessionTable.DigestOf("eve" + i), new byte[100], Now.AddHours(1)));
        }

        Assert.Equal(3, table.Count);
        Assert.Equal(3 * Entry, table.Bytes);
        Assert.NotNull(table.Get(a));
        Assert.NotNull(table.Get(b));
        Assert.True(table.TrySet(b, new byte[100], Now.AddHours(2))); // a held session is renewed in place
        Assert.False(table.TrySet(c, new byte[101], Now.AddHours(2))); // but may not grow past the bound
        Assert.Equal(100, table.Get(c)!.Length);

        clock.Advance(TimeSpan.FromMinutes(5)); // a has expired: the refused write sweeps it and takes its place
        var d = InProcessSessionTable.DigestOf("d");
        Assert.True(table.TrySet(d, new byte[100], Now.AddHours(1)));
        Assert.Null(table.Get(a));
        Assert.Equal(3, table.Count);
        Assert.Equal(3 * Entry, table.Bytes);
    }

    [Fact]
    public void Reads_OfKeysNeverStored_AnyLengthAnyContent_FindNothing_AndAddNothing()
    {
        var clock = new FakeTimeProvider(Now);
        var table = new InProcessSessionTable(clock);
        Assert.True(table.TrySet(InProcessSessionTable.DigestOf("k"), new byte[10], Now.AddHours(1)));
        Gen.String.Sample(key => table.Get(InProcessSessionTable.DigestOf(key)) is null || key == "k", iter: 2000);
        Assert.Null(table.Get(InProcessSessionTable.DigestOf(new string('x', 100_000))));
        Assert.Equal(1, table.Count);
    }

    [Fact]
    public void ConcurrentSetsReplacementsAndRemovals_LeaveTheByteCount_EqualToWhatIsHeld()
    {
        var clock = new FakeTimeProvider(Now);
        var table = new InProcessSessionTable(clock, capacityBytes: 64 * 1024);
        Parallel.For(0, 4, worker =>
        {
            var random = new Random(worker);
            for (var i = 0; i < 20_000; i++)
            {
                var key = InProcessSessionTable.DigestOf("k" + random.Next(200));
                switch (random.Next(3))
                {
                    case 0:
                    case 1:
                        table.TrySet(key, new byte[random.Next(1, 300)], Now.AddHours(1));
                        break;
                    default:
                        table.Remove(key);
                        break;
                }
            }
        });

        long held = 0;
        for (var k = 0; k < 200; k++)
        {
            if (table.Get(InProcessSessionTable.DigestOf("k" + k)) is { } session)
            {
                held += session.Length + InProcessSessionTable.EntryOverheadBytes;
            }
        }

        Assert.Equal(held, table.Bytes);
        Assert.True(table.Bytes <= 64 * 1024);
    }

    [Fact]
    public async Task OnTheRealClock_ASessionReadsBackUntilItsExpiry_NeverAfter()
    {
        var table = new InProcessSessionTable(TimeProvider.System);
        var key = InProcessSessionTable.DigestOf(Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)));
        var expiresAt = DateTimeOffset.UtcNow.AddMilliseconds(300);
        Assert.True(table.TrySet(key, new byte[10], expiresAt));

        var watch = Stopwatch.StartNew();
        while (table.Get(key) is not null)
        {
            Assert.True(DateTimeOffset.UtcNow < expiresAt, "read back after its expiry");
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), "still read back 5 s after a 300 ms expiry");
            await Task.Delay(10);
        }

        // Gone no sooner than its expiry (a table counting in other units than the clock's would lose it at once, or keep it).
        Assert.True(DateTimeOffset.UtcNow >= expiresAt, $"gone {(expiresAt - DateTimeOffset.UtcNow).TotalMilliseconds:0} ms early");
        Assert.True(watch.Elapsed >= TimeSpan.FromMilliseconds(250), $"gone after {watch.ElapsedMilliseconds} ms");
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var watch = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), "not within 5 s");
            await Task.Delay(10);
        }
    }
}
