extern alias AwsAuthorizer;
extern alias SampleHost;

using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Amazon.DynamoDBv2;
using Amazon.Runtime;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Talki.Signalling.Testing;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Talki.Signalling.Aws.Tests.DynamoDb;
using Talki.Signalling.Emulator;
using Talki.Signalling.Http;
using Talki.Signalling.Protocol;
using AuthorizerFunction = AwsAuthorizer::Talki.Samples.AwsAuthorizer.AuthorizerFunction;
using SampleHostProgram = SampleHost::Program;

namespace Talki.Signalling.Aws.IntegrationTests;

/// <summary>
/// The AWS path on one machine, as the CDK app deploys it (<see cref="AwsPathHarness"/>): clients → the API Gateway emulator
/// running the synthesized <c>TalkiStack</c> template (IAM enforced on <c>@connections</c> and DynamoDB, the function URL's
/// permissions, the authorizer, the routes' header mappings) → one authorizer-role host and N backend-role hosts of the
/// sample host in AWS mode, configured from their functions' environment → DynamoDB through the emulator's IAM check →
/// dynalite. HTTP calls go through the function URL, which spreads them over the backend instances.
/// </summary>
internal sealed class AwsStack : IAsyncDisposable
{
    private readonly ConcurrentBag<AwsPathHostProcess> _processes;
    private readonly LambdaHostsFromEnvironment? _external;

    private AwsStack(AwsPathHarness harness, ConcurrentQueue<IReadOnlyDictionary<string, string>> defaultCallHeaders, JsonObject template, ConcurrentBag<AwsPathHostProcess> processes, LambdaHostsFromEnvironment? external)
    {
        Harness = harness;
        DefaultCallHeaders = defaultCallHeaders;
        Template = template;
        _processes = processes;
        _external = external;
    }

    /// <summary>Gets the template the emulator runs (the synthesized one, as the test and <see cref="LambdaHostsFromEnvironment"/> changed it).</summary>
    public JsonObject Template { get; }

    public AwsPathHarness Harness { get; }

    public ApiGatewayEmulator Emulator => Harness.Emulator;

    /// <summary>Gets the backend's function URL: the HTTP API, as a browser reaches it.</summary>
    public Uri FunctionUrl => Harness.FunctionUrl;

    /// <summary>Gets the <c>x-talki-*</c> headers of every <c>$default</c> call the backend instances received.</summary>
    public ConcurrentQueue<IReadOnlyDictionary<string, string>> DefaultCallHeaders { get; }

    /// <summary>Starts dynalite's table, the emulator on the synthesized template, and the hosts (the sample host's own Program) on Kestrel.</summary>
    /// <param name="dynalite">The shared dynalite.</param>
    /// <param name="name">The stack name (each test its own table).</param>
    /// <param name="backendInstances">How many instances the backend function has.</param>
    /// <param name="alterTemplate">Changes the template before the emulator reads it.</param>
    public static async Task<AwsStack> StartAsync(DynaliteFixture dynalite, string name, int backendInstances = 1, Action<JsonObject>? alterTemplate = null, IReadOnlyDictionary<string, string>? settings = null, TimeSpan? replicaLag = null)
    {
        var template = SynthesizedTalkiTemplate.Json();
        alterTemplate?.Invoke(template);
        var external = LambdaHostsFromEnvironment.Read();
        external?.AlterTemplate(template);
        var headers = new ConcurrentQueue<IReadOnlyDictionary<string, string>>();
        var processes = new ConcurrentBag<AwsPathHostProcess>();
        var options = new AwsPathOptions
        {
            Template = template,
            DynamoDb = new Uri(dynalite.ServiceUrl),
            StackName = name,
            StartHost = external is null
                ? (host, _) => Task.FromResult(StartInProcess(host, headers, settings))
                : async (host, cancellationToken) =>
                {
                    var process = await external.StartAsync(host, settings, cancellationToken);
                    processes.Add(process);
                    return process;
                },
        };
        options.Instances["Backend"] = backendInstances;
        if (replicaLag is { } lag)
        {
            options.ConfigureEmulator = o => o.DynamoDbReplicaLag = lag;
        }

        return new AwsStack(await AwsPathHarness.StartAsync(options), headers, template, processes, external);
    }

