using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Talki.Signalling;
using Talki.Signalling.Soak;

// Relayed signals per second and relay latency (client send → client receive, both in this process) for pairs of members
// that ping-pong signals, with `window` signals in flight per direction:
//   memory     one instance, in-memory store (no Redis)
//   redis-1    one instance on Redis (store and counters in Redis, every push local)
//   redis-2    two instances on one redis-server, each pair split: the admin on A, the member on B (every relay crosses)
// Exits 0 when every relayed signal arrived, 1 otherwise.
var options = new Dictionary<string, string>(StringComparer.Ordinal);
for (var i = 0; i + 1 < args.Length; i += 2)
{
    options[args[i].TrimStart('-')] = args[i + 1];
}

int Int(string name, int fallback) => options.TryGetValue(name, out var v) ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;
var pairs = Int("pairs", 20);
var seconds = Int("seconds", 10);
var window = Int("window", 4);
var scenarios = options.TryGetValue("scenarios", out var list) ? list.Split(',') : ["memory", "redis-1", "redis-2"];
Console.WriteLine($"{DateTime.UtcNow:O} pairs={pairs} seconds={seconds} window={window}; {Environment.ProcessorCount} cores, load average {LoadAverage()}");

await using var redis = await RedisServer.StartAsync();
var failed = false;
foreach (var scenario in scenarios)
{
    var prefix = $"bench{Guid.NewGuid():N}:";
    var a = await Hosts.StartAsync(scenario == "memory" ? null : redis.Configuration, prefix);
    var b = scenario == "redis-2" ? await Hosts.StartAsync(redis.Configuration, prefix) : a;
    try
    {
        var result = await Relay.RunAsync(new Uri(a.Urls.Single()), new Uri(b.Urls.Single()), pairs, window, TimeSpan.FromSeconds(seconds));
        Console.WriteLine($"{scenario,-8} {result}; load average {LoadAverage()}");
        failed |= result.Lost > 0;
    }
    finally
    {
        await a.DisposeAsync();
        if (b != a)
        {
            await b.DisposeAsync();
        }
    }
}

return failed ? 1 : 0;

static string LoadAverage() => File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "n/a";

/// <summary>The host's composition on Kestrel at 127.0.0.1 on a free port, limits lifted for a load.</summary>
internal static class Hosts
{
    public static async Task<WebApplication> StartAsync(string? redis, string prefix)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var talki = builder.Services.AddTalkiSignalling(o =>
        {
            o.Limits.SignInsPerAddressPerMinute = 100_000;
            o.Limits.RoomsPerSessionPerHour = 100_000;
            o.Limits.KnocksPerUserPerMinute = 100_000;
            o.Limits.MessagesPerSecond = 10_000;
            o.Limits.MessageBurst = 100_000;
            o.Limits.MessageBytesPerSecond = 64 * 1024 * 1024;
            o.Limits.MessageBytesBurst = 64 * 1024 * 1024;
            o.Limits.RateLimitedMessagesBeforeClose = 100_000;
        });
        if (redis is not null)
        {
            talki.AddRedis(redis, o => o.KeyPrefix = prefix);
        }

        var app = builder.Build();
        app.MapTalkiSignalling();
        await app.StartAsync();
        return app;
    }
}

/// <summary>What one scenario measured.</summary>
internal sealed record RelayResult(long Relayed, double Seconds, double P50Ms, double P99Ms, long Lost)
{
    public override string ToString()
        => string.Create(CultureInfo.InvariantCulture, $"{Relayed / Seconds,8:0} relayed signals/s   p50 {P50Ms,6:0.00} ms   p99 {P99Ms,6:0.00} ms   ({Relayed} in {Seconds:0.0} s, {Lost} lost)");
}

