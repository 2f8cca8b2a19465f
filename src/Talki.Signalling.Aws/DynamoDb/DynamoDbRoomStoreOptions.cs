namespace Talki.Signalling.Aws.DynamoDb;

/// <summary>Options of the DynamoDB room store (validated at start-up).</summary>
public sealed class DynamoDbRoomStoreOptions
{
    /// <summary>Gets or sets the name of the single table that holds rooms, members, tickets and connection bindings.</summary>
    /// <value>The default value is <c>talki</c>. 3 to 255 characters of <c>a-z A-Z 0-9 _ - .</c>.</value>
    public string TableName { get; set; } = "talki";

    /// <summary>
    /// Gets or sets a value indicating whether the store creates the table (on-demand billing, <c>pk</c>/<c>sk</c>
    /// string keys, TTL on <c>expiresAt</c>) before its first operation when it does not exist. A development
    /// helper: in production create the table with infrastructure as code.
    /// </summary>
    /// <value>The default value is <see langword="false"/>.</value>
    public bool CreateTableIfMissing { get; set; }
}
