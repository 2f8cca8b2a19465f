using Talki.Signalling.Conformance;
using Talki.Signalling.Ports;
using Talki.Signalling.Redis.Internal;
using Talki.Signalling.Server.IntegrationTests.Sessions;

namespace Talki.Signalling.Server.IntegrationTests.Redis;

/// <summary>The store conformance suite (the same facts as the in-memory and DynamoDB stores) against a real redis-server.</summary>
public sealed class RedisRoomStoreConformanceTests(RedisServerFixture redis) : RoomStoreConformanceTests, IClassFixture<RedisServerFixture>
{
    private RedisConnection? _connection;

    protected override Task<IRoomStore> CreateStoreAsync(TimeProvider time)
    {
        _connection = new RedisConnection(redis.Configuration);
        return Task.FromResult<IRoomStore>(RedisTestStores.Store(_connection, time));
    }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        if (_connection is not null)
        {
            await _connection.DisposeAsync();
        }
    }
}
