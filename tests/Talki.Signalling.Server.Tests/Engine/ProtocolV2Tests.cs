using Talki.Signalling.Protocol;

namespace Talki.Signalling.Server.Tests.Engine;

/// <summary>
/// Protocol version 2: the mesh plan rides in messages that are sent anyway (the newcomer's admission or welcome, the
/// first offer), the admin is not echoed its admission and hears of a knock once. Version 1 members in the same room keep
/// every message they had.
/// </summary>
public sealed class ProtocolV2Tests
{
    private static string Offer(MemberId to) => $$$"""{"type":"signal","to":"{{{to}}}","description":{"type":"offer","sdp":"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n"}}""";

    private static string Answer(MemberId to) => $$$"""{"type":"signal","to":"{{{to}}}","description":{"type":"answer","sdp":"v=0\r\no=- 2 1 IN IP4 0.0.0.0\r\n"}}""";

    [Fact]
    public async Task V2Admin_Alone_WelcomeSaysVersion2WithAnEmptyPlan()
    {
        using var h = new EngineHarness();
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var connection = await h.ConnectAsync(admin, version: 2);

        var welcome = h.Push.Single<WelcomeMessage>(connection);
        Assert.Equal(2, welcome.ProtocolVersion);
        Assert.NotNull(welcome.Links);
        Assert.Empty(welcome.Links);
    }

    [Fact]
    public async Task V2Knock_AdminAskedOnce_NoEchoOnAdmit_NewcomerGetsItsPlanInTheAdmission()
    {
        using var h = new EngineHarness();
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var adminConnection = await h.ConnectAsync(admin, version: 2);
        var bob = await h.JoinAsync(EngineHarness.User("bob"), admin.Room);
        var bobConnection = await h.ConnectAsync(bob, version: 2);

        // Asked at the knock only (version 1 admins are asked again at the newcomer's hello).
        Assert.Equal(bob.Member, h.Push.Single<AdmissionRequestMessage>(adminConnection).Member.Id);
        Assert.Equal(AdmissionStatus.Pending, h.Push.Single<WelcomeMessage>(bobConnection).Status);
        Assert.Null(h.Push.Single<WelcomeMessage>(bobConnection).Links);

        await h.SendAsync(adminConnection, $$$"""{"type":"admit","member":"{{{bob.Member}}}"}""");

        Assert.Empty(h.Push.To<AdmittedMessage>(adminConnection));
        Assert.Empty(h.Push.To<ConnectToPeerMessage>(adminConnection));
        Assert.Empty(h.Push.To<ConnectToPeerMessage>(bobConnection));
        var admitted = h.Push.Single<AdmittedMessage>(bobConnection);
        var link = Assert.Single(admitted.Links!);
        Assert.Equal(admin.Member, link.Peer.Id);
        Assert.Equal(1, link.PeerEpoch);
        Assert.True(link.Offerer); // the newcomer offers
        Assert.True(link.Polite); // and yields: it became ready after the admin
    }

    [Fact]
    public async Task V2_TheFirstOfferCarriesTheReceiversSide_AnswersAndCandidatesDoNot()
    {
        using var h = new EngineHarness();
        var (admin, adminConnection, members) = await h.RoomWithMembersAsync(2, "bob");
        var (bob, bobConnection) = members[0];

        await h.SendAsync(bobConnection, Offer(admin.Member));
        var offer = h.Push.Single<SignalRelayMessage>(adminConnection);
        Assert.Equal(bob.Member, offer.From);
        Assert.NotNull(offer.Link);
        Assert.Equal(bob.Member, offer.Link.Peer.Id);
        Assert.Equal("bob", offer.Link.Peer.DisplayName[..3]);
        Assert.Equal(offer.FromEpoch, offer.Link.PeerEpoch);
        Assert.False(offer.Link.Offerer);
        Assert.False(offer.Link.Polite); // the admin became ready first: the impolite side, the complement of bob's link

        await h.SendAsync(adminConnection, Answer(bob.Member));
        await h.SendAsync(adminConnection, $$"""{"type":"signal","to":"{{bob.Member}}","candidates":[{"candidate":"candidate:1 1 udp 1 127.0.0.1 5000 typ host"}]}""");
        Assert.All(h.Push.To<SignalRelayMessage>(bobConnection), m => Assert.Null(m.Link));
    }

