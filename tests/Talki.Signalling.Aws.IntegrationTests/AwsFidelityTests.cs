using System.Globalization;
using System.Net;
using Amazon;
using Amazon.Runtime;
using Amazon.Runtime.Signing;
using Talki.Signalling.Aws.Tests.DynamoDb;
using Talki.Signalling.Http;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Aws.IntegrationTests;

/// <summary>
/// The AWS path under the synthesized template's rules (IAM on @connections and DynamoDB, the function URL's permissions,
/// the authorizer's context mapped into headers, Lambda's spread over instances), with role-split hosts.
/// </summary>
[Collection(DynaliteGroup.Name)]
public sealed class AwsFidelityTests(DynaliteFixture dynalite)
{
    [Fact]
    public async Task TwoBackendInstances_TheCallSpreadsOverBoth_SessionsAndRoomsAreShared_AndIamAllowsEverything()
    {
        await using var stack = await AwsStack.StartAsync(dynalite, "talki-fidelity-two", backendInstances: 2);
        using var ada = await stack.SignInAsync("Ada");
        var room = await ada.TicketAsync("/talki/rooms", HttpStatusCode.Created);
        await using var adaSocket = await ada.ConnectAsync(room);
        using var bob = await stack.SignInAsync("Bob");
        var ticket = await bob.TicketAsync($"/talki/rooms/{room.Room}/tickets", HttpStatusCode.OK);
        await using var bobSocket = await bob.ConnectAsync(ticket);
        await adaSocket.ExpectAsync<AdmissionRequestMessage>(m => m.Member.Id == ticket.Member);
        await adaSocket.SendAsync($$$"""{"type":"admit","member":"{{{ticket.Member}}}"}""");
        await bobSocket.ExpectAsync<AdmittedMessage>();
        var plan = await adaSocket.ExpectAsync<ConnectToPeerMessage>(m => m.Peer.Id == ticket.Member);
        await adaSocket.SendAsync($$$"""{"type":"signal","to":"{{{ticket.Member}}}","toEpoch":{{{plan.PeerEpoch}}},"description":{"type":"offer","sdp":"spread"}}""");

        Assert.Equal("spread", (await bobSocket.ExpectAsync<SignalRelayMessage>(m => m.Description is not null)).Description!.Sdp);
        var counters = stack.Emulator.Counters;
        var byInstance = counters.Invocations.Where(i => i.Function == "Backend").GroupBy(i => i.Instance).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal([0, 1], byInstance.Keys.Order());
        Assert.Single(stack.Harness.HostsOf("Authorizer"));
        Assert.Equal(2, counters.FunctionInvocations("Authorizer"));
        Assert.DoesNotContain(counters.DynamoDbCalls.Keys, k => k.EndsWith(" denied", StringComparison.Ordinal));
        Assert.Equal(0, counters.ConnectionsAccessDenied);
        Assert.Equal(0, counters.FunctionUrlForbidden);
    }

    /// <summary>
    /// The stack's authorizer is a custom runtime (samples/Talki.Samples.AwsAuthorizer): API Gateway's connects reach it
    /// through its runtime API, never a web server; a replayed ticket is denied there; and after its execution environment is
    /// replaced (a cold start), the next connect waits for the new runtime's init and is served.
    /// </summary>
    [Fact]
    public async Task TheAuthorizerIsACustomRuntime_ItsConnectsComeThroughTheRuntimeApi_AndAReplacedEnvironmentServesTheNext()
    {
        await using var stack = await AwsStack.StartAsync(dynalite, "talki-fidelity-custom-runtime");
        var authorizerHost = Assert.Single(stack.Harness.HostsOf("Authorizer"));
        Assert.True(authorizerHost.CustomRuntime);
        Assert.False(authorizerHost.Settings.ContainsKey("urls"));
        using var ada = await stack.SignInAsync("Ada");
        var room = await ada.TicketAsync("/talki/rooms", HttpStatusCode.Created);
        await using var adaSocket = await ada.ConnectAsync(room);

        // The same ticket again: denied by the authorizer (403), nothing bound.
        Assert.Equal(HttpStatusCode.Forbidden, await AwsSocket.RefusedStatusAsync(room.WebSocketUrl));

        await stack.Harness.RestartAsync("Authorizer");
        using var bob = await stack.SignInAsync("Bob");
        var ticket = await bob.TicketAsync($"/talki/rooms/{room.Room}/tickets", HttpStatusCode.OK);
        await using var bobSocket = await bob.ConnectAsync(ticket);
        await adaSocket.ExpectAsync<AdmissionRequestMessage>(m => m.Member.Id == ticket.Member);

        var runtime = stack.Emulator.RuntimeApi("Authorizer");
        Assert.Equal(3, stack.Emulator.Counters.FunctionInvocations("Authorizer"));
        Assert.All(stack.Emulator.Counters.Invocations.Where(i => i.Function == "Authorizer"), i => Assert.Equal(("runtime-api", 200), (i.Path, i.Status)));
        Assert.Equal(3, runtime.Invocations);
        Assert.Empty(runtime.ReportedErrors);
        Assert.DoesNotContain(stack.Emulator.Counters.DynamoDbCalls.Keys, k => k.EndsWith(" denied", StringComparison.Ordinal));
    }

