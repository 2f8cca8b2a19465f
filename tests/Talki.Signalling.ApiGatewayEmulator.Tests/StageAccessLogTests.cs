using System.Net;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json.Nodes;
using Talki.Signalling.Testing;

namespace Talki.Signalling.Emulator.Tests;

/// <summary>The stage's access log: the template's format, one line per connect, message and disconnect, as API Gateway writes it.</summary>
public sealed class StageAccessLogTests
{
    [Fact]
    public async Task AConnection_WritesOneLinePerConnectMessageAndDisconnect_InTheTemplatesFormat_WithItsValues()
    {
        await using var fixture = await TemplateEmulatorFixture.StartAsync();
        var before = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var (socket, id) = await fixture.ConnectAsync();

        await socket.SendTextAsync("{\"type\":\"hello\"}");
        await fixture.Backend.NextAsync(FakeBackend.Default);
        await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);
        socket.Dispose();
        var counters = fixture.Emulator.Counters;
        await TemplateModeTests.WaitUntilAsync(() => counters.Integrations.Count == 2);

        var lines = counters.AccessLog.Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
        Assert.Equal(["$connect", "$default", "$disconnect"], lines.Select(l => (string)l["route"]!));
        Assert.Equal(3, counters.AccessLogLines);
        Assert.Equal(counters.AccessLog.Sum(l => Encoding.UTF8.GetByteCount(l)), counters.AccessLogBytes);
        foreach (var line in lines)
        {
            // The synthesized stack's fields, every one filled or "-".
            Assert.Equal(
                ["id", "conn", "route", "status", "time", "ip", "err", "authErr", "intErr", "intStatus", "intMs"],
                line.Select(p => p.Key));
            Assert.Equal(id, (string)line["conn"]!);
            Assert.Equal("200", (string)line["status"]!);
            Assert.Matches("^[A-Za-z0-9+/]{15}=$", (string)line["id"]!);
            Assert.InRange(long.Parse((string)line["time"]!, System.Globalization.CultureInfo.InvariantCulture), before, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
            Assert.Equal("127.0.0.1", (string)line["ip"]!);
            Assert.Equal("-", (string)line["err"]!);
            Assert.Equal("-", (string)line["authErr"]!);
            Assert.Equal("-", (string)line["intErr"]!);
        }

        // No integration on $connect (the authorizer decides); the fake backend answers the two others 200.
        Assert.Equal(["-", "200", "200"], lines.Select(l => (string)l["intStatus"]!));
        Assert.Equal("-", (string)lines[0]["intMs"]!);
        Assert.All(lines.Skip(1), l => Assert.Matches("^[0-9]+$", (string)l["intMs"]!));
        Assert.Equal(3, lines.Select(l => (string)l["id"]!).Distinct().Count());

        // The connect's line and the authorizer's event name the same request.
        var authorizerEvent = JsonNode.Parse(Assert.Single(fixture.Authorizer.CallsTo(FakeBackend.Authorizer)).Body)!;
        Assert.Equal((string)authorizerEvent["requestContext"]!["requestId"]!, (string)lines[0]["id"]!);
    }

    [Theory]
    [InlineData(null, "401", "Unauthorized")]                 // no ticket: refused before the authorizer
    [InlineData(AuthorizerMode.Deny, "403", "Forbidden")]
    [InlineData(AuthorizerMode.Fail, "500", "Internal server error")]
    public async Task ARefusedConnect_WritesOneLine_WithItsStatusAndError_AndNoIntegration(AuthorizerMode? mode, string status, string error)
    {
        await using var fixture = await TemplateEmulatorFixture.StartAsync();
        fixture.Authorizer.Mode = mode ?? AuthorizerMode.Allow;
        using var socket = new ClientWebSocket();
        socket.Options.CollectHttpResponseDetails = true;

        await Assert.ThrowsAsync<WebSocketException>(() => socket.ConnectAsync(new Uri(fixture.Emulator.WebSocketUrl + (mode is null ? "" : "?ticket=t")), CancellationToken.None));

        Assert.Equal(int.Parse(status, System.Globalization.CultureInfo.InvariantCulture), (int)socket.HttpStatusCode);
        var line = JsonNode.Parse(Assert.Single(fixture.Emulator.Counters.AccessLog))!.AsObject();
        Assert.Equal(("$connect", status, error), ((string)line["route"]!, (string)line["status"]!, (string)line["err"]!));
        Assert.Equal(("-", "-"), ((string)line["intStatus"]!, (string)line["intMs"]!));
        Assert.Matches("^[A-Za-z0-9+/]{15}=$", (string)line["conn"]!);
    }

