using Microsoft.Extensions.Logging;
using Talki.Signalling.Client.Negotiation;
using Talki.Signalling.Client.Tests.Support;

namespace Talki.Signalling.Client.Tests;

/// <summary>The call's two state machines, and its robustness: idempotent dispose, a cancellable start, throwing application handlers.</summary>
public sealed class TalkiCallLifecycleTests
{
    private static readonly HashSet<(TalkiConnectionState, TalkiConnectionState)> ExpectedConnectionTable =
    [
        (TalkiConnectionState.Disconnected, TalkiConnectionState.Connecting),
        (TalkiConnectionState.Connecting, TalkiConnectionState.Connected),
        (TalkiConnectionState.Connecting, TalkiConnectionState.Disconnected),
        (TalkiConnectionState.Connected, TalkiConnectionState.Reconnecting),
        (TalkiConnectionState.Connected, TalkiConnectionState.Disconnected),
        (TalkiConnectionState.Reconnecting, TalkiConnectionState.Connected),
        (TalkiConnectionState.Reconnecting, TalkiConnectionState.Disconnected),
    ];

    private static readonly HashSet<(TalkiAdmissionState, TalkiAdmissionState)> ExpectedAdmissionTable =
    [
        (TalkiAdmissionState.None, TalkiAdmissionState.Waiting),
        (TalkiAdmissionState.None, TalkiAdmissionState.Admitted),
        (TalkiAdmissionState.None, TalkiAdmissionState.Denied),
        (TalkiAdmissionState.None, TalkiAdmissionState.Left),
        (TalkiAdmissionState.Waiting, TalkiAdmissionState.Admitted),
        (TalkiAdmissionState.Waiting, TalkiAdmissionState.Denied),
        (TalkiAdmissionState.Waiting, TalkiAdmissionState.Left),
        (TalkiAdmissionState.Admitted, TalkiAdmissionState.Sealed),
        (TalkiAdmissionState.Admitted, TalkiAdmissionState.Left),
        (TalkiAdmissionState.Sealed, TalkiAdmissionState.Left),
    ];

    [Fact]
    public void ConnectionStateTable_EveryAllowedTransitionApplies_EveryOtherIsRefusedAndLogged() =>
        WalkTable(TalkiCall.ConnectionTransitions, ExpectedConnectionTable);

    [Fact]
    public void AdmissionStateTable_EveryAllowedTransitionApplies_EveryOtherIsRefusedAndLogged() =>
        WalkTable(TalkiCall.AdmissionTransitions, ExpectedAdmissionTable);

    [Fact]
    public async Task DisposeAsync_Twice_SecondIsANoOp()
    {
        await using var world = await CallWorld.StartAsync();
        var a = await world.SignInAsync("Ada");
        Assert.True((await a.Call.CreateRoomAsync()).IsSuccess);

        await a.Call.DisposeAsync();
        int events;
        lock (a.Events)
        {
            events = a.Events.Count;
        }

        await a.Call.DisposeAsync();

        lock (a.Events)
        {
            Assert.Equal(events, a.Events.Count);
        }

        Assert.Equal(TalkiAdmissionState.Left, a.Call.AdmissionState);
        Assert.Equal(TalkiConnectionState.Disconnected, a.Call.ConnectionState);
        Assert.Equal(TalkiDisconnectReason.Left, Assert.Single(a.EventsOf<TalkiDisconnectedEventArgs>(nameof(TalkiCall.Disconnected))).Reason);
        await Assert.ThrowsAsync<InvalidOperationException>(() => a.Call.JoinRoomAsync(RoomId.New()));
    }

    [Fact]
    public async Task CancelStart_WhileOpeningTheSocket_StopsTheAttempt_NoSocketOpensLater()
    {
        await using var world = await CallWorld.StartAsync();
        var a = await world.SignInAsync("Ada");
        Assert.True((await a.Call.CreateRoomAsync()).IsSuccess);
        var b = await world.SignInAsync("Bob");
        b.ConnectGate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var cancel = new CancellationTokenSource();

        var joining = b.Call.JoinRoomAsync(a.Call.Room!.Id, cancel.Token);
        await CallWorld.EventuallyAsync(() => b.ConnectAttempts == 1, "B is opening its socket");
        await cancel.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => joining);
        Assert.Equal(TalkiConnectionState.Disconnected, b.Call.ConnectionState);
        var ended = Assert.Single(b.EventsOf<TalkiDisconnectedEventArgs>(nameof(TalkiCall.Disconnected)));
        Assert.Equal(TalkiDisconnectReason.Cancelled, ended.Reason);

