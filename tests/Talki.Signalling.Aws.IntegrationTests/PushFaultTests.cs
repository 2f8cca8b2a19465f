using System.Net;
using Talki.Signalling.Aws.Tests.DynamoDb;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Aws.IntegrationTests;

/// <summary>
/// The fault matrix of pushes over the AWS path (clients → emulator → host in AWS mode → dynalite): only API Gateway's
/// 410 is a departure. Throttling (429) and failures (500, 503) that outlast the retries make a signal undeliverable:
/// the sender is told <c>delivery_failed</c>, and the receiver, still connected, is not evicted.
/// </summary>
[Collection(DynaliteGroup.Name)]
public sealed class PushFaultTests(DynaliteFixture dynalite)
{
    private const int AttemptsPerPush = 4; // the default retry cap: 1 + 3 retries

    [Theory]
    [InlineData(429)]
    [InlineData(500)]
    [InlineData(503)]
    public async Task PushFailingPastTheRetries_IsDeliveryFailedForTheSender_AndTheReceiverStaysInTheRoom(int status)
    {
        await using var stack = await AwsStack.StartAsync(dynalite, $"talki-fault-{status}");
        var (ada, bob, bobMember) = await TwoMemberCallAsync(stack);

        stack.Emulator.Faults.FailNextPushes(AttemptsPerPush, status); // every attempt of the next push fails
        await ada.SendAsync($$$"""{"type":"signal","id":"lost","to":"{{{bobMember}}}","description":{"type":"offer","sdp":"first"}}""");
        Assert.Equal(SignallingErrorCode.DeliveryFailed, (await ada.ExpectAsync<ErrorMessage>(e => e.Id == "lost")).Code);

        // Bob was not evicted: nobody is told he left, and the next signal reaches him.
        await ada.SendAsync($$$"""{"type":"signal","id":"again","to":"{{{bobMember}}}","description":{"type":"offer","sdp":"second"}}""");
        Assert.Equal("second", (await bob.ExpectAsync<SignalRelayMessage>()).Description!.Sdp);
        Assert.DoesNotContain(ada.AllFrames, f => f.Contains("\"peer_left\"", StringComparison.Ordinal));
    }

    [Fact]
    public async Task V4WaitingKnock_AdmittedBeforeItsConnectCompletes_GetsItsWelcomeOnceOpen_AfterThe410s()
    {
        // Protocol version 4: the authorizer binds a waiting knock (wait=1), and API Gateway answers 410 to posts until
        // $connect completes. An admin who admits in that moment must not lose the newcomer.
        await using var stack = await AwsStack.StartAsync(dynalite, "talki-fault-connecting");
        using var adaUser = await stack.SignInAsync("Ada");
        using var bobUser = await stack.SignInAsync("Bob");
        var room = await adaUser.TicketAsync("/talki/rooms", HttpStatusCode.Created);
        await using var ada = await adaUser.ConnectAsync(room, version: 4);
        var knock = await bobUser.TicketAsync($"/talki/rooms/{room.Room}/tickets", HttpStatusCode.OK);
        await ada.ExpectAsync<AdmissionRequestMessage>();
        var authorized = stack.Emulator.Counters.AuthorizerCalls;
        stack.Emulator.Faults.ConnectCompletionDelay = TimeSpan.FromMilliseconds(400);

        var connecting = bobUser.ConnectAsync(knock, version: 4);
        await CallCostTests.WaitAsync(() => stack.Emulator.Counters.AuthorizerCalls > authorized, "Bob's authorizer call");
        await ada.SendAsync($$$"""{"type":"admit","member":"{{{knock.Member}}}"}""");
        await using var bob = await connecting;

        var welcome = await bob.ExpectAsync<WelcomeMessage>();
        Assert.Equal(AdmissionStatus.Admitted, welcome.Status);
        Assert.StartsWith("{\"type\":\"welcome\"", bob.AllFrames[0], StringComparison.Ordinal);
        Assert.True(stack.Emulator.Counters.ConnectionsApiCallCount("POST", 410) >= 1, "the admission met the connection before it was open");
        Assert.DoesNotContain(ada.AllFrames, f => f.Contains("\"peer_left\"", StringComparison.Ordinal));
    }

    [Fact]
    public async Task PushThrottledFewerTimesThanTheRetries_IsDelivered_NothingLost()
    {
        await using var stack = await AwsStack.StartAsync(dynalite, "talki-fault-transient");
        var (ada, bob, bobMember) = await TwoMemberCallAsync(stack);

        stack.Emulator.Faults.ScriptPushFailures(429, 503);
        await ada.SendAsync($$$"""{"type":"signal","to":"{{{bobMember}}}","description":{"type":"offer","sdp":"retried"}}""");

        Assert.Equal("retried", (await bob.ExpectAsync<SignalRelayMessage>()).Description!.Sdp);
        Assert.DoesNotContain(ada.AllFrames, f => f.Contains("delivery_failed", StringComparison.Ordinal));
    }

