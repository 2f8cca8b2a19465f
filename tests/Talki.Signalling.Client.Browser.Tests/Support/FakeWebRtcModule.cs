using Microsoft.Extensions.Logging;
using Microsoft.JSInterop;
using Talki.Signalling.Client.Negotiation;

namespace Talki.Signalling.Client.Browser.Tests.Support;

/// <summary>
/// Stands in for <c>talki-webrtc.js</c> as Blazor WebAssembly loads it (an in-process module): the tests script what
/// each call returns, and it records the calls. It answers as the module does: operations with a state snapshot (JSON),
/// <c>description</c> with <c>{v, type, sdp}</c>, or null once the link is closed.
/// </summary>
internal sealed class FakeWebRtcModule : IJSInProcessObjectReference, IJSRuntime
{
    // The module hands out a new id per link; ids are unique across the fakes too, because the adapter routes events by id
    // in one table per process (PeerEvents) and tests run in parallel.
    private static int lastPeerId;
    private readonly List<string> _calls = [];
    private readonly List<object?[]> _arguments = [];

    /// <summary>Gets the identifiers called, in order.</summary>
    public IReadOnlyList<string> Calls => _calls;

    /// <summary>Gets the arguments of each call, in the order of <see cref="Calls"/>.</summary>
    public IReadOnlyList<object?[]> Arguments => _arguments;

    /// <summary>Gets or sets what a synchronous call returns instead of its default, by identifier (null: the default); it may throw.</summary>
    public Func<string, object?>? Sync { get; set; }

    /// <summary>Gets or sets what <c>description(id, side)</c> returns (or throws), by side.</summary>
    public Func<string, string?> Description { get; set; } = _ => null;

    /// <summary>Gets or sets what an asynchronous operation (setLocalDescription…) returns, by identifier.</summary>
    public Func<string, string> Operation { get; set; } = _ => throw new InvalidOperationException("No operation scripted.");

    public int CountOf(string identifier) => _calls.Count(c => c == identifier);

    /// <summary>Loads this module as the adapter does and creates a link over it (an offerer to a new member).</summary>
    public async Task<BrowserPeerConnection> CreateLinkAsync(ILogger logger)
    {
        var interop = new TalkiWebRtcInterop(this);
        await interop.LoadAsync(CancellationToken.None);
        return new BrowserPeerConnection(interop, new BrowserMedia(interop, logger), logger, new PeerLinkPlan(MemberId.New(), 1, Offerer: true, Polite: false));
    }

    public TValue Invoke<TValue>(string identifier, params object?[]? args)
    {
        _calls.Add(identifier);
        _arguments.Add(args ?? []);
        if (Sync?.Invoke(identifier) is TValue scripted)
        {
            return scripted;
        }

        return identifier switch
        {
            "createPeer" => (TValue)(object)Interlocked.Increment(ref lastPeerId),
            "description" => (TValue)(object?)Description((string)args![1]!)!,
            _ => default!,
        };
    }

    public ValueTask<TValue> InvokeAsync<TValue>(string identifier, object?[]? args) => InvokeAsync<TValue>(identifier, CancellationToken.None, args);

    public ValueTask<TValue> InvokeAsync<TValue>(string identifier, CancellationToken cancellationToken, object?[]? args)
    {
        _calls.Add(identifier);
        _arguments.Add(args ?? []);
        if (identifier == "import")
        {
            return ValueTask.FromResult((TValue)(object)this);
        }

        return ValueTask.FromResult((TValue)(object)Operation(identifier));
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    public void Dispose()
    {
    }
}
