using System.Text.Json;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Server.Tests.Engine;

/// <summary>
/// Resume: a member whose signalling socket drops keeps its epoch for the grace period; its peers hear nothing of the drop
/// (version 2 peers hear <c>peer_resumed</c> when it is back), messages to it are queued, and a reconnect that asks to
/// resume continues the same epoch. Includes what a flaky network, a member
/// and a stranger can do to it.
/// </summary>
public sealed class ResumeTests
{
    private static readonly TimeSpan Grace = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task DropAndResumeWithinTheGracePeriod_KeepsTheEpoch_PeersHearNothing_AndQueuedSignalsFollowTheWelcomeInOrder()
    {
        using var h = new EngineHarness();
        var call = await Call.StartAsync(h, "bob", "cy");
        var bobEpoch = h.Push.To<WelcomeMessage>(call.Connection("bob")).Last().You.Epoch;
        await h.Engine.DisconnectAsync(call.Connection("bob"));
        h.Push.Clear();

        h.Time.Advance(TimeSpan.FromSeconds(5));
        for (var i = 1; i <= 3; i++)
        {
            await h.SendAsync(call.Connection("cy"), Signal(call.Member("bob"), "cy-" + i));
        }

        await h.SendAsync(call.Connection("ada"), Signal(call.Member("bob"), "ada-1"));
        var resumed = await call.ReconnectAsync("bob", resume: bobEpoch);

        var frames = h.Push.All.Where(p => p.Connection == resumed).Select(p => p.Json).ToList();
        var welcome = Assert.IsType<WelcomeMessage>(Parse(frames[0]));
        Assert.True(welcome.Resumed);
        Assert.Equal((bobEpoch, 0), (welcome.You.Epoch, welcome.Missed));
        Assert.Equal(["cy-1", "cy-2", "cy-3", "ada-1"], frames.Skip(1).Select(Parse).OfType<SignalRelayMessage>().Select(CandidateOf));
        Assert.Empty(h.Push.To<PeerLeftMessage>(call.Connection("ada")));
        Assert.Empty(h.Push.To<PeerLeftMessage>(call.Connection("cy")));
        Assert.Empty(h.Push.To<ConnectToPeerMessage>(call.Connection("ada")));
        Assert.Empty(h.Push.To<ConnectToPeerMessage>(call.Connection("cy")));
        Assert.Empty(h.Push.To<ConnectToPeerMessage>(resumed));
        Assert.Empty(h.Push.To<ErrorMessage>(call.Connection("cy")));

        // Live again: the next signal goes straight to the new socket, and the grace timer that was armed does nothing.
        await h.SendAsync(call.Connection("cy"), Signal(call.Member("bob"), "cy-4"));
        Assert.Equal("cy-4", CandidateOf(h.Push.To<SignalRelayMessage>(resumed).Last()));
        h.Time.Advance(TimeSpan.FromMinutes(1));
        Assert.Empty(h.Push.To<PeerLeftMessage>(call.Connection("ada")));
        Assert.Equal(0, h.Concrete.GraceTimerCount);
    }

