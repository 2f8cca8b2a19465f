using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Talki.Signalling.Ports;
using Talki.Signalling.Protocol;
using Talki.Signalling.Server.Storage;

namespace Talki.Signalling.Server.Tests.DependencyInjection;

public sealed class AddTalkiSignallingTests
{
    [Fact]
    public void Defaults_AreTheEmbeddedOnes()
    {
        using var provider = new ServiceCollection().AddLogging().AddTalkiSignalling().Services.BuildServiceProvider(validateScopes: true);
        Assert.IsType<InMemoryRoomStore>(provider.GetRequiredService<IRoomStore>());
        Assert.Equal("SelfHostedGateway", provider.GetRequiredService<IConnectionPush>().GetType().Name);
        Assert.NotNull(provider.GetRequiredService<ISignallingEngine>());
    }

    [Fact]
    public void CalledTwice_DoesNotStackRegistrations_ButAppliesBothConfigurations()
    {
        var services = new ServiceCollection().AddLogging();
        services.AddTalkiSignalling(o => o.JoinWindow = TimeSpan.FromMinutes(2));
        var count = services.Count;
        services.AddTalkiSignalling(o => o.TicketLifetime = TimeSpan.FromSeconds(10));
        Assert.Equal(count + 1, services.Count); // only the second Configure
        using var provider = services.BuildServiceProvider();
        var options = provider.GetRequiredService<IOptions<TalkiSignallingOptions>>().Value;
        Assert.Equal(TimeSpan.FromMinutes(2), options.JoinWindow);
        Assert.Equal(TimeSpan.FromSeconds(10), options.TicketLifetime);
    }

