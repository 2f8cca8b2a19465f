using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net.WebSockets;
using System.Text;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Soak;

public sealed record StormSettings
{
    /// <summary>Gets the malformed frames to send, all attackers together.</summary>
    public int Frames { get; init; } = 10_000;

    /// <summary>Gets the frames one outsider connection sends as fast as it can (over the burst of 200: refused, then closed).</summary>
    public int FramesPerAttacker { get; init; } = 400;

    /// <summary>Gets the outsider connections flooding at once (each its own user and room).</summary>
    public int AttackersAtOnce { get; init; } = 8;

    /// <summary>Gets the attackers admitted into the victim room, each sending malformed frames under the rate limit for the whole storm.</summary>
    public int InRoomAttackers { get; init; } = 3;

    public int LegitMembers { get; init; } = 4;

    /// <summary>Gets how long the legitimate room is measured before the storm.</summary>
    public TimeSpan Baseline { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Gets how often each legitimate member sends a timestamped probe signal to one of its peers (round robin).</summary>
    public TimeSpan ProbeInterval { get; init; } = TimeSpan.FromMilliseconds(50);

    public TimeSpan InRoomInterval { get; init; } = TimeSpan.FromMilliseconds(25);

    /// <summary>Gets the time the outsiders' floods are spread over (one starts every Duration / (Frames / FramesPerAttacker)).</summary>
    public TimeSpan Duration { get; init; } = TimeSpan.FromSeconds(20);

    public bool ChildProcessHost { get; init; } = true;

    /// <summary>Gets the join window: long, so the victim room does not seal mid-storm.</summary>
    public TimeSpan JoinWindow { get; init; } = TimeSpan.FromMinutes(10);

    public bool Verbose { get; init; }
}

public sealed record StormResult
{
    public required long FramesSent { get; init; }

    public required long FramesNotSent { get; init; }

    public required IReadOnlyDictionary<string, long> FramesByKind { get; init; }

    public required IReadOnlyDictionary<string, long> RepliesByCode { get; init; }

    public required IReadOnlyDictionary<string, long> ClosesByStatus { get; init; }

    public required int AttackerConnections { get; init; }

    public required TimeSpan StormDuration { get; init; }

    public required double[] BaselineLatencyMs { get; init; }

    public required double[] StormLatencyMs { get; init; }

    public required long ProbesSent { get; init; }

    public required long ProbesReceived { get; init; }

    public required long MeshSignalsLost { get; init; }

    public required int LegitClosed { get; init; }

    public required int LegitErrorFrames { get; init; }

    public required long LegitUndecodableFrames { get; init; }

    public required MemoryFigures Memory { get; init; }

    public required IReadOnlyList<string> Failures { get; init; }

    public long Lost => ProbesSent - ProbesReceived + MeshSignalsLost;

