using System.Globalization;

namespace Talki.Signalling.Emulator;

/// <summary>
/// The CPU Lambda gives a function for its memory size, and a Linux CPU group that holds a process on this machine to it.
/// </summary>
/// <remarks>
/// <para>
/// Documented: "Lambda allocates CPU power in proportion to the amount of memory configured … At 1,769 MB, a function has
/// the equivalent of one vCPU (one vCPU-second of credits per second)"
/// (https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html). So a 1024 MB function gets 0.579 of a CPU's
/// time and a 256 MB one 0.145.
/// </para>
/// <para>
/// Observed, not documented: below 3,009 MB the environment shows 2 vCPUs (rwnx/lambda-cpuinfo), whose time together is
/// held to the share; the share is enforced in slices of about 20 ms — a function that spends more than its share of CPU
/// in a slice is paused until the slice ends (pwrdrvr/lambda-dispatch issue 246). The group here does the same with the
/// kernel's CFS bandwidth control: a quota of share × 20 ms of CPU time per 20 ms period, over this machine's cores.
/// Also observed: a function's init runs with a CPU burst, faster than its handler ("Lambda managed runtimes offer up to 10
/// seconds for function initialization with burst CPU", the Lambda Web Adapter's documentation, async-init page), so a
/// host joins its group once it is ready (<see cref="LambdaCpuGroup.Add"/>), not from its first instruction.
/// </para>
/// <para>
/// What this does not model: the host's own CPU (a faster or slower core than Graviton's), and the other tenants of a
/// Lambda host. Creating a group needs write access to a cgroup CPU controller (root, cgroup v1 <c>cpu</c> or cgroup v2
/// with <c>cpu</c> enabled); <see cref="CreateGroup"/> says so when there is none.
/// </para>
/// </remarks>
public static class LambdaCpuShare
{
    /// <summary>The memory size at which a function has one vCPU's time (documented).</summary>
    public const int MemoryOfOneVcpuMb = 1769;

    /// <summary>The enforcement period (observed on Lambda: about 20 ms).</summary>
    public static readonly TimeSpan Period = TimeSpan.FromMilliseconds(20);

    /// <summary>The share of one CPU's time a function of <paramref name="memorySizeMb"/> gets.</summary>
    /// <param name="memorySizeMb">The function's memory size (128 to 10,240 MB).</param>
    /// <returns>The share: 1.0 at 1,769 MB.</returns>
    public static double Of(int memorySizeMb)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(memorySizeMb, 128);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(memorySizeMb, 10_240);
        return memorySizeMb / (double)MemoryOfOneVcpuMb;
    }

    /// <summary>
    /// Creates a CPU group that holds its processes to the share of <paramref name="memorySizeMb"/>: a CFS quota of
    /// share × <see cref="Period"/> per period.
    /// </summary>
    /// <param name="name">A name for the group (made unique with this process's id).</param>
    /// <param name="memorySizeMb">The function's memory size.</param>
    /// <returns>The group; dispose it after its processes have exited.</returns>
    /// <exception cref="InvalidOperationException">No writable cgroup CPU controller on this machine.</exception>
    public static LambdaCpuGroup CreateGroup(string name, int memorySizeMb)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        var share = Of(memorySizeMb);
        var periodUs = (long)Period.TotalMicroseconds;
        var quotaUs = Math.Max(1000, (long)Math.Round(share * periodUs)); // the kernel's smallest quota is 1 ms
        var leaf = $"talki-lambda-{Environment.ProcessId}-{string.Concat(name.Where(char.IsAsciiLetterOrDigit).Take(24))}-{Guid.NewGuid():N}";
        try
        {
            // cgroup v1: the cpu controller's own hierarchy.
            const string V1 = "/sys/fs/cgroup/cpu";
            if (File.Exists(Path.Combine(V1, "cpu.cfs_quota_us")))
            {
                var path = Path.Combine(V1, leaf);
                Directory.CreateDirectory(path);
                File.WriteAllText(Path.Combine(path, "cpu.cfs_period_us"), periodUs.ToString(CultureInfo.InvariantCulture));
                File.WriteAllText(Path.Combine(path, "cpu.cfs_quota_us"), quotaUs.ToString(CultureInfo.InvariantCulture));
                return new LambdaCpuGroup(path, memorySizeMb, share, quotaUs, periodUs, version: 1);
            }

            // cgroup v2: cpu.max in a child of the root, with the cpu controller enabled for the root's children.
            const string V2 = "/sys/fs/cgroup";
            if (File.Exists(Path.Combine(V2, "cgroup.controllers")) && File.ReadAllText(Path.Combine(V2, "cgroup.controllers")).Split(' ', '\n').Contains("cpu"))
            {
                if (!File.ReadAllText(Path.Combine(V2, "cgroup.subtree_control")).Split(' ', '\n').Contains("cpu"))
                {
                    File.WriteAllText(Path.Combine(V2, "cgroup.subtree_control"), "+cpu");
                }

                var path = Path.Combine(V2, leaf);
                Directory.CreateDirectory(path);
                File.WriteAllText(Path.Combine(path, "cpu.max"), string.Create(CultureInfo.InvariantCulture, $"{quotaUs} {periodUs}"));
                return new LambdaCpuGroup(path, memorySizeMb, share, quotaUs, periodUs, version: 2);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InvalidOperationException($"Holding a function to its CPU share needs a writable cgroup CPU controller (run as root): {e.Message}", e);
        }

        throw new InvalidOperationException("Holding a function to its CPU share needs a cgroup CPU controller: neither /sys/fs/cgroup/cpu (v1) nor a cgroup v2 root with the cpu controller was found.");
    }
}

