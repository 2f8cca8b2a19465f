using Talki.Signalling.Client.Tests.Support;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Client.Tests;

/// <summary>
/// A newcomer gets the answers of all its links at about the same time. Each link applies its own signals in order, but
/// one link slow to apply a signal (a loaded browser) must not hold up the others.
/// </summary>
public sealed class TalkiCallSignalConcurrencyTests
{
    [Fact]
    public async Task ANewcomersLinkSlowToApplyItsAnswer_TheOtherLinksAnswerIsAppliedMeanwhile_ThenTheMeshConverges()
    {
        await using var world = await CallWorld.StartAsync();
        var a = await world.SignInAsync("Ada");
        var created = await a.Call.CreateRoomAsync();
        Assert.True(created.IsSuccess, created.ToString());
        var b = await world.SignInAsync("Bob");
        Assert.True((await b.Call.JoinRoomAsync(created.Value)).IsSuccess);
        await CallWorld.EventuallyAsync(() => a.Call.PendingAdmissions.Any(m => m.Id == b.Id), "A sees B");
        await a.Call.AdmitAsync(b.Id);
        await CallWorld.EventuallyAsync(() => a.ConnectedLinks.Count == 1 && b.ConnectedLinks.Count == 1, "A and B linked");

        var c = await world.SignInAsync("Cleo");
        Assert.True((await c.Call.JoinRoomAsync(created.Value)).IsSuccess);
        var cId = c.Id;
        // C, the newcomer, offers to both. Its link to A holds A's answer (C's first remote description there) in flight;
        // B holds C's offer, so that B's answer comes only once A's is held at C.
        c.Factory.AfterCreate = pc => pc.HoldNextRemoteDescription = pc.Plan.Peer == a.Id;
        b.Factory.AfterCreate = pc => pc.HoldNextRemoteDescription = pc.Plan.Peer == cId;
        await CallWorld.EventuallyAsync(() => a.Call.PendingAdmissions.Any(m => m.Id == cId), "A sees C");
        await a.Call.AdmitAsync(cId);

        await CallWorld.EventuallyAsync(() => c.Factory.Created.Any(pc => pc.Plan.Peer == a.Id && pc.IsHolding), "A's answer held in flight at C");
        await CallWorld.EventuallyAsync(() => b.Factory.Created.Any(pc => pc.Plan.Peer == cId && pc.IsHolding), "C's offer held in flight at B");
        b.Factory.Live(cId).ReleaseHeld(); // B answers now

        var cToA = c.Factory.Live(a.Id);
        var cToB = c.Factory.Live(b.Id);
        await CallWorld.EventuallyAsync(
            () => cToB.CurrentRemote?.Type == SdpType.Answer,
            "C applies B's answer while A's is still in flight (the socket's receive loop did not wait for A's link)",
            timeoutMs: 10_000);
        Assert.True(cToA.IsHolding);
        Assert.Null(cToA.CurrentRemote);

        cToA.ReleaseHeld();
        foreach (var p in new[] { a, b, c })
        {
            await CallWorld.EventuallyAsync(() => p.ConnectedLinks.Count == 2, $"{p.Name} has 2 connected links");
        }

        Assert.All(new[] { a, b, c }, p => Assert.Empty(p.Errors));
    }
}
