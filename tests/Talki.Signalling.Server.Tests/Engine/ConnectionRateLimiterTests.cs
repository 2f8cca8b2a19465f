using Microsoft.Extensions.Time.Testing;
using Talki.Signalling.Server.Engine;

namespace Talki.Signalling.Server.Tests.Engine;

/// <summary>
/// The connection's token bucket taking several tokens at once (a <c>signals</c> frame pays one per entry): all of them or
/// none, and a refusal counts once towards the close however many tokens it asked for.
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

    private ConnectionRateLimiter Limiter(int burst, int perSecond = 1, int refusalsBeforeClose = 100)
        => new(_time, new TalkiLimitsOptions
        {
            MessageBurst = burst,
            MessagesPerSecond = perSecond,
            RateLimitedMessagesBeforeClose = refusalsBeforeClose,
            RateLimitWindow = TimeSpan.FromMinutes(10),
        });
}