    [Theory]
    [InlineData("window")]
    [InlineData("min-version-zero")]
    [InlineData("min-version-future")]
    [InlineData("ticket")]
    [InlineData("prefix")]
    [InlineData("url")]
    [InlineData("inbound")]
    [InlineData("outbound")]
    [InlineData("queue")]
    [InlineData("ice")]
    [InlineData("name")]
    [InlineData("rate")]
    [InlineData("burst")]
    [InlineData("byte-rate")]
    [InlineData("byte-rate-too-high")]
    [InlineData("byte-burst")]
    [InlineData("byte-burst-below-a-largest-message")]
    [InlineData("refusals")]
    [InlineData("rate-window")]
    [InlineData("hello-timeout")]
    [InlineData("hello-timeout-zero")]
    [InlineData("no-pending")]
    [InlineData("too-many-pending")]
    [InlineData("burst-below-a-full-batch")]
    public void InvalidOptions_FailValidation(string which)
    {
        var services = new ServiceCollection().AddLogging();
        services.AddTalkiSignalling(o =>
        {
            switch (which)
            {
                case "window": o.JoinWindow = TimeSpan.FromSeconds(1); break;
                case "ticket": o.TicketLifetime = TimeSpan.Zero; break;
                case "prefix": o.Hosting.PathPrefix = "talki/"; break;
                case "url": o.Hosting.PublicWebSocketUrl = new Uri("https://example.test/ws"); break;
                case "inbound": o.Hosting.MaxInboundMessageBytes = 10; break;
                case "outbound": o.Hosting.MaxOutboundMessageBytes = o.Hosting.MaxInboundMessageBytes; break;
                case "queue": o.Hosting.OutboundQueueCapacity = 0; break;
                case "ice": o.IceServers.Add(new IceServer { Urls = ["http://not-ice"] }); break;
                case "name": o.MaxDisplayNameLength = 0; break;
                case "min-version-zero": o.MinimumProtocolVersion = 0; break;
                case "min-version-future": o.MinimumProtocolVersion = Talki.Signalling.Protocol.ProtocolVersion.Current + 1; break;
                case "rate": o.Limits.MessagesPerSecond = 0; break;
                case "burst": o.Limits.MessageBurst = 0; break;
                case "byte-rate": o.Limits.MessageBytesPerSecond = 1023; break;
                case "byte-rate-too-high": o.Limits.MessageBytesPerSecond = (64 * 1024 * 1024) + 1; break;
                case "byte-burst": o.Limits.MessageBytesBurst = 0; break;
                case "byte-burst-below-a-largest-message": o.Limits.MessageBytesBurst = o.Hosting.MaxInboundMessageBytes - 1; break;
                case "refusals": o.Limits.RateLimitedMessagesBeforeClose = 0; break;
                case "rate-window": o.Limits.RateLimitWindow = TimeSpan.Zero; break;
                case "hello-timeout": o.Limits.HelloTimeout = TimeSpan.FromHours(1); break;
                case "hello-timeout-zero": o.Limits.HelloTimeout = TimeSpan.Zero; break;
                case "no-pending": o.Limits.MaxPendingPerRoom = 0; break;
                case "too-many-pending": o.Limits.MaxPendingPerRoom = 1001; break;
                case "burst-below-a-full-batch": o.Limits.MessageBurst = o.Limits.MaxMembersPerRoom - 2; break;
            }
        });
        using var provider = services.BuildServiceProvider();
        Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<TalkiSignallingOptions>>().Value);
    }

    [Fact]
    public void AByteBurstOfExactlyTheLargestMessage_IsValid()
    {
        var services = new ServiceCollection().AddLogging();
        services.AddTalkiSignalling(o => o.Limits.MessageBytesBurst = o.Hosting.MaxInboundMessageBytes);
        using var provider = services.BuildServiceProvider();
        Assert.Equal(32 * 1024, provider.GetRequiredService<IOptions<TalkiSignallingOptions>>().Value.Limits.MessageBytesBurst);
    }

    [Fact]
    public void ABurstThatHoldsOneFirstOfferPerOtherMember_IsValid()
    {
        var services = new ServiceCollection().AddLogging();
        services.AddTalkiSignalling(o => o.Limits.MessageBurst = o.Limits.MaxMembersPerRoom - 1);
        using var provider = services.BuildServiceProvider();
        Assert.Equal(7, provider.GetRequiredService<IOptions<TalkiSignallingOptions>>().Value.Limits.MessageBurst);
    }

    [Theory]
    [InlineData("no-secret")]
    [InlineData("empty-secret")]
    [InlineData("stun-url")]
    [InlineData("http-url")]
    [InlineData("negative-margin")]
    [InlineData("margin-over-a-day")]
    public void InvalidTurnOptions_FailValidation(string which)
    {
        var services = new ServiceCollection().AddLogging();
        services.AddTalkiSignalling(o =>
        {
            o.Turn.Urls.Add("turn:turn.example.test:3478?transport=udp");
            o.Turn.SharedSecret = "north-wind-secret";
            switch (which)
            {
                case "no-secret": o.Turn.SharedSecret = null; break;
                case "empty-secret": o.Turn.SharedSecret = string.Empty; break;
                case "stun-url": o.Turn.Urls.Add("stun:turn.example.test:3478"); break;
                case "http-url": o.Turn.Urls.Add("https://turn.example.test"); break;
                case "negative-margin": o.Turn.CredentialMargin = TimeSpan.FromSeconds(-1); break;
                case "margin-over-a-day": o.Turn.CredentialMargin = TimeSpan.FromHours(24) + TimeSpan.FromSeconds(1); break;
            }
        });
        using var provider = services.BuildServiceProvider();
        var failure = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<TalkiSignallingOptions>>().Value);
        Assert.Contains("Turn.", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TurnOptions_AreValid_WithTurnAndTurnsUrlsAndASecret_OrWithNoUrlsAndNoSecret()
    {
        var services = new ServiceCollection().AddLogging();
        services.AddTalkiSignalling(o =>
        {
            o.Turn.Urls.Add("turn:turn.example.test:3478?transport=udp");
            o.Turn.Urls.Add("turns:turn.example.test:5349?transport=tcp");
            o.Turn.SharedSecret = "north-wind-secret";
            o.Turn.CredentialMargin = TimeSpan.Zero;
        });
        using var provider = services.BuildServiceProvider();
        Assert.Equal(2, provider.GetRequiredService<IOptions<TalkiSignallingOptions>>().Value.Turn.Urls.Count);

        using var defaults = new ServiceCollection().AddLogging().AddTalkiSignalling().Services.BuildServiceProvider();
        Assert.Null(defaults.GetRequiredService<IOptions<TalkiSignallingOptions>>().Value.Turn.SharedSecret);
    }
}