    /// <summary>Defect 1 of the issue: without <c>lambda:InvokeFunction</c> + <c>InvokedViaFunctionUrl</c>, the function URL refuses everything.</summary>
    [Fact]
    public async Task WithoutTheInvokedViaFunctionUrlPermission_TheHttpApiIs403_AndMessagesNeverReachTheBackend()
    {
        await using var stack = await AwsStack.StartAsync(dynalite, "talki-fidelity-no-url-permission", alterTemplate: template =>
            template["Resources"]!.AsObject().Remove("BackendInvokeViaFunctionUrl"));

        using var browser = new AwsUser(stack.FunctionUrl);
        var signIn = await browser.PostAsync("/talki/session/anonymous", """{"displayName":"Ada"}""");
        Assert.Equal(HttpStatusCode.Forbidden, signIn.StatusCode);

        // Past the URL (straight to an instance, which AWS would not allow), a ticket; the socket then opens (the authorizer
        // has no URL), but its frames never reach the backend and the client hears nothing: no welcome, ever.
        using var ada = new AwsUser(stack.Harness.HostsOf("Backend")[0].Address);
        Assert.Equal(HttpStatusCode.OK, (await ada.PostAsync("/talki/session/anonymous", """{"displayName":"Ada"}""")).StatusCode);
        var room = await ada.TicketAsync("/talki/rooms", HttpStatusCode.Created);
        await using var socket = await AwsSocket.OpenAsync(room.WebSocketUrl);
        await socket.SendAsync("""{"type":"hello","version":1}""");
        await socket.SendAsync("""{"type":"ping","id":"p"}""");
        var counters = stack.Emulator.Counters;
        await WaitUntilAsync(() => counters.IntegrationCalls("$default") == 2 && counters.Integrations.Count == 2);

        Assert.All(counters.Integrations, i => Assert.Equal(403, i.Status));
        Assert.DoesNotContain(counters.Invocations, i => i.Function == "Backend" && i.Path == "/talki/aws/default");
        Assert.Empty(stack.DefaultCallHeaders);
        Assert.Equal(3, counters.FunctionUrlForbidden); // the sign-in and both frames
        await Task.Delay(TimeSpan.FromMilliseconds(300));
        Assert.Empty(socket.AllFrames);
    }

    /// <summary>
    /// The enforcement behind defect 3: the authorizer's role has no <c>execute-api:ManageConnections</c>, so an authorizer
    /// that pushes or closes through <c>@connections</c> is refused; the backend's role is allowed the same request.
    /// </summary>
    [Fact]
    public async Task ConnectionsApi_SignedWithTheAuthorizerRolesKey_Is403AccessDenied_WithTheBackendRolesKey_Delivered()
    {
        await using var stack = await AwsStack.StartAsync(dynalite, "talki-fidelity-iam");
        using var ada = await stack.SignInAsync("Ada");
        var room = await ada.TicketAsync("/talki/rooms", HttpStatusCode.Created);
        await using var socket = await ada.ConnectAsync(room);
        var id = Assert.Single(stack.Emulator.OpenConnectionIds);
        var path = $"/{stack.Emulator.Stage}/@connections/{Uri.EscapeDataString(id)}";
        var authorizer = stack.Harness.HostsOf("Authorizer")[0];
        var backend = stack.Harness.HostsOf("Backend")[0];

        using var asAuthorizer = Signed(stack, authorizer.AccessKeyId, authorizer.SecretAccessKey);
        using var refused = await asAuthorizer.PostAsync(path, new StringContent("""{"type":"pong","id":"from-authorizer"}"""));
        using var refusedDelete = await asAuthorizer.DeleteAsync(path);
        using var asBackend = Signed(stack, backend.AccessKeyId, backend.SecretAccessKey);
        using var delivered = await asBackend.PostAsync(path, new StringContent("""{"type":"pong","id":"from-backend"}"""));

        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        Assert.Equal("AccessDeniedException", Assert.Single(refused.Headers.GetValues("x-amzn-ErrorType")));
        Assert.Contains("is not authorized to perform: execute-api:ManageConnections", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Forbidden, refusedDelete.StatusCode);
        Assert.Equal(HttpStatusCode.OK, delivered.StatusCode);
        Assert.Equal("from-backend", (await socket.ExpectAsync<PongMessage>()).Id);
        Assert.DoesNotContain(socket.AllFrames, f => f.Contains("from-authorizer", StringComparison.Ordinal));
        Assert.Equal(2, stack.Emulator.Counters.ConnectionsAccessDenied);
    }