    [Fact]
    public async Task AResume_TellsEachVersion2Peer_PeerResumed_WithHowLongItWasSuspended_ASuspendedPeerAtItsOwnResume()
    {
        // What was relayed into the dropped socket before the server noticed may be lost: the peers that sent it are told.
        using var h = new EngineHarness();
        var call = await Call.StartAsync(h, 2, ("bob", 2), ("cy", 2), ("dee", 1), ("eve", 2));
        var epochs = new[] { "bob", "eve" }.ToDictionary(n => n, n => h.Push.To<WelcomeMessage>(call.Connection(n)).Last().You.Epoch);
        await h.Engine.DisconnectAsync(call.Connection("eve"));
        h.Time.Advance(TimeSpan.FromSeconds(1));
        await h.Engine.DisconnectAsync(call.Connection("bob"));
        h.Push.Clear();
        h.Time.Advance(TimeSpan.FromSeconds(3));

        var bob = await call.ReconnectAsync("bob", resume: epochs["bob"], version: 2); // one more millisecond

        Assert.True(h.Push.Single<WelcomeMessage>(bob).Resumed);
        foreach (var peer in new[] { "ada", "cy" })
        {
            var notice = h.Push.Single<PeerResumedMessage>(call.Connection(peer));
            Assert.Equal((call.Member("bob"), epochs["bob"], 3001L), (notice.Member, notice.Epoch, notice.SuspendedMilliseconds));
        }

        Assert.Empty(h.Push.To<PeerResumedMessage>(call.Connection("dee"))); // version 1 does not know the message
        Assert.Empty(h.Push.To<PeerResumedMessage>(bob));
        Assert.Empty(h.Push.To<PeerLeftMessage>(call.Connection("ada")));

        // Eve was away at that moment: she hears it after her own welcome, and the others hear of her.
        var eve = await call.ReconnectAsync("eve", resume: epochs["eve"], version: 2);
        Assert.Equal([call.Member("bob")], h.Push.To<PeerResumedMessage>(eve).Select(n => n.Member));
        var eveNotice = h.Push.Single<PeerResumedMessage>(bob);
        Assert.Equal((call.Member("eve"), 4002L), (eveNotice.Member, eveNotice.SuspendedMilliseconds));
        Assert.Equal(2, h.Push.To<PeerResumedMessage>(call.Connection("ada")).Count);
    }

    [Fact]
    public async Task AResumedWelcome_RepeatsTheVersion2PlanAnAdmissionCarries_ButNotForVersion1()
    {
        // An admission written into the dying socket is lost with its plan; the resumed welcome carries it again.
        using var h = new EngineHarness();
        var call = await Call.StartAsync(h, 2, ("bob", 2), ("dee", 1));
        var epochs = new[] { "bob", "dee" }.ToDictionary(n => n, n => h.Push.To<WelcomeMessage>(call.Connection(n)).Last().You.Epoch);
        await h.Engine.DisconnectAsync(call.Connection("bob"));
        await h.Engine.DisconnectAsync(call.Connection("dee"));

        var bob = h.Push.Single<WelcomeMessage>(await call.ReconnectAsync("bob", resume: epochs["bob"], version: 2));
        var dee = h.Push.Single<WelcomeMessage>(await call.ReconnectAsync("dee", resume: epochs["dee"]));

        Assert.True(bob.Resumed && dee.Resumed);
        Assert.Equal(new[] { call.Member("ada"), call.Member("dee") }.Select(m => m.Value).Order(StringComparer.Ordinal), bob.Links!.Select(l => l.Peer.Id.Value).Order(StringComparer.Ordinal));
        Assert.All(bob.Links!, l => Assert.True(l.Offerer || l.Peer.Id == call.Member("dee"), "a version 2 member offers to version 2 peers"));
        Assert.Null(dee.Links); // version 1 gets connect_to_peer messages, never links
    }

    [Fact]
    public async Task APendingMembersResume_IsNoPeerResumed_NobodyHasSignalledIt()
    {
        // Nothing is relayed to a newcomer the admin has not admitted, so nothing can have been lost in its socket.
        using var h = new EngineHarness();
        var bob = EngineHarness.User("bob");
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var ada = await h.ConnectAsync(admin, version: 2);
        var knock = await h.ConnectAsync(await h.JoinAsync(bob, admin.Room), version: 2);
        var epoch = h.Push.Single<WelcomeMessage>(knock).You.Epoch;
        await h.Engine.DisconnectAsync(knock);
        h.Push.Clear();

        var again = h.NewConnectionId();
        h.Time.Advance(TimeSpan.FromSeconds(2));
        Assert.True((await h.Engine.ConnectAsync(again, (await h.JoinAsync(bob, admin.Room)).Ticket.Value, epoch)).IsSuccess);
        await h.SendAsync(again, """{"type":"hello","version":2}""");

        Assert.True(h.Push.Single<WelcomeMessage>(again).Resumed);
        Assert.Empty(h.Push.To<PeerResumedMessage>(ada));
        Assert.Empty(h.Push.To<PeerResumedMessage>(again));
    }

