using System.Text.Json;
using Talki.Signalling.Client.Negotiation;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Client.Connection;

/// <summary>
/// Writes and reads, once per process, the frames a link-up is made of (a welcome with its plan, offers in a batch, an answer,
/// candidates), and reads a description the way a link does, all on made-up values and with nothing sent or kept.
/// </summary>
/// <remarks>
/// <para>
/// A member that waits for admission, or an admitted member that waits for its first newcomer, has nothing to do until the
/// frames that set up its links arrive, and then every step of them runs for the first time: the serializer configures each
/// message type's metadata on first use, and a browser runs .NET in an interpreter that translates each method the first time
/// it is called. Paid there, that time sits between the admin's click and the links' first offers and answers.
/// </para>
/// <para>
/// The connection starts this when a session opens (<see cref="SignallingConnection"/>); each step yields to whatever is
/// queued, so a frame that arrives meanwhile is handled before the next step, not after all of them.
/// </para>
/// </remarks>
internal static class ProtocolWarmUp
{
    private static int s_started;

    /// <summary>Runs the warm-up unless one was started before in this process; never throws.</summary>
    public static async Task RunOnceAsync()
    {
        if (Interlocked.Exchange(ref s_started, 1) != 0)
        {
            return;
        }

        try
        {
            await RunAsync().ConfigureAwait(false);
        }
#pragma warning disable CA1031 // A warm-up that fails costs the head start, nothing else: it is never awaited.
        catch (Exception)
#pragma warning restore CA1031
        {
            // Made-up frames that no longer round-trip (a protocol change the tests would have caught): the real frames are
            // read by the connection, which reports what it cannot read.
        }
    }

    /// <summary>Writes and reads back every made-up frame, then reads the description; yields before each step.</summary>
    /// <returns>The frames read back, in order.</returns>
    internal static async Task<IReadOnlyList<object>> RunAsync()
    {
        var read = new List<object>();
        foreach (var message in ServerFrames())
        {
            await Task.Yield();
            var utf8 = JsonSerializer.SerializeToUtf8Bytes(message, TalkiJsonContext.Default.ServerMessage);
            read.Add(JsonSerializer.Deserialize(utf8, TalkiJsonContext.Default.ServerMessage) ?? throw new JsonException("null"));
        }

        foreach (var message in ClientFrames())
        {
            await Task.Yield();
            var utf8 = JsonSerializer.SerializeToUtf8Bytes(message, TalkiJsonContext.Default.ClientMessage);
            read.Add(JsonSerializer.Deserialize(utf8, TalkiJsonContext.Default.ClientMessage) ?? throw new JsonException("null"));
        }

        await Task.Yield();
        if (!SdpOrigin.TryParse(Description, out _)
            || SdpOrigin.ReadAttribute(Description, "ice-ufrag") is null
            || SdpOrigin.RemoveAttribute(SdpOrigin.AddAttribute(Description, "talki-warm", "1"), "talki-warm") != Description)
        {
            throw new InvalidOperationException("The warm-up's description does not read as a link reads it.");
        }

        return read;
    }

    /// <summary>The ICE username fragment of the made-up description and of its candidates.</summary>
    private const string Ufrag = "wArM";

    /// <summary>A description shaped as a browser's (an audio and a data section), the lines a link reads included.</summary>
    internal const string Description =
        "v=0\r\n" +
        "o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n" +
        "s=-\r\n" +
        "t=0 0\r\n" +
        "a=group:BUNDLE 0 1\r\n" +
        "a=extmap-allow-mixed\r\n" +
        "a=msid-semantic: WMS warm\r\n" +
        "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n" +
        "c=IN IP4 0.0.0.0\r\n" +
        "a=rtcp:9 IN IP4 0.0.0.0\r\n" +
        "a=ice-ufrag:" + Ufrag + "\r\n" +
        "a=ice-pwd:warmwarmwarmwarmwarmwarm\r\n" +
        "a=ice-options:trickle\r\n" +
        "a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n" +
        "a=setup:actpass\r\n" +
        "a=mid:0\r\n" +
        "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n" +
        "a=sendrecv\r\n" +
        "a=msid:warm 5f2c1a0e-0000-4000-8000-000000000000\r\n" +
        "a=rtcp-mux\r\n" +
        "a=rtpmap:111 opus/48000/2\r\n" +
        "a=rtcp-fb:111 transport-cc\r\n" +
        "a=fmtp:111 minptime=10;useinbandfec=1\r\n" +
        "a=ssrc:1001 cname:warmwarmwarmwarm\r\n" +
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n" +
        "c=IN IP4 0.0.0.0\r\n" +
        "a=ice-ufrag:" + Ufrag + "\r\n" +
        "a=ice-pwd:warmwarmwarmwarmwarmwarm\r\n" +
        "a=ice-options:trickle\r\n" +
        "a=setup:actpass\r\n" +
        "a=mid:1\r\n" +
        "a=sctp-port:5000\r\n" +
        "a=max-message-size:262144\r\n";

