using System.Xml.Linq;
using Amazon.DynamoDBv2.Model;
using Microsoft.AspNetCore.DataProtection.Repositories;
using Microsoft.Extensions.Logging;
using Talki.Signalling.Aws.DynamoDb;

namespace Talki.Signalling.Aws.Sessions;

/// <summary>
/// The ASP.NET Core data-protection key ring in the room store's DynamoDB table, so that every instance of the host
/// encrypts and decrypts the session cookie with the same keys.
/// </summary>
/// <remarks>
/// Every key is the item <c>pk = "dataprotection"</c>, <c>sk = friendlyName</c> (for example <c>key-{guid}</c>), with
/// the key's XML as the string <c>xml</c>; the ring is read with one strongly consistent query of that partition. Keys
/// carry no TTL: data protection keeps expired keys to read old payloads, and revokes rather than deletes. The XML is
/// stored as data protection hands it over (unencrypted unless an <c>IXmlEncryptor</c> is configured): protect the
/// table with IAM. The members block on the AWS SDK's asynchronous calls, as <see cref="IXmlRepository"/> is synchronous.
/// </remarks>
internal sealed class DynamoDbXmlRepository : IXmlRepository
{
    internal const string Partition = "dataprotection";
    private const string Pk = DynamoDbTableCreator.PartitionKey;
    private const string Sk = DynamoDbTableCreator.SortKey;
    private const string Xml = "xml";

    private readonly DynamoDbSessionTable _table;
    private readonly ILogger _logger;

    /// <summary>Initializes a new instance of the <see cref="DynamoDbXmlRepository"/> class.</summary>
    /// <param name="table">The table.</param>
    /// <param name="logger">The logger.</param>
    public DynamoDbXmlRepository(DynamoDbSessionTable table, ILogger<DynamoDbXmlRepository> logger)
    {
        ArgumentNullException.ThrowIfNull(table);
        _table = table;
        _logger = logger;
    }

    public IReadOnlyCollection<XElement> GetAllElements() => GetAllElementsAsync(CancellationToken.None).GetAwaiter().GetResult();

    public void StoreElement(XElement element, string friendlyName) => StoreElementAsync(element, friendlyName, CancellationToken.None).GetAwaiter().GetResult();

    /// <summary>Reads every key of the ring.</summary>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <returns>The keys' XML.</returns>
    internal async Task<IReadOnlyCollection<XElement>> GetAllElementsAsync(CancellationToken cancellationToken)
    {
        await _table.ReadyAsync(cancellationToken).ConfigureAwait(false);
        var elements = new List<XElement>();
        Dictionary<string, AttributeValue>? start = null;
        do
        {
            var response = await _table.Client.QueryAsync(
                DynamoDbRoomStore.Tagged(new QueryRequest
                {
                    TableName = _table.Name,
                    ConsistentRead = true,
                    KeyConditionExpression = "#pk = :pk",
                    ExpressionAttributeNames = new Dictionary<string, string>(StringComparer.Ordinal) { ["#pk"] = Pk },
                    ExpressionAttributeValues = new Dictionary<string, AttributeValue>(StringComparer.Ordinal) { [":pk"] = new AttributeValue { S = Partition } },
                    ExclusiveStartKey = start,
                }),
                cancellationToken).ConfigureAwait(false);
            foreach (var item in response.Items ?? [])
            {
                if (item.TryGetValue(Xml, out var xml) && xml.S is { Length: > 0 } text)
                {
                    elements.Add(XElement.Parse(text));
                }
            }

            start = response.LastEvaluatedKey is { Count: > 0 } last ? last : null;
        }
        while (start is not null);

        return elements;
    }

    /// <summary>Stores one key.</summary>
    /// <param name="element">The key's XML.</param>
    /// <param name="friendlyName">The key's name, unique in the ring; a new one is made up when it is empty.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <returns>A task that completes when the key is stored.</returns>
    internal async Task StoreElementAsync(XElement element, string? friendlyName, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(element);
        var name = string.IsNullOrEmpty(friendlyName) ? Guid.NewGuid().ToString() : friendlyName;
        await _table.ReadyAsync(cancellationToken).ConfigureAwait(false);
        await _table.Client.PutItemAsync(
            DynamoDbRoomStore.Tagged(new PutItemRequest
            {
                TableName = _table.Name,
                Item = new Dictionary<string, AttributeValue>(StringComparer.Ordinal)
                {
                    [Pk] = new AttributeValue { S = Partition },
                    [Sk] = new AttributeValue { S = name },
                    [Xml] = new AttributeValue { S = element.ToString(SaveOptions.DisableFormatting) },
                },
            }),
            cancellationToken).ConfigureAwait(false);
        SessionsLog.DataProtectionKeyStored(_logger, name, _table.Name);
    }
}
