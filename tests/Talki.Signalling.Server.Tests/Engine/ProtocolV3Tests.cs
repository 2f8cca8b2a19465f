using Talki.Signalling.Protocol;

namespace Talki.Signalling.Server.Tests.Engine;

/// <summary>
/// Protocol version 3: a member that waits for admission is told nothing about the room (no member list, no ICE servers,
/// no TURN credentials) until the admin admits it, and then its welcome is its admission. Members of earlier versions in
/// the same room keep every message they had.
/// </summary>
public sealed class ProtocolV3Tests
{
    private static void WithTurn(TalkiSignallingOptions o)
    {
        o.Turn.Urls.Add("turn:127.0.0.1:3478");
        o.Turn.SharedSecret = "a-turn-secret-long-enough-for-the-validator-0123456789";
    }

    [Fact]
    public async Task V3Knock_TheWaitingMemberHearsNothing_NotTheMembersNorTheIceServers_UntilItsAdmissionBringsItsWelcome()
    {
        // Hostile: anyone with the link can sign in anonymously and knock. Until the admin lets it in, it must not learn who
        // is in the call, nor get relay credentials.
        using var h = new EngineHarness(WithTurn);
        var (admin, adminConnection, members) = await h.RoomWithMembersAsync(3, "bob");
        var mallory = await h.JoinAsync(EngineHarness.User("mallory"), admin.Room);
        Assert.Equal(AdmissionStatus.Pending, mallory.Status);
        var malloryConnection = await h.ConnectAsync(mallory, version: 3);
        await h.SendAsync(malloryConnection, """{"type":"hello","version":3}"""); // said twice: still nothing
        await h.SendAsync(malloryConnection, """{"type":"ping","id":"p"}""");

        Assert.Equal(mallory.Member, h.Push.To<AdmissionRequestMessage>(adminConnection).Last().Member.Id); // the admin is asked
        var toMallory = h.Push.All.Where(p => p.Connection == malloryConnection).Select(p => p.Json).ToList();
        Assert.IsType<PongMessage>(Assert.Single(h.Push.To(malloryConnection))); // only the answer to its ping
        Assert.All(toMallory, json => Assert.DoesNotContain(members[0].Grant.Member.Value, json, StringComparison.Ordinal));
        Assert.All(toMallory, json => Assert.DoesNotContain("turn:", json, StringComparison.Ordinal));

        await h.SendAsync(adminConnection, $$$"""{"type":"admit","member":"{{{mallory.Member}}}"}""");

        Assert.Empty(h.Push.To<AdmittedMessage>(malloryConnection)); // the welcome is the admission
        var welcome = h.Push.Single<WelcomeMessage>(malloryConnection);
        Assert.Equal(3, welcome.ProtocolVersion);
        Assert.Equal(AdmissionStatus.Admitted, welcome.Status);
        Assert.Equal(AdmissionStatus.Admitted, welcome.You.Status);
        Assert.Equal(mallory.Member, welcome.You.Id);
        Assert.Equal(admin.Room, welcome.Room.Id);
        Assert.Equal(admin.Member, welcome.Room.Admin);
        Assert.NotNull(welcome.ServerTime);
        Assert.False(welcome.Resumed);
        Assert.Equal(
            new[] { admin.Member, members[0].Grant.Member }.OrderBy(m => m.Value, StringComparer.Ordinal),
            welcome.Members.Select(m => m.Id).OrderBy(m => m.Value, StringComparer.Ordinal));
        Assert.Contains(welcome.IceServers, s => s.Urls.Any(u => u.StartsWith("turn:", StringComparison.Ordinal)) && s.Credential is not null);
        Assert.Equal(2, welcome.Links!.Count); // its plan: it offers to both
        Assert.All(welcome.Links, l => Assert.True(l.Offerer));
        Assert.Empty(h.Push.To<ConnectToPeerMessage>(adminConnection));
        Assert.Empty(h.Push.To<AdmittedMessage>(adminConnection)); // no echo to a version 3 admin
    }

