using System.Globalization;
using System.Text.RegularExpressions;

namespace Talki.Signalling.Emulator;

/// <summary>
/// One event the stage writes an access-log line for: a connect (the authorizer's outcome, or a refusal before it), a
/// message forwarded to <c>$default</c>, or a disconnect forwarded to <c>$disconnect</c>.
/// </summary>
/// <param name="RouteKey"><c>$connect</c>, <c>$default</c> or <c>$disconnect</c>.</param>
/// <param name="RequestId">The request id (the one the integration got in its headers, where there was one).</param>
/// <param name="Connection">The connection.</param>
/// <param name="Time">When the request came in.</param>
/// <param name="Status">The status API Gateway answered with.</param>
/// <param name="ErrorMessage">API Gateway's error message (<c>Unauthorized</c>, <c>Forbidden</c>, <c>Internal server error</c>), if any.</param>
/// <param name="IntegrationStatus">The integration's HTTP status, if it was called and answered.</param>
/// <param name="IntegrationLatency">The integration's latency, if it was called.</param>
/// <param name="IntegrationError">Why the integration call failed, if it did.</param>
internal sealed record AccessLogEvent(
    string RouteKey,
    string RequestId,
    EmulatorConnection Connection,
    DateTimeOffset Time,
    int Status,
    string? ErrorMessage = null,
    int? IntegrationStatus = null,
    TimeSpan? IntegrationLatency = null,
    string? IntegrationError = null);

/// <summary>
/// The stage's access log: the template's <c>AccessLogSettings.Format</c> with its <c>$context</c> variables replaced by
/// the event's values, one line per connect, message and disconnect (API Gateway developer guide, "Configure logging for
/// WebSocket APIs", https://docs.aws.amazon.com/apigateway/latest/developerguide/websocket-api-logging.html). A variable
/// without a value is written <c>-</c>, as API Gateway writes it (real access-log lines show <c>"integrationLatency":"-"</c>
/// and <c>"errorMessage":"-"</c> where there was no integration or no error). The emulator models the variables listed in
/// <see cref="Modelled"/> and the authorizer's context keys; a format with any other variable is refused when the
/// template is read, so that the bytes a call logs are never those of a guessed value.
/// </summary>
internal static partial class StageAccessLog
{
    /// <summary>Gets the variables the emulator fills (besides <c>$context.authorizer.{key}</c> of the authorizer's context).</summary>
    internal static IReadOnlySet<string> Modelled { get; } = new HashSet<string>(StringComparer.Ordinal)
    {
        "apiId", "connectedAt", "connectionId", "domainName", "error.message", "eventType", "extendedRequestId",
        "identity.sourceIp", "identity.userAgent", "integration.error", "integration.latency", "integration.status",
        "integrationLatency", "messageDirection", "requestId", "requestTime", "requestTimeEpoch", "routeKey", "stage",
        "status", "authorizer.error", "authorizer.principalId",
    };

    /// <summary>
    /// Gets the <c>$context.authorizer.*</c> variables the guide documents as the authorizer's own figures, not keys of its
    /// context: the emulator does not model them, so it must not read them as context keys (which would log <c>-</c>).
    /// </summary>
    internal static IReadOnlySet<string> AuthorizerFigures { get; } = new HashSet<string>(StringComparer.Ordinal)
    {
        "authorizer.integrationLatency", "authorizer.integrationStatus", "authorizer.latency", "authorizer.requestId", "authorizer.status",
    };

    /// <summary>Throws when the format uses a variable the emulator does not model.</summary>
    internal static void Validate(string format)
    {
        var unknown = Variable().Matches(format).Select(m => Name(m.Value))
            .Where(name => !Modelled.Contains(name) && (!name.StartsWith("authorizer.", StringComparison.Ordinal) || AuthorizerFigures.Contains(name)))
            .Distinct(StringComparer.Ordinal).ToList();
        if (unknown.Count > 0)
        {
            throw new NotSupportedException(
                $"The stage's access-log format uses $context variables the emulator does not model: {string.Join(", ", unknown)}. Model them in StageAccessLog before using them.");
        }
    }

    /// <summary>Renders one line: every <c>$context.X</c> replaced by its value, or <c>-</c> when it has none.</summary>
    internal static string Render(string format, AccessLogEvent e, string apiId, string stage, string domainName)
        => Variable().Replace(format, match =>
        {
            var value = Value(Name(match.Value), e, apiId, stage, domainName);
            return string.IsNullOrEmpty(value) ? "-" : value;
        });

    private static string Name(string token) => token["$context.".Length..].TrimEnd('.');

    /// <summary>
    /// The access log's own variables (the outcome: status, errors, the integration's figures); every other one as an
    /// integration's header mapping reads it (<see cref="ContextVariables"/>).
    /// </summary>
    private static string? Value(string name, AccessLogEvent e, string apiId, string stage, string domainName) => name switch
    {
        "status" => e.Status.ToString(CultureInfo.InvariantCulture),
        "error.message" => e.ErrorMessage,
        // The authorizer's own error message (a Lambda authorizer that failed); its Deny is an error.message.
        "authorizer.error" => e.Status == 500 && e.RouteKey == "$connect" ? e.ErrorMessage : null,
        "integration.error" => e.IntegrationError,
        "integration.latency" or "integrationLatency" => e.IntegrationLatency is { } latency
            ? ((long)Math.Round(latency.TotalMilliseconds)).ToString(CultureInfo.InvariantCulture)
            : null,
        "integration.status" => e.IntegrationStatus is { } status and > 0 ? status.ToString(CultureInfo.InvariantCulture) : null,
        _ => ContextVariables.Value(name, e.Connection, e.RouteKey, e.RequestId, messageId: null, e.Time, apiId, stage, domainName),
    };

    [GeneratedRegex(@"\$context\.[A-Za-z0-9_.]+", RegexOptions.CultureInvariant)]
    private static partial Regex Variable();
}
