using Amazon.DynamoDBv2;
using Microsoft.Extensions.DependencyInjection;
using Talki.Signalling.Ports;
using Talki.Signalling.Server;

namespace Talki.Signalling.Aws.Tests.DynamoDb;

/// <summary>The engine, wired as users wire it, over the DynamoDB store on dynalite.</summary>
[Collection(DynaliteGroup.Name)]
public sealed class DynamoDbEngineTests(DynaliteFixture dynalite) : IDisposable
{
    private readonly ServiceProvider _services = Build(dynalite);

    public void Dispose() => _services.Dispose();

    [Fact]
    public async Task HundredConcurrentJoins_IntoOneRoom_LoseNothing()
    {
        var engine = _services.GetRequiredService<ISignallingEngine>();
        var created = (await engine.CreateRoomAsync(new CallerIdentity("u-admin", "Ada", false))).Value;

        var joins = await Task.WhenAll(Enumerable.Range(0, 100).Select(i => Task.Run(async () =>
            await engine.IssueJoinTicketAsync(new CallerIdentity("u-" + i, "User " + i, false), created.Room))));

        Assert.All(joins, j => Assert.True(j.IsSuccess, j.ToString()));
        Assert.Equal(100, joins.Select(j => j.Value.Member).Distinct().Count());
        var members = await _services.GetRequiredService<IRoomStore>().ListMembersAsync(created.Room);
        Assert.Equal(101, members.Count);
        Assert.Equal(joins.Select(j => j.Value.Member.Value).Append(created.Member.Value).Order(StringComparer.Ordinal), members.Select(m => m.Id.Value).Order(StringComparer.Ordinal));
        Assert.False((await engine.IssueJoinTicketAsync(new CallerIdentity("u-late", "Late", false), created.Room)).IsSuccess);
    }

    [Fact]
    public async Task HundredConcurrentUsesOfOneTicket_ExactlyOneWins()
    {
        var engine = _services.GetRequiredService<ISignallingEngine>();
        var created = (await engine.CreateRoomAsync(new CallerIdentity("u-admin", "Ada", false))).Value;

        var connects = await Task.WhenAll(Enumerable.Range(0, 100).Select(i => Task.Run(async () =>
            await engine.ConnectAsync("conn-" + i, created.Ticket.Value))));

        var winner = Assert.Single(connects, c => c.IsSuccess);
        Assert.Equal(1, winner.Value.Epoch);
        Assert.All(connects.Where(c => !c.IsSuccess), c => Assert.Equal(SignallingErrorCode.TicketInvalid, c.Error!.Code));
    }

    private static ServiceProvider Build(DynaliteFixture dynalite)
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddSingleton<IAmazonDynamoDB>(dynalite.Client);
        services.AddSingleton<IConnectionPush, AcceptingPush>();
        services.AddTalkiSignalling(o =>
            {
                o.Limits.MaxMembersPerRoom = 101;
                o.Limits.MaxPendingPerRoom = 100;
            })
            .AddDynamoDbRoomStore(o =>
            {
                o.TableName = "engine";
                o.CreateTableIfMissing = true;
            });
        return services.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true, ValidateScopes = true });
    }

    private sealed class AcceptingPush : IConnectionPush
    {
        public ValueTask<PushOutcome> PushAsync(string connectionId, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default) => new(PushOutcome.Delivered);

        public ValueTask CloseAsync(string connectionId, CancellationToken cancellationToken = default) => ValueTask.CompletedTask;
    }
}
