using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.Playwright;

namespace Talki.Samples.Browser.LinkUpBenchmark;

/// <summary>
/// A timeline of one page, test-side (<c>--trace</c>; the app is not changed): when its main thread dispatched each
/// signalling message (before the app's own handler runs), when the app sent one, when it called the
/// RTCPeerConnection methods and how long their promises took, when the connections' events fired, and every long task
/// (the main thread busy for 50 ms or more, W3C Long Tasks API). Times are the page's <c>Date.now()</c> scale, so they
/// compare with the admin's timed click.
/// </summary>
internal static class PageTrace
{
    private const string Script = """
        (() => {
          if (window.__talkiTrace) return;
          const trace = [];
          window.__talkiTrace = trace;
          const now = () => performance.timeOrigin + performance.now();
          const add = (what, start, end) => trace.push({ what, start, end: end ?? start });
          const typeOf = data => {
            if (typeof data !== 'string') return 'binary';
            const m = /"type"\s*:\s*"([a-z-]+)"/.exec(data);
            const d = /"description"\s*:\s*\{\s*"type"\s*:\s*"([a-z]+)"/.exec(data);
            return (m ? m[1] : '?') + (d ? ':' + d[1] : '') + ` ${data.length}B`;
          };
          const NativeSocket = window.WebSocket;
          class TracedSocket extends NativeSocket {
            constructor(...args) {
              super(...args);
              add('ws open ' + String(args[0]).split('?')[0], now());
              this.addEventListener('message', ev => add('ws in ' + typeOf(ev.data), now()));
            }
            send(data) { add('ws out ' + typeOf(data), now()); return super.send(data); }
          }
          window.WebSocket = TracedSocket;
          const NativePc = window.RTCPeerConnection;
          if (NativePc) {
            let next = 0;
            const wrap = (name) => {
              const native = NativePc.prototype[name];
              NativePc.prototype[name] = function (...args) {
                const start = now();
                const label = `pc${this.__traceId} ${name}` + (name.endsWith('Description') && args[0] && args[0].type ? ':' + args[0].type : '');
                const result = native.apply(this, args);
                if (result && typeof result.then === 'function') {
                  result.then(() => add(label, start, now()), () => add(label + ' (failed)', start, now()));
                } else {
                  add(label, start, now());
                }
                return result;
              };
            };
            ['setLocalDescription', 'setRemoteDescription', 'addIceCandidate', 'createDataChannel', 'addTransceiver'].forEach(wrap);
            window.RTCPeerConnection = class extends NativePc {
              constructor(...args) {
                const start = now();
                super(...args);
                this.__traceId = ++next;
                add(`pc${this.__traceId} new`, start, now());
                this.addEventListener('icecandidate', ev => add(`pc${this.__traceId} icecandidate${ev.candidate ? '' : ' (end)'}`, now()));
                this.addEventListener('iceconnectionstatechange', () => add(`pc${this.__traceId} ice ${this.iceConnectionState}`, now()));
                this.addEventListener('connectionstatechange', () => add(`pc${this.__traceId} ${this.connectionState}`, now()));
              }
            };
          }
          try {
            new PerformanceObserver(list => {
              for (const e of list.getEntries()) add('long task', performance.timeOrigin + e.startTime, performance.timeOrigin + e.startTime + e.duration);
            }).observe({ type: 'longtask', buffered: true });
          } catch { }
        })();
        """;

    /// <summary>Adds the tracing to <paramref name="page"/>: from its next navigation on.</summary>
    public static Task InstallAsync(IPage page) => page.AddInitScriptAsync(Script);

    /// <summary>The page's timeline from <paramref name="since"/> (its <c>Date.now()</c> scale), one line per entry, in ms after it.</summary>
    public static async Task<IReadOnlyList<string>> ReadAsync(IPage page, double since)
    {
        var json = await page.EvaluateAsync<string>("() => JSON.stringify(window.__talkiTrace ?? [])");
        using var document = JsonDocument.Parse(json);
        var entries = document.RootElement.EnumerateArray()
            .Select(e => (What: e.GetProperty("what").GetString() ?? "?", Start: e.GetProperty("start").GetDouble() - since, End: e.GetProperty("end").GetDouble() - since))
            .Where(e => e.End >= 0)
            .OrderBy(e => e.Start)
            .ToList();
        var busy = entries.Where(e => e.What == "long task").Sum(e => e.End - Math.Max(0, e.Start));
        var lines = new List<string>(entries.Count + 1)
        {
            string.Create(CultureInfo.InvariantCulture, $"long tasks after the click: {busy:0} ms in all"),
        };
        foreach (var (what, start, end) in entries)
        {
            var line = new StringBuilder();
            line.Append(CultureInfo.InvariantCulture, $"{start,7:0} ");
            if (end - start >= 1)
            {
                line.Append(CultureInfo.InvariantCulture, $"–{end:0} ({end - start:0} ms) ");
            }

            lines.Add(line.Append(what).ToString());
        }

        return lines;
    }
}
