using System.Globalization;
using Amazon.DynamoDBv2.Model;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Talki.Signalling.Aws.DynamoDb;
using Talki.Signalling.Aws.Sessions;
using Talki.Signalling.Aws.Tests.DynamoDb;

namespace Talki.Signalling.Aws.Tests.Sessions;

/// <summary>The DynamoDB <see cref="IDistributedCache"/> on dynalite (which has no TTL: every expiry here is the read side's).</summary>
[Collection(DynaliteGroup.Name)]
public sealed class DynamoDbDistributedCacheTests(DynaliteFixture dynalite) : IAsyncLifetime
{
    private const string Table = "sessions-cache";
    private static readonly byte[] Value = [1, 2, 3, 250];
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, 250, TimeSpan.Zero));
    private DynamoDbSessionTable? _table;
    private DynamoDbDistributedCache? _cache;

    private DynamoDbDistributedCache Cache => _cache!;

    public async Task InitializeAsync()
    {
        await dynalite.EnsureTableAsync(Table);
        _table = new DynamoDbSessionTable(dynalite.Client, Options.Create(new DynamoDbRoomStoreOptions { TableName = Table }), _time, NullLogger<DynamoDbSessionTable>.Instance);
        _cache = new DynamoDbDistributedCache(_table, _time, NullLogger<DynamoDbDistributedCache>.Instance);
    }

    public Task DisposeAsync()
    {
        _table?.Dispose();
        return Task.CompletedTask;
    }

    [Fact]
    public async Task SetGetRemove_RoundTrip_InTheDocumentedItem()
    {
        var key = NewKey();
        Assert.Null(await Cache.GetAsync(key));

        await Cache.SetAsync(key, Value, new DistributedCacheEntryOptions { AbsoluteExpirationRelativeToNow = TimeSpan.FromHours(24) });
        Assert.Equal(Value, await Cache.GetAsync(key));

        var item = await GetRawAsync(key);
        Assert.NotNull(item);
        Assert.Equal(Value, item["value"].B.ToArray());
        var expires = _time.GetUtcNow() + TimeSpan.FromHours(24);
        Assert.Equal((expires.ToUnixTimeSeconds() + 1).ToString(CultureInfo.InvariantCulture), item[DynamoDbTableCreator.TimeToLiveAttribute].N); // 250 ms past a second: rounded up
        Assert.Equal("2026-01-02T00:00:00.2500000Z", item["expiry"].S);

        await Cache.SetAsync(key, [9], new DistributedCacheEntryOptions { AbsoluteExpirationRelativeToNow = TimeSpan.FromHours(1) });
        Assert.Equal([9], await Cache.GetAsync(key));

        await Cache.RemoveAsync(key);
        Assert.Null(await Cache.GetAsync(key));
        Assert.Null(await GetRawAsync(key));
    }

    [Fact]
    public void SynchronousMembers_Work()
    {
        var key = NewKey();
        Cache.Set(key, Value, new DistributedCacheEntryOptions { SlidingExpiration = TimeSpan.FromMinutes(10) });
        Assert.Equal(Value, Cache.Get(key));
        _time.Advance(TimeSpan.FromMinutes(8));
        Cache.Refresh(key);
        _time.Advance(TimeSpan.FromMinutes(8));
        Assert.Equal(Value, Cache.Get(key));
        Cache.Remove(key);
        Assert.Null(Cache.Get(key));
    }

    [Fact]
    public async Task AbsoluteExpiry_IsEnforcedOnRead_ThoughTheItemIsStillThere()
    {
        var key = NewKey();
        await Cache.SetAsync(key, Value, new DistributedCacheEntryOptions { AbsoluteExpiration = _time.GetUtcNow() + TimeSpan.FromMinutes(5) });

        _time.Advance(TimeSpan.FromMinutes(5) - TimeSpan.FromTicks(1));
        Assert.Equal(Value, await Cache.GetAsync(key));
        await Cache.RefreshAsync(key); // no sliding window: nothing to extend
        _time.Advance(TimeSpan.FromTicks(1));
        Assert.Null(await Cache.GetAsync(key));
        Assert.NotNull(await GetRawAsync(key)); // dynalite has no TTL: only the read decides
    }

    [Fact]
    public async Task SlidingExpiry_IsExtendedByGet_AndEndsWhenUnused()
    {
        var key = NewKey();
        await Cache.SetAsync(key, Value, new DistributedCacheEntryOptions { SlidingExpiration = TimeSpan.FromMinutes(10) });

        for (var i = 0; i < 3; i++)
        {
            _time.Advance(TimeSpan.FromMinutes(9));
            Assert.Equal(Value, await Cache.GetAsync(key)); // 27 minutes in all: each read moved the window
        }

        var item = await GetRawAsync(key);
        var expiry = _time.GetUtcNow() + TimeSpan.FromMinutes(10);
        Assert.Equal((expiry.ToUnixTimeSeconds() + 1).ToString(CultureInfo.InvariantCulture), item![DynamoDbTableCreator.TimeToLiveAttribute].N);

        _time.Advance(TimeSpan.FromMinutes(10));
        Assert.Null(await Cache.GetAsync(key));
    }

    [Fact]
    public async Task Refresh_ExtendsTheSlidingWindow_WithoutReadingTheValue_UpToTheAbsoluteDeadline()
    {
        var key = NewKey();
        await Cache.SetAsync(key, Value, new DistributedCacheEntryOptions
        {
            SlidingExpiration = TimeSpan.FromMinutes(10),
            AbsoluteExpirationRelativeToNow = TimeSpan.FromMinutes(25),
        });

        _time.Advance(TimeSpan.FromMinutes(9));
        await Cache.RefreshAsync(key);
        _time.Advance(TimeSpan.FromMinutes(9));
        await Cache.RefreshAsync(key);
        _time.Advance(TimeSpan.FromMinutes(6)); // 24 minutes: the last refresh capped the window at 25
        Assert.Equal(Value, await Cache.GetAsync(key));
        _time.Advance(TimeSpan.FromMinutes(1));
        Assert.Null(await Cache.GetAsync(key));
        await Cache.RefreshAsync(key); // an expired entry is not revived
        Assert.Null(await Cache.GetAsync(key));
    }

    [Fact]
    public async Task Refresh_OfAMissingKey_CreatesNothing()
    {
        var key = NewKey();
        await Cache.RefreshAsync(key);
        Assert.Null(await GetRawAsync(key));
    }

    [Fact]
    public async Task AnEntryWithoutExpiry_LivesAndCarriesNoTtl()
    {
        var key = NewKey();
        await Cache.SetAsync(key, Value, new DistributedCacheEntryOptions());
        _time.Advance(TimeSpan.FromDays(365));
        Assert.Equal(Value, await Cache.GetAsync(key));
        Assert.False((await GetRawAsync(key))!.ContainsKey(DynamoDbTableCreator.TimeToLiveAttribute));
    }

    [Fact]
    public async Task Set_WithAnAbsoluteExpirationInThePast_Throws()
    {
        var key = NewKey();
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => Cache.SetAsync(key, Value, new DistributedCacheEntryOptions { AbsoluteExpiration = _time.GetUtcNow() }));
        Assert.Null(await GetRawAsync(key));
    }

    private static string NewKey() => "talki:session:" + Guid.NewGuid().ToString("N");

    private async Task<Dictionary<string, AttributeValue>?> GetRawAsync(string key)
    {
        var response = await dynalite.Client.GetItemAsync(new GetItemRequest
        {
            TableName = Table,
            ConsistentRead = true,
            Key = new() { ["pk"] = new AttributeValue { S = "cache#" + key }, ["sk"] = new AttributeValue { S = "cache" } },
        });
        return response.Item is { Count: > 0 } item ? item : null;
    }
}
