using System.Collections.Concurrent;
using System.Reflection;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Talki.Signalling.Ports;
using Talki.Signalling.Protocol;
using Talki.Signalling.Server.Storage;

namespace Talki.Signalling.Server.Tests.Engine;

/// <summary>
/// What a relayed signal costs the store, counted by a decorator around the in-memory store: on DynamoDB every read is
/// billed, and on Redis every read is a round trip.
/// </summary>
public sealed class StoreReadsTests
{
    [Fact]
    public async Task ARelayedSignal_WithTheConnectionsGrant_ReadsTheSenderAndTheReceiverInOneStoreRequest()
    {
        var counting = new ConcurrentDictionary<string, int>(StringComparer.Ordinal);
        using var h = new EngineHarness(store: sp => CountingStore.Wrap(sp.GetRequiredService<InMemoryRoomStore>(), counting));
        var (adaConnection, adaGrant, bob, bobConnection) = await h.RoomWithGrantedAdminAsync();
        counting.Clear();

        await h.Engine.HandleAuthorizedMessageAsync(adaConnection, adaGrant, Encoding.UTF8.GetBytes($$$"""{"type":"signal","to":"{{{bob.Member}}}","candidates":[{"candidate":"c"}]}"""));

        Assert.Single(h.Push.To<SignalRelayMessage>(bobConnection));

        // One request (DynamoDB: one query of the room's members; Redis: one script); the in-memory store looks both up.
        Assert.Equal(new Dictionary<string, int> { [nameof(IRoomStore.GetMemberPairAsync)] = 1 }, counting.ToDictionary(StringComparer.Ordinal));
    }

    [Fact]
    public async Task ARelayedSignal_WithoutAGrant_ReadsTheBinding_TheSenderAndTheReceiverInOneRequest_AndTheRoom()
    {
        // The two-phase gateway's fallback (an integration without the context mapping): the binding names the room and the
        // sender; the pair is read as with a grant, and the room for its seal.
        var counting = new ConcurrentDictionary<string, int>(StringComparer.Ordinal);
        using var h = new EngineHarness(store: sp => CountingStore.Wrap(sp.GetRequiredService<InMemoryRoomStore>(), counting));
        var (_, adminConnection, members) = await h.RoomWithMembersAsync("bob");
        counting.Clear();

        await h.SendAsync(adminConnection, $$$"""{"type":"signal","to":"{{{members[0].Grant.Member}}}","candidates":[{"candidate":"c"}]}""");

        Assert.Equal(
            new Dictionary<string, int> { [nameof(IRoomStore.GetConnectionAsync)] = 1, [nameof(IRoomStore.GetMemberPairAsync)] = 1, [nameof(IRoomStore.GetRoomAsync)] = 1 },
            counting.ToDictionary(StringComparer.Ordinal));
    }

    [Fact]
    public async Task ADisconnectAfterTheSeal_ReadsTheRoomAndLeavesTheMemberAsItIs_AndTellsNobody()
    {
        // Every call ends this way (the clients close their sockets at the seal): no write for the member.
        var counting = new ConcurrentDictionary<string, int>(StringComparer.Ordinal);
        using var h = new EngineHarness(store: sp => CountingStore.Wrap(sp.GetRequiredService<InMemoryRoomStore>(), counting));
        var store = h.Services.GetRequiredService<InMemoryRoomStore>();
        var (admin, adminConnection, members) = await h.RoomWithMembersAsync("bob");
        var (bob, bobConnection) = members[0];
        var before = await store.GetMemberAsync(bob.Room, bob.Member);
        h.Time.Advance(admin.SealsAt - h.Time.GetUtcNow());
        h.Push.Clear();
        counting.Clear();

        await h.Engine.DisconnectAsync(bobConnection);

        Assert.Equal(
            new Dictionary<string, int> { [nameof(IRoomStore.RemoveConnectionAsync)] = 1, [nameof(IRoomStore.GetRoomAsync)] = 1 },
            counting.ToDictionary(StringComparer.Ordinal));
        Assert.Equal(before, await store.GetMemberAsync(bob.Room, bob.Member));
        Assert.Empty(h.Push.To(adminConnection));

        // A late frame on the closed connection finds no binding: nobody else hears of it.
        await h.SendAsync(bobConnection, $$$"""{"type":"signal","to":"{{{admin.Member}}}","candidates":[{"candidate":"c"}]}""");
        Assert.Empty(h.Push.To(adminConnection));
    }

