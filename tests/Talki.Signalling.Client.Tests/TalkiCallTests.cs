using System.Text.Json;
using Microsoft.Extensions.Time.Testing;
using Talki.Signalling.Client.Negotiation;
using Talki.Signalling.Client.Tests.Support;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Client.Tests;

/// <summary>The client end to end: real server, real WebSockets on 127.0.0.1, real <see cref="TalkiCall"/>s, simulated peer connections.</summary>
public sealed class TalkiCallTests
{
    [Fact]
    public async Task CreateJoinAdmitDeny_ThreeAdmittedFormFullMesh_DeniedOneSeesDenied()
    {
        await using var world = await CallWorld.StartAsync();
        var (a, b, c) = await StartMeshOfThreeAsync(world);

        var d = await world.SignInAsync("Dora");
        var joining = d.Call.JoinRoomAsync(a.Call.Room!.Id);
        Assert.True((await joining).IsSuccess);
        await CallWorld.EventuallyAsync(() => a.Call.PendingAdmissions.Count == 1, "A sees D's request");
        await a.Call.DenyAsync(a.Call.PendingAdmissions[0].Id);

        await CallWorld.EventuallyAsync(() => d.Call.AdmissionState == TalkiAdmissionState.Denied, "D is denied");
        await CallWorld.EventuallyAsync(() => d.Call.ConnectionState == TalkiConnectionState.Disconnected && d.EventsOf<TalkiDisconnectedEventArgs>(nameof(TalkiCall.Disconnected)).Count > 0, "D's connection ends");
        Assert.Equal(TalkiDisconnectReason.Denied, Assert.Single(d.EventsOf<TalkiDisconnectedEventArgs>(nameof(TalkiCall.Disconnected))).Reason);
        Assert.Equal(SignallingErrorCode.Denied, d.Call.FailureReason?.Code);
        Assert.Empty(d.Call.Links);
        Assert.Empty(a.Call.PendingAdmissions);
        foreach (var p in new[] { a, b, c })
        {
            Assert.Equal(2, p.ConnectedLinks.Count);
            Assert.DoesNotContain(p.Call.Members, m => m.DisplayName == "Dora");
        }

        // Typed events reached the application: A started, admitted from the start; three requests; two joined, D did not.
        lock (a.Events)
        {
            Assert.Equal(
                ["Connection Disconnected>Connecting", "Admission None>Admitted", "Connection Connecting>Connected"],
                a.Events.Take(3).Select(e => e.Args switch
                {
                    TalkiConnectionStateChangedEventArgs c => $"Connection {c.OldState}>{c.NewState}",
                    TalkiAdmissionStateChangedEventArgs m => $"Admission {m.OldState}>{m.NewState}",
                    _ => e.Name,
                }));
        }

        Assert.Equal(["Bob", "Cleo", "Dora"], a.EventsOf<TalkiMemberEventArgs>(nameof(TalkiCall.AdmissionRequested)).Select(e => e.DisplayName));
        Assert.Equal(["Bob", "Cleo"], a.EventsOf<TalkiMemberEventArgs>(nameof(TalkiCall.MemberJoined)).Select(e => e.DisplayName));
        Assert.Equal(d.Call.Self!.Id, a.EventsOf<TalkiMemberEventArgs>(nameof(TalkiCall.AdmissionRequested))[2].Member);
        Assert.Equal([TalkiAdmissionState.Waiting, TalkiAdmissionState.Denied], d.EventsOf<TalkiAdmissionStateChangedEventArgs>(nameof(TalkiCall.AdmissionStateChanged)).Select(e => e.NewState));

        // D cannot come back: the refusal is remembered.
        var again = await d.Api.JoinRoomAsync(a.Call.Room.Id);
        Assert.Equal(SignallingErrorCode.Denied, again.Error?.Code);
    }

    [Theory]
    [InlineData(3)]
    [InlineData(4)]
    public async Task ProtocolV3OrV4_FourMembers_MeshFromAdmissionWelcomesAndOffers_NoConnectToPeerNoEchoOneRequestPerKnock_NothingToAWaitingMember(int serverVersion)
    {
        // Version 3: the waiting member says hello and hears nothing. Version 4: it says nothing either, its connect (wait=1)
        // stands for its hello. A server whose tickets say v=3 (an older one) gets the version 3 client.
        await using var world = await CallWorld.StartAsync();
        int? rewrite = serverVersion == ProtocolVersion.Current ? null : serverVersion;
        var a = await world.SignInAsync("Ada", serverVersion: rewrite);
        var created = await a.Call.CreateRoomAsync();
        Assert.True(created.IsSuccess, created.ToString());
        var others = new List<Participant>();
        foreach (var name in new[] { "Bob", "Cleo", "Dora" })
        {
            var p = await world.SignInAsync(name, serverVersion: rewrite);
            Assert.True((await p.Call.JoinRoomAsync(created.Value)).IsSuccess);
            Assert.Equal(TalkiAdmissionState.Waiting, p.Call.AdmissionState);
            Assert.Equal(serverVersion >= 4, p.ConnectUrls[^1].Query.Contains("wait=1", StringComparison.Ordinal));
            Assert.Equal(name, p.Call.Self!.DisplayName); // from the ticket: the server said nothing yet
            Assert.Null(p.Call.Room);
            await CallWorld.EventuallyAsync(() => a.Call.PendingAdmissions.Any(m => m.Id == p.Call.Self!.Id), $"A sees {name}");
            await PingBarrierAsync(p);
            Assert.Empty(p.Socket.Received); // version 3: a waiting member hears nothing of the room

            // Version 3: its hello was sent, not necessarily handled; an admin faster than it is welcomed at the hello
            // instead (with an admitted before it). Version 4 has no such race: the connect bound it ready.
            if (serverVersion >= 4)
            {
                Assert.NotNull((await world.Store.GetMemberAsync(created.Value, p.Call.Self!.Id))!.ReadyAt);
            }

            await CallWorld.EventuallyAsync(() => world.Store.GetMemberAsync(created.Value, p.Call.Self!.Id).AsTask().Result?.ReadyAt is not null, $"{name}'s hello handled");
            await a.Call.AdmitAsync(p.Call.Self!.Id);
            Assert.Empty(a.Call.PendingAdmissions); // answered when sent: versions 2 and 3 echo nothing back
            await CallWorld.EventuallyAsync(() => p.InCall, $"{name} admitted");
            Assert.Equal("welcome", TypeOf(p.Socket.Received[0])); // the admission
            others.Add(p);
        }

        Participant[] all = [a, .. others];
        await AssertFullMeshAsync(all);
        Assert.All(all, p => Assert.Equal(4, p.Call.Members.Count));
        Assert.Equal(["Bob", "Cleo", "Dora"], a.EventsOf<TalkiMemberEventArgs>(nameof(TalkiCall.AdmissionRequested)).Select(e => e.DisplayName));
        Assert.Equal(["Bob", "Cleo", "Dora"], a.EventsOf<TalkiMemberEventArgs>(nameof(TalkiCall.MemberJoined)).Select(e => e.DisplayName).Order(StringComparer.Ordinal)); // from each one's first offer
        Assert.Equal(["Cleo", "Dora"], others[0].EventsOf<TalkiMemberEventArgs>(nameof(TalkiCall.MemberJoined)).Select(e => e.DisplayName).Where(n => n != "Ada").Order(StringComparer.Ordinal));

        var received = all.SelectMany(p => p.Sockets.SelectMany(s => s.Received)).Select(TypeOf).ToList();
        Assert.DoesNotContain("connect_to_peer", received);
        Assert.DoesNotContain("error", received);
        Assert.Equal(3, received.Count(t => t == "admission_request")); // one per knock
        Assert.DoesNotContain("admitted", received); // each newcomer's welcome is its admission
        Assert.Equal(4, received.Count(t => t == "welcome"));
        Assert.Equal(serverVersion, JsonDocument.Parse(a.Socket.Sent[0]).RootElement.GetProperty("version").GetInt32());
        var hellos = others.SelectMany(p => p.Sockets.SelectMany(s => s.Sent)).Where(f => TypeOf(f) == "hello").ToList();
        if (serverVersion >= 4)
        {
            Assert.Empty(hellos); // the connect stood for it
        }
        else
        {
            Assert.Equal(3, hellos.Count);
            Assert.All(hellos, f => Assert.Equal(3, JsonDocument.Parse(f).RootElement.GetProperty("version").GetInt32()));
        }
    }

