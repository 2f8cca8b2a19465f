using System.Collections;
using System.Reflection;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Server.Tests.DependencyInjection;

/// <summary><c>BindConfiguration(section)</c>: every option binds from configuration, and a bad value is a listed start-up failure.</summary>
public sealed class BindConfigurationTests
{
    private static readonly Dictionary<string, string?> EveryOption = new()
    {
        ["Talki:JoinWindow"] = "00:02:00",
        ["Talki:TicketLifetime"] = "00:00:20",
        ["Talki:SealedRoomRetention"] = "00:03:00",
        ["Talki:SealRoomsOnTimer"] = "false",
        ["Talki:ResumeGracePeriod"] = "00:00:45",
        ["Talki:MaxDisplayNameLength"] = "40",
        ["Talki:MinimumProtocolVersion"] = "2",
        ["Talki:IceServers:0"] = "stun:stun.example.org:3478",
        ["Talki:IceServers:1:Urls:0"] = "turn:turn.example.org:3478",
        ["Talki:IceServers:1:Username"] = "user",
        ["Talki:IceServers:1:Credential"] = "secret",
        ["Talki:Limits:MaxMembersPerRoom"] = "6",
        ["Talki:Limits:RoomsPerSessionPerHour"] = "7",
        ["Talki:Limits:KnocksPerUserPerMinute"] = "9",
        ["Talki:Limits:ReconnectsPerUserPerMinute"] = "11",
        ["Talki:Limits:MaxPendingPerRoom"] = "12",
        ["Talki:Limits:SignInsPerAddressPerMinute"] = "25",
        ["Talki:Limits:MessagesPerSecond"] = "40",
        ["Talki:Limits:MessageBurst"] = "150",
        ["Talki:Limits:MessageBytesPerSecond"] = "65536",
        ["Talki:Limits:MessageBytesBurst"] = "131072",
        ["Talki:Limits:RateLimitedMessagesBeforeClose"] = "50",
        ["Talki:Limits:RateLimitWindow"] = "00:00:20",
        ["Talki:Limits:HelloTimeout"] = "00:00:05",
        ["Talki:Limits:MaxQueuedMessagesPerMember"] = "32",
        ["Talki:Limits:MaxQueuedBytesPerMember"] = "65536",
        ["Talki:Turn:Urls:0"] = "turn:relay.example.org:3478",
        ["Talki:Turn:SharedSecret"] = "a-shared-secret-of-enough-length",
        ["Talki:Turn:CredentialMargin"] = "01:00:00",
        ["Talki:Google:ClientIds:0"] = "client.apps.googleusercontent.com",
        ["Talki:Google:KeysUrl"] = "https://keys.example.org/certs",
        ["Talki:Google:Issuers:0"] = "https://issuer.example.org",
        ["Talki:Google:RequireVerifiedEmail"] = "false",
        ["Talki:Google:ClockSkew"] = "00:00:30",
        ["Talki:Hosting:PathPrefix"] = "/signalling",
        ["Talki:Hosting:PublicWebSocketUrl"] = "wss://talki.example.org/ws",
        ["Talki:Hosting:SessionLifetime"] = "12:00:00",
        ["Talki:Hosting:AllowedOrigins:0"] = "https://app.example.org",
        ["Talki:Hosting:SessionCookieName"] = "talki.s",
        ["Talki:Hosting:MaxRequestBodyBytes"] = "4096",
        ["Talki:Hosting:MaxInboundMessageBytes"] = "16384",
        ["Talki:Hosting:MaxOutboundMessageBytes"] = "65536",
        ["Talki:Hosting:IdleTimeout"] = "00:05:00",
        ["Talki:Hosting:OutboundQueueCapacity"] = "128",
    };