    /// <summary>
    /// Says how the functions ran: in this process on the whole machine (the default), or as processes, each held to its
    /// function's CPU share or not, with each one's peak resident memory.
    /// </summary>
    public string HostsDescription()
    {
        if (_processes.IsEmpty)
        {
            return "the functions' hosts in the test's process, unconfined (this machine's CPU, not the share of their memory size)";
        }

        var hosts = _processes.OrderBy(p => p.Host.Function, StringComparer.Ordinal).ThenBy(p => p.Host.Index).Select(p =>
        {
            var rss = p.PeakResidentBytes() is { } bytes ? string.Create(CultureInfo.InvariantCulture, $"peak RSS {bytes / 1048576.0:F0} MB") : "peak RSS unknown";
            var cpu = p.Cpu is { } group
                ? string.Create(CultureInfo.InvariantCulture, $"{group.Share:F3} of a core{(group.Statistics() is { } stat ? $", paused in {stat.ThrottledPeriods} of {stat.Periods} periods ({stat.ThrottledTime.TotalMilliseconds:F0} ms)" : "")}")
                : "unconfined";
            return $"{p.Name} {cpu}, {rss} of {p.Host.MemorySizeMb} MB";
        });
        return $"the functions' hosts as processes ({_external?.Executable}; the authorizer {_external?.Authorizer}): {string.Join("; ", hosts)}";
    }

    /// <summary>
    /// Starts one instance in this process: the sample host's Program on Kestrel, configured as its function is in the
    /// template, its DynamoDB client signing with its role's key against the emulator's IAM-checking endpoint.
    /// </summary>
    public static IAsyncDisposable StartInProcess(AwsPathHost host, ConcurrentQueue<IReadOnlyDictionary<string, string>>? defaultCallHeaders = null, IReadOnlyDictionary<string, string>? settings = null)
    {
        if (host.CustomRuntime)
        {
            return StartAuthorizerInProcess(host, settings);
        }

        var factory = new WebApplicationFactory<SampleHostProgram>().WithWebHostBuilder(web =>
        {
            foreach (var (key, value) in host.Settings)
            {
                web.UseSetting(key, value);
            }

            web.UseSetting("Talki:IceServers:0", "stun:127.0.0.1:3478");
            foreach (var (key, value) in settings ?? new Dictionary<string, string>())
            {
                web.UseSetting(key, value);
            }

            web.ConfigureLogging(logging => logging.ClearProviders());
            web.ConfigureTestServices(services =>
            {
                // Talki:Aws:DynamoDbServiceUrl alone gives the host a client with placeholder credentials; on AWS the role's
                // credentials sign. Here the role's key does, so the emulator can check the role's policy.
                services.AddSingleton<IAmazonDynamoDB>(new AmazonDynamoDBClient(
                    new BasicAWSCredentials(host.AccessKeyId, host.SecretAccessKey),
                    new AmazonDynamoDBConfig { ServiceURL = host.DynamoDbEndpoint.ToString(), AuthenticationRegion = host.Region }));
                if (defaultCallHeaders is not null)
                {
                    services.AddSingleton<IStartupFilter>(new HeaderRecorder(defaultCallHeaders));
                }
            });
        });
        factory.UseKestrel(host.Address.Port);
        factory.StartServer();
        return factory;
    }

    /// <summary>
    /// Starts the authorizer function (a custom runtime, <c>samples/Talki.Samples.AwsAuthorizer</c>) in this process: its own
    /// host, configured as its function is in the template, taking its events from the emulator's runtime API for this
    /// instance, its DynamoDB client signing with the role's key.
    /// </summary>
    private static IAsyncDisposable StartAuthorizerInProcess(AwsPathHost host, IReadOnlyDictionary<string, string>? settings)
    {
        var arguments = host.Settings.Where(s => s.Key != "AWS_LAMBDA_RUNTIME_API")
            .Concat(settings ?? new Dictionary<string, string>())
            .Append(new("Logging:LogLevel:Default", "None"))
            .Select(s => $"--{s.Key}={s.Value}")
            .ToArray();
        var authorizer = AuthorizerFunction.Build(arguments, host.Settings["AWS_LAMBDA_RUNTIME_API"], services =>
            services.AddSingleton<IAmazonDynamoDB>(new AmazonDynamoDBClient(
                new BasicAWSCredentials(host.AccessKeyId, host.SecretAccessKey),
                new AmazonDynamoDBConfig { ServiceURL = host.DynamoDbEndpoint.ToString(), AuthenticationRegion = host.Region })));
        authorizer.StartAsync().GetAwaiter().GetResult();
        return new StartedHost(authorizer);
    }

