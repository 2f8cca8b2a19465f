namespace Talki.Signalling.Server.Tests.AspNetCore;

/// <summary>
/// An engine for the gateway's unit tests: what the gateway never calls throws; what a test does not script completes.
/// </summary>
internal abstract class GatewayTestEngine : ISignallingEngine
{
    public abstract ValueTask<SignallingResult<ConnectionGrant>> ConnectAsync(string connectionId, string? ticket, long? resumeEpoch = null, int? waitingVersion = null, CancellationToken cancellationToken = default);

    public virtual ValueTask DisconnectAsync(string connectionId, CancellationToken cancellationToken = default) => ValueTask.CompletedTask;

    public virtual ValueTask HandleAuthorizedMessageAsync(string connectionId, ConnectionGrant grant, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default) => ValueTask.CompletedTask;

    public ValueTask HandleMessageAsync(string connectionId, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default) => throw new NotSupportedException("the gateway hands its messages over with the connection's grant");

    public ValueTask<SignallingResult<TicketGrant>> CreateRoomAsync(CallerIdentity caller, CancellationToken cancellationToken = default) => throw new NotSupportedException();

    public ValueTask<SignallingResult<TicketGrant>> IssueJoinTicketAsync(CallerIdentity caller, RoomId room, CancellationToken cancellationToken = default) => throw new NotSupportedException();

    public ValueTask<SignallingResult<ConnectionGrant>> AuthorizeAsync(string? ticket, long? resumeEpoch = null, CancellationToken cancellationToken = default) => throw new NotSupportedException();

    public ValueTask<SignallingResult<ConnectionGrant>> AuthorizeWaitingAsync(string connectionId, string? ticket, int version, CancellationToken cancellationToken = default) => throw new NotSupportedException();
}