    /// <summary>
    /// Defect 3 of the issue: a member reconnecting with a fresh ticket is welcomed again, already admitted, with a new
    /// epoch, and the room is told. (Needs the authorizer to leave every @connections call to the backend.)
    /// </summary>
    [Fact]
    public async Task MemberReconnectingWithAFreshTicket_UnderTheTemplatesIam_IsWelcomedAgain_AndTheRoomIsTold()
    {
        await using var stack = await AwsStack.StartAsync(dynalite, "talki-fidelity-reconnect");
        using var ada = await stack.SignInAsync("Ada");
        var room = await ada.TicketAsync("/talki/rooms", HttpStatusCode.Created);
        await using var adaSocket = await ada.ConnectAsync(room);
        using var bob = await stack.SignInAsync("Bob");
        var first = await bob.TicketAsync($"/talki/rooms/{room.Room}/tickets", HttpStatusCode.OK);
        await using var bobSocket = await bob.ConnectAsync(first);
        await adaSocket.ExpectAsync<AdmissionRequestMessage>(m => m.Member.Id == first.Member);
        await adaSocket.SendAsync($$$"""{"type":"admit","member":"{{{first.Member}}}"}""");
        await bobSocket.ExpectAsync<AdmittedMessage>();
        Assert.Equal(1, (await adaSocket.ExpectAsync<ConnectToPeerMessage>(m => m.Peer.Id == first.Member)).PeerEpoch);

        var again = await bob.TicketAsync($"/talki/rooms/{room.Room}/tickets", HttpStatusCode.OK);
        await using var bobSocket2 = await bob.ConnectAsync(again);

        Assert.Equal(AdmissionStatus.Admitted, bobSocket2.Welcome!.Status);
        await bobSocket.WaitClosedAsync();
        await adaSocket.ExpectAsync<PeerLeftMessage>(m => m.Member == first.Member && m.Epoch == 1);
        Assert.Equal(2, (await adaSocket.ExpectAsync<ConnectToPeerMessage>(m => m.Peer.Id == first.Member)).PeerEpoch);
        Assert.Equal(0, stack.Emulator.Counters.ConnectionsAccessDenied);
    }

    /// <summary>
    /// The real authorizer's context (room, member, epoch, sealsAt) reaches the backend as the headers the template's
    /// request parameters name. (Needs the authorizer to return <c>sealsAt</c>.)
    /// </summary>
    [Fact]
    public async Task TheRealAuthorizersContext_ReachesTheBackend_AsTheTemplatesHeaders()
    {
        await using var stack = await AwsStack.StartAsync(dynalite, "talki-fidelity-context");
        using var ada = await stack.SignInAsync("Ada");
        var room = await ada.TicketAsync("/talki/rooms", HttpStatusCode.Created);
        await using var socket = await ada.ConnectAsync(room); // sends hello: the first $default call

        var headers = Assert.Single(stack.DefaultCallHeaders);
        Assert.Equal(room.Room.Value, headers["x-talki-room"]);
        Assert.Equal(room.Member.Value, headers["x-talki-member"]);
        Assert.Equal("1", headers["x-talki-epoch"]);
        Assert.True(headers.TryGetValue("x-talki-seals-at", out var sealsAt), "x-talki-seals-at is missing: the authorizer's context has no sealsAt.");
        Assert.InRange(long.Parse(sealsAt, CultureInfo.InvariantCulture), DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), DateTimeOffset.UtcNow.AddHours(1).ToUnixTimeMilliseconds());
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "The condition did not become true within 10 s.");
            await Task.Delay(10);
        }
    }

    private static HttpClient Signed(AwsStack stack, string accessKey, string secretKey)
        => new(new SigV4SigningHandler(new BasicAWSCredentials(accessKey, secretKey), RegionEndpoint.USEast1, "execute-api", new SocketsHttpHandler { AllowAutoRedirect = false }))
        {
            BaseAddress = stack.Emulator.ManagementEndpoint,
        };
}
