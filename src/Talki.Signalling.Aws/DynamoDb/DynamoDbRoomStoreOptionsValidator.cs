using Microsoft.Extensions.Options;

namespace Talki.Signalling.Aws.DynamoDb;

/// <summary>Validates <see cref="DynamoDbRoomStoreOptions"/> at start-up (trim safe, no reflection).</summary>
internal sealed class DynamoDbRoomStoreOptionsValidator : IValidateOptions<DynamoDbRoomStoreOptions>
{
    public ValidateOptionsResult Validate(string? name, DynamoDbRoomStoreOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return IsValidTableName(options.TableName)
            ? ValidateOptionsResult.Success
            : ValidateOptionsResult.Fail($"{nameof(DynamoDbRoomStoreOptions.TableName)} must be 3 to 255 characters of a-z, A-Z, 0-9, '_', '-' and '.'.");
    }

    /// <summary>Checks a DynamoDB table name.</summary>
    /// <param name="tableName">The name.</param>
    /// <returns><see langword="true"/> when DynamoDB accepts the name.</returns>
    internal static bool IsValidTableName(string? tableName)
        => tableName is { Length: >= 3 and <= 255 } && tableName.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.');
}
