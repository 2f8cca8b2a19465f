using Talki.Signalling.Conformance;
using Talki.Signalling.Ports;
using Talki.Signalling.Server.Storage;

namespace Talki.Signalling.Server.Tests.Storage;

/// <summary>The store conformance suite against the embedded in-memory store.</summary>
public sealed class InMemoryRoomStoreConformanceTests : RoomStoreConformanceTests
{
    protected override Task<IRoomStore> CreateStoreAsync(TimeProvider time) => Task.FromResult<IRoomStore>(new InMemoryRoomStore(time));
}