    public void Print(TextWriter output)
    {
        static string Join(IReadOnlyDictionary<string, long> counts) => string.Join(", ", counts.OrderByDescending(c => c.Value).Select(c => $"{c.Key} {c.Value}"));
        output.WriteLine($"storm: {FramesSent} malformed frames sent ({FramesNotSent} more could not be sent: socket already closed) by {AttackerConnections} attacker connections in {StormDuration.TotalSeconds:0.0} s");
        output.WriteLine($"  frames generated, by kind: {Join(FramesByKind)}");
        output.WriteLine($"  replies to attackers ({RepliesByCode.Values.Sum()}; the rest were read but not handled, the connection being closed): {Join(RepliesByCode)}");
        output.WriteLine($"  attacker connections closed by the server: {Join(ClosesByStatus)}");
        output.WriteLine($"legitimate room relay latency (ms), baseline: n {BaselineLatencyMs[4]:0}, p50 {BaselineLatencyMs[1]:0.00}, p99 {BaselineLatencyMs[2]:0.00}, max {BaselineLatencyMs[3]:0.00}");
        output.WriteLine($"legitimate room relay latency (ms), storm:    n {StormLatencyMs[4]:0}, p50 {StormLatencyMs[1]:0.00}, p99 {StormLatencyMs[2]:0.00}, max {StormLatencyMs[3]:0.00}");
        output.WriteLine($"legitimate signals: probes sent {ProbesSent}, received {ProbesReceived}; mesh signals lost {MeshSignalsLost}; lost in all {Lost}");
        output.WriteLine($"legitimate members closed: {LegitClosed}; error frames to them: {LegitErrorFrames}; insiders' signals relayed to them with escaped lone surrogates (undecodable by System.Text.Json): {LegitUndecodableFrames}");
        output.WriteLine($"host memory at the end: {Memory}");
        output.WriteLine(Failures.Count == 0 ? "PASS" : $"FAIL: {Failures.Count} failures");
        foreach (var failure in Failures.Take(20))
        {
            output.WriteLine("  " + failure);
        }
    }
}

/// <summary>
/// The malformed storm over real WebSockets: a legitimate room of <see cref="StormSettings.LegitMembers"/> keeps relaying
/// timestamped probe signals between its members while attacker connections (outsiders, each in its own room, flooding
/// past the rate limit; and members admitted into the victim room, sending under it) send malformed frames of every kind.
/// </summary>
public static class StormScenario
{
    public static async Task<StormResult> RunAsync(StormSettings settings, TextWriter log)
    {
        await using var host = settings.ChildProcessHost
            ? await SoakHost.StartChildProcessAsync(["--join-window", settings.JoinWindow.TotalSeconds.ToString(CultureInfo.InvariantCulture)])
            : await SoakHost.StartInProcessAsync(o => o.JoinWindow = settings.JoinWindow);
        log.WriteLine($"host: {host.BaseAddress} in {(host.InProcess ? "this process" : "child process " + host.ProcessId)}");
        using var http = LoadUser.NewHttpClient(host.BaseAddress);
        var failures = new List<string>();

        // The legitimate room, meshed.
        var legit = await SoakScenario.SetUpRoomAsync(http, 0, new SoakSettings { Members = settings.LegitMembers, Candidates = 3 });
        await SoakScenario.WaitUntilAsync(() => legit.All(m => m.MeshCompleteWith(legit)), DateTimeOffset.UtcNow.AddSeconds(30));
        if (!legit.All(m => m.MeshCompleteWith(legit)))
        {
            failures.Add("the legitimate mesh did not complete");
        }

        var probes = new Probes(legit);
        foreach (var member in legit)
        {
            member.Extra = probes.OnFrame;
        }

        var counts = new Counts();
        var victims = legit.Select(m => m.Id).ToArray();

        // Attackers inside the victim room: admitted members that send malformed frames under the rate limit.
        var inRoom = new List<Attacker>();
        for (var k = 0; k < settings.InRoomAttackers; k++)
        {
            var attacker = await Attacker.JoinAsync(http, $"insider{k}", legit[0].Ticket, counts);
            legit[0].Socket.Send($$$"""{"type":"admit","member":"{{{attacker.Id}}}"}""");
            await SoakScenario.WithTimeout(attacker.Admitted.Task, "insider admitted");
            inRoom.Add(attacker);
        }

        using var stop = new CancellationTokenSource();
        var probing = probes.RunAsync(settings.ProbeInterval, stop.Token);
        await Task.Delay(TimeSpan.FromSeconds(2)); // warm-up, not measured
        probes.Phase = 1;
        log.WriteLine($"baseline: probing the legitimate room for {settings.Baseline.TotalSeconds:0} s");
        await Task.Delay(settings.Baseline);

        probes.Phase = 2;
        var storm = Stopwatch.StartNew();
        log.WriteLine($"storm: {settings.Frames} frames, floods spread over {settings.Duration.TotalSeconds:0} s");
        using var stopInRoom = new CancellationTokenSource();
        var insiders = inRoom.Select((a, k) => a.SendPacedAsync(victims, k, settings.InRoomInterval, counts, stopInRoom.Token)).ToList();
        var outsiders = new List<Attacker>();
        using var gate = new SemaphoreSlim(settings.AttackersAtOnce);
        var running = new List<Task>();
        var n = 0;
        var every = settings.Duration / Math.Ceiling((double)settings.Frames / settings.FramesPerAttacker);
        // An outsider that ends early gives its unused frames back, and a closed socket does not send what was still
        // queued: launch more until the frames on the wire reach the budget.
        long OnTheWire()
        {
            lock (outsiders)
            {
                return outsiders.Concat(inRoom).Sum(a => a.Socket.Sent - a.Overhead);
            }
        }

        do
        {
            Interlocked.Exchange(ref counts.Generated, OnTheWire());
            while (Interlocked.Read(ref counts.Generated) < settings.Frames)
            {
                var due = every * n - storm.Elapsed;
                if (due > TimeSpan.Zero)
                {
                    await Task.Delay(due);
                }

                await gate.WaitAsync();
                var frames = (int)Math.Min(settings.FramesPerAttacker, settings.Frames - Interlocked.Read(ref counts.Generated));
                if (frames <= 0)
                {
                    gate.Release();
                    break;
                }

                Interlocked.Add(ref counts.Generated, frames);
                var index = n++;
                running.Add(Task.Run(async () =>
                {
                    try
                    {
                        var attacker = await Attacker.JoinAsync(http, $"outsider{index}", null, counts);
                        lock (outsiders)
                        {
                            outsiders.Add(attacker);
                        }

                        await attacker.FloodAsync(victims, index, frames, counts);
                    }
                    catch (Exception e)
                    {
                        lock (failures)
                        {
                            failures.Add($"outsider {index}: {e.GetType().Name}: {e.Message}");
                        }
                    }
                    finally
                    {
                        gate.Release();
                    }
                }));
            }

            await Task.WhenAll(running);
        }
        while (OnTheWire() < settings.Frames);
        await stopInRoom.CancelAsync();
        await Task.WhenAll(insiders);
        var stormDuration = storm.Elapsed;
        probes.Phase = 3;
        await stop.CancelAsync();
        await probing;
        log.WriteLine($"storm over in {stormDuration.TotalSeconds:0.0} s; waiting for the last probes");
        await SoakScenario.WaitUntilAsync(() => probes.Received >= probes.Sent, DateTimeOffset.UtcNow.AddSeconds(10));

        foreach (var attacker in outsiders.Concat(inRoom))
        {
            await attacker.Socket.FlushAsync(TimeSpan.FromSeconds(5));
        }

        var memory = await host.MemoryAsync(forceGc: false);
        if (settings.Verbose)
        {
            foreach (var attacker in outsiders.Concat(inRoom))
            {
                log.WriteLine($"  {attacker.Name}: sent {attacker.Socket.Sent}, not sent {attacker.Socket.SendFailures}, received {attacker.Socket.Received}, closed {attacker.Socket.Closed.IsCompleted} {(int?)attacker.Socket.CloseStatus} {attacker.Socket.CloseDescription}");
            }
        }

        // The checks on the legitimate room.
        var legitClosed = legit.Count(m => m.Socket.Closed.IsCompleted);
        var legitErrors = legit.Sum(m => m.Errors.Count);
        var legitIds = legit.Select(m => m.Id).ToHashSet(StringComparer.Ordinal);
        var undecodable = legit.Sum(m => m.Undecodable.Where(u => !legitIds.Contains(u.Key)).Sum(u => u.Value));
        foreach (var member in legit)
        {
            foreach (var (from, count) in member.Undecodable.Where(u => legitIds.Contains(u.Key)))
            {
                failures.Add($"legitimate {member.User.DisplayName} could not decode {count} signals from a legitimate peer {from}");
            }
        }
        long meshLost = 0;
        foreach (var member in legit)
        {
            foreach (var peer in legit.Where(p => p != member))
            {
                var mine = member.TallyOf(peer.Id);
                var theirs = peer.TallyOf(member.Id);
                meshLost += theirs.SentDescriptions + theirs.SentCandidates - mine.ReceivedDescriptions - mine.ReceivedCandidates;
            }

            if (member.Socket.Closed.IsCompleted)
            {
                failures.Add($"legitimate {member.User.DisplayName} was closed: {member.Socket.CloseStatus} {member.Socket.CloseDescription}");
            }

            foreach (var error in member.Errors.Take(3))
            {
                failures.Add($"legitimate {member.User.DisplayName} got {error}");
            }

            if (member.Socket.HandlerFailures > 0)
            {
                failures.Add($"legitimate {member.User.DisplayName} could not decode {member.Socket.HandlerFailures} frames, e.g. {member.Socket.LastHandlerFailure}");
            }
        }

        if (probes.Sent != probes.Received || meshLost != 0)
        {
            failures.Add($"legitimate signals lost: probes {probes.Sent - probes.Received}, mesh {meshLost}");
        }

        var sent = outsiders.Concat(inRoom).Sum(a => a.Socket.Sent - a.Overhead);
        var notSent = outsiders.Concat(inRoom).Sum(a => a.Socket.SendFailures);
        if (sent < settings.Frames * 9 / 10)
        {
            failures.Add($"only {sent} of {settings.Frames} frames reached the wire");
        }

        var result = new StormResult
        {
            FramesSent = sent,
            FramesNotSent = notSent,
            FramesByKind = counts.Kinds.ToDictionary(),
            RepliesByCode = counts.Replies.ToDictionary(),
            ClosesByStatus = outsiders.Concat(inRoom).Where(a => a.Socket.Closed.IsCompleted && !a.Socket.ClosedByClient)
                .GroupBy(a => a.Socket.CloseStatus is null ? "no close frame (connection reset)" : $"{(int)a.Socket.CloseStatus} {a.Socket.CloseDescription}".Trim())
                .ToDictionary(g => g.Key, g => (long)g.Count()),
            AttackerConnections = outsiders.Count + inRoom.Count,
            StormDuration = stormDuration,
            BaselineLatencyMs = probes.Latency(1),
            StormLatencyMs = probes.Latency(2),
            ProbesSent = probes.Sent,
            ProbesReceived = probes.Received,
            MeshSignalsLost = meshLost,
            LegitClosed = legitClosed,
            LegitErrorFrames = legitErrors,
            LegitUndecodableFrames = undecodable,
            Memory = memory,
            Failures = failures,
        };

        foreach (var attacker in outsiders.Concat(inRoom))
        {
            await attacker.Socket.DisposeAsync();
        }

        foreach (var member in legit)
        {
            await member.Socket.DisposeAsync();
        }

        return result;
    }

