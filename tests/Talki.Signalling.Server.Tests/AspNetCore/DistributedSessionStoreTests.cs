using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Talki.Signalling.Server.AspNetCore;

namespace Talki.Signalling.Server.Tests.AspNetCore;

/// <summary>The session store's in-process table keeps the bound a host set on the in-process cache.</summary>
public sealed class DistributedSessionStoreTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 5, 23, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task TheInProcessTable_TakesItsBound_FromTheCachesSizeLimit_AndRefusesPastIt_KeepingTheSessionsHeld()
    {
        var clock = new FakeTimeProvider(Now);
        var memoryOptions = new MemoryDistributedCacheOptions();
        Assert.Equal(InProcessSessionTable.DefaultCapacityBytes, memoryOptions.SizeLimit); // the default bound is the cache's
        var probe = Store(clock, memoryOptions);
        await probe.StoreAsync(Session("Ada"));
        var entry = probe.Local!.Bytes;

        var store = Store(clock, new MemoryDistributedCacheOptions { SizeLimit = 2 * entry });
        Assert.Equal(2 * entry, store.Local!.Capacity);
        var ada = await store.StoreAsync(Session("Ada"));
        var bob = await store.StoreAsync(Session("Bob"));
        await Assert.ThrowsAsync<SessionStoreFullException>(() => store.StoreAsync(Session("Eve")));
        Assert.Equal("Ada", (await store.RetrieveAsync(ada))!.Principal.Identity!.Name);
        Assert.Equal("Bob", (await store.RetrieveAsync(bob))!.Principal.Identity!.Name);

        await store.RemoveAsync(ada);
        Assert.Null(await store.RetrieveAsync(ada));
        Assert.Equal("Cyd", (await store.RetrieveAsync(await store.StoreAsync(Session("Cyd"))))!.Principal.Identity!.Name);
    }

    [Fact]
    public void AHostThatLiftedTheCachesSizeLimit_GetsAnUnboundedTable_AndOneWithNoCacheOptionsTheDefault()
    {
        var clock = new FakeTimeProvider(Now);
        Assert.Equal(long.MaxValue, Store(clock, new MemoryDistributedCacheOptions { SizeLimit = null }).Local!.Capacity);
        var withoutOptions = new DistributedSessionStore(new MemoryDistributedCache(Options.Create(new MemoryDistributedCacheOptions())), clock, Options.Create(new TalkiSignallingOptions()));
        Assert.Equal(InProcessSessionTable.DefaultCapacityBytes, withoutOptions.Local!.Capacity);
    }

    private static DistributedSessionStore Store(TimeProvider clock, MemoryDistributedCacheOptions memoryOptions) =>
        new(new MemoryDistributedCache(Options.Create(memoryOptions)), clock, Options.Create(new TalkiSignallingOptions()), Options.Create(memoryOptions));

    private static AuthenticationTicket Session(string name) =>
        CompactSessionTicketTests.Session("anon:" + name, name, false, TalkiAuthenticationDefaults.CookieScheme, Now);
}
