using Talki.Signalling.Protocol;
using Talki.Signalling.Server.Engine;
using Talki.Signalling.Server.Storage;
using Microsoft.Extensions.DependencyInjection;

namespace Talki.Signalling.Server.Tests.Engine;

public sealed class RoomAndTicketTests
{
    [Fact]
    public async Task CreateRoom_CallerBecomesAdmin_WithTicketAndDefaultFiveMinuteWindow()
    {
        using var h = new EngineHarness();
        var grant = await h.CreateRoomAsync(EngineHarness.User("ada"));

        Assert.True(grant.IsAdmin);
        Assert.Equal(h.Time.GetUtcNow() + TimeSpan.FromMinutes(5), grant.SealsAt);
        Assert.Equal(h.Time.GetUtcNow() + TimeSpan.FromSeconds(30), grant.ExpiresAt);
        var admin = await h.Services.GetRequiredService<InMemoryRoomStore>().GetMemberAsync(grant.Room, grant.Member);
        Assert.NotNull(admin);
        Assert.True(admin.IsAdmin);
        Assert.Equal(AdmissionStatus.Admitted, admin.Admission);
    }

    [Fact]
    public async Task CreateRoom_ConfiguredWindow_IsUsed()
    {
        using var h = new EngineHarness(o => o.JoinWindow = TimeSpan.FromMinutes(2));
        var grant = await h.CreateRoomAsync(EngineHarness.User("ada"));
        Assert.Equal(h.Time.GetUtcNow() + TimeSpan.FromMinutes(2), grant.SealsAt);
    }

    [Fact]
    public async Task Ticket_HasAtLeast128RandomBits_AndIsStoredOnlyAsHash()
    {
        using var h = new EngineHarness();
        var grants = new List<TicketGrant>();
        for (var i = 0; i < 50; i++)
        {
            grants.Add(await h.CreateRoomAsync(EngineHarness.User("u" + i)));
        }

        // 256 bits base64url, then the record that keeps it: secret.room.member.
        Assert.All(grants, g => Assert.Equal($"{g.Room}.{g.Member}", g.Ticket.Value[(TicketId.Length + 1)..]));
        Assert.Equal(50, grants.Select(g => g.Ticket.Value[..TicketId.Length]).Distinct().Count());
        var store = h.Services.GetRequiredService<InMemoryRoomStore>();
        foreach (var grant in grants)
        {
            // The admin's record keeps the ticket's hash, never the ticket; no item of its own is stored for it.
            var admin = await store.GetMemberAsync(grant.Room, grant.Member);
            Assert.Equal(grant.Ticket.ComputeHash(), admin!.TicketHash);
            Assert.DoesNotContain(grant.Ticket.Value[..TicketId.Length], admin.TicketHash!, StringComparison.Ordinal);
            Assert.Null(await store.ConsumeTicketAsync(grant.Ticket.ComputeHash()));
            Assert.DoesNotContain(grant.Ticket.Value, grant.Ticket.ToString(), StringComparison.Ordinal);
            Assert.Null(await ((Talki.Signalling.Ports.IRoomStore)store).TakeMemberTicketAsync(grant.Room, grant.Member, grant.Ticket.Value)); // by its hash only
            Assert.Equal(grant.Member, (await ((Talki.Signalling.Ports.IRoomStore)store).TakeMemberTicketAsync(grant.Room, grant.Member, grant.Ticket.ComputeHash()))?.Id);
        }
    }

    [Fact]
    public async Task Connect_TicketUsedTwice_SecondIsRefused()
    {
        using var h = new EngineHarness();
        var grant = await h.CreateRoomAsync(EngineHarness.User("ada"));
        Assert.True((await h.Engine.ConnectAsync("c1", grant.Ticket.Value)).IsSuccess);

        var replay = await h.Engine.ConnectAsync("c2", grant.Ticket.Value);
        Assert.Equal(SignallingErrorCode.TicketInvalid, replay.Error?.Code);
    }

    [Fact]
    public async Task Connect_ConcurrentUsesOfOneTicket_ExactlyOneWins()
    {
        using var h = new EngineHarness();
        var grant = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var attempts = await Task.WhenAll(Enumerable.Range(0, 64).Select(i => Task.Run(async () => await h.Engine.ConnectAsync("c" + i, grant.Ticket.Value))));
        Assert.Equal(1, attempts.Count(a => a.IsSuccess));
        Assert.All(attempts.Where(a => !a.IsSuccess), a => Assert.Equal(SignallingErrorCode.TicketInvalid, a.Error!.Code));
    }

