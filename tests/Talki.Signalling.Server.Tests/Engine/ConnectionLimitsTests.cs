using Microsoft.Extensions.Time.Testing;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Server.Tests.Engine;

/// <summary>
/// "Any member can kick any peer": per-connection rate limits on inbound messages, the close of an abusive sender, and
/// the hello timeout, on the engine with a fake clock.
/// </summary>
public sealed class ConnectionLimitsTests
{
    /// <summary>The default burst of a connection's bucket (<c>Limits.MessageBurst</c>).</summary>
    private const int DefaultBurst = 200;

    private const string RateLimited = "rate_limited";

    [Fact]
    public async Task Burst_OfAThousandSignals_RelaysAtMostTheBurst_RefusesTheRestWithRateLimited_ClosesTheSender_TheOthersStillRelay()
    {
        using var h = new EngineHarness();
        var (admin, adminConnection, members) = await h.RoomWithMembersAsync("bob", "cy");
        var (bob, bobConnection) = members[0];
        var (cy, cyConnection) = members[1];
        h.Push.Clear();

        for (var i = 0; i < 1_000; i++)
        {
            await h.SendAsync(bobConnection, Signal(admin.Member, "flood-" + i));
        }

        var relayed = h.Push.To<SignalRelayMessage>(adminConnection);
        Assert.InRange(relayed.Count, 1, DefaultBurst);
        Assert.Equal([.. Enumerable.Range(0, relayed.Count).Select(i => "flood-" + i)], relayed.Select(m => m.Candidates![0].Candidate));

        // Every signal that was not relayed was refused, by name, with rate_limited.
        var errors = h.Push.To<ErrorMessage>(bobConnection);
        Assert.Equal(1_000 - relayed.Count, errors.Count);
        Assert.All(errors, e => Assert.Equal(RateLimited, e.Code.ToWireName()));
        Assert.Equal([.. Enumerable.Range(relayed.Count, errors.Count).Select(i => "s-flood-" + i)], errors.Select(e => e.Id));

        // The abusive sender is closed (1008, with a reason); nobody else is.
        Assert.True(h.Push.WasClosed(bobConnection));
        Assert.Equal("rate limit exceeded", h.Push.PolicyCloseReason(bobConnection));
        Assert.False(h.Push.WasClosed(adminConnection));
        Assert.False(h.Push.WasClosed(cyConnection));

        // The others still relay to each other, both ways.
        h.Push.Clear();
        await h.SendAsync(adminConnection, Signal(cy.Member, "admin-to-cy"));
        await h.SendAsync(cyConnection, Signal(admin.Member, "cy-to-admin"));
        Assert.Equal("admin-to-cy", h.Push.Single<SignalRelayMessage>(cyConnection).Candidates![0].Candidate);
        Assert.Equal("cy-to-admin", h.Push.Single<SignalRelayMessage>(adminConnection).Candidates![0].Candidate);
        Assert.Empty(h.Push.To<ErrorMessage>(adminConnection));
        Assert.Empty(h.Push.To<ErrorMessage>(cyConnection));
    }

    [Fact]
    public async Task PastTheBurst_SignalsAreRefused_UntilTheClockRefillsTheBucket_ThenTheSenderMaySendAgain()
    {
        using var h = new EngineHarness();
        var (admin, adminConnection, members) = await h.RoomWithMembersAsync("bob");
        var (_, bobConnection) = members[0];
        h.Push.Clear();

        for (var i = 0; i < DefaultBurst + 50; i++)
        {
            await h.SendAsync(bobConnection, Signal(admin.Member, "burst-" + i));
        }

        Assert.InRange(h.Push.To<SignalRelayMessage>(adminConnection).Count, 1, DefaultBurst);
        Assert.Contains(h.Push.To<ErrorMessage>(bobConnection), e => e.Code.ToWireName() == RateLimited);
        Assert.False(h.Push.WasClosed(bobConnection)); // a short overrun is refused, not punished

        h.Time.Advance(TimeSpan.FromSeconds(1));
        h.Push.Clear();
        for (var i = 0; i < 10; i++)
        {
            await h.SendAsync(bobConnection, Signal(admin.Member, "later-" + i));
        }

        Assert.Equal(10, h.Push.To<SignalRelayMessage>(adminConnection).Count);
        Assert.Empty(h.Push.To<ErrorMessage>(bobConnection));
    }

