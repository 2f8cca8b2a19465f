using System.Diagnostics;
using System.Globalization;
using System.Text;
using Microsoft.Playwright;
using Talki.Samples.Browser.EndToEndTests.Harness;
using Xunit.Abstractions;

namespace Talki.Samples.Browser.EndToEndTests;

/// <summary>
/// Resume in Chromium. Bea's and Ada's <c>/talki/ws</c> sockets go through the test (Playwright's WebSocket routing, as in
/// <see cref="SocketFaultTests"/>): a kill closes the server's end and drops the page's end with 1006, as a lost network
/// would. Every page samples each RTCPeerConnection's inbound-rtp <c>bytesReceived</c> every 100 ms (test-side script), so
/// the media gap through a resume is measured against a control window without a kill. Proven: (1) killing a member's
/// socket mid-call resumes it with the same epoch — no RTCPeerConnection created or replaced on any page, no ICE ufrag
/// changed, nobody left or re-planned, media growing on every link; (2) killing the admin's socket while a knock is
/// pending (and while another knocks during the gap, with its reconnect held) — the admin gets both requests after the
/// resume, admits, and the newcomer links up with everyone. One host, one browser; audio only (the two cores encode no
/// video). Durations are reported, never asserted.
/// </summary>
public sealed class ResumeCallTests(ITestOutputHelper output)
{
    private static readonly TimeSpan PageTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan MeshTimeout = TimeSpan.FromSeconds(90);
    private static readonly TimeSpan Window = TimeSpan.FromSeconds(5);

    private readonly List<string> _log = [];
    private readonly Stopwatch _clock = Stopwatch.StartNew();

    [Fact]
    public async Task KillsMidCallAndOfTheAdminWithAKnockPending_ResumeKeepsEveryPeerConnection_MediaFlows_AndTheAdminGetsTheRequests()
    {
        await using var host = await SampleHost.StartAsync(TimeSpan.FromSeconds(300));
        Log($"sample host on {host.BaseAddress}");
        await using var chromium = await Chromium.LaunchAsync(host.BaseAddress, Log);
        var audio = MediaScripts.AudioOnly;
        var ada = await chromium.NewUserAsync("Ada", audio);
        var bea = await chromium.NewUserAsync("Bea", audio);
        var cyd = await chromium.NewUserAsync("Cyd", audio);
        var dan = await chromium.NewUserAsync("Dan", audio);
        var eve = await chromium.NewUserAsync("Eve", audio);
        TalkiUser[] trio = [ada, bea, cyd];
        var beaSockets = await RouteAsync(bea);
        var adaSockets = await RouteAsync(ada);
        var figures = new StringBuilder();

        try
        {
            await ada.OpenAsync("/");
            var link = await ada.CreateRoomAsync(PageTimeout);
            await Task.WhenAll(bea.JoinAsync(link, PageTimeout), cyd.JoinAsync(link, PageTimeout));
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
            foreach (var user in trio)
            {
                await MediaSampler.StartAsync(user);
                await CallObservation.RecordCallStatesAsync(user);
            }

            var before = await CallObservation.DescribePeerConnectionsAsync(trio);
            Log("peer connections before: " + before);

            // Control: the same window with no kill.
            var controlStart = await MediaSampler.NowAsync(ada);
            await Task.Delay(Window);
            var controlEnd = await MediaSampler.NowAsync(ada);

            // (1) Bea's socket dies mid-call.
            var killedAt = await KillAsync(beaSockets, 0, "Bea");
            await WaitResumedAsync(bea, beaSockets, 2);
            var resumedAt = await MediaSampler.NowAsync(bea);
            await Task.Delay(Window);
            var afterEnd = await MediaSampler.NowAsync(ada);
            Log($"Bea resumed {resumedAt - killedAt:0} ms after the kill (page clocks)");

            var after = await CallObservation.DescribePeerConnectionsAsync(trio);
            Log("peer connections after: " + after);
            Assert.Equal(before, after); // same objects (count and creation index), same ufrags, none closed
            var gaps = await MediaSampler.GapsAsync(trio, controlStart, controlEnd, killedAt, afterEnd);
            figures.AppendLine(CultureInfo.InvariantCulture, $"kill of Bea's socket mid-call: resumed {resumedAt - killedAt:0} ms after the kill");
            foreach (var gap in gaps)
            {
                figures.AppendLine(gap.ToString());
                Log(gap.ToString());
                Assert.True(gap.GrewThrough, $"{gap.Link}: inbound bytes did not keep growing through the resume");
            }

            foreach (var user in trio)
            {
                var history = await CallObservation.CallStateHistoryAsync(user);
                Log($"{user.Name}'s call-state: {string.Join(" → ", history)}");
                Assert.DoesNotContain(history, h => !h.StartsWith("Admitted/", StringComparison.Ordinal));
                if (user != bea)
                {
                    Assert.Equal(["Admitted/Connected"], history); // nobody else noticed anything
                }
            }

            Assert.Contains("Admitted/Reconnecting", await CallObservation.CallStateHistoryAsync(bea));

            // (2) Dan knocks; the admin's socket dies with the knock pending; Eve knocks while the admin is away (its
            // reconnect held), then the admin resumes and gets both requests.
            await dan.JoinAsync(link, PageTimeout);
            await Poll.UntilAsync("Ada sees Dan knock", PageTimeout, async () => (await ada.AdmissionRequestsAsync()).Contains("Dan") ? null : "no request from Dan");
            // Eve's page is loaded before Ada's socket dies: on a loaded 2-core runner loading it took 21 s, longer than
            // the resume grace (20 s), and Ada left for good while the test held her reconnect. Away, only Eve's sign-in
            // and knock run.
            await eve.OpenRoomAsync(link, PageTimeout);
            var hold = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            adaSockets.Hold = hold.Task;
            await KillAsync(adaSockets, 0, "Ada");
            var away = Stopwatch.StartNew();
            await eve.JoinAsync(link, PageTimeout, opened: true);
            Log($"Eve knocked while Ada's socket was down ({away.Elapsed.TotalSeconds:0.0} s after the kill)");
            hold.SetResult();
            adaSockets.Hold = null;
            await WaitResumedAsync(ada, adaSockets, 2);
            await Poll.UntilAsync("Ada sees Dan's and Eve's requests after her resume", PageTimeout, async () =>
            {
                var requests = await ada.AdmissionRequestsAsync();
                return requests.Contains("Dan") && requests.Contains("Eve") ? null : $"requests: [{string.Join(", ", requests)}]";
            });
            Assert.Equal(before, await CallObservation.DescribePeerConnectionsAsync(trio));

            await ada.AdmitAsync("Dan");
            await dan.WaitForStateAsync(PageTimeout, "Admitted");
            TalkiUser[] four = [ada, bea, cyd, dan];
            var fourIds = await Mesh.MemberIdsAsync(four, PageTimeout);
            await Mesh.WaitUntilConnectedAsync(four, fourIds, MeshTimeout, requireRenderingTiles: false);
            await Mesh.WaitUntilBytesGrowAsync(four, fourIds, MeshTimeout, TimeSpan.FromSeconds(1), Log);
            Log("Dan linked up with everyone after Ada's resume");
            await ada.ScreenshotAsync("resume-admin-after");
        }
        catch (Exception e)
        {
            Log($"failed: {e.Message}");
            foreach (var user in new[] { ada, bea, cyd, dan, eve }.Where(u => !u.Page.IsClosed))
            {
                Log("  " + await user.DescribeAsync());
            }

            Log("host output (tail):" + Environment.NewLine + string.Join(Environment.NewLine, host.Output.Split(Environment.NewLine).TakeLast(60)));
            foreach (var user in trio)
            {
                Log($"{user.Name}'s console (tail):" + Environment.NewLine + string.Join(Environment.NewLine, user.ConsoleLog.Split(Environment.NewLine).TakeLast(30)));
            }

            throw;
        }
        finally
        {
            Directory.CreateDirectory(RepositoryLayout.Artifacts);
            await File.WriteAllTextAsync(Path.Combine(RepositoryLayout.Artifacts, "resume-media-gap.txt"), figures.ToString());
            lock (_log)
            {
                File.WriteAllLines(Path.Combine(RepositoryLayout.Artifacts, "resume.log"), _log);
            }
        }
    }