    /// <summary>
    /// Restarts a backend instance mid-call, as Lambda replaces an execution environment: the process and its memory are
    /// gone, the sockets (held by API Gateway) and the rooms (in DynamoDB) are not.
    /// </summary>
    public Task RestartBackendAsync(int index = 0) => Harness.RestartAsync("Backend", index);

    public async Task<AwsUser> SignInAsync(string name)
    {
        var user = new AwsUser(FunctionUrl);
        var response = await user.PostAsync("/talki/session/anonymous", $$$"""{"displayName":"{{{name}}}"}""");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return user;
    }

    /// <summary>Gets the DynamoDB calls IAM allowed, by action, from every function.</summary>
    public IReadOnlyDictionary<string, long> DynamoDbOperations()
        => Emulator.Counters.DynamoDbCalls
            .Where(c => c.Key.EndsWith(" allowed", StringComparison.Ordinal))
            .GroupBy(c => c.Key.Split(' ')[1])
            .ToDictionary(g => g.Key, g => g.Sum(c => c.Value), StringComparer.Ordinal);

    public ValueTask DisposeAsync() => Harness.DisposeAsync();

    /// <summary>
    /// The functions' hosts as processes, for measuring what the functions cost rather than testing them: set
    /// <c>TALKI_LAMBDA_HOST</c> to the sample host's Native AOT executable (as the stack deploys it; or a built dll, run
    /// by <c>dotnet</c>) and <c>TALKI_LAMBDA_AUTHORIZER</c> to the authorizer function's (<c>samples/Talki.Samples.AwsAuthorizer</c>), <c>TALKI_LAMBDA_CPU_SHARE=1</c> to hold each to the CPU share of its function's memory size
    /// (<see cref="LambdaCpuShare"/>; needs root), <c>TALKI_LAMBDA_MEMORY_MB</c> to give every function another memory size.
    /// Unset (the default, and in CI), the hosts run in the test's process. <c>benchmarks/lambda-memory.sh</c> sets them.
    /// </summary>
    internal sealed class LambdaHostsFromEnvironment
    {
        private LambdaHostsFromEnvironment(string executable, string authorizer, bool cpuShare, int? memorySizeMb)
        {
            Executable = executable;
            Authorizer = authorizer;
            CpuShare = cpuShare;
            MemorySizeMb = memorySizeMb;
        }

        public string Executable { get; }

        /// <summary>Gets the authorizer function's executable (a custom runtime): <c>TALKI_LAMBDA_AUTHORIZER</c>.</summary>
        public string Authorizer { get; }

        public bool CpuShare { get; }

        public int? MemorySizeMb { get; }

        public static LambdaHostsFromEnvironment? Read()
        {
            var executable = Environment.GetEnvironmentVariable("TALKI_LAMBDA_HOST");
            if (string.IsNullOrEmpty(executable))
            {
                return null;
            }

            if (!File.Exists(executable))
            {
                throw new InvalidOperationException($"TALKI_LAMBDA_HOST names {executable}, which does not exist.");
            }

            var memory = Environment.GetEnvironmentVariable("TALKI_LAMBDA_MEMORY_MB") is { Length: > 0 } text
                ? int.Parse(text, NumberStyles.None, CultureInfo.InvariantCulture)
                : (int?)null;
            var authorizer = Environment.GetEnvironmentVariable("TALKI_LAMBDA_AUTHORIZER");
            if (string.IsNullOrEmpty(authorizer) || !File.Exists(authorizer))
            {
                throw new InvalidOperationException($"TALKI_LAMBDA_HOST is set, so TALKI_LAMBDA_AUTHORIZER must name the authorizer function's executable (samples/Talki.Samples.AwsAuthorizer, Native AOT or a built dll); it is '{authorizer}'.");
            }

            return new LambdaHostsFromEnvironment(Path.GetFullPath(executable), Path.GetFullPath(authorizer), Environment.GetEnvironmentVariable("TALKI_LAMBDA_CPU_SHARE") == "1", memory);
        }

