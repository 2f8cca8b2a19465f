using System.Collections.Concurrent;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Talki.Signalling.Ports;
using Talki.Signalling.Protocol;
using Talki.Signalling.Server.Storage;

namespace Talki.Signalling.Server.Tests.Engine;

/// <summary>
/// The engine reads the clock once per frame: the seal and the target's suspension are judged at the frame's arrival
/// (after the rate limiter and the parse). The seal timer is off in these tests, so what they see is the check the frame
/// itself makes, on both paths a gateway can take (with the connection's grant, and with the stored binding).
/// </summary>
public sealed class FrameInstantTests
{
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task ASignalAfterTheSeal_IsNotRelayed_TheSenderIsToldRoomSealedAndClosed(bool withGrant)
    {
        using var h = new EngineHarness(o => o.SealRoomsOnTimer = false);
        var call = await CallAsync(h);
        h.Time.Advance(call.AdminGrant.SealsAt - h.Time.GetUtcNow()); // exactly at the seal: sealed

        await call.SignalBobAsync(withGrant);

        Assert.Empty(h.Push.To<SignalRelayMessage>(call.BobConnection));
        Assert.Equal(call.AdminGrant.SealsAt, h.Push.Single<RoomSealedMessage>(call.AdminConnection).SealedAt);
        Assert.True(h.Push.WasClosed(call.AdminConnection));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task ASignalAMillisecondBeforeTheSeal_IsRelayed(bool withGrant)
    {
        using var h = new EngineHarness(o => o.SealRoomsOnTimer = false);
        var call = await CallAsync(h);
        h.Time.Advance(call.AdminGrant.SealsAt - h.Time.GetUtcNow() - TimeSpan.FromMilliseconds(1));

        await call.SignalBobAsync(withGrant);

        Assert.Single(h.Push.To<SignalRelayMessage>(call.BobConnection));
        Assert.Empty(h.Push.To<RoomSealedMessage>(call.AdminConnection));
        Assert.False(h.Push.WasClosed(call.AdminConnection));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task ASignalThatArrivedBeforeTheSeal_WhoseStoreReadEndsAfterIt_IsJudgedAtItsArrival(bool withGrant)
    {
        // A remote store (DynamoDB, Redis) answers milliseconds later: the frame that arrived before the seal is relayed,
        // the next one, which arrives after it, is refused. Either way one instant decides, not the store's latency.
        var slowReads = false;
        EngineHarness? harness = null;
        using var h = harness = new EngineHarness(
            o => o.SealRoomsOnTimer = false,
            store: sp => StoreReadsTests.CountingStore.Wrap(
                sp.GetRequiredService<InMemoryRoomStore>(),
                new ConcurrentDictionary<string, int>(StringComparer.Ordinal),
                (method, _) =>
                {
                    if (slowReads && method == nameof(IRoomStore.GetMemberPairAsync))
                    {
                        harness!.Time.Advance(TimeSpan.FromMilliseconds(20));
                    }
                }));
        var call = await CallAsync(h);
        h.Time.Advance(call.AdminGrant.SealsAt - h.Time.GetUtcNow() - TimeSpan.FromMilliseconds(5));
        slowReads = true;

        await call.SignalBobAsync(withGrant);

        Assert.True(h.Time.GetUtcNow() > call.AdminGrant.SealsAt, "The store's read ended after the seal.");
        Assert.Single(h.Push.To<SignalRelayMessage>(call.BobConnection));
        Assert.Empty(h.Push.To<RoomSealedMessage>(call.AdminConnection));

        await call.SignalBobAsync(withGrant);

        Assert.Single(h.Push.To<SignalRelayMessage>(call.BobConnection));
        Assert.Single(h.Push.To<RoomSealedMessage>(call.AdminConnection));
        Assert.True(h.Push.WasClosed(call.AdminConnection));
    }

    private static async Task<Call> CallAsync(EngineHarness h)
    {
        var (adminConnection, adminGrant, bob, bobConnection) = await h.RoomWithGrantedAdminAsync();
        Assert.Single(h.Push.To<ConnectToPeerMessage>(adminConnection));
        return new Call(h, adminConnection, adminGrant, bob.Member, bobConnection);
    }

    private sealed record Call(EngineHarness H, string AdminConnection, ConnectionGrant AdminGrant, MemberId Bob, string BobConnection)
    {
        public ValueTask SignalBobAsync(bool withGrant)
        {
            var frame = Encoding.UTF8.GetBytes($$$"""{"type":"signal","to":"{{{Bob}}}","candidates":[{"candidate":"c"}]}""");
            return withGrant
                ? H.Engine.HandleAuthorizedMessageAsync(AdminConnection, AdminGrant, frame)
                : H.Engine.HandleMessageAsync(AdminConnection, frame);
        }
    }
}
