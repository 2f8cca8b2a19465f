using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Talki.Signalling.Aws.DynamoDb;
using Talki.Signalling.Conformance;
using Talki.Signalling.Ports;

namespace Talki.Signalling.Aws.Tests.DynamoDb;

/// <summary>The store conformance suite against the DynamoDB store over dynalite.</summary>
[Collection(DynaliteGroup.Name)]
public sealed class DynamoDbRoomStoreConformanceTests(DynaliteFixture dynalite) : RoomStoreConformanceTests
{
    private const string Table = "conformance";

    protected override async Task<IRoomStore> CreateStoreAsync(TimeProvider time)
    {
        await dynalite.EnsureTableAsync(Table);
        return new DynamoDbRoomStore(dynalite.Client, ownsClient: false, Options.Create(new DynamoDbRoomStoreOptions { TableName = Table }), time, NullLogger<DynamoDbRoomStore>.Instance);
    }
}
