using System.Text.Json;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Protocol.Tests.Protocol;

public sealed class ProtocolJsonTests
{
    public static TheoryData<ClientMessage, string> ClientMessages => new()
    {
        { new HelloMessage { Id = "h1", Version = 1 }, "hello" },
        { new AdmitMessage { Member = MemberId.New() }, "admit" },
        { new DenyMessage { Member = MemberId.New() }, "deny" },
        {
            new SignalMessage
            {
                To = MemberId.New(),
                ToEpoch = 3,
                Description = new SessionDescription { Type = SdpType.Offer, Sdp = "v=0\r\n" },
                Candidates = [new IceCandidate { Candidate = "candidate:1 1 udp 1 127.0.0.1 5000 typ host", SdpMid = "0", SdpMLineIndex = 0 }],
            },
            "signal"
        },
        { new LeaveMessage(), "leave" },
        { new PingMessage { Id = "p" }, "ping" },
    };

    public static TheoryData<ServerMessage, string> ServerMessages
    {
        get
        {
            var member = new MemberView { Id = MemberId.New(), DisplayName = "Ada", Verified = true, Status = AdmissionStatus.Pending };
            return new()
            {
                {
                    new WelcomeMessage
                    {
                        You = member,
                        Room = new RoomView { Id = RoomId.New(), Admin = MemberId.New(), SealsAt = DateTimeOffset.UnixEpoch },
                        Members = [member],
                        Status = AdmissionStatus.Pending,
                        IceServers = [new IceServer { Urls = ["stun:127.0.0.1:3478"] }],
                    },
                    "welcome"
                },
                { new AdmissionRequestMessage { Member = member }, "admission_request" },
                { new AdmittedMessage { Member = member }, "admitted" },
                { new DeniedMessage { Member = member }, "denied" },
                { new ConnectToPeerMessage { Peer = member, PeerEpoch = 2, Offerer = true, Polite = false }, "connect_to_peer" },
                { new PeerLeftMessage { Member = member.Id, Epoch = 2 }, "peer_left" },
                { new SignalRelayMessage { From = member.Id, FromEpoch = 1, Description = new SessionDescription { Type = SdpType.Answer, Sdp = "v=0" } }, "signal" },
                { new RoomSealedMessage { Room = RoomId.New(), SealedAt = DateTimeOffset.UnixEpoch }, "room_sealed" },
                { new PongMessage { Id = "p" }, "pong" },
                { new ErrorMessage { Code = SignallingErrorCode.TicketInvalid, Message = "no", Id = "c" }, "error" },
            };
        }
    }

    [Theory]
    [MemberData(nameof(ClientMessages))]
    public void ClientMessage_RoundTrips_WithTypeDiscriminator(ClientMessage message, string type)
    {
        var json = JsonSerializer.Serialize(message, TalkiJsonContext.Default.ClientMessage);
        using var document = JsonDocument.Parse(json);
        Assert.Equal(type, document.RootElement.GetProperty("type").GetString());

        var back = JsonSerializer.Deserialize(json, TalkiJsonContext.Default.ClientMessage);
        Assert.Equal(JsonSerializer.Serialize(message, TalkiJsonContext.Default.ClientMessage), JsonSerializer.Serialize(back, TalkiJsonContext.Default.ClientMessage));
    }

    [Theory]
    [MemberData(nameof(ServerMessages))]
    public void ServerMessage_RoundTrips_WithTypeDiscriminator(ServerMessage message, string type)
    {
        var json = JsonSerializer.Serialize(message, TalkiJsonContext.Default.ServerMessage);
        using var document = JsonDocument.Parse(json);
        Assert.Equal(type, document.RootElement.GetProperty("type").GetString());

        var back = JsonSerializer.Deserialize(json, TalkiJsonContext.Default.ServerMessage);
        Assert.Equal(json, JsonSerializer.Serialize(back, TalkiJsonContext.Default.ServerMessage));
    }

    [Fact]
    public void Deserialize_TypeAfterOtherProperties_IsAccepted()
    {
        var member = MemberId.New();
        var message = JsonSerializer.Deserialize($$"""{"member":"{{member}}","type":"admit"}""", TalkiJsonContext.Default.ClientMessage);
        Assert.Equal(member, Assert.IsType<AdmitMessage>(message).Member);
    }

    [Fact]
    public void Deserialize_UnknownType_Throws()
        => Assert.ThrowsAny<JsonException>(() => JsonSerializer.Deserialize("""{"type":"teleport"}""", TalkiJsonContext.Default.ClientMessage));

    [Theory]
    [InlineData("""{"type":"admit","member":"has space"}""")]
    [InlineData("""{"type":"admit","member":42}""")]
    [InlineData("""{"type":"admit"}""")]
    public void Deserialize_InvalidMemberId_Throws(string json)
        => Assert.ThrowsAny<JsonException>(() => JsonSerializer.Deserialize(json, TalkiJsonContext.Default.ClientMessage));

    [Fact]
    public void ErrorCode_SerializesAsStableSnakeCaseName()
    {
        var json = JsonSerializer.Serialize<ServerMessage>(new ErrorMessage { Code = SignallingErrorCode.MemberNotPending, Message = "m" }, TalkiJsonContext.Default.ServerMessage);
        Assert.Contains("\"code\":\"member_not_pending\"", json, StringComparison.Ordinal);
    }

    [Fact]
    public void ErrorCode_EveryCodeHasAWireNameMatchingItsJson()
    {
        foreach (var code in Enum.GetValues<SignallingErrorCode>())
        {
            var json = JsonSerializer.Serialize<ServerMessage>(new ErrorMessage { Code = code, Message = "m" }, TalkiJsonContext.Default.ServerMessage);
            Assert.Contains($"\"code\":\"{code.ToWireName()}\"", json, StringComparison.Ordinal);
        }
    }
}
