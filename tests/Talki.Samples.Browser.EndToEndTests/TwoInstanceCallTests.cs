using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using StackExchange.Redis;
using Talki.Samples.Browser.EndToEndTests.Harness;
using Talki.Signalling.Server.IntegrationTests.Sessions;
using Xunit.Abstractions;

namespace Talki.Samples.Browser.EndToEndTests;

/// <summary>
/// The self-hosted scale-out on Redis with real processes, in Chromium: one <c>redis-server</c> on 127.0.0.1 (the server
/// integration tests' <see cref="RedisServerFixture"/>, linked), two sample hosts (<c>--Talki:Redis</c>, one key prefix
/// per run) and, in front of them, two TCP forwarders standing for a load balancer (<see cref="TcpFront"/>): front 1
/// sends every connection to instance 1, or to instance 2 when instance 1 refuses it; front 2 the other way round. Ada
/// and Bea load the app from front 1, Cyd from front 2 (the ticket's WebSocket URL follows the request's <c>Host</c>, so
/// each page's socket goes through its own front). Ada creates a room, Bea and Cyd knock and are admitted, the mesh
/// connects with growing media; Redis shows Ada's and Bea's sockets registered by instance 1 and Cyd's by instance 2.
/// Then instance 2 is killed (SIGKILL: its sockets die with it, nothing is unregistered). Proven: Cyd's page reconnects
/// through front 2, which now falls back to instance 1, asking to resume; instance 1 resumes her epoch (her member record
/// still names the dead socket, whose registration has not expired: the test does not wait for it); no page creates,
/// replaces or ICE-restarts an RTCPeerConnection, Ada and Bea never leave <c>Admitted/Connected</c>, and inbound bytes
/// keep growing on every link. Audio only (the two cores encode no video). Durations are reported, never asserted.
/// </summary>
public sealed partial class TwoInstanceCallTests(RedisServerFixture redis, ITestOutputHelper output) : IClassFixture<RedisServerFixture>
{
    private static readonly TimeSpan PageTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan MeshTimeout = TimeSpan.FromSeconds(90);
    private static readonly TimeSpan Window = TimeSpan.FromSeconds(5);

    private readonly List<string> _log = [];
    private readonly Stopwatch _clock = Stopwatch.StartNew();

    [Fact]
    public async Task InstanceHoldingCydsSocketKilledMidCall_CydResumesThroughTheOtherInstance_NoPeerConnectionReplaced_MediaFlows()
    {
        var prefix = $"e2e-{Guid.NewGuid():N}:";
        var settings = new Dictionary<string, string> { ["Talki:Redis"] = redis.Configuration, ["Talki:RedisKeyPrefix"] = prefix };
        Log($"redis-server on 127.0.0.1:{redis.Port}, key prefix {prefix}");
        await using var instance1 = await SampleHost.StartAsync(TimeSpan.FromSeconds(300), settings);
        await using var instance2 = await SampleHost.StartAsync(TimeSpan.FromSeconds(300), settings);
        var instanceIds = new[] { await BackplaneInstanceIdAsync(instance1), await BackplaneInstanceIdAsync(instance2) };
        Log($"instance 1: 127.0.0.1:{instance1.Port}, backplane id {instanceIds[0]}; instance 2: 127.0.0.1:{instance2.Port}, backplane id {instanceIds[1]}");
        await using var front1 = TcpFront.Start("front 1", instance1.Port, instance2.Port, Log);
        await using var front2 = TcpFront.Start("front 2", instance2.Port, instance1.Port, Log);
        await using var chromium = await Chromium.LaunchAsync(front1.BaseAddress, Log);
        var ada = await chromium.NewUserAsync("Ada", MediaScripts.AudioOnly);
        var bea = await chromium.NewUserAsync("Bea", MediaScripts.AudioOnly);
        var cyd = await chromium.NewUserAsync("Cyd", MediaScripts.AudioOnly with { BaseAddress = front2.BaseAddress });
        TalkiUser[] trio = [ada, bea, cyd];
        var sockets = new ConcurrentQueue<(string User, double At, string Url)>();
        foreach (var user in trio)
        {
            user.Page.WebSocket += (_, ws) =>
            {
                sockets.Enqueue((user.Name, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), ws.Url));
                Log($"{user.Name}'s page opens a socket to {Redact(ws.Url)}");
                ws.Close += (_, _) => Log($"{user.Name}'s socket to {Redact(ws.Url)} closed");
            };
        }

