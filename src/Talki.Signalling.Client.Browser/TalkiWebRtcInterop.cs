using Microsoft.JSInterop;

namespace Talki.Signalling.Client.Browser;

/// <summary>Loads the <c>talki-webrtc.js</c> module once per scope and hands out its in-process reference.</summary>
internal sealed class TalkiWebRtcInterop(IJSRuntime js) : IAsyncDisposable
{
    public const string ModulePath = "./_content/Talki.Signalling.Client.Browser/talki-webrtc.js";

    private readonly SemaphoreSlim _gate = new(1, 1);
    private IJSObjectReference? _module;
    private IPeerCalls? _calls;

    /// <summary>Gets a value indicating whether the module is loaded.</summary>
    public bool IsLoaded => _module is not null;

    /// <summary>Gets the module for synchronous calls (Blazor WebAssembly only).</summary>
    /// <exception cref="InvalidOperationException">The module is not loaded yet.</exception>
    /// <exception cref="PlatformNotSupportedException">Not running in Blazor WebAssembly.</exception>
    public IJSInProcessObjectReference InProcess => _module switch
    {
        null => throw new InvalidOperationException("The Talki WebRTC module is not loaded yet: await BrowserPeerConnectionFactory.InitializeAsync() (or BrowserMedia.StartLocalMediaAsync()) first."),
        IJSInProcessObjectReference inProcess => inProcess,
        _ => throw new PlatformNotSupportedException("The Talki browser adapter needs Blazor WebAssembly (synchronous JS interop)."),
    };

    /// <summary>Gets the calls a link makes for every description and candidate (<c>[JSImport]</c> in the browser).</summary>
    /// <exception cref="InvalidOperationException">The module is not loaded yet.</exception>
    public IPeerCalls Calls => _calls ??= OperatingSystem.IsBrowser() ? new JSImportPeerCalls() : new BlazorPeerCalls(InProcess);

    /// <summary>Gets the loaded module.</summary>
    public IJSObjectReference Module => _module ?? throw new InvalidOperationException("The Talki WebRTC module is not loaded yet.");

    public async ValueTask<IJSObjectReference> LoadAsync(CancellationToken cancellationToken)
    {
        if (_module is { } loaded)
        {
            return loaded;
        }

        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            _module ??= await js.InvokeAsync<IJSObjectReference>("import", cancellationToken, ModulePath).ConfigureAwait(false);
            if (OperatingSystem.IsBrowser())
            {
                PeerEvents.Attach(); // the module's events call .NET directly from now on
            }

            return _module;
        }
        finally
        {
            _gate.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_module is { } module)
        {
            _module = null;
            try
            {
                await module.DisposeAsync().ConfigureAwait(false);
            }
            catch (JSDisconnectedException)
            {
                // The page is gone.
            }
        }

        _gate.Dispose();
    }
}