    [Fact]
    public async Task AFreshStartInsteadOfAResume_IsAnnouncedAsADeparture_NeverAsPeerResumed()
    {
        using var h = new EngineHarness();
        var call = await Call.StartAsync(h, 2, ("bob", 2));
        var bobEpoch = h.Push.To<WelcomeMessage>(call.Connection("bob")).Last().You.Epoch;
        await h.Engine.DisconnectAsync(call.Connection("bob"));

        var fresh = await call.ReconnectAsync("bob", resume: null, version: 2);

        Assert.False(h.Push.Single<WelcomeMessage>(fresh).Resumed);
        Assert.Equal(bobEpoch, h.Push.Single<PeerLeftMessage>(call.Connection("ada")).Epoch);
        Assert.Empty(h.Push.To<PeerResumedMessage>(call.Connection("ada")));
    }

    [Fact]
    public async Task NoResumeWithinTheGracePeriod_ThePeersAreToldPeerLeft_AndTheNextConnectStartsANewEpoch()
    {
        using var h = new EngineHarness();
        var call = await Call.StartAsync(h, "bob");
        var bobEpoch = h.Push.To<WelcomeMessage>(call.Connection("bob")).Last().You.Epoch;
        await h.Engine.DisconnectAsync(call.Connection("bob"));
        await h.SendAsync(call.Connection("ada"), Signal(call.Member("bob"), "lost"));

        h.Time.Advance(Grace - TimeSpan.FromMilliseconds(1));
        Assert.Empty(h.Push.To<PeerLeftMessage>(call.Connection("ada")));
        h.Time.Advance(TimeSpan.FromMilliseconds(1));
        await AdmissionAndMeshTests.WaitUntil(() => h.Push.To<PeerLeftMessage>(call.Connection("ada")).Count == 1);
        var left = h.Push.Single<PeerLeftMessage>(call.Connection("ada"));
        Assert.Equal((call.Member("bob"), bobEpoch), (left.Member, left.Epoch));

        // Asking to resume too late is a fresh start: a new epoch, planned with the room again, and nothing from the old queue.
        var again = await call.ReconnectAsync("bob", resume: bobEpoch);
        var welcome = h.Push.Single<WelcomeMessage>(again);
        Assert.False(welcome.Resumed);
        Assert.Equal(bobEpoch + 1, welcome.You.Epoch);
        Assert.Empty(h.Push.To<SignalRelayMessage>(again));
        Assert.Single(h.Push.To<ConnectToPeerMessage>(again));
    }

    [Fact]
    public async Task AReconnectThatDoesNotAskToResume_WithinTheGracePeriod_IsAFreshEpoch_AndThePeersAreToldTheOldOneLeft()
    {
        using var h = new EngineHarness();
        var call = await Call.StartAsync(h, "bob");
        var bobEpoch = h.Push.To<WelcomeMessage>(call.Connection("bob")).Last().You.Epoch;
        await h.Engine.DisconnectAsync(call.Connection("bob"));

        var fresh = await call.ReconnectAsync("bob", resume: null); // a page reload: its links are gone anyway

        Assert.Equal(bobEpoch, h.Push.Single<PeerLeftMessage>(call.Connection("ada")).Epoch);
        Assert.Equal(bobEpoch + 1, h.Push.Single<WelcomeMessage>(fresh).You.Epoch);
        Assert.Equal(bobEpoch + 1, h.Push.To<ConnectToPeerMessage>(call.Connection("ada")).Last().PeerEpoch);
    }

