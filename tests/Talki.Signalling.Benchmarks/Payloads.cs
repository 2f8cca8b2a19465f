using System.Text;

namespace Talki.Signalling.Benchmarks;

/// <summary>The inbound frames the benchmarks relay, as a browser's <c>JSON.stringify</c> would send them.</summary>
internal static class Payloads
{
    /// <summary>
    /// A Chrome-style audio offer of about 1 KB (1,058 bytes): BUNDLE, one Opus m-line with RED, G.722,
    /// PCMU/PCMA, CN and DTMF, ICE credentials, a DTLS fingerprint, header extensions and an SSRC.
    /// </summary>
    public static readonly string Sdp = string.Join("\r\n",
    [
        "v=0",
        "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0",
        "a=extmap-allow-mixed",
        "a=msid-semantic: WMS 5d4b1c1e-2f3a-4b5c-8d9e-0f1a2b3c4d5e",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110",
        "c=IN IP4 0.0.0.0",
        "a=rtcp:9 IN IP4 0.0.0.0",
        "a=ice-ufrag:EsAw",
        "a=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1",
        "a=ice-options:trickle",
        "a=fingerprint:sha-256 D2:FA:0E:C3:22:59:5E:14:95:69:92:3D:13:B4:84:24:2C:C2:A2:C0:3E:FD:34:8E:5E:EA:6F:AF:52:CE:E6:0F",
        "a=setup:actpass",
        "a=mid:0",
        "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
        "a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
        "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
        "a=sendrecv",
        "a=msid:5d4b1c1e-2f3a-4b5c-8d9e-0f1a2b3c4d5e 9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d",
        "a=rtcp-mux",
        "a=rtpmap:111 opus/48000/2",
        "a=rtcp-fb:111 transport-cc",
        "a=fmtp:111 minptime=10;useinbandfec=1",
        "a=rtpmap:63 red/48000/2",
        "a=fmtp:63 111/111",
        "a=rtpmap:9 G722/8000",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:13 CN/8000",
        "a=rtpmap:110 telephone-event/48000",
        "a=ssrc:3735928559 cname:Yq1XsKhqGcTzL0xO",
        string.Empty,
    ]);

    /// <summary>One server-reflexive ICE candidate (about 200 bytes of candidate object).</summary>
    public const string CandidateJson =
        """{"candidate":"candidate:842163049 1 udp 1677729535 203.0.113.7 54321 typ srflx raddr 192.168.1.23 rport 54321 generation 0 ufrag EsAw network-id 1 network-cost 10","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"EsAw"}""";

    /// <summary>Builds <c>{"type":"signal","id":"c1","to":…,"toEpoch":…,"description":{"type":"offer","sdp":…}}</c>.</summary>
    public static byte[] Offer(MemberId to, long toEpoch) => Encoding.UTF8.GetBytes(
        $$$"""{"type":"signal","id":"c1","to":"{{{to.Value}}}","toEpoch":{{{toEpoch}}},"description":{"type":"offer","sdp":"{{{JsonString(Sdp)}}}"}}""");

    /// <summary>Builds <c>{"type":"signal","id":"c2","to":…,"toEpoch":…,"candidates":[…]}</c>.</summary>
    public static byte[] Candidates(MemberId to, long toEpoch) => Encoding.UTF8.GetBytes(
        $$"""{"type":"signal","id":"c2","to":"{{to.Value}}","toEpoch":{{toEpoch}},"candidates":[{{CandidateJson}}]}""");

    /// <summary>Escapes SDP for a JSON string the way <c>JSON.stringify</c> does (SDP has only CR and LF to escape).</summary>
    private static string JsonString(string text)
    {
        if (text.AsSpan().IndexOfAny('"', '\\') >= 0)
        {
            throw new InvalidOperationException("The SDP needs more escaping than CR and LF.");
        }

        return text.Replace("\r", "\\r", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);
    }
}
