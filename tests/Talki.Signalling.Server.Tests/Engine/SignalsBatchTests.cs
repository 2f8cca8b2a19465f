using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Talki.Signalling.Ports;
using Talki.Signalling.Protocol;
using Talki.Signalling.Server.Storage;

namespace Talki.Signalling.Server.Tests.Engine;

/// <summary>
/// Protocol version 2's <c>signals</c> message: several signals, each for a different member, relayed one by one as if each
/// had come alone. Batching must not be a way around the room's walls, the rate limit, or the per-signal errors.
/// </summary>
public sealed class SignalsBatchTests
{
    [Fact]
    public async Task V2Newcomer_OffersToTheThreeOthersInOneFrame_EachGetsOneSignal_ByteForByteWhatALoneOfferGives()
    {
        using var h = new EngineHarness();
        var (admin, adminConnection, members) = await h.RoomWithMembersAsync(2, "bob", "cy");
        var dee = await h.JoinAsync(EngineHarness.User("dee"), admin.Room);
        var deeConnection = await h.ConnectAsync(dee, version: 2);
        await h.SendAsync(adminConnection, $$$"""{"type":"admit","member":"{{{dee.Member}}}"}""");
        var deeEpoch = h.Push.To<WelcomeMessage>(deeConnection).Last().You.Epoch;
        var links = h.Push.To<AdmittedMessage>(deeConnection).Single(m => m.Member.Id == dee.Member).Links!;
        Assert.Equal(3, links.Count);
        Assert.All(links, l => Assert.True(l.Offerer));
        var connections = new Dictionary<MemberId, string> { [admin.Member] = adminConnection };
        foreach (var (grant, connection) in members)
        {
            connections[grant.Member] = connection;
        }

        var entries = links.Select((l, i) => new EntrySpec(l.Peer.Id, l.PeerEpoch, Offer("dee-" + i), i == 1 ? Candidates("c-" + i) : null)).ToList();
        h.Push.Clear();

        await h.SendAsync(deeConnection, Batch("offers", [.. entries.Select(e => Entry(e.To, toEpoch: e.ToEpoch, description: e.Description, candidates: e.Candidates))]));

        Assert.Equal(3, h.Push.All.Count); // one signal each, and nothing else to anybody (no error to dee)
        var batched = new Dictionary<MemberId, string>();
        foreach (var (link, i) in links.Select((l, i) => (l, i)))
        {
            var raw = Assert.Single(h.Push.All, p => p.Connection == connections[link.Peer.Id]).Json;
            batched[link.Peer.Id] = raw;
            var relayed = h.Push.Single<SignalRelayMessage>(connections[link.Peer.Id]);
            Assert.Equal(dee.Member, relayed.From);
            Assert.Equal(deeEpoch, relayed.FromEpoch);
            Assert.Equal(SdpType.Offer, relayed.Description!.Type);
            Assert.Equal($"v=0\r\no=- dee-{i} 1 IN IP4 0.0.0.0\r\n", relayed.Description.Sdp);
            Assert.Equal(i == 1 ? "c-1" : null, relayed.Candidates?.Single().Candidate);

            // The v2 first offer carries the receiver's side of the link, the complement of the newcomer's.
            Assert.NotNull(relayed.Link);
            Assert.Equal(dee.Member, relayed.Link.Peer.Id);
            Assert.Equal(deeEpoch, relayed.Link.PeerEpoch);
            Assert.False(relayed.Link.Offerer);
            Assert.NotEqual(link.Polite, relayed.Link.Polite);
        }

        // The same offers sent alone, one signal each: the receivers get exactly the same bytes.
        h.Push.Clear();
        foreach (var e in entries)
        {
            await h.SendAsync(deeConnection, Single(e.To, toEpoch: e.ToEpoch, description: e.Description, candidates: e.Candidates));
        }

        Assert.Equal(3, h.Push.All.Count);
        foreach (var link in links)
        {
            Assert.Equal(batched[link.Peer.Id], Assert.Single(h.Push.All, p => p.Connection == connections[link.Peer.Id]).Json);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Entries_AreRelayedInTheirOrder(bool reversed)
    {
        using var h = new EngineHarness();
        var (_, adminConnection, members) = await h.RoomWithMembersAsync("bob", "cy", "dee");
        var order = reversed ? members.AsEnumerable().Reverse().ToList() : members;
        h.Push.Clear();

        await h.SendAsync(adminConnection, Batch("b1", [.. order.Select((m, i) => Entry(m.Grant.Member, candidates: Candidates("n" + i)))]));

        Assert.Equal(order.Select(m => m.Connection), h.Push.All.Select(p => p.Connection));
        Assert.Equal(["n0", "n1", "n2"], order.Select(m => h.Push.Single<SignalRelayMessage>(m.Connection).Candidates!.Single().Candidate));
    }

    [Fact]
    public async Task PartialFailure_EachFailingEntryGetsItsOwnError_WithItsIdOrTheFrames_AndTheOthersAreStillDelivered()
    {
        using var h = new EngineHarness();
        var (admin, adminConnection, members) = await h.RoomWithMembersAsync("bob", "cy", "dee");
        var (bob, bobConnection) = members[0];
        var (cy, cyConnection) = members[1];
        var (dee, deeConnection) = members[2];
        var pat = await h.JoinAsync(EngineHarness.User("pat"), admin.Room); // knocks: pending, never admitted
        var patConnection = await h.ConnectAsync(pat);
        var (_, otherAdminConnection, otherMembers) = await h.RoomWithMembersAsync("eve");
        var (eve, eveConnection) = otherMembers[0];
        var cyEpoch = (await h.Services.GetRequiredService<IRoomStore>().GetMemberAsync(cy.Room, cy.Member))!.Epoch;
        var deeEpoch = (await h.Services.GetRequiredService<IRoomStore>().GetMemberAsync(dee.Room, dee.Member))!.Epoch;
        h.Push.Clear();

        await h.SendAsync(adminConnection, Batch(
            "frame-1",
            Entry(bob.Member, id: "e-bob", description: Offer("to-bob")),
            Entry(MemberId.New(), id: "e-unknown", candidates: Candidates("x")),
            Entry(eve.Member, description: Offer("to-eve")), // no id: its error carries the frame's
            Entry(cy.Member, id: "e-stale", toEpoch: cyEpoch - 1, candidates: Candidates("x")),
            Entry(pat.Member, id: "e-pending", description: Offer("to-pat")),
            Entry(admin.Member, id: "e-self", candidates: Candidates("x")),
            Entry(dee.Member, toEpoch: deeEpoch, candidates: Candidates("to-dee"))));

        Assert.Equal(SdpType.Offer, h.Push.Single<SignalRelayMessage>(bobConnection).Description!.Type);
        Assert.Equal("to-dee", h.Push.Single<SignalRelayMessage>(deeConnection).Candidates!.Single().Candidate);

        // Nobody else got anything: not the other room (ever), not the stale or pending member.
        Assert.Empty(h.Push.To(eveConnection));
        Assert.Empty(h.Push.To(otherAdminConnection));
        Assert.Empty(h.Push.To(cyConnection));
        Assert.Empty(h.Push.To(patConnection));
        Assert.Empty(h.Push.To<SignalRelayMessage>(adminConnection));

        Assert.Equal(
            [
                (SignallingErrorCode.MemberNotFound, "e-unknown"),
                (SignallingErrorCode.MemberNotFound, "frame-1"),
                (SignallingErrorCode.StaleEpoch, "e-stale"),
                (SignallingErrorCode.PeerUnavailable, "e-pending"),
                (SignallingErrorCode.MemberNotFound, "e-self"),
            ],
            h.Push.To<ErrorMessage>(adminConnection).Select(e => (e.Code, e.Id!)));

        // In entry order: bob's relay first, the errors, dee's relay last.
        Assert.Equal(
            [bobConnection, .. Enumerable.Repeat(adminConnection, 5), deeConnection],
            h.Push.All.Select(p => p.Connection));
        Assert.False(h.Push.WasClosed(adminConnection));
    }

    [Fact]
    public async Task PartialFailure_AnUndeliverableEntryIsDeliveryFailed_TheNextEntryStillGoes()
    {
        using var h = new EngineHarness();
        var (_, adminConnection, members) = await h.RoomWithMembersAsync("bob", "cy");
        var (bob, bobConnection) = members[0];
        var (cy, cyConnection) = members[1];
        h.Push.Undeliverable[bobConnection] = true;
        h.Push.Clear();

        await h.SendAsync(adminConnection, Batch(null, Entry(bob.Member, id: "e-bob", candidates: Candidates("x")), Entry(cy.Member, candidates: Candidates("y"))));

        var error = Assert.Single(h.Push.To<ErrorMessage>(adminConnection));
        Assert.Equal((SignallingErrorCode.DeliveryFailed, "e-bob"), (error.Code, error.Id));
        Assert.Equal("y", h.Push.Single<SignalRelayMessage>(cyConnection).Candidates!.Single().Candidate);
    }

    [Fact]
    public async Task PartialFailure_AnEntryWithoutAnIdInAFrameWithoutAnId_GetsAnErrorWithoutAnId()
    {
        using var h = new EngineHarness();
        var (_, adminConnection, members) = await h.RoomWithMembersAsync("bob");
        h.Push.Clear();

        await h.SendAsync(adminConnection, Batch(null, Entry(MemberId.New(), candidates: Candidates("x")), Entry(members[0].Grant.Member, candidates: Candidates("y"))));

        var error = Assert.Single(h.Push.To<ErrorMessage>(adminConnection));
        Assert.Equal(SignallingErrorCode.MemberNotFound, error.Code);
        Assert.Null(error.Id);
        Assert.Single(h.Push.To<SignalRelayMessage>(members[0].Connection));
    }

    [Fact]
    public async Task SenderBeforeItsHello_OneNotReadyError_NothingDelivered()
    {
        using var h = new EngineHarness();
        var (admin, adminConnection, members) = await h.RoomWithMembersAsync("bob");
        var cy = await h.JoinAsync(EngineHarness.User("cy"), admin.Room);
        await h.SendAsync(adminConnection, $$$"""{"type":"admit","member":"{{{cy.Member}}}"}"""); // admitted at its knock
        var cyConnection = await h.ConnectAsync(cy, hello: false);
        h.Push.Clear();

        await h.SendAsync(cyConnection, Batch("early", Entry(admin.Member, id: "e0", description: Offer("a")), Entry(members[0].Grant.Member, id: "e1", description: Offer("b"))));

        var error = (ErrorMessage)Assert.Single(h.Push.To(cyConnection));
        Assert.Equal((SignallingErrorCode.NotReady, "early"), (error.Code, error.Id));
        Assert.Equal([cyConnection], h.Push.All.Select(p => p.Connection));
    }

    [Fact]
    public async Task PendingSender_OneNotAdmittedError_NothingDelivered()
    {
        using var h = new EngineHarness();
        var (admin, adminConnection, members) = await h.RoomWithMembersAsync("cy");
        var bob = await h.JoinAsync(EngineHarness.User("bob"), admin.Room);
        var bobConnection = await h.ConnectAsync(bob);
        h.Push.Clear();

        await h.SendAsync(bobConnection, Batch("p1", Entry(admin.Member, id: "e0", description: Offer("a")), Entry(members[0].Grant.Member, id: "e1", candidates: Candidates("c"))));

        var error = (ErrorMessage)Assert.Single(h.Push.To(bobConnection));
        Assert.Equal((SignallingErrorCode.NotAdmitted, "p1"), (error.Code, error.Id));
        Assert.Equal([bobConnection], h.Push.All.Select(p => p.Connection));
    }

    [Fact]
    public async Task AnInvalidEntry_RefusesTheWholeFrame_EvenTheValidEntriesBeforeIt()
    {
        using var h = new EngineHarness();
        var (_, adminConnection, members) = await h.RoomWithMembersAsync("bob", "cy");
        h.Push.Clear();

        await h.SendAsync(adminConnection, Batch("bad", Entry(members[0].Grant.Member, candidates: Candidates("x")), $$$"""{"to":"{{{members[1].Grant.Member}}}"}"""));
        await h.SendAsync(adminConnection, Batch("dup", Entry(members[0].Grant.Member, candidates: Candidates("x")), Entry(members[0].Grant.Member, candidates: Candidates("y"))));

        Assert.Equal(
            [(SignallingErrorCode.MalformedMessage, "bad"), (SignallingErrorCode.MalformedMessage, "dup")],
            h.Push.To<ErrorMessage>(adminConnection).Select(e => (e.Code, e.Id!)));
        Assert.Equal([adminConnection, adminConnection], h.Push.All.Select(p => p.Connection));
    }

    [Fact]
    public async Task MoreEntriesThanOtherMembersCanExist_MalformedMessage_NothingDelivered_AndExactlyThatManyIsFine()
    {
        using var h = new EngineHarness(o => o.Limits.MaxMembersPerRoom = 3);
        var (admin, adminConnection, members) = await h.RoomWithMembersAsync("bob", "cy");
        h.Push.Clear();

        // Two others at most: a third entry (here to nobody) refuses the frame before any entry goes.
        await h.SendAsync(adminConnection, Batch("big", [.. members.Select(m => Entry(m.Grant.Member, candidates: Candidates("x"))), Entry(MemberId.New(), candidates: Candidates("x"))]));

        var error = (ErrorMessage)Assert.Single(h.Push.To(adminConnection));
        Assert.Equal((SignallingErrorCode.MalformedMessage, "big"), (error.Code, error.Id));
        Assert.Single(h.Push.All); // that error, and nothing to bob or cy

        h.Push.Clear();
        await h.SendAsync(adminConnection, Batch("fits", [.. members.Select(m => Entry(m.Grant.Member, candidates: Candidates("x")))]));
        Assert.All(members, m => Assert.Single(h.Push.To<SignalRelayMessage>(m.Connection)));
        Assert.Empty(h.Push.To(adminConnection));
    }

    [Fact]
    public async Task MoreEntriesThanOtherMembersCanExist_WithTheDefaultEightPerRoom_EightAreRefused_SevenGo()
    {
        using var h = new EngineHarness();
        var (_, adminConnection, members) = await h.RoomWithMembersAsync("bob");
        var (bob, bobConnection) = members[0];
        h.Push.Clear();

        await h.SendAsync(adminConnection, Batch("eight", [Entry(bob.Member, candidates: Candidates("x")), .. Enumerable.Range(0, 7).Select(_ => Entry(MemberId.New(), candidates: Candidates("x")))]));
        Assert.Equal(SignallingErrorCode.MalformedMessage, Assert.Single(h.Push.To<ErrorMessage>(adminConnection)).Code);
        Assert.Empty(h.Push.To(bobConnection));

        h.Push.Clear();
        await h.SendAsync(adminConnection, Batch("seven", [Entry(bob.Member, candidates: Candidates("x")), .. Enumerable.Range(0, 6).Select(_ => Entry(MemberId.New(), candidates: Candidates("x")))]));
        Assert.Single(h.Push.To<SignalRelayMessage>(bobConnection));
        Assert.Equal(6, h.Push.To<ErrorMessage>(adminConnection).Count(e => e.Code == SignallingErrorCode.MemberNotFound));
    }

    [Fact]
    public async Task RateLimit_ABatchPaysOneTokenPerEntry_FourThenTwoOnABurstOfFive_TheSecondIsRefusedWhole()
    {
        using var h = RateLimitedHarness(burst: 5);
        var (sender, peers) = await FullBucketsAsync(h, others: 4);

        await h.SendAsync(sender, Batch("four", [.. peers.Take(4).Select((p, i) => Entry(p.Member, candidates: Candidates("four-" + i)))]));
        await h.SendAsync(sender, Batch("two", [.. peers.Take(2).Select((p, i) => Entry(p.Member, candidates: Candidates("two-" + i)))]));

        Assert.Equal(["four-0", "four-1", "four-2", "four-3"], Relayed(h));
        var error = Assert.Single(h.Push.To<ErrorMessage>(sender));
        Assert.Equal((SignallingErrorCode.RateLimited, "two"), (error.Code, error.Id));
        Assert.False(h.Push.WasClosed(sender));
    }

    /// <summary>
    /// Whatever the mix of batches and single signals, a burst relays no more signals than it would one by one, and a batch
    /// is relayed whole or not at all (a refused one gets one <c>rate_limited</c> error with its id).
    /// </summary>
    [Theory]
    [InlineData("1,1,1,1,1,1,1", 6)] // the baseline: single signals, the seventh refused
    [InlineData("5,1", 6)]
    [InlineData("4,1", 5)]
    [InlineData("4,2", 6)]
    [InlineData("4,3", 4)]
    [InlineData("3,4", 3)]
    [InlineData("2,2,2,1", 6)]
    [InlineData("2,5", 2)]
    [InlineData("6,1", 6)] // the whole burst at once (one entry per other member), then nothing
    [InlineData("4,3,1,1", 6)] // a refused batch gives its frame's token back, as a refused single signal costs nothing
    [InlineData("2,5,1,1,1,1", 6)]
    public async Task RateLimit_ABurstRelaysNoMoreSignalsBatchedThanOneByOne(string sizes, int relayed)
    {
        const int Burst = 6; // the least the options allow with 7 members: one entry per other member
        using var h = RateLimitedHarness(Burst);
        var (sender, peers) = await FullBucketsAsync(h, others: 6);
        var frames = sizes.Split(',').Select(int.Parse).ToList();

        for (var f = 0; f < frames.Count; f++)
        {
            var tags = Enumerable.Range(0, frames[f]).Select(i => $"f{f}-{i}").ToList();
            await h.SendAsync(sender, frames[f] == 1
                ? Single(peers[0].Member, id: "f" + f, candidates: Candidates(tags[0]))
                : Batch("f" + f, [.. tags.Select((tag, i) => Entry(peers[i].Member, candidates: Candidates(tag)))]));
        }

        var delivered = Relayed(h);
        Assert.Equal(relayed, delivered.Count);
        Assert.InRange(delivered.Count, 0, Burst);

        // Whole frames only: each frame is either all relayed (in order) or refused once by name.
        var refused = h.Push.To<ErrorMessage>(sender);
        Assert.All(refused, e => Assert.Equal(SignallingErrorCode.RateLimited, e.Code));
        var expected = new List<string>();
        for (var f = 0; f < frames.Count; f++)
        {
            var tags = Enumerable.Range(0, frames[f]).Select(i => $"f{f}-{i}");
            if (refused.Any(e => e.Id == "f" + f))
            {
                Assert.DoesNotContain(delivered, tags.Contains);
            }
            else
            {
                expected.AddRange(tags);
            }
        }

        Assert.Equal(expected, delivered);
        Assert.Equal(refused.Count, refused.Select(e => e.Id).Distinct().Count()); // one error per refused frame
    }

    [Fact]
    public async Task RateLimit_ARefusedBatchCountsOnceTowardsTheClose_NotOncePerEntry()
    {
        using var h = RateLimitedHarness(burst: 3, refusalsBeforeClose: 2);
        var (sender, peers) = await FullBucketsAsync(h, others: 3);
        await h.SendAsync(sender, Single(peers[0].Member, id: "one", candidates: Candidates("one"))); // two tokens left
        var three = Batch("three", [.. peers.Select(p => Entry(p.Member, candidates: Candidates("x")))]);

        await h.SendAsync(sender, three); // three entries on two tokens: refused, one refusal
        Assert.Equal(SignallingErrorCode.RateLimited, Assert.Single(h.Push.To<ErrorMessage>(sender)).Code);
        Assert.False(h.Push.WasClosed(sender));

        await h.SendAsync(sender, three); // the second refusal reaches the limit
        Assert.Equal(2, h.Push.To<ErrorMessage>(sender).Count);
        Assert.True(h.Push.WasClosed(sender));
        Assert.Equal("rate limit exceeded", h.Push.PolicyCloseReason(sender));
        Assert.Equal(["one"], Relayed(h));
    }

    [Fact]
    public async Task StoreReads_ABatchOfThreeWithTheConnectionsGrant_IsOneReadOfTheRoomsMembers()
    {
        var counting = new ConcurrentDictionary<string, int>(StringComparer.Ordinal);
        using var h = new EngineHarness(store: sp => StoreReadsTests.CountingStore.Wrap(sp.GetRequiredService<InMemoryRoomStore>(), counting));
        var (send, _, _, peers) = await GrantRoomAsync(h, "bob", "cy", "dee");
        counting.Clear();

        await send(Batch("b1", [.. peers.Select(p => Entry(p.Grant.Member, description: Offer("x")))]));

        Assert.All(peers, p => Assert.Single(h.Push.To<SignalRelayMessage>(p.Connection)));
        Assert.Equal(new Dictionary<string, int> { [nameof(IRoomStore.ListMembersAsync)] = 1 }, counting.ToDictionary(StringComparer.Ordinal));

        // For comparison, the same three signals alone: one request each.
        counting.Clear();
        foreach (var p in peers)
        {
            await send(Single(p.Grant.Member, description: Offer("x")));
        }

        Assert.Equal(new Dictionary<string, int> { [nameof(IRoomStore.GetMemberPairAsync)] = 3 }, counting.ToDictionary(StringComparer.Ordinal));
    }

    [Fact]
    public async Task StoreReads_ABatchWithoutAGrant_ReadsTheBindingTheSenderTheRoomAndTheMembersOnce()
    {
        // The two-phase gateway's fallback: what every frame pays, and one read of the members for all the entries.
        var counting = new ConcurrentDictionary<string, int>(StringComparer.Ordinal);
        using var h = new EngineHarness(store: sp => StoreReadsTests.CountingStore.Wrap(sp.GetRequiredService<InMemoryRoomStore>(), counting));
        var (_, adminConnection, members) = await h.RoomWithMembersAsync("bob", "cy", "dee");
        counting.Clear();

        await h.SendAsync(adminConnection, Batch("b1", [.. members.Select(m => Entry(m.Grant.Member, candidates: Candidates("c")))]));

        Assert.All(members, m => Assert.Single(h.Push.To<SignalRelayMessage>(m.Connection)));
        Assert.Equal(
            new Dictionary<string, int>
            {
                [nameof(IRoomStore.GetConnectionAsync)] = 1,
                [nameof(IRoomStore.GetMemberAsync)] = 1,
                [nameof(IRoomStore.GetRoomAsync)] = 1,
                [nameof(IRoomStore.ListMembersAsync)] = 1,
            },
            counting.ToDictionary(StringComparer.Ordinal));
    }

    [Fact]
    public async Task WithTheConnectionsGrant_PartialFailure_CrossRoomUnknownAndPending_AreRefusedPerEntry_OneReadForAll()
    {
        var counting = new ConcurrentDictionary<string, int>(StringComparer.Ordinal);
        using var h = new EngineHarness(store: sp => StoreReadsTests.CountingStore.Wrap(sp.GetRequiredService<InMemoryRoomStore>(), counting));
        var (send, admin, adminConnection, peers) = await GrantRoomAsync(h, "bob");
        var (bob, bobConnection) = peers[0];
        var pat = await h.JoinAsync(EngineHarness.User("pat"), admin.Room);
        var patConnection = await h.ConnectAsync(pat, version: 2);
        var (_, otherAdminConnection, otherMembers) = await h.RoomWithMembersAsync(2, "eve");
        var (eve, eveConnection) = otherMembers[0];
        h.Push.Clear();
        counting.Clear();

        await send(Batch(
            "g1",
            Entry(eve.Member, id: "e-eve", description: Offer("to-eve")),
            Entry(pat.Member, description: Offer("to-pat")),
            Entry(MemberId.New(), id: "e-unknown", description: Offer("x")),
            Entry(bob.Member, id: "e-bob", description: Offer("to-bob"))));

        Assert.Equal($"v=0\r\no=- to-bob 1 IN IP4 0.0.0.0\r\n", h.Push.Single<SignalRelayMessage>(bobConnection).Description!.Sdp);
        Assert.Empty(h.Push.To(eveConnection));
        Assert.Empty(h.Push.To(otherAdminConnection));
        Assert.Empty(h.Push.To(patConnection));
        Assert.Equal(
            [(SignallingErrorCode.MemberNotFound, "e-eve"), (SignallingErrorCode.PeerUnavailable, "g1"), (SignallingErrorCode.MemberNotFound, "e-unknown")],
            h.Push.To<ErrorMessage>(adminConnection).Select(e => (e.Code, e.Id!)));
        Assert.Equal(new Dictionary<string, int> { [nameof(IRoomStore.ListMembersAsync)] = 1 }, counting.ToDictionary(StringComparer.Ordinal));
    }

    [Fact]
    public async Task WithTheConnectionsGrant_ABatchAsTheFirstFrameOfATwoPhaseConnection_BindsButIsNotReady_NothingDelivered()
    {
        using var h = new EngineHarness();
        var (send, admin, adminConnection, peers) = await GrantRoomAsync(h, "bob");
        var cy = await h.JoinAsync(EngineHarness.User("cy"), admin.Room);
        await send($$$"""{"type":"admit","member":"{{{cy.Member}}}"}"""); // admitted at its knock
        var cyGrant = (await h.Engine.AuthorizeAsync(cy.Ticket.Value)).Value;
        var cyConnection = h.NewConnectionId();
        h.Push.Clear();

        // The authorizer consumed the ticket; the first frame binds. A batch instead of a hello: nobody hears from it.
        await h.Engine.HandleAuthorizedMessageAsync(cyConnection, cyGrant, Encoding.UTF8.GetBytes(Batch("first", Entry(admin.Member, description: Offer("a")), Entry(peers[0].Grant.Member, description: Offer("b")))));

        var error = (ErrorMessage)Assert.Single(h.Push.To(cyConnection));
        Assert.Equal((SignallingErrorCode.NotReady, "first"), (error.Code, error.Id));
        Assert.Empty(h.Push.To(adminConnection));
        Assert.Empty(h.Push.To(peers[0].Connection));
    }

    /// <summary>
    /// A reload through a two-phase gateway: the member was ready on its previous connection, and the new one's first frame
    /// is a batch instead of a hello. Like a lone signal in its place, it is not_ready: the earlier hello does not carry over.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task WithTheConnectionsGrant_AReloadsFirstFrame_ABatchOrASignal_IsNotReady_NothingDelivered(bool batch)
    {
        using var h = new EngineHarness();
        var (admin, adminConnection, members) = await h.RoomWithMembersAsync(2, "bob");
        var bob = (await h.Services.GetRequiredService<IRoomStore>().GetMemberAsync(admin.Room, members[0].Grant.Member))!;
        var ticket = await h.JoinAsync(new CallerIdentity(bob.UserId, bob.DisplayName, false), admin.Room);
        var grant = (await h.Engine.AuthorizeAsync(ticket.Ticket.Value)).Value;
        var connection = h.NewConnectionId();
        h.Push.Clear();

        await h.Engine.HandleAuthorizedMessageAsync(connection, grant, Encoding.UTF8.GetBytes(batch
            ? Batch("f", Entry(admin.Member, description: Offer("a")))
            : Single(admin.Member, id: "f", description: Offer("a"))));

        var error = (ErrorMessage)Assert.Single(h.Push.To(connection));
        Assert.Equal((SignallingErrorCode.NotReady, "f"), (error.Code, error.Id));
        Assert.Empty(h.Push.To<SignalRelayMessage>(adminConnection)); // (the admin is told the old epoch left)
    }

    private sealed record EntrySpec(MemberId To, long? ToEpoch, string? Description, string? Candidates);

    private static string Offer(string tag) => $$"""{"type":"offer","sdp":"v=0\r\no=- {{tag}} 1 IN IP4 0.0.0.0\r\n"}""";

    private static string Candidates(string candidate) => $$"""[{"candidate":"{{candidate}}","sdpMid":"0"}]""";

    private static string Entry(MemberId to, string? id = null, long? toEpoch = null, string? description = null, string? candidates = null)
        => "{" + Fields(to, id, toEpoch, description, candidates) + "}";

    private static string Single(MemberId to, string? id = null, long? toEpoch = null, string? description = null, string? candidates = null)
        => """{"type":"signal",""" + Fields(to, id, toEpoch, description, candidates) + "}";

    private static string Fields(MemberId to, string? id, long? toEpoch, string? description, string? candidates)
    {
        var fields = new List<string> { $"\"to\":\"{to}\"" };
        if (id is not null)
        {
            fields.Add($"\"id\":\"{id}\"");
        }

        if (toEpoch is not null)
        {
            fields.Add($"\"toEpoch\":{toEpoch}");
        }

        if (description is not null)
        {
            fields.Add($"\"description\":{description}");
        }

        if (candidates is not null)
        {
            fields.Add($"\"candidates\":{candidates}");
        }

        return string.Join(",", fields);
    }

    private static string Batch(string? id, params string[] entries)
        => """{"type":"signals",""" + (id is null ? string.Empty : $"\"id\":\"{id}\",") + "\"signals\":[" + string.Join(",", entries) + "]}";

    private static EngineHarness RateLimitedHarness(int burst, int refusalsBeforeClose = 100) => new(o =>
    {
        // Many tokens per second, so that the admin's admits refill in the milliseconds each connect advances the clock;
        // the clock stands still while the burst is spent.
        o.Limits.MessagesPerSecond = 1_000;
        o.Limits.MessageBurst = burst;
        o.Limits.MaxMembersPerRoom = burst + 1; // the most the options allow: a full room's batch of first offers fits the burst
        o.Limits.RateLimitedMessagesBeforeClose = refusalsBeforeClose;
        o.Limits.RateLimitWindow = TimeSpan.FromMinutes(1);
    });

    /// <summary>A room of an admin and <paramref name="others"/> + 1 members; the sender is a member; every bucket full, the clock stopped.</summary>
    private static async Task<(string Sender, List<TicketGrant> Peers)> FullBucketsAsync(EngineHarness h, int others)
    {
        var (admin, _, members) = await h.RoomWithMembersAsync([.. Enumerable.Range(0, others).Select(i => "m" + i)]);
        var sender = members[^1];
        h.Time.Advance(TimeSpan.FromSeconds(1));
        h.Push.Clear();
        return (sender.Connection, [admin, .. members.SkipLast(1).Select(m => m.Grant)]);
    }

    /// <summary>The candidates of every relayed signal, in the order they were pushed.</summary>
    private static List<string> Relayed(EngineHarness h)
        => [.. h.Push.All.Select(p => JsonSerializer.Deserialize(p.Json, TalkiJsonContext.Default.ServerMessage)).OfType<SignalRelayMessage>().Select(m => m.Candidates![0].Candidate)];

    /// <summary>
    /// A room whose admin speaks through the grant path (<see cref="ISignallingEngine.HandleAuthorizedMessageAsync"/>, as on
    /// API Gateway), version 2, with the given members connected and admitted.
    /// </summary>
    private static async Task<(Func<string, Task> Send, TicketGrant Admin, string AdminConnection, List<(TicketGrant Grant, string Connection)> Peers)> GrantRoomAsync(EngineHarness h, params string[] names)
    {
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var adminConnection = h.NewConnectionId();
        var grant = (await h.Engine.ConnectAsync(adminConnection, admin.Ticket.Value)).Value;
        Task Send(string json) => h.Engine.HandleAuthorizedMessageAsync(adminConnection, grant, Encoding.UTF8.GetBytes(json)).AsTask();
        await Send("""{"type":"hello","version":2}""");
        var peers = new List<(TicketGrant, string)>();
        foreach (var name in names)
        {
            var member = await h.JoinAsync(EngineHarness.User(name), admin.Room);
            var connection = await h.ConnectAsync(member, version: 2);
            await Send($$$"""{"type":"admit","member":"{{{member.Member}}}"}""");
            peers.Add((member, connection));
        }

        return (Send, admin, adminConnection, peers);
    }
}
