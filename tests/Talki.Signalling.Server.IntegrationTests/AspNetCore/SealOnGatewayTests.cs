using Microsoft.Extensions.DependencyInjection;
using Talki.Signalling.Http;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Server.IntegrationTests.AspNetCore;

/// <summary>The seal over real sockets on the self-hosted gateway, on the real clock: the defect was seen there.</summary>
public class SealOnGatewayTests
{
    /// <summary>Gets whether the gateway's upgrades are taken at Kestrel's connection level (the derived class runs every test so).</summary>
    protected virtual bool ConnectionLevelUpgrade => false;

    private const int Rooms = 250;
    private static readonly TimeSpan Tolerance = TimeSpan.FromSeconds(1);

    [Fact]
    public async Task Seal_250RoomsOnTheRealClock_EverySocketReceivesRoomSealedAndIsClosedWithinOneSecondOfSealsAt()
    {
        await using var host = await TestHost.StartAsync(
            o =>
            {
                o.JoinWindow = TimeSpan.FromSeconds(10);
                o.Limits.RoomsPerSessionPerHour = 100_000;
            },
            services => services.AddSingleton(TimeProvider.System), connectionLevelUpgrade: ConnectionLevelUpgrade);
        using var admin = await host.SignInAsync("Ada");

        var rooms = new List<(TicketResponse Ticket, TestSocket Socket, Task<(DateTimeOffset Sealed, DateTimeOffset Closed)> Seen)>();
        try
        {
            for (var i = 0; i < Rooms; i++)
            {
                var ticket = await admin.CreateRoomAsync();
                var socket = await admin.ConnectAsync(ticket);
                rooms.Add((ticket, socket, WatchAsync(socket)));
            }

            var late = new List<string>();
            foreach (var (ticket, _, seen) in rooms)
            {
                try
                {
                    var (sealedAt, closedAt) = await seen;
                    if ((sealedAt - ticket.SealsAt).Duration() > Tolerance || (closedAt - ticket.SealsAt).Duration() > Tolerance)
                    {
                        late.Add($"{ticket.Room}: sealsAt {ticket.SealsAt:O}, room_sealed at {sealedAt:O}, closed at {closedAt:O}");
                    }
                }
                catch (Exception e) when (e is TimeoutException or InvalidOperationException)
                {
                    late.Add($"{ticket.Room}: sealsAt {ticket.SealsAt:O}: {e.Message}");
                }
            }

            Assert.True(late.Count == 0, $"{late.Count} of {Rooms} rooms did not seal within ±{Tolerance.TotalSeconds} s:\n{string.Join('\n', late.Take(10))}");
        }
        finally
        {
            foreach (var (_, socket, _) in rooms)
            {
                await socket.DisposeAsync();
            }
        }
    }

    private static async Task<(DateTimeOffset Sealed, DateTimeOffset Closed)> WatchAsync(TestSocket socket)
    {
        await socket.ExpectAsync<RoomSealedMessage>();
        var sealedAt = DateTimeOffset.UtcNow;
        await socket.WaitClosedAsync();
        return (sealedAt, DateTimeOffset.UtcNow);
    }
}

/// <summary>Every test of <see cref="SealOnGatewayTests"/>, with the gateway's upgrades taken at Kestrel's connection level (<c>UseTalkiWebSockets</c>).</summary>
public sealed class SealOnGatewayTestsOnConnectionLevelUpgrade : SealOnGatewayTests
{
    protected override bool ConnectionLevelUpgrade => true;
}
