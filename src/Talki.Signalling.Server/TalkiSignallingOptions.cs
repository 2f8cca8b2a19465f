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

    /// <summary>
    /// Gets or sets how long a member whose signalling socket dropped keeps its connection epoch. Its peers are told nothing
    /// meanwhile (their media links to it never needed the server); messages to it are queued (bounded by
    /// <see cref="TalkiLimitsOptions.MaxQueuedMessagesPerMember"/> and <see cref="TalkiLimitsOptions.MaxQueuedBytesPerMember"/>).
    /// A reconnect within the period that asks to resume (the client's <c>resume</c> query parameter) continues the same
    /// epoch and receives the queue after its <c>welcome</c>; after it, the member has left (<c>peer_left</c>) and its next
    /// connect starts a new epoch. The room's seal ends it too. <see cref="TimeSpan.Zero"/> turns resuming off.
    /// </summary>
    /// <value>The default value is 20 seconds. Between zero and 10 minutes.</value>
    public TimeSpan ResumeGracePeriod { get; set; } = TimeSpan.FromSeconds(20);

    /// <summary>Gets or sets a value indicating whether this process seals rooms on a timer (pushing <c>room_sealed</c> and closing sockets). Turn it off for stateless hosts such as Lambda, where sealing is enforced on every read instead.</summary>
    /// <value>The default value is <see langword="true"/>.</value>
    public bool SealRoomsOnTimer { get; set; } = true;

    /// <summary>
    /// Gets or sets the oldest protocol version this server serves; a <c>hello</c> asking for an older one gets
    /// <c>unsupported_version</c>. Raise it to 3 once every client speaks version 3: a version 1 or 2 member still gets a
    /// <c>welcome</c> while it waits for admission, with the room's members and the ICE servers, which version 3 tells
    /// nobody the admin has not let in.
    /// </summary>
    /// <value>The default value is <see cref="ProtocolVersion.Minimum"/> (every version this package speaks). Between <see cref="ProtocolVersion.Minimum"/> and <see cref="ProtocolVersion.Current"/>.</value>
    public int MinimumProtocolVersion { get; set; } = ProtocolVersion.Minimum;

    /// <summary>Gets or sets the longest display name accepted at sign-in.</summary>
    /// <value>The default value is 64. Between 1 and 256.</value>
    public int MaxDisplayNameLength { get; set; } = 64;

    /// <summary>Gets the ICE servers sent to clients in <c>welcome</c>.</summary>
    public IList<IceServer> IceServers { get; } = [];

    /// <summary>Gets the options of the HTTP API and the self-hosted gateway.</summary>
    public TalkiHostingOptions Hosting { get; } = new();

    /// <summary>Gets the abuse limits.</summary>
    public TalkiLimitsOptions Limits { get; } = new();

    /// <summary>Gets the TURN options (ephemeral credentials in the TURN REST scheme that coturn's <c>use-auth-secret</c> implements).</summary>
    public TalkiTurnOptions Turn { get; } = new();

    /// <summary>Gets the Google sign-in options.</summary>
    public TalkiGoogleOptions Google { get; } = new();
}

/// <summary>Abuse limits; each refusal has its own error code.</summary>
public sealed class TalkiLimitsOptions
{
    /// <summary>
    /// Gets or sets how many admitted members (the admin included) a room may have: a full mesh degrades beyond about 8.
    /// Seats are taken when the admin admits, not when a newcomer knocks. Refusal: <c>room_full</c>, to the admin on
    /// <c>admit</c> (the newcomer stays pending), and to a knock on a room that is full already.
    /// </summary>
    /// <value>The default value is 8. Between 2 and 1000.</value>
    public int MaxMembersPerRoom { get; set; } = 8;

    /// <summary>
    /// Gets or sets how many newcomers may wait for the admin in one room at once (live pending members: a knock that never
    /// connects vanishes when its ticket expires). It keeps a flood of sign-ins from burying the admin under requests.
    /// Refusal: <c>knock_rate_limited</c>.
    /// </summary>
    /// <value>The default value is 16. Between 1 and 1000.</value>
    public int MaxPendingPerRoom { get; set; } = 16;

