using Talki.Signalling.Protocol;

namespace Talki.Signalling.Server.Tests.Engine;

/// <summary>
/// Protocol version 4: a member that waits for admission connects with <c>wait=1</c> and says no hello; the connect binds
/// it ready, and it hears nothing until its admission (its welcome) or denial. Both gateway paths: the self-hosted one
/// (<see cref="ISignallingEngine.ConnectAsync"/>) and API Gateway's authorizer (<see cref="ISignallingEngine.AuthorizeWaitingAsync"/>).
/// </summary>
public sealed class ProtocolV4Tests
{
    /// <summary>Sends the admin's admit while the fake clock moves on in 50 ms steps: the retries of its push wait on it.</summary>
    private static async Task AdmitWhileTheClockMovesAsync(EngineHarness h, string adminConnection, MemberId member)
    {
        var admit = h.SendAsync(adminConnection, $$$"""{"type":"admit","member":"{{{member}}}"}""").AsTask();
        for (var i = 0; i < 200 && !admit.IsCompleted; i++)
        {
            await Task.Delay(5);
            h.Time.Advance(TimeSpan.FromMilliseconds(50));
        }

        await admit;
    }

    private static void WithTurn(TalkiSignallingOptions o)
    {
        o.Turn.Urls.Add("turn:127.0.0.1:3478");
        o.Turn.SharedSecret = "a-turn-secret-long-enough-for-the-validator-0123456789";
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task WaitingConnect_HearsNothing_UntilItsAdmissionBringsItsWelcome_ThenItsSignalsAreRelayed(bool twoPhase)
    {
        // Hostile: anyone with the link can knock. Connected without a hello, it still learns nothing until the admin decides.
        using var h = new EngineHarness(WithTurn);
        var (admin, adminConnection, members) = await h.RoomWithMembersAsync(3, "bob");
        var mallory = await h.JoinAsync(EngineHarness.User("mallory"), admin.Room);
        Assert.Equal(AdmissionStatus.Pending, mallory.Status);
        var requests = h.Push.To<AdmissionRequestMessage>(adminConnection).Count;

        var (malloryConnection, result) = await h.ConnectWaitingAsync(mallory, twoPhase);

        Assert.True(result.IsSuccess, result.ToString());
        Assert.Equal(mallory.Member, result.Value.Member);
        Assert.Empty(h.Push.To(malloryConnection));
        Assert.Equal(requests, h.Push.To<AdmissionRequestMessage>(adminConnection).Count); // asked once, at the knock
        var stored = await h.Store.GetMemberAsync(admin.Room, mallory.Member);
        Assert.Equal(malloryConnection, stored!.ConnectionId);
        Assert.Equal(4, stored.ProtocolVersion);
        Assert.NotNull(stored.ReadyAt);
        Assert.Equal(result.Value.Epoch, stored.Epoch);

        await h.SendAsync(adminConnection, $$$"""{"type":"admit","member":"{{{mallory.Member}}}"}""");

        var welcome = Assert.IsType<WelcomeMessage>(Assert.Single(h.Push.To(malloryConnection)));
        Assert.Equal(4, welcome.ProtocolVersion);
        Assert.Equal(AdmissionStatus.Admitted, welcome.Status);
        Assert.Equal(result.Value.Epoch, welcome.You.Epoch);
        Assert.Contains(welcome.IceServers, s => s.Urls.Any(u => u.StartsWith("turn:", StringComparison.Ordinal)) && s.Credential is not null);
        Assert.Equal(2, welcome.Links!.Count);
        Assert.All(welcome.Links, l => Assert.True(l.Offerer));

        // Bound for real: its offer reaches bob, stamped with its epoch.
        var bob = members[0];
        var link = welcome.Links.Single(l => l.Peer.Id == bob.Grant.Member);
        var offer = $$$"""{"type":"signal","to":"{{{bob.Grant.Member}}}","toEpoch":{{{link.PeerEpoch}}},"description":{"type":"offer","sdp":"v=0"}}""";
        if (twoPhase)
        {
            await h.SendAuthorizedAsync(malloryConnection, result.Value, offer);
        }
        else
        {
            await h.SendAsync(malloryConnection, offer);
        }

        var relayed = h.Push.To<SignalRelayMessage>(bob.Connection).Last();
        Assert.Equal(mallory.Member, relayed.From);
        Assert.Equal(result.Value.Epoch, relayed.FromEpoch);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task WaitingConnect_Denied_GetsDeniedAndIsClosed_HavingLearnedNothing(bool twoPhase)
    {
        using var h = new EngineHarness(WithTurn);
        var (admin, adminConnection, members) = await h.RoomWithMembersAsync(3, "bob");
        var eve = await h.JoinAsync(EngineHarness.User("eve"), admin.Room);
        var (eveConnection, result) = await h.ConnectWaitingAsync(eve, twoPhase);
        Assert.True(result.IsSuccess, result.ToString());

        await h.SendAsync(adminConnection, $$$"""{"type":"deny","member":"{{{eve.Member}}}"}""");

        Assert.Equal(eve.Member, Assert.IsType<DeniedMessage>(Assert.Single(h.Push.To(eveConnection))).Member.Id);
        Assert.True(h.Push.WasClosed(eveConnection));
        Assert.DoesNotContain(h.Push.All, p => p.Connection == eveConnection && p.Json.Contains(members[0].Grant.Member.Value, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task WaitingConnect_AdmittedSinceItsTicket_IsRefusedTicketInvalid_AndANewTicketSaysAdmitted_AndItsHelloIsWelcomed(bool twoPhase)
    {
        // The race an auto-admitting admin always wins: admitted between the knock's answer and the connect. The client
        // expects no welcome it did not ask for, so the connect is refused and a new ticket tells it where it stands.
        using var h = new EngineHarness(WithTurn);
        var (admin, adminConnection, _) = await h.RoomWithMembersAsync(3, "bob");
        var carol = await h.JoinAsync(EngineHarness.User("carol"), admin.Room);
        await h.SendAsync(adminConnection, $$$"""{"type":"admit","member":"{{{carol.Member}}}"}""");

        var (refusedConnection, refused) = await h.ConnectWaitingAsync(carol, twoPhase);

        Assert.False(refused.IsSuccess);
        Assert.Equal(SignallingErrorCode.TicketInvalid, refused.Error!.Code);
        Assert.Contains("ask for a new ticket", refused.Error!.Message, StringComparison.Ordinal);
        Assert.Empty(h.Push.To(refusedConnection));
        Assert.Null((await h.Store.GetMemberAsync(admin.Room, carol.Member))!.ConnectionId);
        Assert.False((await h.Engine.ConnectAsync(h.NewConnectionId(), carol.Ticket.Value)).IsSuccess); // the ticket was used

        var again = await h.JoinAsync(EngineHarness.User("carol"), admin.Room);
        Assert.Equal(AdmissionStatus.Admitted, again.Status);
        var connection = await h.ConnectAsync(again, version: 4);
        var welcome = h.Push.Single<WelcomeMessage>(connection);
        Assert.Equal(AdmissionStatus.Admitted, welcome.Status);
        Assert.Equal(2, welcome.Links!.Count);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task WaitingConnect_DeniedSinceItsTicket_IsRefusedDenied(bool twoPhase)
    {
        using var h = new EngineHarness();
        var (admin, adminConnection, _) = await h.RoomWithMembersAsync(3, "bob");
        var eve = await h.JoinAsync(EngineHarness.User("eve"), admin.Room);
        await h.SendAsync(adminConnection, $$$"""{"type":"deny","member":"{{{eve.Member}}}"}""");

        var (_, refused) = await h.ConnectWaitingAsync(eve, twoPhase);

        Assert.Equal(SignallingErrorCode.Denied, refused.Error!.Code);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task WaitingConnect_WithAnAdmittedMembersTicket_IsRefused_AndItsLiveConnectionIsUntouched(bool twoPhase)
    {
        // Hostile: a member asks to wait on a ticket that says it is admitted (a crafted URL). Refused; its call goes on.
        using var h = new EngineHarness();
        var (admin, adminConnection, members) = await h.RoomWithMembersAsync(3, "bob");
        var bob = members[0];
        var reload = await h.JoinAsync(EngineHarness.User(bob.Grant.DisplayName!), admin.Room);
        Assert.Equal(AdmissionStatus.Admitted, reload.Status);
        var before = await h.Store.GetMemberAsync(admin.Room, bob.Grant.Member);

        var (_, refused) = await h.ConnectWaitingAsync(reload, twoPhase);

        Assert.Equal(SignallingErrorCode.TicketInvalid, refused.Error!.Code);
        var after = await h.Store.GetMemberAsync(admin.Room, bob.Grant.Member);
        Assert.Equal(before!.ConnectionId, after!.ConnectionId);
        Assert.Equal(before.Epoch, after.Epoch);
        Assert.False(h.Push.WasClosed(bob.Connection));
        Assert.Empty(h.Push.To<PeerLeftMessage>(adminConnection));
    }

    [Theory]
    [InlineData(false, 3)]
    [InlineData(true, 3)]
    [InlineData(false, 1)]
    [InlineData(true, ProtocolVersion.Current + 1)]
    public async Task WaitingConnect_AtAVersionThatCannotWait_IsRefusedUnsupportedVersion_AndTheTicketStillWorks(bool twoPhase, int version)
    {
        using var h = new EngineHarness();
        var (admin, _, _) = await h.RoomWithMembersAsync(3, "bob");
        var dave = await h.JoinAsync(EngineHarness.User("dave"), admin.Room);

        var (connection, refused) = await h.ConnectWaitingAsync(dave, twoPhase, version);

        Assert.Equal(SignallingErrorCode.UnsupportedVersion, refused.Error!.Code);
        Assert.Empty(h.Push.To(connection));
        Assert.True((await h.Engine.ConnectAsync(h.NewConnectionId(), dave.Ticket.Value)).IsSuccess); // not taken
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task WaitingConnect_ReplayedTicket_IsRefused_AndTheFirstConnectionKeepsTheMember(bool twoPhase)
    {
        using var h = new EngineHarness();
        var (admin, adminConnection, _) = await h.RoomWithMembersAsync(3, "bob");
        var dave = await h.JoinAsync(EngineHarness.User("dave"), admin.Room);
        var (first, ok) = await h.ConnectWaitingAsync(dave, twoPhase);
        Assert.True(ok.IsSuccess);

        var (_, replay) = await h.ConnectWaitingAsync(dave, twoPhase);

        Assert.Equal(SignallingErrorCode.TicketInvalid, replay.Error!.Code);
        await h.SendAsync(adminConnection, $$$"""{"type":"admit","member":"{{{dave.Member}}}"}""");
        Assert.IsType<WelcomeMessage>(Assert.Single(h.Push.To(first)));
    }

    [Fact]
    public async Task WaitingConnect_ASecondConnectOfTheSameMember_TakesOver_InTheAuthorizerTheOlderIsNotClosedButGetsStaleEpoch()
    {
        using var h = new EngineHarness();
        var (admin, adminConnection, _) = await h.RoomWithMembersAsync(3, "bob");
        var dave = await h.JoinAsync(EngineHarness.User("dave"), admin.Room);
        var (older, olderGrant) = await h.ConnectWaitingAsync(dave, twoPhase: true);
        var secondTicket = await h.JoinAsync(EngineHarness.User("dave"), admin.Room);
        Assert.Equal(dave.Member, secondTicket.Member);

        var (newer, newerGrant) = await h.ConnectWaitingAsync(secondTicket, twoPhase: true);

        Assert.True(newerGrant.IsSuccess);
        Assert.True(newerGrant.Value.Epoch > olderGrant.Value.Epoch);
        Assert.False(h.Push.WasClosed(older)); // the authorizer reaches no connection
        await h.SendAuthorizedAsync(older, olderGrant.Value, """{"type":"ping","id":"p"}""");
        Assert.Equal(SignallingErrorCode.StaleEpoch, h.Push.LastError(older).Code);

        await h.SendAsync(adminConnection, $$$"""{"type":"admit","member":"{{{dave.Member}}}"}""");
        Assert.IsType<WelcomeMessage>(Assert.Single(h.Push.To(newer)));
        Assert.Empty(h.Push.To<WelcomeMessage>(older));
    }

    [Fact]
    public async Task WaitingConnect_SelfHosted_ASecondConnectClosesTheOlder()
    {
        using var h = new EngineHarness();
        var (admin, _, _) = await h.RoomWithMembersAsync(3, "bob");
        var dave = await h.JoinAsync(EngineHarness.User("dave"), admin.Room);
        var (older, _) = await h.ConnectWaitingAsync(dave, twoPhase: false);

        var (_, newer) = await h.ConnectWaitingAsync(await h.JoinAsync(EngineHarness.User("dave"), admin.Room), twoPhase: false);

        Assert.True(newer.IsSuccess);
        Assert.True(h.Push.WasClosed(older));
    }

    [Fact]
    public async Task WaitingConnect_AdmittedBeforeItsConnectionOpened_GetsItsWelcomeOnceItOpens()
    {
        // API Gateway answers 410 to a post to a connection whose $connect has not completed: an admin who admits in that
        // moment must not lose the newcomer (it would wait, unbound, until the seal).
        using var h = new EngineHarness();
        var (admin, adminConnection, _) = await h.RoomWithMembersAsync(3, "bob");
        var dave = await h.JoinAsync(EngineHarness.User("dave"), admin.Room);
        var (connection, result) = await h.ConnectWaitingAsync(dave, twoPhase: true);
        Assert.True(result.IsSuccess);
        h.Push.GoneFor[connection] = 3;

        await AdmitWhileTheClockMovesAsync(h, adminConnection, dave.Member);
        Assert.IsType<WelcomeMessage>(Assert.Single(h.Push.To(connection)));
        var stored = await h.Store.GetMemberAsync(admin.Room, dave.Member);
        Assert.Equal(connection, stored!.ConnectionId);
        Assert.Equal(AdmissionStatus.Admitted, stored.Admission);
    }

    [Fact]
    public async Task WaitingConnect_WhoseConnectionNeverOpened_IsTreatedAsGone_OnceTheWindowHasPassed()
    {
        using var h = new EngineHarness();
        var (admin, adminConnection, _) = await h.RoomWithMembersAsync(3, "bob");
        var dave = await h.JoinAsync(EngineHarness.User("dave"), admin.Room);
        var (connection, result) = await h.ConnectWaitingAsync(dave, twoPhase: true);
        Assert.True(result.IsSuccess);
        h.Push.Gone[connection] = true;

        await AdmitWhileTheClockMovesAsync(h, adminConnection, dave.Member);
        var stored = await h.Store.GetMemberAsync(admin.Room, dave.Member);
        Assert.Equal(AdmissionStatus.Admitted, stored!.Admission); // admitted: its next connection is welcomed
        Assert.NotEqual(connection, stored.ConnectionId);
    }

    [Fact]
    public async Task MinimumProtocolVersion4_AVersion3KnockIsRefusedAtItsHello_AWaitingVersion4OneIsServed()
    {
        using var h = new EngineHarness(o => o.MinimumProtocolVersion = 4);
        var (admin, adminConnection, _) = await h.RoomWithMembersAsync(4, "bob");
        var old = await h.JoinAsync(EngineHarness.User("old"), admin.Room);
        var oldConnection = await h.ConnectAsync(old, version: 3);
        Assert.Equal(SignallingErrorCode.UnsupportedVersion, Assert.IsType<ErrorMessage>(Assert.Single(h.Push.To(oldConnection))).Code);

        var dave = await h.JoinAsync(EngineHarness.User("dave"), admin.Room);
        var (connection, result) = await h.ConnectWaitingAsync(dave, twoPhase: true);
        Assert.True(result.IsSuccess);
        await h.SendAsync(adminConnection, $$$"""{"type":"admit","member":"{{{dave.Member}}}"}""");
        Assert.IsType<WelcomeMessage>(Assert.Single(h.Push.To(connection)));
    }
}