    [Fact]
    public async Task ProtocolV4_AdmittedBetweenItsTicketAndItsConnect_TheConnectIsRefused_ANewTicketSaysAdmitted_AndItLinksUp()
    {
        // The race an auto-admitting admin always wins: the ticket said "pending", the admission came before the connect.
        // The waiting connect (no hello) is refused; the client asks again, is admitted, says hello and links up.
        await using var world = await CallWorld.StartAsync();
        var a = await world.SignInAsync("Ada");
        var created = await a.Call.CreateRoomAsync();
        var b = await world.SignInAsync("Bob");
        b.ConnectGate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var join = b.Call.JoinRoomAsync(created.Value);
        await CallWorld.EventuallyAsync(() => a.Call.PendingAdmissions.Count == 1, "A sees Bob");
        await CallWorld.EventuallyAsync(() => b.ConnectAttempts == 1, "Bob's connect waits at the gate");
        var bobId = a.Call.PendingAdmissions[0].Id;
        await a.Call.AdmitAsync(bobId);
        await CallWorld.EventuallyAsync(() => world.Store.GetMemberAsync(created.Value, bobId).AsTask().Result?.Admission == AdmissionStatus.Admitted, "Bob admitted in the store");

        b.ConnectGate.SetResult();

        Assert.True((await join).IsSuccess);
        await CallWorld.EventuallyAsync(() => b.InCall, "Bob in the call");
        await AssertFullMeshAsync(a, b);
        Assert.Equal(2, b.ConnectAttempts);
        Assert.Contains("wait=1", b.ConnectUrls[0].Query, StringComparison.Ordinal);
        Assert.DoesNotContain("wait=", b.ConnectUrls[1].Query, StringComparison.Ordinal);
        Assert.Equal("hello", TypeOf(b.Socket.Sent[0]));
        Assert.Empty(b.Errors);
    }

    [Fact]
    public async Task ProtocolV2_AdmitIntoAFullRoom_TheRequestComesBack_AndTheNewcomerStillWaits()
    {
        await using var world = await CallWorld.StartAsync(configure: o => o.Limits.MaxMembersPerRoom = 2);
        var a = await world.SignInAsync("Ada");
        var created = await a.Call.CreateRoomAsync();
        var b = await world.SignInAsync("Bob");
        var c = await world.SignInAsync("Cleo");
        foreach (var p in new[] { b, c })
        {
            Assert.True((await p.Call.JoinRoomAsync(created.Value)).IsSuccess);
            await CallWorld.EventuallyAsync(() => a.Call.PendingAdmissions.Any(m => m.Id == p.Call.Self!.Id), $"A sees {p.Name}");
        }

        await a.Call.AdmitAsync(b.Call.Self!.Id);
        await CallWorld.EventuallyAsync(() => b.InCall, "Bob admitted");
        // Answered when sent: Cleo is no longer pending as the admit leaves. Checked at that instant, not after AdmitAsync
        // returns: by then the room_full may have been handled already and put the request back.
        bool? pendingAsTheAdmitLeft = null;
        a.Socket.BeforeSend = frame =>
        {
            if (TypeOf(frame) == "admit")
            {
                pendingAsTheAdmitLeft = a.Call.PendingAdmissions.Any(m => m.Id == c.Call.Self!.Id);
            }
        };
        await a.Call.AdmitAsync(c.Call.Self!.Id);
        a.Socket.BeforeSend = null;
        Assert.False(pendingAsTheAdmitLeft);

        await CallWorld.EventuallyAsync(() => a.Errors.Any(e => e.Code == SignallingErrorCode.RoomFull), "A hears room_full");
        await CallWorld.EventuallyAsync(() => a.Call.PendingAdmissions.Any(m => m.Id == c.Call.Self!.Id), "Cleo's request is back");
        Assert.Equal(TalkiAdmissionState.Waiting, c.Call.AdmissionState);

        // A refusal that ends the wait (Cleo is no longer pending) does not bring the request back.
        await a.Call.DenyAsync(c.Call.Self!.Id);
        await CallWorld.EventuallyAsync(() => c.Call.AdmissionState == TalkiAdmissionState.Denied, "Cleo denied");
        await a.Call.AdmitAsync(c.Call.Self!.Id);
        await CallWorld.EventuallyAsync(() => a.Errors.Any(e => e.Code == SignallingErrorCode.MemberNotPending), "A hears member_not_pending");
        Assert.Empty(a.Call.PendingAdmissions);
    }

    private static string TypeOf(string frame) => JsonDocument.Parse(frame).RootElement.GetProperty("type").GetString()!;

    /// <summary>How many signals a sent frame addresses to <paramref name="to"/>: a <c>signal</c>, or entries of a <c>signals</c> batch.</summary>
    private static int SignalsTo(string frame, MemberId to)
    {
        var root = JsonDocument.Parse(frame).RootElement;
        var entries = TypeOf(frame) switch
        {
            "signal" => [root],
            "signals" => root.GetProperty("signals").EnumerateArray().ToList(),
            _ => new List<JsonElement>(),
        };
        return entries.Count(e => e.GetProperty("to").GetString() == to.Value);
    }

