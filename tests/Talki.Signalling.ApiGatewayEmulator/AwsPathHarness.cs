using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Talki.Signalling.Emulator.Deployment;

namespace Talki.Signalling.Emulator;

/// <summary>One instance of a function the harness runs: where it listens, how it is configured, which identity it has.</summary>
/// <param name="Function">The function's construct id (<c>Backend</c>, <c>Authorizer</c>).</param>
/// <param name="Index">The instance's index within its function.</param>
/// <param name="Address">The instance's base address, <c>http://127.0.0.1:{port}</c> (what the adapter would call).</param>
/// <param name="Settings">
/// The host's configuration, by configuration key (<c>Talki:Aws:Role</c>): the function's environment from the template,
/// resolved, with what points at this machine instead of AWS (<c>urls</c>, <c>Talki:Aws:ApiEndpoint</c>,
/// <c>Talki:Aws:WebSocketUrl</c>, <c>Talki:Aws:DynamoDbServiceUrl</c>) and the role's keys
/// (<c>Talki:Aws:AccessKeyId</c>/<c>SecretAccessKey</c>).
/// </param>
/// <param name="AccessKeyId">The access key id of the function's role (sign @connections and DynamoDB requests with it).</param>
/// <param name="SecretAccessKey">Its secret.</param>
/// <param name="DynamoDbEndpoint">The emulator's IAM-checking DynamoDB endpoint.</param>
/// <param name="Region">The region to sign for.</param>
/// <param name="MemorySizeMb">The function's memory size (the template's <c>MemorySize</c>): what its CPU share follows (<see cref="LambdaCpuShare"/>).</param>
public sealed record AwsPathHost(
    string Function,
    int Index,
    Uri Address,
    IReadOnlyDictionary<string, string> Settings,
    string AccessKeyId,
    string SecretAccessKey,
    Uri DynamoDbEndpoint,
    string Region,
    int MemorySizeMb = EmulatedFunction.DefaultMemorySizeMb)
{
    /// <summary>
    /// Gets whether the function is a custom runtime (no Lambda Web Adapter, <see cref="EmulatedFunction.UsesWebAdapter"/>):
    /// then <see cref="Address"/> is the emulator's runtime API for this instance, not a web server's, and the host takes its
    /// events from there (<c>AWS_LAMBDA_RUNTIME_API</c> in <see cref="Settings"/>).
    /// </summary>
    public bool CustomRuntime { get; init; }

    /// <summary>
    /// Gets, for a custom runtime, a task that completes when the instance's runtime first asks for an event: the end of its
    /// init (a web server's is its <c>/healthz</c>). Null for a web server.
    /// </summary>
    public Func<Task>? Initialized { get; init; }

    /// <summary>Gets <see cref="Settings"/> as environment variables (<c>Talki__Aws__Role</c>), for a host started as a process.</summary>
    public IReadOnlyDictionary<string, string> EnvironmentVariables
        => Settings.ToDictionary(s => s.Key.Replace(":", "__", StringComparison.Ordinal), s => s.Value, StringComparer.Ordinal);
}

/// <summary>Starts one host instance (in-process or a child process) and returns what stops it.</summary>
/// <param name="host">The instance to start: it must listen on <see cref="AwsPathHost.Address"/> and use <see cref="AwsPathHost.Settings"/>.</param>
/// <param name="cancellationToken">Cancels the start.</param>
/// <returns>Disposing it stops the instance.</returns>
public delegate Task<IAsyncDisposable> AwsPathHostLauncher(AwsPathHost host, CancellationToken cancellationToken);

/// <summary>What <see cref="AwsPathHarness"/> runs.</summary>
public sealed class AwsPathOptions
{
    /// <summary>Gets or sets the synthesized CloudFormation template (required).</summary>
    public required JsonObject Template { get; set; }

    /// <summary>Gets or sets dynalite's endpoint (required): the tables are created there, and the emulator's DynamoDB endpoint forwards to it.</summary>
    public required Uri DynamoDb { get; set; }