    [Fact]
    public async Task ADisconnectAfterTheSeal_WithTheConnectionsGrant_NeitherReadsNorWritesTheStore_AndTellsNobody()
    {
        // API Gateway carries the authorizer's context to $disconnect: after the seal the store is not touched at all (on
        // DynamoDB a delete and a read fewer per member, every call). The binding stays, and expires with the room.
        var counting = new ConcurrentDictionary<string, int>(StringComparer.Ordinal);
        using var h = new EngineHarness(store: sp => CountingStore.Wrap(sp.GetRequiredService<InMemoryRoomStore>(), counting));
        var store = h.Services.GetRequiredService<InMemoryRoomStore>();
        var (adaConnection, adaGrant, _, bobConnection) = await h.RoomWithGrantedAdminAsync();
        var before = await store.GetMemberAsync(adaGrant.Room, adaGrant.Member);
        h.Time.Advance(adaGrant.SealsAt + TimeSpan.FromMilliseconds(1) - h.Time.GetUtcNow());
        h.Push.Clear();
        counting.Clear();

        await h.Engine.HandleAuthorizedDisconnectAsync(adaConnection, adaGrant);

        Assert.Empty(counting);
        Assert.Equal(before, await store.GetMemberAsync(adaGrant.Room, adaGrant.Member));
        Assert.NotNull(await store.GetConnectionAsync(adaConnection));
        Assert.Empty(h.Push.To(bobConnection));
    }

    [Fact]
    public async Task ADisconnectWithTheGrant_BetweenTheGatewaysTruncatedSealAndTheRoomsOwn_StillSuspendsTheMember()
    {
        // The gateway carries the seal in whole milliseconds, rounded down: until the room's own instant the member drops as
        // before the seal, and may resume.
        using var h = new EngineHarness();
        h.Time.Advance(TimeSpan.FromTicks(6_000)); // the room's seal falls 0.6 ms into a millisecond
        var store = h.Services.GetRequiredService<InMemoryRoomStore>();
        var (adaConnection, adaGrant, _, _) = await h.RoomWithGrantedAdminAsync();
        var carried = adaGrant with { SealsAt = DateTimeOffset.FromUnixTimeMilliseconds(adaGrant.SealsAt.ToUnixTimeMilliseconds()) };
        Assert.True(carried.SealsAt < adaGrant.SealsAt);
        h.Time.Advance(adaGrant.SealsAt - TimeSpan.FromTicks(1_000) - h.Time.GetUtcNow()); // past the carried seal, before the room's

        await h.Engine.HandleAuthorizedDisconnectAsync(adaConnection, carried);

        var after = await store.GetMemberAsync(adaGrant.Room, adaGrant.Member);
        Assert.Null(after!.ConnectionId);
        Assert.NotNull(after.SuspendedUntil);
    }

    [Fact]
    public async Task ADisconnectAMillisecondBeforeTheSeal_StillSuspendsTheMember()
    {
        using var h = new EngineHarness();
        var store = h.Services.GetRequiredService<InMemoryRoomStore>();
        var (admin, _, members) = await h.RoomWithMembersAsync("bob");
        var (bob, bobConnection) = members[0];
        h.Time.Advance(admin.SealsAt - h.Time.GetUtcNow() - TimeSpan.FromMilliseconds(1));

        await h.Engine.DisconnectAsync(bobConnection);

        var after = await store.GetMemberAsync(bob.Room, bob.Member);
        Assert.Null(after!.ConnectionId);
        Assert.NotNull(after.SuspendedUntil);
    }

