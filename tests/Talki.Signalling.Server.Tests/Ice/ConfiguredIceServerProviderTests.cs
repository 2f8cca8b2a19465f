using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;
using Talki.Signalling.Protocol;
using Talki.Signalling.Server.Ice;

namespace Talki.Signalling.Server.Tests.Ice;

public sealed class ConfiguredIceServerProviderTests
{
    private const string Secret = "north-wind-secret";
    private const string TurnUdp = "turn:turn.example.test:3478?transport=udp";
    private const string TurnsTcp = "turns:turn.example.test:5349?transport=tcp";
    private static readonly IceServer Stun = new() { Urls = ["stun:stun.example.test:3478"] };

    [Fact]
    public void WithoutTurnUrls_OnlyTheConfiguredServers()
    {
        var options = new TalkiSignallingOptions();
        options.IceServers.Add(Stun);
        var provider = new ConfiguredIceServerProvider(Options.Create(options));

        var servers = provider.GetIceServers(Room(new DateTimeOffset(2026, 11, 27, 12, 5, 0, TimeSpan.Zero)), Member("AbCdEfGhIjKlMnOp"));

        Assert.Equal([Stun], servers);
    }

    [Fact]
    public void WithTurnUrls_AppendsOneTurnServer_WithCredentialsExpiringAtSealsAtPlusMargin()
    {
        var options = TurnOptions();
        var provider = new ConfiguredIceServerProvider(Options.Create(options));

        // SealsAt 12:05 UTC + the default margin of 2 h = 2026-11-27T14:05:00Z = 1795788300. Independently:
        //   echo -n '1795788300:AbCdEfGhIjKlMnOp' | openssl dgst -sha1 -hmac north-wind-secret -binary | base64
        var servers = provider.GetIceServers(Room(new DateTimeOffset(2026, 11, 27, 12, 5, 0, TimeSpan.Zero)), Member("AbCdEfGhIjKlMnOp"));

        Assert.Equal(2, servers.Count);
        Assert.Equal(Stun, servers[0]);
        Assert.Equal([TurnUdp, TurnsTcp], servers[1].Urls);
        Assert.Equal("1795788300:AbCdEfGhIjKlMnOp", servers[1].Username);
        Assert.Equal("tJFDM3asoPzngoDZHmWT72ZvXLg=", servers[1].Credential);
    }

    [Fact]
    public void Expiry_FollowsTheConfiguredMargin()
    {
        var options = TurnOptions();
        options.Turn.CredentialMargin = TimeSpan.FromMinutes(30);
        var provider = new ConfiguredIceServerProvider(Options.Create(options));
        var sealsAt = new DateTimeOffset(2026, 11, 27, 12, 5, 0, TimeSpan.Zero);

        var turn = provider.GetIceServers(Room(sealsAt), Member("AbCdEfGhIjKlMnOp"))[^1];

        Assert.Equal($"{sealsAt.AddMinutes(30).ToUnixTimeSeconds()}:AbCdEfGhIjKlMnOp", turn.Username);
        Assert.Equal(IndependentCredential(Secret, turn.Username!), turn.Credential);
    }

    [Fact]
    public void EachMember_GetsItsOwnUsername()
    {
        var provider = new ConfiguredIceServerProvider(Options.Create(TurnOptions()));
        var room = Room(new DateTimeOffset(2026, 11, 27, 12, 5, 0, TimeSpan.Zero));

        var ada = provider.GetIceServers(room, Member("AbCdEfGhIjKlMnOp"))[^1];
        var bob = provider.GetIceServers(room, Member("Zz9_-yXwVuTsRqPo"))[^1];

        Assert.Equal("1795788300:Zz9_-yXwVuTsRqPo", bob.Username);
        Assert.Equal("BWW6Ime+pFUHP2fqRhoZtXQHOkU=", bob.Credential); // computed with openssl as above
        Assert.NotEqual(ada.Credential, bob.Credential);
    }

    [Fact]
    public void TurnUrlsWithoutSecret_CannotBeConstructed()
    {
        var options = new TalkiSignallingOptions();
        options.Turn.Urls.Add(TurnUdp);

        Assert.Throws<InvalidOperationException>(() => new ConfiguredIceServerProvider(Options.Create(options)));
    }

