using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Talki.Signalling.Ports;
using Talki.Signalling.Protocol;
using Talki.Signalling.Server.Engine;

namespace Talki.Signalling.Server.Tests;

/// <summary>Records every push and close, like a gateway that delivers everything.</summary>
internal sealed class RecordingPush : IConnectionPush, IPolicyClosingPush
{
    private readonly ConcurrentQueue<(string Connection, string Json)> _pushes = new();
    private readonly ConcurrentDictionary<string, int> _closes = new();
    private readonly ConcurrentDictionary<string, string> _policyCloses = new();

    /// <summary>Connections that answer <see cref="PushOutcome.Gone"/>.</summary>
    public ConcurrentDictionary<string, bool> Gone { get; } = new();

    /// <summary>Connections whose pushes answer <see cref="PushOutcome.Undeliverable"/> (throttled or failing past the retries).</summary>
    public ConcurrentDictionary<string, bool> Undeliverable { get; } = new();

    public IReadOnlyList<(string Connection, string Json)> All => [.. _pushes];

    /// <summary>Connections that answer <see cref="PushOutcome.Gone"/> to their next so many pushes (a connection not open yet), then take them.</summary>
    public ConcurrentDictionary<string, int> GoneFor { get; } = new();

    public ValueTask<PushOutcome> PushAsync(string connectionId, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
    {
        if (Gone.ContainsKey(connectionId))
        {
            return new(PushOutcome.Gone);
        }

        if (GoneFor.TryGetValue(connectionId, out var remaining) && remaining > 0)
        {
            GoneFor[connectionId] = remaining - 1;
            return new(PushOutcome.Gone);
        }

        if (Undeliverable.ContainsKey(connectionId))
        {
            return new(PushOutcome.Undeliverable);
        }

        _pushes.Enqueue((connectionId, Encoding.UTF8.GetString(payload.Span)));
        return new(PushOutcome.Delivered);
    }

    public ValueTask CloseAsync(string connectionId, CancellationToken cancellationToken = default)
    {
        _closes.AddOrUpdate(connectionId, 1, (_, n) => n + 1);
        return ValueTask.CompletedTask;
    }

    public ValueTask ClosePolicyViolationAsync(string connectionId, string reason, CancellationToken cancellationToken = default)
    {
        _policyCloses.TryAdd(connectionId, reason);
        return CloseAsync(connectionId, cancellationToken);
    }

    public bool WasClosed(string connectionId) => _closes.ContainsKey(connectionId);

    /// <summary>Gets the reason of the connection's policy-violation close (1008), or <see langword="null"/>.</summary>
    public string? PolicyCloseReason(string connectionId) => _policyCloses.TryGetValue(connectionId, out var reason) ? reason : null;

    public IReadOnlyList<ServerMessage> To(string connectionId)
        => [.. _pushes.Where(p => p.Connection == connectionId).Select(p => JsonSerializer.Deserialize(p.Json, TalkiJsonContext.Default.ServerMessage)!)];

    public IReadOnlyList<T> To<T>(string connectionId) where T : ServerMessage => [.. To(connectionId).OfType<T>()];

    public T Single<T>(string connectionId) where T : ServerMessage => Assert.Single(To<T>(connectionId));

    public ErrorMessage LastError(string connectionId) => To<ErrorMessage>(connectionId).Last();

    public void Clear() => _pushes.Clear();
}

/// <summary>The engine wired through DI as users wire it, with a fake clock and a recording push.</summary>
internal sealed class EngineHarness : IDisposable
{
    private int _connections;

