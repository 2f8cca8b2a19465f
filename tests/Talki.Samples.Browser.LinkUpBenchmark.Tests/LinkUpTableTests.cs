using System.Globalization;

namespace Talki.Samples.Browser.LinkUpBenchmark.Tests;

/// <summary>
/// The link-up benchmark's table: each size against the same repetition of the smallest size, as the notes quote it
/// ("4 members 1.08× (1.02–1.19)").
/// </summary>
public sealed class LinkUpTableTests
{
    [Fact]
    public void Row_EachRepetitionAgainstTheSameRepetitionOfTheSmallestSize_OnlyWhereBothLinkedUp()
    {
        var two = Runs(2, (0, 200), (1, 250), (2, 220));
        var four = Runs(4, (0, 300), (1, 500), (3, 400));
        four.Failed = 1;

        // Repetition 0: 300 / 200 = 1.5; repetition 1: 500 / 250 = 2.0; repetition 3 has no 2-member run (and 2 no
        // 4-member one): left out. Pairing by rank instead (300 / 200, 400 / 220, 500 / 250) would give 1.82 in the middle.
        Assert.Equal([1.5, 2.0], LinkUpTable.Ratios(four, two));
        var row = LinkUpTable.Row(four, two, beforeClickMs: 1000);
        Assert.StartsWith("| 4 | 6 | default | 3 | 400 | 300 | 500 | 1.75× (1.50–2.00, 2 pairs) |", row, StringComparison.Ordinal);
        Assert.EndsWith("| 1 |", row, StringComparison.Ordinal);
    }

    [Fact]
    public void Row_TheSmallestSizeAndASizeThatNeverLinkedUp_HaveNoRatio()
    {
        var two = Runs(2, (0, 200), (1, 250), (2, 220));
        Assert.StartsWith("| 2 | 1 | default | 3 | 220 | 200 | 250 | – |", LinkUpTable.Row(two, two, beforeClickMs: 1000), StringComparison.Ordinal);

        var eight = Runs(8);
        eight.Failed = 3;
        Assert.Equal("| 8 | 28 | default | 0 | – | – | – | – | – | – | – | – | – | 3 |", LinkUpTable.Row(eight, two, beforeClickMs: 1000));

        // Runs of a size whose repetitions never met a run of the smallest size: figures, but no ratio.
        var six = Runs(6, (5, 900));
        Assert.StartsWith("| 6 | 15 | default | 1 | 900 | 900 | 900 | – |", LinkUpTable.Row(six, two, beforeClickMs: 1000), StringComparison.Ordinal);
    }

    [Fact]
    public void Row_TheMachinesCpuAndTheSignals_AsMediansWithTheirRange_InTheInvariantCulture_WhateverTheCurrentOne()
    {
        var two = Runs(2, (0, 200), (1, 250));
        var four = Runs(4, (0, 300), (1, 450));
        four.CpuBusy.Clear();
        four.CpuBusyBefore.Clear();
        four.AtLinkUp.Clear();
        four.AfterSettle.Clear();
        four.CpuBusy.AddRange([0.77, 0.85]);
        four.CpuBusyBefore.AddRange([0.22, 0.36]);
        four.AtLinkUp.AddRange([1, 1, 2, 1]);
        four.AfterSettle.AddRange([1, 2, 2, 3]);
        four.TilesShown.Clear();
        four.TilesShown.AddRange([1_234.4, 987.6]);

        var culture = CultureInfo.CurrentCulture;
        try
        {
            // Turkish writes 1.65 as "1,65" and 29 % as "%29".
            CultureInfo.CurrentCulture = CultureInfo.GetCultureInfo("tr-TR");
            Assert.Equal(
                "| 4 | 6 | default | 2 | 375 | 300 | 450 | 1.65× (1.50–1.80, 2 pairs) | 81 % (77 %–85 %) | 29 % (22 %–36 %) | 1 (1–2) | 2 (1–3) | 1111 (988–1234) | 0 |",
                LinkUpTable.Row(four, two, beforeClickMs: 1000));
            Assert.Contains("| 1.65× (1.50–1.80, 2 pairs) | 81 % (77 %–85 %) | – | 1 (1–2) |", LinkUpTable.Row(four, two, beforeClickMs: 0), StringComparison.Ordinal);
        }
        finally
        {
            CultureInfo.CurrentCulture = culture;
        }
    }

    [Fact]
    public void Row_TilesShown_MedianOfTheRunsThatShowedThem_AndHowManyDidNot()
    {
        var two = Runs(2, (0, 200), (1, 250), (2, 220));
        var eight = Runs(8, (0, 900), (1, 1_000), (2, 1_100));
        eight.TilesShown.Clear();
        eight.TilesShown.AddRange([1_050, double.NaN, 1_250]);
        Assert.EndsWith("| 1150 (1050–1250), 1 not shown | 0 |", LinkUpTable.Row(eight, two, beforeClickMs: 1000), StringComparison.Ordinal);

        eight.TilesShown.Clear();
        eight.TilesShown.AddRange([double.NaN, double.NaN, double.NaN]);
        Assert.EndsWith("| –, 3 not shown | 0 |", LinkUpTable.Row(eight, two, beforeClickMs: 1000), StringComparison.Ordinal);
    }

    [Fact]
    public void Median_OddCountTheMiddle_EvenCountTheMeanOfTheTwoMiddle_NoneNaN()
    {
        Assert.Equal(3, LinkUpTable.Median([5, 1, 3]));
        Assert.Equal(2.5, LinkUpTable.Median([4, 1, 3, 2]));
        Assert.True(double.IsNaN(LinkUpTable.Median(Array.Empty<int>())));
    }

    /// <summary>A size's runs as the benchmark records them: a link-up time per repetition that linked up, with its CPU and signals.</summary>
    private static SizeResults Runs(int size, params (int Repetition, double Milliseconds)[] runs)
    {
        var results = new SizeResults(size, "default");
        foreach (var (repetition, milliseconds) in runs)
        {
            results.ByRepetition[repetition] = milliseconds;
            results.CpuBusy.Add(0.5);
            results.CpuBusyBefore.Add(0.2);
            results.AtLinkUp.Add(1);
            results.AfterSettle.Add(1);
            results.TilesShown.Add(milliseconds + 100);
        }

        return results;
    }
}