    [Fact]
    public async Task TheFirstFrameOfATwoPhaseConnection_AHello_ReadsTheMemberOnce_AndBindsAndGreetsInOneWrite()
    {
        var counting = new ConcurrentDictionary<string, int>(StringComparer.Ordinal);
        using var h = new EngineHarness(store: sp => CountingStore.Wrap(sp.GetRequiredService<InMemoryRoomStore>(), counting));
        var ada = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var grant = (await h.Engine.AuthorizeAsync(ada.Ticket.Value)).Value;
        var connection = h.NewConnectionId();
        counting.Clear();

        await h.Engine.HandleAuthorizedMessageAsync(connection, grant, Encoding.UTF8.GetBytes("""{"type":"hello","version":2}"""));

        Assert.Equal(AdmissionStatus.Admitted, h.Push.Single<WelcomeMessage>(connection).Status);
        // The member read for the frame is the one the bind writes from, and the bind records the hello too: one read, one write.
        Assert.Equal(1, counting[nameof(IRoomStore.GetMemberAsync)]);
        Assert.Equal(1, counting[nameof(IRoomStore.TryUpdateMemberAsync)]);
    }

    [Fact]
    public async Task AMemberWrittenBetweenTheFramesReadAndTheBind_TheBindRereadsAndStillBinds()
    {
        // The record the frame read is stale by the time the bind writes from it: that conditional write conflicts, and the
        // retry reads what the store holds.
        var counting = new ConcurrentDictionary<string, int>(StringComparer.Ordinal);
        InMemoryRoomStore? inner = null;
        var interfered = 0;
        using var h = new EngineHarness(store: sp =>
        {
            inner = sp.GetRequiredService<InMemoryRoomStore>();
            return CountingStore.Wrap(inner, counting, (name, args) =>
            {
                if (name == nameof(IRoomStore.TryUpdateMemberAsync) && Interlocked.Exchange(ref interfered, 1) == 0)
                {
                    var next = (MemberRecord)args![0]!;
                    var current = inner.GetMemberAsync(next.Room, next.Id).AsTask().GetAwaiter().GetResult()!;
                    Assert.NotNull(inner.TryUpdateMemberAsync(current with { DisplayName = "Ada (renamed)" }).AsTask().GetAwaiter().GetResult());
                }
            });
        });
        var ada = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var grant = (await h.Engine.AuthorizeAsync(ada.Ticket.Value)).Value;
        var connection = h.NewConnectionId();
        counting.Clear();

        await h.Engine.HandleAuthorizedMessageAsync(connection, grant, Encoding.UTF8.GetBytes("""{"type":"hello","version":2}"""));

        Assert.Equal("Ada (renamed)", h.Push.Single<WelcomeMessage>(connection).You.DisplayName);
        var bound = await inner!.GetMemberAsync(ada.Room, ada.Member);
        Assert.Equal(connection, bound!.ConnectionId);
        Assert.NotNull(bound.ReadyAt);
        Assert.Equal(2, counting[nameof(IRoomStore.TryUpdateMemberAsync)]); // the stale write, then the bind with the hello
    }

    [Fact]
    public async Task ARepeatedHelloAfterTheBindingHello_OnlyGetsItsWelcomeAgain()
    {
        using var h = new EngineHarness();
        var ada = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var (adaGrant, adaConnection) = await HelloThroughTheAuthorizerAsync(h, ada);
        var bob = await h.JoinAsync(EngineHarness.User("bob"), ada.Room);
        var bobGrant = (await h.Engine.AuthorizeAsync(bob.Ticket.Value)).Value;
        var bobConnection = h.NewConnectionId();

        await h.Engine.HandleAuthorizedMessageAsync(bobConnection, bobGrant, Encoding.UTF8.GetBytes("""{"type":"hello","version":2}"""));
        await h.Engine.HandleAuthorizedMessageAsync(bobConnection, bobGrant, Encoding.UTF8.GetBytes("""{"type":"hello","version":2}"""));

        Assert.Equal(2, h.Push.To<WelcomeMessage>(bobConnection).Count);
        Assert.All(h.Push.To<WelcomeMessage>(bobConnection), w => Assert.Equal(AdmissionStatus.Pending, w.Status));
        Assert.Single(h.Push.To<AdmissionRequestMessage>(adaConnection)); // the knock's; no hello adds one for a v2 admin
        var stored = await h.Services.GetRequiredService<InMemoryRoomStore>().GetMemberAsync(bob.Room, bob.Member);
        Assert.Equal(2, stored!.ProtocolVersion);
        Assert.Equal(bobConnection, stored.ConnectionId);
    }

