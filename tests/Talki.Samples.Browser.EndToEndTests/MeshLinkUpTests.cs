using System.Diagnostics;
using System.Text.Json;
using Microsoft.Playwright;
using Talki.Samples.Browser.EndToEndTests.Harness;
using Xunit.Abstractions;

namespace Talki.Samples.Browser.EndToEndTests;

/// <summary>
/// Link-up of whole meshes in one headless Chromium (one browser context per member): the member cap (8, audio only,
/// fake microphone) and a pair whose first offer the network loses (the link-up watchdog must recover it).
/// </summary>
public sealed class MeshLinkUpTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(120);

    [Fact]
    public async Task EightMembers_AudioOnly_All28PairsConnect_AndAudioFlowsBothWaysOnEveryLink()
    {
        await using var host = await SampleHost.StartAsync(TimeSpan.FromMinutes(10), log: output.WriteLine);
        await using var chromium = await Chromium.LaunchAsync(host.BaseAddress, output.WriteLine);
        var clock = Stopwatch.StartNew();
        var users = new List<TalkiUser>();
        for (var i = 0; i < 8; i++)
        {
            users.Add(await chromium.NewUserAsync($"M{i}", MediaScripts.AudioOnly));
        }

        var admin = users[0];
        await admin.OpenAsync("/");
        var link = await admin.CreateRoomAsync(Wait);
        await admin.WaitForStateAsync(Wait, "Admitted");

        // Everyone knocks at once; the admin lets each in as the knock shows.
        await Task.WhenAll(users.Skip(1).Select(u => u.JoinAsync(link, Wait)));
        foreach (var user in users.Skip(1))
        {
            await admin.AdmitAsync(user.Name, Wait);
        }

        var ids = await Mesh.MemberIdsAsync(users, Wait);
        await Mesh.WaitUntilConnectedAsync(users, ids, Wait, requireRenderingTiles: false);
        output.WriteLine($"all 28 pairs connected after {clock.Elapsed.TotalSeconds:0.0}s");
        foreach (var user in users)
        {
            var links = await user.ConnectedLinksByPeerAsync();
            Assert.Equal(7, links.Count);
            var local = await user.Page.EvaluateAsync<string>("() => JSON.stringify((window.__talkiE2ePeerConnections ?? []).filter(pc => pc.connectionState === 'connected').map(pc => pc.getSenders().filter(s => s.track).map(s => s.track.kind).join('+')))");
            Assert.All(JsonSerializer.Deserialize<string[]>(local)!, kinds => Assert.Equal("audio", kinds)); // no camera: audio only is sent
        }

        // 56 receivers (both directions of 28 links): inbound-rtp bytes grow on each.
        await Mesh.WaitUntilBytesGrowAsync(users, ids, Wait, TimeSpan.FromSeconds(1.5), output.WriteLine);
        output.WriteLine($"audio growing on all 56 receivers after {clock.Elapsed.TotalSeconds:0.0}s");
        output.WriteLine($"screenshot: {await admin.ScreenshotAsync("mesh-8-audio-M0")}");
    }

    [Fact]
    public async Task FirstOfferOfAPairLost_TheOfferersLinkStaysNew_UntilTheWatchdogResetsIt_ThenThePairConnects()
    {
        await using var host = await SampleHost.StartAsync(TimeSpan.FromMinutes(10), log: output.WriteLine);
        await using var chromium = await Chromium.LaunchAsync(host.BaseAddress, output.WriteLine);
        var audio = MediaScripts.AudioOnly;
        var ada = await chromium.NewUserAsync("Ada", audio);
        var bea = await chromium.NewUserAsync("Bea", audio);
        TalkiUser[] members = [ada, bea];

        // The network loses the first offer Bea's page sends (protocol 2: the newcomer offers to the members already in).
        var lost = new List<string>();
        await bea.Page.RouteWebSocketAsync("**/talki/**", ws =>
        {
            var server = ws.ConnectToServer();
            ws.OnMessage(frame =>
            {
                if (frame.Text is { } text && lost.Count == 0 && IsOffer(text))
                {
                    lock (lost)
                    {
                        lost.Add(text);
                    }

                    output.WriteLine($"{DateTime.Now:HH:mm:ss.fff} dropped Bea's first offer");
                    return;
                }

                if (frame.Text is { } t)
                {
                    server.Send(t);
                }
                else
                {
                    server.Send(frame.Binary ?? []);
                }
            });
        });

        await ada.OpenAsync("/");
        var link = await ada.CreateRoomAsync(Wait);
        await bea.JoinAsync(link, Wait);
        await ada.AdmitAsync("Bea", Wait);
        var admitted = Stopwatch.StartNew();
        var ids = await Mesh.MemberIdsAsync(members, Wait);

        // Before the watchdog: Bea holds a link to Ada that stays `new`; Ada, whom the offer (and with it the link's plan)
        // never reached, has none.
        await Poll.UntilAsync("Bea's page has a link to Ada", Wait, async () => (await bea.LinksAsync()).Count == 1 ? null : "not yet");
        await Task.Delay(TimeSpan.FromSeconds(10));
        Assert.Single(lost);
        Assert.Equal("new", Assert.Single(await bea.LinksAsync()).ConnectionState);
        Assert.Empty(await ada.LinksAsync());

        // The watchdog (30 s by default) resets the pair; the fresh links connect and audio flows both ways.
        try
        {
            await Mesh.WaitUntilConnectedAsync(members, ids, Wait, requireRenderingTiles: false);
        }
        finally
        {
            foreach (var user in members)
            {
                output.WriteLine($"{user.Name}'s peer connections:");
                foreach (var pc in await user.PeerConnectionIceAsync())
                {
                    output.WriteLine($"  {pc}");
                }

                output.WriteLine($"{user.Name}'s console:{Environment.NewLine}{user.ConsoleLog}");
            }
        }

        output.WriteLine($"connected {admitted.Elapsed.TotalSeconds:0.0}s after the admission (watchdog 30 s)");
        await Mesh.WaitUntilBytesGrowAsync(members, ids, Wait, TimeSpan.FromSeconds(1.5), output.WriteLine);
    }

    private static bool IsOffer(string text)
    {
        try
        {
            using var document = JsonDocument.Parse(text);
            var root = document.RootElement;
            return root.TryGetProperty("type", out var type) && type.GetString() == "signal"
                && root.TryGetProperty("description", out var description) && description.ValueKind == JsonValueKind.Object
                && description.TryGetProperty("type", out var sdpType) && string.Equals(sdpType.GetString(), "offer", StringComparison.OrdinalIgnoreCase);
        }
        catch (JsonException)
        {
            return false;
        }
    }
}
