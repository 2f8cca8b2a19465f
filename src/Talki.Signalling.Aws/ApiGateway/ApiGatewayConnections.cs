using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Polly.Timeout;
using Talki.Signalling.Ports;

namespace Talki.Signalling.Aws.ApiGateway;

/// <summary>
/// The <c>@connections</c> client over the named <see cref="HttpClient"/> <see cref="ApiGatewayHttp.ClientName"/>
/// (resilience pipeline → user-agent suffix → SigV4 signer → sockets). A named client is created per operation rather
/// than a typed client injected once, because this is a singleton (the engine's push port) and a captured client
/// would never see the factory's handler rotation.
/// </summary>
/// <remarks>
/// Outcomes: 2xx → <see cref="PushOutcome.Delivered"/>; 410 → <see cref="PushOutcome.Gone"/> (never retried);
/// 413 → <see cref="PushOutcome.PayloadTooLarge"/> (never retried). When the outcome cannot be established within the
/// bounds — 429/5xx after the retry cap, transport errors after the retry cap, or the total time limit — the push
/// answers <see cref="PushOutcome.Undeliverable"/>: the message was not delivered, but nothing says the connection is
/// gone, so the engine keeps the member and tells the sender (only 410 is a departure). Other statuses (403: credentials, endpoint,
/// stage or IAM are wrong) are configuration errors and throw <see cref="HttpRequestException"/>. Cancellation by the
/// caller throws <see cref="OperationCanceledException"/>.
/// </remarks>
internal sealed class ApiGatewayConnections : IApiGatewayConnections
{
    private static readonly MediaTypeHeaderValue BinaryOctetStream = new("binary/octet-stream");

    private readonly IHttpClientFactory _httpClientFactory;
    private readonly ILogger _logger;

    public ApiGatewayConnections(IHttpClientFactory httpClientFactory, ILogger<ApiGatewayConnections> logger)
    {
        _httpClientFactory = httpClientFactory;
        _logger = logger;
    }