    /// <summary>A host and a server-reflexive candidate of the description's ICE ufrag (documentation addresses).</summary>
    private static readonly IReadOnlyList<IceCandidate> SampleCandidates =
    [
        new() { Candidate = "candidate:1 1 udp 2122260223 192.0.2.1 50000 typ host generation 0 ufrag " + Ufrag + " network-id 1", SdpMid = "0", SdpMLineIndex = 0, UsernameFragment = Ufrag },
        new() { Candidate = "candidate:2 1 udp 1686052607 198.51.100.1 50001 typ srflx raddr 192.0.2.1 rport 50000 generation 0 ufrag " + Ufrag, SdpMid = "0", SdpMLineIndex = 0, UsernameFragment = Ufrag },
    ];

    private static IEnumerable<ServerMessage> ServerFrames()
    {
        var self = MemberId.New();
        var admin = MemberId.New();
        var peer = new MemberView { Id = admin, DisplayName = "Warm", Admin = true, Status = AdmissionStatus.Admitted, Online = true, Epoch = 1 };
        var you = new MemberView { Id = self, DisplayName = "Up", Status = AdmissionStatus.Admitted, Online = true, Epoch = 2 };
        var link = new PeerLink { Peer = peer, PeerEpoch = 1, Offerer = true, Polite = false };
        var now = DateTimeOffset.UnixEpoch;
        yield return new WelcomeMessage
        {
            MessageId = "w",
            You = you,
            Room = new RoomView { Id = RoomId.New(), Admin = admin, CreatedAt = now, SealsAt = now },
            Members = [peer, you],
            Status = AdmissionStatus.Admitted,
            IceServers = [new IceServer { Urls = ["stun:192.0.2.1:3478"] }, new IceServer { Urls = ["turn:192.0.2.1:3478?transport=udp"], Username = "1:warm", Credential = "warm" }],
            ServerTime = now,
            IdleTimeoutSeconds = 600,
            Links = [link],
        };
        yield return new SignalRelayMessage
        {
            MessageId = "s",
            From = admin,
            FromEpoch = 1,
            Description = new SessionDescription { Type = SdpType.Answer, Sdp = Description },
            Candidates = SampleCandidates,
        };
        yield return new SignalRelayMessage
        {
            From = admin,
            FromEpoch = 1,
            Description = new SessionDescription { Type = SdpType.Offer, Sdp = Description },
            Link = link with { Offerer = false, Polite = true },
        };
        yield return new AdmissionRequestMessage { Member = you };
        yield return new PeerLeftMessage { Member = admin, Epoch = 1 };
        yield return new PongMessage();
    }

    private static IEnumerable<ClientMessage> ClientFrames()
    {
        var to = MemberId.New();
        var offer = new SignalMessage { Id = "o", To = to, ToEpoch = 1, Description = new SessionDescription { Type = SdpType.Offer, Sdp = Description }, Candidates = SampleCandidates };
        yield return new SignalsMessage { Id = "b", Signals = [offer, offer with { To = MemberId.New() }] };
        yield return new SignalMessage { Id = "a", To = to, ToEpoch = 1, Description = new SessionDescription { Type = SdpType.Answer, Sdp = Description } };
        yield return new SignalMessage { Id = "c", To = to, ToEpoch = 1, Candidates = SampleCandidates };
        yield return new AdmitMessage { Id = "m", Member = to };
    }
}
