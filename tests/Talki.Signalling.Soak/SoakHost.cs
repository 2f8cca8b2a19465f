using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Runtime;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Talki.Signalling.Server;
using Talki.Signalling.Server.AspNetCore;

namespace Talki.Signalling.Soak;

/// <summary>The memory of the host process, as its <c>/soak/memory</c> endpoint reports it.</summary>
public sealed record MemoryFigures(
    long WorkingSet,
    long PeakWorkingSetSampled,
    long PeakWorkingSetOs,
    long GcHeap,
    long PeakGcHeapSampled,
    bool ServerGc)
{
    public static string Mib(long bytes) => (bytes / 1024.0 / 1024.0).ToString("0.0", CultureInfo.InvariantCulture) + " MiB";

    public override string ToString() =>
        $"working set {Mib(WorkingSet)} (peak sampled {Mib(PeakWorkingSetSampled)}, peak VmHWM {Mib(PeakWorkingSetOs)}), GC heap {Mib(GcHeap)} (peak sampled {Mib(PeakGcHeapSampled)}), {(ServerGc ? "server" : "workstation")} GC";
}

[JsonSerializable(typeof(MemoryFigures))]
internal sealed partial class SoakJsonContext : JsonSerializerContext;

/// <summary>
/// The sample host's composition (<c>AddTalkiSignalling</c> + <c>MapTalkiSignalling</c>, the self-hosted gateway) on
/// Kestrel at 127.0.0.1 on a free port, on the real clock, in this process or in a child process of this tool; plus
/// <c>GET /soak/memory[?gc=1]</c>, which samples the host's memory every 100 ms and reports the peaks.
/// </summary>
public sealed class SoakHost : IAsyncDisposable
{
    private readonly WebApplication? _app;
    private readonly Process? _child;
    private readonly HttpClient _http;

    private SoakHost(Uri baseAddress, WebApplication? app, Process? child)
    {
        BaseAddress = baseAddress;
        _app = app;
        _child = child;
        _http = new HttpClient { BaseAddress = baseAddress, Timeout = TimeSpan.FromMinutes(2) };
    }

    public Uri BaseAddress { get; }

    /// <summary>Gets the id of the process the host runs in.</summary>
    public int ProcessId => _child?.Id ?? Environment.ProcessId;

    public bool InProcess => _app is not null;

    /// <summary>Starts the host in this process.</summary>
    public static async Task<SoakHost> StartInProcessAsync(Action<TalkiSignallingOptions> configure)
    {
        var app = await BuildAndStartAsync(configure, "http://127.0.0.1:0");
        return new SoakHost(new Uri(app.Urls.Single()), app, null);
    }

    /// <summary>Starts the host in a child process (this tool's <c>host</c> command) with the given options as arguments.</summary>
    /// <remarks>The child runs with server GC, as the sample host (an ASP.NET Core Web SDK project) does, unless <paramref name="serverGc"/> is false.</remarks>
    public static async Task<SoakHost> StartChildProcessAsync(IEnumerable<string> hostArguments, bool serverGc = true)
    {
        var start = new ProcessStartInfo(Environment.ProcessPath!) { RedirectStandardOutput = true, RedirectStandardInput = true, UseShellExecute = false };
        start.Environment["DOTNET_gcServer"] = serverGc ? "1" : "0";
        if (Path.GetFileNameWithoutExtension(Environment.ProcessPath!) == "dotnet")
        {
            start.ArgumentList.Add(typeof(SoakHost).Assembly.Location);
        }

        start.ArgumentList.Add("host");
        foreach (var argument in hostArguments)
        {
            start.ArgumentList.Add(argument);
        }

        var child = Process.Start(start) ?? throw new InvalidOperationException("Could not start the host process.");
        while (true)
        {
            var line = await child.StandardOutput.ReadLineAsync() ?? throw new InvalidOperationException("The host process ended before it listened.");
            if (line.StartsWith("listening ", StringComparison.Ordinal))
            {
                _ = Task.Run(async () => await child.StandardOutput.ReadToEndAsync());
                return new SoakHost(new Uri(line["listening ".Length..]), null, child);
            }
        }
    }