    /// <summary>The shared counters of the storm.</summary>
    private sealed class Counts
    {
        public readonly ConcurrentDictionary<string, long> Kinds = new(StringComparer.Ordinal);
        public readonly ConcurrentDictionary<string, long> Replies = new(StringComparer.Ordinal);
        public long Generated;

        public void Kind(string kind) => Kinds.AddOrUpdate(kind, 1, (_, c) => c + 1);

        public void Reply(string code) => Replies.AddOrUpdate(code, 1, (_, c) => c + 1);
    }

    /// <summary>Timestamped probe signals between the legitimate members: latency per phase, sent and received per pair.</summary>
    private sealed class Probes(List<MeshMember> members)
    {
        private readonly List<double>[] _latencies = [[], [], [], []];
        private long _sent;
        private long _received;

        public volatile int Phase;

        public long Sent => Interlocked.Read(ref _sent);

        public long Received => Interlocked.Read(ref _received);

        public double[] Latency(int phase)
        {
            lock (_latencies)
            {
                return [.. Stats.Summary(_latencies[phase]), _latencies[phase].Count];
            }
        }

        public async Task RunAsync(TimeSpan interval, CancellationToken cancellationToken)
        {
            var round = 0L;
            using var timer = new PeriodicTimer(interval);
            try
            {
                while (await timer.WaitForNextTickAsync(cancellationToken))
                {
                    round++;
                    for (var i = 0; i < members.Count; i++)
                    {
                        var from = members[i];
                        var to = members[(int)((i + 1 + (round % (members.Count - 1))) % members.Count)];
                        var epoch = from.EpochOf(to.Id);
                        Interlocked.Increment(ref _sent);
                        from.Socket.Send($$$"""{"type":"signal","to":"{{{to.Id}}}","toEpoch":{{{epoch}}},"candidates":[{"candidate":"probe {{{Phase}}} {{{round}}} {{{Stopwatch.GetTimestamp()}}}"}]}""");
                    }
                }
            }
            catch (OperationCanceledException)
            {
            }
        }

