using System.Runtime.InteropServices.JavaScript;
using System.Runtime.Versioning;

namespace Talki.Signalling.Client.Browser;

/// <summary>
/// Routes the module's link events to their <see cref="BrowserPeerConnection"/> by the module's link id. In the browser the
/// module calls <see cref="Deliver"/> directly, bound once with <c>[JSImport]</c> (<see cref="Attach"/>): Blazor's
/// <c>invokeMethodAsync</c> on a <c>DotNetObjectReference</c> passes the event as JSON inside JSON, finds the method by
/// reflection and sends a completion back to JavaScript, work that .NET's WebAssembly interpreter did for each of the
/// dozen events every link raises while it connects. Elsewhere (tests over a scripted module) events still arrive
/// through <see cref="BrowserPeerConnection.OnEvent"/> on the link's reference.
/// </summary>
/// <remarks>
/// The ids are the module's: one ES module instance per page, whatever the number of scopes that import it, so one table
/// per .NET runtime matches them. A link is in the table from its creation until it is disposed.
/// </remarks>
internal static partial class PeerEvents
{
    private static readonly Lock Sync = new();
    private static readonly Dictionary<int, BrowserPeerConnection> Links = [];
    private static bool attached;

    /// <summary>Hands the module the function it calls for every event, once per runtime; the module must be loaded.</summary>
    [SupportedOSPlatform("browser")]
    public static void Attach()
    {
        lock (Sync)
        {
            if (attached)
            {
                return;
            }

            SetEventSink(static (id, json) => Deliver(id, json));
            attached = true;
        }
    }

    /// <summary>Routes the events of the module's link <paramref name="id"/> to <paramref name="link"/>.</summary>
    /// <param name="id">The module's id of the link.</param>
    /// <param name="link">The link.</param>
    public static void Register(int id, BrowserPeerConnection link)
    {
        lock (Sync)
        {
            Links[id] = link;
        }
    }

    /// <summary>Stops routing the events of <paramref name="id"/>, if they still go to <paramref name="link"/>.</summary>
    /// <param name="id">The module's id of the link.</param>
    /// <param name="link">The link being disposed.</param>
    public static void Unregister(int id, BrowserPeerConnection link)
    {
        lock (Sync)
        {
            if (Links.TryGetValue(id, out var known) && ReferenceEquals(known, link))
            {
                Links.Remove(id);
            }
        }
    }

    /// <summary>Hands an event to its link; an event of a link no longer known (disposed meanwhile) is dropped.</summary>
    /// <param name="id">The module's id of the link.</param>
    /// <param name="json">The event (<c>kind</c>, the state snapshot and the event's fields).</param>
    /// <returns>Whether a link took the event.</returns>
    internal static bool Deliver(int id, string json)
    {
        BrowserPeerConnection? link;
        lock (Sync)
        {
            Links.TryGetValue(id, out link);
        }

        // Outside the lock: the link's handlers run the negotiation, which may create or dispose links.
        link?.OnEvent(json);
        return link is not null;
    }

    [JSImport("globalThis.__talkiWebRtc.setEventSink")]
    private static partial void SetEventSink([JSMarshalAs<JSType.Function<JSType.Number, JSType.String>>] Action<int, string> sink);
}