    [Fact]
    public async Task SocketDrops_ResumesWithAFreshTicket_SameEpoch_EveryPeerConnectionKept_PeersNoticeNothing()
    {
        await using var world = await CallWorld.StartAsync();
        var (a, b, c) = await StartMeshOfThreeAsync(world);
        var epochBefore = b.Call.Self!.Epoch;
        var socketsBefore = b.Sockets.Count;
        var pcs = new[] { a.Factory.Live(b.Id), b.Factory.Live(a.Id), b.Factory.Live(c.Id), c.Factory.Live(b.Id) };
        var created = (a.Factory.Created.Count, b.Factory.Created.Count, c.Factory.Created.Count);

        b.Socket.Abort();

        await CallWorld.EventuallyAsync(() => b.Sockets.Count > socketsBefore && b.Call.ConnectionState == TalkiConnectionState.Connected, "B resumes");
        await AssertFullMeshAsync(a, b, c);
        Assert.Equal(epochBefore, b.Call.Self!.Epoch);
        Assert.Contains("resume=" + epochBefore.ToString(System.Globalization.CultureInfo.InvariantCulture), b.ConnectUrls[^1].Query, StringComparison.Ordinal);
        Assert.Equal(pcs, new[] { a.Factory.Live(b.Id), b.Factory.Live(a.Id), b.Factory.Live(c.Id), c.Factory.Live(b.Id) });
        Assert.Equal(created, (a.Factory.Created.Count, b.Factory.Created.Count, c.Factory.Created.Count));
        Assert.Empty(a.EventsOf<TalkiMemberEventArgs>(nameof(TalkiCall.MemberLeft)));
        Assert.Empty(c.EventsOf<TalkiMemberEventArgs>(nameof(TalkiCall.MemberLeft)));
        Assert.Contains(b.EventsOf<TalkiConnectionStateChangedEventArgs>(nameof(TalkiCall.ConnectionStateChanged)), e => e is { OldState: TalkiConnectionState.Connected, NewState: TalkiConnectionState.Reconnecting });
        Assert.Contains(b.EventsOf<TalkiConnectionStateChangedEventArgs>(nameof(TalkiCall.ConnectionStateChanged)), e => e is { OldState: TalkiConnectionState.Reconnecting, NewState: TalkiConnectionState.Connected });
        Assert.Equal([TalkiAdmissionState.Waiting, TalkiAdmissionState.Admitted], b.EventsOf<TalkiAdmissionStateChangedEventArgs>(nameof(TalkiCall.AdmissionStateChanged)).Select(e => e.NewState));
        Assert.Empty(b.EventsOf<TalkiDisconnectedEventArgs>(nameof(TalkiCall.Disconnected)));
        Assert.Equal(0, b.Call.DroppedMessages);
    }

    /// <summary>
    /// The reconnect bound seen from the member (<c>ReconnectsPerUserPerMinute</c>, here 1): its second reconnect within the
    /// server's minute is refused at the ticket with the transient <c>knock_rate_limited</c>. The call keeps retrying with
    /// its backoff, opens no socket meanwhile and raises nothing final; once the window has passed it resumes into the same
    /// mesh, same epoch, every peer connection kept.
    /// </summary>
    [Fact]
    public async Task AReconnectRefusedForItsRate_IsRetried_AndResumesOnceTheWindowPasses_TheCallIsNotLost()
    {
        await using var world = await CallWorld.StartAsync(configure: o =>
        {
            o.Limits.ReconnectsPerUserPerMinute = 1;
            o.ResumeGracePeriod = TimeSpan.FromMinutes(2); // the server's minute passes on its fake clock: the resume must outlive it
        });
        // The test clients retry every 20–200 ms; with 12 attempts that is 2 s, less than the server's minute. The default
        // backoff (0.5 s doubling to 15 s, 12 attempts: about two minutes) outlasts it; here Bob keeps trying instead.
        var (a, b, c) = await StartMeshOfThreeAsync(world, new TalkiClientOptions { MaxReconnectAttempts = 10_000 });
        var epoch = b.Call.Self!.Epoch;
        var pcs = new[] { a.Factory.Live(b.Id), b.Factory.Live(a.Id), b.Factory.Live(c.Id), c.Factory.Live(b.Id) };

        var sockets = b.Sockets.Count;
        b.Socket.Abort();
        await CallWorld.EventuallyAsync(() => b.Sockets.Count == sockets + 1 && b.Call.ConnectionState == TalkiConnectionState.Connected, "B resumes once");

        var attempts = b.ConnectAttempts;
        b.Socket.Abort();
        try
        {
            await CallWorld.EventuallyAsync(() => b.Call.ConnectionState == TalkiConnectionState.Reconnecting, "B reconnects");
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // Timed out here once (2026-12-02, beside other builds); the cause was not found: say what B went through.
            List<(string Name, EventArgs Args)> events;
            lock (b.Events)
            {
                events = [.. b.Events];
            }

            throw new InvalidOperationException(
                $"B did not show Reconnecting: now {b.Call.ConnectionState}, {b.Sockets.Count - sockets} socket(s) since the first drop, {b.ConnectAttempts - attempts} attempt(s) since the second; events: "
                + string.Join(" / ", events.Select(e => e.Name + " " + JsonSerializer.Serialize(e.Args, e.Args.GetType()))),
                ex);
        }

        await Task.Delay(TimeSpan.FromSeconds(2)); // the first turns of the backoff (0.5 s, 1 s): each ticket is refused
        Assert.Equal(TalkiConnectionState.Reconnecting, b.Call.ConnectionState);
        Assert.Equal(attempts, b.ConnectAttempts); // refused at the ticket: no socket was opened

        world.ServerTime.Advance(TimeSpan.FromMinutes(1));
        await CallWorld.EventuallyAsync(() => b.Call.ConnectionState == TalkiConnectionState.Connected, "B resumes after the window", timeoutMs: 40_000);
        await AssertFullMeshAsync(a, b, c);
        Assert.Equal(epoch, b.Call.Self!.Epoch);
        Assert.Equal(pcs, new[] { a.Factory.Live(b.Id), b.Factory.Live(a.Id), b.Factory.Live(c.Id), c.Factory.Live(b.Id) });
        Assert.Empty(b.EventsOf<TalkiDisconnectedEventArgs>(nameof(TalkiCall.Disconnected)));
        Assert.Empty(a.EventsOf<TalkiMemberEventArgs>(nameof(TalkiCall.MemberLeft)));
    }

    [Fact]
    public async Task ANewcomersOfferSwallowedByADyingSocket_IsReplayedAfterTheResume_AndTheLinkComesUpWithoutAReset()
    {
        // Bea's socket dies just as Cyd is admitted: the offer (or answer) Bea writes for Cyd goes into a socket that no
        // longer delivers, and only then does the drop show. After the resume Bea replays it; nobody's link is reset.
        await using var world = await CallWorld.StartAsync();
        var (a, b, c) = await PairWithCydKnockingAsync(world);

        var dying = b.Socket;
        dying.SwallowSends = true;
        await a.Call.AdmitAsync(a.Call.PendingAdmissions[0].Id);
        await CallWorld.EventuallyAsync(() => dying.Sent.Any(f => f.Contains("\"signal\"", StringComparison.Ordinal) && f.Contains(c.Call.Self!.Id.Value, StringComparison.Ordinal)), "Bea wrote a signal for Cyd into the dying socket");
        dying.Abort();

        await AssertBeaResumedIntoAFullMeshAsync(a, b, c);
    }

    [Fact]
    public async Task ANewcomersOfferRelayedIntoADyingSocket_IsSentAgainAfterThePeerResumes_AndTheLinkComesUpWithoutAReset()
    {
        // The other direction: the server relays Cyd's offer into Bea's socket after it died and before the drop shows, so
        // the server saw its write succeed and queued nothing. Bea's resume tells Cyd (peer_resumed), who sends it again.
        await using var world = await CallWorld.StartAsync();
        var (a, b, c) = await PairWithCydKnockingAsync(world);

        var dying = b.Socket;
        dying.SwallowReceives = true;
        dying.SwallowSends = true;
        await a.Call.AdmitAsync(a.Call.PendingAdmissions[0].Id);
        await CallWorld.EventuallyAsync(() => dying.Swallowed.Any(f => TypeOf(f) == "signal" && f.Contains(c.Call.Self!.Id.Value, StringComparison.Ordinal)), "the server relayed Cyd's offer into Bea's dying socket");
        dying.Abort();

        await AssertBeaResumedIntoAFullMeshAsync(a, b, c);
        Assert.Contains(c.Socket.Received, f => TypeOf(f) == "peer_resumed");
    }

