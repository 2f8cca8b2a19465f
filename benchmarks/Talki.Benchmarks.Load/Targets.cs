using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Talki.Samples.Browser.EndToEndTests.Harness;
using Talki.Signalling.Soak;

namespace Talki.Benchmarks.Load;

/// <summary>A server under test: how to start it, how its clients connect, and its message format.</summary>
internal abstract class Target : IDisposable
{
    private long _nextId;

    /// <summary>Gets the server's name in the report: its variant's label (<c>--variant</c>), or the server's own.</summary>
    public string Name => VariantLabel ?? ServerName;

    /// <summary>Gets the label of the variant this is (<c>--variant LABEL=SERVER:NAME=VALUE,…</c>), or null.</summary>
    public string? VariantLabel { get; private set; }

    /// <summary>Gets the environment variables of this server's variant, set for its process on top of <c>--server-env</c>.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Environment { get; private set; } = [];

    /// <summary>Gets the name of the server itself.</summary>
    protected abstract string ServerName { get; }

    /// <summary>Gets the path that answers 200 once the server is up.</summary>
    public abstract string HealthPath { get; }

    /// <summary>Gets what a real client of this server sends to keep an idle connection (and how often), if anything.</summary>
    public virtual (TimeSpan Interval, string Message)? Keepalive => null;

    /// <summary>Gets the command line and its settings, for the report (paths relative to the repository, the port as PORT).</summary>
    public string Describe()
    {
        var start = StartInfo(0);
        return string.Join(' ', [.. Environment.Select(v => v.Key + "=" + v.Value), Path.GetFileName(start.FileName), .. start.ArgumentList.Select(a =>
            a.StartsWith(RepositoryLayout.Root, StringComparison.Ordinal) ? Path.GetRelativePath(RepositoryLayout.Root, a)
            : a == "0" ? "PORT"
            : a.EndsWith(":0", StringComparison.Ordinal) ? a[..^1] + "PORT"
            : a)]);
    }

    public abstract ProcessStartInfo StartInfo(int port);

    /// <summary>Points the clients at a started server.</summary>
    public virtual void Bind(Uri baseAddress) => BaseAddress = baseAddress;

    /// <summary>Connects two clients that message each other: the first link sends to the second's socket and back.</summary>
    public abstract Task<Link[]> ConnectPairAsync();

    /// <summary>Connects <paramref name="size"/> clients the way they sit idle on this server (Talki: the members of one room).</summary>
    public abstract Task<LoadSocket[]> ConnectGroupAsync(int size);

    /// <summary>Gets how many idle clients are connected together (Talki: a room of at most 8).</summary>
    public virtual int GroupSize => 8;

    /// <summary>What goes before and after the candidate (an RTCIceCandidateInit as JSON) in a frame from <paramref name="from"/> to its peer.</summary>
    public abstract (string Prefix, string Suffix) Envelope(Link from);

    /// <summary>The candidate line of a relayed message, or null when the frame is something else.</summary>
    public abstract JsonElement? CandidateOf(JsonElement root);

    /// <summary>
    /// Gets bytes every relayed message of this server carries and nothing else it sends does, so that a link takes a
    /// relayed message from its bytes (<see cref="Link.OnRawFrame"/>) and leaves every other frame to the parser.
    /// </summary>
    public abstract ReadOnlySpan<byte> RelayedMarker { get; }

    /// <summary>Whether a frame that is not a relayed message reports an error.</summary>
    public abstract bool IsError(JsonElement root);

    public virtual void Dispose()
    {
    }

    protected Uri BaseAddress { get; private set; } = null!;

    /// <summary>A fresh id for a client of this target (unique per tool run).</summary>
    protected string NewId(string prefix) => prefix + Interlocked.Increment(ref _nextId).ToString(CultureInfo.InvariantCulture);

    protected static ProcessStartInfo Dotnet(string dll, string workingDirectory, int port, params IEnumerable<string> settings)
    {
        var start = new ProcessStartInfo(ServerProcess.DotnetExecutable()) { WorkingDirectory = workingDirectory };
        start.ArgumentList.Add(dll);
        start.ArgumentList.Add("--urls");
        start.ArgumentList.Add($"http://127.0.0.1:{port}");
        foreach (var setting in settings)
        {
            start.ArgumentList.Add(setting);
        }

        return start;
    }

    /// <summary>
    /// The server <paramref name="name"/>: one of the known ones, a build of the sample host named in
    /// <paramref name="options"/> (<c>LABEL=PATH</c>), or a variant of either (<c>--variant</c>: the same server with more
    /// environment variables).
    /// </summary>
    public static Target Create(string name, LoadOptions options)
    {
        if (options.Variants.TryGetValue(name, out var variant))
        {
            var target = Create(variant.Server, options.HostBuilds);
            target.VariantLabel = name;
            target.Environment = variant.Environment;
            return target;
        }

        return Create(name, options.HostBuilds);
    }

