using System.Collections.Concurrent;
using Talki.Signalling.Soak;

namespace Talki.Benchmarks.Load;

/// <summary>
/// The server's resident set with <see cref="Connections"/> idle connections open on top of the baseline's
/// (<see cref="WarmConnections"/>, opened before it so that the JIT has settled), and the fresh baseline read after
/// the first group alone.
/// </summary>
internal sealed record IdleResult(int Connections, long ResidentBytes, long BaselineBytes, int SocketsClosed, long FreshBaselineBytes, int WarmConnections, string? Failure = null)
{
    /// <summary>Gets the resident bytes per connection above the warmed-up baseline.</summary>
    public double BytesPerConnection => (ResidentBytes - BaselineBytes) / (double)Connections;

    /// <summary>Gets the resident bytes per connection above the fresh baseline, the JIT warm-up's connections counted in.</summary>
    public double BytesPerConnectionFromFresh => (ResidentBytes - FreshBaselineBytes) / (double)(Connections + WarmConnections);

    public bool Valid => Failure is null && SocketsClosed == 0;
}

/// <summary>Everything measured on one server.</summary>
internal sealed class ServerResult
{
    public required string Name { get; init; }

    public required string Command { get; init; }

    /// <summary>Gets or sets the round (1-based) of a repeated measure (<see cref="LoadOptions.Repeat"/>).</summary>
    public int Round { get; set; } = 1;

    public List<TimeSpan> Startups { get; } = [];

    public List<RunResult> Saturation { get; } = [];

    public List<RunResult> OpenLoop { get; } = [];

    public List<IdleResult> Idle { get; } = [];

    public List<string> Failures { get; } = [];

    public bool Valid => Failures.Count == 0 && Saturation.All(r => r.Valid) && OpenLoop.All(r => r.Valid) && Idle.All(r => r.Valid);
}

/// <summary>The measures of one server, each on its own server process: start-ups, then the traffic runs, then the idle connections.</summary>
internal static class Bench
{
    public static async Task<ServerResult> RunAsync(Target target, LoadOptions options, TextWriter log)
    {
        var result = new ServerResult { Name = target.Name, Command = target.Describe() };
        log.WriteLine($"== {target.Name}: {result.Command}");
        await Guard(result, "start-up", async () =>
        {
            for (var i = 0; i < options.Startups; i++)
            {
                await using var server = await ServerProcess.StartAsync(target, options.ServerCpus, options.ServerEnvironment, LogFile(options, target, $"startup{i + 1}"));
                result.Startups.Add(server.Startup);
                log.WriteLine($"  start-up {i + 1}: {server.Startup.TotalMilliseconds:0} ms");
            }
        });

        if (options.Pairs.Count > 0 || options.Rates.Count > 0)
        {
            await Guard(result, "traffic", () => TrafficAsync(target, options, result, log));
        }

        if (options.Idle.Count > 0)
        {
            await Guard(result, "idle", () => IdleAsync(target, options, result, log));
        }

        return result;
    }

    /// <summary>The file a server process of this phase writes its output to (<c>--server-log</c>), or null.</summary>
    private static string? LogFile(LoadOptions options, Target target, string phase) =>
        options.ServerLog is { } folder ? Path.Combine(folder, FormattableString.Invariant($"{target.Name}-{phase}-{DateTime.UtcNow:yyyyMMdd-HHmmss-fff}.log")) : null;

    private static async Task TrafficAsync(Target target, LoadOptions options, ServerResult result, TextWriter log)
    {
        await using var server = await ServerProcess.StartAsync(target, options.ServerCpus, options.ServerEnvironment, LogFile(options, target, "traffic"));
        target.Bind(server.BaseAddress);
        await using var keepalive = new Keepalive(target);

        // A run that is not recorded, so that the first recorded one does not pay for the JIT (the .NET servers compile
        // their hot paths again, optimized, after the first thousands of messages; V8 likewise).
        var warmupLinks = await ConnectPairsAsync(target, 10, options, keepalive);
        var warmup = await TrafficRun.SaturateAsync(server, warmupLinks, options.Window, options with { Warmup = TimeSpan.Zero, Duration = TimeSpan.FromSeconds(5) });
        await CloseAsync(warmupLinks.Select(l => l.Socket), keepalive);
        log.WriteLine($"  warm-up (not recorded), 10 pairs for 5 s: {Report.Describe(warmup)}");
        await Task.Delay(TimeSpan.FromSeconds(1));

        foreach (var pairs in options.Pairs)
        {
            RunResult run;
            try
            {
                var links = await ConnectPairsAsync(target, pairs, options, keepalive);
                await SettleAsync(server, options, log);
                run = await TrafficRun.SaturateAsync(server, links, options.Window, options);
                await CloseAsync(links.Select(l => l.Socket), keepalive);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                run = RunResult.Failed(pairs, 0, e);
            }

            result.Saturation.Add(run);
            log.WriteLine($"  saturation, {pairs} pairs: {Report.Describe(run)}");
            await Task.Delay(TimeSpan.FromSeconds(1));
        }

        if (options.Rates.Count == 0)
        {
            return;
        }

        Link[] rateLinks;
        try
        {
            rateLinks = await ConnectPairsAsync(target, options.RatePairs, options, keepalive);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            result.OpenLoop.AddRange(options.Rates.Select(rate => RunResult.Failed(options.RatePairs, rate, e)));
            return;
        }

        foreach (var rate in options.Rates)
        {
            await SettleAsync(server, options, log);
            var trace = options.Trace is null ? null : NextTracePath(options.Trace, target.Name, rate);
            var run = await TrafficRun.OpenLoopAsync(server, rateLinks, rate, options, trace);
            result.OpenLoop.Add(run);
            log.WriteLine($"  open loop, {rate} msg/s over {options.RatePairs} pairs: {Report.Describe(run)}");
            await Task.Delay(TimeSpan.FromSeconds(1));
        }

        await CloseAsync(rateLinks.Select(l => l.Socket), keepalive);
    }

