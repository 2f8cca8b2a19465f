using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Talki.Signalling.Aws.Callbacks;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Aws.Tests.Callbacks;

public sealed class ApiGatewayCallbacksTests
{
    private const string AdaConnection = "R0oXAdfD0kwCH6w=";
    private const string BobConnection = "R1kmxc2VNjMCFIA=";

    [Fact]
    public async Task Authorizer_ValidTicket_AllowsWithRoomMemberAndEpochContext()
    {
        await using var host = await CallbacksTestHost.StartAsync();
        var ada = await host.SignInAsync("Ada");
        var room = await ada.CreateRoomAsync();

        var answer = await host.AuthorizeAsync(AdaConnection, CallbacksTestHost.TicketQuery(room.Ticket));

        Assert.Equal("Allow", answer.Effect);
        Assert.Equal("2012-10-17", answer.Version);
        Assert.Equal("execute-api:Invoke", answer.Action);
        Assert.Equal(CallbacksTestHost.MethodArn, answer.Resource);
        Assert.Equal(room.Member.Value, answer.PrincipalId);
        var context = answer.Context!.Value;
        Assert.Equal(room.Room.Value, context.GetProperty("room").GetString());
        Assert.Equal(room.Member.Value, context.GetProperty("member").GetString());
        Assert.True(long.Parse(context.GetProperty("epoch").GetString()!, CultureInfo.InvariantCulture) >= 1);
        Assert.Equal(room.SealsAt.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture), context.GetProperty("sealsAt").GetString());
        Assert.Equal(["room", "member", "epoch", "sealsAt", "resume"], context.EnumerateObject().Select(p => p.Name).ToArray());
        Assert.Equal("0", context.GetProperty("resume").GetString()); // a first connect asks for nothing
        // Flat (API Gateway refuses objects and arrays) and far under the 8 KB authorizer result limit.
        Assert.All(context.EnumerateObject(), p => Assert.Equal(JsonValueKind.String, p.Value.ValueKind));
        Assert.True(Encoding.UTF8.GetByteCount(answer.Raw) < 1024, $"authorizer result of {answer.Raw.Length} bytes");
        Assert.DoesNotContain(AdaConnection, answer.Raw, StringComparison.Ordinal);
        Assert.DoesNotContain(room.Ticket, answer.Raw, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Authorizer_ReplayedTicket_IsDenied()
    {
        await using var host = await CallbacksTestHost.StartAsync();
        var ada = await host.SignInAsync("Ada");
        var room = await ada.CreateRoomAsync();
        Assert.Equal("Allow", (await host.AuthorizeAsync(AdaConnection, CallbacksTestHost.TicketQuery(room.Ticket))).Effect);

        var replay = await host.AuthorizeAsync(BobConnection, CallbacksTestHost.TicketQuery(room.Ticket));

        AssertDenied(replay);
        Assert.Contains(host.Logs.Entries, e => e.EventId.Id == 6002 && e.Text.Contains("TicketInvalid", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("forged")]
    [InlineData("missing")]
    [InlineData("empty")]
    [InlineData("no-query")]
    [InlineData("version-5")]
    [InlineData("version-0")]
    [InlineData("version-x")]
    public async Task Authorizer_ForgedOrMissingTicketOrWrongVersion_IsDenied(string variant)
    {
        await using var host = await CallbacksTestHost.StartAsync();
        var ada = await host.SignInAsync("Ada");
        var room = await ada.CreateRoomAsync();
        Dictionary<string, string>? query = variant switch
        {
            "forged" => CallbacksTestHost.TicketQuery("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            "missing" => new() { ["v"] = "1" },
            "empty" => CallbacksTestHost.TicketQuery(string.Empty),
            "no-query" => null,
            _ => new() { ["v"] = variant["version-".Length..], ["ticket"] = room.Ticket },
        };

        var answer = await host.AuthorizeAsync(AdaConnection, query);

        AssertDenied(answer);
        if (variant.StartsWith("version-", StringComparison.Ordinal))
        {
            // The ticket was not consumed by the refused attempt; version 4 (this server's) is served.
            Assert.Equal("Allow", (await host.AuthorizeAsync(AdaConnection, new Dictionary<string, string> { ["v"] = "4", ["ticket"] = room.Ticket })).Effect);
        }
    }

    /// <summary>Ada creates a room and connects (a version 1 admin); Bob signs in and knocks: his ticket says pending.</summary>
    private static async Task<(Talki.Signalling.Http.TicketResponse Room, CallbacksUser Bob, Talki.Signalling.Http.TicketResponse Knock)> KnockWithAdminConnectedAsync(CallbacksTestHost host)
    {
        var ada = await host.SignInAsync("Ada");
        var room = await ada.CreateRoomAsync();
        await host.ConnectAsync(AdaConnection, room);
        var bob = await host.SignInAsync("Bob");
        var knock = await bob.JoinAsync(room.Room);
        Assert.Equal(AdmissionStatus.Pending, knock.Status);
        return (room, bob, knock);
    }

    [Fact]
    public async Task Authorizer_WaitingKnock_IsBoundInTheAuthorizer_HearsNothing_AndItsAdmissionIsItsWelcome()
    {
        // Protocol version 4: the knock connects with wait=1 and sends no frame; the authorizer's grant carries the epoch
        // it was bound with, and the admin's admit pushes it its welcome.
        await using var host = await CallbacksTestHost.StartAsync();
        var (room, bob, knock) = await KnockWithAdminConnectedAsync(host);

        var answer = await host.AuthorizeAsync(BobConnection, new Dictionary<string, string> { ["v"] = "4", ["wait"] = "1", ["ticket"] = knock.Ticket });

        Assert.Equal("Allow", answer.Effect);
        Assert.DoesNotContain(BobConnection, answer.Raw, StringComparison.Ordinal);
        Assert.Empty(host.Push.MessagesTo(BobConnection));
        var epoch = answer.Context!.Value.GetProperty("epoch").GetString();

        var (status, _) = await host.SendFrameAsync(AdaConnection, $$$"""{"type":"admit","member":"{{{knock.Member}}}"}""");

        Assert.Equal(HttpStatusCode.OK, status);
        var welcome = await host.Push.ExpectAsync<WelcomeMessage>(BobConnection);
        Assert.Equal(AdmissionStatus.Admitted, welcome.Status);
        Assert.Equal(4, welcome.ProtocolVersion);
        Assert.Equal(epoch, welcome.You.Epoch.ToString(CultureInfo.InvariantCulture));
        Assert.Single(welcome.Links!);
        Assert.Single(host.Push.MessagesTo(BobConnection));
    }

    [Theory]
    [InlineData("2", "4")]
    [InlineData("yes", "4")]
    [InlineData("1", "3")]
    [InlineData("1", null)]
    public async Task Authorizer_MalformedWaitOrWaitBelowVersion4_IsDenied_AndTheTicketIsKept(string wait, string? version)
    {
        await using var host = await CallbacksTestHost.StartAsync();
        var (_, _, knock) = await KnockWithAdminConnectedAsync(host);
        var query = new Dictionary<string, string> { ["wait"] = wait, ["ticket"] = knock.Ticket };
        if (version is not null)
        {
            query["v"] = version;
        }

        AssertDenied(await host.AuthorizeAsync(BobConnection, query));

        Assert.Equal("Allow", (await host.AuthorizeAsync(BobConnection, new Dictionary<string, string> { ["v"] = "4", ["wait"] = "1", ["ticket"] = knock.Ticket })).Effect);
    }

    [Fact]
    public async Task Authorizer_WaitingConnectOfAMemberAdmittedSinceItsTicket_IsDenied_AndANewTicketSaysAdmitted()
    {
        await using var host = await CallbacksTestHost.StartAsync();
        var (room, bob, knock) = await KnockWithAdminConnectedAsync(host);
        await host.SendFrameAsync(AdaConnection, $$$"""{"type":"admit","member":"{{{knock.Member}}}"}""");

        AssertDenied(await host.AuthorizeAsync(BobConnection, new Dictionary<string, string> { ["v"] = "4", ["wait"] = "1", ["ticket"] = knock.Ticket }));

        Assert.Contains(host.Logs.Entries, e => e.EventId.Id == 6002 && e.Text.Contains("TicketInvalid", StringComparison.Ordinal));
        Assert.Equal(AdmissionStatus.Admitted, (await bob.JoinAsync(room.Room)).Status);
    }

    [Theory]
    [InlineData("")]
    [InlineData("{")]
    [InlineData("not json at all")]
    [InlineData("null")]
    [InlineData("[]")]
    [InlineData("{}")]
    [InlineData("""{"type":"TOKEN","methodArn":"arn:x","requestContext":{"connectionId":"R0oXAdfD0kwCH6w="},"queryStringParameters":{"ticket":"t"}}""")]
    [InlineData("""{"type":"REQUEST","requestContext":{"connectionId":"R0oXAdfD0kwCH6w="},"queryStringParameters":{"ticket":"t"}}""")]
    [InlineData("""{"type":"REQUEST","methodArn":"arn:x","queryStringParameters":{"ticket":"t"}}""")]
    [InlineData("""{"type":"REQUEST","methodArn":"arn:x","requestContext":{"connectionId":""},"queryStringParameters":{"ticket":"t"}}""")]
    [InlineData("""{"type":"REQUEST","methodArn":"arn:x","requestContext":{"connectionId":"R0oXAdfD0kwCH6w=","eventType":"MESSAGE"},"queryStringParameters":{"ticket":"t"}}""")]
    [InlineData("""{"type":"REQUEST","methodArn":"arn:x","requestContext":{"connectionId":"R0oXAdfD0kwCH6w=","connectedAt":{"a":1}},"queryStringParameters":{"ticket":"t"}}""")]
    [InlineData("""{"type":"REQUEST","methodArn":"arn:x","requestContext":{"connectionId":"R0oXAdfD0kwCH6w="},"queryStringParameters":{"ticket":["t"]}}""")]
    public async Task Authorizer_MalformedEvent_DeniesWith200AndNoStackTrace(string body)
    {
        await using var host = await CallbacksTestHost.StartAsync();

        var (status, text) = await host.PostEventAsync(body);

        Assert.Equal(HttpStatusCode.OK, status);
        var answer = AuthorizerAnswer.Parse(text);
        Assert.Equal("Deny", answer.Effect);
        Assert.Equal(ApiGatewayCallbacks.DeniedPrincipal, answer.PrincipalId);
        Assert.Null(answer.Context);
        AssertNoStackTrace(text);
        Assert.DoesNotContain(AdaConnection, text, StringComparison.Ordinal);
        Assert.Contains(host.Logs.Entries, e => e.EventId.Id is 6002 or 6003);
    }

    [Fact]
    public async Task Authorizer_OversizedEvent_IsDenied()
    {
        await using var host = await CallbacksTestHost.StartAsync();
        var ada = await host.SignInAsync("Ada");
        var room = await ada.CreateRoomAsync();
        var query = CallbacksTestHost.TicketQuery(room.Ticket);
        query["padding"] = new string('x', ApiGatewayCallbacks.MaxAuthorizerEventBytes);

        var answer = await host.AuthorizeAsync(AdaConnection, query);

        // The event is not read, so its methodArn is unknown: the Deny covers every resource.
        Assert.Equal("Deny", answer.Effect);
        Assert.Equal(ApiGatewayCallbacks.DeniedPrincipal, answer.PrincipalId);
        Assert.Equal("*", answer.Resource);
        Assert.Null(answer.Context);
        Assert.Contains(host.Logs.Entries, e => e.EventId.Id == 6003);

        // The ticket was not consumed.
        Assert.Equal("Allow", (await host.AuthorizeAsync(AdaConnection, CallbacksTestHost.TicketQuery(room.Ticket))).Effect);
    }

    [Fact]
    public async Task Default_RelaysHello_WelcomeIsPushedToTheConnection()
    {
        await using var host = await CallbacksTestHost.StartAsync();
        var ada = await host.SignInAsync("Ada");
        var room = await ada.CreateRoomAsync();

        var welcome = await host.ConnectAsync(AdaConnection, room);

        Assert.Equal(room.Member, welcome.You.Id);
        Assert.Equal(room.Room, welcome.Room.Id);
        Assert.All(host.Push.Pushes, p => Assert.Equal(AdaConnection, p.ConnectionId));
    }

    [Fact]
    public async Task Default_WithForwardedSecWebSocketHeaders_IsAPlainPostNotAnUpgrade()
    {
        await using var host = await CallbacksTestHost.StartAsync();
        var ada = await host.SignInAsync("Ada");
        var room = await ada.CreateRoomAsync();
        Assert.Equal("Allow", (await host.AuthorizeAsync(AdaConnection, CallbacksTestHost.TicketQuery(room.Ticket))).Effect);

        var (status, body) = await host.SendFrameAsync(AdaConnection, """{"type":"hello","version":1}""", decorate: request =>
        {
            request.Headers.TryAddWithoutValidation("Sec-WebSocket-Version", "13");
            request.Headers.TryAddWithoutValidation("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==");
            request.Headers.TryAddWithoutValidation("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits");
            request.Headers.TryAddWithoutValidation("X-Forwarded-Proto", "https");
        });

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(string.Empty, body);
        await host.Push.ExpectAsync<WelcomeMessage>(AdaConnection);

        var (disconnectStatus, _) = await host.CallIntegrationAsync("/talki/aws/disconnect", AdaConnection, string.Empty, decorate: request =>
        {
            request.Headers.TryAddWithoutValidation("Sec-WebSocket-Version", "13");
            request.Headers.TryAddWithoutValidation("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==");
        });
        Assert.Equal(HttpStatusCode.OK, disconnectStatus);
    }

    [Theory]
    [InlineData("/talki/aws/default")]
    [InlineData("/talki/aws/disconnect")]
    public async Task Integrations_WithoutConnectionIdHeader_Answer401(string path)
    {
        await using var host = await CallbacksTestHost.StartAsync();

        var (status, body) = await host.CallIntegrationAsync(path, connectionId: null, """{"type":"hello","version":1}""");

        Assert.Equal(HttpStatusCode.Unauthorized, status);
        Assert.Equal(SignallingErrorCode.Unauthenticated, CallbacksTestHost.ParseError(body).Code);
        Assert.Empty(host.Push.Pushes);
        Assert.Contains(host.Logs.Entries, e => e.EventId.Id == 6005 && e.Text.Contains("no connection id header", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("/talki/aws/default", null)]
    [InlineData("/talki/aws/default", "")]
    [InlineData("/talki/aws/default", "s3cr3t-gateway-value-0123456788")]
    [InlineData("/talki/aws/default", "short")]
    [InlineData("/talki/aws/default", "s3cr3t-gateway-value-0123456789-and-more")]
    [InlineData("/talki/aws/disconnect", null)]
    [InlineData("/talki/aws/disconnect", "S3CR3T-GATEWAY-VALUE-0123456789")]
    public async Task Integrations_WithMissingOrWrongSecret_Answer401AndDoNothing(string path, string? secret)
    {
        await using var host = await CallbacksTestHost.StartAsync();
        var ada = await host.SignInAsync("Ada");
        var room = await ada.CreateRoomAsync();
        await host.ConnectAsync(AdaConnection, room);
        var pushed = host.Push.Pushes.Count;

        var (status, body) = await host.CallIntegrationAsync(path, AdaConnection, """{"type":"ping","id":"p1"}""", secret);

        Assert.Equal(HttpStatusCode.Unauthorized, status);
        var error = CallbacksTestHost.ParseError(body);
        Assert.Equal(SignallingErrorCode.Unauthenticated, error.Code);
        Assert.DoesNotContain(AdaConnection, body, StringComparison.Ordinal);
        Assert.Equal(pushed, host.Push.Pushes.Count);

        // The connection is still bound: an authenticated ping is answered.
        var (ok, _) = await host.SendFrameAsync(AdaConnection, """{"type":"ping","id":"p2"}""");
        Assert.Equal(HttpStatusCode.OK, ok);
        await host.Push.ExpectAsync<PongMessage>(AdaConnection, p => p.Id == "p2");
    }

    [Fact]
    public async Task Default_EmptyBody_Answers400MalformedMessage()
    {
        await using var host = await CallbacksTestHost.StartAsync();

        var (status, body) = await host.SendFrameAsync(AdaConnection, string.Empty);

        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal(SignallingErrorCode.MalformedMessage, CallbacksTestHost.ParseError(body).Code);
        Assert.Contains(host.Logs.Entries, e => e.EventId.Id == 6006);
    }

    [Fact]
    public async Task Default_OversizedBody_Answers413AndPushesMessageTooLarge()
    {
        await using var host = await CallbacksTestHost.StartAsync();
        var frame = "{\"type\":\"ping\",\"id\":\"" + new string('x', 40 * 1024) + "\"}";

        var (status, body) = await host.SendFrameAsync(AdaConnection, frame);

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, status);
        Assert.Equal(SignallingErrorCode.MessageTooLarge, CallbacksTestHost.ParseError(body).Code);
        var error = await host.Push.ExpectAsync<ErrorMessage>(AdaConnection);
        Assert.Equal(SignallingErrorCode.MessageTooLarge, error.Code);
        Assert.Contains(host.Logs.Entries, e => e.EventId.Id == 6007);
    }

    [Fact]
    public async Task Default_OversizedBodiesInALoop_PayTheByteLimit_AreRefusedAsAFlood_AndTheConnectionIsClosed()
    {
        // Each oversized message pays the sender's byte limit as the largest allowed message (32 KiB of a 256 KiB burst):
        // eight are answered message_too_large, the rest rate_limited, and the fifth refusal closes the connection. Answered
        // without paying, each would cost the operator an invocation and a push without end.
        await using var host = await CallbacksTestHost.StartAsync(signalling: o => o.Limits.RateLimitedMessagesBeforeClose = 5);
        var frame = "{\"type\":\"ping\",\"id\":\"" + new string('x', 40 * 1024) + "\"}";

        var elapsed = System.Diagnostics.Stopwatch.StartNew();
        for (var i = 0; i < 100 && !host.Push.Closes.Contains(AdaConnection); i++)
        {
            var (status, _) = await host.SendFrameAsync(AdaConnection, frame);
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, status);
        }

        Assert.Contains(AdaConnection, host.Push.Closes);
        var errors = host.Push.MessagesTo(AdaConnection).OfType<ErrorMessage>().Select(e => e.Code).ToList();
        Assert.Equal(5, errors.Count(c => c == SignallingErrorCode.RateLimited));

        // The burst, and one more for each second the loop ran (32 KiB a second refill).
        Assert.InRange(errors.Count(c => c == SignallingErrorCode.MessageTooLarge), 8, 9 + (int)elapsed.Elapsed.TotalSeconds);
    }

    [Theory]
    [InlineData("mapped")]
    [InlineData("absent")]
    [InlineData("malformed")]
    public async Task Disconnect_UnbindsTheConnection_AndTheOtherMemberGetsPeerLeftWhenTheGracePeriodEnds_WithoutLeakingConnectionIds(string authorizerContext)
    {
        // The authorizer's context names the member: a connection bound through it has no record by connection id. A
        // disconnect is never refused: without the context (a stack that does not map it on $disconnect), or malformed, it
        // finds nobody, and the departure is found as a lost $disconnect's is (API Gateway's $disconnect is best effort):
        // by the next push to the dead socket, which answers 410 and starts the grace period.
        await using var host = await CallbacksTestHost.StartAsync(signalling: o => o.ResumeGracePeriod = TimeSpan.FromSeconds(1));
        var ada = await host.SignInAsync("Ada");
        var room = await ada.CreateRoomAsync();
        await host.ConnectAsync(AdaConnection, room);

        var bob = await host.SignInAsync("Bob");
        var bobTicket = await bob.JoinAsync(room.Room);
        await host.ConnectAsync(BobConnection, bobTicket);
        await host.Push.ExpectAsync<AdmissionRequestMessage>(AdaConnection);
        var (admitted, _) = await host.SendFrameAsync(AdaConnection, $$$"""{"type":"admit","member":"{{{bobTicket.Member}}}"}""");
        Assert.Equal(HttpStatusCode.OK, admitted);
        await host.Push.ExpectAsync<ConnectToPeerMessage>(AdaConnection, p => p.Peer.Id == bobTicket.Member);

        host.MapAuthorizerContext = authorizerContext != "absent";
        var (status, body) = await host.CallIntegrationAsync("/talki/aws/disconnect", BobConnection, string.Empty, decorate: request =>
        {
            if (authorizerContext == "malformed")
            {
                request.Headers.Remove("x-talki-seals-at");
                request.Headers.TryAddWithoutValidation("x-talki-seals-at", "soon");
            }
        });

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(string.Empty, body);
        if (authorizerContext != "mapped")
        {
            await Task.Delay(TimeSpan.FromSeconds(1.5)); // the grace period and more, on the real clock
            Assert.Empty(host.Push.MessagesTo(AdaConnection).OfType<PeerLeftMessage>());
            host.Push.Gone[BobConnection] = true;
            var mapped = host.MapAuthorizerContext;
            host.MapAuthorizerContext = true; // Ada's own frames carry her context
            await host.SendFrameAsync(AdaConnection, $$$"""{"type":"signal","id":"s1","to":"{{{bobTicket.Member}}}","candidates":[{"candidate":"after","sdpMid":"0"}]}""");
            host.MapAuthorizerContext = mapped;
        }

        var left = await host.Push.ExpectAsync<PeerLeftMessage>(AdaConnection);
        Assert.Equal(bobTicket.Member, left.Member);

        // Bob's connection is unbound: a frame on it no longer reaches the room.
        var before = host.Push.Pushes.Count(p => p.ConnectionId == AdaConnection);
        await host.SendFrameAsync(BobConnection, """{"type":"signal","to":"x","data":{}}""");
        Assert.Equal(before, host.Push.Pushes.Count(p => p.ConnectionId == AdaConnection));

        // Connection ids only ever appear as push targets: never in a pushed message, a response body or a log line.
        string[] connections = [AdaConnection, BobConnection];
        Assert.All(host.Push.Pushes, p => Assert.Contains(p.ConnectionId, connections));
        Assert.All(host.Push.Pushes, p => Assert.All(connections, c => Assert.DoesNotContain(c, p.Json, StringComparison.Ordinal)));
        Assert.All(host.ResponseBodies, b => Assert.All(connections, c => Assert.DoesNotContain(c, b, StringComparison.Ordinal)));
        Assert.All(host.Logs.Entries, e => Assert.All(connections, c => Assert.DoesNotContain(c, e.Text, StringComparison.Ordinal)));
        Assert.All(host.Logs.Entries, e => Assert.DoesNotContain(room.Ticket, e.Text, StringComparison.Ordinal));
    }

    [Fact]
    public async Task ConfiguredPathsAndHeaders_AreUsed()
    {
        await using var host = await CallbacksTestHost.StartAsync(o =>
        {
            o.AuthorizerPath = "/lwa/events";
            o.DefaultRoutePath = "/gw/default";
        });
        var ada = await host.SignInAsync("Ada");
        var room = await ada.CreateRoomAsync();

        var (oldPath, _) = await host.PostEventAsync(CallbacksTestHost.AuthorizerEvent(AdaConnection, CallbacksTestHost.TicketQuery(room.Ticket)));
        Assert.Equal(HttpStatusCode.NotFound, oldPath);
        var (status, text) = await host.PostEventAsync(CallbacksTestHost.AuthorizerEvent(AdaConnection, CallbacksTestHost.TicketQuery(room.Ticket)), "/lwa/events");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("Allow", AuthorizerAnswer.Parse(text).Effect);
        var (relayed, _) = await host.CallIntegrationAsync("/gw/default", AdaConnection, """{"type":"hello","version":1}""");
        Assert.Equal(HttpStatusCode.OK, relayed);
        await host.Push.ExpectAsync<WelcomeMessage>(AdaConnection);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("fifteen-chars!!")]
    [InlineData("has a space in the secret")]
    public async Task Startup_WithoutAValidSecret_Fails(string? secret)
    {
        var exception = await Assert.ThrowsAsync<OptionsValidationException>(async () =>
        {
            await using var host = await CallbacksTestHost.StartAsync(o => o.GatewaySecret = secret);
        });
        Assert.Contains("GatewaySecret", exception.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validator_RejectsBadPathsAndHeaderNames()
    {
        var validator = new ApiGatewayCallbacksOptionsValidator();
        var valid = new ApiGatewayCallbacksOptions { GatewaySecret = CallbacksTestHost.Secret };
        Assert.True(validator.Validate(null, valid).Succeeded);
        Assert.Equal("/events", valid.AuthorizerPath);
        Assert.Equal("/talki/aws/default", valid.DefaultRoutePath);
        Assert.Equal("/talki/aws/disconnect", valid.DisconnectRoutePath);
        Assert.Equal("x-talki-connection-id", valid.ConnectionIdHeader);
        Assert.Equal("x-talki-gateway-secret", valid.GatewaySecretHeader);

        Assert.False(validator.Validate(null, new ApiGatewayCallbacksOptions { GatewaySecret = CallbacksTestHost.Secret, AuthorizerPath = "events" }).Succeeded);
        Assert.False(validator.Validate(null, new ApiGatewayCallbacksOptions { GatewaySecret = CallbacksTestHost.Secret, DefaultRoutePath = "/a/{id}" }).Succeeded);
        Assert.False(validator.Validate(null, new ApiGatewayCallbacksOptions { GatewaySecret = CallbacksTestHost.Secret, DisconnectRoutePath = "/talki/aws/default" }).Succeeded);
        Assert.False(validator.Validate(null, new ApiGatewayCallbacksOptions { GatewaySecret = CallbacksTestHost.Secret, ConnectionIdHeader = "bad header" }).Succeeded);
        Assert.False(validator.Validate(null, new ApiGatewayCallbacksOptions { GatewaySecret = CallbacksTestHost.Secret, GatewaySecretHeader = "X-Talki-Connection-Id" }).Succeeded);
    }

    [Fact]
    public void Map_WithoutAddApiGatewayCallbacks_Throws()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Services.AddTalkiSignalling();
        using var app = builder.Build();
        Assert.Throws<InvalidOperationException>(() => app.MapTalkiApiGatewayCallbacks());
    }

    private static void AssertDenied(AuthorizerAnswer answer)
    {
        Assert.Equal("Deny", answer.Effect);
        Assert.Equal(ApiGatewayCallbacks.DeniedPrincipal, answer.PrincipalId);
        Assert.Equal("execute-api:Invoke", answer.Action);
        Assert.Equal(CallbacksTestHost.MethodArn, answer.Resource);
        Assert.Null(answer.Context);
        AssertNoStackTrace(answer.Raw);
    }

    private static void AssertNoStackTrace(string text)
    {
        Assert.DoesNotContain("Exception", text, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", text, StringComparison.Ordinal);
        Assert.DoesNotContain(".cs:line", text, StringComparison.Ordinal);
    }
}
