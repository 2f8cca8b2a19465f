using System.Globalization;
using System.Text.Json;
using Microsoft.Playwright;

namespace Talki.Samples.Browser.LinkUpBenchmark;

/// <summary>
/// A CPU profile of one page's main thread over the timed link-up (<c>--profile</c>), taken with the Chrome DevTools
/// Protocol's sampling profiler (<c>Profiler.start</c>/<c>Profiler.stop</c>,
/// https://chromedevtools.github.io/devtools-protocol/tot/Profiler/): a sample every 500 µs, each attributed to the
/// function on top of the stack (self time). Reported by script (talki-webrtc.js, blazor.webassembly.js, dotnet.native.wasm…)
/// and by the functions with the most self time. Chromium's own pseudo-nodes say where the rest went: (program) is the
/// browser's native work outside JS and WebAssembly (layout, style, WebRTC's main-thread part), (garbage collector) V8's.
/// </summary>
internal sealed class PageProfile
{
    private readonly ICDPSession _session;

    private PageProfile(ICDPSession session) => _session = session;

    public static async Task<PageProfile> StartAsync(IPage page)
    {
        var session = await page.Context.NewCDPSessionAsync(page);
        await session.SendAsync("Profiler.enable");
        await session.SendAsync("Profiler.setSamplingInterval", new Dictionary<string, object> { ["interval"] = 500 });
        await session.SendAsync("Profiler.start");
        return new PageProfile(session);
    }

    /// <summary>Stops the profiler and summarizes: self milliseconds by script, then the <paramref name="top"/> functions.</summary>
    public async Task<IReadOnlyList<string>> StopAsync(int top)
    {
        var result = await _session.SendAsync("Profiler.stop") ?? throw new InvalidOperationException("Profiler.stop returned nothing.");
        await _session.DetachAsync();
        var profile = result.GetProperty("profile");
        var frames = new Dictionary<int, (string Function, string Script)>();
        var parents = new Dictionary<int, int>();
        foreach (var node in profile.GetProperty("nodes").EnumerateArray())
        {
            if (node.TryGetProperty("children", out var children))
            {
                foreach (var child in children.EnumerateArray())
                {
                    parents[child.GetInt32()] = node.GetProperty("id").GetInt32();
                }
            }

            var frame = node.GetProperty("callFrame");
            var function = frame.GetProperty("functionName").GetString() is { Length: > 0 } name ? name : "(anonymous)";
            var url = frame.GetProperty("url").GetString() ?? "";
            var script = url.Length == 0 ? "(native)" : Path.GetFileName(new Uri(url, UriKind.RelativeOrAbsolute) is { IsAbsoluteUri: true } u ? u.AbsolutePath : url);
            frames[node.GetProperty("id").GetInt32()] = (function, script);
        }

        // timeDeltas[i] is the time from sample i-1 to sample i: sample i ran until sample i+1, so it owns timeDeltas[i+1].
        var samples = profile.GetProperty("samples").EnumerateArray().Select(s => s.GetInt32()).ToList();
        var deltas = profile.GetProperty("timeDeltas").EnumerateArray().Select(d => d.GetInt64()).ToList();
        var self = new Dictionary<(string Function, string Script), double>();
        var entries = new Dictionary<string, double>();
        for (var i = 0; i + 1 < samples.Count; i++)
        {
            var key = frames[samples[i]];
            var ms = deltas[i + 1] / 1000.0;
            self[key] = self.GetValueOrDefault(key) + ms;
            if (key.Script.EndsWith(".wasm", StringComparison.Ordinal))
            {
                // Which script function entered .NET's WebAssembly for this sample: the innermost caller outside the
                // .wasm and the runtime's own glue (dotnet.*.js), with the one above it for context.
                var entry = EntryOf(samples[i], frames, parents);
                entries[entry] = entries.GetValueOrDefault(entry) + ms;
            }
        }

        var total = self.Values.Sum();
        var busy = self.Where(s => s.Key.Function != "(idle)").Sum(s => s.Value);
        var lines = new List<string> { string.Create(CultureInfo.InvariantCulture, $"profile: {total:0} ms sampled, {busy:0} ms busy (not idle); self ms by script:") };
        lines.AddRange(self.GroupBy(s => s.Key.Function is "(idle)" or "(program)" or "(garbage collector)" ? s.Key.Function : s.Key.Script)
            .Select(g => (Name: g.Key, Ms: g.Sum(s => s.Value)))
            .OrderByDescending(g => g.Ms)
            .Select(g => string.Create(CultureInfo.InvariantCulture, $"  {g.Ms,7:0.0}  {g.Name}")));
        lines.Add("WebAssembly self ms by the script that called into it (callee ← caller):");
        lines.AddRange(entries.OrderByDescending(e => e.Value).Take(12)
            .Select(e => string.Create(CultureInfo.InvariantCulture, $"  {e.Value,7:0.0}  {e.Key}")));
        lines.Add($"top {top} functions by self ms:");
        lines.AddRange(self.Where(s => s.Key.Function != "(idle)")
            .OrderByDescending(s => s.Value)
            .Take(top)
            .Select(s => string.Create(CultureInfo.InvariantCulture, $"  {s.Value,7:0.0}  {s.Key.Function} ({s.Key.Script})")));
        return lines;
    }

    private static string EntryOf(int node, Dictionary<int, (string Function, string Script)> frames, Dictionary<int, int> parents)
    {
        var names = new List<string>();
        var current = node;
        while (parents.TryGetValue(current, out var parent) && names.Count < 2)
        {
            current = parent;
            var (function, script) = frames[current];
            if (script.EndsWith(".wasm", StringComparison.Ordinal) || (names.Count == 0 && script.StartsWith("dotnet.", StringComparison.Ordinal)) || script == "(native)" && function == "(root)")
            {
                continue;
            }

            names.Add($"{function} ({script})");
        }

        return names.Count == 0 ? "(no caller)" : string.Join(" ← ", names);
    }
}