    /// <summary>Gets or sets how many rooms one session may create per hour. Refusal: <c>room_quota_exceeded</c>.</summary>
    /// <value>The default value is 20. Between 1 and 10000.</value>
    public int RoomsPerSessionPerHour { get; set; } = 20;

    /// <summary>Gets or sets how many join tickets (knocks) one user may ask for per minute. Refusal: <c>knock_rate_limited</c>.</summary>
    /// <value>The default value is 20. Between 1 and 10000.</value>
    public int KnocksPerUserPerMinute { get; set; } = 20;

    /// <summary>
    /// Gets or sets how many join tickets one user may ask for per minute for a room it is already admitted to: a reconnect,
    /// a reload, a second tab. Each one announces the member to its peers again (<c>peer_resumed</c>, or a new link to each),
    /// so without a bound a member reconnecting in a loop would make the server push to every peer on every turn. Counted
    /// apart from <see cref="KnocksPerUserPerMinute"/>, so that knocking elsewhere never keeps a member out of its own call.
    /// Refusal: <c>knock_rate_limited</c>, which clients treat as transient: they retry with their backoff, and the default
    /// one (12 attempts, 0.5 s doubling to 15 s: about two minutes) outlasts the minute. A refusal longer than
    /// <see cref="TalkiSignallingOptions.ResumeGracePeriod"/> turns the resume into a fresh start (a new epoch).
    /// </summary>
    /// <value>The default value is 20 (a flaky network reconnecting every few seconds stays under it). Between 1 and 100000.</value>
    public int ReconnectsPerUserPerMinute { get; set; } = 20;

    /// <summary>
    /// Gets or sets how many sign-ins (anonymous or Google) one client address may make per minute. Sessions are free to
    /// create, so without it one address could mint unlimited identities to knock with. The address is the connection's
    /// remote address: behind a proxy, enable ASP.NET Core's forwarded headers so that it is the client's; IPv6 addresses
    /// are counted per /64, the block one subscriber gets. Refusal: 429 <c>rate_limited</c>.
    /// </summary>
    /// <value>The default value is 30 (an office behind one NAT signs in a few people a minute). Between 1 and 100000.</value>
    public int SignInsPerAddressPerMinute { get; set; } = 30;

    /// <summary>
    /// Gets or sets the sustained rate of inbound messages one connection may send (the refill rate of its token bucket;
    /// every client message counts: signals, pings, hello, admit, deny, leave, and malformed ones). An excess message is
    /// dropped, not relayed, and answered with <c>rate_limited</c>.
    /// </summary>
    /// <value>
    /// The default value is 50 per second. Between 1 and 10000. Once a full mesh is up, signalling is quiet (an ICE
    /// restart or a renegotiation is a few dozen messages); 50 per second refills a whole <see cref="MessageBurst"/> in
    /// 4 seconds, so even back-to-back renegotiations with all 7 peers of a room of 8 never wait. Relays into one member
    /// are bounded by its peers' rates: 7 × 50 = 350 messages per second, which any client that reads keeps up with.
    /// </value>
    public int MessagesPerSecond { get; set; } = 50;

    /// <summary>Gets or sets how many messages one connection may send at once (the capacity of its token bucket, full at connect).</summary>
    /// <value>
    /// The default value is 200. Between 1 and 100000. Link-up is the burst: in a room of 8 a newcomer offers or answers
    /// 7 peers at once, each with its description and a trickle of ICE candidates (host, server-reflexive and relay
    /// candidates per interface and transport: typically 5 to 20 per peer, plus end-of-candidates), so about
    /// 7 × (1 + 20 + 1) ≈ 155 messages within a second or two, plus hello and pings. 200 covers that with headroom; a
    /// client that batches candidates needs far fewer. Each entry of a <c>signals</c> message counts as one message, so
    /// the options check refuses a burst below <see cref="MaxMembersPerRoom"/> − 1 (a full room's newcomer sends its first
    /// offers to every other member in one such message).
    /// </value>
    public int MessageBurst { get; set; } = 200;

