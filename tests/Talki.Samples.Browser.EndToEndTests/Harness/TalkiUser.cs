using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Playwright;

namespace Talki.Samples.Browser.EndToEndTests.Harness;

/// <summary>
/// One user of the browser sample: a browser context (own cookies) and its page, driven only through the app's stable
/// <c>data-testid</c> contract and the adapter's <c>window.talkiWebRtc</c> hook.
/// </summary>
internal sealed partial class TalkiUser : IAsyncDisposable
{
    private readonly ConcurrentQueue<string> _console = new();
    private readonly Action<string> _log;
    private bool _disposed;

    public TalkiUser(string name, IBrowserContext context, IPage page, Action<string> log)
    {
        Name = name;
        Context = context;
        Page = page;
        _log = log;
        page.Console += (_, message) => Remember($"console.{message.Type}: {message.Text}");
        page.PageError += (_, error) => Remember($"pageerror: {error}");
        page.Crash += (_, _) => Remember("page crashed");
    }

    /// <summary>The display name this user signs in with (also the admission request's <c>data-member-name</c>).</summary>
    public string Name { get; }

    public IBrowserContext Context { get; }

    public IPage Page { get; }

    /// <summary>The page's recent console messages and errors (for failure messages and artifacts).</summary>
    public string ConsoleLog => string.Join(Environment.NewLine, _console);

    public ILocator CallStateElement => Page.GetByTestId("call-state");

    /// <summary>Opens a path of the app (default <c>/</c>).</summary>
    public async Task OpenAsync(string url = "/")
    {
        await Page.GotoAsync(url, new PageGotoOptions { WaitUntil = WaitUntilState.Load, Timeout = 60_000 });
    }

    /// <summary>
    /// Opens the room link and waits until the app has started (its sign-in form shows), without signing in or asking
    /// to join: a later <see cref="JoinAsync"/> goes on from there instead of loading the page again. On a busy 2-core
    /// machine a page that starts while a call runs can take longer than a test waits.
    /// </summary>
    public async Task OpenRoomAsync(Uri roomLink, TimeSpan? timeout = null)
    {
        await OpenAsync(roomLink.ToString());
        await WaitForAsync(Page.GetByTestId("display-name"), "the display-name input", WaitForSelectorState.Visible, timeout ?? TimeSpan.FromSeconds(90));
    }

    /// <summary>Types the display name and signs in (the page must show <c>display-name</c>).</summary>
    public async Task SignInAsync(TimeSpan? timeout = null)
    {
        var wait = timeout ?? TimeSpan.FromSeconds(60);
        var input = Page.GetByTestId("display-name");
        await WaitForAsync(input, "the display-name input", WaitForSelectorState.Visible, wait);
        await input.FillAsync(Name);
        await Page.GetByTestId("sign-in").ClickAsync();
        await WaitForAsync(input, "the display-name input gone after signing in", WaitForSelectorState.Hidden, wait);
    }

    /// <summary>Opens <c>/</c>, signs in if asked, clicks <c>create-room</c> and returns the share link from <c>room-link</c>.</summary>
    public async Task<Uri> CreateRoomAsync(TimeSpan? timeout = null)
    {
        var wait = timeout ?? TimeSpan.FromSeconds(60);
        var create = Page.GetByTestId("create-room");
        var signIn = Page.GetByTestId("display-name");
        await WaitForAsync(create.Or(signIn).First, "create-room or display-name", WaitForSelectorState.Visible, wait);
        if (await signIn.IsVisibleAsync())
        {
            await SignInAsync(wait);
        }

        await create.ClickAsync(new LocatorClickOptions { Timeout = Ms(wait) });
        Uri? link = null;
        await Poll.UntilAsync($"{Name}'s page shows the room link", wait, async () =>
        {
            link = await RoomLinkAsync();
            return link is null ? $"room-link: '{await TextOrNullAsync(Page.GetByTestId("room-link"))}', call-state: {await CallStateAsync()}" : null;
        });
        return link!;
    }