    [Fact]
    public async Task V2_ALinkForgedByTheSender_IsNeverRelayed()
    {
        using var h = new EngineHarness();
        var (admin, adminConnection, members) = await h.RoomWithMembersAsync(2, "bob");
        var (bob, bobConnection) = members[0];

        // Bob claims to be the admin, politely, and to be an offerer of another epoch: the server writes the link itself.
        await h.SendAsync(bobConnection, $$$"""{"type":"signal","to":"{{{admin.Member}}}","description":{"type":"answer","sdp":"v=0\r\n"},"link":{"peer":{"id":"{{{admin.Member}}}","displayName":"ada"},"peerEpoch":99,"offerer":true,"polite":true}}""");
        Assert.Null(h.Push.Single<SignalRelayMessage>(adminConnection).Link);

        h.Push.Clear();
        await h.SendAsync(bobConnection, Offer(admin.Member)[..^1] + $$$""","link":{"peer":{"id":"{{{admin.Member}}}","displayName":"ada"},"peerEpoch":99,"offerer":true,"polite":true}}""");
        var link = h.Push.Single<SignalRelayMessage>(adminConnection).Link!;
        Assert.Equal(bob.Member, link.Peer.Id);
        Assert.Equal(1, link.PeerEpoch);
        Assert.False(link.Offerer);
        Assert.False(link.Polite);
    }

    [Fact]
    public async Task V2OfferToAV1Member_CarriesNoLink_TheV1MemberWasToldByConnectToPeer()
    {
        using var h = new EngineHarness();
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var adminConnection = await h.ConnectAsync(admin, version: 1);
        var bob = await h.JoinAsync(EngineHarness.User("bob"), admin.Room);
        var bobConnection = await h.ConnectAsync(bob, version: 2);
        await h.SendAsync(adminConnection, $$$"""{"type":"admit","member":"{{{bob.Member}}}"}""");

        // The version 1 admin keeps every message it had: two requests, the echo, and its plan with version 1 roles.
        Assert.Equal(2, h.Push.To<AdmissionRequestMessage>(adminConnection).Count);
        Assert.Single(h.Push.To<AdmittedMessage>(adminConnection));
        var toAdmin = h.Push.Single<ConnectToPeerMessage>(adminConnection);
        Assert.True(toAdmin.Offerer);
        Assert.False(toAdmin.Polite);

        // The version 2 newcomer gets the complementary side in its admission, and no connect_to_peer.
        var link = Assert.Single(h.Push.Single<AdmittedMessage>(bobConnection).Links!);
        Assert.False(link.Offerer);
        Assert.True(link.Polite);
        Assert.Empty(h.Push.To<ConnectToPeerMessage>(bobConnection));

        await h.SendAsync(bobConnection, Offer(admin.Member)); // a collision the polite newcomer yields on
        Assert.Null(h.Push.Single<SignalRelayMessage>(adminConnection).Link);
    }

    [Fact]
    public async Task V1NewcomerInAV2Room_BothEndsGetConnectToPeer_AndTheV2AdminNoEcho()
    {
        using var h = new EngineHarness();
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var adminConnection = await h.ConnectAsync(admin, version: 2);
        var bob = await h.JoinAsync(EngineHarness.User("bob"), admin.Room);
        var bobConnection = await h.ConnectAsync(bob, version: 1);
        await h.SendAsync(adminConnection, $$$"""{"type":"admit","member":"{{{bob.Member}}}"}""");

        Assert.Empty(h.Push.To<AdmittedMessage>(adminConnection));
        var toAdmin = h.Push.Single<ConnectToPeerMessage>(adminConnection);
        var toBob = h.Push.Single<ConnectToPeerMessage>(bobConnection);
        Assert.Equal((true, false), (toAdmin.Offerer, toAdmin.Polite));
        Assert.Equal((false, true), (toBob.Offerer, toBob.Polite));
        Assert.Null(h.Push.Single<AdmittedMessage>(bobConnection).Links);
    }

