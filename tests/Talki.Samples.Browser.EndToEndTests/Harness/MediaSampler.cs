using System.Globalization;
using System.Text.Json;

namespace Talki.Samples.Browser.EndToEndTests.Harness;

/// <summary>
/// Test-side media sampling through a fault: every RTCPeerConnection of a page (as remembered by <see cref="Chromium"/>'s
/// instrumentation) has its inbound-rtp <c>bytesReceived</c> read every 100 ms by the page's own clock, so the longest pause
/// of incoming media around a fault can be compared with a control window without one. Figures are for reports; tests do
/// not assert durations.
/// </summary>
internal static class MediaSampler
{
    /// <summary>Samples every RTCPeerConnection's inbound-rtp bytes every 100 ms (page clock), keyed by creation index.</summary>
    private const string StartScript = """
        () => {
          if (window.__talkiE2eSamples) return;
          const samples = [];
          window.__talkiE2eSamples = samples;
          const tick = async () => {
            const at = Date.now();
            const pcs = window.__talkiE2ePeerConnections ?? [];
            await Promise.all(pcs.map(async (pc, index) => {
              if (pc.connectionState === 'closed') return;
              try {
                const report = await pc.getStats();
                let bytes = 0;
                report.forEach(r => { if (r.type === 'inbound-rtp') bytes += r.bytesReceived ?? 0; });
                samples.push([index, at, bytes]);
              } catch { }
            }));
          };
          setInterval(tick, 100);
        }
        """;

    /// <summary>Starts the sampler in the user's page (once; a second call does nothing).</summary>
    public static Task StartAsync(TalkiUser user) => user.Page.EvaluateAsync(StartScript);

    /// <summary>The page's clock (<c>Date.now()</c>, ms since the Unix epoch): the samples' time base.</summary>
    public static Task<double> NowAsync(TalkiUser user) => user.Page.EvaluateAsync<double>("() => Date.now()");

    /// <summary>
    /// Per link (page and RTCPeerConnection creation index): the longest pause of inbound bytes in the control window
    /// [<paramref name="controlStart"/>, <paramref name="controlEnd"/>] and in the fault window [<paramref name="faultAt"/>,
    /// <paramref name="faultEnd"/>], and whether the bytes grew across the fault window.
    /// </summary>
    public static async Task<IReadOnlyList<MediaGap>> GapsAsync(IEnumerable<TalkiUser> users, double controlStart, double controlEnd, double faultAt, double faultEnd)
    {
        var gaps = new List<MediaGap>();
        foreach (var user in users)
        {
            var json = await user.Page.EvaluateAsync<string>("() => JSON.stringify(window.__talkiE2eSamples ?? [])");
            using var document = JsonDocument.Parse(json);
            var samples = document.RootElement.EnumerateArray()
                .Select(s => (Index: s[0].GetInt32(), At: s[1].GetDouble(), Bytes: s[2].GetDouble()))
                .ToList();
            foreach (var byIndex in samples.GroupBy(s => s.Index))
            {
                var series = byIndex.OrderBy(s => s.At).ToList();
                var control = LongestPause(series, controlStart, controlEnd);
                var fault = LongestPause(series, faultAt, faultEnd);
                var atFault = series.LastOrDefault(s => s.At <= faultAt).Bytes;
                var atEnd = series.LastOrDefault(s => s.At <= faultEnd).Bytes;
                gaps.Add(new MediaGap($"{user.Name} pc#{byIndex.Key}", control, fault, atEnd > atFault, series.Count(s => s.At >= faultAt && s.At <= faultEnd)));
            }
        }

        return gaps;
    }

    /// <summary>The longest time between two increases of the bytes within [from, to] (the sampling step is 100 ms).</summary>
    public static double LongestPause(IReadOnlyList<(int Index, double At, double Bytes)> series, double from, double to)
    {
        var window = series.Where(s => s.At >= from && s.At <= to).ToList();
        if (window.Count < 2)
        {
            return double.NaN;
        }

        var longest = 0.0;
        var lastGrowth = window[0].At;
        for (var i = 1; i < window.Count; i++)
        {
            if (window[i].Bytes > window[i - 1].Bytes)
            {
                longest = Math.Max(longest, window[i].At - lastGrowth);
                lastGrowth = window[i].At;
            }
        }

        return Math.Max(longest, window[^1].At - lastGrowth);
    }
}

/// <summary>One link's media through a fault: the longest pauses of inbound bytes (ms) and whether they grew across it.</summary>
internal sealed record MediaGap(string Link, double ControlPauseMs, double FaultPauseMs, bool GrewThrough, int Samples)
{
    public override string ToString() => string.Create(
        CultureInfo.InvariantCulture,
        $"{Link}: longest pause of inbound bytes {FaultPauseMs:0} ms through the fault ({Samples} samples) vs {ControlPauseMs:0} ms in the control window; grew through: {GrewThrough}");
}