    public async ValueTask<PushOutcome> PushAsync(string connectionId, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
    {
        using var request = CreateRequest(HttpMethod.Post, connectionId);

        // A retried POST whose first answer was lost (a timeout, a 5xx after delivery) reaches the client twice. Every
        // attempt sends the same bytes, stamped once with a delivery id, so the client drops the copy.
        var stamped = MessageStamp.TryStamp(payload.Span, out var length);
        try
        {
            request.Content = stamped is null ? new ReadOnlyMemoryContent(payload) : new ReadOnlyMemoryContent(stamped.AsMemory(0, length));
            if (!payload.IsEmpty)
            {
                request.Content.Headers.ContentType = BinaryOctetStream;
            }

            return await PushCoreAsync(request, payload.Length, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            if (stamped is not null)
            {
                System.Buffers.ArrayPool<byte>.Shared.Return(stamped);
            }
        }
    }

    private async ValueTask<PushOutcome> PushCoreAsync(HttpRequestMessage request, int payloadLength, CancellationToken cancellationToken)
    {
        using var response = await SendAsync(request, "push", cancellationToken).ConfigureAwait(false);
        if (response is null)
        {
            return PushOutcome.Undeliverable;
        }

        switch (response.StatusCode)
        {
            case HttpStatusCode.Gone:
                Log.ConnectionGone(_logger, "push");
                return PushOutcome.Gone;
            case HttpStatusCode.RequestEntityTooLarge:
                Log.PayloadTooLarge(_logger, payloadLength);
                return PushOutcome.PayloadTooLarge;
            default:
                EnsureSuccessOrThrow(response, "push");
                return PushOutcome.Delivered;
        }
    }

    public async ValueTask CloseAsync(string connectionId, CancellationToken cancellationToken = default)
    {
        using var request = CreateRequest(HttpMethod.Delete, connectionId);
        using var response = await SendAsync(request, "close", cancellationToken).ConfigureAwait(false);
        if (response is null)
        {
            return; // Logged; API Gateway's idle timeout ends a connection that could not be closed.
        }

        if (response.StatusCode == HttpStatusCode.Gone)
        {
            Log.ConnectionGone(_logger, "close");
            return;
        }

        EnsureSuccessOrThrow(response, "close");
    }

    public async ValueTask<ApiGatewayConnectionInfo?> GetConnectionAsync(string connectionId, CancellationToken cancellationToken = default)
    {
        using var request = CreateRequest(HttpMethod.Get, connectionId);
        HttpResponseMessage response;
        try
        {
            response = await _httpClientFactory.CreateClient(ApiGatewayHttp.ClientName).SendAsync(request, HttpCompletionOption.ResponseContentRead, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutRejectedException exception)
        {
            throw new TimeoutException("@connections GetConnection did not complete within the configured time limits.", exception);
        }

        using (response)
        {
            if (response.StatusCode == HttpStatusCode.Gone)
            {
                Log.ConnectionGone(_logger, "get");
                return null;
            }

            EnsureSuccessOrThrow(response, "get");
            var body = await response.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false);
            var wire = JsonSerializer.Deserialize(body, ApiGatewayJsonContext.Default.GetConnectionResponse)
                ?? throw new HttpRequestException("@connections GetConnection answered an empty body.", null, response.StatusCode);
            return new ApiGatewayConnectionInfo(
                wire.ConnectedAt ?? default,
                wire.LastActiveAt ?? default,
                wire.Identity?.SourceIp,
                wire.Identity?.UserAgent);
        }
    }

    /// <summary>The request to <c>{stage}/@connections/{id}</c>, relative to the endpoint, with the id percent-encoded (<c>=</c> → <c>%3D</c>).</summary>
    private static HttpRequestMessage CreateRequest(HttpMethod method, string connectionId)
    {
        ArgumentException.ThrowIfNullOrEmpty(connectionId);
        var request = new HttpRequestMessage(method, new Uri(ApiGatewayHttp.ConnectionsPath + Uri.EscapeDataString(connectionId), UriKind.Relative));
        request.Headers.TryAddWithoutValidation("x-amz-api-version", "2018-11-29");
        return request;
    }

    private static string? ErrorType(HttpResponseMessage response)
    {
        if (!response.Headers.TryGetValues("x-amzn-ErrorType", out var values))
        {
            return null;
        }

        var value = values.FirstOrDefault();
        var colon = value?.IndexOf(':', StringComparison.Ordinal) ?? -1;
        return colon >= 0 ? value![..colon] : value;
    }

    /// <summary>Sends through the pipeline; <see langword="null"/> when the outcome could not be established within the bounds.</summary>
    private async ValueTask<HttpResponseMessage?> SendAsync(HttpRequestMessage request, string operation, CancellationToken cancellationToken)
    {
        HttpResponseMessage response;
        try
        {
            response = await _httpClientFactory.CreateClient(ApiGatewayHttp.ClientName).SendAsync(request, HttpCompletionOption.ResponseContentRead, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutRejectedException)
        {
            Log.TimedOut(_logger, operation);
            return null;
        }
        catch (HttpRequestException exception)
        {
            Log.Unreachable(_logger, operation, exception);
            return null;
        }

        if (ApiGatewayHttp.IsTransient(response.StatusCode))
        {
            Log.RetriesExhausted(_logger, operation, response.StatusCode, ErrorType(response));
            response.Dispose();
            return null;
        }

        return response;
    }

    private void EnsureSuccessOrThrow(HttpResponseMessage response, string operation)
    {
        if (response.IsSuccessStatusCode)
        {
            return;
        }

        var errorType = ErrorType(response);
        var requestId = response.Headers.TryGetValues("x-amzn-RequestId", out var ids) ? ids.FirstOrDefault() : null;
        Log.Refused(_logger, operation, response.StatusCode, errorType, requestId);
        throw new HttpRequestException(
            $"@connections {operation} failed with {(int)response.StatusCode} {errorType ?? response.ReasonPhrase} (request {requestId ?? "?"}).",
            null,
            response.StatusCode);
    }
}
