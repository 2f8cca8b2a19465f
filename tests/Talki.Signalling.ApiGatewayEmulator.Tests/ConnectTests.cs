using System.Net;
using System.Net.WebSockets;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Talki.Signalling.Emulator.Tests;

/// <summary><c>$connect</c>: the REQUEST authorizer event and how its answer decides the upgrade.</summary>
public sealed partial class ConnectTests
{
    [GeneratedRegex("^[A-Za-z0-9+/]{15}=$")]
    private static partial Regex ConnectionIdFormat();

    [Fact]
    public async Task Allow_UpgradesTheConnection_AfterPostingTheDocumentedAuthorizerEvent()
    {
        await using var fixture = await EmulatorFixture.StartAsync(o => o.Stage = "prod");

        using var socket = await fixture.ConnectAsync("tkt-42");

        Assert.Equal(WebSocketState.Open, socket.State);
        var call = Assert.Single(fixture.Backend.CallsTo(FakeBackend.Authorizer));
        Assert.StartsWith("application/json", call.Headers["content-type"], StringComparison.Ordinal);
        using var doc = JsonDocument.Parse(call.Body);
        var root = doc.RootElement;
        Assert.Equal("REQUEST", root.GetProperty("type").GetString());
        Assert.Equal("arn:aws:execute-api:us-east-1:123456789012:emu0api001/prod/$connect", root.GetProperty("methodArn").GetString());
        Assert.Equal("tkt-42", root.GetProperty("queryStringParameters").GetProperty("ticket").GetString());
        Assert.Equal("1", root.GetProperty("queryStringParameters").GetProperty("v").GetString());
        Assert.Equal("tkt-42", root.GetProperty("multiValueQueryStringParameters").GetProperty("ticket")[0].GetString());
        var headers = root.GetProperty("headers");
        Assert.Equal("websocket", headers.GetProperty("Upgrade").GetString(), ignoreCase: true);
        Assert.Equal("13", headers.GetProperty("Sec-WebSocket-Version").GetString());
        Assert.Equal("emu0api001.execute-api.us-east-1.amazonaws.com", headers.GetProperty("Host").GetString());
        Assert.Equal("https", headers.GetProperty("X-Forwarded-Proto").GetString());
        Assert.Equal(JsonValueKind.Array, root.GetProperty("multiValueHeaders").GetProperty("Host").ValueKind);
        Assert.Equal(JsonValueKind.Object, root.GetProperty("stageVariables").ValueKind);
        var context = root.GetProperty("requestContext");
        Assert.Equal("$connect", context.GetProperty("routeKey").GetString());
        Assert.Equal("CONNECT", context.GetProperty("eventType").GetString());
        Assert.Equal("IN", context.GetProperty("messageDirection").GetString());
        Assert.Equal("prod", context.GetProperty("stage").GetString());
        Assert.Equal("emu0api001", context.GetProperty("apiId").GetString());
        Assert.Equal("emu0api001.execute-api.us-east-1.amazonaws.com", context.GetProperty("domainName").GetString());
        Assert.Matches(ConnectionIdFormat(), context.GetProperty("connectionId").GetString());
        Assert.Matches(ConnectionIdFormat(), context.GetProperty("requestId").GetString());
        Assert.True(context.GetProperty("connectedAt").GetInt64() > 1_600_000_000_000);
        Assert.Equal(JsonValueKind.Number, context.GetProperty("requestTimeEpoch").ValueKind);
        Assert.Matches(@"^\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000$", context.GetProperty("requestTime").GetString());
        Assert.Equal("127.0.0.1", context.GetProperty("identity").GetProperty("sourceIp").GetString());
        Assert.Equal("EmulatorTests/1.0", context.GetProperty("identity").GetProperty("userAgent").GetString());
        Assert.Equal(1, fixture.Emulator.Counters.AuthorizerCalls);
        Assert.Equal(1, fixture.Emulator.Counters.ConnectionsAccepted);
    }

    /// <summary>
    /// Through the Lambda Web Adapter only the body of the pass-through response is the Lambda result (aws-facts.md §8): a
    /// 401 or 500 without a body is an invalid result (500), a non-JSON body too, a context holding an object or array
    /// too, and so is a result over 8 KB.
    /// </summary>
    [Theory]
    [InlineData(AuthorizerMode.Deny, HttpStatusCode.Forbidden)]
    [InlineData(AuthorizerMode.Unauthorized, HttpStatusCode.InternalServerError)]
    [InlineData(AuthorizerMode.Fail, HttpStatusCode.InternalServerError)]
    [InlineData(AuthorizerMode.GarbageWithStatus200, HttpStatusCode.InternalServerError)]
    [InlineData(AuthorizerMode.NestedContext, HttpStatusCode.InternalServerError)]
    [InlineData(AuthorizerMode.ArrayInContext, HttpStatusCode.InternalServerError)]
    [InlineData(AuthorizerMode.OversizedResult, HttpStatusCode.InternalServerError)]
    public async Task RefusedAuthorization_RejectsTheUpgrade_WithAnHttpStatus(AuthorizerMode mode, HttpStatusCode expected)
    {
        await using var fixture = await EmulatorFixture.StartAsync();
        fixture.Backend.Mode = mode;

        var socket = new ClientWebSocket();
        socket.Options.CollectHttpResponseDetails = true;
        await Assert.ThrowsAsync<WebSocketException>(() => socket.ConnectAsync(new Uri(fixture.Emulator.WebSocketUrl + "?ticket=x"), CancellationToken.None));

        Assert.Equal(expected, socket.HttpStatusCode);
        Assert.Equal(1, fixture.Emulator.Counters.AuthorizerCalls);
        Assert.Equal(1, fixture.Emulator.Counters.ConnectionsRejected);
        Assert.Equal(0, fixture.Emulator.Counters.DisconnectRouteCalls); // no connection, no $disconnect
    }