/// <summary>Pairs of members (the admin on <c>a</c>, the member on <c>b</c>) ping-ponging signals.</summary>
internal static class Relay
{
    public static async Task<RelayResult> RunAsync(Uri a, Uri b, int pairs, int window, TimeSpan duration)
    {
        using var httpA = LoadUser.NewHttpClient(a);
        using var httpB = LoadUser.NewHttpClient(b);
        var latencies = new List<long>(1 << 20);
        var running = 1;
        long sent = 0;
        long received = 0;
        var sockets = new List<LoadSocket>();
        for (var i = 0; i < pairs; i++)
        {
            sockets.AddRange(await PairAsync(httpA, httpB, i, OnSignal));
        }

        // Every socket starts `window` signals to its peer; each signal received is answered with a new one while running.
        var started = Stopwatch.GetTimestamp();
        for (var i = 0; i < sockets.Count; i++)
        {
            for (var w = 0; w < window; w++)
            {
                Send(sockets[i]);
            }
        }

        await Task.Delay(duration);
        Volatile.Write(ref running, 0);
        var elapsed = Stopwatch.GetElapsedTime(started).TotalSeconds;
        var relayedInWindow = Interlocked.Read(ref received);
        await Task.Delay(TimeSpan.FromSeconds(2)); // let what is in flight arrive
        var lost = Interlocked.Read(ref sent) - Interlocked.Read(ref received);
        foreach (var socket in sockets)
        {
            await socket.DisposeAsync();
        }

        long[] sorted;
        lock (latencies)
        {
            sorted = [.. latencies.Order()];
        }

        double Percentile(double p) => sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)(p * sorted.Length))] * 1000.0 / Stopwatch.Frequency;
        return new RelayResult(relayedInWindow, elapsed, Percentile(0.50), Percentile(0.99), lost);

        void Send(LoadSocket socket)
        {
            Interlocked.Increment(ref sent);
            var peer = (string)socket.State!;
            socket.Send($$$"""{"type":"signal","to":"{{{peer}}}","description":{"type":"offer","sdp":"t={{{Stopwatch.GetTimestamp()}}}"}}""");
        }

        void OnSignal(LoadSocket socket, LoadFrame frame)
        {
            var sdp = frame.Root.GetProperty("description").GetProperty("sdp").GetString()!;
            var latency = frame.Timestamp - long.Parse(sdp.AsSpan(2), CultureInfo.InvariantCulture);
            Interlocked.Increment(ref received);
            lock (latencies)
            {
                latencies.Add(latency);
            }

            if (Volatile.Read(ref running) == 1)
            {
                Send(socket);
            }
        }
    }

    /// <summary>An admin on <paramref name="httpA"/>'s host and a member on <paramref name="httpB"/>'s, admitted and meshed.</summary>
    private static async Task<LoadSocket[]> PairAsync(HttpClient httpA, HttpClient httpB, int index, Action<LoadSocket, LoadFrame> onSignal)
    {
        var admin = new LoadUser(httpA, "admin" + index);
        await admin.SignInAsync();
        var room = await admin.CreateRoomAsync();
        var member = new LoadUser(httpB, "member" + index);
        await member.SignInAsync();
        var ticket = await member.JoinAsync(room.Room);

        var adminMeshed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var memberMeshed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var adminSocket = await LoadSocket.ConnectAsync(room.WebSocketUrl, (socket, frame) => Handle(socket, frame, adminMeshed, ticket.Member.Value));
        adminSocket.State = ticket.Member.Value;
        adminSocket.Send("""{"type":"hello","version":1}""");
        var memberSocket = await LoadSocket.ConnectAsync(ticket.WebSocketUrl, (socket, frame) => Handle(socket, frame, memberMeshed, null));
        memberSocket.State = room.Member.Value;
        memberSocket.Send("""{"type":"hello","version":1}""");
        await Task.WhenAll(adminMeshed.Task, memberMeshed.Task).WaitAsync(TimeSpan.FromSeconds(30));
        return [adminSocket, memberSocket];

        void Handle(LoadSocket socket, LoadFrame frame, TaskCompletionSource meshed, string? admit)
        {
            switch (frame.Type)
            {
                case "admission_request" when admit is not null && frame.Root.GetProperty("member").GetProperty("online").GetBoolean():
                    socket.Send($$"""{"type":"admit","member":"{{admit}}"}""");
                    break;
                case "connect_to_peer":
                    meshed.TrySetResult();
                    break;
                case "signal":
                    onSignal(socket, frame);
                    break;
            }
        }
    }
}

/// <summary>A throw-away redis-server on 127.0.0.1 and a free port.</summary>
internal sealed class RedisServer : IAsyncDisposable
{
    private readonly Process _process;

    private RedisServer(Process process, int port)
    {
        _process = process;
        Configuration = $"127.0.0.1:{port}";
    }

    public string Configuration { get; }

    public static async Task<RedisServer> StartAsync()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        var process = Process.Start(new ProcessStartInfo("redis-server")
        {
            ArgumentList = { "--port", port.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no" },
            RedirectStandardOutput = true,
            UseShellExecute = false,
        })!;
        process.OutputDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        for (var attempt = 0; attempt < 50; attempt++)
        {
            try
            {
                using var probe = new TcpClient();
                await probe.ConnectAsync(IPAddress.Loopback, port);
                break;
            }
            catch (SocketException)
            {
                await Task.Delay(100);
            }
        }

        return new RedisServer(process, port);
    }

    public async ValueTask DisposeAsync()
    {
        _process.Kill(entireProcessTree: true);
        await _process.WaitForExitAsync();
        _process.Dispose();
    }
}