    [Fact]
    public async Task AReloadBindingWithItsHello_TellsThePeersTheOldEpochLeft_AndPlansTheNewOne()
    {
        using var h = new EngineHarness();
        var ada = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var (adaGrant, adaConnection) = await HelloThroughTheAuthorizerAsync(h, ada);
        var bob = await h.JoinAsync(EngineHarness.User("bob"), ada.Room);
        await h.Engine.HandleAuthorizedMessageAsync(adaConnection, adaGrant, Encoding.UTF8.GetBytes($$$"""{"type":"admit","member":"{{{bob.Member}}}"}"""));
        var first = (await h.Engine.AuthorizeAsync(bob.Ticket.Value)).Value;
        var firstConnection = h.NewConnectionId();
        await h.Engine.HandleAuthorizedMessageAsync(firstConnection, first, Encoding.UTF8.GetBytes("""{"type":"hello","version":2}"""));
        h.Push.Clear();

        // A page reload: a fresh ticket, a new connection, no resume.
        var again = await h.JoinAsync(EngineHarness.User("bob"), ada.Room);
        var second = (await h.Engine.AuthorizeAsync(again.Ticket.Value)).Value;
        var secondConnection = h.NewConnectionId();
        await h.Engine.HandleAuthorizedMessageAsync(secondConnection, second, Encoding.UTF8.GetBytes("""{"type":"hello","version":2}"""));

        Assert.True(h.Push.WasClosed(firstConnection));
        Assert.Equal(first.Epoch, h.Push.Single<PeerLeftMessage>(adaConnection).Epoch);
        var welcome = h.Push.Single<WelcomeMessage>(secondConnection);
        Assert.Equal(second.Epoch, welcome.You.Epoch);
        var link = Assert.Single(welcome.Links!);
        Assert.Equal(ada.Member, link.Peer.Id); // (roles on a fake clock that does not move depend on the ids: not asserted)
    }

    /// <summary>A two-phase connection (authorizer, then a first frame that binds): its hello, version 2.</summary>
    private static async Task<(ConnectionGrant Grant, string Connection)> HelloThroughTheAuthorizerAsync(EngineHarness h, TicketGrant ticket)
    {
        var grant = (await h.Engine.AuthorizeAsync(ticket.Ticket.Value)).Value;
        var connection = h.NewConnectionId();
        await h.Engine.HandleAuthorizedMessageAsync(connection, grant, Encoding.UTF8.GetBytes("""{"type":"hello","version":2}"""));
        return (grant, connection);
    }

    /// <summary>Counts the calls to every store method, then forwards them.</summary>
    public class CountingStore : DispatchProxy
    {
        private IRoomStore? _inner;
        private ConcurrentDictionary<string, int>? _calls;
        private Action<string, object?[]?>? _before;

        /// <summary>Wraps <paramref name="inner"/>; <paramref name="before"/> runs before each call is forwarded (to interleave another writer).</summary>
        public static IRoomStore Wrap(IRoomStore inner, ConcurrentDictionary<string, int> calls, Action<string, object?[]?>? before = null)
        {
            var proxy = Create<IRoomStore, CountingStore>();
            var counting = (CountingStore)(object)proxy;
            counting._inner = inner;
            counting._calls = calls;
            counting._before = before;
            return proxy;
        }

        protected override object? Invoke(MethodInfo? targetMethod, object?[]? args)
        {
            ArgumentNullException.ThrowIfNull(targetMethod);
            _calls!.AddOrUpdate(targetMethod.Name, 1, (_, n) => n + 1);
            _before?.Invoke(targetMethod.Name, args);
            try
            {
                return targetMethod.Invoke(_inner, args);
            }
            catch (TargetInvocationException e) when (e.InnerException is not null)
            {
                throw e.InnerException;
            }
        }
    }
}
