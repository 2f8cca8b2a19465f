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
          // How long the app's own listeners on RTCPeerConnection and RTCDataChannel events run (for Talki's adapter: the
          // module's emit and .NET's synchronous handling of the event), summed per event type.
          const handlers = {};
          window.__talkiHandlers = handlers;
          const timed = (target, type, fn) => function (ev) {
            const start = now();
            try { return fn.call(this, ev); } finally {
              (handlers[target + ' ' + type] ??= []).push([start, now() - start]);
            }
          };
          const NativeDc = window.RTCDataChannel;
          if (NativeDc) {
            const nativeAdd = NativeDc.prototype.addEventListener ?? EventTarget.prototype.addEventListener;
            NativeDc.prototype.addEventListener = function (type, fn, options) {
              return nativeAdd.call(this, type, typeof fn === 'function' ? timed('channel', type, fn) : fn, options);
            };
          }
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
              addEventListener(type, fn, options) {
                return super.addEventListener(type, typeof fn === 'function' && !this.__tracing ? timed('pc', type, fn) : fn, options);
              }
              constructor(...args) {
                const start = now();
                super(...args);
                this.__traceId = ++next;
                this.__tracing = true;
                add(`pc${this.__traceId} new`, start, now());
                this.addEventListener('icecandidate', ev => add(`pc${this.__traceId} icecandidate${ev.candidate ? '' : ' (end)'}`, now()));
                this.addEventListener('iceconnectionstatechange', () => add(`pc${this.__traceId} ice ${this.iceConnectionState}`, now()));
                this.addEventListener('connectionstatechange', () => add(`pc${this.__traceId} ${this.connectionState}`, now()));
                this.__tracing = false;
              }
            };
          }
          try {
            new PerformanceObserver(list => {
              for (const e of list.getEntries()) add('long task', performance.timeOrigin + e.startTime, performance.timeOrigin + e.startTime + e.duration);
            }).observe({ type: 'longtask', buffered: true });
          } catch { }
          try {
            new PerformanceObserver(list => {
              for (const e of list.getEntries()) add(`measure ${e.name}`, performance.timeOrigin + e.startTime, performance.timeOrigin + e.startTime + e.duration);
            }).observe({ type: 'measure', buffered: true });
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
        var lines = new List<string>(entries.Count + 8)
        {
            string.Create(CultureInfo.InvariantCulture, $"long tasks after the click: {busy:0} ms in all"),
        };

        // The app's own listeners on the links' events, from the click on: how often each ran and for how long in all.
        var handlersJson = await page.EvaluateAsync<string>("() => JSON.stringify(window.__talkiHandlers ?? {})");
        using var handlers = JsonDocument.Parse(handlersJson);
        var calls = handlers.RootElement.EnumerateObject()
            .Select(h => (Event: h.Name, Runs: h.Value.EnumerateArray().Where(r => r[0].GetDouble() >= since).Select(r => r[1].GetDouble()).ToList()))
            .Where(h => h.Runs.Count > 0)
            .OrderByDescending(h => h.Runs.Sum())
            .ToList();
        lines.Add(string.Create(CultureInfo.InvariantCulture, $"the app's listeners on link events after the click: {calls.Sum(h => h.Runs.Count)} calls, {calls.Sum(h => h.Runs.Sum()):0} ms in all"));
        lines.AddRange(calls.Select(h => string.Create(CultureInfo.InvariantCulture, $"  {h.Event}: {h.Runs.Count} × {h.Runs.Sum() / h.Runs.Count:0.0} ms (max {h.Runs.Max():0.0})")));
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