    [Fact]
    public async Task HelloTimeout_OnAFakeClock_AConnectionThatNeverSaysHelloIsClosed_OneThatDidIsNot()
    {
        using var h = new EngineHarness();
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var talker = await h.ConnectAsync(admin);
        var bob = await h.JoinAsync(EngineHarness.User("bob"), admin.Room);
        var silent = await h.ConnectAsync(bob, hello: false);

        h.Time.Advance(TimeSpan.FromSeconds(9));
        await Task.Delay(50);
        Assert.False(h.Push.WasClosed(silent));

        h.Time.Advance(TimeSpan.FromSeconds(1) + TimeSpan.FromMilliseconds(10));
        await WaitUntilAsync(() => h.Push.WasClosed(silent));
        Assert.True(h.Push.WasClosed(silent));
        Assert.Contains("hello", h.Push.PolicyCloseReason(silent), StringComparison.Ordinal);

        h.Time.Advance(TimeSpan.FromMinutes(1));
        await Task.Delay(50);
        Assert.False(h.Push.WasClosed(talker));
    }

    [Fact]
    public async Task HelloTimeout_OnAClockWhoseTimersFireEarly_NeverClosesBeforeTheTimeout_AndStillClosesAfterIt()
    {
        var fake = new FakeTimeProvider(new DateTimeOffset(2026, 11, 30, 12, 0, 0, TimeSpan.Zero));
        var clock = new SealTimingTests.EarlyFiringTimeProvider(fake, maxEarly: TimeSpan.FromMilliseconds(40), seed: 7);
        var push = new RecordingPush();
        using var h = new EngineHarness(clock: clock, push: push);
        var admin = (await h.Engine.CreateRoomAsync(EngineHarness.User("ada"))).Value;
        var silent = h.NewConnectionId();
        Assert.True((await h.Engine.ConnectAsync(silent, admin.Ticket.Value)).IsSuccess);
        var connectedAt = fake.GetUtcNow();

        // Up to a millisecond before the timeout: the early firings must not close it.
        while (fake.GetUtcNow() < connectedAt + TimeSpan.FromSeconds(10) - TimeSpan.FromMilliseconds(1))
        {
            fake.Advance(TimeSpan.FromMilliseconds(1));
            await Task.Yield();
        }

        await Task.Delay(50);
        Assert.False(push.WasClosed(silent));
        Assert.True(clock.EarlyFirings > 0, "the fake must actually fire early");

        // After it, the re-armed timer closes it.
        for (var i = 0; i < 20; i++)
        {
            fake.Advance(TimeSpan.FromMilliseconds(5));
            await Task.Yield();
        }

        await WaitUntilAsync(() => push.WasClosed(silent));
        Assert.True(push.WasClosed(silent));
    }

    [Fact]
    public async Task TheLimitsAreConfigurable_RateBurstAndRefusalsBeforeClose()
    {
        using var h = new EngineHarness(o =>
        {
            o.Limits.MessagesPerSecond = 2;
            o.Limits.MessageBurst = 5;
            o.Limits.MaxMembersPerRoom = 6; // a newcomer's batch of first offers must fit the burst (the options check)
            o.Limits.RateLimitedMessagesBeforeClose = 3;
            o.Limits.RateLimitWindow = TimeSpan.FromSeconds(5);
        });
        var (admin, adminConnection, members) = await h.RoomWithMembersAsync("bob");
        var (_, bobConnection) = members[0];
        h.Time.Advance(TimeSpan.FromSeconds(10)); // a full bucket
        h.Push.Clear();

        for (var i = 0; i < 7; i++)
        {
            await h.SendAsync(bobConnection, Signal(admin.Member, "a" + i));
        }

        Assert.Equal(5, h.Push.To<SignalRelayMessage>(adminConnection).Count);
        Assert.Equal(2, h.Push.To<ErrorMessage>(bobConnection).Count);
        Assert.False(h.Push.WasClosed(bobConnection));

        // Half a second refills one token; the window's refusals still count, so the third refusal closes.
        h.Time.Advance(TimeSpan.FromMilliseconds(500));
        await h.SendAsync(bobConnection, Signal(admin.Member, "b0"));
        await h.SendAsync(bobConnection, Signal(admin.Member, "b1"));
        Assert.Equal(6, h.Push.To<SignalRelayMessage>(adminConnection).Count);
        Assert.True(h.Push.WasClosed(bobConnection));
    }