    public EngineHarness(Action<TalkiSignallingOptions>? configure = null, Func<IServiceProvider, IRoomStore>? store = null, TimeProvider? clock = null, IConnectionPush? push = null)
    {
        var services = new ServiceCollection();
        services.AddSingleton(clock ?? Time);
        services.AddSingleton(push ?? Push);
        services.AddLogging();
        services.AddTalkiSignallingCore(configure);
        if (store is not null)
        {
            services.AddSingleton(store);
        }

        Services = services.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true, ValidateScopes = true });
        Engine = Services.GetRequiredService<ISignallingEngine>();
    }

    public FakeTimeProvider Time { get; } = new(new DateTimeOffset(2026, 11, 27, 12, 0, 0, TimeSpan.Zero));

    public RecordingPush Push { get; } = new();

    public ServiceProvider Services { get; }

    public ISignallingEngine Engine { get; }

    public SignallingEngine Concrete => (SignallingEngine)Engine;

    /// <summary>Gets the room store the engine writes to.</summary>
    public IRoomStore Store => Services.GetRequiredService<IRoomStore>();

    public static CallerIdentity User(string name, bool verified = false) => new("user-" + name, name, verified);

    public async Task<TicketGrant> CreateRoomAsync(CallerIdentity admin)
        => (await Engine.CreateRoomAsync(admin)).Value;

    public async Task<TicketGrant> JoinAsync(CallerIdentity user, RoomId room)
        => (await Engine.IssueJoinTicketAsync(user, room)).Value;

    public string NewConnectionId() => $"gw-conn-{Interlocked.Increment(ref _connections):D4}=";

    /// <summary>Connects with the ticket and says hello; returns the connection id.</summary>
    public async Task<string> ConnectAsync(TicketGrant grant, bool hello = true, int version = 1)
    {
        var connection = NewConnectionId();
        Time.Advance(TimeSpan.FromMilliseconds(1)); // as on a real clock, no two connects share an instant
        var result = await Engine.ConnectAsync(connection, grant.Ticket.Value);
        Assert.True(result.IsSuccess, result.ToString());
        if (hello)
        {
            await SendAsync(connection, $$"""{"type":"hello","version":{{version}}}""");
        }

        return connection;
    }

    public ValueTask SendAsync(string connection, string json) => Engine.HandleMessageAsync(connection, Encoding.UTF8.GetBytes(json));

    /// <summary>
    /// Connects a member that waits for admission as a version 4 client does (<c>wait=1</c>, no hello): through the
    /// self-hosted path (<see cref="ISignallingEngine.ConnectAsync"/>) or API Gateway's (<see cref="ISignallingEngine.AuthorizeWaitingAsync"/>).
    /// </summary>
    public async Task<(string Connection, SignallingResult<ConnectionGrant> Result)> ConnectWaitingAsync(TicketGrant ticket, bool twoPhase, int version = 4)
    {
        var connection = NewConnectionId();
        Time.Advance(TimeSpan.FromMilliseconds(1));
        var result = twoPhase
            ? await Engine.AuthorizeWaitingAsync(connection, ticket.Ticket.Value, version)
            : await Engine.ConnectAsync(connection, ticket.Ticket.Value, waitingVersion: version);
        return (connection, result);
    }

    /// <summary>
    /// Connects as API Gateway does, in two phases: the authorizer consumes the ticket, then the first frame (a hello,
    /// unless <paramref name="hello"/> is false) comes with the grant and binds. Returns the connection id and its grant.
    /// </summary>
    public async Task<(string Connection, ConnectionGrant Grant)> ConnectTwoPhaseAsync(TicketGrant ticket, bool hello = true, int version = 2, long? resume = null)
    {
        var connection = NewConnectionId();
        Time.Advance(TimeSpan.FromMilliseconds(1));
        var result = await Engine.AuthorizeAsync(ticket.Ticket.Value, resume);
        Assert.True(result.IsSuccess, result.ToString());
        if (hello)
        {
            await SendAuthorizedAsync(connection, result.Value, $$"""{"type":"hello","version":{{version}}}""");
        }

        return (connection, result.Value);
    }

    /// <summary>Hands a frame over with its connection's grant, as the API Gateway integration does.</summary>
    public ValueTask SendAuthorizedAsync(string connection, ConnectionGrant grant, string json) => Engine.HandleAuthorizedMessageAsync(connection, grant, Encoding.UTF8.GetBytes(json));

    /// <summary>Creates a room with a connected admin and a connected member ("bob") waiting for admission.</summary>
    public async Task<(TicketGrant Admin, string AdminConnection, TicketGrant Pending, string PendingConnection)> RoomWithPendingMemberAsync()
    {
        var admin = await CreateRoomAsync(User("ada"));
        var adminConnection = await ConnectAsync(admin);
        var pending = await JoinAsync(User("bob"), admin.Room);
        return (admin, adminConnection, pending, await ConnectAsync(pending));
    }

    /// <summary>Creates a room with an admin, and joins and admits the given members; all connected and live.</summary>
    public Task<(TicketGrant Admin, string AdminConnection, List<(TicketGrant Grant, string Connection)> Members)> RoomWithMembersAsync(params string[] names)
        => RoomWithMembersAsync(1, names);

    /// <summary>As <see cref="RoomWithMembersAsync(string[])"/>, every member saying hello with <paramref name="version"/>.</summary>
    public async Task<(TicketGrant Admin, string AdminConnection, List<(TicketGrant Grant, string Connection)> Members)> RoomWithMembersAsync(int version, params string[] names)
    {
        var admin = await CreateRoomAsync(User("admin-" + Guid.NewGuid().ToString("N")[..6]));
        var adminConnection = await ConnectAsync(admin, version: version);
        var members = new List<(TicketGrant, string)>();
        foreach (var name in names)
        {
            var grant = await JoinAsync(User(name + "-" + Guid.NewGuid().ToString("N")[..6]), admin.Room);
            var connection = await ConnectAsync(grant, version: version);
            await SendAsync(adminConnection, $$$"""{"type":"admit","member":"{{{grant.Member}}}"}""");
            members.Add((grant, connection));
        }

        return (admin, adminConnection, members);
    }

    /// <summary>
    /// Creates a room whose admin ("ada") connects with the grant <see cref="ISignallingEngine.ConnectAsync"/> returns and says
    /// hello and admits "bob" through it, as the gateways hand frames over; bob is connected and live.
    /// </summary>
    public async Task<(string AdminConnection, ConnectionGrant AdminGrant, TicketGrant Bob, string BobConnection)> RoomWithGrantedAdminAsync()
    {
        var admin = await CreateRoomAsync(User("ada"));
        var adminConnection = NewConnectionId();
        var adminGrant = (await Engine.ConnectAsync(adminConnection, admin.Ticket.Value)).Value;
        await Engine.HandleAuthorizedMessageAsync(adminConnection, adminGrant, Encoding.UTF8.GetBytes("""{"type":"hello","version":1}"""));
        var bob = await JoinAsync(User("bob"), admin.Room);
        var bobConnection = await ConnectAsync(bob);
        await Engine.HandleAuthorizedMessageAsync(adminConnection, adminGrant, Encoding.UTF8.GetBytes($$$"""{"type":"admit","member":"{{{bob.Member}}}"}"""));
        return (adminConnection, adminGrant, bob, bobConnection);
    }

    public void Dispose() => Services.Dispose();
}
