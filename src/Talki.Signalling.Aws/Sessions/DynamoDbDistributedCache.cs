using System.Globalization;
using Amazon.DynamoDBv2.Model;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Logging;
using Talki.Signalling.Aws.DynamoDb;

namespace Talki.Signalling.Aws.Sessions;

/// <summary>
/// An <see cref="IDistributedCache"/> in the room store's DynamoDB table, through the low-level client (trim and AOT safe).
/// </summary>
/// <remarks>
/// <para>
/// An entry is the item <c>pk = "cache#{key}"</c>, <c>sk = "cache"</c>, with the value as binary <c>value</c>. An entry
/// that expires carries <c>expiry</c> (the exact instant, fixed-width ISO 8601 UTC) and <c>expiresAt</c> (epoch seconds,
/// rounded up: the table's TTL attribute); a sliding entry also carries <c>sliding</c> (the window, in ticks) and, when it
/// also has one, <c>absolute</c> (the absolute deadline the window never passes). TTL deletes late, so every read checks
/// <c>expiry</c> against the injected clock and treats an expired entry as missing. Reads are strongly consistent.
/// </para>
/// <para>
/// A read or <see cref="RefreshAsync"/> of a live sliding entry moves <c>expiry</c> to <c>min(now + sliding, absolute)</c>
/// with a write conditional on <c>expiry</c> being unchanged, so that a refresh never revives an entry that was replaced
/// or removed meanwhile (a refresh that loses that race is skipped). An entry holds at most DynamoDB's item size, 400 KB.
/// The synchronous members block on the asynchronous ones (the AWS SDK has no synchronous API on .NET).
/// </para>
/// </remarks>
internal sealed class DynamoDbDistributedCache : IDistributedCache
{
    internal const string PkPrefix = "cache#";
    internal const string SkValue = "cache";
    private const string Pk = DynamoDbTableCreator.PartitionKey;
    private const string Sk = DynamoDbTableCreator.SortKey;
    private const string Ttl = DynamoDbTableCreator.TimeToLiveAttribute;
    private const string Value = "value";
    private const string Expiry = "expiry";
    private const string Absolute = "absolute";
    private const string Sliding = "sliding";
    private const string IsoFormat = "yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'";

    private readonly DynamoDbSessionTable _table;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    /// <summary>Initializes a new instance of the <see cref="DynamoDbDistributedCache"/> class.</summary>
    /// <param name="table">The table.</param>
    /// <param name="time">The clock every expiry is measured on.</param>
    /// <param name="logger">The logger.</param>
    public DynamoDbDistributedCache(DynamoDbSessionTable table, TimeProvider time, ILogger<DynamoDbDistributedCache> logger)
    {
        ArgumentNullException.ThrowIfNull(table);
        ArgumentNullException.ThrowIfNull(time);
        _table = table;
        _time = time;
        _logger = logger;
    }

    public byte[]? Get(string key) => GetAsync(key).GetAwaiter().GetResult();

    public async Task<byte[]?> GetAsync(string key, CancellationToken token = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        var item = await ReadAsync(key, projection: null, token).ConfigureAwait(false);
        if (item is null)
        {
            return null;
        }

        await SlideAsync(key, item, token).ConfigureAwait(false);
        return item.TryGetValue(Value, out var value) && value.B is { } bytes ? bytes.ToArray() : null;
    }

    public void Set(string key, byte[] value, DistributedCacheEntryOptions options) => SetAsync(key, value, options).GetAwaiter().GetResult();

    public async Task SetAsync(string key, byte[] value, DistributedCacheEntryOptions options, CancellationToken token = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(value);
        ArgumentNullException.ThrowIfNull(options);
        var now = _time.GetUtcNow();
        DateTimeOffset? absolute = options.AbsoluteExpiration
            ?? (options.AbsoluteExpirationRelativeToNow is { } relative ? now + relative : null);
        if (absolute <= now)
        {
            throw new ArgumentOutOfRangeException(nameof(options), absolute, "The absolute expiration value must be in the future.");
        }

        var sliding = options.SlidingExpiration;
        DateTimeOffset? expiry = sliding is { } window ? Earliest(now + window, absolute) : absolute;

        var item = Key(key);
        item[Value] = new AttributeValue { B = new MemoryStream(value, writable: false) };
        if (expiry is { } at)
        {
            item[Expiry] = S(Iso(at));
            item[Ttl] = N(TtlSeconds(at));
        }

        if (sliding is { } slidingWindow)
        {
            item[Sliding] = N(slidingWindow.Ticks);
            if (absolute is { } deadline)
            {
                item[Absolute] = S(Iso(deadline));
            }
        }

        await _table.ReadyAsync(token).ConfigureAwait(false);
        await _table.Client.PutItemAsync(DynamoDbRoomStore.Tagged(new PutItemRequest { TableName = _table.Name, Item = item }), token).ConfigureAwait(false);
    }

    public void Refresh(string key) => RefreshAsync(key).GetAwaiter().GetResult();

