using Microsoft.Extensions.Time.Testing;
using Talki.Signalling.Client.Negotiation;
using Talki.Signalling.Client.Tests.Support;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Client.Tests;

/// <summary>
/// The client closes its own socket at the seal (by the server's clock), once the links can renegotiate in-band, so that a
/// gateway without a seal timer (API Gateway) is not kept open for nothing; and a gateway that retries pushes cannot make
/// the client act twice on one message.
/// </summary>
public sealed class TalkiCallSealTests
{
    [Fact]
    public async Task AtTheSeal_EachClientClosesItsOwnSocket_WithoutAServerTimer_TheMeshStays_NobodyIsToldALeave()
    {
        // As on AWS: the server never closes sockets at the seal.
        await using var world = await CallWorld.StartAsync(TimeSpan.FromMinutes(5), o => o.SealRoomsOnTimer = false);
        var clocks = new List<FakeTimeProvider>();
        var (a, b) = await StartPairAsync(world, () =>
        {
            var clock = new FakeTimeProvider(world.ServerTime.GetUtcNow());
            clocks.Add(clock);
            return clock;
        });

        Advance(world, clocks, world.JoinWindow + TimeSpan.FromSeconds(1));

        foreach (var p in new[] { a, b })
        {
            // The states change before the Disconnected and Sealed events are raised: wait for the events too.
            await CallWorld.EventuallyAsync(() => p.Call.AdmissionState == TalkiAdmissionState.Sealed && p.Call.ConnectionState == TalkiConnectionState.Disconnected && p.EventsOf<TalkiDisconnectedEventArgs>(nameof(TalkiCall.Disconnected)).Count > 0 && p.EventsOf<EventArgs>(nameof(TalkiCall.Sealed)).Count > 0, $"{p.Name} sealed on its own");
            Assert.Equal(TalkiDisconnectReason.RoomSealed, Assert.Single(p.EventsOf<TalkiDisconnectedEventArgs>(nameof(TalkiCall.Disconnected))).Reason);
            Assert.Single(p.EventsOf<EventArgs>(nameof(TalkiCall.Sealed)));
            Assert.DoesNotContain(p.Socket.Sent, f => f.Contains("\"type\":\"leave\"", StringComparison.Ordinal));
            Assert.Empty(p.EventsOf<TalkiMemberEventArgs>(nameof(TalkiCall.MemberLeft)));
            Assert.Single(p.ConnectedLinks);
        }
    }

    [Fact]
    public async Task ClientClockTwoMinutesFast_StillClosesAtTheServersSeal_NotBefore()
    {
        await using var world = await CallWorld.StartAsync(TimeSpan.FromMinutes(5), o => o.SealRoomsOnTimer = false);
        var clocks = new List<FakeTimeProvider>();
        var (a, b) = await StartPairAsync(world, () =>
        {
            var clock = new FakeTimeProvider(world.ServerTime.GetUtcNow() + TimeSpan.FromMinutes(2));
            clocks.Add(clock);
            return clock;
        });

        // Past the seal by the clients' clocks, a second before it by the server's.
        Advance(world, clocks, world.JoinWindow - TimeSpan.FromSeconds(1));
        await Task.Delay(300);
        Assert.All(new[] { a, b }, p => Assert.Equal(TalkiConnectionState.Connected, p.Call.ConnectionState));
        Assert.All(new[] { a, b }, p => Assert.Equal(TalkiAdmissionState.Admitted, p.Call.AdmissionState));

        Advance(world, clocks, TimeSpan.FromSeconds(2));
        foreach (var p in new[] { a, b })
        {
            await CallWorld.EventuallyAsync(() => p.Call.ConnectionState == TalkiConnectionState.Disconnected, $"{p.Name} closed at the seal");
            Assert.Empty(p.EventsOf<TalkiMemberEventArgs>(nameof(TalkiCall.MemberLeft)));
        }
    }

    [Fact]
    public async Task AtTheSeal_ALinkNotUpYet_KeepsTheSocketForTheGrace_ThenCloses()
    {
        await using var world = await CallWorld.StartAsync(TimeSpan.FromMinutes(5), o => o.SealRoomsOnTimer = false);
        var clock = new FakeTimeProvider(world.ServerTime.GetUtcNow());
        var a = await world.SignInAsync("Ada", NoPingBeforeTheSeal(), clock);
        Assert.True((await a.Call.CreateRoomAsync()).IsSuccess);

        // A link to a member that never answers: its control channel never opens.
        var ghost = MemberId.New();
        a.Socket.Inject($$$"""{"type":"connect_to_peer","peer":{"id":"{{{ghost}}}","displayName":"Ghost","status":"admitted","online":true,"epoch":1},"peerEpoch":1,"offerer":true,"polite":false}""");
        await CallWorld.EventuallyAsync(() => a.Call.Links.Any(l => l.Peer == ghost), "A plans a link to the ghost");

        clock.Advance(world.JoinWindow + TimeSpan.FromSeconds(2));
        await Task.Delay(300);
        Assert.Equal(TalkiConnectionState.Connected, a.Call.ConnectionState); // still needed by the link coming up

        clock.Advance(TimeSpan.FromSeconds(10));
        await CallWorld.EventuallyAsync(() => a.Call.ConnectionState == TalkiConnectionState.Disconnected, "A closes after the grace");
        Assert.Equal(TalkiAdmissionState.Sealed, a.Call.AdmissionState);
    }

