using System.Globalization;
using System.Net;
using Talki.Signalling.Emulator;
using Talki.Signalling.Http;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Aws.IntegrationTests;

/// <summary>
/// A 4-member call over the AWS path as the counting tests play it: the first user creates the room and admits the
/// others one by one; every pair's offerer offers, the other answers, and each side trickles its candidate messages.
/// </summary>
internal static class MeshOfFour
{
    /// <summary>Runs the call to every relay received; returns the tickets and the sockets (in the users' order).</summary>
    public static async Task<(List<TicketResponse> Tickets, List<AwsSocket> Sockets)> NegotiateAsync(IReadOnlyList<AwsUser> users, int candidateMessagesPerSide)
    {
        var tickets = new List<TicketResponse> { await users[0].TicketAsync("/talki/rooms", HttpStatusCode.Created) };
        var sockets = new List<AwsSocket> { await users[0].ConnectAsync(tickets[0]) };
        for (var i = 1; i < users.Count; i++)
        {
            tickets.Add(await users[i].TicketAsync($"/talki/rooms/{tickets[0].Room}/tickets", HttpStatusCode.OK));
            sockets.Add(await users[i].ConnectAsync(tickets[i]));
            await sockets[0].ExpectAsync<AdmissionRequestMessage>(m => m.Member.Id == tickets[i].Member);
            await sockets[0].SendAsync($$$"""{"type":"admit","member":"{{{tickets[i].Member}}}"}""");
            await sockets[i].ExpectAsync<AdmittedMessage>();
        }

        // Every member learns its peers; the offerer of each pair offers, the other answers, both trickle.
        var plans = new List<(int Self, ConnectToPeerMessage Plan)>();
        for (var i = 0; i < users.Count; i++)
        {
            for (var k = 0; k < users.Count - 1; k++)
            {
                plans.Add((i, await sockets[i].ExpectAsync<ConnectToPeerMessage>()));
            }
        }

        foreach (var (self, plan) in plans.Where(p => p.Plan.Offerer))
        {
            await sockets[self].SendAsync(Signal(plan, "\"description\":{\"type\":\"offer\",\"sdp\":\"v=0 offer\"}"));
        }

        foreach (var (self, plan) in plans.Where(p => !p.Plan.Offerer))
        {
            await sockets[self].ExpectAsync<SignalRelayMessage>(m => m.From == plan.Peer.Id && m.Description?.Type == SdpType.Offer);
            await sockets[self].SendAsync(Signal(plan, "\"description\":{\"type\":\"answer\",\"sdp\":\"v=0 answer\"}"));
        }

        foreach (var (self, plan) in plans)
        {
            for (var c = 0; c < candidateMessagesPerSide; c++)
            {
                await sockets[self].SendAsync(Signal(plan, string.Create(CultureInfo.InvariantCulture, $"\"candidates\":[{{\"candidate\":\"candidate:{c} 1 udp 2122260223 192.0.2.{self} 5000{c} typ host\",\"sdpMid\":\"0\",\"sdpMLineIndex\":0}}]")));
            }
        }

        foreach (var (self, plan) in plans)
        {
            if (plan.Offerer)
            {
                await sockets[self].ExpectAsync<SignalRelayMessage>(m => m.From == plan.Peer.Id && m.Description?.Type == SdpType.Answer);
            }

            for (var c = 0; c < candidateMessagesPerSide; c++)
            {
                await sockets[self].ExpectAsync<SignalRelayMessage>(m => m.From == plan.Peer.Id && m.Candidates is not null);
            }
        }

        return (tickets, sockets);
    }

