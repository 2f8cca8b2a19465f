using System.Collections.Concurrent;
using System.Text;
using Microsoft.Extensions.Time.Testing;
using Talki.Signalling.Ports;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Server.Tests.Engine;

/// <summary>
/// The resume grace period on the real clock and on a fake one whose timers fire early (as the real one may): a dropped
/// member's peers are told <c>peer_left</c> when its grace period ends, never before it, and not long after.
/// </summary>
[Collection(RealClockTests.Name)]
public sealed class GraceTimingTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private const int Rooms = 200;
    private static readonly TimeSpan Grace = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan Tolerance = TimeSpan.FromSeconds(1);

    [Fact]
    public async Task Grace_200DropsOnTheRealClock_EveryPeerLeftArrivesAtTheEndOfTheGracePeriod_NeverBefore()
    {
        var push = new TimedPush();
        using var h = new EngineHarness(o => o.ResumeGracePeriod = Grace, clock: TimeProvider.System, push: push);
        push.Clock = TimeProvider.System;
        var drops = await DropAsync(h, TimeProvider.System);

        await Task.Delay(Grace + Tolerance + TimeSpan.FromMilliseconds(500));

        Report(drops, push);
        AssertToldOnTime(drops, push);
    }

    [Fact]
    public async Task Grace_200DropsOnAFakeClockWhoseTimersFireEarly_NoPeerLeftBeforeTheGracePeriodEnds()
    {
        var fake = new FakeTimeProvider(new DateTimeOffset(2026, 11, 30, 12, 0, 0, TimeSpan.Zero));
        var clock = new SealTimingTests.EarlyFiringTimeProvider(fake, maxEarly: TimeSpan.FromMilliseconds(40), seed: 7);
        var push = new TimedPush { Clock = clock };
        using var h = new EngineHarness(o => o.ResumeGracePeriod = Grace, clock: clock, push: push);
        var drops = await DropAsync(h, clock, () => fake.Advance(TimeSpan.FromMilliseconds(3)));

        var end = drops.Max(d => d.DroppedAt) + Grace + Tolerance;
        while (fake.GetUtcNow() < end)
        {
            fake.Advance(TimeSpan.FromMilliseconds(5));
            await Task.Yield();
        }

        for (var i = 0; i < 200 && push.ToldCount < drops.Count; i++)
        {
            await Task.Delay(10);
        }

        AssertToldOnTime(drops, push);
        Assert.True(clock.EarlyFirings > Rooms / 2, $"the fake must actually fire early ({clock.EarlyFirings} early firings)");
        Assert.Equal(0, h.Concrete.GraceTimerCount);
    }

    private static async Task<List<(string AdminConnection, DateTimeOffset DroppedAt)>> DropAsync(EngineHarness h, TimeProvider clock, Action? between = null)
    {
        var drops = new List<(string, DateTimeOffset)>();
        for (var i = 0; i < Rooms; i++)
        {
            var admin = await h.Engine.CreateRoomAsync(EngineHarness.User("ada" + i));
            var adminConnection = h.NewConnectionId();
            await h.Engine.ConnectAsync(adminConnection, admin.Value.Ticket.Value);
            await h.SendAsync(adminConnection, """{"type":"hello","version":1}""");
            var bob = await h.Engine.IssueJoinTicketAsync(EngineHarness.User("bob" + i), admin.Value.Room);
            var bobConnection = h.NewConnectionId();
            await h.Engine.ConnectAsync(bobConnection, bob.Value.Ticket.Value);
            await h.SendAsync(bobConnection, """{"type":"hello","version":1}""");
            await h.SendAsync(adminConnection, $$$"""{"type":"admit","member":"{{{bob.Value.Member}}}"}""");
            var droppedAt = clock.GetUtcNow();
            await h.Engine.DisconnectAsync(bobConnection);
            drops.Add((adminConnection, droppedAt));
            between?.Invoke();
        }

        return drops;
    }

    private static void AssertToldOnTime(List<(string AdminConnection, DateTimeOffset DroppedAt)> drops, TimedPush push)
    {
        var wrong = new List<string>();
        foreach (var (connection, droppedAt) in drops)
        {
            var told = push.Told(connection);
            if (told.Count != 1 || told[0] < droppedAt + Grace || told[0] > droppedAt + Grace + Tolerance)
            {
                wrong.Add($"{connection}: dropped {droppedAt:O}, peer_left at [{string.Join(", ", told.Select(t => t.ToString("O")))}]");
            }
        }

        Assert.True(wrong.Count == 0, $"{wrong.Count} of {drops.Count} not told exactly once within [drop + grace, + {Tolerance.TotalSeconds} s]:\n" + string.Join('\n', wrong.Take(10)));
    }

    private void Report(List<(string AdminConnection, DateTimeOffset DroppedAt)> drops, TimedPush push)
    {
        var late = drops.Where(d => push.Told(d.AdminConnection).Count > 0).Select(d => (push.Told(d.AdminConnection)[0] - d.DroppedAt - Grace).TotalMilliseconds).Order().ToList();
        if (late.Count > 0)
        {
            output.WriteLine($"real clock: {late.Count} drops; peer_left after the grace period: min {late[0]:F1} ms, p50 {late[late.Count / 2]:F1} ms, max {late[^1]:F1} ms");
        }
    }

    private sealed class TimedPush : IConnectionPush
    {
        private readonly ConcurrentDictionary<string, ConcurrentQueue<DateTimeOffset>> _told = new();
        private int _toldCount;

        public TimeProvider Clock { get; set; } = TimeProvider.System;

        public int ToldCount => Volatile.Read(ref _toldCount);

        public ValueTask<PushOutcome> PushAsync(string connectionId, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
        {
            if (Encoding.UTF8.GetString(payload.Span).Contains("\"type\":\"peer_left\"", StringComparison.Ordinal))
            {
                _told.GetOrAdd(connectionId, _ => new()).Enqueue(Clock.GetUtcNow());
                Interlocked.Increment(ref _toldCount);
            }

            return new(PushOutcome.Delivered);
        }

        public ValueTask CloseAsync(string connectionId, CancellationToken cancellationToken = default) => ValueTask.CompletedTask;

        public IReadOnlyList<DateTimeOffset> Told(string connectionId) => _told.TryGetValue(connectionId, out var times) ? [.. times] : [];
    }
}
