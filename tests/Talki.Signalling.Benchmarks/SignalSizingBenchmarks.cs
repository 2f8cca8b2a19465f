using System.Text;
using BenchmarkDotNet.Attributes;
using Talki.Signalling.Client.Negotiation;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Benchmarks;

/// <summary>
/// What a newcomer's client does to size its first offers before sending them: each link's description with the candidates
/// gathered so far is cut to fit a frame (<c>PeerNegotiator.Batch</c>), then the offers are cut into <c>signals</c> frames
/// (<c>OfferBatch.Frames</c>). <see cref="SerializedToMeasure"/> is how both sized until 2026-12-04: every signal serialized
/// to be measured, twice; <see cref="Bounded"/> is the code as it is, a bound on the strings' lengths, with the exact size
/// taken only where the bound does not fit. The connection serializes each frame once more to send it, in both.
/// </summary>
/// <remarks>
/// The offers are a no-media Chromium offer's shape (receive-only audio and video m-lines with every codec, and the data
/// channel): about 7 KB each, so 7 of them (a newcomer to 8 members) take two frames. The JIT's figures here; in .NET's
/// WebAssembly interpreter, where the browser runs the client, each serialization costs many times more.
/// </remarks>
[MemoryDiagnoser(displayGenColumns: false)]
[Config(typeof(RelayBenchmarkConfig))]
public class SignalSizingBenchmarks
{
    private SessionDescription[] _offers = [];
    private IceCandidate[] _candidates = [];
    private MemberId[] _peers = [];

    /// <summary>Gets or sets how many links the newcomer offers at once (the room's size less one).</summary>
    [Params(3, 7)]
    public int Links { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _peers = [.. Enumerable.Range(0, Links).Select(_ => MemberId.New())];
        _offers = [.. _peers.Select((_, i) => new SessionDescription { Type = SdpType.Offer, Sdp = NoMediaOffer(i) })];
        _candidates =
        [
            new IceCandidate { Candidate = "candidate:1467250027 1 udp 2122260223 192.168.1.23 54321 typ host generation 0 ufrag EsAw network-id 1", SdpMid = "0", SdpMLineIndex = 0, UsernameFragment = "EsAw" },
            new IceCandidate { Candidate = "candidate:842163049 1 udp 1677729535 203.0.113.7 54321 typ srflx raddr 192.168.1.23 rport 54321 generation 0 ufrag EsAw network-id 1 network-cost 10", SdpMid = "0", SdpMLineIndex = 0, UsernameFragment = "EsAw" },
        ];
    }

    [Benchmark(Baseline = true)]
    public int SerializedToMeasure()
    {
        var signals = new List<SignalMessage>(_peers.Length);
        for (var i = 0; i < _peers.Length; i++)
        {
            var signal = new SignalMessage { To = _peers[i], ToEpoch = 1, Description = _offers[i], Candidates = _candidates };
            if (SignalSize.Exact(signal) > PeerNegotiator.MaxSignalBytes)
            {
                throw new InvalidOperationException("The benchmark's offers fit one signal each.");
            }

            signals.Add(signal);
        }

        const int Envelope = 64;
        var frames = 0;
        var size = 0;
        var count = 0;
        foreach (var signal in signals)
        {
            var length = SignalSize.ExactEntry(signal) + 1;
            if (frames == 0 || size + length > OfferBatch.MaxFrameBytes || count == OfferBatch.MaxEntriesPerFrame)
            {
                frames++;
                size = Envelope;
                count = 0;
            }

            size += length;
            count++;
        }

        return frames;
    }

    [Benchmark]
    public int Bounded()
    {
        var signals = new List<SignalMessage>(_peers.Length);
        for (var i = 0; i < _peers.Length; i++)
        {
            signals.AddRange(PeerNegotiator.Batch(_peers[i], 1, _offers[i], _candidates));
        }

        return OfferBatch.Frames(signals).Count;
    }

