using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Talki.Signalling.Aws.Callbacks;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Runs the API Gateway <c>$connect</c> authorizer as a Lambda custom runtime, without a web server.</summary>
public static class TalkiAwsLambdaRuntimeExtensions
{
    /// <summary>
    /// Serves the <c>$connect</c> authorizer from the Lambda runtime API: a hosted service takes each invocation
    /// (<c>GET /2018-06-01/runtime/invocation/next</c>), answers it as the pass-through path of <c>AddAwsGateway</c>
    /// would (Allow with the member's context, or Deny), and posts the answer back, one invocation at a time. For a
    /// function whose <c>bootstrap</c> is the host itself (<c>provided.al2023</c>, no Lambda Web Adapter layer): the host
    /// needs no web server (<c>Host.CreateEmptyApplicationBuilder</c>), so a cold start builds no Kestrel, routing or
    /// middleware. When the runtime API answers 500 ("non-recoverable state") or cannot be reached, the host stops with
    /// exit code 1 and Lambda starts a fresh environment. Call it after <c>AddAwsGateway</c>.
    /// </summary>
    /// <param name="builder">The Talki builder, with <c>AddAwsGateway</c> called.</param>
    /// <param name="runtimeApi">The runtime API's <c>host:port</c>; <see langword="null"/> reads <c>AWS_LAMBDA_RUNTIME_API</c>,
    /// which Lambda sets, when the host starts.</param>
    /// <returns>The builder.</returns>
    /// <exception cref="ArgumentException"><paramref name="runtimeApi"/> is not a <c>host:port</c>.</exception>
    /// <remarks>
    /// The host fails at start, saying why, when <c>AddAwsGateway</c> was not called or no runtime API is configured. Do not
    /// call it in a function that has the Lambda Web Adapter: the adapter is then the function's runtime client, and two
    /// clients would take each other's invocations.
    /// </remarks>
    public static ITalkiSignallingBuilder AddAwsLambdaRuntime(this ITalkiSignallingBuilder builder, string? runtimeApi = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        if (runtimeApi is not null && LambdaRuntimeAuthorizer.ParseRuntimeApi(runtimeApi) is null)
        {
            throw new ArgumentException($"'{runtimeApi}' is not a runtime API endpoint (host:port, as AWS_LAMBDA_RUNTIME_API).", nameof(runtimeApi));
        }

        builder.Services.AddHostedService(sp =>
        {
            var callbacks = sp.GetService<ApiGatewayCallbacks>()
                ?? throw new InvalidOperationException("Call services.AddTalkiSignalling().AddAwsGateway(…) before AddAwsLambdaRuntime().");
            var endpoint = runtimeApi ?? Environment.GetEnvironmentVariable(LambdaRuntimeAuthorizer.RuntimeApiVariable);
            if (LambdaRuntimeAuthorizer.ParseRuntimeApi(endpoint) is null)
            {
                throw new InvalidOperationException(endpoint is null
                    ? $"AddAwsLambdaRuntime(): {LambdaRuntimeAuthorizer.RuntimeApiVariable} is not set; the host is not running as a Lambda function (or pass the runtime API's host:port)."
                    : $"AddAwsLambdaRuntime(): {LambdaRuntimeAuthorizer.RuntimeApiVariable} is '{endpoint}', not a host:port.");
            }

            return new LambdaRuntimeAuthorizer(
                callbacks,
                endpoint!,
                LambdaRuntimeAuthorizer.CreateHandler(),
                sp.GetRequiredService<IHostApplicationLifetime>(),
                sp.GetRequiredService<ILogger<LambdaRuntimeAuthorizer>>());
        });
        return builder;
    }
}
