using System.Text.Json;
using Microsoft.AspNetCore.Components;
using Microsoft.Extensions.Logging;
using Microsoft.JSInterop;

namespace Talki.Signalling.Client.Browser;

/// <summary>What the browser granted when local media was started.</summary>
public enum LocalMediaStatus
{
    /// <summary>Camera and microphone.</summary>
    AudioAndVideo = 0,

    /// <summary>Microphone only (no camera, or the camera was refused).</summary>
    AudioOnly,

    /// <summary>No media: refused or unavailable; the member can still watch and listen.</summary>
    NoMedia,
}

/// <summary>The outcome of <see cref="BrowserMedia.StartLocalMediaAsync"/>.</summary>
/// <param name="Status">What was granted.</param>
/// <param name="Error">The DOMException name of the first refusal (for example <c>NotAllowedError</c>, <c>NotFoundError</c>), or <see langword="null"/>.</param>
public sealed record LocalMediaResult(LocalMediaStatus Status, string? Error);

/// <summary>A remote member's track arrived (<c>track</c> event): (re)attach the member's video.</summary>
/// <param name="member">The remote member.</param>
/// <param name="epoch">The remote member's connection epoch.</param>
/// <param name="kind">The track kind (<c>audio</c> or <c>video</c>).</param>
public sealed class RemoteTrackEventArgs(MemberId member, long epoch, string kind) : EventArgs
{
    /// <summary>Gets the remote member.</summary>
    public MemberId Member { get; } = member;

    /// <summary>Gets the remote member's connection epoch.</summary>
    public long Epoch { get; } = epoch;

    /// <summary>Gets the track kind (<c>audio</c> or <c>video</c>).</summary>
    public string Kind { get; } = kind;
}

/// <summary>
/// The local camera and microphone and the <c>&lt;video&gt;</c> elements that show local and remote streams.
/// Start local media before the call connects, so that every peer connection sends it from the start
/// (tracks started later are added to open connections, which then renegotiate).
/// </summary>
public sealed class BrowserMedia
{
    private readonly TalkiWebRtcInterop _interop;
    private readonly ILogger _logger;

    internal BrowserMedia(TalkiWebRtcInterop interop, ILogger logger)
    {
        _interop = interop;
        _logger = logger;
    }

    /// <summary>Raised when a remote member's track arrives; raised on the browser's (single) thread.</summary>
    public event EventHandler<RemoteTrackEventArgs>? RemoteTrackAdded;

    /// <summary>Gets what local media was granted, or <see langword="null"/> before <see cref="StartLocalMediaAsync"/>.</summary>
    public LocalMediaStatus? Status { get; private set; }

    /// <summary>Gets a value indicating whether the microphone is enabled (sending sound).</summary>
    public bool MicrophoneEnabled { get; private set; } = true;

    /// <summary>Gets a value indicating whether the camera is enabled (sending video).</summary>
    public bool CameraEnabled { get; private set; } = true;

    /// <summary>Starts camera and microphone (<c>getUserMedia({video: true, audio: true})</c>), falling back to the microphone only, then to no media.</summary>
    /// <param name="cancellationToken">Cancels the wait (the browser prompt stays).</param>
    /// <returns>What was granted; never throws for a refusal.</returns>
    public async ValueTask<LocalMediaResult> StartLocalMediaAsync(CancellationToken cancellationToken = default)
    {
        var module = await _interop.LoadAsync(cancellationToken).ConfigureAwait(false);
        var json = await module.InvokeAsync<string>("startLocalMedia", cancellationToken).ConfigureAwait(false);
        using var document = JsonDocument.Parse(json);
        var status = PeerStateSnapshot.String(document.RootElement, "status") switch
        {
            "AudioAndVideo" => LocalMediaStatus.AudioAndVideo,
            "AudioOnly" => LocalMediaStatus.AudioOnly,
            _ => LocalMediaStatus.NoMedia,
        };
        var error = PeerStateSnapshot.String(document.RootElement, "error");
        Status = status;
        Log.LocalMediaStarted(_logger, status, error);
        return new LocalMediaResult(status, error);
    }

    /// <summary>Shows the local stream in a <c>&lt;video&gt;</c> element (muted, inline, autoplay).</summary>
    /// <param name="video">The element.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns><see langword="true"/> when there is a local stream to show.</returns>
    public async ValueTask<bool> AttachLocalAsync(ElementReference video, CancellationToken cancellationToken = default)
    {
        var module = await _interop.LoadAsync(cancellationToken).ConfigureAwait(false);
        return await module.InvokeAsync<bool>("attachLocal", cancellationToken, video).ConfigureAwait(false);
    }

    /// <summary>Shows a remote member's stream in a <c>&lt;video&gt;</c> element; the element follows tracks that arrive later.</summary>
    /// <param name="video">The element.</param>
    /// <param name="member">The remote member.</param>
    /// <param name="epoch">The remote member's connection epoch (the link's <c>PeerEpoch</c>).</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns><see langword="true"/> when a stream for that member and epoch exists already.</returns>
    public async ValueTask<bool> AttachRemoteAsync(ElementReference video, MemberId member, long epoch, CancellationToken cancellationToken = default)
    {
        var module = await _interop.LoadAsync(cancellationToken).ConfigureAwait(false);
        return await module.InvokeAsync<bool>("attachRemote", cancellationToken, video, member.Value, epoch).ConfigureAwait(false);
    }

    /// <summary>Enables or mutes the microphone (<c>track.enabled</c>; the connections stay as they are).</summary>
    /// <param name="enabled">Whether to send sound.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>A task that completes when applied.</returns>
    public async ValueTask SetMicrophoneEnabledAsync(bool enabled, CancellationToken cancellationToken = default)
    {
        var module = await _interop.LoadAsync(cancellationToken).ConfigureAwait(false);
        await module.InvokeAsync<bool>("setTrackEnabled", cancellationToken, "audio", enabled).ConfigureAwait(false);
        MicrophoneEnabled = enabled;
    }

    /// <summary>Enables or blanks the camera (<c>track.enabled</c>).</summary>
    /// <param name="enabled">Whether to send video.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>A task that completes when applied.</returns>
    public async ValueTask SetCameraEnabledAsync(bool enabled, CancellationToken cancellationToken = default)
    {
        var module = await _interop.LoadAsync(cancellationToken).ConfigureAwait(false);
        await module.InvokeAsync<bool>("setTrackEnabled", cancellationToken, "video", enabled).ConfigureAwait(false);
        CameraEnabled = enabled;
    }

    /// <summary>Stops camera and microphone and closes every peer connection the adapter opened.</summary>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>A task that completes when stopped.</returns>
    public async ValueTask StopAsync(CancellationToken cancellationToken = default)
    {
        if (!_interop.IsLoaded)
        {
            return;
        }

        await _interop.Module.InvokeVoidAsync("stopAll", cancellationToken).ConfigureAwait(false);
        Status = null;
        MicrophoneEnabled = true;
        CameraEnabled = true;
    }

    internal void OnRemoteTrack(MemberId member, long epoch, string kind)
    {
        try
        {
            RemoteTrackAdded?.Invoke(this, new RemoteTrackEventArgs(member, epoch, kind));
        }
#pragma warning disable CA1031 // a subscriber's failure must not break the peer connection's event handling
        catch (Exception ex)
#pragma warning restore CA1031
        {
            Log.RemoteTrackHandlerFailed(_logger, ex);
        }
    }
}