    [Fact]
    public async Task V3Knock_Denied_TheWaitingMemberGetsDeniedAndIsClosed_HavingLearnedNothing()
    {
        using var h = new EngineHarness(WithTurn);
        var (admin, adminConnection, members) = await h.RoomWithMembersAsync(3, "bob");
        var eve = await h.JoinAsync(EngineHarness.User("eve"), admin.Room);
        var eveConnection = await h.ConnectAsync(eve, version: 3);

        await h.SendAsync(adminConnection, $$$"""{"type":"deny","member":"{{{eve.Member}}}"}""");

        var only = Assert.Single(h.Push.To(eveConnection));
        Assert.Equal(eve.Member, Assert.IsType<DeniedMessage>(only).Member.Id);
        Assert.True(h.Push.WasClosed(eveConnection));
        Assert.DoesNotContain(h.Push.All, p => p.Connection == eveConnection && p.Json.Contains(members[0].Grant.Member.Value, StringComparison.Ordinal));
    }

    [Fact]
    public async Task V3WaitingMember_SignalsAndAdmits_AreRefusedWithTypedErrors_AndStillCarryNoRoomData()
    {
        using var h = new EngineHarness(WithTurn);
        var (admin, _, members) = await h.RoomWithMembersAsync(3, "bob");
        var mallory = await h.JoinAsync(EngineHarness.User("mallory"), admin.Room);
        var malloryConnection = await h.ConnectAsync(mallory, version: 3);

        await h.SendAsync(malloryConnection, $$$"""{"type":"signal","to":"{{{admin.Member}}}","description":{"type":"offer","sdp":"v=0\r\n"}}""");
        Assert.Equal(SignallingErrorCode.NotAdmitted, h.Push.LastError(malloryConnection).Code);
        await h.SendAsync(malloryConnection, $$$"""{"type":"admit","member":"{{{mallory.Member}}}"}""");
        Assert.Equal(SignallingErrorCode.NotAdmin, h.Push.LastError(malloryConnection).Code);

        Assert.All(h.Push.To(malloryConnection), m => Assert.IsType<ErrorMessage>(m));
        Assert.DoesNotContain(h.Push.All, p => p.Connection == malloryConnection && p.Json.Contains(members[0].Grant.Member.Value, StringComparison.Ordinal));
    }

    [Fact]
    public async Task V3WaitingMember_ResumingWithAGuessedEpoch_GetsNoWelcome_ItsAdmissionLaterDoes()
    {
        // Hostile: the client is told no epoch while it waits, but epochs are small numbers. A resume with a guessed one
        // must not turn into the welcome that the waiting hello does not get.
        using var h = new EngineHarness(o =>
        {
            WithTurn(o);
            o.ResumeGracePeriod = TimeSpan.FromSeconds(20);
        });
        var (admin, adminConnection, members) = await h.RoomWithMembersAsync(3, "bob");
        var mallory = await h.JoinAsync(EngineHarness.User("mallory"), admin.Room);
        var (first, firstGrant) = await h.ConnectTwoPhaseAsync(mallory, version: 3);
        await h.Engine.HandleAuthorizedDisconnectAsync(first, firstGrant);
        var again = await h.JoinAsync(EngineHarness.User("mallory"), admin.Room);
        var (resumed, grant) = await h.ConnectTwoPhaseAsync(again, version: 3, resume: 1);

        Assert.Empty(h.Push.To<WelcomeMessage>(resumed));
        Assert.DoesNotContain(h.Push.All, p => p.Connection == resumed && p.Json.Contains(members[0].Grant.Member.Value, StringComparison.Ordinal));

        await h.SendAsync(adminConnection, $$$"""{"type":"admit","member":"{{{mallory.Member}}}"}""");
        var welcome = h.Push.Single<WelcomeMessage>(resumed);
        Assert.Equal(AdmissionStatus.Admitted, welcome.Status);
        Assert.Equal(2, welcome.Links!.Count);
        Assert.Equal(grant.Member, welcome.You.Id);
    }