        public void OnFrame(MeshMember member, LoadFrame frame)
        {
            if (frame.Type != "signal")
            {
                return;
            }

            var text = frame.Root.GetProperty("candidates")[0].GetProperty("candidate").GetString()!;
            if (!text.StartsWith("probe ", StringComparison.Ordinal))
            {
                return; // an insider's mesh signal, not ours
            }

            var parts = text.Split(' ');
            var phase = int.Parse(parts[1], CultureInfo.InvariantCulture);
            var sentAt = long.Parse(parts[3], CultureInfo.InvariantCulture);
            Interlocked.Increment(ref _received);
            lock (_latencies)
            {
                _latencies[phase].Add((frame.Timestamp - sentAt) * 1000.0 / Stopwatch.Frequency);
            }
        }
    }

    /// <summary>An attacker connection: says hello, then sends malformed frames; counts the replies by error code.</summary>
    private sealed class Attacker
    {
        private const int ShortFlood = 150;

        private static readonly string Pad = new('x', 40 * 1024);

        /// <summary>A ping whose id is a lone surrogate encoded as UTF-8 would encode it (CESU-8): not valid UTF-8.</summary>
        private static readonly byte[] InvalidUtf8 = [.. Encoding.ASCII.GetBytes("{\"type\":\"ping\",\"id\":\""), 0xED, 0xA0, 0x80, .. Encoding.ASCII.GetBytes("\"}")];

