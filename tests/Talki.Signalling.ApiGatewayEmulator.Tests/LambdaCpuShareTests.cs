using System.Diagnostics;
using System.Globalization;

namespace Talki.Signalling.Emulator.Tests;

/// <summary>The CPU a function gets for its memory size, and the group that holds a process on this machine to it.</summary>
public sealed class LambdaCpuShareTests
{
    [Theory]
    [InlineData(1769, 1.0)]
    [InlineData(1024, 0.5789)]
    [InlineData(256, 0.1447)]
    [InlineData(128, 0.0724)]
    [InlineData(3538, 2.0)]
    public void Share_IsTheMemorySizeOver1769Mb_AsLambdasDocumentationSays(int memorySizeMb, double share)
        => Assert.Equal(share, LambdaCpuShare.Of(memorySizeMb), 4);

    [Theory]
    [InlineData(127)]
    [InlineData(10_241)]
    [InlineData(0)]
    public void Share_OfAMemorySizeLambdaDoesNotAllow_IsRefused(int memorySizeMb)
        => Assert.Throws<ArgumentOutOfRangeException>(() => LambdaCpuShare.Of(memorySizeMb));

    /// <summary>
    /// A process that spins, moved into the group of a 128 MB function (7.2 % of a core), gets about that share of the CPU
    /// from then on, however hard it tries; where this machine has no writable CPU controller, creating the group says why.
    /// </summary>
    [Fact]
    public async Task SpinningProcess_InTheGroupOfA128MbFunction_GetsAboutItsShare_NotTheMachine()
    {
        LambdaCpuGroup group;
        try
        {
            group = LambdaCpuShare.CreateGroup("x", 128); // a short name as well as a long one (the next test) makes a group
        }
        catch (InvalidOperationException e)
        {
            // No cgroup CPU controller to write (not root, or none mounted): the refusal is the documented one.
            Assert.Contains("cgroup", e.Message, StringComparison.Ordinal);
            return;
        }

        using (group)
        {
            Assert.Equal(1447, group.QuotaUs); // 128 / 1769 × 20 ms
            Assert.Equal(20_000, group.PeriodUs);
            using var spinner = Process.Start(new ProcessStartInfo("/bin/sh") { ArgumentList = { "-c", "while :; do :; done" }, UseShellExecute = false })!;
            try
            {
                // Unconfined first (as a function's init), then in the group: only what it uses after the move is counted.
                await Task.Delay(TimeSpan.FromMilliseconds(100));
                group.Add(spinner.Id);
                var before = CpuTime(spinner.Id);
                var wall = Stopwatch.StartNew();
                await Task.Delay(TimeSpan.FromMilliseconds(600));
                var cpu = CpuTime(spinner.Id) - before;
                wall.Stop();

                // Unconfined it would have used about all of the 600 ms. Held to 7.2 % it uses about 45 ms; the bound leaves
                // room for a few periods' rounding and the shell's start, and is still a fifth of the unconfined figure.
                Assert.True(cpu < TimeSpan.FromMilliseconds(120), $"the spinning process used {cpu.TotalMilliseconds:F0} ms of CPU in {wall.ElapsedMilliseconds} ms");
                var statistics = group.Statistics();
                Assert.NotNull(statistics);
                Assert.True(statistics.ThrottledPeriods > 0, $"never paused: {statistics}");
            }
            finally
            {
                spinner.Kill();
                await spinner.WaitForExitAsync();
            }
        }

        Assert.False(Directory.Exists(group.Path)); // removed once its process is gone
    }

    [Fact]
    public void Group_WithALongName_IsCreatedAndRemoved()
    {
        try
        {
            var group = LambdaCpuShare.CreateGroup(new string('b', 300) + "-Backend-0", 1024);
            Assert.True(Directory.Exists(group.Path));
            Assert.Equal(11_577, group.QuotaUs); // 1024 / 1769 × 20 ms
            group.Dispose();
            Assert.False(Directory.Exists(group.Path));
        }
        catch (InvalidOperationException e)
        {
            Assert.Contains("cgroup", e.Message, StringComparison.Ordinal); // no writable CPU controller here
        }
    }

    /// <summary>utime + stime of /proc/PID/stat, in clock ticks of 10 ms (USER_HZ 100 on Linux).</summary>
    private static TimeSpan CpuTime(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        var ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
        return TimeSpan.FromMilliseconds(ticks * 10);
    }
}
