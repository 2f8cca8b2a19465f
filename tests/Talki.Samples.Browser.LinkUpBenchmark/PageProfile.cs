using System.Globalization;
using System.Security.Cryptography;
using System.Text.RegularExpressions;
using Microsoft.Playwright;

namespace Talki.Samples.Browser.LinkUpBenchmark;

/// <summary>
/// A CPU profile of one page's main thread over the timed link-up (<c>--profile</c>), taken with the Chrome DevTools
/// Protocol's sampling profiler (<c>Profiler.start</c>/<c>Profiler.stop</c>,
/// https://chromedevtools.github.io/devtools-protocol/tot/Profiler/): a sample every 500 µs, each attributed to the
/// function on top of the stack (self time). Reported by script (talki-webrtc.js, blazor.webassembly.js, dotnet.native.wasm…)
/// and by the functions with the most self time. Chromium's own pseudo-nodes say where the rest went: (program) is the
/// browser's native work outside JS and WebAssembly (layout, style, WebRTC's main-thread part), (garbage collector) V8's.
/// .NET's runtime (<c>dotnet.native.wasm</c>) carries no function names; the profile names its functions from the symbol
/// map of the runtime pack whose <c>dotnet.native.wasm</c> has the same bytes as the one the page loaded
/// (<see cref="WasmSymbols"/>), so the interpreter running .NET code (<c>mono_interp_exec_method</c>) is told apart from
/// it compiling a method on its first call (<c>mono_interp_transform_method</c>, <c>generate_code</c>), the type system
/// (<c>mono_class_*</c>, <c>mono_metadata_*</c>, generic instances) and the garbage collector (<c>sgen_*</c>).
/// </summary>
internal sealed partial class PageProfile
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

        // Name .NET's runtime functions ("wasm-function[213]" → "mono_interp_exec_method") when its symbol map is found.
        var wasmUrl = profile.GetProperty("nodes").EnumerateArray()
            .Select(n => n.GetProperty("callFrame").GetProperty("url").GetString() ?? "")
            .FirstOrDefault(u => Path.GetFileName(u).StartsWith("dotnet.native.", StringComparison.Ordinal) && u.EndsWith(".wasm", StringComparison.Ordinal));
        var symbols = wasmUrl is null ? null : await WasmSymbols.LoadAsync(new Uri(wasmUrl));
        if (symbols is not null)
        {
            foreach (var (id, (function, script)) in frames.ToList())
            {
                if (WasmFunction().Match(function) is { Success: true } m && symbols.TryGetValue(int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), out var name))
                {
                    frames[id] = (name, script);
                }
            }
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
        lines.Add(symbols is null
            ? "WebAssembly functions unnamed: no runtime pack in the NuGet cache has the dotnet.native.wasm the page loaded"
            : "WebAssembly functions named from the runtime pack's dotnet.native.js.symbols");
        lines.Add($"top {top} functions by self ms:");
        lines.AddRange(self.Where(s => s.Key.Function != "(idle)")
            .OrderByDescending(s => s.Value)
            .Take(top)
            .Select(s => string.Create(CultureInfo.InvariantCulture, $"  {s.Value,7:0.0}  {s.Key.Function} ({s.Key.Script})")));
        lines.Add($"top {top} WebAssembly functions by self ms:");
        lines.AddRange(self.Where(s => s.Key.Script.EndsWith(".wasm", StringComparison.Ordinal))
            .OrderByDescending(s => s.Value)
            .Take(top)
            .Select(s => string.Create(CultureInfo.InvariantCulture, $"  {s.Value,7:0.0}  {s.Key.Function}")));
        return lines;
    }

    [GeneratedRegex(@"^wasm-function\[(\d+)\]$")]
    private static partial Regex WasmFunction();

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

/// <summary>
/// The names of .NET's WebAssembly runtime functions, by function index: the <c>dotnet.native.js.symbols</c> map
/// (<c>index:name</c> lines) that the runtime pack (<c>Microsoft.NETCore.App.Runtime.Mono.browser-wasm</c>) ships beside
/// its <c>dotnet.native.wasm</c>. An app built without the WebAssembly workload serves that file as it is (fingerprinted),
/// so the pack is found by the file's bytes; an app whose runtime was relinked has no pack that matches, and stays unnamed.
/// </summary>
internal static class WasmSymbols
{
    // One benchmark run profiles a page per run, every page served the same runtime: it is fetched and matched once.
    private static readonly Dictionary<Uri, IReadOnlyDictionary<int, string>?> Loaded = [];

    public static async Task<IReadOnlyDictionary<int, string>?> LoadAsync(Uri served)
    {
        if (!Loaded.TryGetValue(served, out var names))
        {
            Loaded[served] = names = await MatchAsync(served);
        }

        return names;
    }

    private static async Task<IReadOnlyDictionary<int, string>?> MatchAsync(Uri served)
    {
        var root = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } packages
            ? packages
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        var packs = Path.Combine(root, "microsoft.netcore.app.runtime.mono.browser-wasm");
        if (!Directory.Exists(packs))
        {
            return null;
        }

        byte[] bytes;
        try
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
            bytes = await http.GetByteArrayAsync(served); // no Accept-Encoding: the file's own bytes
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            return null; // the profile is still reported, its WebAssembly functions unnamed
        }

        var hash = SHA256.HashData(bytes);
        foreach (var pack in Directory.EnumerateDirectories(packs))
        {
            var native = Path.Combine(pack, "runtimes", "browser-wasm", "native");
            var wasm = new FileInfo(Path.Combine(native, "dotnet.native.wasm"));
            var map = Path.Combine(native, "dotnet.native.js.symbols");
            if (wasm.Exists && wasm.Length == bytes.Length && File.Exists(map) && SHA256.HashData(File.ReadAllBytes(wasm.FullName)).AsSpan().SequenceEqual(hash))
            {
                var names = new Dictionary<int, string>();
                foreach (var line in File.ReadLines(map))
                {
                    var colon = line.IndexOf(':', StringComparison.Ordinal);
                    if (colon > 0 && int.TryParse(line.AsSpan(0, colon), NumberStyles.None, CultureInfo.InvariantCulture, out var index))
                    {
                        names[index] = line[(colon + 1)..];
                    }
                }

                return names;
            }
        }

        return null;
    }
}