    [Fact]
    public async Task AtTheSeal_AMemberStillWaiting_EndsItsCall_RoomSealed()
    {
        await using var world = await CallWorld.StartAsync(TimeSpan.FromMinutes(5), o => o.SealRoomsOnTimer = false);
        var a = await world.SignInAsync("Ada");
        var created = await a.Call.CreateRoomAsync();
        var clock = new FakeTimeProvider(world.ServerTime.GetUtcNow());
        var c = await world.SignInAsync("Cleo", NoPingBeforeTheSeal(), clock);
        Assert.True((await c.Call.JoinRoomAsync(created.Value)).IsSuccess);
        Assert.Equal(TalkiAdmissionState.Waiting, c.Call.AdmissionState);

        clock.Advance(world.JoinWindow + TimeSpan.FromSeconds(1));

        await CallWorld.EventuallyAsync(() => c.Call.ConnectionState == TalkiConnectionState.Disconnected && c.EventsOf<TalkiDisconnectedEventArgs>(nameof(TalkiCall.Disconnected)).Count > 0, "C's call ends");
        Assert.Equal(SignallingErrorCode.RoomSealed, c.Call.FailureReason?.Code);
        Assert.Equal(TalkiDisconnectReason.RoomSealed, Assert.Single(c.EventsOf<TalkiDisconnectedEventArgs>(nameof(TalkiCall.Disconnected))).Reason);
        Assert.Empty(c.EventsOf<EventArgs>(nameof(TalkiCall.Sealed)));
    }

    [Fact]
    public async Task AMemberStillWaiting_WithItsClockTwoMinutesFast_KeepsWaitingUntilTheServersSeal_NotBefore()
    {
        // Protocol 3 tells a waiting member nothing (no welcome, so no server time): the ticket says when the room seals
        // by the server's clock, and what that clock read. A fast client clock must not end the wait early.
        await using var world = await CallWorld.StartAsync(TimeSpan.FromMinutes(5), o => o.SealRoomsOnTimer = false);
        var a = await world.SignInAsync("Ada");
        var created = await a.Call.CreateRoomAsync();
        var clock = new FakeTimeProvider(world.ServerTime.GetUtcNow() + TimeSpan.FromMinutes(2));
        var c = await world.SignInAsync("Cleo", NoPingBeforeTheSeal(), clock);
        Assert.True((await c.Call.JoinRoomAsync(created.Value)).IsSuccess);
        Assert.Equal(TalkiAdmissionState.Waiting, c.Call.AdmissionState);

        clock.Advance(world.JoinWindow - TimeSpan.FromSeconds(1)); // past the seal by its own clock, a second before by the server's
        await Task.Delay(300);
        Assert.Equal(TalkiConnectionState.Connected, c.Call.ConnectionState);
        Assert.Equal(TalkiAdmissionState.Waiting, c.Call.AdmissionState);

        clock.Advance(TimeSpan.FromSeconds(2));
        await CallWorld.EventuallyAsync(() => c.Call.ConnectionState == TalkiConnectionState.Disconnected, "C's wait ends at the seal");
        Assert.Equal(SignallingErrorCode.RoomSealed, c.Call.FailureReason?.Code);
    }

    [Fact]
    public async Task OnTheRealClock_TheSocketClosesAtTheSeal()
    {
        // The server's clock stands still; the client's is the real one. The room seals 2 seconds after B's welcome.
        await using var world = await CallWorld.StartAsync(TimeSpan.FromSeconds(10), o => o.SealRoomsOnTimer = false);
        var a = await world.SignInAsync("Ada");
        var created = await a.Call.CreateRoomAsync();
        Assert.True(created.IsSuccess);
        world.ServerTime.Advance(TimeSpan.FromSeconds(8));
        var b = await world.SignInAsync("Bob", clientTime: TimeProvider.System);
        Assert.True((await b.Call.JoinRoomAsync(created.Value)).IsSuccess);
        Assert.Equal(TalkiConnectionState.Connected, b.Call.ConnectionState);

        await CallWorld.EventuallyAsync(() => b.Call.ConnectionState == TalkiConnectionState.Disconnected && b.EventsOf<TalkiDisconnectedEventArgs>(nameof(TalkiCall.Disconnected)).Count > 0, "B's socket closes on the real clock", timeoutMs: 15_000);
        Assert.Equal(SignallingErrorCode.RoomSealed, b.Call.FailureReason?.Code);
        Assert.Equal(TalkiDisconnectReason.RoomSealed, Assert.Single(b.EventsOf<TalkiDisconnectedEventArgs>(nameof(TalkiCall.Disconnected))).Reason);
    }

