using System.Globalization;
using System.Text.Json;
using Microsoft.Playwright;

namespace Talki.Samples.Browser.LinkUpBenchmark;

/// <summary>
/// A Chromium trace of the whole browser over the timed link-up (<c>--chrome-trace DIR</c>): every process and thread,
/// taken with the Chrome DevTools Protocol's <c>Tracing</c> domain on a browser-level session
/// (https://chromedevtools.github.io/devtools-protocol/tot/Tracing/). It says what the threads that <see cref="ProcessCpu"/>
/// only counts were doing: each task a thread ran (category <c>toplevel</c>: <c>ThreadPool_RunTask</c> and
/// <c>ThreadControllerImpl::RunTask</c>, whose arguments name the source line that posted the task) and the events
/// inside it (V8's compilation, execution and garbage collection, Blink's style, layout and paint, WebRTC's), by self time:
/// the thread's CPU time inside an event (<c>tdur</c>) less that of the events nested in it. Trace Event Format:
/// https://docs.google.com/document/d/1CvAClvFfyA5R-PhYUmn5OOQtYMH4h6I0nSsKchNAySU. Tracing slows the browser, so a
/// traced run's link-up time is not one of the benchmark's figures; the raw trace is saved for chrome://tracing or Perfetto.
/// </summary>
internal sealed class ChromeTrace
{
    private static readonly string[] Categories =
    [
        "toplevel", "v8", "v8.execute", "v8.wasm", "disabled-by-default-v8.gc", "disabled-by-default-v8.compile",
        "devtools.timeline", "blink", "webrtc",
    ];

    private readonly ICDPSession _session;
    private readonly string _path;
    private readonly TaskCompletionSource<string> _complete = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private ChromeTrace(ICDPSession session, string path)
    {
        _session = session;
        _path = path;
        // Tracing.tracingComplete carries the handle of the stream that holds the trace (transferMode ReturnAsStream).
        _session.Event("Tracing.tracingComplete").OnEvent += (_, args) =>
        {
            if (args is { } value && value.TryGetProperty("stream", out var stream) && stream.GetString() is { } handle)
            {
                _complete.TrySetResult(handle);
            }
            else
            {
                _complete.TrySetException(new InvalidOperationException("Tracing.tracingComplete without a stream."));
            }
        };
    }

    /// <summary>Starts tracing the whole browser (a browser-level CDP session); the trace goes to <paramref name="path"/> when stopped.</summary>
    public static async Task<ChromeTrace> StartAsync(IBrowser browser, string path)
    {
        var trace = new ChromeTrace(await browser.NewBrowserCDPSessionAsync(), path);
        await trace._session.SendAsync("Tracing.start", new Dictionary<string, object>
        {
            ["transferMode"] = "ReturnAsStream",
            ["traceConfig"] = new Dictionary<string, object> { ["includedCategories"] = Categories, ["recordMode"] = "recordAsMuchAsPossible" },
        });
        return trace;
    }

