using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Talki.Signalling.Ports;
using Talki.Signalling.Protocol;
using Talki.Signalling.Server.Storage;

namespace Talki.Signalling.Server.Tests.Engine;

/// <summary>
/// Connections bound through the authorizer's grant (API Gateway's two phases): the member's record is the binding and no
/// record by connection id is written (on DynamoDB a write per member of every call), except for a connection that asked
/// to resume. Every way such a connection ends, or is found dead, still finds its member; a late event of a replaced
/// connection (a flaky network) changes nothing.
/// </summary>
public sealed class TwoPhaseBindingTests
{
    private static readonly TimeSpan Grace = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task AFreshBindThroughAGrant_WritesNoRecordByConnectionId_AndTheFramesStillReachTheRoom()
    {
        var counting = new ConcurrentDictionary<string, int>(StringComparer.Ordinal);
        using var h = new EngineHarness(store: sp => StoreReadsTests.CountingStore.Wrap(sp.GetRequiredService<InMemoryRoomStore>(), counting));
        var call = await CallAsync(h);

        await h.SendAuthorizedAsync(call.Bob, call.BobGrant, Signal(call.AdaGrant.Member, "to-ada"));

        Assert.Equal("to-ada", h.Push.Single<SignalRelayMessage>(call.Ada).Candidates![0].Candidate);
        Assert.False(counting.ContainsKey(nameof(IRoomStore.PutConnectionAsync)), string.Join(", ", counting.Keys));
        var store = h.Services.GetRequiredService<InMemoryRoomStore>();
        Assert.Null(await store.GetConnectionAsync(call.Ada));
        Assert.Null(await store.GetConnectionAsync(call.Bob));
        Assert.Equal(call.Bob, (await store.GetMemberAsync(call.BobGrant.Room, call.BobGrant.Member))!.ConnectionId);
    }

    [Fact]
    public async Task ADisconnectBeforeTheSeal_WithTheGrant_SuspendsTheMemberByItsRecord_AndThePeerHearsPeerLeftWhenTheGraceEnds()
    {
        var counting = new ConcurrentDictionary<string, int>(StringComparer.Ordinal);
        using var h = new EngineHarness(store: sp => StoreReadsTests.CountingStore.Wrap(sp.GetRequiredService<InMemoryRoomStore>(), counting));
        var store = h.Services.GetRequiredService<InMemoryRoomStore>();
        var call = await CallAsync(h);
        counting.Clear();

        await h.Engine.HandleAuthorizedDisconnectAsync(call.Bob, call.BobGrant);

        Assert.DoesNotContain(nameof(IRoomStore.RemoveConnectionAsync), counting.Keys);
        Assert.DoesNotContain(nameof(IRoomStore.GetConnectionAsync), counting.Keys);
        var bob = await store.GetMemberAsync(call.BobGrant.Room, call.BobGrant.Member);
        Assert.Null(bob!.ConnectionId);
        Assert.NotNull(bob.SuspendedUntil);
        Assert.Empty(h.Push.To<PeerLeftMessage>(call.Ada));

        h.Time.Advance(Grace);
        await AdmissionAndMeshTests.WaitUntil(() => h.Push.To<PeerLeftMessage>(call.Ada).Count == 1);
        Assert.Equal((bob.Id, bob.Epoch), (h.Push.Single<PeerLeftMessage>(call.Ada).Member, h.Push.Single<PeerLeftMessage>(call.Ada).Epoch));
    }