        b.ConnectGate.SetResult(); // a connection attempt still running would open its socket now
        await Task.Delay(300);
        Assert.Empty(b.Sockets);
        Assert.Equal(1, b.ConnectAttempts);
    }

    [Fact]
    public async Task CancelStart_BeforeTheTicket_ThrowsAndEndsCancelled_NoSocket()
    {
        await using var world = await CallWorld.StartAsync();
        var a = await world.SignInAsync("Ada");
        using var cancel = new CancellationTokenSource();
        await cancel.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => a.Call.CreateRoomAsync(cancel.Token));

        Assert.Equal(TalkiConnectionState.Disconnected, a.Call.ConnectionState);
        Assert.Equal(TalkiDisconnectReason.Cancelled, Assert.Single(a.EventsOf<TalkiDisconnectedEventArgs>(nameof(TalkiCall.Disconnected))).Reason);
        Assert.Equal(0, a.ConnectAttempts);
    }

    [Fact]
    public async Task ApplicationHandlersThrow_TheConnectionAndTheMeshGoOn()
    {
        await using var world = await CallWorld.StartAsync();
        var a = await world.SignInAsync("Ada");
        var thrown = 0;
        void Throw()
        {
            Interlocked.Increment(ref thrown);
            throw new InvalidOperationException("an application bug");
        }

        a.Call.Changed += (_, _) => Throw();
        a.Call.ConnectionStateChanged += (_, _) => Throw();
        a.Call.AdmissionStateChanged += (_, _) => Throw();
        a.Call.AdmissionRequested += (_, _) => Throw();
        a.Call.MemberJoined += (_, _) => Throw();
        Assert.True((await a.Call.CreateRoomAsync()).IsSuccess);
        var b = await world.SignInAsync("Bob");
        Assert.True((await b.Call.JoinRoomAsync(a.Call.Room!.Id)).IsSuccess);
        await CallWorld.EventuallyAsync(() => a.Call.PendingAdmissions.Count == 1, "A sees B's request");

        await a.Call.AdmitAsync(b.Call.Self!.Id);

        await CallWorld.EventuallyAsync(() => b.InCall, "B is admitted");
        await CallWorld.EventuallyAsync(() => a.ConnectedLinks.Count == 1 && b.ConnectedLinks.Count == 1, "A and B are linked");
        Assert.True(a.InCall);
        Assert.Single(a.Sockets); // never reconnected: the throws did not break the connection
        Assert.Contains(a.EventsOf<TalkiMemberEventArgs>(nameof(TalkiCall.MemberJoined)), e => e.Member == b.Id); // later handlers still ran
        Assert.True(thrown >= 5, $"{thrown} handlers threw");
    }

    private static void WalkTable<TState>(IReadOnlyList<(TState From, TState To)> table, HashSet<(TState, TState)> expected)
        where TState : struct, Enum
    {
        Assert.Equal(expected.Count, table.Count);
        foreach (var from in Enum.GetValues<TState>())
        {
            foreach (var to in Enum.GetValues<TState>())
            {
                var logger = new CountingLogger();
                var machine = new StateMachine<TState>("test", from, table, logger);

                var applied = machine.TrySetState(to, out var previous);

                var allowed = expected.Contains((from, to));
                Assert.True(allowed == applied, $"{from} -> {to}: expected {(allowed ? "allowed" : "refused")}");
                Assert.Equal(from, previous);
                Assert.Equal(applied ? to : from, machine.State);
                Assert.Equal(applied ? 0 : 1, logger.Count);
            }
        }
    }

    private sealed class CountingLogger : ILogger
    {
        public int Count { get; private set; }

        public IDisposable? BeginScope<TScope>(TScope state)
            where TScope : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TLogState>(LogLevel logLevel, EventId eventId, TLogState state, Exception? exception, Func<TLogState, Exception?, string> formatter) => Count++;
    }
}