    [Fact]
    public async Task AResumeBeforeTheDropIsSeen_ReplacesTheOldSocketSilently()
    {
        // On AWS $disconnect is best effort: the member may come back before (or without) the old socket's disconnect.
        using var h = new EngineHarness();
        var call = await Call.StartAsync(h, "bob");
        var old = call.Connection("bob");
        var bobEpoch = h.Push.To<WelcomeMessage>(old).Last().You.Epoch;

        var resumed = await call.ReconnectAsync("bob", resume: bobEpoch);

        Assert.True(h.Push.Single<WelcomeMessage>(resumed).Resumed);
        Assert.True(h.Push.WasClosed(old));
        await h.Engine.DisconnectAsync(old); // the late $disconnect of the old socket changes nothing
        h.Time.Advance(TimeSpan.FromMinutes(1));
        Assert.Empty(h.Push.To<PeerLeftMessage>(call.Connection("ada")));
        await h.SendAsync(call.Connection("ada"), Signal(call.Member("bob"), "after"));
        Assert.Equal("after", CandidateOf(h.Push.To<SignalRelayMessage>(resumed).Single()));
    }

    [Fact]
    public async Task TheQueueIsBounded_TheRestIsDroppedWithACount_TheSenderIsTold_AndTheResumedMemberLearnsHowMany()
    {
        using var h = new EngineHarness(o => o.Limits.MaxQueuedMessagesPerMember = 3);
        var call = await Call.StartAsync(h, "bob");
        var bobEpoch = h.Push.To<WelcomeMessage>(call.Connection("bob")).Last().You.Epoch;
        await h.Engine.DisconnectAsync(call.Connection("bob"));
        h.Push.Clear();

        for (var i = 1; i <= 5; i++)
        {
            await h.SendAsync(call.Connection("ada"), Signal(call.Member("bob"), "s" + i, id: "m" + i));
        }

        var refused = h.Push.To<ErrorMessage>(call.Connection("ada"));
        Assert.Equal([("m4", SignallingErrorCode.DeliveryFailed), ("m5", SignallingErrorCode.DeliveryFailed)], refused.Select(e => (e.Id, e.Code)));
        var resumed = await call.ReconnectAsync("bob", resume: bobEpoch);
        Assert.Equal(2, h.Push.Single<WelcomeMessage>(resumed).Missed);
        Assert.Equal(["s1", "s2", "s3"], h.Push.To<SignalRelayMessage>(resumed).Select(CandidateOf));
    }

    [Fact]
    public async Task AFlakyNetworkCannotStretchTheGracePeriod_ByResumingWithoutHelloAndDroppingAgain()
    {
        using var h = new EngineHarness();
        var call = await Call.StartAsync(h, "bob");
        var bobEpoch = h.Push.To<WelcomeMessage>(call.Connection("bob")).Last().You.Epoch;
        await h.Engine.DisconnectAsync(call.Connection("bob"));

        for (var i = 0; i < 3; i++)
        {
            h.Time.Advance(TimeSpan.FromSeconds(6));
            var half = await call.ReconnectAsync("bob", resume: bobEpoch, hello: false);
            await h.Engine.DisconnectAsync(half);
        }

        // 18 s after the first drop: still within; 20 s: gone, although the last socket dropped only now.
        Assert.Empty(h.Push.To<PeerLeftMessage>(call.Connection("ada")));
        h.Time.Advance(TimeSpan.FromSeconds(2));
        await AdmissionAndMeshTests.WaitUntil(() => h.Push.To<PeerLeftMessage>(call.Connection("ada")).Count == 1);
    }

    [Fact]
    public async Task AResumedSocketThatNeverSaysHello_IsClosedByTheHelloTimeout_AndTheMemberLeavesAtItsFirstDeadline()
    {
        // Hostile: a member resumes and then stays silent, holding its place and making its peers' signals queue.
        using var h = new EngineHarness();
        var call = await Call.StartAsync(h, "bob");
        var bobEpoch = h.Push.To<WelcomeMessage>(call.Connection("bob")).Last().You.Epoch;
        await h.Engine.DisconnectAsync(call.Connection("bob"));

        var silent = await call.ReconnectAsync("bob", resume: bobEpoch, hello: false);
        h.Time.Advance(TimeSpan.FromSeconds(10)); // the hello timeout
        await AdmissionAndMeshTests.WaitUntil(() => h.Push.PolicyCloseReason(silent) is not null);
        await h.Engine.DisconnectAsync(silent); // the gateway's close ends the socket

        h.Time.Advance(Grace - TimeSpan.FromSeconds(10));
        await AdmissionAndMeshTests.WaitUntil(() => h.Push.To<PeerLeftMessage>(call.Connection("ada")).Count == 1);
    }

