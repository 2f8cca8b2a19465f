namespace Talki.Samples.Browser.EndToEndTests.Harness;

/// <summary>Checks on a whole mesh of pages, read from the pages' tiles and the adapter's hook.</summary>
internal static class Mesh
{
    /// <summary>Each user's member id, from their own page's self tile.</summary>
    public static async Task<IReadOnlyDictionary<TalkiUser, string>> MemberIdsAsync(IReadOnlyList<TalkiUser> users, TimeSpan timeout)
    {
        var ids = new Dictionary<TalkiUser, string>();
        await Poll.UntilAsync("every page shows its own tile (data-self=\"true\") with a member id", timeout, async () =>
        {
            foreach (var user in users)
            {
                if (!ids.ContainsKey(user) && await user.SelfMemberIdAsync() is { } id)
                {
                    ids[user] = id;
                }
            }

            var missing = users.Where(u => !ids.ContainsKey(u)).Select(u => u.Name).ToList();
            return missing.Count == 0 ? null : "no self tile on " + string.Join(", ", missing);
        });
        return ids;
    }

    /// <summary>
    /// Waits until every page has a connected link to every other user (by member id) and shows one rendering remote
    /// video tile for each of them and no other remote tile. It reads link states only; <paramref name="readStats"/> also
    /// has every page call <c>getStats()</c> on each of its connections at every poll, as this wait did before
    /// (the link-up benchmark's <c>--poll-stats</c>, to compare).
    /// </summary>
    public static async Task WaitUntilConnectedAsync(IReadOnlyList<TalkiUser> users, IReadOnlyDictionary<TalkiUser, string> ids, TimeSpan timeout, bool requireRenderingTiles = true, bool readStats = false)
    {
        await Poll.UntilAsync($"all {users.Count} pages have {users.Count - 1} connected links and remote tiles", timeout, async () =>
        {
            var problems = new List<string>();
            foreach (var user in users)
            {
                var expected = users.Where(u => u != user).Select(u => ids[u]).ToHashSet(StringComparer.Ordinal);
                var links = await user.LinksAsync(readStats);
                var connected = links.Where(l => l.IsConnected).Select(l => l.Peer).ToHashSet(StringComparer.Ordinal);
                if (!expected.IsSubsetOf(connected))
                {
                    problems.Add($"{user.Name}: links [{string.Join("; ", links)}], expected connected peers [{string.Join(", ", expected)}]");
                }

                var remoteTiles = (await user.VideoTilesAsync()).Where(t => !t.Self).ToList();
                var tileIds = remoteTiles.Select(t => t.MemberId).ToList();
                if (tileIds.Count != expected.Count || !expected.SetEquals(tileIds)
                    || (requireRenderingTiles && remoteTiles.Any(t => !t.IsRendering)))
                {
                    problems.Add($"{user.Name}: remote tiles [{string.Join("; ", remoteTiles)}], expected one rendering tile for each of [{string.Join(", ", expected)}]");
                }
            }

            return problems.Count == 0 ? null : string.Join(" | ", problems);
        });
    }

    /// <summary>
    /// Samples every page's links twice, <paramref name="gap"/> apart, until, on every page and for every other user
    /// (every other one of <paramref name="senders"/>, when given), the connected link's inbound-rtp <c>bytesReceived</c>
    /// grew strictly.
    /// </summary>
    public static async Task WaitUntilBytesGrowAsync(IReadOnlyList<TalkiUser> users, IReadOnlyDictionary<TalkiUser, string> ids, TimeSpan timeout, TimeSpan gap, Action<string>? log = null, IReadOnlyCollection<TalkiUser>? senders = null)
    {
        await Poll.UntilAsync("inbound bytes grow on every link of every page", timeout, async () =>
        {
            var before = await SampleAsync(users);
            await Task.Delay(gap);
            var after = await SampleAsync(users);
            var problems = new List<string>();
            var report = new List<string>();
            foreach (var user in users)
            {
                foreach (var other in users.Where(u => u != user && (senders is null || senders.Contains(u))))
                {
                    var peer = ids[other];
                    var first = before[user].GetValueOrDefault(peer);
                    var second = after[user].GetValueOrDefault(peer);
                    if (first is null || second is null)
                    {
                        problems.Add($"{user.Name}←{other.Name}: no connected link (before: {first}, after: {second})");
                    }
                    else if (second.BytesReceived <= first.BytesReceived)
                    {
                        problems.Add($"{user.Name}←{other.Name}: bytesReceived {first.BytesReceived} → {second.BytesReceived}");
                    }
                    else
                    {
                        report.Add($"{user.Name}←{other.Name} {first.BytesReceived}→{second.BytesReceived} B, frames {second.FramesDecoded}");
                    }
                }
            }

            if (problems.Count == 0)
            {
                log?.Invoke("bytes growing: " + string.Join("; ", report));
                return null;
            }

            return string.Join(" | ", problems);
        }, TimeSpan.FromMilliseconds(200));
    }

    private static async Task<Dictionary<TalkiUser, IReadOnlyDictionary<string, LinkStats>>> SampleAsync(IReadOnlyList<TalkiUser> users)
    {
        var samples = new Dictionary<TalkiUser, IReadOnlyDictionary<string, LinkStats>>();
        foreach (var user in users)
        {
            samples[user] = await user.ConnectedLinksByPeerAsync();
        }

        return samples;
    }
}
