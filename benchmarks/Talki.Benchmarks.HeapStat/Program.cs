using System.Globalization;
using System.Runtime.InteropServices;
using Microsoft.Diagnostics.Runtime;

// heapstat PID [--min N] [--top N]
//   The objects reachable from the process's roots, by type: bytes, count, bytes per object. Strings, byte arrays and
//   object arrays are split by size; strings and byte arrays are also attributed to the type that first references
//   them (in the walk's order: one referrer each). The process is suspended while it is read.
if (args.Length == 0 || !int.TryParse(args[0], NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
{
    Console.Error.WriteLine("usage: Talki.Benchmarks.HeapStat PID [--min COUNT (default 4000)] [--top N (default 40)]");
    return 2;
}

var min = Option("--min", 4000);
var top = Option("--top", 40);

using var target = DataTarget.AttachToProcess(pid, suspend: true);
var clr = target.ClrVersions.FirstOrDefault() ?? throw new InvalidOperationException($"process {pid} runs no CLR that ClrMD can read (a Native AOT process has no DAC)");

// The DAC of the runtime this tool runs on: the same shared runtime as the target on a machine with one .NET 10.
var dac = Path.Combine(RuntimeEnvironment.GetRuntimeDirectory(), OperatingSystem.IsWindows() ? "mscordaccore.dll" : "libmscordaccore.so");
using var runtime = clr.CreateRuntime(dac, ignoreMismatch: true);
var heap = runtime.Heap;

var seen = new HashSet<ulong>();
var pending = new Stack<ClrObject>();
foreach (var root in heap.EnumerateRoots())
{
    if (root.Object.IsValid && seen.Add(root.Object.Address))
    {
        pending.Push(root.Object);
    }
}

var byType = new Dictionary<string, (long Count, long Bytes)>(StringComparer.Ordinal);
var byReferrer = new Dictionary<string, long>(StringComparer.Ordinal);
long reachable = 0;
while (pending.Count > 0)
{
    var obj = pending.Pop();
    var size = (long)obj.Size;
    reachable += size;
    var name = obj.Type?.Name ?? "?";
    if (name is "System.String" or "System.Byte[]" or "System.Object[]")
    {
        name += " [" + SizeClass(size) + "]";
    }

    var (count, bytes) = byType.GetValueOrDefault(name);
    byType[name] = (count + 1, bytes + size);
    foreach (var reference in obj.EnumerateReferences(carefully: false, considerDependantHandles: true))
    {
        if (!reference.IsValid || !seen.Add(reference.Address))
        {
            continue;
        }

        pending.Push(reference);
        if (reference.Type?.Name is "System.String" or "System.Byte[]")
        {
            var key = reference.Type.Name + " <- " + (obj.Type?.Name ?? "?");
            byReferrer[key] = byReferrer.GetValueOrDefault(key) + (long)reference.Size;
        }
    }
}

Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"reachable {reachable:N0} bytes in {seen.Count:N0} objects (process {pid})"));

// Where the GC heap's committed memory goes, by kind of region: the reachable objects above, garbage not yet collected
// (objects no root reaches), free space the GC keeps between objects (its free objects), and committed memory past the
// last object. The difference between an idle member's committed bytes and its reachable bytes is in these columns.
Console.WriteLine("== GC heap by kind of region: committed, reachable, garbage, free objects, committed past the objects (bytes)");
var kinds = new SortedDictionary<string, long[]>(StringComparer.Ordinal);
foreach (var segment in heap.Segments)
{
    var row = Row(segment.Kind.ToString());
    row[0] += (long)segment.CommittedMemory.Length;
    row[4] += Math.Max(0L, (long)segment.CommittedMemory.End - (long)segment.ObjectRange.End);
    row[5]++;
    foreach (var obj in segment.EnumerateObjects(carefully: false))
    {
        var size = (long)obj.Size;
        row[obj.IsFree ? 3 : seen.Contains(obj.Address) ? 1 : 2] += size;
    }
}

var total = new long[6];
foreach (var (kind, row) in kinds)
{
    PrintRow(kind, row);
    for (var i = 0; i < row.Length; i++)
    {
        total[i] += row[i];
    }
}

PrintRow("all", total);
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"== types with at least {min:N0} objects: bytes, count, bytes per object"));
foreach (var (name, (count, bytes)) in byType.Where(t => t.Value.Count >= min).OrderByDescending(t => t.Value.Bytes))
{
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{bytes,14:N0} {count,10:N0} {bytes / (double)count,7:0} {name}"));
}

Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"== strings and byte arrays by the type that first references them (top {top})"));
foreach (var (key, bytes) in byReferrer.OrderByDescending(r => r.Value).Take(top))
{
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{bytes,14:N0} {key}"));
}

return 0;

long[] Row(string kind)
{
    if (!kinds.TryGetValue(kind, out var row))
    {
        kinds[kind] = row = new long[6];
    }

    return row;
}

static void PrintRow(string kind, long[] row) =>
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{kind,-12} {row[0],14:N0} {row[1],14:N0} {row[2],14:N0} {row[3],14:N0} {row[4],14:N0}  ({row[5]:N0} regions)"));

int Option(string name, int fallback)
{
    var at = Array.IndexOf(args, name);
    return at > 0 && at + 1 < args.Length && int.TryParse(args[at + 1], NumberStyles.None, CultureInfo.InvariantCulture, out var value) ? value : fallback;
}

static string SizeClass(long size) => size switch
{
    <= 64 => "<=64",
    <= 128 => "<=128",
    <= 256 => "<=256",
    <= 512 => "<=512",
    <= 1024 => "<=1K",
    _ => ">1K",
};
