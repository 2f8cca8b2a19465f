using Talki.Signalling.Ports;

namespace Talki.Signalling.Server.Engine;

/// <summary>
/// Implemented by an <see cref="IConnectionPush"/> that can say why it closes a connection: WebSocket close code 1008
/// (policy violation) with a reason, for the rate limit and the hello timeout. Internal, so the locked public
/// <see cref="IConnectionPush"/> does not change; a push without it (API Gateway's <c>@connections</c>, which cannot
/// choose the close code) is closed with <see cref="IConnectionPush.CloseAsync"/>, after the <c>error</c> the engine sends.
/// </summary>
internal interface IPolicyClosingPush
{
    /// <summary>Closes a connection with 1008 and <paramref name="reason"/> after the messages already pushed to it (no-op when it is gone).</summary>
    /// <param name="connectionId">The gateway connection id.</param>
    /// <param name="reason">The close reason (at most 123 UTF-8 bytes).</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <returns>A task that completes when the close has been requested.</returns>
    ValueTask ClosePolicyViolationAsync(string connectionId, string reason, CancellationToken cancellationToken = default);
}