        private Attacker(Http.TicketResponse ticket, string name)
        {
            Id = ticket.Member.ToString();
            Name = name;
        }

        public string Name { get; }

        public string Id { get; }

        public LoadSocket Socket { get; private set; } = null!;

        public TaskCompletionSource Admitted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>Gets the frames sent that were not part of the storm (the hello).</summary>
        public int Overhead => 1;

        public static async Task<Attacker> JoinAsync(HttpClient http, string name, Http.TicketResponse? room, Counts counts)
        {
            var user = new LoadUser(http, name);
            await user.SignInAsync();
            var ticket = room is null ? await user.CreateRoomAsync() : await user.JoinAsync(room.Room);
            var attacker = new Attacker(ticket, name);
            var welcome = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            attacker.Socket = await LoadSocket.ConnectAsync(ticket.WebSocketUrl, (_, frame) =>
            {
                switch (frame.Type)
                {
                    case "welcome":
                        welcome.TrySetResult();
                        break;
                    case "admitted":
                        attacker.Admitted.TrySetResult();
                        break;
                    case "error":
                        counts.Reply(frame.Root.GetProperty("code").GetString()!);
                        break;
                    case "pong":
                        counts.Reply("pong");
                        break;
                    default:
                        break; // connect_to_peer and the legitimate members' mesh signals: an attacker ignores them
                }
            });
            attacker.Socket.Send("""{"type":"hello","version":1}""");
            await SoakScenario.WithTimeout(welcome.Task, "attacker welcome");
            return attacker;
        }

        /// <summary>
        /// As fast as it can: past the burst, refused with rate_limited, then closed (1008). One in three instead ends
        /// after <see cref="ShortFlood"/> frames (within the burst) with a binary frame (closed 1003), one in three with
        /// a text frame that is not valid UTF-8 (the WebSocket layer fails the connection, 1007); their unused frames
        /// go back to the storm's budget.
        /// </summary>
        public async Task FloodAsync(string[] victims, int index, int frames, Counts counts)
        {
            var ending = index % 3;
            var length = ending == 2 ? frames : Math.Min(frames, ShortFlood + 1);
            Interlocked.Add(ref counts.Generated, length - frames);
            for (var i = 0; i < length; i++)
            {
                var last = i == length - 1;
                var (bytes, type, kind) = last && ending == 0 ? ([1, 2, 3], WebSocketMessageType.Binary, "binary")
                    : last && ending == 1 ? (InvalidUtf8, WebSocketMessageType.Text, "invalid UTF-8 (CESU lone surrogate)")
                    : Malformed(victims, index, i, inRoom: false);
                counts.Kind(kind);
                Socket.Send(bytes, type);
            }

            await Socket.FlushAsync(TimeSpan.FromSeconds(30));
            await Task.WhenAny(Socket.Closed, Task.Delay(TimeSpan.FromSeconds(2)));
        }

