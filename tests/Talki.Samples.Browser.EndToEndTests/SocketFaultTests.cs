using System.Diagnostics;
using System.Text.Json;
using Microsoft.Playwright;
using Talki.Samples.Browser.EndToEndTests.Harness;
using Xunit.Abstractions;

namespace Talki.Samples.Browser.EndToEndTests;

/// <summary>
/// The fault matrix in Chromium: a member's signalling WebSocket killed from outside the app while a newcomer is
/// still linking up. Bea's page's <c>/talki/ws</c> sockets are routed through Playwright
/// (<see cref="IPage.RouteWebSocketAsync(Func{string, bool}, Action{IWebSocketRoute})"/>, installed before she joins), so
/// the test holds both ends of her first socket and can drop it: her page sees a close with code 1006 (abnormal
/// closure, what a browser reports when the connection is lost without a closing handshake; the routing API delivers it
/// without a close frame ever reaching the page) and the server's end is closed at the same moment (the server notices
/// the drop as it would a reset connection, just sooner than its idle timeout). Before the kill her first socket goes
/// silent both ways, as a connection that died without either end noticing: from the moment Ada admits Cyd nothing crosses
/// it, and the kill comes once the server has relayed Cyd's first offer into it (so the server saw that write succeed and
/// queued nothing). Only <c>peer_resumed</c> brings the offer back: Cyd sends it again. Expected: Bea reconnects by herself with
/// a fresh ticket and resumes her epoch (no new admission prompt, no RTCPeerConnection replaced on any page), the
/// three-way mesh completes with media on every link, nobody is denied or left, and Ada's and Cyd's signalling stays
/// connected throughout.
/// One host and one browser for the class, as the other classes; nothing asserts a duration.
/// </summary>
public sealed class SocketFaultTests(ITestOutputHelper output)
{
    private static readonly TimeSpan PageTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan MeshTimeout = TimeSpan.FromSeconds(90);
    private static readonly TimeSpan SampleGap = TimeSpan.FromSeconds(2);

    /// <summary>Resolves with the page's <c>Date.now()</c> as soon as its <c>call-state</c> says <c>Admitted</c>.</summary>
    private const string WhenAdmitted = """
        () => new Promise(resolve => {
          const check = () => {
            const el = document.querySelector('[data-testid="call-state"]');
            if (el && el.getAttribute('data-state') === 'Admitted') { observer.disconnect(); resolve(Date.now()); }
          };
          const observer = new MutationObserver(check);
          observer.observe(document.documentElement, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-state'] });
          check();
        })
        """;

    private readonly List<string> _log = [];
    private readonly Stopwatch _clock = Stopwatch.StartNew();