    /// <summary>
    /// Gets or sets the sustained rate, in bytes, of inbound messages one connection may send: the refill rate of a second
    /// token bucket, in bytes, beside the one counted in messages (<see cref="MessagesPerSecond"/>). A message needs room in
    /// both; an excess message is dropped and answered with <c>rate_limited</c>, as for the message rate.
    /// </summary>
    /// <value>
    /// The default value is 32768 (32 KiB per second). Between 1024 and 67108864 (64 MiB). Signalling is small: after
    /// link-up a connection is nearly silent, and a renegotiation with every peer of a room of 8 is about 7 descriptions of
    /// 5 to 10 KB. The byte rate bounds what one member can make the server hold for another that does not read (see
    /// <see cref="TalkiHostingOptions.OutboundQueueCapacity"/>); with the message rate alone, 200 messages of 32 KiB each
    /// were allowed in one burst.
    /// </value>
    public int MessageBytesPerSecond { get; set; } = 32 * 1024;

    /// <summary>Gets or sets how many bytes of messages one connection may send at once (the capacity of its byte bucket, full at connect).</summary>
    /// <value>
    /// The default value is 262144 (256 KiB). Between 1024 and 67108864 (64 MiB), and at least
    /// <see cref="TalkiHostingOptions.MaxInboundMessageBytes"/> (a message of the largest size must be able to pass). A
    /// newcomer's link-up in a room of 8 (7 descriptions of up to 10 KB and a trickle of ICE candidates of about 250 bytes
    /// each) is about 100 KB.
    /// </value>
    public int MessageBytesBurst { get; set; } = 256 * 1024;

    /// <summary>
    /// Gets or sets how many of a connection's messages may be refused with <c>rate_limited</c> within
    /// <see cref="RateLimitWindow"/> before the connection is closed (WebSocket 1008, policy violation). Only the
    /// offender is closed; its room goes on.
    /// </summary>
    /// <value>
    /// The default value is 100. Between 1 and 100000. An honest client never reaches the limit at all; one that overruns
    /// it by a little (a bigger link-up than expected) loses a few messages and is told so, while a flood (the issue's
    /// 20,000 per second) is closed within a fraction of a second.
    /// </value>
    public int RateLimitedMessagesBeforeClose { get; set; } = 100;