    /// <summary>Routes the page's signalling sockets through the test; a set <see cref="RoutedSockets.Hold"/> delays new ones reaching the server.</summary>
    private async Task<RoutedSockets> RouteAsync(TalkiUser user)
    {
        var sockets = new RoutedSockets();
        await user.Page.RouteWebSocketAsync(url => url.Contains("/talki/ws", StringComparison.Ordinal), async ws =>
        {
            if (sockets.Hold is not { } hold)
            {
                Opened(ws, ws.ConnectToServer());
                return;
            }

            // Held: the page's socket is open, the server's is not yet. What the page sends meanwhile (its hello) is kept
            // and forwarded once the server's end exists, as a slow network would deliver it.
            var early = new List<string>();
            IWebSocketRoute? server = null;
            var gate = new object();
            ws.OnMessage(frame =>
            {
                lock (gate)
                {
                    if (server is null)
                    {
                        early.Add(frame.Text ?? string.Empty);
                    }
                    else
                    {
                        server.Send(frame.Text ?? string.Empty);
                    }
                }
            });
            await hold;
            lock (gate)
            {
                server = ws.ConnectToServer();
                foreach (var text in early)
                {
                    server.Send(text);
                }
            }

            Opened(ws, server);
        });

        void Opened(IWebSocketRoute page, IWebSocketRoute server)
        {
            lock (sockets.All)
            {
                sockets.All.Add((page, server));
                Log($"{user.Name}'s page opens signalling socket #{sockets.All.Count}{(page.Url.Contains("resume=", StringComparison.Ordinal) ? " asking to resume" : string.Empty)}");
            }
        }

        return sockets;
    }

    private async Task<double> KillAsync(RoutedSockets sockets, int index, string name)
    {
        (IWebSocketRoute Page, IWebSocketRoute Server) socket;
        lock (sockets.All)
        {
            socket = sockets.All[index];
        }

        var at = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        await Task.WhenAll(socket.Page.CloseAsync(new() { Code = 1006, Reason = "e2e: network drop" }), socket.Server.CloseAsync());
        Log($"killed {name}'s signalling socket #{index + 1} (page: 1006, server: closed)");
        return at;
    }

    private static async Task WaitResumedAsync(TalkiUser user, RoutedSockets sockets, int count)
        => await Poll.UntilAsync($"{user.Name} reconnected on socket #{count}", MeshTimeout, async () =>
        {
            int opened;
            lock (sockets.All)
            {
                opened = sockets.All.Count;
            }

            var state = await user.CallStateAsync();
            return opened >= count && state is { State: "Admitted", Signalling: "open" } ? null : $"{opened} socket(s), {state}";
        }, TimeSpan.FromMilliseconds(100));

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

    private sealed class RoutedSockets
    {
        public List<(IWebSocketRoute Page, IWebSocketRoute Server)> All { get; } = [];

        public Task? Hold { get; set; }
    }
}
