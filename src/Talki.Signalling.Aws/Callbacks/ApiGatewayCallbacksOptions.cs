namespace Talki.Signalling.Aws.Callbacks;

/// <summary>
/// Options of the API Gateway WebSocket callbacks: the <c>$connect</c> REQUEST authorizer (reached through the AWS
/// Lambda Web Adapter's pass-through path) and the HTTP integration endpoints of <c>$default</c> and
/// <c>$disconnect</c>. Validated at start-up.
/// </summary>
/// <remarks>
/// The HTTP integrations must map these request parameters, for example
/// <c>integration.request.header.x-talki-connection-id = context.connectionId</c>,
/// <c>integration.request.header.x-talki-gateway-secret = '{secret}'</c> (or a stage variable), and the authorizer's
/// context: <c>integration.request.header.x-talki-room = context.authorizer.room</c>, and likewise <c>member</c>,
/// <c>epoch</c> and <c>sealsAt</c> (header <c>x-talki-seals-at</c>). The authorizer only consumes the ticket; the backend
/// binds the connection from that context on its first frame.
/// </remarks>
public sealed class ApiGatewayCallbacksOptions
{
    /// <summary>The shortest accepted <see cref="GatewaySecret"/>, in characters.</summary>
    public const int MinimumGatewaySecretLength = 16;

    /// <summary>
    /// Gets or sets the path where the Lambda Web Adapter POSTs non-HTTP events (its <c>AWS_LWA_PASS_THROUGH_PATH</c>);
    /// the <c>$connect</c> REQUEST authorizer event arrives there.
    /// </summary>
    /// <value>The default value is <c>/events</c>.</value>
    public string AuthorizerPath { get; set; } = "/events";

    /// <summary>Gets or sets the path of the <c>$default</c> route's HTTP integration (POST; the body is the client's frame).</summary>
    /// <value>The default value is <c>/talki/aws/default</c>.</value>
    public string DefaultRoutePath { get; set; } = "/talki/aws/default";

    /// <summary>Gets or sets the path of the <c>$disconnect</c> route's HTTP integration (POST).</summary>
    /// <value>The default value is <c>/talki/aws/disconnect</c>.</value>
    public string DisconnectRoutePath { get; set; } = "/talki/aws/disconnect";

    /// <summary>Gets or sets the request header that carries the connection id (mapped from <c>context.connectionId</c>).</summary>
    /// <value>The default value is <c>x-talki-connection-id</c>.</value>
    public string ConnectionIdHeader { get; set; } = "x-talki-connection-id";

    /// <summary>Gets or sets the request header that carries <see cref="GatewaySecret"/>.</summary>
    /// <value>The default value is <c>x-talki-gateway-secret</c>.</value>
    public string GatewaySecretHeader { get; set; } = "x-talki-gateway-secret";

    /// <summary>
    /// Gets or sets the prefix of the request headers that carry the authorizer's context (<c>{prefix}room</c>,
    /// <c>{prefix}member</c>, <c>{prefix}epoch</c>, <c>{prefix}seals-at</c>, mapped from <c>context.authorizer.room</c>,
    /// <c>.member</c>, <c>.epoch</c> and <c>.sealsAt</c>).
    /// </summary>
    /// <value>The default value is <c>x-talki-</c>.</value>
    public string AuthorizerContextHeaderPrefix { get; set; } = "x-talki-";

    /// <summary>
    /// Gets or sets the shared secret API Gateway sends in <see cref="GatewaySecretHeader"/> on every integration call
    /// (required; at least <see cref="MinimumGatewaySecretLength"/> visible ASCII characters). Calls without it are refused.
    /// </summary>
    public string? GatewaySecret { get; set; }
}