    /// <summary>Stops tracing, saves the trace and summarizes it (<see cref="Summarize"/>).</summary>
    public async Task<IReadOnlyList<string>> StopAsync(int top)
    {
        await _session.SendAsync("Tracing.end");
        var handle = await _complete.Task.WaitAsync(TimeSpan.FromSeconds(60));
        var text = new System.Text.StringBuilder();
        while (true)
        {
            var chunk = await _session.SendAsync("IO.read", new Dictionary<string, object> { ["handle"] = handle, ["size"] = 1 << 20 })
                ?? throw new InvalidOperationException("IO.read returned nothing.");
            var data = chunk.GetProperty("data").GetString() ?? "";
            text.Append(chunk.TryGetProperty("base64Encoded", out var b64) && b64.GetBoolean()
                ? System.Text.Encoding.UTF8.GetString(Convert.FromBase64String(data))
                : data);
            if (chunk.GetProperty("eof").GetBoolean())
            {
                break;
            }
        }

        await _session.SendAsync("IO.close", new Dictionary<string, object> { ["handle"] = handle });
        await _session.DetachAsync();
        var json = text.ToString();
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(_path))!);
        await File.WriteAllTextAsync(_path, json);
        using var document = JsonDocument.Parse(json);
        var events = document.RootElement.ValueKind == JsonValueKind.Array
            ? document.RootElement
            : document.RootElement.GetProperty("traceEvents");
        return [$"Chromium trace ({new FileInfo(_path).Length / 1024:N0} KiB): {_path}", .. Summarize(events, top)];
    }

    /// <summary>
    /// Per process kind and thread kind: the CPU time in top-level events; the renderers' main threads one by one; and for
    /// the six busiest thread kinds, which source lines posted their tasks and which events took the self time.
    /// </summary>
    internal static IReadOnlyList<string> Summarize(JsonElement events, int top)
    {
        var processNames = new Dictionary<int, string>();
        var threadNames = new Dictionary<(int, int), string>();
        var byThread = new Dictionary<(int Pid, int Tid), List<Span>>();
        var open = new Dictionary<(int, int), Stack<(string Name, string Posted, double Ts, double Tts)>>();
        foreach (var e in events.EnumerateArray())
        {
            var ph = e.TryGetProperty("ph", out var p) ? p.GetString() : null;
            var pid = e.TryGetProperty("pid", out var pe) && pe.ValueKind == JsonValueKind.Number ? pe.GetInt32() : 0;
            var tid = e.TryGetProperty("tid", out var te) && te.ValueKind == JsonValueKind.Number ? te.GetInt32() : 0;
            var name = e.TryGetProperty("name", out var n) ? n.GetString() ?? "?" : "?";
            if (ph == "M")
            {
                var value = e.TryGetProperty("args", out var a) && a.TryGetProperty("name", out var v) ? v.GetString() ?? "?" : "?";
                if (name == "process_name")
                {
                    processNames[pid] = value;
                }
                else if (name == "thread_name")
                {
                    threadNames[(pid, tid)] = value;
                }

                continue;
            }

            if (!e.TryGetProperty("ts", out var tsElement) || tsElement.ValueKind != JsonValueKind.Number)
            {
                continue;
            }

            var ts = tsElement.GetDouble();
            var posted = Posted(e);
            switch (ph)
            {
                case "X" when e.TryGetProperty("dur", out var d) && d.ValueKind == JsonValueKind.Number:
                    // tdur: the thread's CPU time inside the event, where the trace has it; else its wall time.
                    var cpu = e.TryGetProperty("tdur", out var td) && td.ValueKind == JsonValueKind.Number ? td.GetDouble() : d.GetDouble();
                    Spans(byThread, (pid, tid)).Add(new Span(name, posted, ts, ts + d.GetDouble(), cpu));
                    break;
                case "B":
                    if (!open.TryGetValue((pid, tid), out var stack))
                    {
                        open[(pid, tid)] = stack = new();
                    }

                    stack.Push((name, posted, ts, e.TryGetProperty("tts", out var tts) && tts.ValueKind == JsonValueKind.Number ? tts.GetDouble() : double.NaN));
                    break;
                case "E" when open.TryGetValue((pid, tid), out var begun) && begun.Count > 0:
                    var (beginName, beginPosted, beginTs, beginTts) = begun.Pop();
                    var endTts = e.TryGetProperty("tts", out var ett) && ett.ValueKind == JsonValueKind.Number ? ett.GetDouble() : double.NaN;
                    Spans(byThread, (pid, tid)).Add(new Span(beginName, beginPosted, beginTs, ts, double.IsNaN(beginTts) || double.IsNaN(endTts) ? ts - beginTs : endTts - beginTts));
                    break;
            }
        }

        // Self time per event, and per thread the top-level tasks' time by the line that posted them.
        var self = new Dictionary<(string Group, string Event), double>();
        var tasks = new Dictionary<(string Group, string Posted), double>();
        var threadTotals = new Dictionary<string, double>();
        var mainByRenderer = new Dictionary<int, double>();
        foreach (var ((pid, tid), spans) in byThread)
        {
            var process = Kind(processNames.GetValueOrDefault(pid, "?"));
            var thread = ThreadKind(threadNames.GetValueOrDefault((pid, tid), "?"));
            var group = $"{process} {thread}";
            spans.Sort((x, y) => x.Start != y.Start ? x.Start.CompareTo(y.Start) : y.End.CompareTo(x.End));
            var stack = new Stack<(Span Span, int Index)>();
            var selfOf = new double[spans.Count];
            for (var i = 0; i < spans.Count; i++)
            {
                var span = spans[i];
                while (stack.Count > 0 && stack.Peek().Span.End <= span.Start)
                {
                    stack.Pop();
                }

                selfOf[i] = span.Cpu;
                if (stack.Count > 0)
                {
                    // Nested: its time is its parent's no more.
                    selfOf[stack.Peek().Index] -= span.Cpu;
                }
                else
                {
                    var ms = span.Cpu / 1000;
                    threadTotals[group] = threadTotals.GetValueOrDefault(group) + ms;
                    tasks[(group, span.Posted)] = tasks.GetValueOrDefault((group, span.Posted)) + ms;
                    if (process == "renderer" && thread == "main")
                    {
                        mainByRenderer[pid] = mainByRenderer.GetValueOrDefault(pid) + ms;
                    }
                }

                stack.Push((span, i));
            }

            for (var i = 0; i < spans.Count; i++)
            {
                var key = (group, spans[i].Name);
                self[key] = self.GetValueOrDefault(key) + (Math.Max(0, selfOf[i]) / 1000);
            }
        }

        var lines = new List<string>
        {
            "  CPU time in traced events, by process and thread (ms; the events' thread time, or their wall time where the trace has none): "
                + string.Join(", ", threadTotals.OrderByDescending(t => t.Value).Where(t => t.Value >= 1).Select(t => string.Create(CultureInfo.InvariantCulture, $"{t.Key} {t.Value:0}"))),
            "  renderers' main threads (ms, largest first): " + string.Join(", ", mainByRenderer.Values.OrderDescending().Select(v => v.ToString("0", CultureInfo.InvariantCulture))),
        };
        foreach (var group in threadTotals.OrderByDescending(t => t.Value).Take(6).Select(t => t.Key))
        {
            lines.Add($"  {group}: tasks by the line that posted them (ms): "
                + string.Join(", ", tasks.Where(t => t.Key.Group == group).OrderByDescending(t => t.Value).Take(top).Where(t => t.Value >= 1)
                    .Select(t => string.Create(CultureInfo.InvariantCulture, $"{t.Key.Posted} {t.Value:0}"))));
            lines.Add($"  {group}: self time by event (ms): "
                + string.Join(", ", self.Where(s => s.Key.Group == group).OrderByDescending(s => s.Value).Take(top).Where(s => s.Value >= 1)
                    .Select(s => string.Create(CultureInfo.InvariantCulture, $"{s.Key.Event} {s.Value:0}"))));
        }

        return lines;
    }

    private static List<Span> Spans(Dictionary<(int, int), List<Span>> byThread, (int, int) key)
    {
        if (!byThread.TryGetValue(key, out var spans))
        {
            byThread[key] = spans = [];
        }

        return spans;
    }

    // A task's arguments name where it was posted from: src_file and src_func (legacy JSON) or, from Perfetto's
    // TaskExecution, posted_from's file_name and function_name; searched for wherever the exporter nests them.
    private static string Posted(JsonElement e)
    {
        if (!e.TryGetProperty("args", out var args) || args.ValueKind != JsonValueKind.Object)
        {
            return "-";
        }

        var file = Find(args, "src_file", "file_name", 0);
        var function = Find(args, "src_func", "function_name", 0);
        return file is null && function is null ? "-" : $"{Path.GetFileName(file ?? "?")}:{function ?? "?"}";
    }

    private static string? Find(JsonElement element, string name, string otherName, int depth)
    {
        if (element.ValueKind != JsonValueKind.Object || depth > 3)
        {
            return null;
        }

        foreach (var property in element.EnumerateObject())
        {
            if ((property.NameEquals(name) || property.NameEquals(otherName)) && property.Value.ValueKind == JsonValueKind.String)
            {
                return property.Value.GetString();
            }

            if (Find(property.Value, name, otherName, depth + 1) is { } found)
            {
                return found;
            }
        }

        return null;
    }

    private static string Kind(string processName) => processName switch
    {
        "Renderer" => "renderer",
        "GPU Process" => "gpu",
        "Browser" => "browser",
        _ => processName,
    };

    // Thread names without their numbers (CompositorTileWorker1, ThreadPoolForegroundWorker): one group per kind.
    private static string ThreadKind(string threadName) =>
        threadName is "CrRendererMain" or "CrBrowserMain" or "CrGpuMain" ? "main" : threadName.TrimEnd('0', '1', '2', '3', '4', '5', '6', '7', '8', '9');

    private readonly record struct Span(string Name, string Posted, double Start, double End, double Cpu);
}
