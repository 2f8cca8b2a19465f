using System.Net.WebSockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Talki.Signalling.Client.Negotiation;
using Talki.Signalling.Client.Tests.Negotiation;
using Talki.Signalling.Protocol;
using Talki.Signalling.Server;

namespace Talki.Signalling.Client.Tests.Support;

/// <summary>
/// The real server (AddTalkiSignalling + MapTalkiSignalling on Kestrel at 127.0.0.1, free port, fake server clock) and
/// clients made of the real <see cref="TalkiCall"/> over real WebSockets, with simulated peer connections in one fabric
/// (serialized by one lock, since calls run on different threads).
/// </summary>
internal sealed class CallWorld : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly List<Participant> _participants = [];

    private CallWorld(WebApplication app, FakeTimeProvider time)
    {
        _app = app;
        ServerTime = time;
        BaseAddress = new Uri(app.Urls.Single());
    }

    public FakeTimeProvider ServerTime { get; }

    /// <summary>Gets the server's room store (to wait for what the server has recorded, as a test of timing needs).</summary>
    public Talki.Signalling.Ports.IRoomStore Store => _app.Services.GetRequiredService<Talki.Signalling.Ports.IRoomStore>();

    public Uri BaseAddress { get; }

    public SimulatedFabric Fabric { get; } = new();

    public object FabricLock { get; } = new();

    public TimeSpan JoinWindow { get; private set; }

    public static async Task<CallWorld> StartAsync(TimeSpan? joinWindow = null, Action<TalkiSignallingOptions>? configure = null)
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton<TimeProvider>(time);
        var window = joinWindow ?? TimeSpan.FromMinutes(5);
        builder.Services.AddTalkiSignalling(o =>
        {
            o.JoinWindow = window;
            configure?.Invoke(o);
        });
        var app = builder.Build();
        app.MapTalkiSignalling();
        await app.StartAsync();
        return new CallWorld(app, time) { JoinWindow = window };
    }

    /// <param name="name">The display name.</param>
    /// <param name="options">The client's options.</param>
    /// <param name="clientTime">The client's clock.</param>
    /// <param name="serverVersion">
    /// When set, the tickets' WebSocket URLs say the server speaks at most this version (<c>v=</c>), as an older server's would
    /// (the server itself serves that version's hello as it would anyway): the client's negotiation is what is tested.
    /// </param>
    public async Task<Participant> SignInAsync(string name, TalkiClientOptions? options = null, TimeProvider? clientTime = null, int? serverVersion = null)
    {
        options ??= new TalkiClientOptions();
        options.ApiBaseAddress = BaseAddress;
        options.UseBearerToken = true; // .NET clients over plain http: the Secure cookie would not be sent back
        options.ReconnectBaseDelay = TimeSpan.FromMilliseconds(20);
        options.ReconnectMaxDelay = TimeSpan.FromMilliseconds(200);
        var participant = new Participant(this, name, options, clientTime ?? TimeProvider.System, serverVersion);
        var session = await participant.Api.SignInAnonymousAsync(name);
        Assert.True(session.IsSuccess, session.ToString());
        _participants.Add(participant);
        return participant;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var p in _participants)
        {
            await p.DisposeAsync();
        }

        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    /// <summary>Waits until <paramref name="condition"/> holds (a barrier, not a timing assertion: the timeout only bounds a hang).</summary>
    public static async Task EventuallyAsync(Func<bool> condition, string what, int timeoutMs = 20_000)
    {
        var deadline = Environment.TickCount64 + timeoutMs;
        while (!condition())
        {
            if (Environment.TickCount64 > deadline)
            {
                Assert.Fail($"Timed out waiting for: {what}");
            }

            await Task.Delay(10);
        }
    }
}

/// <summary>One user: an API client, a call, its simulated peer connections and what it observed.</summary>
internal sealed class Participant : IAsyncDisposable
{
    private readonly CallWorld _world;
    private readonly HttpClient _http;
    private int _connectAttempts;

