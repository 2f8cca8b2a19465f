using Talki.Signalling.Protocol;

namespace Talki.Signalling.Server;

/// <summary>Options of the Talki signalling engine and its ASP.NET Core hosting. Validated at start-up.</summary>
public sealed class TalkiSignallingOptions
{
    /// <summary>The default join window.</summary>
    public static readonly TimeSpan DefaultJoinWindow = TimeSpan.FromMinutes(5);

    /// <summary>The default ticket lifetime.</summary>
    public static readonly TimeSpan DefaultTicketLifetime = TimeSpan.FromSeconds(30);

    /// <summary>Gets or sets how long a new room accepts joins before it seals.</summary>
    /// <value>The default value is 5 minutes. Between 10 seconds and 24 hours.</value>
    public TimeSpan JoinWindow { get; set; } = DefaultJoinWindow;

    /// <summary>Gets or sets how long a one-time ticket stays valid after it is issued.</summary>
    /// <value>The default value is 30 seconds. Between 1 second and 10 minutes.</value>
    public TimeSpan TicketLifetime { get; set; } = DefaultTicketLifetime;

    /// <summary>Gets or sets how long a sealed room is remembered (answering <c>room_sealed</c>) before it is deleted.</summary>
    /// <value>The default value is 10 minutes. Between zero and 24 hours.</value>
    public TimeSpan SealedRoomRetention { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>Gets or sets a value indicating whether this process seals rooms on a timer (pushing <c>room_sealed</c> and closing sockets). Turn it off for stateless hosts such as Lambda, where sealing is enforced on every read instead.</summary>
    /// <value>The default value is <see langword="true"/>.</value>
    public bool SealRoomsOnTimer { get; set; } = true;

    /// <summary>Gets or sets the longest display name accepted at sign-in.</summary>
    /// <value>The default value is 64. Between 1 and 256.</value>
    public int MaxDisplayNameLength { get; set; } = 64;

    /// <summary>Gets the ICE servers sent to clients in <c>welcome</c>.</summary>
    public IList<IceServer> IceServers { get; } = [];

    /// <summary>Gets the options of the HTTP API and the self-hosted gateway.</summary>
    public TalkiHostingOptions Hosting { get; } = new();
}

/// <summary>Options of the ASP.NET Core hosting: HTTP API, sessions and the self-hosted WebSocket gateway.</summary>
public sealed class TalkiHostingOptions
{
    /// <summary>Gets or sets the path prefix of every endpoint.</summary>
    /// <value>The default value is <c>/talki</c>.</value>
    public string PathPrefix { get; set; } = "/talki";

    /// <summary>Gets or sets the WebSocket URL handed out with tickets. When <see langword="null"/>, the self-hosted gateway's URL on the request's host is used.</summary>
    /// <value>The default value is <see langword="null"/>.</value>
    public Uri? PublicWebSocketUrl { get; set; }

    /// <summary>Gets or sets the lifetime of a session (absolute, not sliding).</summary>
    /// <value>The default value is 24 hours.</value>
    public TimeSpan SessionLifetime { get; set; } = TimeSpan.FromHours(24);

    /// <summary>Gets or sets the session cookie's name.</summary>
    /// <value>The default value is <c>talki.session</c>.</value>
    public string SessionCookieName { get; set; } = "talki.session";

    /// <summary>Gets or sets the largest inbound message. API Gateway refuses frames over 32 KB and browsers send each message as one frame, so this mirrors it.</summary>
    /// <value>The default value is 32768 bytes.</value>
    public int MaxInboundMessageBytes { get; set; } = 32 * 1024;

    /// <summary>Gets or sets the largest outbound message (API Gateway's 128 KB payload limit).</summary>
    /// <value>The default value is 131072 bytes.</value>
    public int MaxOutboundMessageBytes { get; set; } = 128 * 1024;

    /// <summary>Gets or sets how long a connection may stay silent before the gateway closes it (API Gateway's 10 minutes).</summary>
    /// <value>The default value is 10 minutes.</value>
    public TimeSpan IdleTimeout { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>Gets or sets how many messages may wait for a slow client before the gateway closes its connection.</summary>
    /// <value>The default value is 256.</value>
    public int OutboundQueueCapacity { get; set; } = 256;
}