    [Fact]
    public async Task AWaitingMembersSocketDropsTwice_ItRejoinsWithNewTickets_KeepsWaiting_AndTheAdmissionOnItsLastSocketLinksItUp()
    {
        // Flaky network, protocol 3: a waiting member has no epoch to resume, so each drop costs it a new ticket (a knock
        // again, under the same member id). The admin's request stays one request; the admission reaches the live socket.
        await using var world = await CallWorld.StartAsync();
        var (a, b, c) = await PairWithCydKnockingAsync(world);
        var cyd = c.Call.Self!.Id;
        for (var drop = 1; drop <= 2; drop++)
        {
            var sockets = c.Sockets.Count;
            c.Socket.Abort();
            await CallWorld.EventuallyAsync(() => c.Sockets.Count > sockets && c.Call.ConnectionState == TalkiConnectionState.Connected, $"Cyd rejoins after drop {drop}");
            Assert.Equal(TalkiAdmissionState.Waiting, c.Call.AdmissionState);
            Assert.Equal(cyd, c.Call.Self!.Id);
        }

        Assert.All(c.ConnectUrls, url => Assert.DoesNotContain("resume=", url.Query, StringComparison.Ordinal));
        Assert.All(c.Sockets, s => Assert.DoesNotContain(s.Received, f => TypeOf(f) == "welcome")); // nothing while it waits
        Assert.Equal(cyd, Assert.Single(a.Call.PendingAdmissions).Id);

        await a.Call.AdmitAsync(cyd);
        await AssertFullMeshAsync(a, b, c);
        Assert.Equal(TalkiAdmissionState.Admitted, c.Call.AdmissionState);
        Assert.Single(c.Socket.Received, f => TypeOf(f) == "welcome"); // the admission, once
        Assert.DoesNotContain(c.Errors, e => e.Negotiation is not null);
    }

    [Fact]
    public async Task ANewcomersAdmissionWrittenIntoItsDyingSocket_ComesBackWithTheNextWelcome_AndItLinksUpWithEveryone()
    {
        // Protocol 3: the admission is Cyd's welcome, with her plan, and Cyd offers first. Written into her dying socket it
        // is lost; she had no epoch to resume (a waiting member is told none), so she rejoins with a new ticket, and the
        // welcome of that connection carries the plan: without it she would offer to nobody and her peers would wait forever.
        await using var world = await CallWorld.StartAsync();
        var (a, b, c) = await PairWithCydKnockingAsync(world);

        var dying = c.Socket;
        dying.SwallowReceives = true;
        dying.SwallowSends = true;
        await a.Call.AdmitAsync(a.Call.PendingAdmissions[0].Id);
        await CallWorld.EventuallyAsync(() => dying.Swallowed.Any(f => TypeOf(f) == "welcome"), "Cyd's admission went into her dying socket");
        Assert.Equal(TalkiAdmissionState.Waiting, c.Call.AdmissionState);
        dying.Abort();

        await CallWorld.EventuallyAsync(() => c.Sockets.Count >= 2 && c.Call.ConnectionState == TalkiConnectionState.Connected && c.Call.AdmissionState == TalkiAdmissionState.Admitted, "Cyd rejoins");
        Assert.DoesNotContain("resume=", c.ConnectUrls[^1].Query, StringComparison.Ordinal);
        Assert.False(JsonDocument.Parse(c.Socket.Received[0]).RootElement.TryGetProperty("resumed", out _), "Cyd started a new epoch");
        await AssertFullMeshAsync(a, b, c);
        Assert.Equal(TalkiAdmissionState.Admitted, c.Call.AdmissionState);
        Assert.All(new[] { a, b }, p => Assert.Equal(1, c.Factory.Created.Count(pc => pc.Plan.Peer == p.Id)));

        // A member admitted before its drop ignores the plan its resumed welcome repeats: no connection created or replaced.
        var created = (a.Factory.Created.Count, b.Factory.Created.Count, c.Factory.Created.Count);
        c.Socket.Abort();
        await CallWorld.EventuallyAsync(() => c.Sockets.Count >= 3 && c.Call.ConnectionState == TalkiConnectionState.Connected, "Cyd resumes again");
        Assert.NotNull(JsonDocument.Parse(c.Socket.Received[0]).RootElement.GetProperty("links").EnumerateArray().ToList());
        await AssertFullMeshAsync(a, b, c);
        Assert.Equal(created, (a.Factory.Created.Count, b.Factory.Created.Count, c.Factory.Created.Count));
        Assert.DoesNotContain(c.Errors, e => e.Negotiation is not null);
    }

    [Fact]
    public async Task APeerThatResumesOverAndOver_GetsEachSignalSentToItAgainOnceAtMost_OnlyItsOwn_AndNothingForAnotherEpoch()
    {
        // Hostile: a member dropping and resuming in a loop must not turn its peers into a stream of copies that would
        // spend their rate limit. The notices are slipped in front of the server's frames, as a resume storm would send them.
        await using var world = await CallWorld.StartAsync();
        var (a, b, c) = await StartMeshOfThreeAsync(world);
        var toBob = $"\"to\":\"{b.Id.Value}\"";
        var toCleo = $"\"to\":\"{c.Id.Value}\"";
        var sentToBob = a.Socket.Sent.Sum(f => SignalsTo(f, b.Id));
        Assert.True(sentToBob > 0, "Ada signalled Bob while the mesh formed");
        var before = a.Socket.Sent.Count;
        string Notice(long epoch, long suspended = 0) => $$$"""{"type":"peer_resumed","member":"{{{b.Id.Value}}}","epoch":{{{epoch}}},"suspendedMilliseconds":{{{suspended}}}}""";

        a.Socket.Inject(Notice(b.Call.Self!.Epoch + 1)); // an epoch Ada never signalled
        await CallWorld.EventuallyAsync(() => a.Socket.InjectedFramesHandled, "Ada read the notice");
        Assert.Equal(before, a.Socket.Sent.Count);

        for (var i = 0; i < 5; i++)
        {
            a.Socket.Inject(Notice(b.Call.Self!.Epoch, i == 1 ? long.MaxValue : i == 2 ? -5 : 0)); // nonsense durations too
            await CallWorld.EventuallyAsync(() => a.Socket.InjectedFramesHandled, "Ada read the notice");
        }

        var copies = a.Socket.Sent.Skip(before).Where(f => TypeOf(f) == "signal").ToList();
        Assert.NotEmpty(copies);
        Assert.All(copies, f => Assert.Contains(toBob, f, StringComparison.Ordinal));
        Assert.DoesNotContain(copies, f => f.Contains(toCleo, StringComparison.Ordinal));
        Assert.True(copies.Count <= sentToBob, $"{copies.Count} copies of {sentToBob} signals sent to Bob"); // each once at most

        // The copies changed nothing: duplicates are dropped by the receiver, no link was replaced, nobody was refused.
        await AssertFullMeshAsync(a, b, c);
        Assert.Equal(1, b.Factory.Created.Count(pc => pc.Plan.Peer == a.Id));
        Assert.DoesNotContain(a.Errors, e => e.Code is SignallingErrorCode.RateLimited);
        Assert.DoesNotContain(b.Errors, e => e.Negotiation is not null);
        Assert.Equal(TalkiConnectionState.Connected, a.Call.ConnectionState);
        Assert.Single(a.Sockets); // the receive loop never broke
    }

