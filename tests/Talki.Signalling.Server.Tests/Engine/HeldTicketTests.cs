using Microsoft.Extensions.DependencyInjection;
using Talki.Signalling.Ports;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Server.Tests.Engine;

/// <summary>
/// A ticket issued with the write that creates (or extends) its member is kept in that member's record, named in the
/// ticket's text (<c>secret.room.member</c>), and taken from it by the connect: no ticket item is written or deleted. What
/// someone with the room's link, a member who sees the others' ids, or a user with two tabs can do to it.
/// </summary>
public sealed class HeldTicketTests
{
    [Fact]
    public async Task CreateAndKnock_KeepTheirTicketsInTheMemberRecord_AndStoreNoTicketItem()
    {
        using var h = new EngineHarness();
        var store = h.Services.GetRequiredService<IRoomStore>();
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var bob = await h.JoinAsync(EngineHarness.User("bob"), admin.Room);

        foreach (var grant in new[] { admin, bob })
        {
            Assert.True(grant.Ticket.TryGetHolder(out var room, out var member));
            Assert.Equal((grant.Room, grant.Member), (room, member));
            Assert.Equal(grant.Ticket.ComputeHash(), (await store.GetMemberAsync(grant.Room, grant.Member))?.TicketHash);
            Assert.Null(await store.ConsumeTicketAsync(grant.Ticket.ComputeHash())); // no item of its own
        }

        await h.ConnectAsync(bob);
        Assert.Null((await store.GetMemberAsync(bob.Room, bob.Member))?.TicketHash); // taken
    }

    [Fact]
    public async Task AForgedSecret_NamingARealMember_IsRefused_AndLeavesTheRealTicketUsable()
    {
        using var h = new EngineHarness();
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var bob = await h.JoinAsync(EngineHarness.User("bob"), admin.Room);

        // Room and member ids are not secrets (the link names the room; members see each other's ids): only the secret is.
        foreach (var victim in new[] { admin, bob })
        {
            var forged = TicketId.New(victim.Room, victim.Member).Value;
            Assert.Equal(SignallingErrorCode.TicketInvalid, (await h.Engine.AuthorizeAsync(forged)).Error?.Code);
        }

        // The right secret under another member's or room's name does not open anything either.
        var secret = bob.Ticket.Value[..TicketId.Length];
        Assert.Equal(SignallingErrorCode.TicketInvalid, (await h.Engine.AuthorizeAsync($"{secret}.{admin.Room}.{admin.Member}")).Error?.Code);
        var other = await h.CreateRoomAsync(EngineHarness.User("eve"));
        Assert.Equal(SignallingErrorCode.TicketInvalid, (await h.Engine.AuthorizeAsync($"{secret}.{other.Room}.{bob.Member}")).Error?.Code);
        Assert.Equal(SignallingErrorCode.TicketInvalid, (await h.Engine.AuthorizeAsync(secret)).Error?.Code); // the secret alone

        Assert.True((await h.Engine.AuthorizeAsync(admin.Ticket.Value)).IsSuccess);
        Assert.True((await h.Engine.AuthorizeAsync(bob.Ticket.Value)).IsSuccess);
    }

    [Theory]
    [InlineData(".")]
    [InlineData(".room")]
    [InlineData(".room.")]
    [InlineData("..member")]
    [InlineData(".room.member.extra")]
    [InlineData(".ro/om.member")]
    [InlineData(".room.mem ber")]
    public async Task MalformedHolderNames_AreRefusedAsInvalid_AndTouchNoRecord(string tail)
    {
        using var h = new EngineHarness();
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var text = admin.Ticket.Value[..TicketId.Length] + tail;

        Assert.False(TicketId.TryParse(text, out _));
        Assert.Equal(SignallingErrorCode.TicketInvalid, (await h.Engine.AuthorizeAsync(text)).Error?.Code);
        Assert.True((await h.Engine.AuthorizeAsync(admin.Ticket.Value)).IsSuccess);
    }

    [Fact]
    public async Task AKnocksNewerTicket_ReplacesItsOlderOne()
    {
        using var h = new EngineHarness();
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var firstTab = await h.JoinAsync(EngineHarness.User("bob"), admin.Room);
        h.Time.Advance(TimeSpan.FromSeconds(1));
        var secondTab = await h.JoinAsync(EngineHarness.User("bob"), admin.Room);
        Assert.Equal(firstTab.Member, secondTab.Member);
        Assert.True(secondTab.Ticket.TryGetHolder(out _, out _)); // written with the knock's extension

        Assert.Equal(SignallingErrorCode.TicketInvalid, (await h.Engine.AuthorizeAsync(firstTab.Ticket.Value)).Error?.Code);
        Assert.True((await h.Engine.AuthorizeAsync(secondTab.Ticket.Value)).IsSuccess);
        Assert.Equal(SignallingErrorCode.TicketInvalid, (await h.Engine.AuthorizeAsync(secondTab.Ticket.Value)).Error?.Code);
    }