    [Fact]
    public async Task MessagesToAResumingMember_BeforeItsHello_AreQueued_SoTheWelcomeIsAlwaysItsFirstFrame()
    {
        using var h = new EngineHarness();
        var call = await Call.StartAsync(h, "bob", "cy");
        var bobEpoch = h.Push.To<WelcomeMessage>(call.Connection("bob")).Last().You.Epoch;
        await h.Engine.DisconnectAsync(call.Connection("bob"));

        var resumed = await call.ReconnectAsync("bob", resume: bobEpoch, hello: false);
        await h.SendAsync(call.Connection("cy"), Signal(call.Member("bob"), "early"));
        await h.SendAsync(call.Connection("cy"), """{"type":"leave"}"""); // a peer_left for bob, too
        Assert.DoesNotContain(h.Push.All, p => p.Connection == resumed);

        await h.SendAsync(resumed, """{"type":"hello","version":1}""");
        var frames = h.Push.All.Where(p => p.Connection == resumed).Select(p => Parse(p.Json)).ToList();
        Assert.IsType<WelcomeMessage>(frames[0]);
        Assert.Equal("early", CandidateOf(Assert.IsType<SignalRelayMessage>(frames[1])));
        Assert.Equal(call.Member("cy"), Assert.IsType<PeerLeftMessage>(frames[2]).Member);
    }

    [Fact]
    public async Task AnAdminThatDropsWithAKnockPending_GetsTheRequestAfterItsResume_AndAKnockDuringTheGapToo()
    {
        using var h = new EngineHarness();
        var call = await Call.StartAsync(h);
        var adaEpoch = h.Push.To<WelcomeMessage>(call.Connection("ada")).Last().You.Epoch;
        var bob = await h.JoinAsync(EngineHarness.User("bob"), call.Room);
        await h.ConnectAsync(bob);
        Assert.Contains(h.Push.To<AdmissionRequestMessage>(call.Connection("ada")), r => r.Member.Id == bob.Member);

        await h.Engine.DisconnectAsync(call.Connection("ada"));
        var cy = await h.JoinAsync(EngineHarness.User("cy"), call.Room); // knocks while the admin is away
        var resumed = await call.ReconnectAsync("ada", resume: adaEpoch);

        Assert.True(h.Push.Single<WelcomeMessage>(resumed).Resumed);
        var requests = h.Push.To<AdmissionRequestMessage>(resumed).Select(r => r.Member.Id.Value).Order(StringComparer.Ordinal);
        Assert.Equal(new[] { bob.Member.Value, cy.Member.Value }.Order(StringComparer.Ordinal), requests);
        await h.SendAsync(resumed, $$$"""{"type":"admit","member":"{{{bob.Member}}}"}""");
        Assert.Single(h.Push.To<AdmittedMessage>(resumed));
    }