    /// <summary>A no-media offer as Chromium writes it for this adapter: receive-only audio and video, and the data channel.</summary>
    internal static string NoMediaOffer(int seed)
    {
        var sdp = new StringBuilder();
        void Line(string text) => sdp.Append(text).Append("\r\n");
        void Transport(int mid)
        {
            // Every m-line repeats the bundle's transport (ICE credentials, DTLS fingerprint and role), as Chromium writes it.
            Line("a=ice-ufrag:EsAw");
            Line("a=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1");
            Line("a=ice-options:trickle");
            Line("a=fingerprint:sha-256 D2:FA:0E:C3:22:59:5E:14:95:69:92:3D:13:B4:84:24:2C:C2:A2:C0:3E:FD:34:8E:5E:EA:6F:AF:52:CE:E6:0F");
            Line("a=setup:actpass");
            Line($"a=mid:{mid}");
        }

        Line("v=0");
        Line($"o=- {4611731400430051336 + seed} 2 IN IP4 127.0.0.1");
        Line("s=-");
        Line("t=0 0");
        Line("a=group:BUNDLE 0 1 2");
        Line("a=extmap-allow-mixed");
        Line("a=msid-semantic: WMS");
        Line("m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126");
        Line("c=IN IP4 0.0.0.0");
        Line("a=rtcp:9 IN IP4 0.0.0.0");
        Transport(0);
        Line("a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level");
        Line("a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time");
        Line("a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01");
        Line("a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid");
        Line("a=recvonly");
        Line("a=rtcp-mux");
        Line("a=rtcp-rsize");
        Line("a=rtpmap:111 opus/48000/2");
        Line("a=rtcp-fb:111 transport-cc");
        Line("a=fmtp:111 minptime=10;useinbandfec=1");
        Line("a=rtpmap:63 red/48000/2");
        Line("a=fmtp:63 111/111");
        Line("a=rtpmap:9 G722/8000");
        Line("a=rtpmap:0 PCMU/8000");
        Line("a=rtpmap:8 PCMA/8000");
        Line("a=rtpmap:13 CN/8000");
        Line("a=rtpmap:110 telephone-event/48000");
        Line("a=rtpmap:126 telephone-event/8000");
        Line("m=video 9 UDP/TLS/RTP/SAVPF " + string.Join(' ', Enumerable.Range(96, 30)));
        Line("c=IN IP4 0.0.0.0");
        Line("a=rtcp:9 IN IP4 0.0.0.0");
        Transport(1);
        Line("a=extmap:14 urn:ietf:params:rtp-hdrext:toffset");
        Line("a=extmap:13 urn:3gpp:video-orientation");
        Line("a=extmap:5 http://www.webrtc.org/experiments/rtp-hdrext/playout-delay");
        Line("a=recvonly");
        Line("a=rtcp-mux");
        Line("a=rtcp-rsize");
        string[] codecs = ["VP8/90000", "rtx/90000", "VP9/90000", "rtx/90000", "H264/90000", "rtx/90000", "AV1/90000", "rtx/90000"];
        for (var pt = 96; pt < 126; pt++)
        {
            var codec = codecs[(pt - 96) % codecs.Length];
            Line($"a=rtpmap:{pt} {codec}");
            if (codec.StartsWith("rtx", StringComparison.Ordinal))
            {
                Line($"a=fmtp:{pt} apt={pt - 1}");
                continue;
            }

            Line($"a=rtcp-fb:{pt} goog-remb");
            Line($"a=rtcp-fb:{pt} transport-cc");
            Line($"a=rtcp-fb:{pt} ccm fir");
            Line($"a=rtcp-fb:{pt} nack");
            Line($"a=rtcp-fb:{pt} nack pli");
            if (codec.StartsWith("H264", StringComparison.Ordinal))
            {
                Line($"a=fmtp:{pt} level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f");
            }
        }

        Line("m=application 9 UDP/DTLS/SCTP webrtc-datachannel");
        Line("c=IN IP4 0.0.0.0");
        Transport(2);
        Line("a=sctp-port:5000");
        Line("a=max-message-size:262144");
        return sdp.ToString();
    }
}