    [Fact]
    public async Task MemberSocketKilledWhileANewcomerLinksUp_ReconnectsWithoutANewApproval_MeshCompletes_NobodyEvicted()
    {
        var screenshots = Path.Combine(RepositoryLayout.Artifacts, "screenshots");
        Directory.CreateDirectory(screenshots);
        foreach (var stale in Directory.EnumerateFiles(screenshots, "kill-*.png"))
        {
            File.Delete(stale); // this scenario's screenshots replace the previous run's
        }

        await using var host = await SampleHost.StartAsync(TimeSpan.FromSeconds(300));
        Log($"sample host on {host.BaseAddress}; artifacts {RepositoryLayout.Artifacts}");
        await using var chromium = await Chromium.LaunchAsync(host.BaseAddress, Log);
        var ada = await chromium.NewUserAsync("Ada");
        var bea = await chromium.NewUserAsync("Bea");
        var cyd = await chromium.NewUserAsync("Cyd");
        TalkiUser[] members = [ada, bea, cyd];

        // Every /talki/ws socket of Bea's page goes through the test, connected to the real server.
        // The first one forwards by hand, so that it can go silent (a handler on a side stops Playwright's own forwarding
        // of what that side sends: https://playwright.dev/dotnet/docs/api/class-websocketroute#web-socket-route-on-message).
        var routes = new List<(IWebSocketRoute Page, IWebSocketRoute Server)>();
        var urls = new List<string>();
        var silent = false;
        var swallowed = new List<(string Direction, string Text)>();
        await bea.Page.RouteWebSocketAsync(url => url.Contains("/talki/ws", StringComparison.Ordinal), ws =>
        {
            var server = ws.ConnectToServer();
            lock (routes)
            {
                routes.Add((ws, server));
                urls.Add(ws.Url);
                Log($"Bea's page opens signalling socket #{routes.Count}: {Redact(ws.Url)}");
                if (routes.Count == 1)
                {
                    server.OnMessage(frame => Forward(frame, ws, "server → Bea"));
                    ws.OnMessage(frame => Forward(frame, server, "Bea → server"));
                }
            }
        });

        void Forward(IWebSocketFrame frame, IWebSocketRoute to, string direction)
        {
            lock (swallowed)
            {
                if (silent)
                {
                    swallowed.Add((direction, frame.Text ?? string.Empty));
                    return;
                }
            }

            if (frame.Text is { } text)
            {
                to.Send(text);
            }
            else if (frame.Binary is { } binary)
            {
                to.Send(binary);
            }
        }

        try
        {
            await ada.OpenAsync("/");
            var link = await ada.CreateRoomAsync(PageTimeout);
            Log($"room link: {link}");
            await ScreenshotAsync("kill-01-room-created", [ada]);

            await Task.WhenAll(bea.JoinAsync(link, PageTimeout), cyd.JoinAsync(link, PageTimeout));
            await Poll.UntilAsync("Ada sees admission requests from Bea and Cyd", PageTimeout, async () =>
            {
                var requests = await ada.AdmissionRequestsAsync();
                return requests.Contains("Bea") && requests.Contains("Cyd") ? null : $"requests: [{string.Join(", ", requests)}]";
            });
            await ScreenshotAsync("kill-02-knocking", members);

            // Bea first: Ada and Bea in a call with media flowing.
            await ada.AdmitAsync("Bea");
            await bea.WaitForStateAsync(PageTimeout, "Admitted");
            var pair = (IReadOnlyList<TalkiUser>)[ada, bea];
            var pairIds = await Mesh.MemberIdsAsync(pair, PageTimeout);
            await Mesh.WaitUntilConnectedAsync(pair, pairIds, MeshTimeout);
            await Mesh.WaitUntilBytesGrowAsync(pair, pairIds, MeshTimeout, SampleGap, Log);
            Assert.Single(routes);
            await ScreenshotAsync("kill-03-ada-and-bea", members);

            foreach (var member in members)
            {
                await CallObservation.RecordCallStatesAsync(member);
            }

            var adaLinksBefore = await ada.LinksAsync();
            Log("Ada's links before the kill: " + string.Join("; ", adaLinksBefore));

            // Bea's socket goes silent, then Cyd is admitted (a click inside Ada's page). Once the server has relayed Cyd's
            // first offer into the silent socket, it dies: Cyd's links to Ada and Bea are still being negotiated.
            lock (swallowed)
            {
                silent = true;
            }

            var cydAdmitted = cyd.Page.EvaluateAsync<double>(WhenAdmitted);
            var admittedCydAt = await ada.AdmitTimedAsync("Cyd", PageTimeout);
            var cydAdmittedAt = await cydAdmitted.WaitAsync(PageTimeout);
            await Poll.UntilAsync("the server relayed Cyd's first offer into Bea's silent socket", PageTimeout, () =>
            {
                lock (swallowed)
                {
                    return Task.FromResult<string?>(swallowed.Any(f => f.Direction == "server → Bea" && f.Text.Contains("\"type\":\"signal\"", StringComparison.Ordinal) && f.Text.Contains("\"link\"", StringComparison.Ordinal))
                        ? null
                        : $"swallowed {swallowed.Count} frame(s)");
                }
            }, TimeSpan.FromMilliseconds(20));
            lock (swallowed)
            {
                Log($"swallowed by Bea's silent socket: {string.Join(", ", swallowed.Select(f => $"{f.Direction} {TypeOf(f.Text)}"))}");
            }

            var (pageSide, serverSide) = routes[0];
            pageSide.OnClose((code, reason) => Log($"Bea's page closed socket #1 ({code} {reason})"));
            serverSide.OnClose((code, reason) => Log($"the server's end of Bea's socket #1 closed ({code} {reason})"));
            var killedAtMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            await Task.WhenAll(
                pageSide.CloseAsync(new() { Code = 1006, Reason = "e2e: network drop" }),
                serverSide.CloseAsync());
            var killedAt = _clock.Elapsed;
            Log($"killed Bea's silent signalling socket #1 (page: 1006, server: closed) {killedAtMs - admittedCydAt:0} ms after Ada clicked admit for Cyd, {killedAtMs - cydAdmittedAt:0} ms after Cyd's page said Admitted");

            // Right after the kill: which links had connected before it (the hook's connectedAt is the page's Date.now()).
            var atKill = await SnapshotAsync(members, killedAtMs);
            Log("right after the kill: " + atKill);
            // The scenario needs the link between Cyd and Bea (whose socket dies) still negotiating; Cyd's link to Ada may
            // already be up on a fast run.
            var cydToBeaBeforeKill = (await cyd.LinksAsync()).Count(l => l.Peer == pairIds[bea] && l.ConnectedAt is { } at && at <= killedAtMs);
            Assert.True(cydToBeaBeforeKill == 0, $"the kill came too late: Cyd's link to Bea had connected before it ({atKill})");
            await ScreenshotAsync("kill-04-socket-killed", members);

            // Bea reconnects by herself (a new socket through the route), approved already: no prompt at Ada, never Waiting.
            await Poll.UntilAsync("Bea's page reconnected on a new socket, admitted", MeshTimeout, async () =>
            {
                var requests = await ada.AdmissionRequestsAsync();
                Assert.True(requests.Count == 0, $"Ada was asked to admit [{string.Join(", ", requests)}] after Bea's socket dropped");
                var state = await bea.CallStateAsync();
                int sockets;
                lock (routes)
                {
                    sockets = routes.Count;
                }

                return sockets >= 2 && state is { State: "Admitted", Signalling: "open" } ? null : $"{sockets} socket(s), Bea {state}";
            }, TimeSpan.FromMilliseconds(200));
            Log($"Bea reconnected {(_clock.Elapsed - killedAt).TotalSeconds:0.0}s after the kill");
            await ScreenshotAsync("kill-05-bea-reconnected", members);

            var ids = await Mesh.MemberIdsAsync(members, PageTimeout);
            Log("member ids: " + string.Join(", ", ids.Select(p => $"{p.Key.Name}={p.Value}")));
            Assert.Equal(pairIds[bea], ids[bea]);
            await Mesh.WaitUntilConnectedAsync(members, ids, MeshTimeout);
            Log($"full mesh connected {(_clock.Elapsed - killedAt).TotalSeconds:0.0}s after the kill");
            await Mesh.WaitUntilBytesGrowAsync(members, ids, MeshTimeout, SampleGap, Log);
            Log("links after: " + await SnapshotAsync(members, killedAtMs));

            // Nobody evicted: Ada and Cyd were connected and admitted on every transition since before the kill; Bea only
            // went through Reconnecting; nobody was ever Waiting, Denied or Left, and no page shows the denied screen.
            var histories = new Dictionary<TalkiUser, IReadOnlyList<string>>();
            foreach (var member in members)
            {
                var history = await CallStateHistoryAsync(member);
                histories[member] = [.. history.Select(h => h.Entry)];
                Log($"{member.Name}'s call-state since before the kill: {string.Join(" → ", history.Select(h => $"{h.Entry} ({h.At - killedAtMs:+0;-0} ms)"))}");
                Assert.False(await member.Page.GetByTestId("denied").IsVisibleAsync(), $"{member.Name}'s page shows the denied screen");
                var state = await member.CallStateAsync();
                Assert.True(state is { State: "Admitted", Signalling: "open" }, $"{member.Name}'s call-state at the end: {state}");
            }

            Assert.Equal(["Admitted/Connected"], histories[ada]);
            Assert.Equal(["Waiting/Connected", "Admitted/Connected"], histories[cyd].Distinct());
            Assert.All(histories[bea], entry => Assert.Contains(entry, (string[])["Admitted/Connected", "Admitted/Reconnecting"]));
            Assert.Contains("Admitted/Reconnecting", histories[bea]);
            Assert.Equal("Admitted/Connected", histories[bea][^1]);
            Assert.Empty(await ada.AdmissionRequestsAsync());

            // Bea resumed her epoch: her second socket asked for it, and no page replaced an RTCPeerConnection (each page
            // created exactly one per peer), although Cyd's links to her were still being negotiated at the kill.
            lock (routes)
            {
                Assert.Contains("resume=", urls[1], StringComparison.Ordinal);
            }

            foreach (var member in members)
            {
                var connections = await member.PeerConnectionIceAsync();
                Log($"{member.Name}'s RTCPeerConnections: {string.Join("; ", connections)}");
                Assert.Equal(2, connections.Count);
            }

            await ScreenshotAsync("kill-06-mesh-complete", members);
        }
        catch (Exception e)
        {
            Log($"failed: {e.Message}");
            foreach (var member in members.Where(u => !u.Page.IsClosed))
            {
                Log("  " + await member.DescribeAsync());
                await TryLogAsync(async () => Log($"    links: {string.Join("; ", await member.LinksAsync())}"));
                await TryLogAsync(async () => Log($"    call-state history: {string.Join(" → ", (await CallStateHistoryAsync(member)).Select(h => $"{h.Entry} at {h.At:0}"))}"));
                await TryLogAsync(async () =>
                {
                    foreach (var connection in await member.PeerConnectionIceAsync())
                    {
                        Log($"    RTCPeerConnection {connection}");
                    }
                });
            }

            await ScreenshotAsync("kill-failure", members);
            Log("host output (tail):" + Environment.NewLine + string.Join(Environment.NewLine, host.Output.Split(Environment.NewLine).TakeLast(60)));
            foreach (var member in members)
            {
                Log($"{member.Name}'s console (tail):" + Environment.NewLine + string.Join(Environment.NewLine, member.ConsoleLog.Split(Environment.NewLine).TakeLast(40)));
            }

            throw;
        }
        finally
        {
            foreach (var member in members)
            {
                await File.WriteAllTextAsync(Path.Combine(RepositoryLayout.Artifacts, $"socket-fault-console-{member.Name}.log"), member.ConsoleLog);
            }

            await File.WriteAllTextAsync(Path.Combine(RepositoryLayout.Artifacts, "socket-fault-host.log"), host.Output);
            lock (_log)
            {
                File.WriteAllLines(Path.Combine(RepositoryLayout.Artifacts, "socket-fault.log"), _log);
            }
        }
    }