    [Fact]
    public async Task ANewcomerAdmittedWhileAMemberIsAway_IsPlannedWithIt_AndBothLinkUpAfterTheResume()
    {
        using var h = new EngineHarness();
        var call = await Call.StartAsync(h, "bob");
        var bobEpoch = h.Push.To<WelcomeMessage>(call.Connection("bob")).Last().You.Epoch;
        await h.Engine.DisconnectAsync(call.Connection("bob"));

        var cy = await h.JoinAsync(EngineHarness.User("cy"), call.Room);
        var cyConnection = await h.ConnectAsync(cy);
        await h.SendAsync(call.Connection("ada"), $$$"""{"type":"admit","member":"{{{cy.Member}}}"}""");
        Assert.Equal(new[] { call.Member("ada").Value, call.Member("bob").Value }.Order(StringComparer.Ordinal), h.Push.To<ConnectToPeerMessage>(cyConnection).Select(p => p.Peer.Id.Value).Order(StringComparer.Ordinal));

        var resumed = await call.ReconnectAsync("bob", resume: bobEpoch);
        var plan = h.Push.Single<ConnectToPeerMessage>(resumed);
        Assert.Equal(cy.Member, plan.Peer.Id);
    }

    [Fact]
    public async Task TheSealEndsTheGracePeriod_NobodyIsToldAfterIt_AndAResumeAfterTheSealIsRefused()
    {
        using var h = new EngineHarness(o => o.JoinWindow = TimeSpan.FromSeconds(30));
        var call = await Call.StartAsync(h, "bob");
        var bobEpoch = h.Push.To<WelcomeMessage>(call.Connection("bob")).Last().You.Epoch;
        h.Time.Advance(TimeSpan.FromSeconds(20));
        await h.Engine.DisconnectAsync(call.Connection("bob"));

        h.Time.Advance(TimeSpan.FromSeconds(10)); // sealed
        h.Time.Advance(Grace);
        Assert.Empty(h.Push.To<PeerLeftMessage>(call.Connection("ada")));
        var refused = await h.Engine.IssueJoinTicketAsync(call.User("bob"), call.Room);
        Assert.Equal(SignallingErrorCode.RoomSealed, refused.Error!.Code);
        _ = bobEpoch;
    }

    [Fact]
    public async Task ResumingSomeoneElsesEpoch_OrAnEpochThatNeverWas_IsAFreshStartForTheCaller_AndTheOthersAreUntouched()
    {
        using var h = new EngineHarness();
        var call = await Call.StartAsync(h, "bob", "cy");
        var bobEpoch = h.Push.To<WelcomeMessage>(call.Connection("bob")).Last().You.Epoch;
        var cyEpoch = h.Push.To<WelcomeMessage>(call.Connection("cy")).Last().You.Epoch;
        await h.Engine.DisconnectAsync(call.Connection("bob"));
        h.Push.Clear();

        // cy's ticket is cy's: whatever epoch it names, it can only ever resume (or restart) cy.
        foreach (var forged in new long?[] { bobEpoch + 7, cyEpoch + 1, long.MaxValue, 0 })
        {
            var c = h.NewConnectionId();
            var grant = await h.Engine.ConnectAsync(c, (await h.Engine.IssueJoinTicketAsync(call.User("cy"), call.Room)).Value.Ticket.Value, forged);
            Assert.Equal(call.Member("cy"), grant.Value.Member);
            Assert.Null(grant.Value.ResumeEpoch);
        }

        Assert.DoesNotContain(h.Push.To<PeerLeftMessage>(call.Connection("ada")), p => p.Member == call.Member("bob"));
        var resumed = await call.ReconnectAsync("bob", resume: bobEpoch);
        Assert.True(h.Push.Single<WelcomeMessage>(resumed).Resumed);
    }

    [Fact]
    public async Task WithoutAGracePeriod_ADropIsADepartureAtOnce_AndResumeIsNeverGranted()
    {
        using var h = new EngineHarness(o => o.ResumeGracePeriod = TimeSpan.Zero);
        var call = await Call.StartAsync(h, "bob");
        var bobEpoch = h.Push.To<WelcomeMessage>(call.Connection("bob")).Last().You.Epoch;
        await h.Engine.DisconnectAsync(call.Connection("bob"));
        Assert.Single(h.Push.To<PeerLeftMessage>(call.Connection("ada")));

        var again = await call.ReconnectAsync("bob", resume: bobEpoch);
        Assert.False(h.Push.Single<WelcomeMessage>(again).Resumed);
    }