    /// <summary>The <c>host</c> command: runs the host until standard input closes (the parent ended or is done).</summary>
    public static async Task RunHostCommandAsync(Action<TalkiSignallingOptions> configure)
    {
        await using var app = await BuildAndStartAsync(configure, "http://127.0.0.1:0");
        Console.WriteLine("listening " + app.Urls.Single());
        await Console.In.ReadToEndAsync();
        await app.StopAsync();
    }

    public async Task<MemoryFigures> MemoryAsync(bool forceGc)
    {
        var figures = await _http.GetFromJsonAsync(forceGc ? "/soak/memory?gc=1" : "/soak/memory", SoakJsonContext.Default.MemoryFigures);
        return figures!;
    }

    public async ValueTask DisposeAsync()
    {
        _http.Dispose();
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }

        if (_child is not null)
        {
            _child.StandardInput.Close(); // the host command stops at the end of its input
            await Task.WhenAny(_child.WaitForExitAsync(), Task.Delay(TimeSpan.FromSeconds(10)));
            if (!_child.HasExited)
            {
                _child.Kill();
                await _child.WaitForExitAsync();
            }

            _child.Dispose();
        }
    }

    private static async Task<WebApplication> BuildAndStartAsync(Action<TalkiSignallingOptions> configure, string url)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls(url);
        builder.Logging.ClearProviders();
        // Every simulated user signs in from 127.0.0.1: the per-address sign-in limit is lifted (the only limit changed here).
        builder.Services.AddTalkiSignalling(o => o.Limits.SignInsPerAddressPerMinute = 100_000);
        builder.Services.AddTalkiSignalling(configure);
        var app = builder.Build();
        app.UseCors();
        app.MapTalkiSignalling();
        var sampler = new MemorySampler();
        app.Lifetime.ApplicationStopping.Register(sampler.Dispose);
        app.MapGet("/soak/memory", (HttpContext context) =>
        {
            if (context.Request.Query.ContainsKey("gc"))
            {
                GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
                GC.WaitForPendingFinalizers();
                GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
            }

            return Results.Json(sampler.Figures(), SoakJsonContext.Default.MemoryFigures);
        });
        await app.StartAsync();
        return app;
    }

    /// <summary>Samples the working set and the GC heap every 100 ms and keeps the peaks.</summary>
    private sealed class MemorySampler : IDisposable
    {
        private readonly Timer _timer;
        private long _peakWorkingSet;
        private long _peakHeap;

        public MemorySampler()
        {
            _timer = new Timer(_ => Sample(), null, TimeSpan.Zero, TimeSpan.FromMilliseconds(100));
        }

        public MemoryFigures Figures()
        {
            var (workingSet, heap) = Sample();
            using var process = Process.GetCurrentProcess();
            return new MemoryFigures(workingSet, Interlocked.Read(ref _peakWorkingSet), process.PeakWorkingSet64, heap, Interlocked.Read(ref _peakHeap), GCSettings.IsServerGC);
        }

        public void Dispose() => _timer.Dispose();

        private (long WorkingSet, long Heap) Sample()
        {
            var workingSet = Environment.WorkingSet;
            var heap = GC.GetTotalMemory(forceFullCollection: false);
            Max(ref _peakWorkingSet, workingSet);
            Max(ref _peakHeap, heap);
            return (workingSet, heap);
        }

        private static void Max(ref long location, long value)
        {
            var current = Interlocked.Read(ref location);
            while (value > current)
            {
                var seen = Interlocked.CompareExchange(ref location, value, current);
                if (seen == current)
                {
                    return;
                }

                current = seen;
            }
        }
    }
}
