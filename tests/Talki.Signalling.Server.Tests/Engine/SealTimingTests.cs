using System.Collections.Concurrent;
using System.Text;
using Microsoft.Extensions.Time.Testing;
using Talki.Signalling.Ports;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Server.Tests.Engine;

/// <summary>
/// "The server leaves the scene": every room seals at <c>sealsAt</c>, pushes <c>room_sealed</c> and closes its sockets,
/// on the real clock (whose timers can fire before the wall clock reaches their due instant) and on a fake one.
/// </summary>
[Collection(RealClockTests.Name)]
public sealed class SealTimingTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private const int Rooms = 1_000;
    private static readonly TimeSpan Tolerance = TimeSpan.FromSeconds(1);

    [Fact]
    public async Task Seal_1000RoomsOnTheRealClock_EverySocketGetsRoomSealedAndClosesWithinOneSecondOfSealsAt()
    {
        var push = new TimedPush(TimeProvider.System);
        using var h = new EngineHarness(o => o.JoinWindow = TimeSpan.FromSeconds(10), clock: TimeProvider.System, push: push);
        var rooms = await CreateRoomsAsync(h);

        var last = rooms.Max(r => r.Grant.SealsAt);
        var wait = last + Tolerance + TimeSpan.FromMilliseconds(500) - DateTimeOffset.UtcNow;
        await Task.Delay(wait > TimeSpan.Zero ? wait : TimeSpan.Zero);

        Report(rooms, push, "real clock");
        AssertEveryRoomSealedOnTime(rooms, push);
    }

    [Fact]
    public async Task Seal_1000RoomsOnAFakeClockWhoseTimersFireEarly_EverySocketGetsRoomSealedAndClosesWithinOneSecondOfSealsAt()
    {
        // A fake clock that fires like the real one can: System.Threading.Timer takes whole milliseconds of a monotonic
        // tick count (TimeProvider.System truncates the TimeSpan), not the wall clock that GetUtcNow reads, so a timer
        // may run a little before GetUtcNow() reaches its due instant. FakeTimeProvider alone never fires early.
        var fake = new FakeTimeProvider(new DateTimeOffset(2026, 11, 30, 12, 0, 0, TimeSpan.Zero));
        var clock = new EarlyFiringTimeProvider(fake, maxEarly: TimeSpan.FromMilliseconds(40), seed: 13);
        var push = new TimedPush(clock);
        using var h = new EngineHarness(o => o.JoinWindow = TimeSpan.FromSeconds(10), clock: clock, push: push);
        var rooms = new List<(TicketGrant Grant, string Connection)>();
        for (var i = 0; i < Rooms; i++)
        {
            rooms.Add(await CreateConnectedRoomAsync(h));
            fake.Advance(TimeSpan.FromMilliseconds(3));
        }

        var end = rooms.Max(r => r.Grant.SealsAt) + Tolerance + Tolerance;
        while (fake.GetUtcNow() < end)
        {
            fake.Advance(TimeSpan.FromMilliseconds(5));
            await Task.Yield();
        }

        await WaitForPendingSealsAsync(push, rooms.Count);
        AssertEveryRoomSealedOnTime(rooms, push);
        Assert.True(clock.EarlyFirings > Rooms / 2, $"the fake must actually fire early ({clock.EarlyFirings} early firings)");
    }

    [Fact]
    public async Task Seal_CalledBeforeSealsAt_KeepsTheTimerAndSealsOnTime()
    {
        var push = new TimedPush(null);
        using var h = new EngineHarness(clock: null, push: push);
        var (grant, connection) = await CreateConnectedRoomAsync(h);

        await h.Concrete.SealRoomAsync(grant.Room); // early: a no-op that must not cancel the seal
        Assert.Empty(push.Sealed(connection));

        h.Time.Advance(grant.SealsAt - h.Time.GetUtcNow());
        await WaitForPendingSealsAsync(push, 1);
        Assert.Single(push.Sealed(connection));
        Assert.True(push.WasClosed(connection));
    }

    [Fact]
    public async Task CreateRoom_InsideARequestsExecutionContext_TheArmedSealTimerKeepsNothingOfThatContextAlive()
    {
        // The seal timer is armed by the request that creates the room (on the real clock: a System.Threading.Timer,
        // which captures the execution context it is created in). Before ContextFreeTimers it kept the request's
        // Activity, logging scope and async locals for the whole join window.
        using var h = new EngineHarness(o => o.JoinWindow = TimeSpan.FromMinutes(5), clock: TimeProvider.System);
        var requestState = await CreateRoomInARequestAsync(h);

        for (var i = 0; i < 3 && requestState.IsAlive; i++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }

        Assert.False(requestState.IsAlive, "an object in the creating request's async locals outlived the request");
        Assert.Equal(1, h.Concrete.SealTimerCount); // the room is open and its seal timer armed
    }

    private static readonly AsyncLocal<object?> RequestState = new();

    /// <summary>Creates a room as a request would: with something of its own in an async local, gone when it returns.</summary>
    private static async Task<WeakReference> CreateRoomInARequestAsync(EngineHarness h)
    {
        var state = EnterRequest();
        Assert.True((await h.Engine.CreateRoomAsync(EngineHarness.User("admin-" + Guid.NewGuid().ToString("N")))).IsSuccess);
        return state;
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static WeakReference EnterRequest()
    {
        var state = new object();
        RequestState.Value = state;
        return new WeakReference(state);
    }

    /// <summary>Writes the lateness of the seals (a figure for docs/reliability.md, never an assertion).</summary>
    private void Report(List<(TicketGrant Grant, string Connection)> rooms, TimedPush push, string clock)
    {
        var late = rooms.Where(r => push.Sealed(r.Connection).Count > 0).Select(r => (push.Sealed(r.Connection)[0] - r.Grant.SealsAt).TotalMilliseconds).Order().ToList();
        if (late.Count > 0)
        {
            output.WriteLine($"{clock}: {late.Count} rooms sealed; room_sealed after sealsAt: min {late[0]:F1} ms, p50 {late[late.Count / 2]:F1} ms, p99 {late[(int)(late.Count * 0.99)]:F1} ms, max {late[^1]:F1} ms");
        }
    }

    private static async Task<List<(TicketGrant Grant, string Connection)>> CreateRoomsAsync(EngineHarness h)
    {
        var rooms = new List<(TicketGrant, string)>(Rooms);
        for (var i = 0; i < Rooms; i++)
        {
            rooms.Add(await CreateConnectedRoomAsync(h));
        }

        return rooms;
    }

    private static async Task<(TicketGrant Grant, string Connection)> CreateConnectedRoomAsync(EngineHarness h)
    {
        var grant = (await h.Engine.CreateRoomAsync(EngineHarness.User("admin-" + Guid.NewGuid().ToString("N")))).Value;
        var connection = h.NewConnectionId();
        Assert.True((await h.Engine.ConnectAsync(connection, grant.Ticket.Value)).IsSuccess);
        await h.SendAsync(connection, """{"type":"hello","version":1}""");
        return (grant, connection);
    }

    private static async Task WaitForPendingSealsAsync(TimedPush push, int rooms)
    {
        // Seal callbacks run on the thread pool; give them a moment to finish their pushes.
        for (var i = 0; i < 200 && push.SealedCount < rooms; i++)
        {
            await Task.Delay(10);
        }
    }

    private static void AssertEveryRoomSealedOnTime(List<(TicketGrant Grant, string Connection)> rooms, TimedPush push)
    {
        var late = new List<string>();
        foreach (var (grant, connection) in rooms)
        {
            var sealedAt = push.Sealed(connection);
            var closedAt = push.ClosedAt(connection);
            if (sealedAt.Count != 1 || closedAt is null
                || (sealedAt[0] - grant.SealsAt).Duration() > Tolerance
                || (closedAt.Value - grant.SealsAt).Duration() > Tolerance)
            {
                late.Add($"{grant.Room}: sealsAt {grant.SealsAt:O}, room_sealed at [{string.Join(", ", sealedAt.Select(t => t.ToString("O")))}], closed at {closedAt:O}");
            }
        }

        Assert.True(late.Count == 0, $"{late.Count} of {rooms.Count} rooms did not seal within ±{Tolerance.TotalSeconds} s:\n{string.Join('\n', late.Take(10))}");
    }

    /// <summary>Records when each connection got <c>room_sealed</c> and when it was closed, on the given clock.</summary>
    private sealed class TimedPush(TimeProvider? clock) : IConnectionPush
    {
        private readonly ConcurrentDictionary<string, ConcurrentQueue<DateTimeOffset>> _sealed = new();
        private readonly ConcurrentDictionary<string, DateTimeOffset> _closed = new();
        private int _sealedCount;

        public TimeProvider? Clock { get; set; } = clock;

        public int SealedCount => Volatile.Read(ref _sealedCount);

        public ValueTask<PushOutcome> PushAsync(string connectionId, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
        {
            if (Encoding.UTF8.GetString(payload.Span).Contains("\"type\":\"room_sealed\"", StringComparison.Ordinal))
            {
                _sealed.GetOrAdd(connectionId, _ => new()).Enqueue(Now());
                Interlocked.Increment(ref _sealedCount);
            }

            return new(PushOutcome.Delivered);
        }

        public ValueTask CloseAsync(string connectionId, CancellationToken cancellationToken = default)
        {
            _closed.TryAdd(connectionId, Now());
            return ValueTask.CompletedTask;
        }

        public IReadOnlyList<DateTimeOffset> Sealed(string connectionId) => _sealed.TryGetValue(connectionId, out var times) ? [.. times] : [];

        public DateTimeOffset? ClosedAt(string connectionId) => _closed.TryGetValue(connectionId, out var at) ? at : null;

        public bool WasClosed(string connectionId) => _closed.ContainsKey(connectionId);

        private DateTimeOffset Now() => (Clock ?? TimeProvider.System).GetUtcNow();
    }

    /// <summary>A clock whose timers fire up to <c>maxEarly</c> before their due instant, as real timers can.</summary>
    internal sealed class EarlyFiringTimeProvider(FakeTimeProvider inner, TimeSpan maxEarly, int seed) : TimeProvider
    {
        private readonly Random _random = new(seed);
        private int _earlyFirings;

        public int EarlyFirings => Volatile.Read(ref _earlyFirings);

        public override DateTimeOffset GetUtcNow() => inner.GetUtcNow();

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        {
            var timer = new EarlyTimer(this);
            timer.Inner = inner.CreateTimer(
                s =>
                {
                    if (inner.GetUtcNow() < timer.DueAt)
                    {
                        Interlocked.Increment(ref _earlyFirings);
                    }

                    callback(s);
                },
                state,
                timer.Shift(dueTime),
                period);
            return timer;
        }

        private TimeSpan Early()
        {
            lock (_random)
            {
                return TimeSpan.FromTicks((long)(_random.NextDouble() * maxEarly.Ticks));
            }
        }

        private sealed class EarlyTimer(EarlyFiringTimeProvider owner) : ITimer
        {
            public ITimer Inner { get; set; } = null!;

            public DateTimeOffset DueAt { get; private set; }

            public TimeSpan Shift(TimeSpan due)
            {
                if (due == Timeout.InfiniteTimeSpan)
                {
                    DueAt = DateTimeOffset.MaxValue;
                    return due;
                }

                DueAt = owner.GetUtcNow() + due;
                var early = due - owner.Early();
                return early < TimeSpan.Zero ? TimeSpan.Zero : early;
            }

            public bool Change(TimeSpan dueTime, TimeSpan period) => Inner.Change(Shift(dueTime), period);

            public void Dispose() => Inner.Dispose();

            public ValueTask DisposeAsync() => Inner.DisposeAsync();
        }
    }
}