    /// <summary>The first <c>DIR/SERVER-RATE-N.csv</c> not there yet (one per round).</summary>
    private static string NextTracePath(string folder, string server, int rate)
    {
        for (var n = 1; ; n++)
        {
            var path = Path.Combine(folder, $"{server}-{rate}-{n}.csv");
            if (!File.Exists(path))
            {
                return path;
            }
        }
    }

    /// <summary>
    /// Before a measured run: until the server's JIT has compiled nothing for <see cref="LoadOptions.JitQuiet"/> (at most
    /// 30 s). Connecting the pairs makes the sign-in, room and ticket code hot, and tiered compilation recompiles it in the
    /// background some time later: without the wait, that one-off work lands in the next window's CPU (5.6 % of the Talki
    /// server's samples in a profile of a 100-pair run, docs/performance.md). A server in service has done it long before.
    /// </summary>
    private static async Task SettleAsync(ServerProcess server, LoadOptions options, TextWriter log)
    {
        if (options.JitQuiet <= TimeSpan.Zero)
        {
            return;
        }

        var (waited, compiler) = await server.WaitForCompilerQuietAsync(options.JitQuiet, TimeSpan.FromSeconds(30));
        log.WriteLine(FormattableString.Invariant($"  settled: {waited.TotalSeconds:0.0} s until the JIT was quiet for {options.JitQuiet.TotalSeconds:0.#} s ({compiler.TotalSeconds:0.00} s of compilation meanwhile)"));
    }

    /// <summary>
    /// Idle connections on a fresh server: one group connected first (kept open), the fresh baseline RSS after
    /// <see cref="LoadOptions.Settle"/>; then <see cref="LoadOptions.IdleWarmup"/> more (the JIT warm-up, kept open) and
    /// the baseline after the same settle time; then groups until each count of <see cref="LoadOptions.Idle"/> (cumulative,
    /// on top of the baseline's), the RSS read after the same settle time. Nothing is forced (no GC, no trim). With
    /// <see cref="LoadOptions.Hold"/>, the connections then stay open that long (the server's process id printed first)
    /// before they close.
    /// </summary>
    private static async Task IdleAsync(Target target, LoadOptions options, ServerResult result, TextWriter log)
    {
        var sockets = new ConcurrentBag<LoadSocket>();
        var warm = new ConcurrentBag<LoadSocket>();
        try
        {
            await using var server = await ServerProcess.StartAsync(target, options.ServerCpus, options.ServerEnvironment, LogFile(options, target, "idle"));
            target.Bind(server.BaseAddress);
            await using var keepalive = new Keepalive(target);
            await ConnectIdleAsync(target, warm, target.GroupSize, options, keepalive);
            var first = warm.Count;
            await Task.Delay(options.Settle);
            var fresh = server.ResidentBytes;
            log.WriteLine($"  idle: fresh baseline {fresh / 1024.0 / 1024:0.0} MiB with {first} connections");

            // The JIT warm-up: the per-connection code runs often enough to reach its final tier before the baseline
            // (tiered compilation recompiles a method after 30 calls, with dynamic PGO once more after an instrumented
            // tier). It starts counting calls only after 100 ms without new methods to compile (dotnet/runtime,
            // tieredcompilation.cpp: the tiering delay, TC_CallCountingDelayMs), so the warm-up comes in rounds with a
            // pause between them: the calls of each round count, and the next round runs what the last one had
            // recompiled. These connections stay open, beneath the baseline.
            var baseline = fresh;
            if (options.IdleWarmup > 0)
            {
                const int Rounds = 4;
                for (var round = 0; round < Rounds; round++)
                {
                    await ConnectIdleAsync(target, warm, (options.IdleWarmup * (round + 1) / Rounds) - (options.IdleWarmup * round / Rounds), options, keepalive);
                    await Task.Delay(TimeSpan.FromSeconds(1));
                }

                await Task.Delay(options.Settle);
                baseline = server.ResidentBytes;
            }

            var warmCount = warm.Count - first;
            log.WriteLine($"  idle: baseline {baseline / 1024.0 / 1024:0.0} MiB with {warm.Count} connections ({warmCount} for the JIT warm-up)");
            foreach (var count in options.Idle)
            {
                await ConnectIdleAsync(target, sockets, count - sockets.Count, options, keepalive);
                await Task.Delay(options.Settle);
                var idle = new IdleResult(count, server.ResidentBytes, baseline, sockets.Count(s => s.Closed.IsCompleted) + warm.Count(s => s.Closed.IsCompleted), fresh, warmCount);
                result.Idle.Add(idle);
                log.WriteLine($"  idle: {count} connections: RSS {idle.ResidentBytes / 1024.0 / 1024:0.0} MiB, {idle.BytesPerConnection / 1024:0.0} KiB per connection ({idle.BytesPerConnectionFromFresh / 1024:0.0} from the fresh baseline), {idle.SocketsClosed} closed");
            }

            if (options.Hold > TimeSpan.Zero)
            {
                log.WriteLine($"  idle: holding {sockets.Count + warm.Count} connections open for {options.Hold.TotalSeconds:0.#} s (server pid {server.ProcessId})");
                log.Flush();
                await Task.Delay(options.Hold);
            }

        }
        finally
        {
            // The server is gone by now: the client sockets close at once.
            await Parallel.ForEachAsync(sockets.Concat(warm), new ParallelOptions { MaxDegreeOfParallelism = 256 }, async (socket, _) => await socket.DisposeAsync());
        }
    }