    /// <summary>
    /// Opens the room link, signs in when the page asks, and waits until the page has left the sign-in screen
    /// (waiting for approval, in the call, or denied).
    /// </summary>
    /// <param name="roomLink">The room's share link.</param>
    /// <param name="timeout">How long to wait (90 s by default).</param>
    /// <param name="opened">Whether <see cref="OpenRoomAsync"/> has opened the link already: go on from that page.</param>
    public async Task JoinAsync(Uri roomLink, TimeSpan? timeout = null, bool opened = false)
    {
        var wait = timeout ?? TimeSpan.FromSeconds(90);
        if (!opened)
        {
            await OpenAsync(roomLink.ToString());
        }

        var signedIn = false;
        await Poll.UntilAsync($"{Name} asks to join {roomLink}", wait, async () =>
        {
            if (!signedIn && await Page.GetByTestId("display-name").IsVisibleAsync())
            {
                await SignInAsync(wait);
                signedIn = true;
            }

            var state = await CallStateAsync();
            return state.State is "Waiting" or "Admitted" or "Denied" or "Sealed"
                   || await Page.GetByTestId("waiting").IsVisibleAsync()
                   || await Page.GetByTestId("denied").IsVisibleAsync()
                ? null
                : $"call-state {state}";
        });
    }

    /// <summary>The share URL <c>{origin}/room/{roomId}</c> shown by <c>room-link</c> (its value, text or href), or null.</summary>
    public async Task<Uri?> RoomLinkAsync()
    {
        var element = Page.GetByTestId("room-link");
        if (await element.CountAsync() == 0)
        {
            return null;
        }

        var candidates = await element.First.EvaluateAsync<string[]>(
            "el => [el.value ?? '', el.textContent ?? '', el.getAttribute('href') ?? '', el.getAttribute('data-url') ?? '']");
        foreach (var candidate in candidates)
        {
            var match = RoomUrl().Match(candidate);
            if (match.Success)
            {
                return new Uri(match.Value);
            }
        }

        return null;
    }

    /// <summary>
    /// The join window's countdown (<c>seal-countdown</c>): the whole seconds left as the page shows them
    /// (<c>data-seconds-left</c>), whether it shows the room sealed, and its text; null when the page has none.
    /// </summary>
    public async Task<SealCountdown?> SealCountdownAsync()
    {
        var element = Page.GetByTestId("seal-countdown");
        if (await element.CountAsync() == 0)
        {
            return null;
        }

        var values = await element.First.EvaluateAsync<string[]>(
            "el => [el.getAttribute('data-seconds-left') ?? '', el.classList.contains('seal-done') ? 'sealed' : '', el.textContent ?? '']");
        return new SealCountdown(long.Parse(values[0], System.Globalization.CultureInfo.InvariantCulture), values[1] == "sealed", values[2].Trim());
    }

    /// <summary>The page's <c>call-state</c> (<c>data-state</c>, <c>data-signalling</c>).</summary>
    public async Task<CallState> CallStateAsync()
    {
        if (await CallStateElement.CountAsync() == 0)
        {
            return CallState.Missing;
        }

        var values = await CallStateElement.First.EvaluateAsync<string[]>(
            "el => [el.getAttribute('data-state') ?? '', el.getAttribute('data-signalling') ?? '']");
        return new CallState(values[0], values[1]);
    }

    /// <summary>Waits until <c>call-state</c> shows one of <paramref name="states"/>.</summary>
    public Task WaitForStateAsync(TimeSpan timeout, params string[] states) =>
        Poll.UntilAsync($"{Name}'s call-state is {string.Join(" or ", states)}", timeout, async () =>
        {
            var state = await CallStateAsync();
            return states.Contains(state.State) ? null : state.ToString();
        });

    /// <summary>The <c>admission-request</c> elements' <c>data-member-name</c>s currently shown.</summary>
    public async Task<IReadOnlyList<string>> AdmissionRequestsAsync() =>
        await Page.GetByTestId("admission-request").EvaluateAllAsync<string[]>(
            "els => els.map(el => el.getAttribute('data-member-name') ?? '')");

    public ILocator AdmissionRequest(string memberName) =>
        Page.Locator($"[data-testid=\"admission-request\"][data-member-name=\"{memberName}\"]");

    /// <summary>Waits for <paramref name="memberName"/>'s admission request and clicks its <c>admit</c> button.</summary>
    public Task AdmitAsync(string memberName, TimeSpan? timeout = null) => AnswerAsync(memberName, "admit", timeout);

    /// <summary>Waits for <paramref name="memberName"/>'s admission request and clicks its <c>deny</c> button.</summary>
    public Task DenyAsync(string memberName, TimeSpan? timeout = null) => AnswerAsync(memberName, "deny", timeout);

