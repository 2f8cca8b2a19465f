using Amazon.DynamoDBv2;
using Amazon.DynamoDBv2.Model;
using Amazon.Runtime;
using Talki.Signalling.Aws.Tests.DynamoDb;
using Talki.Signalling.Emulator;
using Talki.Signalling.Testing;

namespace Talki.Signalling.Aws.IntegrationTests;

/// <summary>
/// The emulator's DynamoDB endpoint meters what each item action consumes, through dynalite, as DynamoDB bills an
/// on-demand table (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html): the
/// call's price counts capacity units, not requests.
/// </summary>
[Collection(DynaliteGroup.Name)]
public sealed class EmulatorCapacityTests(DynaliteFixture dynalite)
{
    [Fact]
    public async Task ItemActions_AreMeteredInCapacityUnits_BySize_AsDynamoDbDocumentsThem()
    {
        await using var harness = await StartAsync("talki-capacity");
        using var client = BackendClient(harness);
        var table = harness.TableName;
        var counters = harness.Emulator.Counters;

        // 1,517 bytes (attribute names and values): 2 write units; read, one 4 KB step.
        var item = Item("CAP#1", "META", new string('x', 1500));
        var put = await client.PutItemAsync(new PutItemRequest { TableName = table, Item = item });
        Assert.Null(put.ConsumedCapacity); // not asked for: DynamoDB does not return it, nor does the emulator
        Assert.Equal((0, 2), (counters.DynamoDbReadUnits, counters.DynamoDbWriteUnits));

        var eventually = await client.GetItemAsync(new GetItemRequest { TableName = table, Key = Key("CAP#1", "META") });
        Assert.Equal(1500, eventually.Item["data"].S.Length);
        Assert.Null(eventually.ConsumedCapacity);
        Assert.Equal(0.5, counters.DynamoDbReadUnits);
        await client.GetItemAsync(new GetItemRequest { TableName = table, Key = Key("CAP#1", "META"), ConsistentRead = true });
        Assert.Equal(1.5, counters.DynamoDbReadUnits);

        // An update costs the larger of the item before (2) and after (1); asked for, the capacity is returned as it is.
        var update = await client.UpdateItemAsync(new UpdateItemRequest
        {
            TableName = table,
            Key = Key("CAP#1", "META"),
            UpdateExpression = "SET #d = :d",
            ExpressionAttributeNames = new() { ["#d"] = "data" },
            ExpressionAttributeValues = new() { [":d"] = new AttributeValue("small") },
            ReturnConsumedCapacity = ReturnConsumedCapacity.TOTAL,
        });
        Assert.Equal(2, update.ConsumedCapacity.CapacityUnits);
        Assert.Equal(4, counters.DynamoDbWriteUnits);

        // A conditional write whose condition fails still consumes write capacity: counted as one unit.
        await Assert.ThrowsAsync<ConditionalCheckFailedException>(() => client.PutItemAsync(new PutItemRequest
        {
            TableName = table,
            Item = Item("CAP#1", "META", "again"),
            ConditionExpression = "attribute_not_exists(pk)",
        }));
        Assert.Equal(1, counters.DynamoDbConditionalCheckFailures);
        Assert.Equal(5, counters.DynamoDbWriteUnits);

        // A delete costs the deleted item's size (now small: 1).
        await client.DeleteItemAsync(new DeleteItemRequest { TableName = table, Key = Key("CAP#1", "META") });
        Assert.Equal(6, counters.DynamoDbWriteUnits);

        // A query reads the sum of its items' sizes in 4 KB steps: three items of 1.5 KB are 2 steps, 1 unit eventually
        // consistent; one that reads nothing is counted as the smallest read.
        for (var i = 0; i < 3; i++)
        {
            await client.PutItemAsync(new PutItemRequest { TableName = table, Item = Item("CAP#2", "M#" + i, new string('y', 1500)) });
        }

        Assert.Equal(12, counters.DynamoDbWriteUnits);
        var query = await client.QueryAsync(new QueryRequest { TableName = table, KeyConditionExpression = "pk = :p", ExpressionAttributeValues = new() { [":p"] = new AttributeValue("CAP#2") } });
        Assert.Equal(3, query.Items.Count);
        Assert.Equal(2.5, counters.DynamoDbReadUnits);
        await client.QueryAsync(new QueryRequest { TableName = table, KeyConditionExpression = "pk = :p", ExpressionAttributeValues = new() { [":p"] = new AttributeValue("CAP#NONE") } });
        Assert.Equal(3, counters.DynamoDbReadUnits);

        Assert.Equal(new Dictionary<string, double> { ["PutItem"] = 9, ["GetItem"] = 1.5, ["UpdateItem"] = 2, ["DeleteItem"] = 1, ["Query"] = 1.5 }, counters.DynamoDbUnitsByAction);
        Assert.Equal(
            new Dictionary<string, double> { ["CAP#/META write"] = 6, ["CAP#/M# write"] = 6, ["CAP#/META read"] = 1.5, ["CAP# (query) read"] = 1.5 },
            counters.DynamoDbUnitsByItemKind);
        counters.Reset();
        Assert.Equal((0, 0, 0), (counters.DynamoDbReadUnits, counters.DynamoDbWriteUnits, counters.DynamoDbConditionalCheckFailures));
        Assert.Empty(counters.DynamoDbUnitsByItemKind);
    }

    internal static Dictionary<string, AttributeValue> Key(string pk, string sk) => new() { ["pk"] = new AttributeValue(pk), ["sk"] = new AttributeValue(sk) };

    internal static Dictionary<string, AttributeValue> Item(string pk, string sk, string data) => new(Key(pk, sk)) { ["data"] = new AttributeValue(data) };

    /// <summary>The emulator and the template's table in dynalite; no function runs (the test signs as the backend's role).</summary>
    /// <remarks>The metering test reads right after it writes: the replica lag model (<see cref="EmulatorReplicaLagTests"/>) is off there.</remarks>
    internal static Task<AwsPathHarness> StartAsync(DynaliteFixture dynalite, string name, Action<EmulatorOptions>? configure = null) => AwsPathHarness.StartAsync(new AwsPathOptions
    {
        Template = SynthesizedTalkiTemplate.Json(),
        DynamoDb = new Uri(dynalite.ServiceUrl),
        StackName = name,
        StartHost = (_, _) => Task.FromResult<IAsyncDisposable>(new NothingRunning()),
        ConfigureEmulator = configure,
    });

    private Task<AwsPathHarness> StartAsync(string name) => StartAsync(dynalite, name, o => o.DynamoDbReplicaLag = TimeSpan.Zero);

    internal static AmazonDynamoDBClient BackendClient(AwsPathHarness harness)
    {
        var backend = harness.HostsOf("Backend")[0];
        return new AmazonDynamoDBClient(
            new BasicAWSCredentials(backend.AccessKeyId, backend.SecretAccessKey),
            new AmazonDynamoDBConfig { ServiceURL = harness.Emulator.DynamoDbEndpoint!.ToString(), AuthenticationRegion = harness.Emulator.Region, MaxErrorRetry = 0 });
    }

    private sealed class NothingRunning : IAsyncDisposable
    {
        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