    /// <summary>Every page's call-state and links (peer@epoch state/ice/signalling, bytes, when connected relative to the kill), on one line.</summary>
    private static async Task<string> SnapshotAsync(IEnumerable<TalkiUser> users, long killedAtMs)
    {
        var parts = new List<string>();
        foreach (var user in users)
        {
            var links = (await user.LinksAsync()).Select(l => $"{l} connectedAt={(l.ConnectedAt is { } at ? $"{at - killedAtMs:+0;-0} ms" : "-")}");
            parts.Add($"{user.Name} {await user.CallStateAsync()}: [{string.Join("; ", links)}]");
        }

        return string.Join(" | ", parts);
    }

    private static async Task<IReadOnlyList<(string Entry, double At)>> CallStateHistoryAsync(TalkiUser user)
        => [.. (await CallObservation.TimedCallStateHistoryAsync(user)).Select(h => (h.Entry, h.At))];

    private static string TypeOf(string json)
    {
        try
        {
            using var document = JsonDocument.Parse(json);
            return document.RootElement.TryGetProperty("type", out var type) ? type.GetString() ?? "?" : "?";
        }
        catch (JsonException)
        {
            return "?";
        }
    }

    /// <summary>The socket URL without its ticket.</summary>
    private static string Redact(string url) => url.Split('?')[0];

    private static async Task TryLogAsync(Func<Task> action)
    {
        try
        {
            await action();
        }
        catch (Exception e) when (e is PlaywrightException or InvalidOperationException or JsonException)
        {
            // The page is gone or has no hook: the rest of the report still helps.
        }
    }

    private async Task ScreenshotAsync(string moment, IEnumerable<TalkiUser> users)
    {
        foreach (var user in users.Where(u => !u.Page.IsClosed))
        {
            try
            {
                Log($"screenshot: {await user.ScreenshotAsync(moment)}");
            }
            catch (Exception e) when (e is PlaywrightException or TimeoutException)
            {
                Log($"screenshot of {user.Name} at {moment} failed: {e.Message}");
            }
        }
    }

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
}