    /// <summary>Gets or sets how a host instance is started (required).</summary>
    public required AwsPathHostLauncher StartHost { get; set; }

    /// <summary>Gets or sets the stack name; physical names (the table's) are <c>{stack}-{logicalId}</c>, so one dynalite can serve several harnesses.</summary>
    public string StackName { get; set; } = "talki";

    /// <summary>Gets the number of instances per function (construct id); functions not listed get one.</summary>
    public IDictionary<string, int> Instances { get; } = new Dictionary<string, int>(StringComparer.Ordinal) { ["Backend"] = 1 };

    /// <summary>Gets or sets the value of the template's <c>GatewaySecret</c> parameter (random by default).</summary>
    public string GatewaySecret { get; set; } = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(24));

    /// <summary>Gets or sets a last say on the emulator's options (faults, clocks, timeouts).</summary>
    public Action<EmulatorOptions>? ConfigureEmulator { get; set; }
}

/// <summary>
/// The AWS path on one machine, as the CDK app deploys it: the API Gateway emulator running the synthesized template (IAM,
/// function URL permissions, routes, authorizer), the template's tables in dynalite, and each function's instances as
/// hosts configured from the function's environment in the template, each signing with its own role's key. Browsers and
/// clients use <see cref="FunctionUrl"/> (the HTTP API and the app's files) and <see cref="ApiGatewayEmulator.WebSocketUrl"/>.
/// </summary>
public sealed class AwsPathHarness : IAsyncDisposable
{
    private readonly AwsPathOptions _options;
    private readonly Dictionary<(string Function, int Index), IAsyncDisposable> _running = [];

    private AwsPathHarness(AwsPathOptions options, ApiGatewayEmulator emulator, IReadOnlyList<AwsPathHost> hosts)
    {
        _options = options;
        Emulator = emulator;
        Hosts = hosts;
    }

    /// <summary>Gets the emulator.</summary>
    public ApiGatewayEmulator Emulator { get; }

    /// <summary>Gets every host instance, by function then index.</summary>
    public IReadOnlyList<AwsPathHost> Hosts { get; }

    /// <summary>Gets the backend's function URL (the browser-facing front door).</summary>
    public Uri FunctionUrl => Emulator.FunctionUrl;

    /// <summary>Gets the name of the template's (only) table.</summary>
    public string TableName => Emulator.Deployment.Tables.Single().Name;

    /// <summary>Gets the instances of one function.</summary>
    public IReadOnlyList<AwsPathHost> HostsOf(string function) => [.. Hosts.Where(h => h.Function == function)];