    [Fact]
    public async Task LeavingAfterALocalSeal_StillSaysGoodbyeInBand()
    {
        await using var world = await CallWorld.StartAsync(TimeSpan.FromMinutes(5), o => o.SealRoomsOnTimer = false);
        var clocks = new List<FakeTimeProvider>();
        var (a, b) = await StartPairAsync(world, () =>
        {
            var clock = new FakeTimeProvider(world.ServerTime.GetUtcNow());
            clocks.Add(clock);
            return clock;
        });
        Advance(world, clocks, world.JoinWindow + TimeSpan.FromSeconds(1));
        await CallWorld.EventuallyAsync(() => a.Call.AdmissionState == TalkiAdmissionState.Sealed && b.Call.AdmissionState == TalkiAdmissionState.Sealed, "both sealed");

        await a.Call.LeaveAsync();

        Assert.Equal(TalkiAdmissionState.Left, a.Call.AdmissionState);
        await CallWorld.EventuallyAsync(() => b.Call.Links.All(l => l.Peer != a.Id), "B drops A after the in-band goodbye");
    }

    [Fact]
    public async Task DuplicatedPush_SameDeliveryId_IsHandledOnce()
    {
        await using var world = await CallWorld.StartAsync();
        var a = await world.SignInAsync("Ada");
        Assert.True((await a.Call.CreateRoomAsync()).IsSuccess);
        const string Error = """{"type":"error","code":"internal","message":"boom","mid":"abc.1"}""";

        a.Socket.Inject(Error);
        a.Socket.Inject(Error); // the copy a retried POST delivered
        a.Socket.Inject(Error.Replace("abc.1", "abc.2", StringComparison.Ordinal));
        a.Socket.Inject(Error.Replace(",\"mid\":\"abc.1\"", string.Empty, StringComparison.Ordinal)); // no id: never deduplicated
        a.Socket.Inject(Error.Replace(",\"mid\":\"abc.1\"", string.Empty, StringComparison.Ordinal));
        await CallWorld.EventuallyAsync(() => a.Socket.InjectedFramesHandled, "the injected frames are handled");

        Assert.Equal(4, a.Errors.Count(e => e.Kind == TalkiCallErrorKind.ServerError && e.Code == SignallingErrorCode.Internal));
    }

    /// <summary>
    /// Client options whose ping does not fire within a join window plus a second: a ping after the seal is answered
    /// room_sealed and closed by the server, which would hide a client that never closes on its own.
    /// </summary>
    private static TalkiClientOptions NoPingBeforeTheSeal() => new() { PingInterval = TimeSpan.FromMinutes(9) };

    private static void Advance(CallWorld world, List<FakeTimeProvider> clocks, TimeSpan by)
    {
        world.ServerTime.Advance(by);
        foreach (var clock in clocks)
        {
            clock.Advance(by);
        }
    }

    private static async Task<(Participant A, Participant B)> StartPairAsync(CallWorld world, Func<TimeProvider> clock)
    {
        var a = await world.SignInAsync("Ada", NoPingBeforeTheSeal(), clock());
        var created = await a.Call.CreateRoomAsync();
        Assert.True(created.IsSuccess, created.ToString());
        var b = await world.SignInAsync("Bob", NoPingBeforeTheSeal(), clock());
        Assert.True((await b.Call.JoinRoomAsync(created.Value)).IsSuccess);
        await CallWorld.EventuallyAsync(() => a.Call.PendingAdmissions.Any(m => m.Id == b.Call.Self!.Id), "A sees B");
        await a.Call.AdmitAsync(b.Call.Self!.Id);
        await CallWorld.EventuallyAsync(() => b.InCall, "B admitted");
        foreach (var p in new[] { a, b })
        {
            await CallWorld.EventuallyAsync(() => p.ConnectedLinks.Count == 1 && p.Call.Links.Count == 1, $"{p.Name} linked");
        }

        // The links' control channels open after the connection; give the mesh its in-band path before the seal.
        await Task.Delay(100);
        return (a, b);
    }
}