    [Fact]
    public async Task ALateDisconnectOrFrameOfAReplacedConnection_WithItsOldGrant_LeavesTheNewConnectionBound_AndReachesNobody()
    {
        // Bob reloads: his new connection replaces the old one, whose $disconnect and last frame arrive afterwards.
        using var h = new EngineHarness();
        var store = h.Services.GetRequiredService<InMemoryRoomStore>();
        var call = await CallAsync(h);
        var ticket = await h.JoinAsync(call.BobUser, call.BobGrant.Room);
        var (fresh, freshGrant) = await h.ConnectTwoPhaseAsync(ticket);
        Assert.True(h.Push.WasClosed(call.Bob));
        var toAda = h.Push.To(call.Ada).Count;

        await h.Engine.HandleAuthorizedDisconnectAsync(call.Bob, call.BobGrant);
        await h.SendAuthorizedAsync(call.Bob, call.BobGrant, Signal(call.AdaGrant.Member, "late"));

        var bob = await store.GetMemberAsync(call.BobGrant.Room, call.BobGrant.Member);
        Assert.Equal((fresh, freshGrant.Epoch), (bob!.ConnectionId, bob.Epoch));
        Assert.Null(bob.SuspendedUntil);
        Assert.Equal(SignallingErrorCode.StaleEpoch, h.Push.LastError(call.Bob).Code);
        Assert.Equal(toAda, h.Push.To(call.Ada).Count);
        h.Time.Advance(Grace + TimeSpan.FromSeconds(1));
        await Task.Delay(50);
        Assert.Equal(toAda, h.Push.To(call.Ada).Count);

        await h.SendAuthorizedAsync(fresh, freshGrant, Signal(call.AdaGrant.Member, "fresh"));
        Assert.Equal("fresh", h.Push.To<SignalRelayMessage>(call.Ada).Last().Candidates![0].Candidate);
    }

    [Fact]
    public async Task AReplacedResumedConnection_CannotTakeTheMemberBackFromItsSuccessor()
    {
        // A resume grant's connection keeps a record by connection id: without it, a late frame of a resumed connection that
        // a second resume replaced would resume the epoch again and close the live socket.
        using var h = new EngineHarness();
        var store = h.Services.GetRequiredService<InMemoryRoomStore>();
        var call = await CallAsync(h);
        var epoch = (await store.GetMemberAsync(call.BobGrant.Room, call.BobGrant.Member))!.Epoch;
        await h.Engine.HandleAuthorizedDisconnectAsync(call.Bob, call.BobGrant);
        var (first, firstGrant) = await h.ConnectTwoPhaseAsync(await h.JoinAsync(call.BobUser, call.BobGrant.Room), resume: epoch);
        Assert.True(h.Push.To<WelcomeMessage>(first).Single().Resumed);
        Assert.NotNull(await store.GetConnectionAsync(first));

        // The first resumed socket dies unseen; the second resume replaces it.
        var (second, _) = await h.ConnectTwoPhaseAsync(await h.JoinAsync(call.BobUser, call.BobGrant.Room), resume: epoch);
        Assert.True(h.Push.To<WelcomeMessage>(second).Single().Resumed);

        await h.SendAuthorizedAsync(first, firstGrant, """{"type":"ping","id":"late"}""");

        Assert.Equal(SignallingErrorCode.StaleEpoch, h.Push.LastError(first).Code);
        var bob = await store.GetMemberAsync(call.BobGrant.Room, call.BobGrant.Member);
        Assert.Equal((second, epoch), (bob!.ConnectionId, bob.Epoch));
        Assert.False(h.Push.WasClosed(second));
    }

    [Fact]
    public async Task ALeaveThroughAGrant_TellsThePeerAtOnce_AndUnbindsTheMember()
    {
        using var h = new EngineHarness();
        var store = h.Services.GetRequiredService<InMemoryRoomStore>();
        var call = await CallAsync(h);

        await h.SendAuthorizedAsync(call.Bob, call.BobGrant, """{"type":"leave"}""");

        Assert.Equal(call.BobGrant.Member, h.Push.Single<PeerLeftMessage>(call.Ada).Member);
        Assert.True(h.Push.WasClosed(call.Bob));
        var bob = await store.GetMemberAsync(call.BobGrant.Room, call.BobGrant.Member);
        Assert.Null(bob!.ConnectionId);
        Assert.Null(bob.SuspendedUntil);
    }

