using Talki.Samples.Browser.EndToEndTests.Harness;
using Xunit.Abstractions;

namespace Talki.Samples.Browser.EndToEndTests;

/// <summary>
/// The harness on its own, independent of the app: the sample host as a child process, headless Chromium with fake
/// devices, a secure context on <c>http://localhost</c>, and two local RTCPeerConnections exchanging media. When
/// this fails the environment is broken, not the app.
/// </summary>
public sealed class HarnessTests(ITestOutputHelper output)
{
    [Fact]
    public async Task HostPageInHeadlessChromium_IsASecureContextWhereTwoPeerConnectionsExchangeFakeCameraMedia()
    {
        await using var host = await SampleHost.StartAsync(TimeSpan.FromSeconds(60));
        await using var chromium = await Chromium.LaunchAsync(host.BaseAddress, output.WriteLine);
        var user = await chromium.NewUserAsync("Harness");

        var response = await user.Page.GotoAsync("/");
        Assert.NotNull(response);
        Assert.True(response.Ok, $"GET / answered {response.Status}");
        Assert.True(await user.Page.EvaluateAsync<bool>("() => window.isSecureContext && !!navigator.mediaDevices"));

        var bytes = await user.Page.EvaluateAsync<double>(
            """
            async () => {
              const stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
              const a = new RTCPeerConnection(), b = new RTCPeerConnection();
              a.onicecandidate = e => e.candidate && b.addIceCandidate(e.candidate);
              b.onicecandidate = e => e.candidate && a.addIceCandidate(e.candidate);
              stream.getTracks().forEach(t => a.addTrack(t, stream));
              await a.setLocalDescription();
              await b.setRemoteDescription(a.localDescription);
              await b.setLocalDescription();
              await a.setRemoteDescription(b.localDescription);
              const inbound = async () => {
                let sum = 0;
                (await b.getStats()).forEach(s => { if (s.type === 'inbound-rtp') sum += s.bytesReceived ?? 0; });
                return sum;
              };
              for (let i = 0; i < 300 && (b.connectionState !== 'connected' || await inbound() === 0); i++) {
                await new Promise(r => setTimeout(r, 100));
              }
              const first = await inbound();
              await new Promise(r => setTimeout(r, 1500));
              const second = await inbound();
              return b.connectionState === 'connected' && second > first ? second : -1;
            }
            """);
        Assert.True(bytes > 0, "two local RTCPeerConnections with the fake camera should connect and receive growing inbound-rtp bytes");

        // The harness's own instrumentation saw both connections.
        var connections = await user.PeerConnectionIceAsync();
        Assert.Equal(2, connections.Count);
        Assert.All(connections, c => Assert.NotNull(c.LocalUfrag));
        output.WriteLine($"screenshot: {await user.ScreenshotAsync("00-harness")}");
    }
}
