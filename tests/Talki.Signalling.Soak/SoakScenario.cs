using System.Diagnostics;
using System.Globalization;
using System.Net.WebSockets;
using Talki.Signalling.Server;

namespace Talki.Signalling.Soak;

public sealed record SoakSettings
{
    public int Rooms { get; init; } = 1000;

    public int Members { get; init; } = 4;

    public int Candidates { get; init; } = 3;

    public TimeSpan JoinWindow { get; init; } = TimeSpan.FromSeconds(45);

    /// <summary>Gets the rooms being set up at once (sign-ins, tickets, connects, admissions).</summary>
    public int SetupConcurrency { get; init; } = 32;

    /// <summary>Gets <c>SealedRoomRetention</c> for the host; memory "after expiry" is measured once it (and the store's one-minute purge) has passed.</summary>
    public TimeSpan SealedRoomRetention { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>Gets whether to wait for the expiry and measure memory after it (the full run; the CI test does not).</summary>
    public bool MeasureAfterExpiry { get; init; } = true;

    /// <summary>Gets whether the host runs in a child process (so its memory is the host's alone).</summary>
    public bool ChildProcessHost { get; init; } = true;

    /// <summary>Gets whether the child host runs with server GC (as the sample host does) rather than workstation GC.</summary>
    public bool ServerGc { get; init; } = true;

    public TimeSpan SealTolerance { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Gets <c>Hosting.MaxInboundMessageBytes</c> for the host; 0 keeps the default (32 KiB).</summary>
    public int MaxInboundMessageBytes { get; init; }

    /// <summary>The host options this load needs; everything else keeps its default.</summary>
    public void Configure(TalkiSignallingOptions options)
    {
        options.JoinWindow = JoinWindow;
        options.SealedRoomRetention = SealedRoomRetention;
        if (MaxInboundMessageBytes > 0)
        {
            options.Hosting.MaxInboundMessageBytes = MaxInboundMessageBytes;
        }
    }

    public IEnumerable<string> HostArguments() =>
        ["--join-window", JoinWindow.TotalSeconds.ToString(CultureInfo.InvariantCulture), "--retention", SealedRoomRetention.TotalSeconds.ToString(CultureInfo.InvariantCulture), "--max-inbound", MaxInboundMessageBytes.ToString(CultureInfo.InvariantCulture)];
}

public sealed record SoakResult
{
    public required int Rooms { get; init; }

    public required int Sockets { get; init; }

    public required TimeSpan SetupDuration { get; init; }

    public required int MeshesComplete { get; init; }

    public required long SignalsSent { get; init; }

    public required long SignalsReceived { get; init; }

    public required long SignalsLost { get; init; }

    public required long Garbled { get; init; }

    public required long SendFailures { get; init; }

    public required int SocketsSealed { get; init; }

    public required int SocketsClosedByServer { get; init; }

    public required int LateSeals { get; init; }

    /// <summary>Gets room_sealed arrival minus sealsAt, in milliseconds, over every socket: min, p50, p99, max.</summary>
    public required double[] SealDelayMs { get; init; }

    /// <summary>Gets close arrival minus sealsAt, in milliseconds, over every socket: min, p50, p99, max.</summary>
    public required double[] CloseDelayMs { get; init; }

    public required int UnexpectedErrors { get; init; }

    public required MemoryFigures Baseline { get; init; }

    public required MemoryFigures AtPeak { get; init; }

    /// <summary>Gets the memory with every room meshed and every socket open, after a forced GC.</summary>
    public required MemoryFigures Live { get; init; }

    /// <summary>Gets the memory once every socket closed at the seal, the sealed rooms still retained, after a forced GC.</summary>
    public required MemoryFigures AfterSeal { get; init; }

    public MemoryFigures? AfterExpiry { get; init; }

    public required IReadOnlyList<string> Failures { get; init; }

    public void Print(TextWriter output)
    {
        output.WriteLine($"rooms: {Rooms}, sockets: {Sockets}, set up in {SetupDuration.TotalSeconds:0.0} s");
        output.WriteLine($"meshes complete: {MeshesComplete}/{Rooms}");
        output.WriteLine($"signals: sent {SignalsSent}, received {SignalsReceived}, lost {SignalsLost}, garbled {Garbled}, send failures {SendFailures}");
        output.WriteLine($"sealed: {SocketsSealed}/{Sockets} sockets got room_sealed, {SocketsClosedByServer}/{Sockets} closed by the server, late (beyond ±1 s): {LateSeals}");
        output.WriteLine($"room_sealed - sealsAt (ms): min {SealDelayMs[0]:0}, p50 {SealDelayMs[1]:0}, p99 {SealDelayMs[2]:0}, max {SealDelayMs[3]:0}");
        output.WriteLine($"close       - sealsAt (ms): min {CloseDelayMs[0]:0}, p50 {CloseDelayMs[1]:0}, p99 {CloseDelayMs[2]:0}, max {CloseDelayMs[3]:0}");
        output.WriteLine($"unexpected error frames: {UnexpectedErrors}");
        output.WriteLine($"memory before the load (forced GC): {Baseline}");
        output.WriteLine($"memory at the end of the mesh, all sockets open: {AtPeak}");
        output.WriteLine($"  the same after a forced GC: {Live}");
        output.WriteLine($"memory after the seal, sockets closed, sealed rooms retained (forced GC): {AfterSeal}");
        if (AfterExpiry is not null)
        {
            output.WriteLine($"memory after expiry (retention + purge, forced GC): {AfterExpiry}");
        }

        output.WriteLine(Failures.Count == 0 ? "PASS" : $"FAIL: {Failures.Count} failures");
        foreach (var failure in Failures.Take(20))
        {
            output.WriteLine("  " + failure);
        }
    }
}

/// <summary>
/// The soak: <see cref="SoakSettings.Rooms"/> rooms of <see cref="SoakSettings.Members"/> members on the self-hosted
/// gateway, on the real clock, each through admission, the full mesh (every pair exchanges a description and candidates
/// both ways, counted per directed pair), the join window and the seal (every socket must get <c>room_sealed</c> and
/// be closed within <see cref="SoakSettings.SealTolerance"/> of its <c>sealsAt</c>).
/// </summary>
public static class SoakScenario
{
    public static async Task<SoakResult> RunAsync(SoakSettings settings, TextWriter log)
    {
        await using var host = settings.ChildProcessHost
            ? await SoakHost.StartChildProcessAsync(settings.HostArguments(), settings.ServerGc)
            : await SoakHost.StartInProcessAsync(settings.Configure);
        log.WriteLine($"host: {host.BaseAddress} in {(host.InProcess ? "this process" : "child process " + host.ProcessId)}");
        var baseline = await host.MemoryAsync(forceGc: true);
        log.WriteLine($"baseline: {baseline}");

        using var http = LoadUser.NewHttpClient(host.BaseAddress);
        var failures = new List<string>();
        var rooms = new List<MeshMember>[settings.Rooms];
        using var gate = new SemaphoreSlim(settings.SetupConcurrency);
        var started = Stopwatch.StartNew();
        var setups = Enumerable.Range(0, settings.Rooms).Select(async i =>
        {
            await gate.WaitAsync();
            try
            {
                rooms[i] = await SetUpRoomAsync(http, i, settings);
            }
            catch (Exception e)
            {
                lock (failures)
                {
                    failures.Add($"room {i}: set-up failed: {e.GetType().Name}: {e.Message}");
                }

                rooms[i] = [];
            }
            finally
            {
                gate.Release();
            }

            if ((i + 1) % 100 == 0)
            {
                log.WriteLine($"  {i + 1} rooms set up ({started.Elapsed.TotalSeconds:0.0} s)");
            }
        }).ToList();
        await Task.WhenAll(setups);
        var setupDuration = started.Elapsed;
        log.WriteLine($"set up {settings.Rooms} rooms in {setupDuration.TotalSeconds:0.0} s");

        // Every mesh completes before its room seals.
        var all = rooms.Where(r => r.Count > 0).ToList();
        await Task.WhenAll(all.Select(room => WaitUntilAsync(() => room.All(m => m.MeshCompleteWith(room)), room[0].Ticket.SealsAt)));
        var atPeak = await host.MemoryAsync(forceGc: false);
        log.WriteLine($"meshes done at {started.Elapsed.TotalSeconds:0.0} s; memory: {atPeak}");
        var live = await host.MemoryAsync(forceGc: true);
        log.WriteLine($"the same after a forced GC (what all the open rooms and sockets hold): {live}");

        // Every socket is told the room sealed and is closed, then we look at the times.
        var lastSeal = all.Count == 0 ? DateTimeOffset.UtcNow : all.Max(r => r[0].Ticket.SealsAt);
        var sockets = all.SelectMany(r => r).ToList();
        var deadline = lastSeal + TimeSpan.FromSeconds(10) - DateTimeOffset.UtcNow;
        await Task.WhenAny(Task.WhenAll(sockets.Select(m => Task.WhenAll(m.Sealed.Task, m.Socket.Closed))), Task.Delay(deadline > TimeSpan.Zero ? deadline : TimeSpan.Zero));
        log.WriteLine($"seal watch over at {started.Elapsed.TotalSeconds:0.0} s");

        var meshesComplete = 0;
        long sent = 0, received = 0, garbled = 0, sendFailures = 0;
        var sealDelays = new List<double>();
        var closeDelays = new List<double>();
        int sealedCount = 0, closedCount = 0, late = 0, unexpected = 0;
        for (var r = 0; r < rooms.Length; r++)
        {
            var room = rooms[r];
            if (room.Count == 0)
            {
                continue;
            }

            if (room.All(m => m.MeshCompleteWith(room)))
            {
                meshesComplete++;
            }
            else
            {
                failures.Add($"room {r}: mesh incomplete");
            }

            foreach (var member in room)
            {
                sendFailures += member.Socket.SendFailures;
                unexpected += member.Errors.Count;
                foreach (var error in member.Errors.Take(1))
                {
                    failures.Add($"room {r} {member.User.DisplayName}: error frame {error}");
                }

                if (member.Socket.HandlerFailures > 0)
                {
                    failures.Add($"room {r} {member.User.DisplayName}: {member.Socket.HandlerFailures} frames not understood, e.g. {member.Socket.LastHandlerFailure}");
                }

                foreach (var peer in room.Where(p => p != member))
                {
                    var mine = member.TallyOf(peer.Id);
                    var theirs = peer.TallyOf(member.Id);
                    var pairSent = theirs.SentDescriptions + theirs.SentCandidates;
                    var pairReceived = mine.ReceivedDescriptions + mine.ReceivedCandidates;
                    sent += pairSent;
                    received += pairReceived;
                    garbled += mine.Garbled;
                    if (pairReceived != pairSent)
                    {
                        failures.Add($"room {r} {peer.User.DisplayName}->{member.User.DisplayName}: sent {pairSent}, received {pairReceived}");
                    }
                }

                var sealsAt = member.Ticket.SealsAt;
                var sealedOk = member.Sealed.Task.IsCompletedSuccessfully;
                var closedOk = member.Socket.Closed.IsCompleted && !member.Socket.ClosedByClient && member.Socket.ClosedAt is not null;
                if (sealedOk)
                {
                    sealedCount++;
                    sealDelays.Add((member.Sealed.Task.Result - sealsAt).TotalMilliseconds);
                }

                if (closedOk)
                {
                    closedCount++;
                    closeDelays.Add((member.Socket.ClosedAt!.Value - sealsAt).TotalMilliseconds);
                }

                var onTime = sealedOk && closedOk
                    && (member.Sealed.Task.Result - sealsAt).Duration() <= settings.SealTolerance
                    && (member.Socket.ClosedAt!.Value - sealsAt).Duration() <= settings.SealTolerance
                    && member.Socket.CloseStatus == WebSocketCloseStatus.NormalClosure;
                if (!onTime)
                {
                    late++;
                    failures.Add($"room {r} {member.User.DisplayName}: sealsAt {sealsAt:HH:mm:ss.fff}, room_sealed {(sealedOk ? member.Sealed.Task.Result.ToString("HH:mm:ss.fff", CultureInfo.InvariantCulture) : "never")}, closed {member.Socket.ClosedAt?.ToString("HH:mm:ss.fff", CultureInfo.InvariantCulture) ?? "never"} ({member.Socket.CloseStatus} {member.Socket.CloseDescription})");
                }
            }
        }

        foreach (var member in sockets)
        {
            await member.Socket.DisposeAsync();
        }

        var afterSeal = await host.MemoryAsync(forceGc: true);
        log.WriteLine($"after the seal, every socket closed, rooms retained (forced GC): {afterSeal}");
        MemoryFigures? afterExpiry = null;
        if (settings.MeasureAfterExpiry)
        {
            // The store purges on a one-minute timer: wait for the retention, then for a purge pass after it.
            var expiry = lastSeal + settings.SealedRoomRetention + TimeSpan.FromSeconds(65) - DateTimeOffset.UtcNow;
            log.WriteLine($"waiting {Math.Max(0, expiry.TotalSeconds):0} s for the retention ({settings.SealedRoomRetention.TotalSeconds:0} s) and a purge pass");
            if (expiry > TimeSpan.Zero)
            {
                await Task.Delay(expiry);
            }

            afterExpiry = await host.MemoryAsync(forceGc: true);
        }

        return new SoakResult
        {
            Rooms = settings.Rooms,
            Sockets = settings.Rooms * settings.Members,
            SetupDuration = setupDuration,
            MeshesComplete = meshesComplete,
            SignalsSent = sent,
            SignalsReceived = received,
            SignalsLost = sent - received,
            Garbled = garbled,
            SendFailures = sendFailures,
            SocketsSealed = sealedCount,
            SocketsClosedByServer = closedCount,
            LateSeals = late,
            SealDelayMs = Stats.Summary(sealDelays),
            CloseDelayMs = Stats.Summary(closeDelays),
            UnexpectedErrors = unexpected,
            Baseline = baseline,
            AtPeak = atPeak,
            Live = live,
            AfterSeal = afterSeal,
            AfterExpiry = afterExpiry,
            Failures = failures,
        };
    }

    /// <summary>One room: the admin creates it and says hello; each member takes a ticket, says hello, and is admitted.</summary>
    public static async Task<List<MeshMember>> SetUpRoomAsync(HttpClient http, int index, SoakSettings settings)
    {
        var admin = await MeshMember.JoinAsync(http, $"r{index}-admin", null, settings.Candidates);
        var members = new List<MeshMember> { admin };
        await WithTimeout(admin.Welcome.Task, "admin welcome");
        for (var m = 1; m < settings.Members; m++)
        {
            var member = await MeshMember.JoinAsync(http, $"r{index}-m{m}", admin.Ticket, settings.Candidates);
            members.Add(member);
            await WithTimeout(member.Welcome.Task, "member welcome");
            admin.Socket.Send($$$"""{"type":"admit","member":"{{{member.Id}}}"}""");
            await WithTimeout(member.Admitted.Task, "admitted");
        }

        return members;
    }

    public static async Task WithTimeout(Task task, string what)
    {
        if (await Task.WhenAny(task, Task.Delay(TimeSpan.FromSeconds(30))) != task)
        {
            throw new TimeoutException($"no {what} within 30 s");
        }

        await task;
    }

    public static async Task WaitUntilAsync(Func<bool> condition, DateTimeOffset deadline)
    {
        while (!condition() && DateTimeOffset.UtcNow < deadline)
        {
            await Task.Delay(100);
        }
    }
}

public static class Stats
{
    /// <summary>Min, p50, p99, max (nearest rank); zeros when empty.</summary>
    public static double[] Summary(IReadOnlyCollection<double> values)
    {
        if (values.Count == 0)
        {
            return [0, 0, 0, 0];
        }

        var sorted = values.Order().ToArray();
        return [sorted[0], Percentile(sorted, 0.50), Percentile(sorted, 0.99), sorted[^1]];
    }

    public static double Percentile(double[] sorted, double p) => sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Length) - 1, 0, sorted.Length - 1)];
}
