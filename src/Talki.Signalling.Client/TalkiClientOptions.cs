namespace Talki.Signalling.Client;

/// <summary>Options of the Talki client (HTTP API, signalling connection, reconnect).</summary>
public sealed class TalkiClientOptions
{
    /// <summary>
    /// Gets or sets the base address of the server that hosts the Talki API (for example <c>https://api.example.com/</c>);
    /// the endpoints live under <see cref="PathPrefix"/>. In a Blazor app served by the same host, use the app's base address.
    /// </summary>
    public Uri? ApiBaseAddress { get; set; }

    /// <summary>Gets or sets the path the server maps the API under (<c>MapTalkiSignalling</c>'s prefix). Default <c>talki</c>.</summary>
    public string PathPrefix { get; set; } = "talki";

    /// <summary>
    /// Gets or sets a value indicating whether browser requests include credentials (<c>fetch</c> <c>credentials: 'include'</c>),
    /// so the session cookie is sent to an API on another origin. Ignored outside the browser. Default <see langword="true"/>.
    /// </summary>
    public bool IncludeBrowserCredentials { get; set; } = true;

    /// <summary>
    /// Gets or sets a value indicating whether sign-in asks for a bearer token, sent on later requests, instead of relying on the
    /// session cookie (for clients that cannot keep cookies). Default <see langword="false"/>.
    /// </summary>
    public bool UseBearerToken { get; set; }

    /// <summary>
    /// Gets or sets how often a <c>ping</c> keeps the signalling socket alive: the gateways close a socket silent for 10
    /// minutes (the self-hosted one as configured, which its <c>welcome</c> says; the interval is then at most four fifths of
    /// that). Default 8 minutes: a call whose room seals sooner (the default join window is 5 minutes) sends no ping, and
    /// on API Gateway each ping and its <c>pong</c> are billed messages.
    /// </summary>
    public TimeSpan PingInterval { get; set; } = TimeSpan.FromMinutes(8);

    /// <summary>Gets or sets how long opening the socket and getting the <c>welcome</c> may take. Default 15 seconds.</summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>Gets or sets the first reconnect delay; later ones grow exponentially, with jitter. Default 500 ms.</summary>
    public TimeSpan ReconnectBaseDelay { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Gets or sets the longest reconnect delay. Default 15 seconds.</summary>
    public TimeSpan ReconnectMaxDelay { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>Gets or sets how many reconnect attempts follow one another before the call fails. Default 12.</summary>
    public int MaxReconnectAttempts { get; set; } = 12;

    /// <summary>
    /// Gets or sets how long a new link may take to connect before it is reset (at most three times in a row); it covers
    /// links that never reach <c>failed</c>. Default 30 seconds; <see cref="Timeout.InfiniteTimeSpan"/> turns it off.
    /// </summary>
    public TimeSpan LinkUpTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Gets or sets how long a link holds a local description (offer or answer) it has just set, so that it leaves in one
    /// <c>signal</c> together with the ICE candidates gathered meanwhile instead of a description then a candidates signal.
    /// The description goes as soon as the connection reports that gathering is complete, or when the window ends, whichever
    /// comes first; a description that has no candidate yet when its window ends waits for its first (a busy device gathers
    /// late, and a description without a candidate starts no connectivity check) and leaves a fifth of a window after it,
    /// or four windows after it was set at the latest; candidates gathered later trickle in batches, one signal per window of the same length (the end of
    /// gathering sends the last batch at once; alone, it waits up to a second for the link to connect, and is dropped if
    /// it does, as are active TCP candidates, which no remote check starts from). A description superseded during the window
    /// (a rollback, a newer one, the link closed) is never sent. <see cref="TimeSpan.Zero"/> sends every description at once
    /// (the behaviour before this option). Default 50 ms; at most 500 ms, since the window adds to the link's set-up time
    /// when gathering does not complete within it. With a server that speaks protocol version 2, the same window bounds how
    /// long a newcomer's first offers to the members it links up with wait for each other, to leave in one <c>signals</c>
    /// message (one billed message instead of one per link); <see cref="TimeSpan.Zero"/> sends each at once.
    /// </summary>
    public TimeSpan CandidateGatherWindow { get; set; } = DefaultCandidateGatherWindow;

    /// <summary>Gets or sets how many outbound messages are held while the socket is reconnecting; older ones are dropped beyond it. Default 512.</summary>
    public int MaxQueuedMessages { get; set; } = 512;

    /// <summary>Gets or sets the largest inbound message accepted; larger ones are reported and skipped. Default 128 KB (API Gateway's message limit).</summary>
    public int MaxInboundMessageBytes { get; set; } = 128 * 1024;

    /// <summary>The default <see cref="CandidateGatherWindow"/>: 50 ms.</summary>
    internal static readonly TimeSpan DefaultCandidateGatherWindow = TimeSpan.FromMilliseconds(50);

    /// <summary>The longest <see cref="CandidateGatherWindow"/> accepted: 500 ms.</summary>
    internal static readonly TimeSpan MaxCandidateGatherWindow = TimeSpan.FromMilliseconds(500);

    /// <summary>Checks the options and throws on misuse.</summary>
    /// <exception cref="InvalidOperationException">An option is out of range.</exception>
    public void Validate()
    {
        var failures = new List<string>();
        if (ApiBaseAddress is { IsAbsoluteUri: false })
        {
            failures.Add("ApiBaseAddress must be an absolute URI.");
        }

        if (PingInterval <= TimeSpan.Zero || PingInterval >= TimeSpan.FromMinutes(10))
        {
            failures.Add("PingInterval must be positive and below the gateways' 10-minute idle limit.");
        }

        if (LinkUpTimeout <= TimeSpan.Zero && LinkUpTimeout != Timeout.InfiniteTimeSpan)
        {
            failures.Add("LinkUpTimeout must be positive, or infinite to turn the watchdog off.");
        }

        if (ConnectTimeout <= TimeSpan.Zero)
        {
            failures.Add("ConnectTimeout must be positive.");
        }

        if (ReconnectBaseDelay <= TimeSpan.Zero || ReconnectMaxDelay < ReconnectBaseDelay)
        {
            failures.Add("ReconnectBaseDelay must be positive and not above ReconnectMaxDelay.");
        }

        if (CandidateGatherWindow < TimeSpan.Zero || CandidateGatherWindow > MaxCandidateGatherWindow)
        {
            failures.Add("CandidateGatherWindow must be between zero (off) and 500 ms.");
        }

        if (MaxReconnectAttempts < 0 || MaxQueuedMessages < 1 || MaxInboundMessageBytes < 1024)
        {
            failures.Add("MaxReconnectAttempts must be >= 0, MaxQueuedMessages >= 1 and MaxInboundMessageBytes >= 1024.");
        }

        if (failures.Count > 0)
        {
            throw new InvalidOperationException("Invalid TalkiClientOptions: " + string.Join(" ", failures));
        }
    }
}