    [Fact]
    public void BindConfiguration_SetsEveryOption_NoPropertyIsLeftAtItsDefault()
    {
        var options = Resolve(EveryOption).Value;

        // Reflection over the options (test only): an option added later without binding support fails here.
        var unbound = Unchanged(options, new TalkiSignallingOptions(), "Talki").ToList();
        Assert.True(unbound.Count == 0, "Not bound from configuration: " + string.Join(", ", unbound));
        Assert.Equal(TimeSpan.FromMinutes(2), options.JoinWindow);
        Assert.Equal(["stun:stun.example.org:3478"], options.IceServers[0].Urls);
        Assert.Equal(("user", "secret"), (options.IceServers[1].Username, options.IceServers[1].Credential));
        Assert.Equal(["https://issuer.example.org"], options.Google.Issuers); // a list in configuration replaces the default
    }

    [Fact]
    public void BindConfiguration_ValuesThatDoNotParse_FailStartUpListingEveryKey()
    {
        var options = Resolve(new Dictionary<string, string?>
        {
            ["Talki:JoinWindow"] = "five minutes",
            ["Talki:Limits:MaxMembersPerRoom"] = "eight",
            ["Talki:Hosting:PublicWebSocketUrl"] = "not a url",
            ["Talki:IceServers:0:Username"] = "no-urls",
            ["Talki:TicketLifetime"] = "01:00:00", // parses, but out of range: the usual validator reports it too
        });

        var failure = Assert.Throws<OptionsValidationException>(() => options.Value);
        Assert.Contains(failure.Failures, f => f.Contains("Talki:JoinWindow", StringComparison.Ordinal));
        Assert.Contains(failure.Failures, f => f.Contains("Talki:Limits:MaxMembersPerRoom", StringComparison.Ordinal));
        Assert.Contains(failure.Failures, f => f.Contains("Talki:Hosting:PublicWebSocketUrl", StringComparison.Ordinal));
        Assert.Contains(failure.Failures, f => f.Contains("Talki:IceServers:0", StringComparison.Ordinal));
        Assert.Contains(failure.Failures, f => f.Contains("TicketLifetime", StringComparison.Ordinal) && !f.Contains("Talki:", StringComparison.Ordinal));
    }

    [Fact]
    public void CodeThatConfiguresAfterBinding_Wins()
    {
        var services = new ServiceCollection();
        services.AddTalkiSignallingCore().BindConfiguration(Section(EveryOption));
        services.Configure<TalkiSignallingOptions>(o => o.JoinWindow = TimeSpan.FromMinutes(7));
        using var provider = services.BuildServiceProvider();

        Assert.Equal(TimeSpan.FromMinutes(7), provider.GetRequiredService<IOptions<TalkiSignallingOptions>>().Value.JoinWindow);
    }

    private static IOptions<TalkiSignallingOptions> Resolve(Dictionary<string, string?> values)
    {
        var services = new ServiceCollection();
        services.AddTalkiSignallingCore().BindConfiguration(Section(values));
        return services.BuildServiceProvider().GetRequiredService<IOptions<TalkiSignallingOptions>>();
    }

    private static IConfigurationSection Section(Dictionary<string, string?> values)
        => new ConfigurationBuilder().AddInMemoryCollection(values).Build().GetSection("Talki");

    private static IEnumerable<string> Unchanged(object bound, object defaults, string path)
    {
        foreach (var property in bound.GetType().GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            var (a, b) = (property.GetValue(bound), property.GetValue(defaults));
            var name = $"{path}:{property.Name}";
            if (property.PropertyType.Namespace == typeof(TalkiSignallingOptions).Namespace && property.PropertyType.IsClass)
            {
                foreach (var inner in Unchanged(a!, b!, name))
                {
                    yield return inner;
                }
            }
            else if (a is IEnumerable sequence and not string)
            {
                if (sequence.Cast<object>().SequenceEqual(((IEnumerable)b!).Cast<object>()))
                {
                    yield return name;
                }
            }
            else if (Equals(a, b))
            {
                yield return name;
            }
        }
    }
}