    /// <summary>Opens <paramref name="count"/> more idle connections in groups, kept open and added to <paramref name="sockets"/>.</summary>
    private static async Task ConnectIdleAsync(Target target, ConcurrentBag<LoadSocket> sockets, int count, LoadOptions options, Keepalive keepalive)
    {
        var groups = Enumerable.Range(0, (count + target.GroupSize - 1) / target.GroupSize)
            .Select(g => Math.Min(target.GroupSize, count - (g * target.GroupSize)))
            .ToList();
        await Parallel.ForEachAsync(groups, new ParallelOptions { MaxDegreeOfParallelism = options.Concurrency }, async (size, _) =>
        {
            var group = await target.ConnectGroupAsync(size);
            keepalive.Add(group);
            foreach (var socket in group)
            {
                sockets.Add(socket);
            }
        });
    }

    private static async Task<Link[]> ConnectPairsAsync(Target target, int pairs, LoadOptions options, Keepalive keepalive)
    {
        var links = new Link[pairs * 2];
        await Parallel.ForEachAsync(Enumerable.Range(0, pairs), new ParallelOptions { MaxDegreeOfParallelism = options.Concurrency }, async (i, _) =>
        {
            var pair = await target.ConnectPairAsync();
            (links[2 * i], links[(2 * i) + 1]) = (pair[0], pair[1]);
            keepalive.Add(pair.Select(l => l.Socket));
        });
        return links;
    }

    private static async Task CloseAsync(IEnumerable<LoadSocket> sockets, Keepalive keepalive)
    {
        var all = sockets.ToList();
        keepalive.Remove(all);
        await Parallel.ForEachAsync(all, new ParallelOptions { MaxDegreeOfParallelism = 256 }, async (socket, _) => await socket.DisposeAsync());
    }

    private static async Task Guard(ServerResult result, string what, Func<Task> action)
    {
        try
        {
            await action();
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            result.Failures.Add($"{what}: {e.GetType().Name}: {e.Message}");
        }
    }
}

/// <summary>Sends what the server's real client sends to keep a connection (PeerJS: a heartbeat every 5 s) on every open socket.</summary>
internal sealed class Keepalive : IAsyncDisposable
{
    private readonly ConcurrentDictionary<LoadSocket, byte> _sockets = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    public Keepalive(Target target)
    {
        _loop = target.Keepalive is { } keepalive ? LoopAsync(keepalive.Interval, keepalive.Message) : Task.CompletedTask;
    }

    public void Add(IEnumerable<LoadSocket> sockets)
    {
        foreach (var socket in sockets)
        {
            _sockets[socket] = 0;
        }
    }

    public void Remove(IEnumerable<LoadSocket> sockets)
    {
        foreach (var socket in sockets)
        {
            _sockets.TryRemove(socket, out _);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _loop;
        _stop.Dispose();
    }

    private async Task LoopAsync(TimeSpan interval, string message)
    {
        using var timer = new PeriodicTimer(interval);
        try
        {
            while (await timer.WaitForNextTickAsync(_stop.Token))
            {
                foreach (var socket in _sockets.Keys)
                {
                    socket.Send(message);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }
}