    [Fact]
    public async Task APeerResumed_GetsAgainWhatWasSentToItDuringItsSuspensionAndTwentySecondsBefore_NotAMillisecondOlder()
    {
        // The replay window's edge, on the sender's clock: every signal Ada sent Bob while the mesh formed is 25.001 s old
        // when the notices come. A 5 s suspension reaches back 25 s (5 s + 20 s): nothing is sent again. A 5.001 s one
        // reaches back 25.001 s: each is sent again, once.
        await using var world = await CallWorld.StartAsync();
        var adaClock = new FakeTimeProvider(world.ServerTime.GetUtcNow());
        var (a, b, _) = await StartMeshOfThreeAsync(world, adaTime: adaClock);
        var sentToBob = a.Socket.Sent.Sum(f => SignalsTo(f, b.Id));
        Assert.True(sentToBob > 0, "Ada signalled Bob while the mesh formed");
        var before = a.Socket.Sent.Count;
        string Notice(long suspended) => $$$"""{"type":"peer_resumed","member":"{{{b.Id.Value}}}","epoch":{{{b.Call.Self!.Epoch}}},"suspendedMilliseconds":{{{suspended}}}}""";
        List<string> Copies() => a.Socket.Sent.Skip(before).Where(f => TypeOf(f) == "signal").ToList();

        adaClock.Advance(TimeSpan.FromMilliseconds(25_001));
        a.Socket.Inject(Notice(5_000));
        await CallWorld.EventuallyAsync(() => a.Socket.InjectedFramesHandled, "Ada read the first notice");
        Assert.Empty(Copies());

        a.Socket.Inject(Notice(5_001));
        await CallWorld.EventuallyAsync(() => a.Socket.InjectedFramesHandled, "Ada read the second notice");
        await CallWorld.EventuallyAsync(() => Copies().Sum(f => SignalsTo(f, b.Id)) >= sentToBob, "Ada sent her signals to Bob again");
        Assert.Equal(sentToBob, Copies().Sum(f => SignalsTo(f, b.Id)));
        Assert.All(Copies(), f => Assert.Equal(1, SignalsTo(f, b.Id)));
    }

    [Fact]
    public async Task APeerThatLeavesWhileTheSocketIsDying_IsGoneAfterTheResume_ItsLinkClosed_AndTheAppToldItLeft()
    {
        // Cleo's peer_left goes into Bob's dying socket (the server saw the write succeed): the resumed welcome no longer
        // lists her, and that is how Bob learns it. A simulated connection does not fail when its partner closes, so
        // without this Bob would keep her link.
        await using var world = await CallWorld.StartAsync();
        var (a, b, c) = await StartMeshOfThreeAsync(world);
        var dying = b.Socket;
        dying.SwallowReceives = true;
        dying.SwallowSends = true;
        await c.Call.LeaveAsync();
        await CallWorld.EventuallyAsync(() => dying.Swallowed.Any(f => TypeOf(f) == "peer_left"), "Cleo's peer_left went into Bob's dying socket");
        await CallWorld.EventuallyAsync(() => a.Call.Links.All(l => l.Peer != c.Id), "Ada closed her link to Cleo");
        dying.Abort();

        await CallWorld.EventuallyAsync(() => b.Sockets.Count > 2 || (b.Sockets.Count == 2 && b.Call.ConnectionState == TalkiConnectionState.Connected), "Bob resumes");
        Assert.True(b.Call.Self!.Epoch == 1, "Bob resumed his first epoch");
        await CallWorld.EventuallyAsync(() => b.Call.Links.All(l => l.Peer != c.Id), "Bob closed his link to Cleo");
        Assert.Equal(["Cleo"], b.EventsOf<TalkiMemberEventArgs>(nameof(TalkiCall.MemberLeft)).Select(e => e.DisplayName));
        Assert.DoesNotContain(b.Call.Members, m => m.Id == c.Id && m.Online);
        await AssertFullMeshAsync(a, b);
        Assert.Equal(1, b.Factory.Created.Count(pc => pc.Plan.Peer == a.Id));
    }

    [Fact]
    public async Task SocketDrops_WithoutAGracePeriod_RejoinsWithAFreshTicket_NoNewApproval_MeshRebuilt()
    {
        await using var world = await CallWorld.StartAsync(configure: o => o.ResumeGracePeriod = TimeSpan.Zero);
        var (a, b, c) = await StartMeshOfThreeAsync(world);
        var epochBefore = b.Call.Self!.Epoch;
        var socketsBefore = b.Sockets.Count;

        b.Socket.Abort();

        await CallWorld.EventuallyAsync(() => b.Sockets.Count > socketsBefore && b.InCall, "B reconnects");
        await AssertFullMeshAsync(a, b, c);
        Assert.True(b.Call.Self!.Epoch > epochBefore);
        Assert.Empty(a.Call.PendingAdmissions);
        Assert.Contains(b.Errors, e => e.Kind == TalkiCallErrorKind.Connection);
        Assert.Equal([TalkiAdmissionState.Waiting, TalkiAdmissionState.Admitted], b.EventsOf<TalkiAdmissionStateChangedEventArgs>(nameof(TalkiCall.AdmissionStateChanged)).Select(e => e.NewState)); // the rejoin kept the approval
        Assert.Empty(b.EventsOf<TalkiDisconnectedEventArgs>(nameof(TalkiCall.Disconnected)));
        Assert.All(a.Call.Links, l => Assert.True(l.Peer != b.Id || l.PeerEpoch == b.Call.Self.Epoch));
    }

    [Fact]
    public async Task WhileReconnecting_OutboundMessagesAreQueued_AndSentAfterRejoin()
    {
        await using var world = await CallWorld.StartAsync();
        var a = await world.SignInAsync("Ada");
        Assert.True((await a.Call.CreateRoomAsync()).IsSuccess);
        var b = await world.SignInAsync("Bob");
        Assert.True((await b.Call.JoinRoomAsync(a.Call.Room!.Id)).IsSuccess);
        await CallWorld.EventuallyAsync(() => a.Call.PendingAdmissions.Count == 1, "A sees B's request");
        var pending = a.Call.PendingAdmissions[0].Id;

        a.ConnectGate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        a.Socket.Abort();
        await CallWorld.EventuallyAsync(() => a.Call.ConnectionState == TalkiConnectionState.Reconnecting, "A is reconnecting");
        await a.Call.AdmitAsync(pending); // queued: the socket is down
        Assert.Equal(TalkiAdmissionState.Waiting, b.Call.AdmissionState);

        a.ConnectGate.SetResult();
        await CallWorld.EventuallyAsync(() => b.InCall, "B is admitted after A rejoins");
        await AssertFullMeshAsync(a, b);
        Assert.Contains(a.Socket.Sent, f => f.Contains("\"type\":\"admit\"", StringComparison.Ordinal));
    }

