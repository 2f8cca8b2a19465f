using System.Globalization;

namespace Talki.Signalling.Emulator;

/// <summary>
/// The <c>$context</c> variables of a WebSocket request that the emulator knows, by name without the prefix
/// (<c>connectionId</c>, <c>authorizer.room</c>): what an integration's header mapping (<c>context.X</c>) and the stage's
/// access log (<c>$context.X</c>) read alike (API Gateway developer guide, "WebSocket API mapping template reference",
/// https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-mapping-template-reference.html).
/// </summary>
internal static class ContextVariables
{
    /// <summary>
    /// The value of <paramref name="name"/> for a request on <paramref name="connection"/>, or null when the emulator has
    /// none for it. <c>authorizer.X</c> is the authorizer's context, stringified, <c>principalId</c> included.
    /// </summary>
    internal static string? Value(
        string name, EmulatorConnection connection, string routeKey, string requestId, string? messageId, DateTimeOffset time,
        string apiId, string stage, string domainName)
    {
        const string authorizerPrefix = "authorizer.";
        if (name.StartsWith(authorizerPrefix, StringComparison.Ordinal))
        {
            return connection.AuthorizerContext.TryGetValue(name[authorizerPrefix.Length..], out var value) ? value : null;
        }

        return name switch
        {
            "connectionId" => connection.Id,
            "connectedAt" => connection.ConnectedAt.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture),
            "requestId" or "extendedRequestId" => requestId,
            "messageId" => messageId,
            "apiId" => apiId,
            "stage" => stage,
            "domainName" => domainName,
            "routeKey" => routeKey,
            "eventType" => routeKey switch { "$connect" => "CONNECT", "$disconnect" => "DISCONNECT", _ => "MESSAGE" },
            "messageDirection" => "IN",
            "requestTimeEpoch" => time.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture),
            "requestTime" => time.ToString("dd/MMM/yyyy:HH:mm:ss +0000", CultureInfo.InvariantCulture),
            "identity.sourceIp" => connection.SourceIp,
            "identity.userAgent" => connection.UserAgent,
            _ => null,
        };
    }
}