    /// <summary>
    /// Waits for the admission request and clicks <c>admit</c> from inside the page, returning the page's <c>Date.now()</c>
    /// at the click (the benchmark's start time, on the same clock as the hook's <c>connectedAt</c>).
    /// </summary>
    public async Task<double> AdmitTimedAsync(string memberName, TimeSpan? timeout = null)
    {
        var button = AdmissionRequest(memberName).GetByTestId("admit");
        await WaitForAsync(button, $"{memberName}'s admission request", WaitForSelectorState.Visible, timeout ?? TimeSpan.FromSeconds(60));
        return await button.EvaluateAsync<double>("el => { const clickedAt = Date.now(); el.click(); return clickedAt; }");
    }

    /// <summary>The <c>video-tile</c>s shown, with their video element's decoded size.</summary>
    public async Task<IReadOnlyList<VideoTile>> VideoTilesAsync()
    {
        var json = await Page.GetByTestId("video-tile").EvaluateAllAsync<string>(
            """
            els => JSON.stringify(els.map(el => {
              const video = el.querySelector('video');
              return {
                id: el.getAttribute('data-member-id') ?? '',
                name: el.getAttribute('data-name') ?? '',
                self: el.getAttribute('data-self') === 'true',
                width: video ? video.videoWidth : 0,
                height: video ? video.videoHeight : 0,
                readyState: video ? video.readyState : -1,
              };
            }))
            """);
        using var document = JsonDocument.Parse(json);
        return [.. document.RootElement.EnumerateArray().Select(t => new VideoTile(
            t.GetProperty("id").GetString() ?? "",
            t.GetProperty("name").GetString() ?? "",
            t.GetProperty("self").GetBoolean(),
            t.GetProperty("width").GetInt32(),
            t.GetProperty("height").GetInt32(),
            t.GetProperty("readyState").GetInt32()))];
    }

    /// <summary>This user's own member id (the self tile's <c>data-member-id</c>), or null while there is none.</summary>
    public async Task<string?> SelfMemberIdAsync() =>
        (await VideoTilesAsync()).FirstOrDefault(t => t.Self)?.MemberId is { Length: > 0 } id ? id : null;

    /// <summary>
    /// The adapter's links (<c>window.talkiWebRtc.links()</c>); throws when the hook is not installed. Without
    /// <paramref name="stats"/> only states and <c>connectedAt</c> are read and the byte and frame counters are 0: no
    /// <c>getStats()</c> call on every connection of the page.
    /// </summary>
    public async Task<IReadOnlyList<LinkStats>> LinksAsync(bool stats = true)
    {
        var json = await Page.EvaluateAsync<string?>(
            "async stats => window.talkiWebRtc && typeof window.talkiWebRtc.links === 'function' ? JSON.stringify(await window.talkiWebRtc.links({ stats })) : null",
            stats);
        return json is null
            ? throw new InvalidOperationException($"{Name}'s page has no window.talkiWebRtc.links() hook")
            : LinkStats.ParseArray(json);
    }

    /// <summary>The connected links, one per peer (the newest epoch when a peer has several).</summary>
    public async Task<IReadOnlyDictionary<string, LinkStats>> ConnectedLinksByPeerAsync() =>
        (await LinksAsync()).Where(l => l.IsConnected)
            .GroupBy(l => l.Peer, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.Last(), StringComparer.Ordinal);

    /// <summary>Calls <c>window.talkiWebRtc.restartIce()</c>: the number of connections an ICE restart was started on.</summary>
    public Task<int> RestartIceAsync() => Page.EvaluateAsync<int>("async () => await window.talkiWebRtc.restartIce()");