    [Fact]
    public async Task Welcome_CarriesStunAndTurn_WithCredentialsForThatMember()
    {
        using var h = new EngineHarness(Configure);
        var (admin, adminConnection, pending, pendingConnection) = await h.RoomWithPendingMemberAsync();

        foreach (var (grant, connection) in new[] { (admin, adminConnection), (pending, pendingConnection) })
        {
            var welcome = h.Push.Single<WelcomeMessage>(connection);
            Assert.Equal(2, welcome.IceServers.Count);
            Assert.Equal(Stun.Urls, welcome.IceServers[0].Urls);
            Assert.Null(welcome.IceServers[0].Username);
            Assert.Null(welcome.IceServers[0].Credential);
            var turn = welcome.IceServers[1];
            Assert.Equal([TurnUdp, TurnsTcp], turn.Urls);
            var expiresAt = grant.SealsAt + TimeSpan.FromHours(2);
            Assert.Equal($"{expiresAt.ToUnixTimeSeconds()}:{grant.Member}", turn.Username);
            Assert.Equal(IndependentCredential(Secret, turn.Username!), turn.Credential);
        }

        // A member's credentials are its own: they are not valid for another member's username.
        Assert.NotEqual(
            h.Push.Single<WelcomeMessage>(adminConnection).IceServers[1].Credential,
            h.Push.Single<WelcomeMessage>(pendingConnection).IceServers[1].Credential);
    }

    [Fact]
    public async Task Rejoin_WelcomeMintsCredentialsAgain_StillTiedToTheRoomWindow()
    {
        using var h = new EngineHarness(Configure);
        var adminUser = EngineHarness.User("ada");
        var admin = await h.CreateRoomAsync(adminUser);
        var first = h.Push.Single<WelcomeMessage>(await h.ConnectAsync(admin)).IceServers[1];

        h.Time.Advance(TimeSpan.FromMinutes(4)); // late in the join window
        var again = await h.JoinAsync(adminUser, admin.Room);
        var second = h.Push.Single<WelcomeMessage>(await h.ConnectAsync(again)).IceServers[1];

        // The expiry is the room's SealsAt + margin, not "now" + margin: rejoining later in the window neither
        // shortens nor stretches the relay's lifetime, and the credential is recomputed for the same member.
        var expected = $"{(admin.SealsAt + TimeSpan.FromHours(2)).ToUnixTimeSeconds()}:{admin.Member}";
        Assert.Equal(expected, first.Username);
        Assert.Equal(expected, second.Username);
        Assert.Equal(IndependentCredential(Secret, expected), second.Credential);
        Assert.True(DateTimeOffset.FromUnixTimeSeconds(long.Parse(second.Username!.Split(':')[0])) > h.Time.GetUtcNow() + TimeSpan.FromHours(1));
    }

    [Fact]
    public async Task Welcome_WithoutTurn_HasNoCredentials()
    {
        using var h = new EngineHarness(o => o.IceServers.Add(Stun));
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));

        var welcome = h.Push.Single<WelcomeMessage>(await h.ConnectAsync(admin));

        var server = Assert.Single(welcome.IceServers);
        Assert.Null(server.Username);
        Assert.Null(server.Credential);
    }

    private static void Configure(TalkiSignallingOptions o)
    {
        o.IceServers.Add(Stun);
        o.Turn.Urls.Add(TurnUdp);
        o.Turn.Urls.Add(TurnsTcp);
        o.Turn.SharedSecret = Secret;
    }

    private static TalkiSignallingOptions TurnOptions()
    {
        var options = new TalkiSignallingOptions();
        Configure(options);
        return options;
    }

    private static RoomRecord Room(DateTimeOffset sealsAt)
        => new(RoomId.New(), Member("AbCdEfGhIjKlMnOp").Id, sealsAt - TimeSpan.FromMinutes(5), sealsAt, sealsAt + TimeSpan.FromMinutes(10));

    private static MemberRecord Member(string id)
    {
        Assert.True(MemberId.TryParse(id, out var member));
        return new MemberRecord { Room = RoomId.New(), Id = member, UserId = "user-" + id, DisplayName = id };
    }

    /// <summary>The scheme computed with the HMAC class instead of the product's <c>HMACSHA1.HashData</c> call.</summary>
    private static string IndependentCredential(string secret, string username)
    {
#pragma warning disable CA5350 // HMAC-SHA1 is what the TURN REST scheme mandates.
        using var hmac = new HMACSHA1(Encoding.UTF8.GetBytes(secret));
#pragma warning restore CA5350
        return Convert.ToBase64String(hmac.ComputeHash(Encoding.UTF8.GetBytes(username)));
    }
}