    [Fact]
    public async Task APushThatFindsATwoPhaseConnectionGone_SuspendsItsMember_AndThePeerHearsPeerLeftWhenTheGraceEnds()
    {
        // API Gateway's $disconnect is best effort: the 410 of a push is how a dead socket may be found first.
        using var h = new EngineHarness();
        var store = h.Services.GetRequiredService<InMemoryRoomStore>();
        var call = await CallAsync(h);
        h.Push.Gone[call.Bob] = true;

        await h.SendAuthorizedAsync(call.Ada, call.AdaGrant, Signal(call.BobGrant.Member, "into-the-void"));

        var bob = await store.GetMemberAsync(call.BobGrant.Room, call.BobGrant.Member);
        Assert.Null(bob!.ConnectionId);
        Assert.NotNull(bob.SuspendedUntil);
        h.Time.Advance(Grace);
        await AdmissionAndMeshTests.WaitUntil(() => h.Push.To<PeerLeftMessage>(call.Ada).Count == 1);
        Assert.Equal(call.BobGrant.Member, h.Push.Single<PeerLeftMessage>(call.Ada).Member);
    }

    [Fact]
    public async Task ATwoPhaseConnectionThatNeverSaysHello_IsClosedAtTheHelloTimeout_OnAFakeClock()
    {
        using var h = new EngineHarness();
        var ada = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var (silent, grant) = await h.ConnectTwoPhaseAsync(ada, hello: false);
        await h.SendAuthorizedAsync(silent, grant, """{"type":"ping","id":"p"}"""); // binds, without a hello

        h.Time.Advance(TimeSpan.FromSeconds(9));
        await Task.Delay(50);
        Assert.False(h.Push.WasClosed(silent));
        h.Time.Advance(TimeSpan.FromSeconds(1) + TimeSpan.FromMilliseconds(10));
        await AdmissionAndMeshTests.WaitUntil(() => h.Push.WasClosed(silent));
        Assert.Contains("hello", h.Push.PolicyCloseReason(silent), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ATwoPhaseConnectionThatNeverSaysHello_IsClosedAtTheHelloTimeout_OnTheRealClock_NotBefore()
    {
        using var h = new EngineHarness(o => o.Limits.HelloTimeout = TimeSpan.FromSeconds(1), clock: TimeProvider.System);
        var ada = (await h.Engine.CreateRoomAsync(EngineHarness.User("ada"))).Value;
        var grant = (await h.Engine.AuthorizeAsync(ada.Ticket.Value)).Value;
        var silent = h.NewConnectionId();
        var since = Stopwatch.StartNew();
        await h.SendAuthorizedAsync(silent, grant, """{"type":"ping","id":"p"}""");

        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (!h.Push.WasClosed(silent) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(10);
        }

        Assert.True(h.Push.WasClosed(silent));
        Assert.True(since.Elapsed >= TimeSpan.FromSeconds(1), $"closed after {since.Elapsed.TotalMilliseconds} ms");
    }

    private static string Signal(MemberId to, string candidate)
        => $$$"""{"type":"signal","to":"{{{to}}}","candidates":[{"candidate":"{{{candidate}}}","sdpMid":"0"}]}""";

    /// <summary>Ada (admin) and Bob, admitted, both bound through their grants and linked up as version 2 members.</summary>
    private static async Task<TwoPhaseCall> CallAsync(EngineHarness h)
    {
        var ada = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var (adaConnection, adaGrant) = await h.ConnectTwoPhaseAsync(ada);
        var bobUser = EngineHarness.User("bob");
        var bob = await h.JoinAsync(bobUser, ada.Room);
        var (bobConnection, bobGrant) = await h.ConnectTwoPhaseAsync(bob);
        await h.SendAuthorizedAsync(adaConnection, adaGrant, $$$"""{"type":"admit","member":"{{{bob.Member}}}"}""");
        Assert.Single(h.Push.To<AdmittedMessage>(bobConnection));
        h.Push.Clear();
        return new(adaConnection, adaGrant, bobConnection, bobGrant, bobUser);
    }

    private sealed record TwoPhaseCall(string Ada, ConnectionGrant AdaGrant, string Bob, ConnectionGrant BobGrant, CallerIdentity BobUser);
}