    /// <summary>
    /// The same call in protocol version 2 (or 3), as the client plays it: each newcomer's admission carries its plan (in
    /// version 3 the admission is its welcome: a waiting member hears nothing before it); it offers to every member listed
    /// (all in one <c>signals</c> message), with the candidates gathered so far, and each answers likewise (the offer's
    /// <c>link</c> tells the receiver its side). No candidate trickles later: the gather window covered them all.
    /// </summary>
    /// <param name="users">The members, the admin first.</param>
    /// <param name="version">The protocol version every member speaks.</param>
    /// <param name="counters">
    /// The emulator's counters: in version 3 the admin admits once the newcomer's hello was handled (nothing answers it), as a
    /// person clicking "admit" does; admitted before it, the newcomer would be welcomed at its hello instead.
    /// </param>
    public static async Task<(List<TicketResponse> Tickets, List<AwsSocket> Sockets)> NegotiateV2Async(IReadOnlyList<AwsUser> users, int version = 2, EmulatorCounters? counters = null)
    {
        var tickets = new List<TicketResponse> { await users[0].TicketAsync("/talki/rooms", HttpStatusCode.Created) };
        var sockets = new List<AwsSocket> { await users[0].ConnectAsync(tickets[0], version: version) };
        Assert.Equal(version, sockets[0].Welcome!.ProtocolVersion);
        for (var i = 1; i < users.Count; i++)
        {
            tickets.Add(await users[i].TicketAsync($"/talki/rooms/{tickets[0].Room}/tickets", HttpStatusCode.OK));
            Assert.Equal(AdmissionStatus.Pending, tickets[i].Status);
            var hellos = counters?.IntegrationCalls("$default") ?? 0;
            sockets.Add(await users[i].ConnectAsync(tickets[i], version: version));
            await sockets[0].ExpectAsync<AdmissionRequestMessage>(m => m.Member.Id == tickets[i].Member);
            if (version == 3 && counters is not null)
            {
                await CallCostTests.WaitAsync(() => counters.IntegrationCalls("$default") > hellos, "the newcomer's hello to be handled");
            }

            await sockets[0].SendAsync($$$"""{"type":"admit","member":"{{{tickets[i].Member}}}"}""");
            IReadOnlyList<PeerLink> links;
            if (version >= 3)
            {
                var welcome = await sockets[i].ExpectAsync<WelcomeMessage>();
                Assert.Equal(AdmissionStatus.Admitted, welcome.Status);
                Assert.Equal(i, welcome.Members.Count);
                links = welcome.Links!;
                Assert.StartsWith("{\"type\":\"welcome\"", sockets[i].AllFrames[0], StringComparison.Ordinal); // nothing came before it
            }
            else
            {
                links = (await sockets[i].ExpectAsync<AdmittedMessage>()).Links!;
            }

            Assert.Equal(i, links.Count);

            // The newcomer's first offers leave together, as the client's offer batch sends them: one 'signals' message
            // when it links up with more than one member.
            var offers = links.Select(link => Entry(link.Peer.Id, link.PeerEpoch, "\"description\":{\"type\":\"offer\",\"sdp\":\"v=0 offer\"}," + Candidates(i))).ToList();
            await sockets[i].SendAsync(offers.Count == 1
                ? $$$"""{"type":"signal",{{{offers[0][1..]}}}"""
                : $$$"""{"type":"signals","signals":[{{{string.Join(',', offers)}}}]}""");
            foreach (var link in links)
            {
                Assert.True(link.Offerer);
                var peer = tickets.FindIndex(t => t.Member == link.Peer.Id);
                var offer = await sockets[peer].ExpectAsync<SignalRelayMessage>(m => m.From == tickets[i].Member && m.Description?.Type == SdpType.Offer);
                Assert.NotNull(offer.Link);
                Assert.NotEqual(link.Polite, offer.Link.Polite);
                await sockets[peer].SendAsync(Signal(offer.From, offer.FromEpoch, "\"description\":{\"type\":\"answer\",\"sdp\":\"v=0 answer\"}," + Candidates(peer)));
                await sockets[i].ExpectAsync<SignalRelayMessage>(m => m.From == link.Peer.Id && m.Description?.Type == SdpType.Answer && m.Candidates is { Count: 2 });
            }
        }

        return (tickets, sockets);
    }

    private static string Candidates(int self) => string.Create(
        CultureInfo.InvariantCulture,
        $"\"candidates\":[{{\"candidate\":\"candidate:0 1 udp 2122260223 192.0.2.{self} 50000 typ host\",\"sdpMid\":\"0\",\"sdpMLineIndex\":0}},{{\"candidate\":\"candidate:1 1 udp 1686052607 198.51.100.{self} 50001 typ srflx raddr 192.0.2.{self} rport 50000\",\"sdpMid\":\"0\",\"sdpMLineIndex\":0}}]");

    private static string Entry(MemberId to, long toEpoch, string body) =>
        $$$"""{"to":"{{{to}}}","toEpoch":{{{toEpoch}}},{{{body}}}}""";

    private static string Signal(MemberId to, long toEpoch, string body) =>
        $$$"""{"type":"signal","to":"{{{to}}}","toEpoch":{{{toEpoch}}},{{{body}}}}""";

    private static string Signal(ConnectToPeerMessage plan, string body) =>
        $$$"""{"type":"signal","to":"{{{plan.Peer.Id}}}","toEpoch":{{{plan.PeerEpoch}}},{{{body}}}}""";
}