    /// <summary>Gets or sets the window in which <see cref="RateLimitedMessagesBeforeClose"/> refusals close a connection.</summary>
    /// <value>The default value is 10 seconds. Between 1 second and 1 hour.</value>
    public TimeSpan RateLimitWindow { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Gets or sets how long a new connection may take to say <c>hello</c> before it is closed (WebSocket 1008,
    /// policy violation). Without it, a socket opened with a ticket and left silent would hold its member's place until the
    /// room seals. On a stateless host (Lambda) the timer runs in the process that authorized the connection, as long as
    /// that process lives; API Gateway's own idle timeout stays the backstop there.
    /// </summary>
    /// <value>The default value is 10 seconds (a client says hello right after the upgrade). Between 1 second and 10 minutes.</value>
    public TimeSpan HelloTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Gets or sets how many messages are queued for a member whose socket dropped, until it resumes
    /// (<see cref="TalkiSignallingOptions.ResumeGracePeriod"/>). Beyond it messages are dropped and counted; the resumed
    /// member is told how many (<c>welcome.missed</c>).
    /// </summary>
    /// <value>The default value is 64 (a link-up with 7 peers, with batched candidates, fits). Between 1 and 10000.</value>
    public int MaxQueuedMessagesPerMember { get; set; } = 64;

    /// <summary>Gets or sets how many bytes of messages are queued for a member whose socket dropped (see <see cref="MaxQueuedMessagesPerMember"/>).</summary>
    /// <value>The default value is 131072 (128 KiB: far under DynamoDB's 400 KB item). Between 1024 and 16 MiB.</value>
    public int MaxQueuedBytesPerMember { get; set; } = 128 * 1024;
}

/// <summary>TURN relays with ephemeral credentials (TURN REST API scheme, coturn <c>use-auth-secret</c>).</summary>
public sealed class TalkiTurnOptions
{
    /// <summary>Gets the TURN URLs (<c>turn:host:3478?transport=udp</c>, <c>turns:…</c>). Empty: no TURN server is offered.</summary>
    public IList<string> Urls { get; } = [];

    /// <summary>Gets or sets the secret shared with the TURN server (coturn <c>static-auth-secret</c>). Required when <see cref="Urls"/> is not empty.</summary>
    public string? SharedSecret { get; set; }

    /// <summary>Gets or sets how long credentials outlive the room's join window (the call goes on after it).</summary>
    /// <value>The default value is 2 hours.</value>
    public TimeSpan CredentialMargin { get; set; } = TimeSpan.FromHours(2);
}

/// <summary>Sign-in with a Google ID token.</summary>
public sealed class TalkiGoogleOptions
{
    /// <summary>The URL of Google's published signing keys (JWKS).</summary>
    public static readonly Uri DefaultKeysUrl = new("https://www.googleapis.com/oauth2/v3/certs");

    /// <summary>Gets the OAuth client ids whose tokens are accepted (the <c>aud</c> claim). Empty: Google sign-in is off.</summary>
    public IList<string> ClientIds { get; } = [];

    /// <summary>Gets or sets where the signing keys (JWKS) are fetched from.</summary>
    /// <value>The default value is <see cref="DefaultKeysUrl"/>.</value>
    public Uri KeysUrl { get; set; } = DefaultKeysUrl;

    /// <summary>Gets the accepted issuers (the <c>iss</c> claim).</summary>
    public IList<string> Issuers { get; } = ["https://accounts.google.com", "accounts.google.com"];

    /// <summary>Gets or sets a value indicating whether a token must carry <c>email_verified: true</c>.</summary>
    /// <value>The default value is <see langword="true"/>.</value>
    public bool RequireVerifiedEmail { get; set; } = true;

    /// <summary>Gets or sets the tolerated clock difference for <c>exp</c>, <c>iat</c> and <c>nbf</c>.</summary>
    /// <value>The default value is 1 minute.</value>
    public TimeSpan ClockSkew { get; set; } = TimeSpan.FromMinutes(1);
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

    /// <summary>
    /// Gets the origins (for example <c>https://app.example.org</c>) of browser apps served from another origin
    /// than this API. They get CORS with credentials, and the session cookie becomes <c>SameSite=None</c>.
    /// State-changing requests from any other origin are refused with <c>cross_site_request</c>.
    /// </summary>
    public IList<string> AllowedOrigins { get; } = [];

    /// <summary>Gets or sets the session cookie's name.</summary>
    /// <value>The default value is <c>talki.session</c>.</value>
    public string SessionCookieName { get; set; } = "talki.session";

    /// <summary>
    /// Gets or sets the largest HTTP request body the Talki API reads (sign-in, rooms, tickets). A larger one is answered
    /// 413 <c>message_too_large</c> before it is read, so a flood of huge bodies costs no memory.
    /// </summary>
    /// <value>The default value is 8192 bytes: a Google ID token is about 1.2 KB.</value>
    public int MaxRequestBodyBytes { get; set; } = 8 * 1024;

    /// <summary>Gets or sets the largest inbound message. API Gateway refuses frames over 32 KB and browsers send each message as one frame, so this mirrors it.</summary>
    /// <value>The default value is 32768 bytes.</value>
    public int MaxInboundMessageBytes { get; set; } = 32 * 1024;

    /// <summary>Gets or sets the largest outbound message (API Gateway's 128 KB payload limit).</summary>
    /// <value>The default value is 131072 bytes.</value>
    public int MaxOutboundMessageBytes { get; set; } = 128 * 1024;

    /// <summary>
    /// Gets or sets how long a connection may stay silent before the gateway closes it (API Gateway's 10 minutes). The
    /// self-hosted gateway checks every connection on one timer: it closes a connection this long after its last message,
    /// or at most a sixteenth of this (and at most a second) later.
    /// </summary>
    /// <value>The default value is 10 minutes.</value>
    public TimeSpan IdleTimeout { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>
    /// Gets or sets how many messages may wait for a slow client before the gateway closes its connection, on top of
    /// what the room's other members may send it in one burst: the self-hosted gateway's queue holds
    /// <c>OutboundQueueCapacity + (Limits.MaxMembersPerRoom − 1) × Limits.MessageBurst</c> messages, so that no peer, nor
    /// all of them together, can overflow a client that reads.
    /// </summary>
    /// <value>The default value is 256 (so 256 + 7 × 200 = 1656 with the default limits).</value>
    public int OutboundQueueCapacity { get; set; } = 256;
}
