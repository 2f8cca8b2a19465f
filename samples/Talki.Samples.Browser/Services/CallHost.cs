using Talki.Signalling;
using Talki.Signalling.Client;
using Talki.Signalling.Client.Browser;

namespace Talki.Samples.Browser.Services;

/// <summary>Holds the tab's one call across pages: creating a room on the home page and showing it on the room page is one call.</summary>
public sealed class CallHost(TalkiCallFactory calls, BrowserPeerConnectionFactory peers, BrowserMedia media, SampleConfig config) : IAsyncDisposable
{
    /// <summary>Raised when a new call was created (before it connects), so pages can follow it from the start.</summary>
    public event EventHandler? CallCreated;

    /// <summary>Gets the current call, or null.</summary>
    public TalkiCall? Call { get; private set; }

    /// <summary>Gets the room of the current call, if known.</summary>
    public RoomId? Room { get; private set; }

    /// <summary>Gets what local media the browser granted.</summary>
    public LocalMediaResult? LocalMedia { get; private set; }

    /// <summary>Gets the media service.</summary>
    public BrowserMedia Media => media;

    /// <summary>Creates a room (the caller becomes its admin).</summary>
    public async Task<SignallingResult<RoomId>> CreateRoomAsync()
    {
        var call = await NewCallAsync();
        var result = await call.CreateRoomAsync();
        Room = result.IsSuccess ? result.Value : null;
        return result;
    }

    /// <summary>Joins a room, reusing the current call when it is that room's.</summary>
    public async Task<SignallingResult<RoomId>> JoinRoomAsync(RoomId room)
    {
        if (Call is { } current && Room == room && IsLive(current))
        {
            return room;
        }

        var call = await NewCallAsync();
        Room = room;
        return await call.JoinRoomAsync(room);
    }

    /// <summary>
    /// Asks for camera and microphone again (after they were refused). What is granted now is added to the live links
    /// (they renegotiate) and becomes <see cref="LocalMedia"/>.
    /// </summary>
    public async Task<LocalMediaResult> RetryLocalMediaAsync()
    {
        LocalMedia = await media.StartLocalMediaAsync();
        return LocalMedia;
    }

    /// <summary>Leaves the call and stops camera and microphone.</summary>
    public async Task LeaveAsync()
    {
        if (Call is { } call)
        {
            await call.LeaveAsync();
        }

        await media.StopAsync();
        LocalMedia = null;
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (Call is { } call)
        {
            Call = null;
            await call.DisposeAsync();
        }
    }

    // Still in the room (or still getting in): not left, not denied, and connected or sealed (the call goes on peer to peer).
    private static bool IsLive(TalkiCall call) =>
        call.AdmissionState == TalkiAdmissionState.Sealed
        || (call.AdmissionState is not (TalkiAdmissionState.Left or TalkiAdmissionState.Denied) && call.ConnectionState != TalkiConnectionState.Disconnected);

    private async Task<TalkiCall> NewCallAsync()
    {
        if (Call is { } previous)
        {
            Call = null;
            await previous.DisposeAsync();
        }

        await peers.InitializeAsync();
        peers.IceTransportPolicy = string.Equals(config.IceTransportPolicy, "relay", StringComparison.OrdinalIgnoreCase)
            ? BrowserIceTransportPolicy.Relay
            : BrowserIceTransportPolicy.All;
        LocalMedia = await media.StartLocalMediaAsync();
        Call = calls.Create(peers);
        CallCreated?.Invoke(this, EventArgs.Empty);
        return Call;
    }
}