    private static Target Create(string name, IReadOnlyDictionary<string, string> builds) => name switch
    {
        "talki" => new TalkiTarget(aot: false),
        "talki-aot" => new TalkiTarget(aot: true),
        "peerjs" => new PeerJsTarget(),
        "bare" => new BareTarget(transport: false),
        "bare-transport" => new BareTarget(transport: true),
        _ when builds.TryGetValue(name, out var dll) => new TalkiTarget(aot: false, name, dll),
        _ => throw new ArgumentOutOfRangeException(nameof(name), name, "unknown server"),
    };

    /// <summary>Whether <paramref name="name"/> is a Talki server (the sample host, its AOT build, another build of it, or a variant of one).</summary>
    public static bool IsTalki(string name, LoadOptions options) =>
        options.Variants.TryGetValue(name, out var variant) ? IsTalki(variant.Server, options)
        : name is "talki" or "talki-aot" || options.HostBuilds.ContainsKey(name);
}

/// <summary>
/// The Talki sample host (<c>samples/Talki.Samples.Host</c>, its build output) with the real flow: every client signs in
/// anonymously (bearer token), the admin creates the room, the member takes a one-time ticket, both connect and say
/// hello, the admin admits the member, the pair exchanges its description, then the load: <c>signal</c> messages with
/// one candidate each. With <c>aot</c>, the same host published with Native AOT (<c>talki-aot</c>: no JIT, so no
/// compilation while the measured connections open). With <c>label</c> and <c>dll</c>, another build of the host (a
/// worktree's, for a before-and-after).
/// </summary>
internal sealed class TalkiTarget(bool aot, string? label = null, string? dll = null) : Target
{
    /// <summary>
    /// The limits the benchmark lifts (everything else keeps its default): every client signs in from 127.0.0.1, one
    /// connection sends up to 10,000 messages and 64 MiB a second (the most the options allow), and rooms stay open for an
    /// hour.
    /// </summary>
    public static readonly string[] Settings =
    [
        "--Talki:Limits:SignInsPerAddressPerMinute=100000",
        "--Talki:Limits:MessagesPerSecond=10000",
        "--Talki:Limits:MessageBurst=100000",
        "--Talki:Limits:MessageBytesPerSecond=67108864",
        "--Talki:Limits:MessageBytesBurst=67108864",
        "--Talki:Limits:RateLimitedMessagesBeforeClose=100000",
        "--Talki:JoinWindow=01:00:00",
        "--Logging:LogLevel:Default=Warning",
    ];

    private HttpClient? _http;
    private long _rooms;

    protected override string ServerName => label ?? (aot ? "talki-aot" : "talki");

    public override string HealthPath => "/healthz";

    /// <summary>The .NET client's <c>TalkiClientOptions.PingInterval</c>.</summary>
    public override (TimeSpan Interval, string Message)? Keepalive => (TimeSpan.FromMinutes(4), """{"type":"ping"}""");

    public override ProcessStartInfo StartInfo(int port)
    {
        if (!aot)
        {
            // Another build runs from its own project directory (its appsettings.json), as the sample host does.
            return dll is null
                ? Dotnet(RepositoryLayout.SampleHostDll(), RepositoryLayout.SampleHostProjectDirectory, port, Settings)
                : Dotnet(dll, ProjectDirectoryOf(dll), port, Settings);
        }

        // run.sh publishes it there when talki-aot is asked for; TALKI_SAMPLE_HOST_AOT names another executable.
        var executable = System.Environment.GetEnvironmentVariable("TALKI_SAMPLE_HOST_AOT") is { Length: > 0 } configured
            ? Path.GetFullPath(configured)
            : Path.Combine(RepositoryLayout.Root, "artifacts", "load", "aot-host", "Talki.Samples.Host");
        if (!File.Exists(executable))
        {
            throw new FileNotFoundException($"The Native AOT host is not published: {executable} is missing (bash benchmarks/run.sh --server talki-aot publishes it).");
        }

        var start = new ProcessStartInfo(executable) { WorkingDirectory = Path.GetDirectoryName(executable)! };
        start.ArgumentList.Add("--urls");
        start.ArgumentList.Add($"http://127.0.0.1:{port}");
        foreach (var setting in Settings)
        {
            start.ArgumentList.Add(setting);
        }

        return start;
    }

