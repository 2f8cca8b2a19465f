using Talki.Signalling.Ports;

namespace Talki.Signalling.Aws.Callbacks;

/// <summary>
/// The <see cref="IConnectionPush"/> of the <c>$connect</c> authorizer function (<c>Talki:Aws:Role</c> <c>authorizer</c>):
/// none. The authorizer only takes tickets and binds a waiting member's connection in the store; it never pushes to or closes
/// a connection (API Gateway would refuse it: the stack gives its role no <c>execute-api:ManageConnections</c>). A push
/// attempted there is a bug, and fails at once, as the call would on AWS, instead of building an <c>@connections</c> client
/// on every cold start.
/// </summary>
internal sealed class NoPushFromTheAuthorizer : IConnectionPush
{
    public ValueTask<PushOutcome> PushAsync(string connectionId, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
        => throw new InvalidOperationException("The $connect authorizer pushes to no connection (its role has no execute-api:ManageConnections).");

    public ValueTask CloseAsync(string connectionId, CancellationToken cancellationToken = default)
        => throw new InvalidOperationException("The $connect authorizer closes no connection (its role has no execute-api:ManageConnections).");
}