    /// <summary>Starts everything: free ports for the instances, the emulator, the tables, then the hosts.</summary>
    public static async Task<AwsPathHarness> StartAsync(AwsPathOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var functionKeys = options.Template["Resources"]!.AsObject()
            .Where(r => (string?)r.Value?["Type"] == "AWS::Lambda::Function")
            .Select(r => EmulatedDeployment.ConstructKey(r.Key))
            .ToList();
        var emulatorOptions = new EmulatorOptions { Template = options.Template, StackName = options.StackName, DynamoDb = options.DynamoDb };
        emulatorOptions.TemplateParameters["GatewaySecret"] = options.GatewaySecret;
        var identities = new Dictionary<string, (string Key, string Secret)>(StringComparer.Ordinal);
        foreach (var function in functionKeys)
        {
            var key = ("AKIA" + new string([.. function.ToUpperInvariant().Where(char.IsAsciiLetterOrDigit)]) + "0000000000000000")[..20];
            identities[function] = (key, Convert.ToBase64String(RandomNumberGenerator.GetBytes(30)));
            var instances = new FunctionInstances { AccessKeyId = key, SecretAccessKey = identities[function].Secret };
            for (var i = 0; i < (options.Instances.TryGetValue(function, out var count) ? count : 1); i++)
            {
                instances.Instances.Add(new Uri($"http://127.0.0.1:{LoopbackPorts.Choose()}"));
            }

            emulatorOptions.Functions[function] = instances;
        }

        options.ConfigureEmulator?.Invoke(emulatorOptions);
        var emulator = await ApiGatewayEmulator.StartAsync(emulatorOptions, cancellationToken).ConfigureAwait(false);
        try
        {
            await emulator.CreateTablesAsync(cancellationToken).ConfigureAwait(false);
            var hosts = new List<AwsPathHost>();
            foreach (var function in emulator.Deployment.Functions)
            {
                var (key, secret) = identities[function.Key];
                var instances = emulatorOptions.Functions[function.Key].Instances;
                for (var i = 0; i < instances.Count; i++)
                {
                    var index = i;
                    hosts.Add(new AwsPathHost(function.Key, i, instances[i], Settings(function, instances[i], emulator, key, secret), key, secret, emulator.DynamoDbEndpoint!, emulator.Region, function.MemorySizeMb)
                    {
                        CustomRuntime = !function.UsesWebAdapter,
                        Initialized = function.UsesWebAdapter ? null : () => emulator.RuntimeApi(function.Key, index).Initialized,
                    });
                }
            }

            var harness = new AwsPathHarness(options, emulator, hosts);
            try
            {
                foreach (var host in hosts)
                {
                    harness._running[(host.Function, host.Index)] = await options.StartHost(host, cancellationToken).ConfigureAwait(false);
                }
            }
            catch
            {
                await harness.DisposeAsync().ConfigureAwait(false);
                throw;
            }

            return harness;
        }
        catch
        {
            await emulator.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Replaces one instance, as Lambda replaces an execution environment: the process and its memory are gone; the sockets
    /// (held by API Gateway) and the data (in DynamoDB) are not.
    /// </summary>
    public async Task RestartAsync(string function, int index = 0, CancellationToken cancellationToken = default)
    {
        var host = Hosts.Single(h => h.Function == function && h.Index == index);
        await _running[(function, index)].DisposeAsync().ConfigureAwait(false);
        if (host.CustomRuntime)
        {
            Emulator.RuntimeApi(function, index).BeginNewEnvironment();
        }

        _running[(function, index)] = await _options.StartHost(host, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Stops the emulator first (its connections close, <c>$disconnect</c> reaches the hosts), then the hosts.</summary>
    public async ValueTask DisposeAsync()
    {
        await Emulator.DisposeAsync().ConfigureAwait(false);
        foreach (var running in _running.Values)
        {
            await running.DisposeAsync().ConfigureAwait(false);
        }

        _running.Clear();
    }

    private static Dictionary<string, string> Settings(EmulatedFunction function, Uri address, ApiGatewayEmulator emulator, string accessKey, string secretKey)
    {
        var settings = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, value) in function.Environment)
        {
            // The adapter's own variables and the in-Lambda listen address are not the host's business here.
            if (!name.StartsWith("AWS_LWA_", StringComparison.Ordinal) && name != "ASPNETCORE_URLS")
            {
                settings[name.Replace("__", ":", StringComparison.Ordinal)] = value;
            }
        }

        if (function.UsesWebAdapter)
        {
            settings["urls"] = address.GetLeftPart(UriPartial.Authority);
        }
        else
        {
            // A custom runtime listens nowhere: it asks the emulator's runtime API for its events, as Lambda tells it to.
            settings["AWS_LAMBDA_RUNTIME_API"] = address.Authority;
        }

        settings["Talki:Aws:ApiEndpoint"] = emulator.ManagementEndpoint.ToString();
        settings["Talki:Aws:WebSocketUrl"] = emulator.WebSocketUrl.ToString();
        settings["Talki:Aws:DynamoDbServiceUrl"] = emulator.DynamoDbEndpoint!.ToString();
        settings["Talki:Aws:AccessKeyId"] = accessKey;
        settings["Talki:Aws:SecretAccessKey"] = secretKey;
        return settings;
    }
}
