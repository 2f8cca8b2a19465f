using Talki.Signalling.Ports;

namespace Talki.Signalling.Aws.ApiGateway;

/// <summary>
/// The API Gateway <c>@connections</c> management API: push (POST), connection info (GET) and close (DELETE).
/// Registered by <c>AddApiGatewayPush</c>, which also makes it the engine's <see cref="IConnectionPush"/>.
/// </summary>
public interface IApiGatewayConnections : IConnectionPush
{
    /// <summary>Reads what API Gateway knows about a connection (<c>GET /{stage}/@connections/{id}</c>).</summary>
    /// <param name="connectionId">The API Gateway connection id.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <returns>The connection, or <see langword="null"/> when it is gone (410).</returns>
    /// <exception cref="TimeoutException">No answer within the configured time limits.</exception>
    /// <exception cref="HttpRequestException">API Gateway kept failing, or refused the request (for example 403: wrong credentials, endpoint or stage).</exception>
    ValueTask<ApiGatewayConnectionInfo?> GetConnectionAsync(string connectionId, CancellationToken cancellationToken = default);
}

/// <summary>What API Gateway reports about a WebSocket connection.</summary>
/// <param name="ConnectedAt">When the connection was established.</param>
/// <param name="LastActiveAt">When the connection last sent or received a message.</param>
/// <param name="SourceIp">The client's source IP address, when reported.</param>
/// <param name="UserAgent">The client's user agent, when reported.</param>
public sealed record ApiGatewayConnectionInfo(DateTimeOffset ConnectedAt, DateTimeOffset LastActiveAt, string? SourceIp, string? UserAgent);