    public Participant(CallWorld world, string name, TalkiClientOptions options, TimeProvider time, int? serverVersion = null)
    {
        _world = world;
        Name = name;
        _http = serverVersion is { } version
            ? new HttpClient(new TicketVersionRewriter(version) { InnerHandler = new HttpClientHandler() }) { BaseAddress = world.BaseAddress }
            : new HttpClient { BaseAddress = world.BaseAddress };
        Api = new TalkiApiClient(_http, options);
        Factory = new LockedPeerConnectionFactory(world.Fabric, world.FabricLock, name);
        var factory = new TalkiCallFactory(() => Api, options, time, NullLoggerFactory.Instance, ConnectAsync);
        Call = factory.Create(Factory);
        Call.ConnectionStateChanged += (_, e) => Record(nameof(TalkiCall.ConnectionStateChanged), e);
        Call.AdmissionStateChanged += (_, e) => Record(nameof(TalkiCall.AdmissionStateChanged), e);
        Call.AdmissionRequested += (_, e) => Record(nameof(TalkiCall.AdmissionRequested), e);
        Call.MemberJoined += (_, e) => Record(nameof(TalkiCall.MemberJoined), e);
        Call.MemberLeft += (_, e) => Record(nameof(TalkiCall.MemberLeft), e);
        Call.Sealed += (_, e) => Record(nameof(TalkiCall.Sealed), e);
        Call.Disconnected += (_, e) => Record(nameof(TalkiCall.Disconnected), e);
        Call.Error += (_, e) =>
        {
            lock (Errors)
            {
                Errors.Add(e);
            }
        };
    }

    public string Name { get; }

    public TalkiApiClient Api { get; }

    public TalkiCall Call { get; }

    public LockedPeerConnectionFactory Factory { get; }

    public List<TalkiCallErrorEventArgs> Errors { get; } = [];

    /// <summary>Gets the typed events the call raised, in order (name, arguments).</summary>
    public List<(string Name, EventArgs Args)> Events { get; } = [];

    /// <summary>Gets a value indicating whether the member is admitted with the signalling socket connected.</summary>
    public bool InCall => Call.AdmissionState == TalkiAdmissionState.Admitted && Call.ConnectionState == TalkiConnectionState.Connected;

    /// <summary>A snapshot of the events of one kind.</summary>
    public List<TArgs> EventsOf<TArgs>(string name)
        where TArgs : EventArgs
    {
        lock (Events)
        {
            return [.. Events.Where(e => e.Name == name).Select(e => (TArgs)e.Args)];
        }
    }

    public List<InjectingWebSocket> Sockets { get; } = [];

    /// <summary>Gets the URL of every attempt to open the signalling socket, in order.</summary>
    public List<Uri> ConnectUrls { get; } = [];

    /// <summary>Gets or sets a gate new connections wait for (to hold a reconnect open while the test acts).</summary>
    public TaskCompletionSource? ConnectGate { get; set; }

    public InjectingWebSocket Socket => Sockets[^1];

    public MemberId Id => Call.Self!.Id;

    public IReadOnlyList<PeerLinkState> ConnectedLinks => [.. Call.Links.Where(l => l.ConnectionState == PeerConnectionState.Connected && l.SignalingState == PeerSignalingState.Stable)];

    public ValueTask DisposeAsync()
    {
        ConnectGate?.TrySetResult();
        _http.Dispose();
        return Call.DisposeAsync();
    }

    private void Record(string name, EventArgs args)
    {
        lock (Events)
        {
            Events.Add((name, args));
        }
    }

    /// <summary>Gets how many times the call tried to open its signalling socket.</summary>
    public int ConnectAttempts => Volatile.Read(ref _connectAttempts);

    private async Task<WebSocket> ConnectAsync(Uri url, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _connectAttempts);
        lock (ConnectUrls)
        {
            ConnectUrls.Add(url);
        }

        if (ConnectGate is { } gate)
        {
            await gate.Task.WaitAsync(cancellationToken);
        }

        var socket = new ClientWebSocket();
        try
        {
            await socket.ConnectAsync(url, cancellationToken);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        var wrapped = new InjectingWebSocket(socket);
        lock (Sockets)
        {
            Sockets.Add(wrapped);
        }

        return wrapped;
    }
}

/// <summary>Rewrites the <c>v=</c> of the WebSocket URL in ticket responses, as a server that speaks at most that version would send it.</summary>
internal sealed class TicketVersionRewriter(int version) : DelegatingHandler
{
    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var response = await base.SendAsync(request, cancellationToken);
        var body = await response.Content.ReadAsStringAsync(cancellationToken);
        if (body.Contains("\"webSocketUrl\"", StringComparison.Ordinal))
        {
            var rewritten = System.Text.RegularExpressions.Regex.Replace(body, @"([?&])v=\d+", "${1}v=" + version.ToString(System.Globalization.CultureInfo.InvariantCulture));
            var content = new StringContent(rewritten, System.Text.Encoding.UTF8, response.Content.Headers.ContentType?.MediaType ?? "application/json");
            response.Content = content;
        }

        return response;
    }
}
