using Amazon.DynamoDBv2;
using Amazon.DynamoDBv2.Model;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Talki.Signalling.Aws.DynamoDb;

/// <summary>
/// Creates the room store's table: on-demand billing, string keys <c>pk</c> (hash) and <c>sk</c> (range),
/// and time to live on <c>expiresAt</c> (epoch seconds). A development and test helper; in production
/// create the same table with infrastructure as code.
/// </summary>
public static class DynamoDbTableCreator
{
    /// <summary>The partition-key attribute.</summary>
    public const string PartitionKey = "pk";

    /// <summary>The sort-key attribute.</summary>
    public const string SortKey = "sk";

    /// <summary>The time-to-live attribute (a Number of epoch seconds) every item carries.</summary>
    public const string TimeToLiveAttribute = "expiresAt";

    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan ActiveTimeout = TimeSpan.FromMinutes(2);

    /// <summary>
    /// Creates the table unless it exists, waits until it is active and enables time to live where the
    /// endpoint supports it (DynamoDB Local and dynalite do not: that is logged and tolerated).
    /// </summary>
    /// <param name="client">The DynamoDB client.</param>
    /// <param name="tableName">The table name.</param>
    /// <param name="time">The clock for the wait between status polls (<see cref="TimeProvider.System"/> when <see langword="null"/>).</param>
    /// <param name="logger">Where to log (nowhere when <see langword="null"/>).</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <returns><see langword="true"/> when this call created the table.</returns>
    /// <exception cref="TimeoutException">The table did not become active within two minutes.</exception>
    public static async Task<bool> CreateIfMissingAsync(IAmazonDynamoDB client, string tableName, TimeProvider? time = null, ILogger? logger = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(client);
        if (!DynamoDbRoomStoreOptionsValidator.IsValidTableName(tableName))
        {
            throw new ArgumentException("Not a valid DynamoDB table name.", nameof(tableName));
        }

        time ??= TimeProvider.System;
        logger ??= NullLogger.Instance;
        var status = await DescribeStatusAsync(client, tableName, cancellationToken).ConfigureAwait(false);
        var created = false;
        if (status is null)
        {
            try
            {
                var request = new CreateTableRequest
                {
                    TableName = tableName,
                    BillingMode = BillingMode.PAY_PER_REQUEST,
                    AttributeDefinitions =
                    [
                        new AttributeDefinition(PartitionKey, ScalarAttributeType.S),
                        new AttributeDefinition(SortKey, ScalarAttributeType.S),
                    ],
                    KeySchema =
                    [
                        new KeySchemaElement(PartitionKey, KeyType.HASH),
                        new KeySchemaElement(SortKey, KeyType.RANGE),
                    ],
                };
                await client.CreateTableAsync(DynamoDbRoomStore.Tagged(request), cancellationToken).ConfigureAwait(false);
                created = true;
                DynamoDbLog.TableCreated(logger, tableName);
            }
            catch (ResourceInUseException)
            {
                // Another process created it at the same moment.
            }
        }

        var deadline = time.GetUtcNow() + ActiveTimeout;
        while (status != TableStatus.ACTIVE)
        {
            if (time.GetUtcNow() >= deadline)
            {
                throw new TimeoutException($"The DynamoDB table {tableName} did not become active within {ActiveTimeout}.");
            }

            await Task.Delay(PollInterval, time, cancellationToken).ConfigureAwait(false);
            status = await DescribeStatusAsync(client, tableName, cancellationToken).ConfigureAwait(false);
        }

        await EnableTimeToLiveAsync(client, tableName, logger, cancellationToken).ConfigureAwait(false);
        return created;
    }

    private static async Task<TableStatus?> DescribeStatusAsync(IAmazonDynamoDB client, string tableName, CancellationToken cancellationToken)
    {
        try
        {
            var response = await client.DescribeTableAsync(DynamoDbRoomStore.Tagged(new DescribeTableRequest { TableName = tableName }), cancellationToken).ConfigureAwait(false);
            return response.Table.TableStatus;
        }
        catch (ResourceNotFoundException)
        {
            return null;
        }
    }

    private static async Task EnableTimeToLiveAsync(IAmazonDynamoDB client, string tableName, ILogger logger, CancellationToken cancellationToken)
    {
        try
        {
            var described = await client.DescribeTimeToLiveAsync(DynamoDbRoomStore.Tagged(new DescribeTimeToLiveRequest { TableName = tableName }), cancellationToken).ConfigureAwait(false);
            var current = described.TimeToLiveDescription?.TimeToLiveStatus;
            if (current == TimeToLiveStatus.ENABLED || current == TimeToLiveStatus.ENABLING)
            {
                return;
            }

            await client.UpdateTimeToLiveAsync(
                DynamoDbRoomStore.Tagged(new UpdateTimeToLiveRequest
                {
                    TableName = tableName,
                    TimeToLiveSpecification = new TimeToLiveSpecification { AttributeName = TimeToLiveAttribute, Enabled = true },
                }),
                cancellationToken).ConfigureAwait(false);
            DynamoDbLog.TimeToLiveEnabled(logger, tableName, TimeToLiveAttribute);
        }
        catch (AmazonDynamoDBException e) when (e.ErrorCode == "UnknownOperationException" || e.StatusCode == System.Net.HttpStatusCode.NotImplemented)
        {
            DynamoDbLog.TimeToLiveUnsupported(logger, tableName, e.ErrorCode ?? e.Message);
        }
    }
}
