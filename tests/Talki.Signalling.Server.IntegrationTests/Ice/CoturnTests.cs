using System.Net;
using Microsoft.Extensions.Options;
using Talki.Signalling.Protocol;
using Talki.Signalling.Server.Ice;

namespace Talki.Signalling.Server.IntegrationTests.Ice;

/// <summary>The SDK's TURN REST credentials against a real coturn (<c>use-auth-secret</c>) on 127.0.0.1.</summary>
public sealed class CoturnTests(CoturnFixture coturn) : IClassFixture<CoturnFixture>
{
    [Fact]
    public async Task CredentialsInTheWelcome_AllocateARelay()
    {
        await using var host = await TestHost.StartAsync(o =>
        {
            o.IceServers.Add(new IceServer { Urls = ["stun:127.0.0.1:3478"] });
            o.Turn.Urls.Add(coturn.TurnUrl);
            o.Turn.SharedSecret = coturn.SharedSecret;
        });
        using var ada = await host.SignInAsync("Ada");
        var ticket = await ada.CreateRoomAsync();
        await using var socket = await ada.ConnectAsync(ticket);

        var turn = Assert.Single(socket.Welcome!.IceServers, s => s.Username is not null);
        Assert.Equal([coturn.TurnUrl], turn.Urls);
        Assert.EndsWith(":" + ticket.Member, turn.Username, StringComparison.Ordinal);
        var allocation = await AllocateAsync(EndpointOf(turn.Urls[0]), turn.Username!, turn.Credential!);

        AssertRelayed(allocation);
    }

    [Fact]
    public async Task CredentialsFromTheProvider_AllocateARelay()
    {
        var turn = ProviderTurnServer(sealsAt: Now() + TimeSpan.FromMinutes(5), margin: TimeSpan.FromMinutes(1), out _);

        AssertRelayed(await AllocateAsync(EndpointOf(turn.Urls[0]), turn.Username!, turn.Credential!));
    }

    [Fact]
    public async Task ExpiredCredentials_AreRefused()
    {
        // A room that sealed 3 h ago, with the default 2 h margin: its members' credentials have expired.
        var fromProvider = ProviderTurnServer(sealsAt: Now() - TimeSpan.FromHours(3), margin: TimeSpan.FromHours(2), out _);
        var member = MemberId.New();
        var justExpired = TurnRestCredentials.Mint(coturn.SharedSecret, member, Now() - TimeSpan.FromMinutes(1));
        var stillValid = TurnRestCredentials.Mint(coturn.SharedSecret, member, Now() + TimeSpan.FromMinutes(1));

        Assert.Equal(401, (await AllocateAsync(coturn.Endpoint, fromProvider.Username!, fromProvider.Credential!)).ErrorCode);
        Assert.Equal(401, (await AllocateAsync(coturn.Endpoint, justExpired.Username, justExpired.Credential)).ErrorCode);
        AssertRelayed(await AllocateAsync(coturn.Endpoint, stillValid.Username, stillValid.Credential)); // only the expiry differed
    }

    [Fact]
    public async Task ForgedCredentials_AreRefused()
    {
        var genuine = ProviderTurnServer(sealsAt: Now() + TimeSpan.FromMinutes(5), margin: TimeSpan.FromHours(2), out var member);
        var wrongSecret = TurnRestCredentials.ComputeCredential("not-" + coturn.SharedSecret, genuine.Username!);
        var otherMember = TurnRestCredentials.CreateUsername(Now() + TimeSpan.FromHours(2), MemberId.New());
        var longerExpiry = TurnRestCredentials.CreateUsername(Now() + TimeSpan.FromDays(30), member);

        Assert.Equal(401, (await AllocateAsync(coturn.Endpoint, genuine.Username!, wrongSecret)).ErrorCode);
        Assert.Equal(401, (await AllocateAsync(coturn.Endpoint, genuine.Username!, Convert.ToBase64String(new byte[20]))).ErrorCode);
        Assert.Equal(401, (await AllocateAsync(coturn.Endpoint, otherMember, genuine.Credential!)).ErrorCode); // someone else's name
        Assert.Equal(401, (await AllocateAsync(coturn.Endpoint, longerExpiry, genuine.Credential!)).ErrorCode); // a stretched expiry

        AssertRelayed(await AllocateAsync(coturn.Endpoint, genuine.Username!, genuine.Credential!)); // and the genuine one works
    }

    private static DateTimeOffset Now() => TimeProvider.System.GetUtcNow();

    private static IPEndPoint EndpointOf(string turnUrl)
    {
        Assert.StartsWith("turn:", turnUrl, StringComparison.Ordinal);
        return IPEndPoint.Parse(turnUrl["turn:".Length..].Split('?')[0]);
    }

    private static async Task<TurnAllocation> AllocateAsync(IPEndPoint server, string username, string password)
    {
        using var client = new TurnTestClient(server, TimeSpan.FromSeconds(10));
        return await client.AllocateAsync(username, password);
    }

    private IceServer ProviderTurnServer(DateTimeOffset sealsAt, TimeSpan margin, out MemberId member)
    {
        var options = new TalkiSignallingOptions();
        options.Turn.Urls.Add(coturn.TurnUrl);
        options.Turn.SharedSecret = coturn.SharedSecret;
        options.Turn.CredentialMargin = margin;
        member = MemberId.New();
        var room = new RoomRecord(RoomId.New(), member, sealsAt - TimeSpan.FromMinutes(5), sealsAt, sealsAt + TimeSpan.FromMinutes(10));
        var self = new MemberRecord { Room = room.Id, Id = member, UserId = "user-ada", DisplayName = "Ada", IsAdmin = true, Admission = AdmissionStatus.Admitted };
        var turn = new ConfiguredIceServerProvider(Options.Create(options)).GetIceServers(room, self).Single();
        Assert.Equal($"{(sealsAt + margin).ToUnixTimeSeconds()}:{member}", turn.Username);
        return turn;
    }

    private void AssertRelayed(TurnAllocation allocation)
    {
        Assert.True(allocation.RelayedAddress is not null, $"{allocation}\ncoturn's output:\n{coturn.Log}");
        Assert.Equal(IPAddress.Loopback, allocation.RelayedAddress.Address);
        Assert.InRange(allocation.RelayedAddress.Port, coturn.MinRelayPort, coturn.MaxRelayPort);
    }
}