    /// <summary>
    /// The local ICE username fragment of each open RTCPeerConnection of the page (test-side instrumentation, see
    /// <see cref="Chromium"/>), by index of creation.
    /// </summary>
    public async Task<IReadOnlyList<PeerConnectionIce>> PeerConnectionIceAsync()
    {
        var json = await Page.EvaluateAsync<string>(
            """
            () => JSON.stringify((window.__talkiE2ePeerConnections ?? []).map((pc, index) => {
              const ufrag = d => (d && d.sdp ? (d.sdp.match(/a=ice-ufrag:(\S+)/) ?? [])[1] : null) ?? null;
              const candidates = d => d && d.sdp ? (d.sdp.match(/^a=candidate:/gm) ?? []).length : 0;
              return {
                index, connectionState: pc.connectionState, signalingState: pc.signalingState, local: ufrag(pc.localDescription), remote: ufrag(pc.remoteDescription),
                details: `${pc.signalingState}/${pc.iceConnectionState}/${pc.iceGatheringState} local ${pc.localDescription?.type ?? '-'} remote ${pc.remoteDescription?.type ?? '-'} (${candidates(pc.remoteDescription)} candidates in it) senders ${pc.getSenders().filter(s => s.track).length}`,
              };
            }))
            """);
        using var document = JsonDocument.Parse(json);
        return [.. document.RootElement.EnumerateArray().Select(p => new PeerConnectionIce(
            p.GetProperty("index").GetInt32(),
            p.GetProperty("connectionState").GetString() ?? "",
            p.GetProperty("signalingState").GetString() ?? "",
            p.GetProperty("local").GetString(),
            p.GetProperty("remote").GetString(),
            p.GetProperty("details").GetString() ?? ""))];
    }

    /// <summary>Saves a full-page screenshot under <c>{artifacts}/screenshots/</c>; returns its absolute path.</summary>
    public async Task<string> ScreenshotAsync(string moment)
    {
        var directory = Path.Combine(RepositoryLayout.Artifacts, "screenshots");
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, $"{Sanitize(moment)}-{Sanitize(Name)}.png");
        await Page.ScreenshotAsync(new PageScreenshotOptions { Path = path, FullPage = true, Timeout = 30_000 });
        return path;
    }

    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        try
        {
            await Context.CloseAsync();
        }
        catch (PlaywrightException)
        {
            // The browser is already gone.
        }
    }

    private async Task AnswerAsync(string memberName, string button, TimeSpan? timeout)
    {
        var target = AdmissionRequest(memberName).GetByTestId(button);
        await WaitForAsync(target, $"{memberName}'s admission request", WaitForSelectorState.Visible, timeout ?? TimeSpan.FromSeconds(60));
        await target.ClickAsync();
    }

    /// <summary>A one-line description of the page for failure messages: URL and call-state.</summary>
    public async Task<string> DescribeAsync()
    {
        try
        {
            return $"{Name}: {Page.Url}, call-state {await CallStateAsync()}";
        }
        catch (PlaywrightException e)
        {
            return $"{Name}: {e.Message}";
        }
    }

    private async Task WaitForAsync(ILocator locator, string what, WaitForSelectorState state, TimeSpan timeout)
    {
        try
        {
            await locator.WaitForAsync(new LocatorWaitForOptions { State = state, Timeout = Ms(timeout) });
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"{Name}'s page did not show {what} within {timeout.TotalSeconds:0}s ({await DescribeAsync()})", e);
        }
    }

    private static async Task<string?> TextOrNullAsync(ILocator locator) =>
        await locator.CountAsync() == 0 ? null : await locator.First.TextContentAsync();

    private static float Ms(TimeSpan timeout) => (float)timeout.TotalMilliseconds;

    private static string Sanitize(string text) => InvalidFileCharacters().Replace(text, "-");

    private void Remember(string line)
    {
        _console.Enqueue($"{DateTime.UtcNow:HH:mm:ss.fff} {line}");
        while (_console.Count > 500 && _console.TryDequeue(out _))
        {
        }

        // The app asks GET /talki/session before signing in: its 401 is expected and not worth a line.
        var expected401 = line.Contains("status of 401", StringComparison.Ordinal);
        if (!expected401 && (line.StartsWith("pageerror", StringComparison.Ordinal) || line.StartsWith("console.error", StringComparison.Ordinal) || line == "page crashed"))
        {
            _log($"[{Name}] {line}");
        }
    }

    [GeneratedRegex(@"https?://[^\s""'<>]+/room/[A-Za-z0-9_\-~.%]+")]
    private static partial Regex RoomUrl();

    [GeneratedRegex(@"[^A-Za-z0-9_.\-]")]
    private static partial Regex InvalidFileCharacters();
}

/// <summary>The ICE username fragments of one RTCPeerConnection of a page.</summary>
internal sealed record PeerConnectionIce(int Index, string ConnectionState, string SignalingState, string? LocalUfrag, string? RemoteUfrag, string Details)
{
    public override string ToString() => $"#{Index} {ConnectionState} ufrag local {LocalUfrag ?? "-"} remote {RemoteUfrag ?? "-"} {Details}";
}