    [Fact]
    public async Task LargeSignals_PastTheByteBurst_AreRefusedRateLimited_WhileSmallOnesStillPass_UntilTheBytesRefill()
    {
        // The default byte limits (256 KiB at once, 32 KiB a second): eight signals of about 30 KB fit, the ninth does not,
        // though 190 of the 200 messages of the burst are left. A small signal still passes; a second brings a large one back.
        using var h = new EngineHarness();
        var (admin, adminConnection, members) = await h.RoomWithMembersAsync("bob");
        var (_, bobConnection) = members[0];
        h.Time.Advance(TimeSpan.FromSeconds(10)); // full buckets
        h.Push.Clear();

        for (var i = 0; i < 9; i++)
        {
            await h.SendAsync(bobConnection, LargeSignal(admin.Member, i.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        }

        Assert.Equal(8, h.Push.To<SignalRelayMessage>(adminConnection).Count);
        var refused = Assert.Single(h.Push.To<ErrorMessage>(bobConnection));
        Assert.Equal(RateLimited, refused.Code.ToWireName());

        await h.SendAsync(bobConnection, Signal(admin.Member, "small"));
        Assert.Equal("small", h.Push.To<SignalRelayMessage>(adminConnection)[^1].Candidates![0].Candidate);

        h.Time.Advance(TimeSpan.FromSeconds(1)); // 32 KiB back
        await h.SendAsync(bobConnection, LargeSignal(admin.Member, "again"));
        Assert.Equal(10, h.Push.To<SignalRelayMessage>(adminConnection).Count);
        Assert.Single(h.Push.To<ErrorMessage>(bobConnection));
        Assert.False(h.Push.WasClosed(bobConnection));
    }

    [Fact]
    public async Task MessageOverTheSizeLimit_PaysForTheLargestAllowed_AndIsAnsweredMessageTooLarge()
    {
        // A 1 MB message must not be refused as rate_limited (it costs the largest allowed message, which the byte burst
        // always holds), nor empty the byte bucket by its size.
        using var h = new EngineHarness();
        var (admin, _, members) = await h.RoomWithMembersAsync("bob");
        var (_, bobConnection) = members[0];
        h.Time.Advance(TimeSpan.FromSeconds(10));
        h.Push.Clear();

        await h.SendAsync(bobConnection, Signal(admin.Member, new string('a', 1_000_000)));
        Assert.Equal("message_too_large", Assert.Single(h.Push.To<ErrorMessage>(bobConnection)).Code.ToWireName());
        for (var i = 0; i < 7; i++)
        {
            await h.SendAsync(bobConnection, LargeSignal(admin.Member, i.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        }

        Assert.Single(h.Push.To<ErrorMessage>(bobConnection)); // 32 KiB + 7 × 30 KB fit in 256 KiB
    }

    [Fact]
    public async Task RefusalsSpreadOverSeparateWindows_DoNotAddUpToAClose()
    {
        using var h = new EngineHarness(o =>
        {
            o.Limits.MessagesPerSecond = 1;
            o.Limits.MessageBurst = 1;
            o.Limits.MaxMembersPerRoom = 2;
            o.Limits.RateLimitedMessagesBeforeClose = 3;
            o.Limits.RateLimitWindow = TimeSpan.FromSeconds(2);
        });
        var (admin, _, members) = await h.RoomWithMembersAsync("bob");
        var (_, bobConnection) = members[0];
        for (var round = 0; round < 5; round++)
        {
            h.Time.Advance(TimeSpan.FromSeconds(3));
            for (var i = 0; i < 3; i++)
            {
                await h.SendAsync(bobConnection, Signal(admin.Member, $"r{round}-{i}")); // 1 relayed, 2 refused
            }
        }

        Assert.Equal(10, h.Push.To<ErrorMessage>(bobConnection).Count(e => e.Code == SignallingErrorCode.RateLimited));
        Assert.False(h.Push.WasClosed(bobConnection));
    }

    [Fact]
    public async Task Reconnecting_DoesNotBuyAFreshBurst()
    {
        using var h = new EngineHarness(o => o.Limits.MessageBurst = 10);
        var ada = EngineHarness.User("ada");
        var admin = await h.CreateRoomAsync(ada);
        var first = await h.ConnectAsync(admin);
        for (var i = 0; i < 9; i++)
        {
            await h.SendAsync(first, """{"type":"ping"}""");
        }

        // The bucket is empty; a new connection of the same member (the old one is superseded) inherits it.
        var second = await h.ConnectAsync((await h.Engine.IssueJoinTicketAsync(ada, admin.Room)).Value, hello: false);
        Assert.True(h.Push.WasClosed(first));
        h.Push.Clear();
        await h.SendAsync(second, """{"type":"hello","version":1}""");

        Assert.Equal(SignallingErrorCode.RateLimited, h.Push.LastError(second).Code);
        Assert.Empty(h.Push.To<WelcomeMessage>(second));
        h.Time.Advance(TimeSpan.FromSeconds(1));
        await h.SendAsync(second, """{"type":"hello","version":1}""");
        Assert.Single(h.Push.To<WelcomeMessage>(second));
    }

    [Fact]
    public async Task State_IsReleasedOnDisconnect_AndSocketsOpenedAndClosedInALoopLeaveNothingBehind()
    {
        using var h = new EngineHarness(o => o.Limits.KnocksPerUserPerMinute = 100_000);
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var adminConnection = await h.ConnectAsync(admin);
        var bob = EngineHarness.User("bob");
        for (var i = 0; i < 500; i++)
        {
            var grant = await h.JoinAsync(bob, admin.Room);
            var connection = await h.ConnectAsync(grant, hello: i % 2 == 0);
            await h.SendAsync(connection, """{"type":"ping"}""");
            await h.Engine.DisconnectAsync(connection);
        }

        Assert.Equal(1, h.Concrete.RateLimitedConnectionCount); // the admin's
        Assert.Equal(0, h.Concrete.HelloTimerCount);
        await h.Engine.DisconnectAsync(adminConnection);
        Assert.Equal(0, h.Concrete.RateLimitedConnectionCount);
    }

    [Fact]
    public async Task State_OfConnectionsWhoseDisconnectNeverArrives_IsSweptOnceAtRest()
    {
        // On AWS the $disconnect of a connection may reach another process than its messages did.
        using var h = new EngineHarness();
        for (var i = 0; i < 1_000; i++)
        {
            await h.SendAsync("elsewhere-" + i, """{"type":"ping"}""");
        }

        Assert.Equal(1_000, h.Concrete.RateLimitedConnectionCount);
        h.Time.Advance(TimeSpan.FromMinutes(1));
        await h.SendAsync("now", """{"type":"ping"}""");
        Assert.Equal(1, h.Concrete.RateLimitedConnectionCount);
    }

    /// <summary>A signal of about 30 KB (a candidate of 30,000 characters), without an id.</summary>
    private static string LargeSignal(MemberId to, string name)
        => $$$"""{"type":"signal","to":"{{{to}}}","candidates":[{"candidate":"{{{name}}}-{{{new string('a', 30_000)}}}"}]}""";

    private static string Signal(MemberId to, string candidate)
        => $$$"""{"type":"signal","id":"s-{{{candidate}}}","to":"{{{to}}}","candidates":[{"candidate":"{{{candidate}}}"}]}""";

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        // Timer callbacks run on the thread pool: a generous upper bound, not a performance assertion.
        for (var i = 0; i < 500 && !condition(); i++)
        {
            await Task.Delay(10);
        }
    }
}
