using System.Net;
using Microsoft.Extensions.Options;

namespace Talki.Signalling.Aws.ApiGateway;

/// <summary>Validates <see cref="ApiGatewayPushOptions"/> at start-up, without reflection.</summary>
internal sealed class ApiGatewayPushOptionsValidator : IValidateOptions<ApiGatewayPushOptions>
{
    /// <summary>The shortest time limit Polly's timeout strategy accepts.</summary>
    internal static readonly TimeSpan MinimumTimeout = TimeSpan.FromMilliseconds(10);

    /// <summary>The largest retry cap accepted.</summary>
    internal const int MaximumRetryAttempts = 10;

    public ValidateOptionsResult Validate(string? name, ApiGatewayPushOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();

        if (options.Endpoint is not { IsAbsoluteUri: true } endpoint)
        {
            failures.Add("ApiGatewayPushOptions.Endpoint must be an absolute URI such as https://{api-id}.execute-api.{region}.amazonaws.com.");
        }
        else
        {
            var secure = endpoint.Scheme == Uri.UriSchemeHttps;
            var loopbackHttp = endpoint.Scheme == Uri.UriSchemeHttp && (endpoint.IsLoopback || (IPAddress.TryParse(endpoint.Host, out var address) && IPAddress.IsLoopback(address)));
            if (!secure && !loopbackHttp)
            {
                failures.Add("ApiGatewayPushOptions.Endpoint must use https (http is accepted for loopback emulators only).");
            }

            if (endpoint.Query.Length > 0 || endpoint.Fragment.Length > 0 || endpoint.UserInfo.Length > 0)
            {
                failures.Add("ApiGatewayPushOptions.Endpoint must not carry a query, a fragment or user information.");
            }
        }

        if (string.IsNullOrWhiteSpace(options.Stage) || options.Stage.AsSpan().IndexOfAny("/?#% ") >= 0)
        {
            failures.Add("ApiGatewayPushOptions.Stage must be a stage name such as 'prod' (no '/', '?', '#', '%' or spaces).");
        }

        if (!IsRegionName(options.Region))
        {
            failures.Add("ApiGatewayPushOptions.Region must be an AWS region name such as 'eu-west-1'.");
        }

        var retry = options.Retry;
        if (retry.MaxRetryAttempts is < 0 or > MaximumRetryAttempts)
        {
            failures.Add($"ApiGatewayPushOptions.Retry.MaxRetryAttempts must be between 0 and {MaximumRetryAttempts}.");
        }

        if (retry.BaseDelay <= TimeSpan.Zero || retry.MaxDelay <= TimeSpan.Zero || retry.BaseDelay > retry.MaxDelay || retry.MaxDelay > TimeSpan.FromMinutes(1))
        {
            failures.Add("ApiGatewayPushOptions.Retry.BaseDelay and MaxDelay must be positive, with BaseDelay <= MaxDelay <= 1 minute.");
        }

        var timeouts = options.Timeouts;
        if (timeouts.Attempt < MinimumTimeout || timeouts.Total < MinimumTimeout || timeouts.Attempt > timeouts.Total || timeouts.Total > TimeSpan.FromMinutes(5))
        {
            failures.Add("ApiGatewayPushOptions.Timeouts must satisfy 10 ms <= Attempt <= Total <= 5 minutes.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    private static bool IsRegionName(string? region)
    {
        if (string.IsNullOrEmpty(region) || region.Length > 32 || region[0] == '-' || region[^1] == '-' || !region.Contains('-', StringComparison.Ordinal))
        {
            return false;
        }

        foreach (var c in region)
        {
            if (!(char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '-'))
            {
                return false;
            }
        }

        return true;
    }
}