    [Fact]
    public async Task AKnockAdmittedBeforeItConnects_StillConnectsWithItsTicket_Once()
    {
        using var h = new EngineHarness();
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var adminConnection = await h.ConnectAsync(admin);
        var bob = await h.JoinAsync(EngineHarness.User("bob"), admin.Room); // knocks, not connected

        await h.SendAsync(adminConnection, $$$"""{"type":"admit","member":"{{{bob.Member}}}"}""");
        var store = h.Services.GetRequiredService<IRoomStore>();
        Assert.Equal(AdmissionStatus.Admitted, (await store.GetMemberAsync(bob.Room, bob.Member))?.Admission);

        var bobConnection = h.NewConnectionId();
        Assert.True((await h.Engine.ConnectAsync(bobConnection, bob.Ticket.Value)).IsSuccess);
        Assert.Equal(SignallingErrorCode.TicketInvalid, (await h.Engine.ConnectAsync(h.NewConnectionId(), bob.Ticket.Value)).Error?.Code);
    }

    [Fact]
    public async Task AnAdmittedMembersReconnectTickets_AreKeptApart_AndEachWorksOnce()
    {
        using var h = new EngineHarness();
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var adminConnection = await h.ConnectAsync(admin);
        var bob = await h.JoinAsync(EngineHarness.User("bob"), admin.Room);
        await h.ConnectAsync(bob);
        await h.SendAsync(adminConnection, $$$"""{"type":"admit","member":"{{{bob.Member}}}"}""");
        var first = await h.JoinAsync(EngineHarness.User("bob"), admin.Room);
        var second = await h.JoinAsync(EngineHarness.User("bob"), admin.Room);

        // No member write is made for them, so they are items of their own (two tabs may both hold one).
        Assert.False(first.Ticket.TryGetHolder(out _, out _));
        Assert.Equal(TicketId.Length, second.Ticket.Value.Length);
        Assert.Equal(bob.Member, first.Member);

        Assert.True((await h.Engine.AuthorizeAsync(first.Ticket.Value)).IsSuccess);
        Assert.True((await h.Engine.AuthorizeAsync(second.Ticket.Value)).IsSuccess);
        Assert.Equal(SignallingErrorCode.TicketInvalid, (await h.Engine.AuthorizeAsync(first.Ticket.Value)).Error?.Code);
    }

    [Fact]
    public async Task AnExpiredHeldTicket_OfALiveMember_IsRefusedAsExpired_AndIsSpent()
    {
        using var h = new EngineHarness();
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        h.Time.Advance(admin.ExpiresAt - h.Time.GetUtcNow());

        Assert.Equal(SignallingErrorCode.TicketExpired, (await h.Engine.AuthorizeAsync(admin.Ticket.Value)).Error?.Code);
        Assert.Equal(SignallingErrorCode.TicketInvalid, (await h.Engine.AuthorizeAsync(admin.Ticket.Value)).Error?.Code);
    }

    [Fact]
    public async Task AKeptTicket_OnTheRealClock_WorksWithinItsLifetime_AndIsExpiredAfterIt()
    {
        using var h = new EngineHarness(o => o.TicketLifetime = TimeSpan.FromSeconds(1), clock: TimeProvider.System);
        var early = await h.Engine.CreateRoomAsync(EngineHarness.User("ada"));
        var late = await h.Engine.CreateRoomAsync(EngineHarness.User("bob"));
        var issued = TimeProvider.System.GetUtcNow();

        Assert.True((await h.Engine.AuthorizeAsync(early.Value.Ticket.Value)).IsSuccess); // at once
        await Task.Delay(TimeSpan.FromMilliseconds(1_200));
        var refused = await h.Engine.AuthorizeAsync(late.Value.Ticket.Value);

        Assert.True(TimeProvider.System.GetUtcNow() - issued >= TimeSpan.FromSeconds(1));
        Assert.Equal(SignallingErrorCode.TicketExpired, refused.Error?.Code);
        Assert.Equal(SignallingErrorCode.TicketInvalid, (await h.Engine.AuthorizeAsync(late.Value.Ticket.Value)).Error?.Code);
    }

    [Fact]
    public async Task HeldTicket_GrantsTheMembersNextEpoch_AndTheConnectionBindsOnItsHello()
    {
        using var h = new EngineHarness();
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));

        var (connection, grant) = await h.ConnectTwoPhaseAsync(admin);

        Assert.Equal((admin.Room, admin.Member, 1L), (grant.Room, grant.Member, grant.Epoch));
        var welcome = h.Push.Single<WelcomeMessage>(connection);
        Assert.Equal(admin.Member, welcome.You.Id);
    }
}