/// <summary>A Linux CPU group holding its processes to a Lambda function's CPU share (<see cref="LambdaCpuShare"/>).</summary>
public sealed class LambdaCpuGroup : IDisposable
{
    private readonly int _version;

    internal LambdaCpuGroup(string path, int memorySizeMb, double share, long quotaUs, long periodUs, int version)
    {
        Path = path;
        MemorySizeMb = memorySizeMb;
        Share = share;
        QuotaUs = quotaUs;
        PeriodUs = periodUs;
        _version = version;
    }

    /// <summary>Gets the group's directory.</summary>
    public string Path { get; }

    /// <summary>Gets the memory size whose share the group holds.</summary>
    public int MemorySizeMb { get; }

    /// <summary>Gets the share of one CPU.</summary>
    public double Share { get; }

    /// <summary>Gets the CPU time allowed per period, in microseconds.</summary>
    public long QuotaUs { get; }

    /// <summary>Gets the period, in microseconds.</summary>
    public long PeriodUs { get; }

    /// <summary>
    /// Moves a process, every thread of it, into the group: from now on it gets the share. A host is moved once it is ready,
    /// as Lambda runs a function's init (until the Web Adapter's readiness check answers) with a CPU burst and holds its
    /// invocations to the share.
    /// </summary>
    /// <param name="processId">The process.</param>
    public void Add(int processId)
        => File.WriteAllText(System.IO.Path.Combine(Path, "cgroup.procs"), processId.ToString(CultureInfo.InvariantCulture));

    /// <summary>Reads the group's CPU statistics: the CPU time its processes used, and how often and how long the quota paused them.</summary>
    /// <returns>The figures, or <see langword="null"/> when the group's files cannot be read.</returns>
    public LambdaCpuStatistics? Statistics()
    {
        try
        {
            var stat = File.ReadAllLines(System.IO.Path.Combine(Path, "cpu.stat"))
                .Select(l => l.Split(' ', 2))
                .Where(p => p.Length == 2)
                .ToDictionary(p => p[0], p => long.Parse(p[1], CultureInfo.InvariantCulture), StringComparer.Ordinal);
            if (_version == 1)
            {
                // v1: throttled_time in nanoseconds.
                return new LambdaCpuStatistics(stat.GetValueOrDefault("nr_periods"), stat.GetValueOrDefault("nr_throttled"), TimeSpan.FromTicks(stat.GetValueOrDefault("throttled_time") / 100));
            }

            return new LambdaCpuStatistics(stat.GetValueOrDefault("nr_periods"), stat.GetValueOrDefault("nr_throttled"), TimeSpan.FromMicroseconds(stat.GetValueOrDefault("throttled_usec")));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            return null;
        }
    }

    /// <summary>Removes the group (its processes must have exited; a group that still holds one is left for the kernel).</summary>
    public void Dispose()
    {
        for (var attempt = 0; attempt < 20; attempt++)
        {
            try
            {
                Directory.Delete(Path);
                return;
            }
            catch (DirectoryNotFoundException)
            {
                return;
            }
            catch (IOException)
            {
                Thread.Sleep(50); // the last task leaves the group a moment after its process is reaped
            }
        }
    }

    /// <inheritdoc />
    public override string ToString()
        => string.Create(CultureInfo.InvariantCulture, $"CPU share {Share:F3} of a core ({MemorySizeMb} MB: {QuotaUs} µs per {PeriodUs} µs)");
}

/// <summary>A CPU group's counters since it was created.</summary>
/// <param name="Periods">Enforcement periods in which its processes ran.</param>
/// <param name="ThrottledPeriods">Periods in which the quota ran out and the processes were paused.</param>
/// <param name="ThrottledTime">How long they were paused in all.</param>
public sealed record LambdaCpuStatistics(long Periods, long ThrottledPeriods, TimeSpan ThrottledTime);
