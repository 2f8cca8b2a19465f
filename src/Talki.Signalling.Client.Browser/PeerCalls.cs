using System.Diagnostics.CodeAnalysis;
using System.Runtime.InteropServices.JavaScript;
using System.Runtime.Versioning;
using Microsoft.JSInterop;

namespace Talki.Signalling.Client.Browser;

/// <summary>
/// The calls a link makes for every description and candidate. In the browser they are bound with <c>[JSImport]</c>
/// (<see cref="JSImportPeerCalls"/>), which passes strings as they are: Blazor's <see cref="IJSRuntime"/> encodes every
/// argument and result as JSON, and in .NET's WebAssembly interpreter that took 8–30 ms per call with an SDP in it
/// (measured in Chromium, 8 members: 18 addIceCandidate calls spent 350 ms before reaching the browser).
/// Elsewhere (unit tests over a scripted module) they go through <see cref="IJSInProcessObjectReference"/>.
/// </summary>
internal interface IPeerCalls
{
    /// <summary>
    /// Gets a value indicating whether the module delivers a link's events through the <c>DotNetObjectReference</c> given to
    /// <see cref="CreatePeer"/>; <see langword="false"/> where .NET hands the module its event function (<see cref="PeerEvents"/>).
    /// </summary>
    bool EventsByReference { get; }

    /// <summary><c>createPeer()</c>: a new <c>RTCPeerConnection</c>; its id in the module.</summary>
    int CreatePeer(DotNetObjectReference<BrowserPeerConnection>? events, string iceServersJson, string peer, long epoch, string iceTransportPolicy);

    /// <summary><c>createDataChannel()</c>; the channel's <c>readyState</c> (<c>closed</c> for a closed link).</summary>
    string CreateDataChannel(int id, string label);

    /// <summary><c>restartIce()</c>.</summary>
    void RestartIce(int id);

    /// <summary><c>close()</c>.</summary>
    void Close(int id);

    /// <summary><c>setLocalDescription()</c>; the state snapshot after it (JSON).</summary>
    Task<string> SetLocalDescriptionAsync(int id);

    /// <summary><c>setRemoteDescription()</c>; the state snapshot after it (JSON).</summary>
    Task<string> SetRemoteDescriptionAsync(int id, string type, string sdp);

    /// <summary><c>addIceCandidate()</c>; the state snapshot after it (JSON).</summary>
    Task<string> AddIceCandidateAsync(int id, string candidate, string? sdpMid, int? sdpMLineIndex, string? usernameFragment);

    /// <summary>A description with its version (<c>version\ntype\nsdp</c>), or null once the link is closed.</summary>
    string? Description(int id, string side);
}

/// <summary>The calls through Blazor's JS interop (JSON), for a module that is not the browser's.</summary>
internal sealed class BlazorPeerCalls(IJSInProcessObjectReference module) : IPeerCalls
{
    private const string TrimSafeInterop = "Only primitives, strings and a DotNetObjectReference cross the interop boundary; their serialization is trim-safe.";

    public bool EventsByReference => true;

    [UnconditionalSuppressMessage("Trimming", "IL2026", Justification = TrimSafeInterop)]
    public int CreatePeer(DotNetObjectReference<BrowserPeerConnection>? events, string iceServersJson, string peer, long epoch, string iceTransportPolicy) =>
        module.Invoke<int>("createPeer", events, iceServersJson, peer, epoch, iceTransportPolicy);

    [UnconditionalSuppressMessage("Trimming", "IL2026", Justification = TrimSafeInterop)]
    public string CreateDataChannel(int id, string label) => module.Invoke<string>("createDataChannel", id, label);

    [UnconditionalSuppressMessage("Trimming", "IL2026", Justification = TrimSafeInterop)]
    public void RestartIce(int id) => module.InvokeVoid("restartIce", id);

    [UnconditionalSuppressMessage("Trimming", "IL2026", Justification = TrimSafeInterop)]
    public void Close(int id) => module.InvokeVoid("close", id);

