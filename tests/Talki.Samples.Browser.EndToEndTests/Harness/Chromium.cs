using Microsoft.Playwright;

namespace Talki.Samples.Browser.EndToEndTests.Harness;

/// <summary>
/// Headless Chromium from the system (<c>/usr/bin/chromium</c>, installed by eng/test.sh; never <c>playwright install</c>)
/// with a fake camera and microphone. Each user gets a browser context of their own (own cookie jar).
/// </summary>
internal sealed class Chromium : IAsyncDisposable
{
    /// <summary>The launch arguments of docs/testing: fake media devices, no network chatter, no sandbox (root).</summary>
    public static readonly IReadOnlyList<string> Arguments =
    [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
    ];

    /// <summary>
    /// Test-side instrumentation (not the app's): remembers every RTCPeerConnection the page creates, so a test can read
    /// each connection's local ICE username fragment and prove an ICE restart happened.
    /// </summary>
    private const string TrackPeerConnections = """
        (() => {
          const Native = window.RTCPeerConnection;
          if (!Native || window.__talkiE2ePeerConnections) return;
          const all = [];
          class Tracked extends Native {
            constructor(...args) { super(...args); all.push(this); }
          }
          window.RTCPeerConnection = Tracked;
          window.__talkiE2ePeerConnections = all;
        })();
        """;

    private readonly IPlaywright _playwright;
    private readonly List<TalkiUser> _users = [];

    private Chromium(IPlaywright playwright, IBrowser browser, Uri baseAddress, Action<string> log)
    {
        _playwright = playwright;
        Browser = browser;
        BaseAddress = baseAddress;
        Log = log;
    }

    public IBrowser Browser { get; }

    public Uri BaseAddress { get; }

    public Action<string> Log { get; }

    public static string ExecutablePath =>
        Environment.GetEnvironmentVariable("TALKI_CHROMIUM") is { Length: > 0 } configured ? configured : "/usr/bin/chromium";

    public static async Task<Chromium> LaunchAsync(Uri baseAddress, Action<string> log)
    {
        if (!File.Exists(ExecutablePath))
        {
            throw new FileNotFoundException(
                $"Chromium is not installed at {ExecutablePath}: `apt-get install -y chromium` (eng/test.sh does it).");
        }

        var playwright = await Playwright.CreateAsync();
        try
        {
            var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
            {
                ExecutablePath = ExecutablePath,
                Headless = true,
                Args = Arguments,
                Timeout = 60_000,
            });
            log($"chromium {browser.Version} from {ExecutablePath}");
            return new Chromium(playwright, browser, baseAddress, log);
        }
        catch
        {
            playwright.Dispose();
            throw;
        }
    }

    /// <summary>A new user: a browser context of its own (cookies, storage) with camera and microphone allowed, and one page.</summary>
    public Task<TalkiUser> NewUserAsync(string name) => NewUserAsync(name, null);

    /// <summary>
    /// A new user with <paramref name="options"/>: which media permissions are granted, the viewport, and an extra init
    /// script (test-side instrumentation run before the app's scripts).
    /// </summary>
    public async Task<TalkiUser> NewUserAsync(string name, UserOptions? options)
    {
        options ??= new UserOptions();
        var baseAddress = options.BaseAddress ?? BaseAddress;
        var context = await Browser.NewContextAsync(new BrowserNewContextOptions
        {
            BaseURL = baseAddress.ToString(),
            Permissions = [.. options.Permissions],
            ViewportSize = new ViewportSize { Width = options.Width, Height = options.Height },
        });
        context.SetDefaultTimeout(30_000);
        await context.AddInitScriptAsync(TrackPeerConnections);
        if (options.InitScript is { Length: > 0 } script)
        {
            await context.AddInitScriptAsync(script);
        }

        // Nothing but the host under test is ever contacted (the Google Identity Services script included).
        var origin = baseAddress.GetLeftPart(UriPartial.Authority);
        await context.RouteAsync(url => !url.StartsWith(origin, StringComparison.OrdinalIgnoreCase) && !url.StartsWith("data:", StringComparison.Ordinal) && !url.StartsWith("blob:", StringComparison.Ordinal), route =>
        {
            Log($"blocked a request to {route.Request.Url}");
            return route.AbortAsync();
        });
        var page = await context.NewPageAsync();
        var user = new TalkiUser(name, context, page, Log);
        _users.Add(user);
        return user;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var user in _users)
        {
            await user.DisposeAsync();
        }

        try
        {
            await Browser.CloseAsync();
        }
        catch (PlaywrightException)
        {
            // Already gone.
        }

        _playwright.Dispose();
    }
}

/// <summary>How a user's browser context is set up.</summary>
internal sealed record UserOptions
{
    /// <summary>The media permissions granted (default camera and microphone; <c>["microphone"]</c> for an audio-only user).</summary>
    public IReadOnlyList<string> Permissions { get; init; } = ["camera", "microphone"];

    public int Width { get; init; } = 960;

    public int Height { get; init; } = 720;

    /// <summary>A script run in every page of the context before the app's own scripts, or null.</summary>
    public string? InitScript { get; init; }

    /// <summary>The origin this user's pages come from (<c>http://localhost:{port}</c>), or null for the browser's <see cref="Chromium.BaseAddress"/>.</summary>
    public Uri? BaseAddress { get; init; }
}