    [Fact]
    public async Task RoomSeals_SocketsClose_MeshStays_IceRestartSucceedsInBand()
    {
        await using var world = await CallWorld.StartAsync(TimeSpan.FromMinutes(5));
        var (a, b, c) = await StartMeshOfThreeAsync(world);
        var pcA = a.Factory.Live(b.Id);
        var pcB = b.Factory.Live(a.Id);
        var ufrag = SdpOrigin.ReadAttribute(pcA.CurrentLocal!.Sdp, "ice-ufrag");

        world.ServerTime.Advance(world.JoinWindow + TimeSpan.FromSeconds(1));

        foreach (var p in new[] { a, b, c })
        {
            await CallWorld.EventuallyAsync(() => p.Call.AdmissionState == TalkiAdmissionState.Sealed && p.Call.ConnectionState == TalkiConnectionState.Disconnected && p.EventsOf<TalkiDisconnectedEventArgs>(nameof(TalkiCall.Disconnected)).Count > 0 && p.EventsOf<EventArgs>(nameof(TalkiCall.Sealed)).Count > 0, $"{p.Name} sealed"); // the events follow the states
        }

        Assert.All(new[] { a, b, c }, p => Assert.Equal(2, p.ConnectedLinks.Count));
        Assert.All(new[] { a, b, c }, p => Assert.Single(p.EventsOf<EventArgs>(nameof(TalkiCall.Sealed))));
        Assert.All(new[] { a, b, c }, p => Assert.Equal(TalkiDisconnectReason.RoomSealed, Assert.Single(p.EventsOf<TalkiDisconnectedEventArgs>(nameof(TalkiCall.Disconnected))).Reason));
        lock (world.FabricLock)
        {
            pcA.RestartIce();
        }

        await CallWorld.EventuallyAsync(() => SdpOrigin.ReadAttribute(pcA.CurrentLocal!.Sdp, "ice-ufrag") != ufrag && pcA.SignalingState == PeerSignalingState.Stable && pcB.SignalingState == PeerSignalingState.Stable, "in-band ICE restart");
        await AssertFullMeshAsync(a, b, c);
        Assert.Same(pcA, a.Factory.Live(b.Id));
        Assert.Contains(pcA.SentOnChannels.Concat(pcB.SentOnChannels), m => m.Text.Contains("\"type\":\"signal\"", StringComparison.Ordinal));
        Assert.DoesNotContain(a.Errors, e => e.Kind == TalkiCallErrorKind.Negotiation);

        // Leaving after the seal says goodbye in-band: the others drop their link to A.
        await a.Call.LeaveAsync();
        await CallWorld.EventuallyAsync(() => b.Call.Links.All(l => l.Peer != a.Id) && c.Call.Links.All(l => l.Peer != a.Id), "B and C drop A");
        Assert.Single(b.ConnectedLinks);
        Assert.Equal(TalkiAdmissionState.Left, a.Call.AdmissionState);
        await CallWorld.EventuallyAsync(() => b.EventsOf<TalkiMemberEventArgs>(nameof(TalkiCall.MemberLeft)).Any(e => e.Member == a.Id), "B sees A leave");
    }

    [Fact]
    public async Task UnknownServerMessageType_IsIgnored_NoErrorNoDisruption()
    {
        await using var world = await CallWorld.StartAsync();
        var (a, b, c) = await StartMeshOfThreeAsync(world);

        a.Socket.Inject("""{"type":"from_the_future","payload":{"x":1}}""");
        await PingBarrierAsync(a);

        Assert.Empty(a.Errors);
        Assert.True(a.InCall);
        await AssertFullMeshAsync(a, b, c);
    }

    [Fact]
    public async Task MalformedFrame_BecomesTypedError_ConnectionAndLinksSurvive()
    {
        await using var world = await CallWorld.StartAsync();
        var (a, b, c) = await StartMeshOfThreeAsync(world);
        var links = a.Factory.Created.Where(pc => pc.SignalingState != PeerSignalingState.Closed).ToList();

        a.Socket.Inject("{ this is not json");
        await PingBarrierAsync(a);

        var error = Assert.Single(a.Errors);
        Assert.Equal(TalkiCallErrorKind.MalformedMessage, error.Kind);
        Assert.Equal(SignallingErrorCode.MalformedMessage, error.Code);
        Assert.Null(error.Peer);
        Assert.True(a.InCall);
        Assert.Equal(links, a.Factory.Created.Where(pc => pc.SignalingState != PeerSignalingState.Closed).ToList());
    }

    [Fact]
    public async Task MalformedSignalFromOnePeer_ResetsOnlyThatLink_OtherLinkUntouched()
    {
        await using var world = await CallWorld.StartAsync();
        var (a, b, c) = await StartMeshOfThreeAsync(world);
        var toB = a.Factory.Live(b.Id);
        var toC = a.Factory.Live(c.Id);

        a.Socket.Inject($$$"""{"type":"signal","from":"{{{b.Id}}}","fromEpoch":{{{b.Call.Self!.Epoch}}},"description":{"type":"offer","sdp":42}}""");
        await CallWorld.EventuallyAsync(() => a.Factory.Live(b.Id) != toB, "A's link to B is reset");

        await CallWorld.EventuallyAsync(() => Snapshot(a).Any(e => e.Kind == TalkiCallErrorKind.MalformedMessage), "A reports the malformed frame");
        var error = Assert.Single(Snapshot(a), e => e.Kind == TalkiCallErrorKind.MalformedMessage);
        Assert.Equal(b.Id, error.Peer);
        Assert.Contains(Snapshot(a), e => e.Kind == TalkiCallErrorKind.Negotiation && e.Negotiation == NegotiationErrorKind.MalformedSignal && e.Peer == b.Id);
        Assert.Same(toC, a.Factory.Live(c.Id));
        await AssertFullMeshAsync(a, b, c);
    }

    [Fact]
    public async Task SdpThePeerConnectionRejects_TypedNegotiationError_LinkReset_OthersUntouched()
    {
        await using var world = await CallWorld.StartAsync();
        var (a, b, c) = await StartMeshOfThreeAsync(world);
        var toB = a.Factory.Live(b.Id);
        var toC = a.Factory.Live(c.Id);

        a.Socket.Inject($$$"""{"type":"signal","from":"{{{b.Id}}}","fromEpoch":{{{b.Call.Self!.Epoch}}},"description":{"type":"offer","sdp":"v=0\r\ns=no origin line\r\n"}}""");
        await CallWorld.EventuallyAsync(() => a.Factory.Live(b.Id) != toB && Snapshot(a).Count > 0, "A's link to B is reset");

        var error = Assert.Single(Snapshot(a));
        Assert.Equal(TalkiCallErrorKind.Negotiation, error.Kind);
        Assert.Equal(NegotiationErrorKind.RemoteDescriptionRejected, error.Negotiation);
        Assert.Equal(b.Id, error.Peer);
        Assert.Same(toC, a.Factory.Live(c.Id));
        await AssertFullMeshAsync(a, b, c);
    }

