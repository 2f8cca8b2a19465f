using StackExchange.Redis;

namespace Talki.Signalling.Redis.Internal;

/// <summary>
/// The one <see cref="IConnectionMultiplexer"/> of the host, shared by sessions, the room store, the quota counters and
/// the push backplane. It connects on first use and never aborts on a failed connect: while Redis is unreachable,
/// commands fail (the store throws <c>RoomStoreUnavailableException</c>) and the multiplexer keeps reconnecting.
/// </summary>
internal sealed class RedisConnection : IAsyncDisposable
{
    private readonly Lazy<Task<IConnectionMultiplexer>> _connection;

    public RedisConnection(string configuration)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(configuration);
        Options = ConfigurationOptions.Parse(configuration); // throws on a malformed string: a start-up error
        Options.AbortOnConnectFail = false;
        _connection = new(async () => await ConnectionMultiplexer.ConnectAsync(Options).ConfigureAwait(false));
    }

    /// <summary>Gets the parsed configuration.</summary>
    public ConfigurationOptions Options { get; }

    /// <summary>Gets the multiplexer, connecting on first use.</summary>
    public Task<IConnectionMultiplexer> GetAsync() => _connection.Value;

    /// <summary>Gets the default database.</summary>
    public async Task<IDatabase> GetDatabaseAsync() => (await GetAsync().ConfigureAwait(false)).GetDatabase();

    public async ValueTask DisposeAsync()
    {
        if (_connection.IsValueCreated)
        {
            try
            {
                await (await _connection.Value.ConfigureAwait(false)).DisposeAsync().ConfigureAwait(false);
            }
            catch (RedisException)
            {
                // Never connected: nothing to close.
            }
        }
    }
}