        /// <summary>Under the rate limit, until stopped: the member stays in the victim room all through the storm.</summary>
        public async Task SendPacedAsync(string[] victims, int index, TimeSpan interval, Counts counts, CancellationToken cancellationToken)
        {
            using var timer = new PeriodicTimer(interval);
            var i = 0;
            try
            {
                while (await timer.WaitForNextTickAsync(cancellationToken))
                {
                    var (bytes, type, kind) = Malformed(victims, index, i++, inRoom: true);
                    counts.Kind(kind);
                    Interlocked.Increment(ref counts.Generated);
                    Socket.Send(bytes, type);
                }
            }
            catch (OperationCanceledException)
            {
            }
        }

        private static (byte[] Bytes, WebSocketMessageType Type, string Kind) Malformed(string[] victims, int attacker, int i, bool inRoom)
        {
            var victim = victims[(attacker + i) % victims.Length];
            var stranger = MemberId.New();
            string json;
            string kind;
            switch (i % 20)
            {
                case 0:
                    (json, kind) = ($$$"""{"type":"ping","id":"big","pad":"{{{Pad}}}"}""", "oversized (40 KiB)");
                    break;
                case 1 or 2 or 3 or 4:
                    json = (i / 20 % 5) switch
                    {
                        0 => "{not json",
                        1 => """{"type":"signal","to":""",
                        2 => "[]",
                        3 => "\"hello\"",
                        _ => """{"type":"ping"}}""",
                    };
                    kind = "invalid JSON";
                    break;
                case 5 or 6 or 7:
                    json = (i / 20 % 4) switch
                    {
                        0 => """{"type":"warp","id":"w"}""",
                        1 => """{"type":""}""",
                        2 => """{"type":42}""",
                        _ => """{"id":"no-type"}""",
                    };
                    kind = "unknown or missing type";
                    break;
                case 8 or 9 or 10 or 11 or 12 or 13:
                    json = inRoom
                        ? (i % 3) switch
                        {
                            0 => $$$"""{"type":"signal","id":"s{{{i}}}","to":"{{{stranger}}}","description":{"type":"offer","sdp":"to nobody"}}""",
                            1 => $$$"""{"type":"admit","id":"a{{{i}}}","member":"{{{victim}}}"}""",
                            _ => $$$"""{"type":"signal","id":"e{{{i}}}","to":"{{{victim}}}","toEpoch":999,"candidates":[{"candidate":"stale"}]}""",
                        }
                        : (i % 3) switch
                        {
                            0 => $$$"""{"type":"signal","id":"s{{{i}}}","to":"{{{victim}}}","description":{"type":"offer","sdp":"intrusion"}}""",
                            1 => $$$"""{"type":"admit","id":"a{{{i}}}","member":"{{{victim}}}"}""",
                            _ => $$$"""{"type":"deny","id":"d{{{i}}}","member":"{{{victim}}}"}""",
                        };
                    kind = inRoom ? "wrong member (in the room)" : "wrong member (other room)";
                    break;
                case 14 or 15 or 16:
                    json = (i / 20 % 4) switch
                    {
                        0 => """{"type":"ping","id":"\ud800"}""",
                        1 => """{"type":"\udc00"}""",
                        2 => $$$"""{"type":"signal","to":"{{{victim}}}","candidates":[{"candidate":"x\ud800y"}]}""",
                        _ => $$$"""{"type":"signal","to":"{{{victim}}}","description":{"type":"offer","sdp":"v=0 \udfff"}}""",
                    };
                    kind = "lone surrogate (escaped)";
                    break;
                default:
                    json = (i % 3) switch
                    {
                        0 => """{"type":"signal"}""",
                        1 => $$$"""{"type":"signal","to":"{{{victim}}}","description":{"type":"bogus","sdp":1}}""",
                        _ => $$$"""{"type":"admit","member":"not-an-id"}""",
                    };
                    kind = "invalid fields";
                    break;
            }

            return (Encoding.UTF8.GetBytes(json), WebSocketMessageType.Text, kind);
        }
    }
}