    [Fact]
    public async Task Connect_AfterThirtySeconds_TicketExpired()
    {
        using var h = new EngineHarness();
        var grant = await h.CreateRoomAsync(EngineHarness.User("ada"));
        h.Time.Advance(TimeSpan.FromSeconds(30));
        var result = await h.Engine.ConnectAsync("c1", grant.Ticket.Value);
        Assert.Equal(SignallingErrorCode.TicketExpired, result.Error?.Code);
    }

    [Fact]
    public async Task Connect_JustBeforeExpiry_Succeeds()
    {
        using var h = new EngineHarness();
        var grant = await h.CreateRoomAsync(EngineHarness.User("ada"));
        h.Time.Advance(TimeSpan.FromSeconds(29.9));
        Assert.True((await h.Engine.ConnectAsync("c1", grant.Ticket.Value)).IsSuccess);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("short")]
    [InlineData("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")]
    [InlineData("not base64 url !!!!!!!!!!!!!!!!!!!!!!!!!!!!")]
    public async Task Connect_ForgedOrMalformedTicket_IsRefused(string? ticket)
    {
        using var h = new EngineHarness();
        _ = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var result = await h.Engine.ConnectAsync("c1", ticket);
        Assert.Equal(SignallingErrorCode.TicketInvalid, result.Error?.Code);
    }

    [Fact]
    public async Task Join_UnknownRoom_RoomNotFound()
    {
        using var h = new EngineHarness();
        var result = await h.Engine.IssueJoinTicketAsync(EngineHarness.User("bob"), RoomId.New());
        Assert.Equal(SignallingErrorCode.RoomNotFound, result.Error?.Code);
    }

    [Fact]
    public async Task Join_AfterWindow_RoomSealed()
    {
        using var h = new EngineHarness();
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        h.Time.Advance(TimeSpan.FromMinutes(5));
        var result = await h.Engine.IssueJoinTicketAsync(EngineHarness.User("bob"), admin.Room);
        Assert.Equal(SignallingErrorCode.RoomSealed, result.Error?.Code);
    }

    [Fact]
    public async Task Connect_TicketIssuedBeforeSealUsedAfter_RoomSealed()
    {
        using var h = new EngineHarness(o => o.TicketLifetime = TimeSpan.FromMinutes(10));
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        h.Time.Advance(TimeSpan.FromMinutes(4.5));
        var grant = await h.JoinAsync(EngineHarness.User("bob"), admin.Room);
        h.Time.Advance(TimeSpan.FromMinutes(1));
        var result = await h.Engine.ConnectAsync("c1", grant.Ticket.Value);
        Assert.Equal(SignallingErrorCode.RoomSealed, result.Error?.Code);
    }

    [Fact]
    public async Task Join_AfterRetention_RoomNotFound()
    {
        using var h = new EngineHarness();
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        h.Time.Advance(TimeSpan.FromMinutes(5) + TimeSpan.FromMinutes(10));
        var result = await h.Engine.IssueJoinTicketAsync(EngineHarness.User("bob"), admin.Room);
        Assert.Equal(SignallingErrorCode.RoomNotFound, result.Error?.Code);
    }

    [Fact]
    public async Task Join_SameUserTwice_KeepsMemberId()
    {
        using var h = new EngineHarness();
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var bob = EngineHarness.User("bob");
        var first = await h.JoinAsync(bob, admin.Room);
        var second = await h.JoinAsync(bob, admin.Room);
        Assert.Equal(first.Member, second.Member);
        Assert.NotEqual(first.Ticket, second.Ticket);
    }

    [Fact]
    public async Task Join_HundredConcurrentUsers_LoseNobody()
    {
        using var h = new EngineHarness(o => o.Limits.MaxPendingPerRoom = 100);
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var grants = await Task.WhenAll(Enumerable.Range(0, 100).Select(i => Task.Run(async () => await h.JoinAsync(EngineHarness.User("u" + i), admin.Room))));
        var members = await h.Services.GetRequiredService<InMemoryRoomStore>().ListMembersAsync(admin.Room);
        Assert.Equal(101, members.Count);
        Assert.Equal(100, grants.Select(g => g.Member).Distinct().Count());
    }

    [Fact]
    public async Task Connect_StoresConnectionBindingWithNewEpoch()
    {
        using var h = new EngineHarness();
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var first = await h.Engine.ConnectAsync("c1", admin.Ticket.Value);
        var again = await h.JoinAsync(EngineHarness.User("ada"), admin.Room);
        var second = await h.Engine.ConnectAsync("c2", again.Ticket.Value);
        Assert.Equal(1, first.Value.Epoch);
        Assert.Equal(2, second.Value.Epoch);
        Assert.True(h.Push.WasClosed("c1"));
    }
}