    /// <summary>The project directory of a build output (<c>…/samples/Talki.Samples.Host/bin/Release/net10.0/X.dll</c>), else the dll's own.</summary>
    private static string ProjectDirectoryOf(string dll)
    {
        var directory = Path.GetDirectoryName(dll)!;
        for (var up = new DirectoryInfo(directory); up is not null; up = up.Parent)
        {
            if (up.Name == "bin" && up.Parent is { } project && File.Exists(Path.Combine(project.FullName, "appsettings.json")))
            {
                return project.FullName;
            }
        }

        return directory;
    }

    public override void Bind(Uri baseAddress)
    {
        base.Bind(baseAddress);
        _http?.Dispose();
        _http = LoadUser.NewHttpClient(baseAddress);
    }

    public override async Task<Link[]> ConnectPairAsync()
    {
        var room = await RoomAsync(2);
        var (admin, member) = (room[0], room[1]);
        var links = new[]
        {
            new Link(this, admin.Socket, member.Id, admin.EpochOf(member.Id), () => admin.Errors.Count),
            new Link(this, member.Socket, admin.Id, member.EpochOf(admin.Id), () => member.Errors.Count),
        };
        admin.Extra = OnExtra;
        member.Extra = OnExtra;
        return links;

        static void OnExtra(MeshMember member, LoadFrame frame) => (member.Socket.State as Link)?.OnFrame(frame);
    }

    public override async Task<LoadSocket[]> ConnectGroupAsync(int size) => [.. (await RoomAsync(size)).Select(m => m.Socket)];

    public override (string Prefix, string Suffix) Envelope(Link from) =>
        (string.Create(CultureInfo.InvariantCulture, $$"""{"type":"signal","to":"{{from.To}}","toEpoch":{{from.ToEpoch}},"candidates":["""), "]}");

    public override JsonElement? CandidateOf(JsonElement root) => JsonPath.Find(root, "candidates", "0", "candidate");

    /// <summary>Gets the start of the server's relayed signal (<c>RelayFrame</c>).</summary>
    public override ReadOnlySpan<byte> RelayedMarker => "{\"type\":\"signal\",\"from\":"u8;

    public override bool IsError(JsonElement root) => JsonPath.Find(root, "type")?.GetString() == "error";

    public override void Dispose()
    {
        _http?.Dispose();
        base.Dispose();
    }

    /// <summary>A room of <paramref name="size"/> admitted members whose link-up (a description each way per pair) is done.</summary>
    private async Task<List<MeshMember>> RoomAsync(int size)
    {
        var room = await SoakScenario.SetUpRoomAsync(_http!, (int)(Interlocked.Increment(ref _rooms) % int.MaxValue), new SoakSettings { Members = size, Candidates = 0 });
        await SoakScenario.WaitUntilAsync(() => room.All(m => m.MeshCompleteWith(room)), DateTimeOffset.UtcNow.AddSeconds(30));
        if (!room.All(m => m.MeshCompleteWith(room)))
        {
            throw new TimeoutException($"room {room[0].Ticket.Room}: no link-up within 30 s");
        }

        return room;
    }
}

/// <summary>A server whose clients connect with an id and are greeted; they address each other by id.</summary>
internal abstract class IdTarget : Target
{
    public override async Task<Link[]> ConnectPairAsync()
    {
        var (a, b) = (NewId("a"), NewId("b"));
        var sockets = await Task.WhenAll(ConnectAsync(a), ConnectAsync(b));
        return [new Link(this, sockets[0], b), new Link(this, sockets[1], a)];
    }

    public override async Task<LoadSocket[]> ConnectGroupAsync(int size) =>
        await Task.WhenAll(Enumerable.Range(0, size).Select(_ => ConnectAsync(NewId("i"))));

    protected abstract Uri SocketUrl(string id);

    /// <summary>Whether a frame is the greeting that says the server has registered the client.</summary>
    protected abstract bool IsGreeting(JsonElement root);

    private async Task<LoadSocket> ConnectAsync(string id)
    {
        var greeted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var socket = await LoadSocket.ConnectAsync(SocketUrl(id), (s, frame) =>
        {
            if (IsGreeting(frame.Root))
            {
                greeted.TrySetResult();
            }
            else
            {
                (s.State as Link)?.OnFrame(frame);
            }
        });
        await SoakScenario.WithTimeout(greeted.Task, $"greeting of {id}");
        return socket;
    }
}

