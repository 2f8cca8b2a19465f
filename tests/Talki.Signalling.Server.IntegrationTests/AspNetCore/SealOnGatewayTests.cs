using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Talki.Signalling.Http;
using Talki.Signalling.Protocol;
using Talki.Signalling.Testing;
using Xunit.Abstractions;

namespace Talki.Signalling.Server.IntegrationTests.AspNetCore;

/// <summary>The seal over real sockets on the self-hosted gateway, on the real clock: the defect was seen there.</summary>
public class SealOnGatewayTests(ITestOutputHelper output)
{
    /// <summary>Gets whether the gateway's upgrades are taken at Kestrel's connection level (the derived class runs every test so).</summary>
    protected virtual bool ConnectionLevelUpgrade => false;

    private const int Rooms = 250;
    private static readonly TimeSpan Tolerance = TimeSpan.FromSeconds(1);

    [Fact]
    public async Task Seal_250RoomsOnTheRealClock_EverySocketReceivesRoomSealedAndIsClosedWithinOneSecondOfSealsAt()
    {
        using var probe = new RuntimeStallProbe();
        var logs = new RecordingLoggerProvider();
        await using var host = await TestHost.StartAsync(
            o =>
            {
                o.JoinWindow = TimeSpan.FromSeconds(10);
                o.Limits.RoomsPerSessionPerHour = 100_000;
            },
            services => services.AddSingleton(TimeProvider.System).AddSingleton<ILoggerProvider>(logs),
            connectionLevelUpgrade: ConnectionLevelUpgrade);
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

            // When the engine logged the room's seal ("Room {Room} sealed; …"), to tell a late server from a late reader.
            DateTimeOffset? ServerSealed(RoomId room) => logs.Entries
                .Where(e => e.EventId.Name == "RoomSealed" && e.Text.Contains(room.ToString(), StringComparison.Ordinal))
                .Select(e => (DateTimeOffset?)e.At)
                .FirstOrDefault();

            var late = new List<string>();
            var worst = TimeSpan.Zero;
            var worstServer = TimeSpan.Zero;
            foreach (var (ticket, _, seen) in rooms)
            {
                try
                {
                    var (sealedAt, closedAt) = await seen;
                    worst = Max(worst, Max((sealedAt - ticket.SealsAt).Duration(), (closedAt - ticket.SealsAt).Duration()));
                    worstServer = Max(worstServer, ((ServerSealed(ticket.Room) ?? sealedAt) - ticket.SealsAt).Duration());
                    if ((sealedAt - ticket.SealsAt).Duration() > Tolerance || (closedAt - ticket.SealsAt).Duration() > Tolerance)
                    {
                        late.Add($"{ticket.Room}: sealsAt {ticket.SealsAt:O}, room_sealed at {sealedAt:O}, closed at {closedAt:O} (the server logged the seal at {ServerSealed(ticket.Room):O})");
                    }
                }
                catch (Exception e) when (e is TimeoutException or InvalidOperationException)
                {
                    late.Add($"{ticket.Room}: sealsAt {ticket.SealsAt:O}: {e.Message}");
                }
            }

            output.WriteLine($"{Rooms} rooms: the furthest room_sealed or close frame from sealsAt at the client {worst.TotalMilliseconds:F1} ms; the furthest seal logged by the server {worstServer.TotalMilliseconds:F1} ms; {probe.Summary}.");
            Assert.True(
                late.Count == 0,
                $"{late.Count} of {Rooms} rooms did not seal within ±{Tolerance.TotalSeconds} s (times are when the client read the frames off its socket; {probe.Summary}):\n{string.Join('\n', late.Take(10))}");
        }
        finally
        {
            foreach (var (_, socket, _) in rooms)
            {
                await socket.DisposeAsync();
            }
        }
    }

    private static TimeSpan Max(TimeSpan a, TimeSpan b) => a > b ? a : b;

    private static async Task<(DateTimeOffset Sealed, DateTimeOffset Closed)> WatchAsync(TestSocket socket)
    {
        // The instants the frames were read off the socket, not when this method resumed: the test's continuations share
        // xUnit's two threads with every other test running, and the promise is about the wire.
        var (_, sealedAt) = await socket.ExpectTimedAsync<RoomSealedMessage>();
        await socket.WaitClosedAsync();
        return (sealedAt, socket.CloseReceivedAt ?? throw new InvalidOperationException("The socket ended without the server's close frame."));
    }
}

/// <summary>Every test of <see cref="SealOnGatewayTests"/>, with the gateway's upgrades taken at Kestrel's connection level (<c>UseTalkiWebSockets</c>).</summary>
public sealed class SealOnGatewayTestsOnConnectionLevelUpgrade(ITestOutputHelper output) : SealOnGatewayTests(output)
{
    protected override bool ConnectionLevelUpgrade => true;
}
