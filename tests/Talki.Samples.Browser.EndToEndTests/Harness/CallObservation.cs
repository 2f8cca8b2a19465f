using System.Text.Json;

namespace Talki.Samples.Browser.EndToEndTests.Harness;

/// <summary>
/// Test-side observations of a call through a fault: the history of each page's <c>call-state</c> (a MutationObserver,
/// so no transition is missed between two polls), and a comparable description of every page's RTCPeerConnections.
/// </summary>
internal static class CallObservation
{
    private const string RecordCallStatesScript = """
        () => {
          if (window.__talkiE2eCallStates) return;
          const history = [];
          const read = () => {
            const el = document.querySelector('[data-testid="call-state"]');
            const entry = el ? `${el.getAttribute('data-state')}/${el.getAttribute('data-connection')}` : '(no call-state)';
            if (history.length === 0 || history[history.length - 1].entry !== entry) history.push({ at: Date.now(), entry });
          };
          read();
          new MutationObserver(read).observe(document.documentElement,
            { subtree: true, childList: true, attributes: true, attributeFilter: ['data-state', 'data-connection'] });
          window.__talkiE2eCallStates = history;
        }
        """;

    /// <summary>Starts recording the page's <c>call-state</c> as <c>{data-state}/{data-connection}</c> entries (once).</summary>
    public static Task RecordCallStatesAsync(TalkiUser user) => user.Page.EvaluateAsync(RecordCallStatesScript);

    /// <summary>The recorded <c>call-state</c> entries, in order (consecutive duplicates collapsed).</summary>
    public static async Task<IReadOnlyList<string>> CallStateHistoryAsync(TalkiUser user)
        => [.. (await TimedCallStateHistoryAsync(user)).Select(h => h.Entry)];

    /// <summary>The recorded <c>call-state</c> entries with the page's clock (ms since the Unix epoch) when each appeared.</summary>
    public static async Task<IReadOnlyList<(double At, string Entry)>> TimedCallStateHistoryAsync(TalkiUser user)
    {
        var json = await user.Page.EvaluateAsync<string>("() => JSON.stringify(window.__talkiE2eCallStates ?? [])");
        using var document = JsonDocument.Parse(json);
        return [.. document.RootElement.EnumerateArray().Select(h => (h.GetProperty("at").GetDouble(), h.GetProperty("entry").GetString() ?? string.Empty))];
    }

    /// <summary>
    /// Every page's RTCPeerConnections (creation index, state, local/remote ufrag), as one string: equal before and after a
    /// fault means no connection was created, replaced, closed or ICE-restarted.
    /// </summary>
    public static async Task<string> DescribePeerConnectionsAsync(IEnumerable<TalkiUser> users)
    {
        var all = new List<string>();
        foreach (var user in users.OrderBy(u => u.Name, StringComparer.Ordinal))
        {
            var connections = await user.PeerConnectionIceAsync();
            all.Add($"{user.Name}: " + string.Join(", ", connections.Select(p => $"#{p.Index} {p.ConnectionState} {p.LocalUfrag}/{p.RemoteUfrag}")));
        }

        return string.Join(" | ", all);
    }
}
