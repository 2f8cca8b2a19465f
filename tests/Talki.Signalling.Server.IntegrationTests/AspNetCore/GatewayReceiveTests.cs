using System.Net.WebSockets;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Server.IntegrationTests.AspNetCore;

/// <summary>
/// The self-hosted gateway waits for each message with a zero-byte read and rents its buffer only then: every shape a
/// message can take after an idle wait must still be read whole — empty, fragmented, over the limit — and a close or a
/// binary frame seen by the zero-byte read must end the connection as before.
/// </summary>
public class GatewayReceiveTests
{
    /// <summary>Gets whether the gateway's upgrades are taken at Kestrel's connection level (the derived class runs every test so).</summary>
    protected virtual bool ConnectionLevelUpgrade => false;

    [Fact]
    public async Task AfterIdleWaits_EmptyFragmentedAndOversizedMessages_AreEachReadWhole_AndTheConnectionGoesOn()
    {
        await using var host = await TestHost.StartAsync(connectionLevelUpgrade: ConnectionLevelUpgrade);
        using var ada = await host.SignInAsync("Ada");
        var room = await ada.CreateRoomAsync();
        await using var socket = await ada.ConnectAsync(room);

        // An empty message: a protocol error, and nothing else happens.
        await socket.SendAsync(string.Empty);
        await socket.ExpectAsync<ErrorMessage>(e => e.Code == SignallingErrorCode.MalformedMessage);

        // A ping split over three frames arrives as one message.
        await socket.SendFragmentsAsync("""{"type":"pi""", """ng","id":"fr""", """agmented"}""");
        await socket.ExpectAsync<PongMessage>(p => p.Id == "fragmented");

        // Over the 32 KiB limit, in several frames: read to its end, refused, and the next message is read cleanly.
        var big = new string('x', 40_000);
        await socket.SendFragmentsAsync("{\"type\":\"ping\",\"id\":\"big\",\"pad\":\"", big[..20_000], big[20_000..], "\"}");
        await socket.ExpectAsync<ErrorMessage>(e => e.Code == SignallingErrorCode.MessageTooLarge);
        await socket.SendAsync("""{"type":"ping","id":"after"}""");
        await socket.ExpectAsync<PongMessage>(p => p.Id == "after");
        Assert.Null(socket.CloseStatus);
    }

    [Fact]
    public async Task BinaryFrameAfterAnIdleWait_ClosesWith1003()
    {
        await using var host = await TestHost.StartAsync(connectionLevelUpgrade: ConnectionLevelUpgrade);
        using var ada = await host.SignInAsync("Ada");
        var room = await ada.CreateRoomAsync();
        await using var socket = await ada.ConnectAsync(room);

        await socket.SendBytesAsync([1, 2, 3], WebSocketMessageType.Binary);

        await socket.WaitClosedAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(WebSocketCloseStatus.InvalidMessageType, socket.CloseStatus);
    }
}

/// <summary>Every test of <see cref="GatewayReceiveTests"/>, with the gateway's upgrades taken at Kestrel's connection level (<c>UseTalkiWebSockets</c>).</summary>
public sealed class GatewayReceiveTestsOnConnectionLevelUpgrade : GatewayReceiveTests
{
    protected override bool ConnectionLevelUpgrade => true;
}
