using System.Globalization;

namespace Talki.Samples.Browser.LinkUpBenchmark;

/// <summary>
/// The benchmark's table: a row per mesh size (and gather window), each size against the smallest one run for run. The
/// notes quote its ratios ("1.08× (1.02–1.19)"), so the arithmetic lives here, apart from Chromium, and is tested.
/// </summary>
internal static class LinkUpTable
{
    /// <summary>
    /// One row. The ratio to the smallest size pairs each repetition with the <i>same</i> repetition of the smallest size (the
    /// two runs a minute apart at most when interleaved), over the repetitions where both linked up; the smallest size's own
    /// row, or a size with no such pair, shows "–".
    /// </summary>
    /// <param name="results">The size's runs.</param>
    /// <param name="smallest">The smallest size's runs with the same gather window.</param>
    /// <param name="beforeClickMs">The wait before the click (0: no "before the click" figure).</param>
    public static string Row(SizeResults results, SizeResults smallest, int beforeClickMs)
    {
        var (size, window, failed) = (results.Size, results.Window, results.Failed);
        var links = size * (size - 1) / 2;
        var sorted = results.ByRepetition.Values.Order().ToList();
        if (sorted.Count == 0)
        {
            return string.Create(CultureInfo.InvariantCulture, $"| {size} | {links} | {window} | 0 | – | – | – | – | – | – | – | – | – | {failed} |");
        }

        var ratios = Ratios(results, smallest);
        var against = size == smallest.Size || ratios.Count == 0 ? "–" : string.Create(CultureInfo.InvariantCulture, $"{Median(ratios):0.00}× ({ratios.Min():0.00}–{ratios.Max():0.00}, {ratios.Count} pairs)");
        var (atLinkUp, afterSettle, cpuBusy, cpuBusyBefore) = (results.AtLinkUp, results.AfterSettle, results.CpuBusy, results.CpuBusyBefore);
        return string.Create(CultureInfo.InvariantCulture,
            $"| {size} | {links} | {window} | {sorted.Count} | {Median(sorted):0} | {sorted[0]:0} | {sorted[^1]:0} | {against} | {Median(cpuBusy):P0} ({cpuBusy.Min():P0}–{cpuBusy.Max():P0}) | {(beforeClickMs == 0 ? "–" : string.Create(CultureInfo.InvariantCulture, $"{Median(cpuBusyBefore):P0} ({cpuBusyBefore.Min():P0}–{cpuBusyBefore.Max():P0})"))} | {Median(atLinkUp):0.#} ({atLinkUp.Min()}–{atLinkUp.Max()}) | {Median(afterSettle):0.#} ({afterSettle.Min()}–{afterSettle.Max()}) | {Tiles(results.TilesShown)} | {failed} |");
    }

    // The tiles' times, median (min–max) of the runs where every page showed them, and how many did not within the wait.
    private static string Tiles(List<double> shown)
    {
        var known = shown.Where(t => !double.IsNaN(t)).ToList();
        var missing = shown.Count - known.Count;
        var figure = known.Count == 0 ? "–" : string.Create(CultureInfo.InvariantCulture, $"{Median(known):0} ({known.Min():0}–{known.Max():0})");
        return missing == 0 ? figure : string.Create(CultureInfo.InvariantCulture, $"{figure}, {missing} not shown");
    }

    /// <summary>Each repetition's link-up time divided by the same repetition's of <paramref name="smallest"/>, where both linked up, in repetition order.</summary>
    public static List<double> Ratios(SizeResults results, SizeResults smallest) =>
        [.. results.ByRepetition.Where(p => smallest.ByRepetition.ContainsKey(p.Key)).Select(p => p.Value / smallest.ByRepetition[p.Key])];

    /// <summary>The median (the mean of the two middle values for an even count); NaN for none.</summary>
    public static double Median<T>(IEnumerable<T> values)
        where T : struct, IConvertible
    {
        var sorted = values.Select(v => v.ToDouble(CultureInfo.InvariantCulture)).Order().ToList();
        return sorted.Count == 0 ? double.NaN : sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[(sorted.Count / 2) - 1] + sorted[sorted.Count / 2]) / 2;
    }
}

/// <summary>One mesh size's (and gather window's) timed runs: the link-up time of each repetition that linked up, and the rest.</summary>
internal sealed class SizeResults(int size, string window)
{
    public int Size { get; } = size;

    public string Window { get; } = window;

    public SortedDictionary<int, double> ByRepetition { get; } = [];

    public List<int> AtLinkUp { get; } = [];

    public List<int> AfterSettle { get; } = [];

    public List<double> CpuBusy { get; } = [];

    public List<double> CpuBusyBefore { get; } = [];

    /// <summary>Each run's time until every page showed every other member's tile (NaN: not within the wait).</summary>
    public List<double> TilesShown { get; } = [];

    public int Failed { get; set; }
}