        public void AlterTemplate(JsonObject template)
        {
            if (MemorySizeMb is not { } memory)
            {
                return;
            }

            foreach (var function in template["Resources"]!.AsObject().Where(r => (string?)r.Value?["Type"] == "AWS::Lambda::Function"))
            {
                function.Value!["Properties"]!["MemorySize"] = memory;
            }
        }

        public Task<AwsPathHostProcess> StartAsync(AwsPathHost host, IReadOnlyDictionary<string, string>? settings, CancellationToken cancellationToken)
        {
            // As StartInProcess: the template's environment, this machine's addresses and the test's settings; the host's
            // own directory is its content root (on Lambda, /var/task: the published directory).
            var extras = new Dictionary<string, string>(StringComparer.Ordinal) { ["Talki__IceServers__0"] = "stun:127.0.0.1:3478" };
            foreach (var (key, value) in settings ?? new Dictionary<string, string>())
            {
                extras[key.Replace(":", "__", StringComparison.Ordinal)] = value;
            }

            var executable = host.CustomRuntime ? Authorizer : Executable;
            var dll = executable.EndsWith(".dll", StringComparison.OrdinalIgnoreCase);
            return AwsPathHostProcess.StartAsync(
                host,
                dll ? AwsPathHostProcess.DotnetExecutable() : executable,
                dll ? [executable] : [],
                Path.GetDirectoryName(executable)!,
                extras,
                log: null,
                waitUntilHealthy: true,
                cpuShare: CpuShare,
                cancellationToken: cancellationToken);
        }
    }

    /// <summary>Stops and disposes a generic host.</summary>
    private sealed class StartedHost(Microsoft.Extensions.Hosting.IHost host) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await host.StopAsync();
            host.Dispose();
        }
    }

    /// <summary>Records the <c>x-talki-*</c> headers of <c>$default</c> calls before the host handles them.</summary>
    private sealed class HeaderRecorder(ConcurrentQueue<IReadOnlyDictionary<string, string>> recorded) : IStartupFilter
    {
        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            app.Use(async (context, nextMiddleware) =>
            {
                if (context.Request.Path == "/talki/aws/default")
                {
                    recorded.Enqueue(context.Request.Headers
                        .Where(h => h.Key.StartsWith("x-talki-", StringComparison.OrdinalIgnoreCase))
                        .ToDictionary(h => h.Key.ToLowerInvariant(), h => h.Value.ToString(), StringComparer.Ordinal));
                }

                await nextMiddleware(context);
            });
            next(app);
        };
    }
}

/// <summary>A signed-in browser user: cookie carried by hand, sockets through the emulator.</summary>
internal sealed class AwsUser(Uri host) : IDisposable
{
    private readonly HttpClient _http = new(new SocketsHttpHandler { UseCookies = false }) { BaseAddress = host };
    private string? _cookie;

    public List<string> Bodies { get; } = [];

    public async Task<HttpResponseMessage> PostAsync(string path, string body = "{}")
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        if (_cookie is not null)
        {
            request.Headers.Add("Cookie", _cookie);
        }

        var response = await _http.SendAsync(request);
        if (response.Headers.TryGetValues("Set-Cookie", out var cookies) && cookies.FirstOrDefault(c => c.StartsWith("talki.session=", StringComparison.Ordinal)) is { } session)
        {
            _cookie = session.Split(';')[0];
        }

        Bodies.Add(await response.Content.ReadAsStringAsync());
        return response;
    }

    public async Task<TicketResponse> TicketAsync(string path, HttpStatusCode expected)
    {
        var response = await PostAsync(path);
        Assert.Equal(expected, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync(TalkiJsonContext.Default.TicketResponse))!;
    }

    public async Task<AwsSocket> ConnectAsync(TicketResponse ticket, long? resume = null, int version = 1)
    {
        if (version >= ProtocolVersion.WaitingConnect && ticket.Status == AdmissionStatus.Pending && resume is null)
        {
            // Version 4: a waiting member connects with wait=1 and says nothing; its welcome is its admission.
            return await AwsSocket.OpenAsync(new Uri(ticket.WebSocketUrl + "&wait=1"));
        }

        var socket = await AwsSocket.OpenAsync(resume is { } epoch ? new Uri(ticket.WebSocketUrl + "&resume=" + epoch.ToString(System.Globalization.CultureInfo.InvariantCulture)) : ticket.WebSocketUrl);
        await socket.SendAsync($$"""{"type":"hello","version":{{version}}}""");
        if (version < 3 || ticket.Status != AdmissionStatus.Pending)
        {
            socket.Welcome = await socket.ExpectAsync<WelcomeMessage>(); // version 3: a waiting member's welcome is its admission
        }

        return socket;
    }

    public void Dispose() => _http.Dispose();
}

