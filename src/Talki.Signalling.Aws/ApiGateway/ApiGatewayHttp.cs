using System.Net;
using Amazon;
using Amazon.Runtime.Signing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Http.Resilience;
using Microsoft.Extensions.Options;
using Polly;
using Polly.Timeout;

namespace Talki.Signalling.Aws.ApiGateway;

/// <summary>
/// The named <see cref="HttpClient"/> of the <c>@connections</c> API. Handlers, outermost first:
/// the factory's logging scope → the resilience pipeline (total timeout → retry → attempt timeout) → the user-agent
/// suffix → the factory's client logging → <see cref="SigV4SigningHandler"/> (the primary handler, service
/// <c>execute-api</c>) → <see cref="SocketsHttpHandler"/> without auto-redirect. Retries sit outside the signer, so each
/// attempt is signed afresh.
/// </summary>
internal static class ApiGatewayHttp
{
    /// <summary>The name of the HTTP client and of its resilience pipeline.</summary>
    public const string ClientName = "Talki.ApiGateway.Connections";

    /// <summary>The SigV4 signing name of the API Gateway management API.</summary>
    public const string SigningService = "execute-api";

    /// <summary>The path under the stage, up to the connection id.</summary>
    public const string ConnectionsPath = "@connections/";

    /// <summary>Whether a status is retried: 429 (throttled or client buffer full) and 5xx.</summary>
    public static bool IsTransient(HttpStatusCode status) => status == HttpStatusCode.TooManyRequests || (int)status >= 500;

    /// <summary>Registers the named client with its handlers and resilience pipeline.</summary>
    public static IHttpClientBuilder AddApiGatewayHttpClient(this IServiceCollection services)
    {
        var client = services.AddHttpClient(ClientName, static (sp, http) =>
        {
            var options = sp.GetRequiredService<IOptions<ApiGatewayPushOptions>>().Value;
            http.BaseAddress = BaseAddress(options);
            http.Timeout = Timeout.InfiniteTimeSpan; // the pipeline bounds every operation, on the DI TimeProvider
        });

        // The default HTTP client logging writes request URLs, and ours contain connection ids: secrets.
        client.RemoveAllLoggers();
        client.AddResilienceHandler(ClientName, static (pipeline, context) =>
        {
            var options = context.ServiceProvider.GetRequiredService<IOptions<ApiGatewayPushOptions>>().Value;
            pipeline.TimeProvider = context.ServiceProvider.GetRequiredService<TimeProvider>();
            pipeline.AddTimeout(new HttpTimeoutStrategyOptions { Name = "total", Timeout = options.Timeouts.Total });
            if (options.Retry.MaxRetryAttempts > 0)
            {
                pipeline.AddRetry(new HttpRetryStrategyOptions
                {
                    Name = "retry",
                    MaxRetryAttempts = options.Retry.MaxRetryAttempts,
                    BackoffType = DelayBackoffType.Exponential,
                    UseJitter = true,
                    Delay = options.Retry.BaseDelay,
                    MaxDelay = options.Retry.MaxDelay,
                    ShouldRetryAfterHeader = false, // the configured cap is the cap
                    ShouldHandle = static args => ValueTask.FromResult(args.Outcome switch
                    {
                        { Result: { } response } => IsTransient(response.StatusCode),
                        { Exception: HttpRequestException or TimeoutRejectedException } => true,
                        _ => false,
                    }),
                });
            }

            pipeline.AddTimeout(new HttpTimeoutStrategyOptions { Name = "attempt", Timeout = options.Timeouts.Attempt });
        });

        client.AddHttpMessageHandler(static () => new UserAgentSuffixHandler());

        client.ConfigurePrimaryHttpMessageHandler(static sp =>
        {
            var options = sp.GetRequiredService<IOptions<ApiGatewayPushOptions>>().Value;
            var transport = new SocketsHttpHandler
            {
                AllowAutoRedirect = false, // a followed redirect would not be re-signed
                UseCookies = false,
                AutomaticDecompression = DecompressionMethods.None,
            };
            return new SigV4SigningHandler(
                options.Credentials ?? new DefaultChainCredentials(),
                RegionEndpoint.GetBySystemName(options.Region),
                SigningService,
                transport);
        });

        return client;
    }

    /// <summary>The endpoint and stage as a base address ending in <c>/{stage}/</c>.</summary>
    internal static Uri BaseAddress(ApiGatewayPushOptions options)
    {
        var endpoint = options.Endpoint ?? throw new InvalidOperationException("ApiGatewayPushOptions.Endpoint is not set.");
        var root = endpoint.GetLeftPart(UriPartial.Path).TrimEnd('/');
        return new Uri(root + "/" + options.Stage + "/", UriKind.Absolute);
    }
}