    [Fact]
    public async Task PushToAConnectionThatIsGone_410_StartsItsGracePeriod_TheSignalWaits_ThenItIsEvictedAndTheSenderIsToldPeerUnavailable()
    {
        await using var stack = await AwsStack.StartAsync(dynalite, "talki-fault-gone", settings: new Dictionary<string, string> { ["Talki:ResumeGracePeriod"] = "00:00:02" });
        var (ada, bob, bobMember) = await TwoMemberCallAsync(stack);

        // Bob's socket vanishes without a $disconnect (a lost $disconnect: the backend still thinks he is connected).
        stack.Emulator.Faults.LoseDisconnects = true;
        await bob.DisposeAsync();
        await ada.SendAsync($$$"""{"type":"signal","id":"to-gone","to":"{{{bobMember}}}","description":{"type":"offer","sdp":"x"}}""");

        // The 410 starts Bob's grace period: the signal is queued for a resume that never comes, then the room is told.
        await ada.ExpectAsync<PeerLeftMessage>(m => m.Member == bobMember);
        Assert.DoesNotContain(ada.AllFrames, f => f.Contains("\"to-gone\"", StringComparison.Ordinal));
        await ada.SendAsync($$$"""{"type":"signal","id":"after","to":"{{{bobMember}}}","description":{"type":"offer","sdp":"x"}}""");
        Assert.Equal(SignallingErrorCode.PeerUnavailable, (await ada.ExpectAsync<ErrorMessage>(e => e.Id == "after")).Code);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public async Task SocketLostWithoutADisconnect_TheMemberResumesThroughTheAuthorizer_SameEpoch_QueuedSignalDelivered_OnlyAVersion2PeerHearsItResumed(int version)
    {
        // Through the emulator as the template wires it: the resume query reaches the authorizer, its context reaches the
        // backend as x-talki-resume, and only the backend (which holds @connections) binds.
        await using var stack = await AwsStack.StartAsync(dynalite, "talki-fault-resume");
        using var bobUser = await stack.SignInAsync("Bob");
        var (ada, bob, bobMember, room) = await TwoMemberCallAsync(stack, bobUser, version);
        var epoch = bob.Welcome!.You.Epoch;
        stack.Emulator.Faults.LoseDisconnects = true;
        await bob.DisposeAsync();
        await ada.SendAsync($$$"""{"type":"signal","id":"while-away","to":"{{{bobMember}}}","description":{"type":"offer","sdp":"queued"}}""");

        var ticket = await bobUser.TicketAsync($"/talki/rooms/{room}/tickets", HttpStatusCode.OK);
        await using var resumed = await bobUser.ConnectAsync(ticket, resume: epoch, version: version);

        Assert.True(resumed.Welcome!.Resumed);
        Assert.Equal(epoch, resumed.Welcome.You.Epoch);
        Assert.Equal("queued", (await resumed.ExpectAsync<SignalRelayMessage>()).Description!.Sdp);
        if (version >= 2)
        {
            // Pushed through @connections like any message: the sender of what the lost socket swallowed sends it again.
            var notice = await ada.ExpectAsync<PeerResumedMessage>();
            Assert.Equal((bobMember, epoch), (notice.Member, notice.Epoch));
        }

        await ada.SendAsync("""{"type":"ping","id":"after"}""");
        await ada.ExpectAsync<PongMessage>(p => p.Id == "after");
        Assert.DoesNotContain(ada.AllFrames, f => f.Contains("\"peer_left\"", StringComparison.Ordinal) || f.Contains("\"error\"", StringComparison.Ordinal));
        Assert.Equal(version >= 2 ? 1 : 0, ada.AllFrames.Count(f => f.Contains("\"peer_resumed\"", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task BackendRestartMidCall_TheCallGoesOn_SignalsStillRelay_NobodyEvicted()
    {
        await using var stack = await AwsStack.StartAsync(dynalite, "talki-fault-restart");
        var (ada, bob, bobMember) = await TwoMemberCallAsync(stack);

        await stack.RestartBackendAsync(); // API Gateway keeps the sockets; DynamoDB keeps the room
        await ada.SendAsync($$$"""{"type":"signal","to":"{{{bobMember}}}","description":{"type":"offer","sdp":"after-restart"}}""");

        Assert.Equal("after-restart", (await bob.ExpectAsync<SignalRelayMessage>()).Description!.Sdp);
        await bob.SendAsync("""{"type":"ping","id":"alive"}""");
        Assert.Equal("alive", (await bob.ExpectAsync<PongMessage>()).Id);
        Assert.DoesNotContain(ada.AllFrames, f => f.Contains("\"peer_left\"", StringComparison.Ordinal));
    }

    private static async Task<(AwsSocket Ada, AwsSocket Bob, MemberId BobMember)> TwoMemberCallAsync(AwsStack stack)
    {
        using var bobUser = await stack.SignInAsync("Bob");
        var (ada, bob, member, _) = await TwoMemberCallAsync(stack, bobUser);
        return (ada, bob, member);
    }

    private static async Task<(AwsSocket Ada, AwsSocket Bob, MemberId BobMember, RoomId Room)> TwoMemberCallAsync(AwsStack stack, AwsUser bobUser, int version = 1)
    {
        using var adaUser = await stack.SignInAsync("Ada");
        var room = await adaUser.TicketAsync("/talki/rooms", HttpStatusCode.Created);
        var ada = await adaUser.ConnectAsync(room, version: version);
        var ticket = await bobUser.TicketAsync($"/talki/rooms/{room.Room}/tickets", HttpStatusCode.OK);
        var bob = await bobUser.ConnectAsync(ticket, version: version);
        await ada.ExpectAsync<AdmissionRequestMessage>(m => m.Member.Id == ticket.Member && (version >= 2 || m.Member.Online)); // version 2 hears of the knock once, at the knock
        await ada.SendAsync($$$"""{"type":"admit","member":"{{{ticket.Member}}}"}""");
        await bob.ExpectAsync<AdmittedMessage>();
        if (version >= 2)
        {
            return (ada, bob, ticket.Member, room.Room); // the admission's last push: version 2 plans the mesh in it
        }

        await ada.ExpectAsync<ConnectToPeerMessage>(m => m.Peer.Id == ticket.Member);
        await bob.ExpectAsync<ConnectToPeerMessage>(); // every push of the admission is done before a fault is scripted
        return (ada, bob, ticket.Member, room.Room);
    }
}