    [Fact]
    public async Task NonAdminAdmits_ServerRefusal_ReportedWithCorrelationIdAndType()
    {
        await using var world = await CallWorld.StartAsync();
        var (a, b, _) = await StartMeshOfThreeAsync(world);

        await b.Call.AdmitAsync(a.Id);
        await CallWorld.EventuallyAsync(() => b.Errors.Count > 0, "B gets the refusal");

        var error = Assert.Single(b.Errors);
        Assert.Equal(TalkiCallErrorKind.ServerError, error.Kind);
        Assert.Equal(SignallingErrorCode.NotAdmin, error.Code);
        Assert.Equal("admit", error.RequestType);
        Assert.NotNull(error.CorrelationId);
        Assert.Contains(b.Socket.Sent, f => f.Contains($"\"id\":\"{error.CorrelationId}\"", StringComparison.Ordinal));
        Assert.True(b.InCall);
    }

    [Fact]
    public async Task Ping_SentEveryPingInterval_OnTheClientClock()
    {
        // The room seals after 30 minutes, far beyond the 8 minutes this advances the client's clock: with the default 5,
        // the second advance also reached the client's seal timer, which closes the socket, and whether the ping due in
        // the same advance went out first was a race (lost once, on a busy machine, 2026-12-05).
        await using var world = await CallWorld.StartAsync(TimeSpan.FromMinutes(30));
        var clock = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.UtcNow);
        var a = await world.SignInAsync("Ada", new TalkiClientOptions { PingInterval = TimeSpan.FromMinutes(4) }, clock);
        Assert.True((await a.Call.CreateRoomAsync()).IsSuccess);
        Assert.DoesNotContain(a.Socket.Sent, f => f.Contains("\"type\":\"ping\"", StringComparison.Ordinal));

