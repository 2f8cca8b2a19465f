using Microsoft.Extensions.Time.Testing;
using Talki.Signalling.Server.Engine;

namespace Talki.Signalling.Server.Tests.Engine;

/// <summary>
/// The connection's token bucket taking several tokens at once (a <c>signals</c> frame pays one per entry): all of them or
/// none, and a refusal counts once towards the close however many tokens it asked for; and its byte bucket beside it.
/// </summary>
public sealed class ConnectionRateLimiterTests
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 12, 1, 12, 0, 0, TimeSpan.Zero));

    [Fact]
    public void TryAcquireTokens_TakesAllOrNone_ARefusalLeavesTheBucketAsItWas()
    {
        var limiter = Limiter(burst: 5);

        Assert.Equal(RateDecision.Allowed, limiter.TryAcquire("c", 3)); // 5 → 2
        Assert.Equal(RateDecision.Refused, limiter.TryAcquire("c", 3)); // 2 < 3: none taken
        Assert.Equal(RateDecision.Allowed, limiter.TryAcquire("c", 2)); // so both are still there
        Assert.Equal(RateDecision.Refused, limiter.TryAcquire("c", 1)); // and now the bucket is empty
        Assert.Equal(RateDecision.Refused, limiter.TryAcquire("c"));
    }

    [Fact]
    public void TryAcquireTokens_TheWholeBurstAtOnceIsAllowed_OneMoreThanTheBurstNeverIs()
    {
        var limiter = Limiter(burst: 5);

        Assert.Equal(RateDecision.Refused, limiter.TryAcquire("c", 6));
        Assert.Equal(RateDecision.Allowed, limiter.TryAcquire("c", 5)); // the refusal above took nothing
        _time.Advance(TimeSpan.FromHours(1)); // a full bucket again, and no more
        Assert.Equal(RateDecision.Refused, limiter.TryAcquire("c", 6));
        Assert.Equal(RateDecision.Allowed, limiter.TryAcquire("c", 5));
    }

    [Fact]
    public void TryAcquireTokens_ARefusalCountsOnceTowardsTheClose_HoweverManyTokensItAskedFor()
    {
        var limiter = Limiter(burst: 5, refusalsBeforeClose: 3);

        Assert.Equal(RateDecision.Refused, limiter.TryAcquire("c", 50));
        Assert.Equal(RateDecision.Refused, limiter.TryAcquire("c", 50));
        Assert.Equal(RateDecision.RefusedAndClose, limiter.TryAcquire("c", 50)); // the third refusal, not the 150th token
        Assert.Equal(RateDecision.Refused, limiter.TryAcquire("c", 50)); // the close is decided once
    }

    [Fact]
    public void TryAcquireTokens_RefusalsOfSingleAndSeveralTokensAddUp_OnePerRefusedMessage()
    {
        var limiter = Limiter(burst: 2, refusalsBeforeClose: 3);
        Assert.Equal(RateDecision.Allowed, limiter.TryAcquire("c", 2));

        Assert.Equal(RateDecision.Refused, limiter.TryAcquire("c"));
        Assert.Equal(RateDecision.Refused, limiter.TryAcquire("c", 2));
        Assert.Equal(RateDecision.RefusedAndClose, limiter.TryAcquire("c"));
    }

    [Fact]
    public void TryAcquireTokens_RefillsAtTheRate_ABatchWaitsUntilAllItsTokensAreBack()
    {
        var limiter = Limiter(burst: 4, perSecond: 2);
        Assert.Equal(RateDecision.Allowed, limiter.TryAcquire("c", 4));

        _time.Advance(TimeSpan.FromMilliseconds(500)); // one token back
        Assert.Equal(RateDecision.Refused, limiter.TryAcquire("c", 2));
        _time.Advance(TimeSpan.FromMilliseconds(499)); // not quite two
        Assert.Equal(RateDecision.Refused, limiter.TryAcquire("c", 2));
        _time.Advance(TimeSpan.FromMilliseconds(2)); // (a little past two: the refills add up in floating point)
        Assert.Equal(RateDecision.Allowed, limiter.TryAcquire("c", 2));
        Assert.Equal(RateDecision.Refused, limiter.TryAcquire("c"));
    }

    [Fact]
    public void TryAcquireTokens_IsPerConnection()
    {
        var limiter = Limiter(burst: 3);

        Assert.Equal(RateDecision.Allowed, limiter.TryAcquire("a", 3));
        Assert.Equal(RateDecision.Refused, limiter.TryAcquire("a", 1));
        Assert.Equal(RateDecision.Allowed, limiter.TryAcquire("b", 3));
    }

    [Fact]
    public void TryAcquireOne_IsTryAcquireOfOneToken()
    {
        var limiter = Limiter(burst: 3);

        Assert.Equal(RateDecision.Allowed, limiter.TryAcquire("c", 1));
        Assert.Equal(RateDecision.Allowed, limiter.TryAcquire("c"));
        Assert.Equal(RateDecision.Refused, limiter.TryAcquire("c", 2)); // one left
        Assert.Equal(RateDecision.Allowed, limiter.TryAcquire("c"));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(int.MinValue)]
    public void TryAcquireTokens_FewerThanOne_Throws_AndTakesNothing(int tokens)
    {
        var limiter = Limiter(burst: 1);

        Assert.Throws<ArgumentOutOfRangeException>(() => limiter.TryAcquire("c", tokens));

        Assert.Equal(0, limiter.Count); // no state for the connection either
        Assert.Equal(RateDecision.Allowed, limiter.TryAcquire("c"));
    }

    [Fact]
    public void Bytes_AMessageNeedsRoomInBothBuckets_AShortByteBucketRefusesWhileMessageTokensRemain()
    {
        var limiter = Limiter(burst: 100, byteBurst: 10_000);

        Assert.Equal(RateDecision.Allowed, At(limiter, bytes: 6_000));
        Assert.Equal(RateDecision.Refused, At(limiter, bytes: 6_000)); // 4,000 bytes left: refused, 99 messages left
        Assert.Equal(RateDecision.Allowed, At(limiter, bytes: 4_000)); // the refusal took nothing
        Assert.Equal(RateDecision.Refused, At(limiter, bytes: 1)); // no byte left
        Assert.Equal(RateDecision.Allowed, At(limiter, bytes: 0)); // a message charged no bytes still passes
    }

    [Fact]
    public void Bytes_RefillAtTheByteRate_UpToTheByteBurst()
    {
        var limiter = Limiter(burst: 100, perSecond: 100, byteBurst: 4_096, bytesPerSecond: 1_024);
        Assert.Equal(RateDecision.Allowed, At(limiter, bytes: 4_096));

        _time.Advance(TimeSpan.FromMilliseconds(999)); // not quite 1,024 back
        Assert.Equal(RateDecision.Refused, At(limiter, bytes: 1_024));
        _time.Advance(TimeSpan.FromMilliseconds(2));
        Assert.Equal(RateDecision.Allowed, At(limiter, bytes: 1_024));

        _time.Advance(TimeSpan.FromHours(1)); // full again, and no more
        Assert.Equal(RateDecision.Refused, At(limiter, bytes: 4_097));
        Assert.Equal(RateDecision.Allowed, At(limiter, bytes: 4_096));
    }

    [Fact]
    public void Bytes_ReturnGivesThemBack_UpToTheByteBurst()
    {
        var limiter = Limiter(burst: 100, byteBurst: 10_000);
        Assert.Equal(RateDecision.Allowed, At(limiter, bytes: 10_000));

        limiter.Return("c", 1, 3_000);
        Assert.Equal(RateDecision.Refused, At(limiter, bytes: 3_001));
        Assert.Equal(RateDecision.Allowed, At(limiter, bytes: 3_000));

        limiter.Return("c", 1, 50_000); // more than was taken: the bucket holds no more than its burst
        Assert.Equal(RateDecision.Refused, At(limiter, bytes: 10_001));
    }

    [Fact]
    public void Bytes_AReconnectDoesNotBuyAFreshByteBurst()
    {
        var limiter = Limiter(burst: 100, byteBurst: 10_000);
        Assert.Equal(RateDecision.Allowed, At(limiter, bytes: 9_000));

        limiter.Transfer("c", "d");
        Assert.Equal(RateDecision.Refused, limiter.TryAcquireAt("d", 1, 2_000, _time.GetTimestamp()));
        Assert.Equal(RateDecision.Allowed, limiter.TryAcquireAt("d", 1, 1_000, _time.GetTimestamp()));
    }

    [Fact]
    public void Bytes_ABucketWhoseBytesAreNotBackIsNotSweptAway()
    {
        // Messages refill in a second, bytes in 100: the sweep (every 101 s) finds a bucket drained of bytes 12 s before
        // with all its message tokens back. Dropping it would hand the connection a fresh byte burst.
        var limiter = Limiter(burst: 10, perSecond: 10, byteBurst: 100_000, bytesPerSecond: 1_000, window: TimeSpan.FromSeconds(1));
        _time.Advance(TimeSpan.FromSeconds(90));
        Assert.Equal(RateDecision.Allowed, At(limiter, bytes: 100_000));

        _time.Advance(TimeSpan.FromSeconds(12));
        Assert.Equal(RateDecision.Allowed, limiter.TryAcquireAt("other", 1, 0, _time.GetTimestamp())); // the sweep is due
        Assert.Equal(2, limiter.Count);
        Assert.Equal(RateDecision.Refused, At(limiter, bytes: 50_000)); // about 12,000 back, not a fresh 100,000
        Assert.Equal(RateDecision.Allowed, At(limiter, bytes: 11_000));
    }

    [Fact]
    public void Bytes_Negative_Throws()
    {
        var limiter = Limiter(burst: 1);

        Assert.Throws<ArgumentOutOfRangeException>(() => At(limiter, bytes: -1));
        Assert.Throws<ArgumentOutOfRangeException>(() => limiter.Return("c", 1, -1));
    }

    [Fact]
    public void OnTheRealClock_MessagesAndBytesRefillAtTheirRates_NeverEarly()
    {
        // The limiter converts its rates into units of the clock's timestamps. The fake clock counts in ticks (10 MHz), the
        // real one on Linux in nanoseconds: a conversion that assumed either would pass every test above on one clock and
        // refill 100 times too fast or too slow on the other. One limiter per bucket, the other bucket too large to matter:
        // 50 messages/s after a burst of 5, and 5,000 bytes/s after a burst of 500 bytes (100 bytes a message).
        var time = TimeProvider.System;
        var messages = new ConnectionRateLimiter(time, Limits(burst: 5, perSecond: 50, byteBurst: 1_000_000, bytesPerSecond: 1_000_000));
        var bytes = new ConnectionRateLimiter(time, Limits(burst: 1_000, perSecond: 1_000, byteBurst: 500, bytesPerSecond: 5_000));

        AssertRefillTakes200Ms(messages, time); // (15 − 5) messages / 50 per second
        AssertRefillTakes200Ms(bytes, time); // (1,500 − 500) bytes / 5,000 per second

        static void AssertRefillTakes200Ms(ConnectionRateLimiter limiter, TimeProvider time)
        {
            // 15 messages of 100 bytes, each tried again a millisecond after a refusal. Not before 200 ms (early); and
            // under a second, so that a refill five times too slow fails too, while a busy machine's late wake-up, which
            // delays only the last message (the tokens accrue meanwhile), does not.
            var started = time.GetTimestamp();
            var allowed = 0;
            while (allowed < 15 && time.GetElapsedTime(started) < TimeSpan.FromSeconds(1))
            {
                if (limiter.TryAcquireAt("c", 1, 100, time.GetTimestamp()) == RateDecision.Allowed)
                {
                    allowed++;
                }
                else
                {
                    Thread.Sleep(1);
                }
            }

            var took = time.GetElapsedTime(started);
            Assert.True(allowed == 15, $"{allowed} of 15 allowed in {took.TotalMilliseconds} ms: the bucket refilled too slowly");
            Assert.True(took >= TimeSpan.FromMilliseconds(199.9), $"15 allowed after {took.TotalMilliseconds} ms: the bucket refilled early");
        }
    }

    private RateDecision At(ConnectionRateLimiter limiter, int bytes) => limiter.TryAcquireAt("c", 1, bytes, _time.GetTimestamp());

    private static TalkiLimitsOptions Limits(int burst, int perSecond = 1, int refusalsBeforeClose = 100, int byteBurst = 1_000_000, int bytesPerSecond = 1_000_000, TimeSpan? window = null)
        => new()
        {
            MessageBurst = burst,
            MessagesPerSecond = perSecond,
            MessageBytesBurst = byteBurst,
            MessageBytesPerSecond = bytesPerSecond,
            RateLimitedMessagesBeforeClose = refusalsBeforeClose,
            RateLimitWindow = window ?? TimeSpan.FromMinutes(10),
        };

    private ConnectionRateLimiter Limiter(int burst, int perSecond = 1, int refusalsBeforeClose = 100, int byteBurst = 1_000_000, int bytesPerSecond = 1_000_000, TimeSpan? window = null)
        => new(_time, Limits(burst, perSecond, refusalsBeforeClose, byteBurst, bytesPerSecond, window));
}