    [UnconditionalSuppressMessage("Trimming", "IL2026", Justification = TrimSafeInterop)]
    public Task<string> SetLocalDescriptionAsync(int id) => module.InvokeAsync<string>("setLocalDescription", id).AsTask();

    [UnconditionalSuppressMessage("Trimming", "IL2026", Justification = TrimSafeInterop)]
    public Task<string> SetRemoteDescriptionAsync(int id, string type, string sdp) => module.InvokeAsync<string>("setRemoteDescription", id, type, sdp).AsTask();

    [UnconditionalSuppressMessage("Trimming", "IL2026", Justification = TrimSafeInterop)]
    public Task<string> AddIceCandidateAsync(int id, string candidate, string? sdpMid, int? sdpMLineIndex, string? usernameFragment) =>
        module.InvokeAsync<string>("addIceCandidate", id, candidate, sdpMid, sdpMLineIndex, usernameFragment).AsTask();

    [UnconditionalSuppressMessage("Trimming", "IL2026", Justification = TrimSafeInterop)]
    public string? Description(int id, string side) => module.Invoke<string?>("description", id, side);
}

/// <summary>
/// The calls bound with <c>[JSImport]</c> to the functions <c>talki-webrtc.js</c> publishes on <c>globalThis.__talkiWebRtc</c>
/// when it loads (the same module instance Blazor imported: <see cref="TalkiWebRtcInterop.LoadAsync"/> runs first).
/// </summary>
[SupportedOSPlatform("browser")]
internal sealed partial class JSImportPeerCalls : IPeerCalls
{
    /// <summary>Gets <see langword="false"/>: the module calls <see cref="PeerEvents"/> directly (attached when it loaded).</summary>
    public bool EventsByReference => false;

    public int CreatePeer(DotNetObjectReference<BrowserPeerConnection>? events, string iceServersJson, string peer, long epoch, string iceTransportPolicy) =>
        Create(iceServersJson, peer, epoch, iceTransportPolicy);

    public string CreateDataChannel(int id, string label) => CreateChannel(id, label);

    public void RestartIce(int id) => Restart(id);

    public void Close(int id) => CloseLink(id);

    public Task<string> SetLocalDescriptionAsync(int id) => SetLocal(id);

    public Task<string> SetRemoteDescriptionAsync(int id, string type, string sdp) => SetRemote(id, type, sdp);

    public Task<string> AddIceCandidateAsync(int id, string candidate, string? sdpMid, int? sdpMLineIndex, string? usernameFragment) =>
        AddCandidate(id, candidate, sdpMid, sdpMLineIndex, usernameFragment);

    public string? Description(int id, string side) => ReadDescription(id, side);

    [JSImport("globalThis.__talkiWebRtc.setLocalDescription")]
    [return: JSMarshalAs<JSType.Promise<JSType.String>>]
    private static partial Task<string> SetLocal(int id);

    [JSImport("globalThis.__talkiWebRtc.setRemoteDescription")]
    [return: JSMarshalAs<JSType.Promise<JSType.String>>]
    private static partial Task<string> SetRemote(int id, string type, string sdp);

    [JSImport("globalThis.__talkiWebRtc.addIceCandidate")]
    [return: JSMarshalAs<JSType.Promise<JSType.String>>]
    private static partial Task<string> AddCandidate(int id, string candidate, string? sdpMid, int? sdpMLineIndex, string? usernameFragment);

    // The epoch as a JS number, as Blazor's JSON passed it (exact up to 2^53, far beyond any epoch a room reaches; a long
    // marshalled as a number would throw above that instead).
    [JSImport("globalThis.__talkiWebRtc.createPeerDirect")]
    private static partial int Create(string iceServersJson, string peer, double epoch, string iceTransportPolicy);

    [JSImport("globalThis.__talkiWebRtc.createDataChannel")]
    private static partial string CreateChannel(int id, string label);

    [JSImport("globalThis.__talkiWebRtc.restartIce")]
    private static partial void Restart(int id);

    [JSImport("globalThis.__talkiWebRtc.close")]
    private static partial void CloseLink(int id);

    [JSImport("globalThis.__talkiWebRtc.description")]
    private static partial string? ReadDescription(int id, string side);
}
