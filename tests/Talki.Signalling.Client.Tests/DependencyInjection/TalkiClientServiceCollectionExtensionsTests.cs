using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Talki.Signalling.Client.Tests.Negotiation;
using Talki.Signalling.Client.Tests.Support;

namespace Talki.Signalling.Client.Tests.DependencyInjection;

public sealed class TalkiClientServiceCollectionExtensionsTests
{
    [Fact]
    public async Task AddTalkiClient_ResolvesTypedClientAndFactory_ThatWorkAgainstTheServer()
    {
        await using var world = await CallWorld.StartAsync();
        var services = new ServiceCollection().AddLogging();
        services.AddTalkiClient(o =>
        {
            o.ApiBaseAddress = world.BaseAddress;
            o.UseBearerToken = true;
        });
        await using var provider = services.BuildServiceProvider();

        var api = provider.GetRequiredService<TalkiApiClient>();
        Assert.True((await api.SignInAnonymousAsync("Ada")).IsSuccess);
        await using var call = provider.GetRequiredService<TalkiCallFactory>().Create(new SimulatedPeerConnectionFactory(new SimulatedFabric(), "Ada"));
        var room = await call.CreateRoomAsync(); // the token from the first typed client is shared with the next one

        Assert.True(room.IsSuccess, room.ToString());
        Assert.Equal(TalkiAdmissionState.Admitted, call.AdmissionState);
        Assert.Equal(TalkiConnectionState.Connected, call.ConnectionState);
    }

    [Fact]
    public void AddTalkiClient_WithoutApiBaseAddress_FailsValidationWhenResolved()
    {
        var services = new ServiceCollection();
        services.AddTalkiClient(_ => { });
        using var provider = services.BuildServiceProvider();

        Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<TalkiApiClient>());
    }
}
