using Amazon.DynamoDBv2;
using Amazon.DynamoDBv2.Model;
using Microsoft.Extensions.Time.Testing;
using Talki.Signalling.Aws.Tests.DynamoDb;
using Talki.Signalling.Emulator;
using static Talki.Signalling.Aws.IntegrationTests.EmulatorCapacityTests;

namespace Talki.Signalling.Aws.IntegrationTests;

/// <summary>
/// The emulator's DynamoDB endpoint lags as a replica may: an eventually consistent read "may not reflect the results of a
/// recently completed write operation" (DynamoDB Developer Guide, "DynamoDB read consistency"). dynalite, one copy, never
/// lags; the emulator answers such a read with the item as it was before the writes of the last
/// <see cref="EmulatorOptions.DynamoDbReplicaLag"/>, and a strongly consistent read with the latest.
/// </summary>
[Collection(DynaliteGroup.Name)]
public sealed class EmulatorReplicaLagTests(DynaliteFixture dynalite)
{
    [Fact]
    public async Task AnEventuallyConsistentRead_SeesTheItemAsItWasBeforeTheWritesOfTheLastSecond_AStrongReadTheLatest()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var harness = await StartAsync(dynalite, "talki-replica-lag", o => o.TimeProvider = clock);
        using var client = BackendClient(harness);
        var table = harness.TableName;
        var key = Key("LAG#1", "META");
        async Task<string?> EventuallyAsync() => (await client.GetItemAsync(new GetItemRequest { TableName = table, Key = key })).Item is { Count: > 0 } item ? item["data"].S : null;
        async Task<string?> StronglyAsync() => (await client.GetItemAsync(new GetItemRequest { TableName = table, Key = key, ConsistentRead = true })).Item is { Count: > 0 } item ? item["data"].S : null;

        // Created: not on the lagging replica yet; the leader has it.
        await client.PutItemAsync(new PutItemRequest { TableName = table, Item = Item("LAG#1", "META", "v1") });
        Assert.Null(await EventuallyAsync());
        Assert.Equal("v1", await StronglyAsync());
        Assert.Equal(1, harness.Emulator.Counters.DynamoDbStaleReads);
        clock.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal("v1", await EventuallyAsync());

        // Two updates half a second apart: the replica may hold the item as it was before the older one until a second
        // after it, then as it was before the newer one.
        await client.PutItemAsync(new PutItemRequest { TableName = table, Item = Item("LAG#1", "META", "v2") });
        clock.Advance(TimeSpan.FromMilliseconds(500));
        await client.PutItemAsync(new PutItemRequest { TableName = table, Item = Item("LAG#1", "META", "v3") });
        Assert.Equal("v1", await EventuallyAsync());
        clock.Advance(TimeSpan.FromMilliseconds(600));
        Assert.Equal("v2", await EventuallyAsync());
        clock.Advance(TimeSpan.FromMilliseconds(500));
        Assert.Equal("v3", await EventuallyAsync());

        // A write that fails its condition changes nothing, on any replica.
        await Assert.ThrowsAsync<ConditionalCheckFailedException>(() => client.PutItemAsync(new PutItemRequest
        {
            TableName = table,
            Item = Item("LAG#1", "META", "never"),
            ConditionExpression = "attribute_not_exists(pk)",
        }));
        Assert.Equal("v3", await EventuallyAsync());

        // Deleted: the replica may still have it for a second.
        await client.DeleteItemAsync(new DeleteItemRequest { TableName = table, Key = key });
        Assert.Equal("v3", await EventuallyAsync());
        Assert.Null(await StronglyAsync());
        clock.Advance(TimeSpan.FromSeconds(1));
        Assert.Null(await EventuallyAsync());
    }

    [Fact]
    public async Task OnTheRealClock_AnItemCreatedIsMissingFromAnEventuallyConsistentRead_UntilTheLagHasPassed()
    {
        var lag = TimeSpan.FromMilliseconds(300);
        await using var harness = await StartAsync(dynalite, "talki-replica-lag-real", o => o.DynamoDbReplicaLag = lag);
        using var client = BackendClient(harness);
        var request = new GetItemRequest { TableName = harness.TableName, Key = Key("LAG#2", "META") };

        var written = TimeProvider.System.GetTimestamp();
        await client.PutItemAsync(new PutItemRequest { TableName = harness.TableName, Item = Item("LAG#2", "META", "v1") });
        var first = await client.GetItemAsync(request);
        if (TimeProvider.System.GetElapsedTime(written) < lag)
        {
            Assert.Empty(first.Item ?? []);
        }

        await Task.Delay(lag + TimeSpan.FromMilliseconds(50));
        Assert.Equal("v1", (await client.GetItemAsync(request)).Item["data"].S);
    }
}