internal sealed class AwsSocket : IAsyncDisposable
{
    private readonly ClientWebSocket _socket;
    private readonly Channel<string> _frames = Channel.CreateUnbounded<string>();
    private readonly List<string> _all = [];
    private readonly List<ServerMessage> _pending = [];
    private readonly Task _receiving;

    private AwsSocket(ClientWebSocket socket)
    {
        _socket = socket;
        _receiving = ReceiveAsync();
    }

    public WelcomeMessage? Welcome { get; set; }

    public IReadOnlyList<string> AllFrames
    {
        get
        {
            lock (_all)
            {
                return [.. _all];
            }
        }
    }

    public static async Task<AwsSocket> OpenAsync(Uri url)
    {
        var socket = new ClientWebSocket();
        socket.Options.CollectHttpResponseDetails = true;
        await socket.ConnectAsync(url, CancellationToken.None);
        return new AwsSocket(socket);
    }

    public static async Task<HttpStatusCode> RefusedStatusAsync(Uri url)
    {
        using var socket = new ClientWebSocket();
        socket.Options.CollectHttpResponseDetails = true;
        await Assert.ThrowsAsync<WebSocketException>(() => socket.ConnectAsync(url, CancellationToken.None));
        return socket.HttpStatusCode;
    }

    public Task SendAsync(string json) => _socket.SendAsync(Encoding.UTF8.GetBytes(json), WebSocketMessageType.Text, true, CancellationToken.None);

    /// <summary>Returns the first message of type <typeparamref name="T"/> matching <paramref name="match"/>; others stay queued for later calls.</summary>
    public async Task<T> ExpectAsync<T>(Func<T, bool>? match = null) where T : ServerMessage
    {
        for (var i = 0; i < _pending.Count; i++)
        {
            if (_pending[i] is T queued && (match?.Invoke(queued) ?? true))
            {
                _pending.RemoveAt(i);
                return queued;
            }
        }

        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        try
        {
            while (true)
            {
                var json = await _frames.Reader.ReadAsync(cts.Token);
                var message = JsonSerializer.Deserialize(json, TalkiJsonContext.Default.ServerMessage)!;
                if (message is T wanted && (match?.Invoke(wanted) ?? true))
                {
                    return wanted;
                }

                _pending.Add(message);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or ChannelClosedException)
        {
            throw new TimeoutException($"No {typeof(T).Name} arrived. Queued: {string.Join(" | ", _pending.Select(m => m.GetType().Name))}");
        }
    }

    public async Task WaitClosedAsync() => await _receiving.WaitAsync(TimeSpan.FromSeconds(20));

    public async ValueTask DisposeAsync()
    {
        if (_socket.State == WebSocketState.Open)
        {
            try
            {
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                await _socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, cts.Token);
            }
            catch (Exception e) when (e is WebSocketException or OperationCanceledException)
            {
            }
        }

        await _receiving.WaitAsync(TimeSpan.FromSeconds(10)).ContinueWith(_ => { }, TaskScheduler.Default);
        _socket.Dispose();
    }

    private async Task ReceiveAsync()
    {
        var buffer = new byte[256 * 1024];
        try
        {
            while (true)
            {
                var total = 0;
                ValueWebSocketReceiveResult result;
                do
                {
                    result = await _socket.ReceiveAsync(buffer.AsMemory(total), CancellationToken.None);
                    total += result.Count;
                }
                while (!result.EndOfMessage && result.MessageType != WebSocketMessageType.Close);

                if (result.MessageType == WebSocketMessageType.Close)
                {
                    if (_socket.State == WebSocketState.CloseReceived)
                    {
                        await _socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);
                    }

                    return;
                }

                var json = Encoding.UTF8.GetString(buffer, 0, total);
                lock (_all)
                {
                    _all.Add(json);
                }

                await _frames.Writer.WriteAsync(json);
            }
        }
        catch (WebSocketException)
        {
        }
        finally
        {
            _frames.Writer.TryComplete();
        }
    }
}
