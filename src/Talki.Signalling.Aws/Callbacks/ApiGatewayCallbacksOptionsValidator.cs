using System.Buffers;
using Microsoft.Extensions.Options;

namespace Talki.Signalling.Aws.Callbacks;

/// <summary>Validates <see cref="ApiGatewayCallbacksOptions"/> at start-up, without reflection.</summary>
internal sealed class ApiGatewayCallbacksOptionsValidator : IValidateOptions<ApiGatewayCallbacksOptions>
{
    private static readonly SearchValues<char> ForbiddenPathChars = SearchValues.Create("?#{}* \\");

    public ValidateOptionsResult Validate(string? name, ApiGatewayCallbacksOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();

        CheckPath(failures, nameof(options.AuthorizerPath), options.AuthorizerPath);
        CheckPath(failures, nameof(options.DefaultRoutePath), options.DefaultRoutePath);
        CheckPath(failures, nameof(options.DisconnectRoutePath), options.DisconnectRoutePath);
        string?[] paths = [options.AuthorizerPath, options.DefaultRoutePath, options.DisconnectRoutePath];
        if (paths.Distinct(StringComparer.OrdinalIgnoreCase).Count() != paths.Length)
        {
            failures.Add("ApiGatewayCallbacksOptions: AuthorizerPath, DefaultRoutePath and DisconnectRoutePath must be distinct.");
        }

        CheckHeaderName(failures, nameof(options.ConnectionIdHeader), options.ConnectionIdHeader);
        CheckHeaderName(failures, nameof(options.GatewaySecretHeader), options.GatewaySecretHeader);
        CheckHeaderName(failures, nameof(options.AuthorizerContextHeaderPrefix), options.AuthorizerContextHeaderPrefix + "seals-at");
        if (string.Equals(options.ConnectionIdHeader, options.GatewaySecretHeader, StringComparison.OrdinalIgnoreCase))
        {
            failures.Add("ApiGatewayCallbacksOptions: ConnectionIdHeader and GatewaySecretHeader must differ.");
        }

        if (!IsSecret(options.GatewaySecret))
        {
            failures.Add($"ApiGatewayCallbacksOptions.GatewaySecret is required: at least {ApiGatewayCallbacksOptions.MinimumGatewaySecretLength} visible ASCII characters (no spaces).");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    private static void CheckPath(List<string> failures, string property, string? path)
    {
        if (string.IsNullOrEmpty(path) || path[0] != '/' || path.Length > 256 || path.AsSpan().IndexOfAny(ForbiddenPathChars) >= 0)
        {
            failures.Add($"ApiGatewayCallbacksOptions.{property} must be a literal path starting with '/' (no '?', '#', '{{', '}}', '*', '\\' or spaces).");
        }
    }

    private static void CheckHeaderName(List<string> failures, string property, string? header)
    {
        if (string.IsNullOrEmpty(header) || header.Length > 128 || !header.All(IsTokenChar))
        {
            failures.Add($"ApiGatewayCallbacksOptions.{property} must be a valid HTTP header name.");
        }
    }

    /// <summary>RFC 9110 <c>tchar</c>.</summary>
    private static bool IsTokenChar(char c) => char.IsAsciiLetterOrDigit(c) || "!#$%&'*+-.^_`|~".Contains(c, StringComparison.Ordinal);

    private static bool IsSecret(string? secret)
    {
        if (secret is null || secret.Length < ApiGatewayCallbacksOptions.MinimumGatewaySecretLength || secret.Length > 1024)
        {
            return false;
        }

        foreach (var c in secret)
        {
            if (c is < '!' or > '~')
            {
                return false;
            }
        }

        return true;
    }
}