    [Fact]
    public async Task ADeniedKnockThatDroppedCannotResume()
    {
        using var h = new EngineHarness();
        var call = await Call.StartAsync(h);
        var bob = await h.JoinAsync(EngineHarness.User("bob"), call.Room);
        var bobConnection = await h.ConnectAsync(bob);
        var bobEpoch = h.Push.Single<WelcomeMessage>(bobConnection).You.Epoch;
        await h.Engine.DisconnectAsync(bobConnection);
        await h.SendAsync(call.Connection("ada"), $$$"""{"type":"deny","member":"{{{bob.Member}}}"}""");

        var ticket = await h.Engine.IssueJoinTicketAsync(EngineHarness.User("bob"), call.Room);
        Assert.Equal(SignallingErrorCode.Denied, ticket.Error!.Code);
        _ = bobEpoch;
    }

    private static string Signal(MemberId to, string candidate, string? id = null)
        => $$$"""{"type":"signal",{{{(id is null ? string.Empty : $"\"id\":\"{id}\",")}}}"to":"{{{to}}}","candidates":[{"candidate":"{{{candidate}}}"}]}""";

    private static string CandidateOf(SignalRelayMessage signal) => signal.Candidates![0].Candidate;

    private static ServerMessage Parse(string json) => JsonSerializer.Deserialize(json, TalkiJsonContext.Default.ServerMessage)!;

    /// <summary>A call with an admin "ada" and admitted members, each with a known user (so that it can reconnect).</summary>
    private sealed class Call
    {
        private readonly EngineHarness _h;
        private readonly Dictionary<string, (CallerIdentity User, MemberId Member, string Connection)> _members = [];

        private Call(EngineHarness h, RoomId room)
        {
            _h = h;
            Room = room;
        }

        public RoomId Room { get; }

        public static Task<Call> StartAsync(EngineHarness h, params string[] names) => StartAsync(h, 1, [.. names.Select(n => (n, 1))]);

        /// <summary>As <see cref="StartAsync(EngineHarness, string[])"/>, the admin and each member saying hello with its version.</summary>
        public static async Task<Call> StartAsync(EngineHarness h, int adminVersion, params (string Name, int Version)[] members)
        {
            var ada = EngineHarness.User("ada");
            var admin = await h.CreateRoomAsync(ada);
            var call = new Call(h, admin.Room);
            call._members["ada"] = (ada, admin.Member, await h.ConnectAsync(admin, version: adminVersion));
            foreach (var (name, version) in members)
            {
                var user = EngineHarness.User(name);
                var grant = await h.JoinAsync(user, admin.Room);
                var connection = await h.ConnectAsync(grant, version: version);
                await h.SendAsync(call.Connection("ada"), $$$"""{"type":"admit","member":"{{{grant.Member}}}"}""");
                call._members[name] = (user, grant.Member, connection);
            }

            return call;
        }

        public string Connection(string name) => _members[name].Connection;

        public MemberId Member(string name) => _members[name].Member;

        public CallerIdentity User(string name) => _members[name].User;

        /// <summary>Gets a fresh ticket for the member's user and connects with it, asking to resume <paramref name="resume"/>.</summary>
        public async Task<string> ReconnectAsync(string name, long? resume, bool hello = true, int version = 1)
        {
            var (user, member, _) = _members[name];
            var ticket = await _h.Engine.IssueJoinTicketAsync(user, Room);
            Assert.True(ticket.IsSuccess, ticket.ToString());
            var connection = _h.NewConnectionId();
            _h.Time.Advance(TimeSpan.FromMilliseconds(1));
            var grant = await _h.Engine.ConnectAsync(connection, ticket.Value.Ticket.Value, resume);
            Assert.True(grant.IsSuccess, grant.ToString());
            if (hello)
            {
                await _h.SendAsync(connection, $$"""{"type":"hello","version":{{version}}}""");
            }

            _members[name] = (user, member, connection);
            return connection;
        }
    }
}