    [Fact]
    public async Task V3Newcomer_AdmittedWhileItsSocketIsDown_IsQueuedNothing_ItsNextConnectionIsWelcomedWithItsPlan()
    {
        using var h = new EngineHarness(o => o.ResumeGracePeriod = TimeSpan.FromSeconds(20));
        var (admin, adminConnection, members) = await h.RoomWithMembersAsync(3, "bob");
        var cyd = await h.JoinAsync(EngineHarness.User("cyd"), admin.Room);
        var (first, firstGrant) = await h.ConnectTwoPhaseAsync(cyd, version: 3);
        await h.Engine.HandleAuthorizedDisconnectAsync(first, firstGrant); // suspended: said hello, within its grace period

        await h.SendAsync(adminConnection, $$$"""{"type":"admit","member":"{{{cyd.Member}}}"}""");
        Assert.Empty(h.Push.All.Where(p => p.Connection == first).Select(p => p.Json));

        // A version 3 client has no epoch to resume while it waits: it rejoins with a new ticket and a new epoch.
        var ticket = await h.JoinAsync(EngineHarness.User("cyd"), admin.Room);
        Assert.Equal(AdmissionStatus.Admitted, ticket.Status);
        var (second, _) = await h.ConnectTwoPhaseAsync(ticket, version: 3);
        var welcome = h.Push.Single<WelcomeMessage>(second);
        Assert.False(welcome.Resumed);
        Assert.Equal(AdmissionStatus.Admitted, welcome.Status);
        Assert.Equal(2, welcome.Links!.Count);
        Assert.Equal([admin.Member, members[0].Grant.Member], [.. welcome.Links.Select(l => l.Peer.Id).OrderBy(m => m == admin.Member ? 0 : 1)]);
        Assert.Single(h.Push.To<WelcomeMessage>(second)); // nothing queued for the old epoch comes after it
    }

    [Fact]
    public async Task V3Newcomer_AdmittedWhileSuspended_ThenResuming_GetsOneWelcome_TheResumedOneWithItsPlan()
    {
        // A client that does resume (not ours: it has no epoch while it waits) must not get a second, queued welcome
        // after its resumed one: a welcome that is not resumed tells a client to start its links over.
        using var h = new EngineHarness(o => o.ResumeGracePeriod = TimeSpan.FromSeconds(20));
        var (admin, adminConnection, _) = await h.RoomWithMembersAsync(3, "bob");
        var cyd = await h.JoinAsync(EngineHarness.User("cyd"), admin.Room);
        var (first, firstGrant) = await h.ConnectTwoPhaseAsync(cyd, version: 3);
        await h.Engine.HandleAuthorizedDisconnectAsync(first, firstGrant);
        await h.SendAsync(adminConnection, $$$"""{"type":"admit","member":"{{{cyd.Member}}}"}""");

        var (resumed, _) = await h.ConnectTwoPhaseAsync(await h.JoinAsync(EngineHarness.User("cyd"), admin.Room), version: 3, resume: firstGrant.Epoch);
        var welcome = h.Push.Single<WelcomeMessage>(resumed);
        Assert.True(welcome.Resumed);
        Assert.Equal(AdmissionStatus.Admitted, welcome.Status);
        Assert.Equal(2, welcome.Links!.Count);
        Assert.Empty(h.Push.To<AdmittedMessage>(resumed));
    }

    [Fact]
    public async Task V3Newcomer_WithAVersion1Admin_TheAdminIsAskedAgainAtTheHello_AndGetsItsPlanAndEcho()
    {
        using var h = new EngineHarness();
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var adminConnection = await h.ConnectAsync(admin, version: 1);
        var bob = await h.JoinAsync(EngineHarness.User("bob"), admin.Room);
        var bobConnection = await h.ConnectAsync(bob, version: 3);

        Assert.Equal(2, h.Push.To<AdmissionRequestMessage>(adminConnection).Count); // at the knock and at the hello, as version 1 expects
        Assert.Empty(h.Push.To(bobConnection));

        await h.SendAsync(adminConnection, $$$"""{"type":"admit","member":"{{{bob.Member}}}"}""");
        Assert.Single(h.Push.To<AdmittedMessage>(adminConnection));
        Assert.Single(h.Push.To<ConnectToPeerMessage>(adminConnection));
        var link = Assert.Single(h.Push.Single<WelcomeMessage>(bobConnection).Links!);
        Assert.Equal(admin.Member, link.Peer.Id);
        Assert.Empty(h.Push.To<ConnectToPeerMessage>(bobConnection));
    }

