using System.Text.Json;
using Talki.Samples.Browser.EndToEndTests.Harness;

namespace Talki.Samples.Browser.EndToEndTests;

/// <summary>
/// The sample host's <c>/sample-config.json</c> (what the browser app reads at start): the benchmarks' client knobs
/// (<c>Talki:Sample:CandidateGatherWindowMs</c>, <c>Talki:Sample:LinkUpTimeoutMs</c>) reach the app only when set to a value
/// the client's options accept; otherwise the library's defaults stand (the app would not start with a zero watchdog). The
/// call page's render hold (<c>Talki:Sample:LinkUpRenderHoldMs</c>) reaches it when set, zero (off) included.
/// </summary>
public sealed class SampleConfigTests
{
    [Fact]
    public async Task BenchmarkKnobs_ReachTheApp_WhenSet_AndAreLeftOut_WhenUnsetOrZero()
    {
        await using (var host = await SampleHost.StartAsync(TimeSpan.FromMinutes(5), new Dictionary<string, string>
        {
            ["Talki:Sample:CandidateGatherWindowMs"] = "40",
            ["Talki:Sample:LinkUpTimeoutMs"] = "90000",
            ["Talki:Sample:LinkUpRenderHoldMs"] = "0",
        }))
        {
            var config = await ReadAsync(host);
            Assert.Equal(40, config.GetProperty("candidateGatherWindowMs").GetInt32());
            Assert.Equal(90000, config.GetProperty("linkUpTimeoutMs").GetInt32());
            Assert.Equal(0, config.GetProperty("linkUpRenderHoldMs").GetInt32());
        }

        await using (var host = await SampleHost.StartAsync(TimeSpan.FromMinutes(5), new Dictionary<string, string>
        {
            ["Talki:Sample:LinkUpTimeoutMs"] = "0",
            ["Talki:Sample:LinkUpRenderHoldMs"] = "-5",
        }))
        {
            var config = await ReadAsync(host);
            Assert.False(config.TryGetProperty("linkUpTimeoutMs", out _));
            Assert.False(config.TryGetProperty("candidateGatherWindowMs", out _));
            Assert.False(config.TryGetProperty("linkUpRenderHoldMs", out _));
            Assert.Equal("all", config.GetProperty("iceTransportPolicy").GetString());
        }
    }

    private static async Task<JsonElement> ReadAsync(SampleHost host)
    {
        using var http = new HttpClient { BaseAddress = host.BaseAddress };
        using var document = JsonDocument.Parse(await http.GetStringAsync(new Uri("sample-config.json", UriKind.Relative)));
        return document.RootElement.Clone();
    }
}