    [Fact]
    public async Task V2Reload_AnAdmittedMembersNewEpoch_GetsItsPlanInTheWelcome()
    {
        using var h = new EngineHarness(o => o.ResumeGracePeriod = TimeSpan.Zero);
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var adminConnection = await h.ConnectAsync(admin, version: 2);
        var connections = new List<string>();
        foreach (var name in new[] { "bob", "cy" })
        {
            var grant = await h.JoinAsync(EngineHarness.User(name), admin.Room);
            connections.Add(await h.ConnectAsync(grant, version: 2));
            await h.SendAsync(adminConnection, $$$"""{"type":"admit","member":"{{{grant.Member}}}"}""");
        }

        await h.Engine.DisconnectAsync(connections[0]);
        h.Push.Clear();

        var again = await h.ConnectAsync(await h.JoinAsync(EngineHarness.User("bob"), admin.Room), version: 2);
        var welcome = h.Push.Single<WelcomeMessage>(again);
        Assert.Equal(AdmissionStatus.Admitted, welcome.Status);
        Assert.Equal(2, welcome.Links!.Count);
        Assert.All(welcome.Links, l => Assert.True(l.Offerer));
        Assert.All(welcome.Links, l => Assert.True(l.Polite)); // ready last
        Assert.Empty(h.Push.To<ConnectToPeerMessage>(adminConnection));
        Assert.Empty(h.Push.To<ConnectToPeerMessage>(connections[1]));
    }

    [Fact]
    public async Task V2FourMemberCall_CountsNineteenMessagesInAndTwentyTwoOut_AndEveryPairAgreesOnRoles()
    {
        using var h = new EngineHarness();
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var adminConnection = await h.ConnectAsync(admin, version: 2);
        var inbound = 1;
        var connections = new Dictionary<MemberId, string> { [admin.Member] = adminConnection };
        foreach (var name in new[] { "bob", "cy", "dee" })
        {
            var grant = await h.JoinAsync(EngineHarness.User(name), admin.Room);
            connections[grant.Member] = await h.ConnectAsync(grant, version: 2);
            await h.SendAsync(adminConnection, $$$"""{"type":"admit","member":"{{{grant.Member}}}"}""");
            inbound += 2;

            // The newcomer offers to everyone its admission lists; each answers.
            var links = h.Push.To<AdmittedMessage>(connections[grant.Member]).Single(m => m.Member.Id == grant.Member).Links!;
            foreach (var link in links)
            {
                Assert.True(link.Offerer);
                await h.SendAsync(connections[grant.Member], Offer(link.Peer.Id));
                var relayed = h.Push.To<SignalRelayMessage>(connections[link.Peer.Id]).Last();
                Assert.NotEqual(link.Polite, relayed.Link!.Polite); // exactly one polite side per pair
                await h.SendAsync(connections[link.Peer.Id], Answer(grant.Member));
                inbound += 2;
            }
        }

        Assert.Equal(4 + 3 + 12, inbound); // hellos, admits, offers and answers
        Assert.Equal(4 + 3 + 3 + 12, h.Push.All.Count); // welcomes, one request per knock, admissions, relayed signals
        Assert.DoesNotContain(h.Push.All, p => p.Json.Contains("\"connect_to_peer\"", StringComparison.Ordinal));
        Assert.DoesNotContain(h.Push.All, p => p.Json.Contains("\"error\"", StringComparison.Ordinal));
    }
}