    [Fact]
    public async Task MinimumProtocolVersion3_AVersion2KnockIsRefusedAtItsHello_AndLearnsNothing_AVersion3OneIsServed()
    {
        // Hostile: with version 3 served, a knocker that says version 2 would still get the waiting welcome (members and
        // ICE servers). An operator whose clients all speak version 3 closes that door.
        using var h = new EngineHarness(o =>
        {
            WithTurn(o);
            o.MinimumProtocolVersion = 3;
        });
        var (admin, _, members) = await h.RoomWithMembersAsync(3, "bob");
        var mallory = await h.JoinAsync(EngineHarness.User("mallory"), admin.Room);
        var malloryConnection = await h.ConnectAsync(mallory, version: 2);
        var (twoPhase, _) = await h.ConnectTwoPhaseAsync(await h.JoinAsync(EngineHarness.User("mallory"), admin.Room), version: 1);

        foreach (var connection in new[] { malloryConnection, twoPhase })
        {
            var refusal = Assert.IsType<ErrorMessage>(Assert.Single(h.Push.To(connection)));
            Assert.Equal(SignallingErrorCode.UnsupportedVersion, refusal.Code);
            Assert.Contains("3 to 4", refusal.Message, StringComparison.Ordinal);
        }

        Assert.DoesNotContain(h.Push.All, p => (p.Connection == malloryConnection || p.Connection == twoPhase) && p.Json.Contains(members[0].Grant.Member.Value, StringComparison.Ordinal));
        var v3 = await h.ConnectAsync(await h.JoinAsync(EngineHarness.User("cyd"), admin.Room), version: 3);
        Assert.Empty(h.Push.To(v3)); // served: a waiting version 3 member is told nothing
    }

    [Fact]
    public async Task V2Knock_InAVersion3Server_StillGetsItsWaitingWelcome_AndItsAdmission()
    {
        // A version 2 client during a rolling upgrade keeps every message it had.
        using var h = new EngineHarness();
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var adminConnection = await h.ConnectAsync(admin, version: 3);
        var bob = await h.JoinAsync(EngineHarness.User("bob"), admin.Room);
        var bobConnection = await h.ConnectAsync(bob, version: 2);
        Assert.Equal(AdmissionStatus.Pending, h.Push.Single<WelcomeMessage>(bobConnection).Status);

        await h.SendAsync(adminConnection, $$$"""{"type":"admit","member":"{{{bob.Member}}}"}""");
        Assert.Single(Assert.Single(h.Push.To<AdmittedMessage>(bobConnection)).Links!);
        Assert.Single(h.Push.To<WelcomeMessage>(bobConnection));
    }

    [Fact]
    public async Task V3Admin_AndAReloadedAdmittedMember_AreWelcomedAtTheirHello()
    {
        using var h = new EngineHarness();
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        Assert.Equal(AdmissionStatus.Admitted, admin.Status);
        var adminConnection = await h.ConnectAsync(admin, version: 3);
        Assert.Equal(AdmissionStatus.Admitted, h.Push.Single<WelcomeMessage>(adminConnection).Status);

        var bob = await h.JoinAsync(EngineHarness.User("bob"), admin.Room);
        await h.ConnectAsync(bob, version: 3);
        await h.SendAsync(adminConnection, $$$"""{"type":"admit","member":"{{{bob.Member}}}"}""");
        var reload = await h.JoinAsync(EngineHarness.User("bob"), admin.Room);
        Assert.Equal(AdmissionStatus.Admitted, reload.Status);
        Assert.Equal("bob", reload.DisplayName);
        var reloaded = await h.ConnectAsync(reload, version: 3);
        var welcome = h.Push.Single<WelcomeMessage>(reloaded);
        Assert.Equal(AdmissionStatus.Admitted, welcome.Status);
        Assert.Single(welcome.Links!);
    }
}