/// <summary>
/// peerjs-server (npm <c>peer</c>, pinned in <c>tests/tools</c>), its own command line: clients connect to
/// <c>/peerjs?key=peerjs&amp;id=…&amp;token=…</c>, are greeted with <c>OPEN</c>, and send <c>CANDIDATE</c> messages with
/// <c>dst</c> (relayed with <c>src</c>), and a <c>HEARTBEAT</c> every 5 s as the PeerJS client does.
/// </summary>
internal sealed class PeerJsTarget : IdTarget
{
    protected override string ServerName => "peerjs";

    public override string HealthPath => "/";

    public override (TimeSpan Interval, string Message)? Keepalive => (TimeSpan.FromSeconds(5), """{"type":"HEARTBEAT"}""");

    public override ProcessStartInfo StartInfo(int port)
    {
        var package = Path.Combine(RepositoryLayout.Root, "tests", "tools", "node_modules", "peer");
        if (!File.Exists(Path.Combine(package, "package.json")))
        {
            throw new FileNotFoundException($"peerjs-server is not installed: run `npm ci --prefix tests/tools` ({package} is missing).");
        }

        // The package's own "bin" entry: the peerjs command.
        using var manifest = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(package, "package.json")));
        var bin = manifest.RootElement.GetProperty("bin").GetProperty("peerjs").GetString()!;
        var start = new ProcessStartInfo("node") { WorkingDirectory = package };
        foreach (var argument in (string[])[Path.Combine(package, bin), "--port", port.ToString(CultureInfo.InvariantCulture), "--host", "127.0.0.1", "--concurrent_limit", "1000000"])
        {
            start.ArgumentList.Add(argument);
        }

        return start;
    }

    public override (string Prefix, string Suffix) Envelope(Link from) =>
        ($$$"""{"type":"CANDIDATE","dst":"{{{from.To}}}","payload":{"candidate":""", ""","type":"media","connectionId":"mc_load"}}""");

    public override JsonElement? CandidateOf(JsonElement root) => JsonPath.Find(root, "payload", "candidate", "candidate");

    /// <summary>Gets the type of a relayed candidate (peerjs-server sends the client's message on with <c>src</c> added).</summary>
    public override ReadOnlySpan<byte> RelayedMarker => "\"type\":\"CANDIDATE\""u8;

    public override bool IsError(JsonElement root) => JsonPath.Find(root, "type")?.GetString() is "ERROR" or "EXPIRE" or "ID-TAKEN" or "LEAVE";

    protected override Uri SocketUrl(string id) => new($"ws://{BaseAddress.Authority}/peerjs?key=peerjs&id={id}&token=t{id}");

    protected override bool IsGreeting(JsonElement root) => JsonPath.Find(root, "type")?.GetString() == "OPEN";
}

/// <summary>
/// The bare relay (<c>benchmarks/Talki.Benchmarks.BareRelay</c>, its build output), the ceiling: clients connect to
/// <c>/relay?id=…</c>, are greeted with <c>{"open":id}</c>, and send <c>{"to":id,"data":…}</c>, relayed unchanged.
/// <c>bare-transport</c> is the same relay started with <c>--transport</c>: the WebSocket upgrade is handled at Kestrel's
/// connection level instead of in the ASP.NET Core request pipeline.
/// </summary>
internal sealed class BareTarget(bool transport) : IdTarget
{
    protected override string ServerName => transport ? "bare-transport" : "bare";

    public override string HealthPath => "/healthz";

    public override ProcessStartInfo StartInfo(int port)
    {
        var project = Path.Combine(RepositoryLayout.Root, "benchmarks", "Talki.Benchmarks.BareRelay");
        var dll = Path.Combine(project, "bin", RepositoryLayout.Configuration, "net10.0", "Talki.Benchmarks.BareRelay.dll");
        return File.Exists(dll)
            ? Dotnet(dll, project, port, transport ? ["--transport"] : [])
            : throw new FileNotFoundException($"The bare relay is not built: {dll} is missing (build benchmarks/Talki.Benchmarks.Load -c {RepositoryLayout.Configuration}).");
    }

    public override (string Prefix, string Suffix) Envelope(Link from) => ($$$"""{"to":"{{{from.To}}}","data":{"candidate":""", "}}");

    public override JsonElement? CandidateOf(JsonElement root) => JsonPath.Find(root, "data", "candidate", "candidate");

    /// <summary>Gets the relayed message's data (the relay sends the client's message on unchanged).</summary>
    public override ReadOnlySpan<byte> RelayedMarker => "\"data\":{\"candidate\":"u8;

    public override bool IsError(JsonElement root) => false;

    protected override Uri SocketUrl(string id) => new($"ws://{BaseAddress.Authority}/relay?id={id}");

    protected override bool IsGreeting(JsonElement root) => JsonPath.Find(root, "open") is not null;
}
