using System.Diagnostics;
using System.Text.Json;
using Microsoft.Playwright;

namespace Talki.Samples.Browser.LinkUpBenchmark;

/// <summary>
/// When the call was on screen: the time each page first had a tile for every other member in its DOM (test-side, a
/// <c>MutationObserver</c> added before the app loads; the app is not changed). The link-up time ends when the last link
/// connects; the app renders its tiles after that, when it renders: this is the figure the user sees.
/// </summary>
internal static class TilesShown
{
    private const string Script = """
        (() => {
          if (window.__talkiTiles) return;
          const seen = window.__talkiTiles = [];
          let last = -1;
          const check = () => {
            const n = document.querySelectorAll('[data-testid="video-tile"][data-self="false"]').length;
            if (n !== last) { last = n; seen.push([Date.now(), n]); }
          };
          document.addEventListener('DOMContentLoaded', () => {
            new MutationObserver(check).observe(document.body, { childList: true, subtree: true });
            check();
          });
        })();
        """;

    /// <summary>Adds the observer to every page of <paramref name="context"/>, from its next navigation on.</summary>
    public static Task InstallAsync(IBrowserContext context) => context.AddInitScriptAsync(Script);

    /// <summary>
    /// Waits until every page shows <paramref name="others"/> remote tiles, then returns the latest of the pages' first
    /// times at or after <paramref name="since"/> (their <c>Date.now()</c> scale) less <paramref name="since"/>; NaN when a
    /// page did not show them within <paramref name="timeout"/>.
    /// </summary>
    public static async Task<double> LatestAsync(IEnumerable<IPage> pages, int others, double since, TimeSpan timeout)
    {
        var latest = 0.0;
        var waited = Stopwatch.StartNew();
        foreach (var page in pages)
        {
            while (true)
            {
                var json = await page.EvaluateAsync<string>("() => JSON.stringify(window.__talkiTiles ?? [])");
                using var document = JsonDocument.Parse(json);
                var shown = document.RootElement.EnumerateArray()
                    .Select(e => (At: e[0].GetDouble(), Count: e[1].GetInt32()))
                    .FirstOrDefault(e => e.At >= since && e.Count >= others);
                if (shown.Count >= others)
                {
                    latest = Math.Max(latest, shown.At - since);
                    break;
                }

                if (waited.Elapsed > timeout)
                {
                    return double.NaN;
                }

                await Task.Delay(100);
            }
        }

        return latest;
    }
}
