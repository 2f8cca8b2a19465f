using System.Globalization;
using Talki.Samples.Browser.EndToEndTests.Harness;

// Link-up benchmark of the browser sample (see README.md): for meshes of 2 to 8 members in headless Chromium,
// the time from the admin's click on "admit" for the last member to every link on every page connected.
// --media video (fake camera and microphone), audio (no camera: fake microphone only) or none (both refused).
var options = BenchmarkOptions.Parse(args);
if (options is null)
{
    Console.Error.WriteLine(BenchmarkOptions.Usage);
    return 2;
}

void Log(string line) => Console.Error.WriteLine($"{DateTime.Now:HH:mm:ss} {line}");

var timeout = TimeSpan.FromSeconds(60);
await using var host = await SampleHost.StartAsync(TimeSpan.FromMinutes(120));
Log($"sample host on {host.BaseAddress}");
await using var chromium = await Chromium.LaunchAsync(host.BaseAddress, Log);

var results = new List<(int Size, List<double> Milliseconds, int Failed)>();
var run = 0;
foreach (var size in options.Sizes)
{
    var samples = new List<double>();
    var failed = 0;
    for (var repetition = -options.Warmup; repetition < options.Repetitions; repetition++)
    {
        run++;
        var label = repetition < 0 ? "warm-up" : $"run {repetition + 1}/{options.Repetitions}";
        double milliseconds;
        try
        {
            milliseconds = await LinkUpAsync(size, run);
        }
        catch (TimeoutException e)
        {
            // A mesh that never links up is a finding, not a reason to stop: counted and reported in the table.
            Log($"{size} members, {label}: FAILED: {e.Message}");
            failed += repetition >= 0 ? 1 : 0;
            continue;
        }

        Log($"{size} members, {label}: {milliseconds:0} ms");
        if (repetition >= 0)
        {
            samples.Add(milliseconds);
        }
    }

    results.Add((size, samples, failed));
}

Console.WriteLine($"Link-up time in headless Chromium {chromium.Browser.Version} on {Environment.ProcessorCount} cores, media: {options.Media}: from the admin's click on");
Console.WriteLine("\"admit\" for the last member to every link on every page `connected` (max `connectedAt` of the hook).");
Console.WriteLine();
Console.WriteLine("| members | links | runs | median (ms) | min (ms) | max (ms) | failed runs (no link-up within 60 s) |");
Console.WriteLine("|---:|---:|---:|---:|---:|---:|---:|");
foreach (var (size, samples, failed) in results)
{
    var sorted = samples.Order().ToList();
    if (sorted.Count == 0)
    {
        Console.WriteLine($"| {size} | {size * (size - 1) / 2} | 0 | – | – | – | {failed} |");
        continue;
    }

    var median = sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[(sorted.Count / 2) - 1] + sorted[sorted.Count / 2]) / 2;
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"| {size} | {size * (size - 1) / 2} | {sorted.Count} | {median:0} | {sorted[0]:0} | {sorted[^1]:0} | {failed} |"));
}

return 0;

// One call: the admin creates a room, admits everyone but the last member and waits for that mesh; then admits the
// last member (timed click) and waits for the full mesh. Fresh users (browser contexts) every time.
async Task<double> LinkUpAsync(int size, int runNumber)
{
    var users = new List<TalkiUser>();
    try
    {
        for (var i = 0; i < size; i++)
        {
            users.Add(await chromium.NewUserAsync($"R{runNumber}M{i}", options.UserOptions));
        }

        var admin = users[0];
        await admin.OpenAsync("/");
        var link = await admin.CreateRoomAsync(timeout);
        await admin.WaitForStateAsync(timeout, "Admitted");

        var early = users.Take(size - 1).ToList();
        await Task.WhenAll(early.Skip(1).Select(member => member.JoinAsync(link, timeout)));
        foreach (var member in early.Skip(1))
        {
            await admin.AdmitAsync(member.Name, timeout);
        }

        foreach (var member in early.Skip(1))
        {
            await member.WaitForStateAsync(timeout, "Admitted");
        }

        if (early.Count > 1)
        {
            await Mesh.WaitUntilConnectedAsync(early, await Mesh.MemberIdsAsync(early, timeout), timeout, requireRenderingTiles: false);
        }

        var last = users[^1];
        await last.JoinAsync(link, timeout);
        await last.WaitForStateAsync(timeout, "Waiting");
        var admittedAt = await admin.AdmitTimedAsync(last.Name, timeout);

        var ids = await Mesh.MemberIdsAsync(users, timeout);
        await Mesh.WaitUntilConnectedAsync(users, ids, timeout, requireRenderingTiles: false);
        var connectedAt = new List<double>();
        foreach (var user in users)
        {
            var links = await user.ConnectedLinksByPeerAsync();
            foreach (var other in users.Where(u => u != user))
            {
                connectedAt.Add(links[ids[other]].ConnectedAt
                    ?? throw new InvalidOperationException($"{user.Name}'s link to {other.Name} is connected but has no connectedAt"));
            }
        }

        return connectedAt.Max() - admittedAt;
    }
    finally
    {
        foreach (var user in users)
        {
            await user.DisposeAsync();
        }
    }
}

internal sealed record BenchmarkOptions(IReadOnlyList<int> Sizes, int Repetitions, int Warmup, string Media = "video")
{
    public const string Usage = "usage: Talki.Samples.Browser.LinkUpBenchmark [--sizes 2,3,4] [--repetitions 5] [--warmup 1] [--media video|audio|none]";

    /// <summary>The browser contexts: camera and microphone (video), microphone only (audio: no camera), or both refused (none).</summary>
    public UserOptions UserOptions => Media switch
    {
        "audio" => MediaScripts.AudioOnly,
        "none" => MediaScripts.NoMedia,
        _ => new UserOptions(),
    };

    public static BenchmarkOptions? Parse(string[] args)
    {
        IReadOnlyList<int> sizes = [2, 3, 4];
        var repetitions = 5;
        var warmup = 1;
        var media = "video";
        for (var i = 0; i < args.Length; i++)
        {
            var value = i + 1 < args.Length ? args[i + 1] : null;
            switch (args[i])
            {
                case "--sizes" when value is not null:
                    sizes = [.. value.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(s => int.Parse(s, CultureInfo.InvariantCulture))];
                    i++;
                    break;
                case "--repetitions" when int.TryParse(value, CultureInfo.InvariantCulture, out var r) && r > 0:
                    repetitions = r;
                    i++;
                    break;
                case "--warmup" when int.TryParse(value, CultureInfo.InvariantCulture, out var w) && w >= 0:
                    warmup = w;
                    i++;
                    break;
                case "--media" when value is "video" or "audio" or "none":
                    media = value;
                    i++;
                    break;
                default:
                    return null;
            }
        }

        return sizes.All(s => s is >= 2 and <= 8) ? new BenchmarkOptions(sizes, repetitions, warmup, media) : null;
    }
}
