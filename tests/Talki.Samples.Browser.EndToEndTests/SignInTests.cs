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
            ["Talki:Google:ClientId"] = clientId,
            ["Talki:IceServers:0"] = "stun:127.0.0.1:9",
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
}
