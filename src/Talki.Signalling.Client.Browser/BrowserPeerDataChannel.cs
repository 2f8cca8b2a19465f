using Talki.Signalling.Client.Negotiation;

namespace Talki.Signalling.Client.Browser;

/// <summary>A data channel of a <see cref="BrowserPeerConnection"/>, addressed by its label.</summary>
internal sealed class BrowserPeerDataChannel(BrowserPeerConnection owner, string label) : IPeerDataChannel
{
    public string Label { get; } = label;

    public bool IsOpen { get; set; }

    public ValueTask SendAsync(string text, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(text);
        return owner.SendAsync(Label, text, cancellationToken);
    }
}