        var figures = new StringBuilder();
        try
        {
            await ada.OpenAsync("/");
            var link = await ada.CreateRoomAsync(PageTimeout);
            var room = link.Segments[^1].TrimEnd('/');
            var cydLink = new Uri(front2.BaseAddress, link.PathAndQuery);
            Log($"room {room}: Ada and Bea through {link}, Cyd through {cydLink}");
            await Task.WhenAll(bea.JoinAsync(link, PageTimeout), cyd.JoinAsync(cydLink, PageTimeout));
            await Poll.UntilAsync("Ada sees Bea and Cyd knock", PageTimeout, async () =>
            {
                var requests = await ada.AdmissionRequestsAsync();
                return requests.Contains("Bea") && requests.Contains("Cyd") ? null : $"requests: [{string.Join(", ", requests)}]";
            });
            await ada.AdmitAsync("Bea");
            await ada.AdmitAsync("Cyd");
            var ids = await Mesh.MemberIdsAsync(trio, PageTimeout);
            await Mesh.WaitUntilConnectedAsync(trio, ids, MeshTimeout, requireRenderingTiles: false);
            await Mesh.WaitUntilBytesGrowAsync(trio, ids, MeshTimeout, TimeSpan.FromSeconds(1), Log);

            // Which instance holds each socket: the member's connection id (room's members hash) → its registration.
            var before = await SocketsAsync(prefix, room, ids);
            Log("sockets before the kill: " + Describe(before, instanceIds));
            Log("registrations by instance: " + await RegistrationsByInstanceAsync(prefix, instanceIds));
            Assert.Equal(instanceIds[0], before[ada].Instance);
            Assert.Equal(instanceIds[0], before[bea].Instance);
            Assert.Equal(instanceIds[1], before[cyd].Instance);

            foreach (var user in trio)
            {
                await MediaSampler.StartAsync(user);
                await CallObservation.RecordCallStatesAsync(user);
            }

            var peerConnectionsBefore = await CallObservation.DescribePeerConnectionsAsync(trio);
            Log("peer connections before: " + peerConnectionsBefore);

            // Control: the same window with no kill.
            var controlStart = await MediaSampler.NowAsync(ada);
            await Task.Delay(Window);
            var controlEnd = await MediaSampler.NowAsync(ada);

            var killedAt = (double)DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            await instance2.KillAsync();
            Log("killed instance 2 (the process tree, SIGKILL)");

            await Poll.UntilAsync("Cyd reconnected asking to resume, and is in the call again", MeshTimeout, async () =>
            {
                var asked = sockets.Any(s => s.User == "Cyd" && s.At >= killedAt && s.Url.Contains("resume=", StringComparison.Ordinal));
                var state = await cyd.CallStateAsync();
                var history = await CallObservation.CallStateHistoryAsync(cyd);
                return asked && state is { State: "Admitted", Signalling: "open" } && history.Contains("Admitted/Reconnecting") && history[^1] == "Admitted/Connected"
                    ? null
                    : $"asked to resume: {asked}, {state}, call-state {string.Join(" → ", history)}";
            }, TimeSpan.FromMilliseconds(100));
            var cydHistory = await CallObservation.TimedCallStateHistoryAsync(cyd);
            var reconnecting = cydHistory.First(h => h.Entry == "Admitted/Reconnecting").At;
            var resumedAt = cydHistory.Last(h => h.Entry == "Admitted/Connected").At;
            await Task.Delay(Window);
            var afterEnd = await MediaSampler.NowAsync(ada);
            Log($"Cyd: Reconnecting {reconnecting - killedAt:0} ms after the kill, Connected again {resumedAt - killedAt:0} ms after it (page clock)");

            // Instance 1 resumed Cyd's epoch on a socket of its own.
            var after = await SocketsAsync(prefix, room, ids);
            Log("sockets after the kill: " + Describe(after, instanceIds));
            Assert.Equal(instanceIds[0], after[cyd].Instance);
            Assert.NotEqual(before[cyd].Connection, after[cyd].Connection);
            Assert.Equal(before[cyd].Epoch, after[cyd].Epoch);
            Assert.Equal(before[ada], after[ada]);
            Assert.Equal(before[bea], after[bea]);
            Assert.Matches($"Member {Regex.Escape(ids[cyd])} of room {Regex.Escape(room)} resumed epoch {before[cyd].Epoch}", instance1.Output);
            Assert.True(front2.ConnectionsByBackend.GetValueOrDefault(instance1.Port) > 0, "front 2 never fell back to instance 1");
            Log($"front 1 connections by backend port: {Describe(front1.ConnectionsByBackend)}; front 2: {Describe(front2.ConnectionsByBackend)}");

            // Nothing else noticed: the same RTCPeerConnections, Ada and Bea always connected, media through the kill.
            var peerConnectionsAfter = await CallObservation.DescribePeerConnectionsAsync(trio);
            Log("peer connections after: " + peerConnectionsAfter);
            Assert.Equal(peerConnectionsBefore, peerConnectionsAfter);
            foreach (var user in trio)
            {
                var history = await CallObservation.CallStateHistoryAsync(user);
                Log($"{user.Name}'s call-state: {string.Join(" → ", history)}");
                Assert.DoesNotContain(history, h => !h.StartsWith("Admitted/", StringComparison.Ordinal));
                if (user != cyd)
                {
                    Assert.Equal(["Admitted/Connected"], history);
                }
            }

            var gaps = await MediaSampler.GapsAsync(trio, controlStart, controlEnd, killedAt, afterEnd);
            figures.AppendLine(CultureInfo.InvariantCulture, $"kill of instance 2 (holding Cyd's socket) mid-call: Cyd Reconnecting after {reconnecting - killedAt:0} ms, resumed on instance 1 after {resumedAt - killedAt:0} ms (page clock)");
            foreach (var gap in gaps)
            {
                figures.AppendLine(gap.ToString());
                Log(gap.ToString());
            }

            Assert.DoesNotContain(gaps, g => !g.GrewThrough);
        }
        catch (Exception e)
        {
            Log($"failed: {e.Message}");
            foreach (var user in trio.Where(u => !u.Page.IsClosed))
            {
                Log("  " + await user.DescribeAsync());
                Log($"{user.Name}'s console (tail):" + Environment.NewLine + string.Join(Environment.NewLine, user.ConsoleLog.Split(Environment.NewLine).TakeLast(30)));
            }

            throw;
        }
        finally
        {
            Directory.CreateDirectory(RepositoryLayout.Artifacts);
            await File.WriteAllTextAsync(Path.Combine(RepositoryLayout.Artifacts, "two-instance-resume.txt"), figures.ToString());
            await File.WriteAllTextAsync(Path.Combine(RepositoryLayout.Artifacts, "two-instance-host-1.log"), instance1.Output);
            await File.WriteAllTextAsync(Path.Combine(RepositoryLayout.Artifacts, "two-instance-host-2.log"), instance2.Output);
            lock (_log)
            {
                File.WriteAllLines(Path.Combine(RepositoryLayout.Artifacts, "two-instance-resume.log"), _log);
            }
        }
    }

    /// <summary>The id the instance's push backplane logs when it subscribes to its channel (random per process).</summary>
    private static async Task<string> BackplaneInstanceIdAsync(SampleHost host)
    {
        string? id = null;
        await Poll.UntilAsync("the sample host logs its backplane instance id", TimeSpan.FromSeconds(30), () =>
        {
            id = BackplaneSubscribed().Match(host.Output) is { Success: true } match ? match.Groups[1].Value : null;
            return Task.FromResult(id is null ? "not logged yet" : null);
        });
        return id!;
    }

    /// <summary>For each user: its member's connection id and epoch (the room's <c>members</c> hash) and the instance id registered for that socket.</summary>
    private async Task<IReadOnlyDictionary<TalkiUser, MemberSocket>> SocketsAsync(string prefix, string room, IReadOnlyDictionary<TalkiUser, string> ids)
    {
        var db = redis.Client.GetDatabase();
        var members = await db.HashGetAllAsync($"{prefix}{{{room}}}:members");
        var byMember = new Dictionary<string, (string? Connection, long Epoch)>(StringComparer.Ordinal);
        foreach (var entry in members)
        {
            using var json = JsonDocument.Parse(entry.Value.ToString());
            var connection = json.RootElement.TryGetProperty("c", out var c) ? c.GetString() : null;
            byMember[entry.Name.ToString()] = (connection, json.RootElement.GetProperty("e").GetInt64());
        }

        var sockets = new Dictionary<TalkiUser, MemberSocket>();
        foreach (var (user, id) in ids)
        {
            var (connection, epoch) = byMember.TryGetValue(id, out var member) ? member : (null, -1);
            var instance = connection is null ? null : (string?)await db.StringGetAsync($"{prefix}socket:{connection}");
            sockets[user] = new MemberSocket(connection, epoch, instance);
        }

        return sockets;
    }

    /// <summary>How many socket registrations (<c>{prefix}socket:*</c>) each instance id has.</summary>
    private async Task<string> RegistrationsByInstanceAsync(string prefix, string[] instanceIds)
    {
        var db = redis.Client.GetDatabase();
        var server = redis.Client.GetServer(redis.Client.GetEndPoints()[0]);
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        await foreach (var key in server.KeysAsync(pattern: prefix + "socket:*"))
        {
            var owner = (string?)await db.StringGetAsync(key) ?? "(expired)";
            var name = Array.IndexOf(instanceIds, owner) is >= 0 and var i ? $"instance {i + 1}" : owner;
            counts[name] = counts.GetValueOrDefault(name) + 1;
        }

        return string.Join(", ", counts.OrderBy(c => c.Key, StringComparer.Ordinal).Select(c => $"{c.Key}: {c.Value}"));
    }

    private static string Describe(IReadOnlyDictionary<TalkiUser, MemberSocket> sockets, string[] instanceIds)
        => string.Join("; ", sockets.OrderBy(s => s.Key.Name, StringComparer.Ordinal).Select(s =>
            $"{s.Key.Name}: connection {s.Value.Connection} epoch {s.Value.Epoch} held by {(s.Value.Instance is { } id && Array.IndexOf(instanceIds, id) is >= 0 and var i ? $"instance {i + 1}" : s.Value.Instance ?? "nobody")}"));

    private static string Describe(IReadOnlyDictionary<int, int> byPort)
        => string.Join(", ", byPort.OrderBy(p => p.Key).Select(p => $"{p.Key}: {p.Value}"));

    /// <summary>A socket URL without its one-time ticket.</summary>
    private static string Redact(string url) => TicketParameter().Replace(url, "ticket=…");

    private void Log(string line)
    {
        var stamped = $"{DateTime.Now:HH:mm:ss.fff} +{_clock.Elapsed.TotalSeconds:0.000}s {line}";
        lock (_log)
        {
            _log.Add(stamped);
        }

        try
        {
            output.WriteLine(stamped);
        }
        catch (InvalidOperationException)
        {
            // The test has finished.
        }
    }

    [GeneratedRegex(@"Backplane instance (\S+) listens on its Redis channel")]
    private static partial Regex BackplaneSubscribed();

    [GeneratedRegex(@"ticket=[^&]*")]
    private static partial Regex TicketParameter();

    private sealed record MemberSocket(string? Connection, long Epoch, string? Instance);
}
