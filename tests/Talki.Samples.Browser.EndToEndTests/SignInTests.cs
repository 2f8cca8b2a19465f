using Talki.Samples.Browser.EndToEndTests.Harness;
using Xunit.Abstractions;

namespace Talki.Samples.Browser.EndToEndTests;

/// <summary>The sign-in card: the Google button appears only when the host configures a client id.</summary>
public sealed class SignInTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("1234-test.apps.googleusercontent.com", 1)]
    [InlineData("", 0)]
    public async Task GoogleButton_ShownOnlyWithAConfiguredClientId(string clientId, int expected)
    {
        await using var host = await SampleHost.StartAsync(TimeSpan.FromSeconds(300), new Dictionary<string, string>
        {
            ["Talki:Google:ClientIds:0"] = clientId,
        }, output.WriteLine);
        await using var chromium = await Chromium.LaunchAsync(host.BaseAddress, output.WriteLine);
        var user = await chromium.NewUserAsync("Eve");

        await user.OpenAsync("/");
        await Poll.UntilAsync("the sign-in card", TimeSpan.FromSeconds(60), async () =>
            await user.Page.GetByTestId("display-name").IsVisibleAsync() ? null : "no display-name input yet");

        Assert.Equal(expected, await user.Page.GetByTestId("google-sign-in").CountAsync());
        if (expected > 0)
        {
            output.WriteLine($"screenshot: {await user.ScreenshotAsync("00-google-button")}");
        }
    }

    [Fact]
    public async Task GoogleVerifiedUser_GetsTheVerifiedTick_OnTheirTileAndOnTheOthersPages()
    {
        const string clientId = "1234-e2e.apps.googleusercontent.com";
        await using var google = new LocalGoogleKeys();
        await using var host = await SampleHost.StartAsync(TimeSpan.FromSeconds(300), new Dictionary<string, string>
        {
            ["Talki:Google:ClientIds:0"] = clientId,
            ["Talki:Google:KeysUrl"] = google.KeysUrl.ToString(),
        }, output.WriteLine);
        await using var chromium = await Chromium.LaunchAsync(host.BaseAddress, output.WriteLine);
        var grace = await chromium.NewUserAsync("Grace");
        var bob = await chromium.NewUserAsync("Bob");

        // The Google button's callback posts the ID token; here the page posts one signed by the local "Google" (and
        // notes, as the app does after a sign-in, that this browser has a session: the next load looks it up).
        await grace.OpenAsync("/");
        var status = await grace.Page.EvaluateAsync<int>(
            "async token => { const status = (await fetch('/talki/session/google', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ idToken: token }) })).status; window.talkiApp.sessionHint.set(status === 200); return status; }",
            google.IdToken(clientId, "Grace Hopper"));
        Assert.Equal(200, status);
        await grace.OpenAsync("/");
        var link = await grace.CreateRoomAsync(TimeSpan.FromSeconds(90));
        await bob.JoinAsync(link, TimeSpan.FromSeconds(90));
        await Poll.UntilAsync("Grace sees Bob's request", TimeSpan.FromSeconds(60), async () => (await grace.AdmissionRequestsAsync()).Contains("Bob") ? null : "no request yet");
        await grace.AdmitAsync("Bob");

        await Poll.UntilAsync("Bob's page shows Grace's tile with the verified tick", TimeSpan.FromSeconds(90), async () =>
            await bob.Page.Locator("[data-testid=video-tile][data-name='Grace Hopper'] [data-testid=verified-tick]").CountAsync() == 1 ? null : "no ticked tile for Grace yet");
        Assert.Equal(1, await grace.Page.Locator("[data-testid=video-tile][data-self=true] [data-testid=verified-tick]").CountAsync());
        Assert.Equal(0, await grace.Page.Locator("[data-testid=video-tile][data-name='Bob'] [data-testid=verified-tick]").CountAsync());
        output.WriteLine($"screenshot: {await bob.ScreenshotAsync("00-verified-tick")}");
    }
}