    [Fact]
    public async Task AFrameWhoseIntegrationCannotBeReached_IsLoggedAs500_WithApiGatewaysErrorAndTheIntegrationsError()
    {
        // The integration points at a port nothing listens on: the call cannot be made.
        await using var fixture = await TemplateEmulatorFixture.StartAsync(t =>
            t["Resources"]!["DefaultIntegration"]!["Properties"]!["IntegrationUri"] = $"http://127.0.0.1:{LoopbackPorts.Choose()}/talki/aws/default");
        var (socket, _) = await fixture.ConnectAsync();
        using var _1 = socket;

        await socket.SendTextAsync("{\"type\":\"hello\"}");
        await TemplateModeTests.WaitUntilAsync(() => fixture.Emulator.Counters.Integrations.Count == 1);

        var line = JsonNode.Parse(fixture.Emulator.Counters.AccessLog[^1])!.AsObject();
        Assert.Equal(("$default", "500", "Internal server error"), ((string)line["route"]!, (string)line["status"]!, (string)line["err"]!));
        Assert.Equal("Integration unreachable", (string)line["intErr"]!);
        Assert.Equal("-", (string)line["intStatus"]!);
    }

    [Fact]
    public async Task AStageWithoutAccessLogSettings_WritesNoLine()
    {
        await using var fixture = await TemplateEmulatorFixture.StartAsync(t => Stage(t).Remove("AccessLogSettings"));
        var (socket, _) = await fixture.ConnectAsync();

        await socket.SendTextAsync("{\"type\":\"hello\"}");
        await fixture.Backend.NextAsync(FakeBackend.Default);
        socket.Dispose();

        Assert.Equal(0, fixture.Emulator.Counters.AccessLogLines);
        Assert.Equal(0, fixture.Emulator.Counters.AccessLogBytes);
        Assert.Empty(fixture.Emulator.Counters.AccessLog);
    }

    [Theory]
    [InlineData("authorize.latency")]
    [InlineData("authorizer.latency")]       // the authorizer's own figure, not a key of its context
    [InlineData("authorizer.requestId")]
    public async Task AFormatWithAVariableTheEmulatorDoesNotModel_IsRefusedWhenTheTemplateIsRead(string variable)
    {
        var error = await Assert.ThrowsAsync<NotSupportedException>(() => TemplateEmulatorFixture.StartAsync(t =>
            Stage(t)["AccessLogSettings"]!["Format"] = $"{{\"requestId\":\"$context.requestId\",\"x\":\"$context.{variable}\"}}"));

        Assert.Contains(variable, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheAuthorizersContextKeys_AreLoggedAsTheIntegrationsHeadersGetThem()
    {
        await using var fixture = await TemplateEmulatorFixture.StartAsync(t =>
            Stage(t)["AccessLogSettings"]!["Format"] = "$context.routeKey $context.authorizer.room $context.authorizer.nothing");
        var (socket, _) = await fixture.ConnectAsync();
        using var _1 = socket;

        Assert.Equal("$connect room-1 -", Assert.Single(fixture.Emulator.Counters.AccessLog));
    }

    private static JsonObject Stage(JsonObject template)
        => template["Resources"]!.AsObject().Single(r => (string?)r.Value!["Type"] == "AWS::ApiGatewayV2::Stage").Value!["Properties"]!.AsObject();
}
