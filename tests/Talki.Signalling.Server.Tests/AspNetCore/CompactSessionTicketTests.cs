using System.Buffers.Text;
using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using CsCheck;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Talki.Signalling.Server.AspNetCore;

namespace Talki.Signalling.Server.Tests.AspNetCore;

/// <summary>
/// The in-process session table keeps Talki's own sessions in <see cref="CompactSessionTicket"/>'s encoding: it must
/// rebuild exactly the ticket the standard serializer would, take no other ticket, and turn any bad input into "no
/// session", never an exception.
/// </summary>
public sealed class CompactSessionTicketTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 1, 15, 30, 0, TimeSpan.Zero);

    [Theory]
    [InlineData("anon:0123456789abcdefghijkl", "Ada", false, TalkiAuthenticationDefaults.CookieScheme)]
    [InlineData("google:109876543210987654321", "Grace Hopper ✓", true, TalkiAuthenticationDefaults.BearerScheme)]
    public void TalkisOwnSession_RoundTrips_ToWhatTheStandardSerializerWrites_InAQuarterOfTheBytes(string userId, string name, bool verified, string scheme)
    {
        var ticket = Session(userId, name, verified, scheme, Now);

        Assert.True(CompactSessionTicket.TryWrite(ticket, out var compact));
        var standard = TicketSerializer.Default.Serialize(ticket);
        Assert.Equal(CompactSessionTicket.Marker, compact[0]);
        Assert.True(compact.Length * 3 < standard.Length, $"compact {compact.Length} B against standard {standard.Length} B");
        AssertSameTicket(ticket, CompactSessionTicket.Read(compact));
    }

    [Fact]
    public void AnySession_WithAnyNamesFlagsAndDates_RoundTripsExactly()
    {
        var lone = Gen.Char['\uD800', '\uDFFF'].Select(c => c.ToString());
        var text = Gen.Frequency((4, Gen.String[Gen.Char.AlphaNumeric, 1, 40]), (1, Gen.String[1, 300]), (1, Gen.Select(Gen.String[0, 5], lone, (a, b) => a + b)));
        var seconds = Gen.Long[0, 253_402_300_799L]; // 0001-01-01 to 9999-12-31, whole seconds as the properties keep them
        var refresh = Gen.Int[0, 2].Select(i => i == 0 ? (bool?)null : i == 1);
        Gen.Select(text, text, Gen.Bool, Gen.Bool, refresh, seconds, seconds).Sample((userId, name, verified, persistent, allowRefresh, issued, expires) =>
        {
            var ticket = Session(userId, name, verified, TalkiAuthenticationDefaults.CookieScheme, DateTimeOffset.UnixEpoch, persistent, allowRefresh);
            ticket.Properties.IssuedUtc = DateTimeOffset.MinValue.AddSeconds(issued);
            ticket.Properties.ExpiresUtc = DateTimeOffset.MinValue.AddSeconds(expires);
            if (!CompactSessionTicket.TryWrite(ticket, out var compact))
            {
                // Only a string the UTF-8 encoder refuses (a lone surrogate) or longer than 65,535 bytes is not taken.
                Assert.True(HasLoneSurrogate(userId) || HasLoneSurrogate(name), $"not taken: '{userId}', '{name}'");
                return;
            }

            AssertSameTicket(ticket, CompactSessionTicket.Read(compact));
        }, iter: 2_000);
    }

    public static TheoryData<string> OtherTickets => new()
    {
        "an extra claim",
        "another issuer",
        "a claim property",
        "an actor",
        "another item",
        "two identities",
        "no expiry",
        "a verified flag that is not true or false",
        "claims in another order",
        "a role claim type of its own",
    };

    [Theory]
    [MemberData(nameof(OtherTickets))]
    public void AnyOtherTicket_IsNotTaken_AndKeepsTheStandardFormat(string difference)
    {
        var ticket = Session("anon:x", "Ada", false, TalkiAuthenticationDefaults.CookieScheme, Now);
        var identity = (ClaimsIdentity)ticket.Principal.Identity!;
        switch (difference)
        {
            case "an extra claim":
                identity.AddClaim(new Claim(ClaimTypes.Email, "ada@example.com"));
                break;
            case "another issuer":
                ticket = Replace(ticket, 1, new Claim(ClaimTypes.Name, "Ada", ClaimValueTypes.String, "https://accounts.google.com"));
                break;
            case "a claim property":
                identity.Claims.First().Properties["k"] = "v";
                break;
            case "an actor":
                identity.Actor = new ClaimsIdentity("other");
                break;
            case "another item":
                ticket.Properties.Items["custom"] = "x";
                break;
            case "two identities":
                ticket.Principal.AddIdentity(new ClaimsIdentity("second"));
                break;
            case "no expiry":
                ticket.Properties.ExpiresUtc = null;
                break;
            case "a verified flag that is not true or false":
                ticket = Replace(ticket, 2, new Claim(TalkiAuthenticationDefaults.VerifiedClaimType, "maybe"));
                break;
            case "claims in another order":
                ticket = new AuthenticationTicket(
                    new ClaimsPrincipal(new ClaimsIdentity(identity.Claims.Reverse().Select(c => new Claim(c.Type, c.Value)), identity.AuthenticationType)),
                    ticket.Properties,
                    ticket.AuthenticationScheme);
                break;
            case "a role claim type of its own":
                ticket = new AuthenticationTicket(
                    new ClaimsPrincipal(new ClaimsIdentity(identity.Claims.Select(c => new Claim(c.Type, c.Value)), identity.AuthenticationType, ClaimTypes.Name, "roles")),
                    ticket.Properties,
                    ticket.AuthenticationScheme);
                break;
        }

        Assert.False(CompactSessionTicket.TryWrite(ticket, out _), difference);
    }

    [Fact]
    public void AnyBytesAfterTheMarker_ReadAsNoSessionOrASession_NeverAnException()
    {
        Gen.Byte.Array[0, 120].Sample(tail =>
        {
            var bytes = new byte[tail.Length + 1];
            bytes[0] = CompactSessionTicket.Marker;
            tail.CopyTo(bytes, 1);
            _ = CompactSessionTicket.Read(bytes); // must not throw
        }, iter: 20_000);
    }

    [Fact]
    public void ATruncatedOrExtendedOrAlteredEncoding_ReadsAsNoSession()
    {
        Assert.True(CompactSessionTicket.TryWrite(Session("anon:x", "Ada", true, TalkiAuthenticationDefaults.CookieScheme, Now), out var compact));
        for (var length = 0; length < compact.Length; length++)
        {
            Assert.Null(CompactSessionTicket.Read(compact.AsSpan(0, length)));
        }

        Assert.Null(CompactSessionTicket.Read([.. compact, 0]));

        var unknownFlag = compact.ToArray();
        unknownFlag[1] |= 0x80;
        Assert.Null(CompactSessionTicket.Read(unknownFlag));

        var badDate = compact.ToArray();
        BitConverter.GetBytes(long.MaxValue).CopyTo(badDate, 10);
        Assert.Null(CompactSessionTicket.Read(badDate));

        var badUtf8 = compact.ToArray();
        badUtf8[^1] = 0xFF; // the display name's last byte
        Assert.Null(CompactSessionTicket.Read(badUtf8));
    }

    [Fact]
    public async Task TheInProcessTable_KeepsTheCompactForm_AndASharedCacheTheStandardOne_AndBothReadBack()
    {
        var clock = new FakeTimeProvider(Now);
        var memory = new MemoryDistributedCache(Options.Create(new MemoryDistributedCacheOptions()));
        var shared = new SharedCache(new MemoryDistributedCache(Options.Create(new MemoryDistributedCacheOptions())));
        var options = Options.Create(new TalkiSignallingOptions());
        var ticket = Session("anon:0123456789abcdefghijkl", "Ada", false, TalkiAuthenticationDefaults.CookieScheme, Now);

        // With the in-process cache (no shared one registered) the sessions go to the store's own table, not into the cache.
        var inProcess = new DistributedSessionStore(memory, clock, options);
        var key = await inProcess.StoreAsync(ticket);
        Assert.Null(await memory.GetAsync(DistributedSessionStore.KeyPrefix + Base64Url.EncodeToString(SHA256.HashData(Encoding.UTF8.GetBytes(key)))));
        var stored = inProcess.Local!.Get(InProcessSessionTable.DigestOf(key));
        Assert.NotNull(stored);
        Assert.Equal(CompactSessionTicket.Marker, stored[0]);
        AssertSameTicket(ticket, await inProcess.RetrieveAsync(key));

        var distributed = new DistributedSessionStore(shared, clock, options);
        Assert.Null(distributed.Local);
        var sharedKey = await distributed.StoreAsync(ticket);
        Assert.Equal(TicketSerializer.Default.Serialize(ticket), Assert.Single(shared.Values));
        AssertSameTicket(ticket, await distributed.RetrieveAsync(sharedKey));

        // A session in the standard format in the in-process cache (any ticket the compact form does not take) reads back too.
        ticket.Properties.Items["custom"] = "x";
        var otherKey = await inProcess.StoreAsync(ticket);
        AssertSameTicket(ticket, await inProcess.RetrieveAsync(otherKey));
    }

    internal static AuthenticationTicket Session(string userId, string name, bool verified, string scheme, DateTimeOffset now, bool persistent = true, bool? allowRefresh = false)
    {
        // As TalkiHttpApi.StartSessionAsync and GoogleSignInApi build it.
        var identity = new ClaimsIdentity(
            [
                new Claim(ClaimTypes.NameIdentifier, userId),
                new Claim(ClaimTypes.Name, name),
                new Claim(TalkiAuthenticationDefaults.VerifiedClaimType, verified ? "true" : "false"),
            ],
            TalkiAuthenticationDefaults.CookieScheme);
        var properties = new AuthenticationProperties { IsPersistent = persistent, AllowRefresh = allowRefresh, IssuedUtc = now, ExpiresUtc = now + TimeSpan.FromHours(24) };
        return new AuthenticationTicket(new ClaimsPrincipal(identity), properties, scheme);
    }

    private static AuthenticationTicket Replace(AuthenticationTicket ticket, int index, Claim claim)
    {
        var identity = (ClaimsIdentity)ticket.Principal.Identity!;
        var claims = identity.Claims.Select(c => new Claim(c.Type, c.Value, c.ValueType, c.Issuer)).ToList();
        claims[index] = claim;
        return new AuthenticationTicket(new ClaimsPrincipal(new ClaimsIdentity(claims, identity.AuthenticationType)), ticket.Properties, ticket.AuthenticationScheme);
    }

    /// <summary>The same ticket: the standard serializer writes the same bytes for both.</summary>
    private static void AssertSameTicket(AuthenticationTicket expected, AuthenticationTicket? actual)
    {
        Assert.NotNull(actual);
        Assert.Equal(TicketSerializer.Default.Serialize(expected), TicketSerializer.Default.Serialize(actual));
    }

    private static bool HasLoneSurrogate(string text)
    {
        for (var i = 0; i < text.Length; i++)
        {
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                i++;
            }
            else if (char.IsSurrogate(text[i]))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Any cache other than the in-process one (as Redis is to the store): records what is written.</summary>
    private sealed class SharedCache(IDistributedCache inner) : IDistributedCache
    {
        public List<byte[]> Values { get; } = [];

        public byte[]? Get(string key) => inner.Get(key);

        public Task<byte[]?> GetAsync(string key, CancellationToken token = default) => inner.GetAsync(key, token);

        public void Refresh(string key) => inner.Refresh(key);

        public Task RefreshAsync(string key, CancellationToken token = default) => inner.RefreshAsync(key, token);

        public void Remove(string key) => inner.Remove(key);

        public Task RemoveAsync(string key, CancellationToken token = default) => inner.RemoveAsync(key, token);

        public void Set(string key, byte[] value, DistributedCacheEntryOptions options)
        {
            Values.Add(value);
            inner.Set(key, value, options);
        }

        public Task SetAsync(string key, byte[] value, DistributedCacheEntryOptions options, CancellationToken token = default)
        {
            Values.Add(value);
            return inner.SetAsync(key, value, options, token);
        }
    }
}