    [Theory]
    [InlineData(AuthorizerMode.AllowWithStatus500)]
    [InlineData(AuthorizerMode.ResultOfExactly8KB)]
    public async Task AuthorizerResultThatIsAValidAllow_Upgrades_WhateverTheAdaptersHttpStatus(AuthorizerMode mode)
    {
        await using var fixture = await EmulatorFixture.StartAsync();
        fixture.Backend.Mode = mode;

        using var socket = await fixture.ConnectAsync();

        Assert.Equal(WebSocketState.Open, socket.State);
        Assert.Equal(1, fixture.Emulator.Counters.ConnectionsAccepted);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    public async Task MissingIdentitySource_Is401_WithoutCallingTheAuthorizer(string? ticket)
    {
        await using var fixture = await EmulatorFixture.StartAsync();

        var socket = new ClientWebSocket();
        socket.Options.CollectHttpResponseDetails = true;
        var query = ticket is null ? "?v=1" : "?v=1&ticket=" + ticket;
        await Assert.ThrowsAsync<WebSocketException>(() => socket.ConnectAsync(new Uri(fixture.Emulator.WebSocketUrl + query), CancellationToken.None));

        Assert.Equal(HttpStatusCode.Unauthorized, socket.HttpStatusCode);
        Assert.Empty(fixture.Backend.Calls);
        Assert.Equal(0, fixture.Emulator.Counters.AuthorizerCalls);
    }

    [Fact]
    public async Task PushDuringConnect_IsGone_UntilTheConnectCompletes()
    {
        await using var fixture = await EmulatorFixture.StartAsync();
        Ports.PushOutcome? duringConnect = null;
        fixture.Backend.OnAuthorize = async id => duringConnect = await fixture.Connections.PushAsync(id, "{\"type\":\"welcome\"}"u8.ToArray());

        var (socket, id) = await fixture.ConnectWithIdAsync();
        using (socket)
        {
            Assert.Equal(Ports.PushOutcome.Gone, duringConnect);
            Assert.Equal(Ports.PushOutcome.Delivered, await fixture.Connections.PushAsync(id, "{\"type\":\"welcome\"}"u8.ToArray()));
            Assert.Equal("{\"type\":\"welcome\"}", (await socket.ReceiveAsync()).Message);
        }
    }

    [Fact]
    public void ConnectionIds_LookLikeApiGatewaysAndAreUnique()
    {
        var ids = Enumerable.Range(0, 1000).Select(_ => ApiGatewayEmulator.NewId()).ToList();

        Assert.All(ids, id => Assert.Matches(ConnectionIdFormat(), id));
        Assert.Equal(ids.Count, ids.Distinct(StringComparer.Ordinal).Count());
    }

    [Theory]
    [InlineData("""{"policyDocument":{"Statement":[{"Action":"execute-api:Invoke","Effect":"Allow","Resource":"arn:x/test/$connect"}]}}""", 200)]
    [InlineData("""{"policyDocument":{"Statement":[{"Action":"execute-api:*","Effect":"Allow","Resource":"arn:x/*"}]}}""", 200)]
    [InlineData("""{"policyDocument":{"Statement":[{"Action":["execute-api:Invoke"],"Effect":"Allow","Resource":["arn:x/test/$connect"]}]}}""", 200)]
    [InlineData("""{"policyDocument":{"Statement":[{"Action":"execute-api:Invoke","Effect":"Deny","Resource":"arn:x/test/$connect"}]}}""", 403)]
    [InlineData("""{"policyDocument":{"Statement":[{"Action":"execute-api:Invoke","Effect":"Allow","Resource":"arn:x/other/$connect"}]}}""", 403)]
    [InlineData("""{"policyDocument":{"Statement":[{"Action":"*","Effect":"Allow","Resource":"*"},{"Action":"*","Effect":"Deny","Resource":"*"}]}}""", 403)]
    [InlineData("""{"principalId":"x"}""", 500)]
    [InlineData("""not json""", 500)]
    public void PolicyDecision_FollowsIamEvaluation(string json, int expected)
        => Assert.Equal(expected, ApiGatewayEmulator.PolicyDecision(System.Text.Encoding.UTF8.GetBytes(json), "arn:x/test/$connect"));
}