    public async Task RefreshAsync(string key, CancellationToken token = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        var item = await ReadAsync(key, projection: "#e, #a, #s", token).ConfigureAwait(false);
        if (item is not null)
        {
            await SlideAsync(key, item, token).ConfigureAwait(false);
        }
    }

    public void Remove(string key) => RemoveAsync(key).GetAwaiter().GetResult();

    public async Task RemoveAsync(string key, CancellationToken token = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        await _table.ReadyAsync(token).ConfigureAwait(false);
        await _table.Client.DeleteItemAsync(DynamoDbRoomStore.Tagged(new DeleteItemRequest { TableName = _table.Name, Key = Key(key) }), token).ConfigureAwait(false);
    }

    /// <summary>Reads the entry (strongly consistent); <see langword="null"/> when it is missing or has expired.</summary>
    private async Task<Dictionary<string, AttributeValue>?> ReadAsync(string key, string? projection, CancellationToken token)
    {
        await _table.ReadyAsync(token).ConfigureAwait(false);
        var request = new GetItemRequest { TableName = _table.Name, Key = Key(key), ConsistentRead = true };
        if (projection is not null)
        {
            request.ProjectionExpression = projection;
            request.ExpressionAttributeNames = new Dictionary<string, string>(StringComparer.Ordinal) { ["#e"] = Expiry, ["#a"] = Absolute, ["#s"] = Sliding };
        }

        var response = await _table.Client.GetItemAsync(DynamoDbRoomStore.Tagged(request), token).ConfigureAwait(false);
        if (response.Item is not { Count: > 0 } item)
        {
            return null;
        }

        // TTL deletes late (and not at all on emulators): the read decides.
        return item.TryGetValue(Expiry, out var expiry) && ParseIso(expiry.S) <= _time.GetUtcNow() ? null : item;
    }

    /// <summary>Moves a live sliding entry's expiry to <c>min(now + sliding, absolute)</c>, unless it changed meanwhile.</summary>
    private async Task SlideAsync(string key, Dictionary<string, AttributeValue> item, CancellationToken token)
    {
        if (!item.TryGetValue(Sliding, out var sliding) || !item.TryGetValue(Expiry, out var current))
        {
            return;
        }

        var absolute = item.TryGetValue(Absolute, out var deadline) ? ParseIso(deadline.S) : (DateTimeOffset?)null;
        var next = Earliest(_time.GetUtcNow() + TimeSpan.FromTicks(long.Parse(sliding.N, NumberStyles.Integer, CultureInfo.InvariantCulture)), absolute);
        var nextIso = Iso(next);
        if (string.CompareOrdinal(nextIso, current.S) <= 0)
        {
            return;
        }

        try
        {
            await _table.Client.UpdateItemAsync(
                DynamoDbRoomStore.Tagged(new UpdateItemRequest
                {
                    TableName = _table.Name,
                    Key = Key(key),
                    UpdateExpression = "SET #e = :next, #ttl = :ttl",
                    ConditionExpression = "#e = :current",
                    ExpressionAttributeNames = new Dictionary<string, string>(StringComparer.Ordinal) { ["#e"] = Expiry, ["#ttl"] = Ttl },
                    ExpressionAttributeValues = new Dictionary<string, AttributeValue>(StringComparer.Ordinal)
                    {
                        [":next"] = S(nextIso),
                        [":ttl"] = N(TtlSeconds(next)),
                        [":current"] = current,
                    },
                }),
                token).ConfigureAwait(false);
        }
        catch (ConditionalCheckFailedException)
        {
            SessionsLog.CacheRefreshSkipped(_logger, _table.Name);
        }
    }

    private static DateTimeOffset Earliest(DateTimeOffset value, DateTimeOffset? cap) => cap is { } c && c < value ? c : value;

    private static Dictionary<string, AttributeValue> Key(string key)
        => new(StringComparer.Ordinal) { [Pk] = S(PkPrefix + key), [Sk] = S(SkValue) };

    private static AttributeValue S(string value) => new() { S = value };

    private static AttributeValue N(long value) => new() { N = value.ToString(CultureInfo.InvariantCulture) };

    private static string Iso(DateTimeOffset value) => value.UtcDateTime.ToString(IsoFormat, CultureInfo.InvariantCulture);

    private static DateTimeOffset ParseIso(string value)
        => new(DateTime.SpecifyKind(DateTime.ParseExact(value, IsoFormat, CultureInfo.InvariantCulture, DateTimeStyles.None), DateTimeKind.Utc));

    /// <summary>Epoch seconds, rounded up so that TTL never deletes early.</summary>
    private static long TtlSeconds(DateTimeOffset expiresAt)
    {
        var seconds = expiresAt.ToUnixTimeSeconds();
        if (expiresAt.UtcTicks % TimeSpan.TicksPerSecond != 0 && expiresAt.UtcTicks > DateTimeOffset.UnixEpoch.UtcTicks)
        {
            seconds++;
        }

        return seconds;
    }
}
