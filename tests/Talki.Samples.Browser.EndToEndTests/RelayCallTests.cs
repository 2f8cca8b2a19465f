using Talki.Samples.Browser.EndToEndTests.Harness;
using Talki.Signalling.Server.IntegrationTests.Ice;
using Xunit.Abstractions;

namespace Talki.Samples.Browser.EndToEndTests;

/// <summary>
/// Relay-only calls (the sample's <c>Talki:Sample:IceTransportPolicy=relay</c>): the server hands out TURN REST credentials
/// for a real coturn on 127.0.0.1, the browsers may only use relay candidates, and media must flow through coturn.
/// </summary>
public sealed class RelayCallTests(CoturnFixture coturn, ITestOutputHelper output) : IClassFixture<CoturnFixture>
{
    private static readonly TimeSpan PageTimeout = TimeSpan.FromSeconds(90);

    [Fact]
    public async Task RelayOnly_TwoMembers_MediaFlowsThroughCoturn_WithTheServersTurnCredentials()
    {
        await using var host = await SampleHost.StartAsync(TimeSpan.FromSeconds(300), new Dictionary<string, string>
        {
            ["Talki:Turn:Urls:0"] = coturn.TurnUrl,
            ["Talki:Turn:SharedSecret"] = coturn.SharedSecret,
            ["Talki:Sample:IceTransportPolicy"] = "relay",
        }, output.WriteLine);
        await using var chromium = await Chromium.LaunchAsync(host.BaseAddress, output.WriteLine);
        var ada = await chromium.NewUserAsync("Ada");
        var bea = await chromium.NewUserAsync("Bea");
        TalkiUser[] members = [ada, bea];

        await ada.OpenAsync("/");
        var link = await ada.CreateRoomAsync(PageTimeout);
        await bea.JoinAsync(link, PageTimeout);
        await Poll.UntilAsync("Ada sees Bea's request", PageTimeout, async () => (await ada.AdmissionRequestsAsync()).Contains("Bea") ? null : "no request yet");
        await ada.AdmitAsync("Bea");
        var ids = await Mesh.MemberIdsAsync(members, PageTimeout);
        await Mesh.WaitUntilConnectedAsync(members, ids, PageTimeout);
        await Mesh.WaitUntilBytesGrowAsync(members, ids, PageTimeout, TimeSpan.FromSeconds(2), output.WriteLine);

        foreach (var user in members)
        {
            // The candidate pair in use on each connected connection: both ends are relay candidates on coturn's relay ports.
            var pairs = await user.Page.EvaluateAsync<string[]>(
                """
                async () => {
                  const result = [];
                  for (const pc of (window.__talkiE2ePeerConnections ?? []).filter(pc => pc.connectionState === 'connected')) {
                    const stats = [...(await pc.getStats()).values()];
                    const transport = stats.find(s => s.type === 'transport' && s.selectedCandidatePairId);
                    const pair = transport ? stats.find(s => s.id === transport.selectedCandidatePairId) : stats.find(s => s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded');
                    const local = pair && stats.find(s => s.id === pair.localCandidateId);
                    const remote = pair && stats.find(s => s.id === pair.remoteCandidateId);
                    result.push(`${local?.candidateType}:${local?.port} ${remote?.candidateType}:${remote?.port}`);
                  }
                  return result;
                }
                """);
            output.WriteLine($"{user.Name}: {string.Join(", ", pairs)}");
            var pair = Assert.Single(pairs);
            var parts = pair.Split(' ');
            Assert.All(parts, p =>
            {
                Assert.StartsWith("relay:", p, StringComparison.Ordinal);
                var port = int.Parse(p["relay:".Length..], System.Globalization.CultureInfo.InvariantCulture);
                Assert.InRange(port, coturn.MinRelayPort, coturn.MaxRelayPort);
            });
        }

        output.WriteLine($"screenshot: {await ada.ScreenshotAsync("08-relay-Ada")}");
    }
}