        clock.Advance(TimeSpan.FromMinutes(4));
        await CallWorld.EventuallyAsync(() => a.Socket.Sent.Count(f => f.Contains("\"type\":\"ping\"", StringComparison.Ordinal)) == 1, "one ping");
        clock.Advance(TimeSpan.FromMinutes(4));
        await CallWorld.EventuallyAsync(() => a.Socket.Sent.Count(f => f.Contains("\"type\":\"ping\"", StringComparison.Ordinal)) == 2, "two pings");
        Assert.All(a.Socket.Sent.Where(f => f.Contains("\"type\":\"ping\"", StringComparison.Ordinal)), f => Assert.Matches("\"id\":\"c\\d+\"", f));
    }

    [Fact]
    public async Task Ping_WithTheDefaults_NoneInADefaultJoinWindow_TheSealClosesTheSocketFirst()
    {
        // Each ping and its pong are two billed messages on API Gateway: with the default 8-minute interval a member of a
        // room with the default 5-minute window never pings (with the 4 minutes before, one that joined in the first
        // minute pinged once: up to 8 messages a 4-member call that no cost figure counted).
        await using var world = await CallWorld.StartAsync();
        var clock = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.UtcNow);
        var a = await world.SignInAsync("Ada", new TalkiClientOptions(), clock);
        Assert.True((await a.Call.CreateRoomAsync()).IsSuccess);

        for (var i = 0; i < 59; i++)
        {
            clock.Advance(TimeSpan.FromSeconds(5)); // to 4 min 55 s, just before the seal
            await Task.Yield();
        }

        await Task.Delay(100);
        Assert.DoesNotContain(a.Socket.Sent, f => f.Contains("\"type\":\"ping\"", StringComparison.Ordinal));
        Assert.Equal(TalkiConnectionState.Connected, a.Call.ConnectionState);
    }

    [Fact]
    public async Task Ping_AServerWithAShorterIdleTimeout_CapsTheInterval_AtFourFifthsOfIt()
    {
        // A self-hosted gateway configured to close sockets silent for 5 minutes says so in its welcome: the default 8-minute
        // interval would lose the socket in a long room; the client pings every 4 minutes instead.
        await using var world = await CallWorld.StartAsync(TimeSpan.FromMinutes(30), o => o.Hosting.IdleTimeout = TimeSpan.FromMinutes(5));
        var clock = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.UtcNow);
        var a = await world.SignInAsync("Ada", new TalkiClientOptions(), clock);
        Assert.True((await a.Call.CreateRoomAsync()).IsSuccess);
        int Pings() => a.Socket.Sent.Count(f => f.Contains("\"type\":\"ping\"", StringComparison.Ordinal));

        clock.Advance(TimeSpan.FromMinutes(4) - TimeSpan.FromSeconds(1));
        await Task.Delay(100);
        Assert.Equal(0, Pings());
        clock.Advance(TimeSpan.FromSeconds(1));
        await CallWorld.EventuallyAsync(() => Pings() == 1, "a ping 4 minutes in");
        clock.Advance(TimeSpan.FromMinutes(4));
        await CallWorld.EventuallyAsync(() => Pings() == 2, "another 4 minutes on");
    }

    [Fact]
    public async Task Ping_OnTheRealClock_AServerWithAOneSecondIdleTimeout_GetsAPingEvery800Milliseconds_NeverEarly()
    {
        await using var world = await CallWorld.StartAsync(TimeSpan.FromMinutes(30), o => o.Hosting.IdleTimeout = TimeSpan.FromSeconds(1));
        var a = await world.SignInAsync("Ada", new TalkiClientOptions());
        var started = TimeProvider.System.GetTimestamp(); // before the socket, so its timer starts no sooner than this
        Assert.True((await a.Call.CreateRoomAsync()).IsSuccess);
        int Pings() => a.Socket.Sent.Count(f => f.Contains("\"type\":\"ping\"", StringComparison.Ordinal));

        await CallWorld.EventuallyAsync(() => Pings() >= 2, "two pings");
        var elapsed = TimeProvider.System.GetElapsedTime(started);
        var pings = Pings();

        var earliest = (TimeSpan.FromMilliseconds(800) - TimeSpan.FromMilliseconds(15)) * pings;
        Assert.True(elapsed >= earliest, $"{pings} pings {elapsed.TotalMilliseconds:F0} ms after the socket opened: earlier than {earliest.TotalMilliseconds:F0} ms");
        Assert.Single(a.Sockets);
    }

    [Theory]
    [InlineData(600, 480)] // API Gateway's 10 minutes: the default 8 stands
    [InlineData(300, 240)]
    [InlineData(1, 0.8)]
    [InlineData(null, 480)] // an older server: the configured interval
    [InlineData(0, 480)]
    [InlineData(-5, 480)]
    public void PingIntervalFor_IsTheConfiguredInterval_CappedAtFourFifthsOfTheWelcomesIdleTimeout(int? idleSeconds, double expectedSeconds)
    {
        var welcome = new WelcomeMessage
        {
            You = new MemberView { Id = MemberId.New(), DisplayName = "Ada" },
            Room = new RoomView { Id = RoomId.New(), Admin = MemberId.New() },
            Members = [],
            IceServers = [],
            IdleTimeoutSeconds = idleSeconds,
        };

        Assert.Equal(TimeSpan.FromSeconds(expectedSeconds), Talki.Signalling.Client.Connection.SignallingConnection.PingIntervalFor(TimeSpan.FromMinutes(8), welcome));
    }

    [Fact]
    public async Task Ping_OnTheRealClock_SentEveryPingInterval_NeverEarly_OnTheSameSocket()
    {
        // The test above on the fake clock, which never fires early. Here a 150 ms interval on the system clock: the fourth
        // ping comes no sooner than four intervals after the socket opened, less the timer clock's coarseness (a few
        // milliseconds a period: the runtime's timers run on a coarse millisecond count), and on the socket the call opened.
        await using var world = await CallWorld.StartAsync();
        var interval = TimeSpan.FromMilliseconds(150);
        var a = await world.SignInAsync("Ada", new TalkiClientOptions { PingInterval = interval });
        var started = TimeProvider.System.GetTimestamp(); // before the socket, so its timer starts no sooner than this
        Assert.True((await a.Call.CreateRoomAsync()).IsSuccess);
        int Pings() => a.Socket.Sent.Count(f => f.Contains("\"type\":\"ping\"", StringComparison.Ordinal));

        await CallWorld.EventuallyAsync(() => Pings() >= 4, "four pings");
        var elapsed = TimeProvider.System.GetElapsedTime(started);
        var pings = Pings();

        var earliest = (interval - TimeSpan.FromMilliseconds(15)) * pings;
        Assert.True(elapsed >= earliest, $"{pings} pings {elapsed.TotalMilliseconds:F0} ms after the socket opened: earlier than {earliest.TotalMilliseconds:F0} ms");
        Assert.Single(a.Sockets);
        Assert.Equal(TalkiConnectionState.Connected, a.Call.ConnectionState);
        Assert.Empty(Snapshot(a));
    }

    [Fact]
    public async Task JoinUnknownRoom_FailsWithRoomNotFound_NoSocket()
    {
        await using var world = await CallWorld.StartAsync();
        var a = await world.SignInAsync("Ada");
        var result = await a.Call.JoinRoomAsync(RoomId.New());

        Assert.Equal(SignallingErrorCode.RoomNotFound, result.Error?.Code);
        Assert.Equal(TalkiConnectionState.Disconnected, a.Call.ConnectionState);
        Assert.Equal(TalkiAdmissionState.None, a.Call.AdmissionState);
        var ended = Assert.Single(a.EventsOf<TalkiDisconnectedEventArgs>(nameof(TalkiCall.Disconnected)));
        Assert.Equal(TalkiDisconnectReason.Failed, ended.Reason);
        Assert.Equal(SignallingErrorCode.RoomNotFound, ended.Error?.Code);
        Assert.Empty(a.Sockets);
        await Assert.ThrowsAsync<InvalidOperationException>(() => a.Call.JoinRoomAsync(RoomId.New()));
    }

    [Fact]
    public async Task JoinAfterSeal_FailsWithRoomSealed()
    {
        await using var world = await CallWorld.StartAsync(TimeSpan.FromMinutes(5));
        var a = await world.SignInAsync("Ada");
        Assert.True((await a.Call.CreateRoomAsync()).IsSuccess);
        world.ServerTime.Advance(TimeSpan.FromMinutes(6));
        var b = await world.SignInAsync("Bob");

        var result = await b.Call.JoinRoomAsync(a.Call.Room!.Id);

        Assert.Equal(SignallingErrorCode.RoomSealed, result.Error?.Code);
    }

    private static List<TalkiCallErrorEventArgs> Snapshot(Participant p)
    {
        lock (p.Errors)
        {
            return [.. p.Errors];
        }
    }

    /// <summary>Ada and Bea in a call with their link up; Cyd knocking, not admitted yet.</summary>
    private static async Task<(Participant Ada, Participant Bea, Participant Cyd)> PairWithCydKnockingAsync(CallWorld world)
    {
        var a = await world.SignInAsync("Ada");
        Assert.True((await a.Call.CreateRoomAsync()).IsSuccess);
        var b = await world.SignInAsync("Bea");
        Assert.True((await b.Call.JoinRoomAsync(a.Call.Room!.Id)).IsSuccess);
        await CallWorld.EventuallyAsync(() => a.Call.PendingAdmissions.Count == 1, "Ada sees Bea");
        await a.Call.AdmitAsync(a.Call.PendingAdmissions[0].Id);
        await AssertFullMeshAsync(a, b);
        var c = await world.SignInAsync("Cyd");
        Assert.True((await c.Call.JoinRoomAsync(a.Call.Room!.Id)).IsSuccess);
        await CallWorld.EventuallyAsync(() => a.Call.PendingAdmissions.Count == 1, "Ada sees Cyd");
        return (a, b, c);
    }

    /// <summary>Bea resumed her first epoch after her socket died, and the mesh of three is up without a reset: one connection per link side, no negotiation error.</summary>
    private static async Task AssertBeaResumedIntoAFullMeshAsync(Participant a, Participant b, Participant c)
    {
        await CallWorld.EventuallyAsync(() => b.Sockets.Count > 2 || (b.Sockets.Count == 2 && b.Call.ConnectionState == TalkiConnectionState.Connected), "Bea resumes");
        await AssertFullMeshAsync(a, b, c);
        Assert.True(b.Call.Self!.Epoch == 1, "Bea resumed her first epoch");
        Assert.Equal(1, b.Factory.Created.Count(pc => pc.Plan.Peer == c.Id));
        Assert.Equal(1, c.Factory.Created.Count(pc => pc.Plan.Peer == b.Id));
        Assert.DoesNotContain(b.Errors, e => e.Negotiation is not null);
        Assert.DoesNotContain(c.Errors, e => e.Negotiation is not null);
    }

    private static async Task<(Participant A, Participant B, Participant C)> StartMeshOfThreeAsync(CallWorld world, TalkiClientOptions? bobOptions = null, TimeProvider? adaTime = null)
    {
        var a = await world.SignInAsync("Ada", clientTime: adaTime);
        var created = await a.Call.CreateRoomAsync();
        Assert.True(created.IsSuccess, created.ToString());
        Assert.True(a.InCall);
        Assert.True(a.Call.Self!.Admin);

        var b = await world.SignInAsync("Bob", bobOptions);
        var c = await world.SignInAsync("Cleo");
        foreach (var p in new[] { b, c })
        {
            var joined = await p.Call.JoinRoomAsync(created.Value);
            Assert.True(joined.IsSuccess, joined.ToString());
            Assert.Equal(TalkiAdmissionState.Waiting, p.Call.AdmissionState);
            await CallWorld.EventuallyAsync(() => a.Call.PendingAdmissions.Any(m => m.Id == p.Call.Self!.Id), $"A sees {p.Name}");
            await a.Call.AdmitAsync(p.Call.Self!.Id);
            await CallWorld.EventuallyAsync(() => p.InCall, $"{p.Name} admitted");
        }

        await AssertFullMeshAsync(a, b, c);
        Assert.All(new[] { a, b, c }, p => Assert.Equal(3, p.Call.Members.Count));
        return (a, b, c);
    }

    private static async Task AssertFullMeshAsync(params Participant[] members)
    {
        foreach (var p in members)
        {
            await CallWorld.EventuallyAsync(() => p.ConnectedLinks.Count == members.Length - 1, $"{p.Name} has {members.Length - 1} connected links");
        }

        foreach (var p in members)
        {
            foreach (var q in members.Where(q => q != p))
            {
                var link = Assert.Single(p.Call.Links, l => l.Peer == q.Id);
                Assert.Equal(q.Call.Self!.Epoch, link.PeerEpoch);
            }
        }
    }

    /// <summary>The receive loop is sequential: once it asks for the frame after the injected ones, those were handled.</summary>
    private static Task PingBarrierAsync(Participant p) => CallWorld.EventuallyAsync(() => p.Socket.InjectedFramesHandled, "the injected frames are handled");
}
