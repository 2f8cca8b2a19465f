using System.Net;
using System.Net.WebSockets;
using System.Text.Json.Nodes;
using Amazon;
using Amazon.DynamoDBv2;
using Amazon.DynamoDBv2.Model;
using Amazon.Runtime;
using Amazon.Runtime.Signing;
using Talki.Signalling.Emulator.Deployment;
using Talki.Signalling.Testing;

namespace Talki.Signalling.Emulator.Tests;

/// <summary>The template the CDK app synthesizes, read by the emulator: what it models and what it enforces.</summary>
public sealed class TemplateModeTests
{
    [Fact]
    public async Task Template_IsReadIntoFunctionsPoliciesRoutesAuthorizerAndTables()
    {
        await using var fixture = await TemplateEmulatorFixture.StartAsync();
        var deployment = fixture.Emulator.Deployment;

        Assert.True(deployment.EnforcesIam);
        Assert.Equal(SynthesizedTalkiTemplate.Stage, deployment.Stage);
        Assert.Equal(["Authorizer", "Backend"], deployment.Functions.Select(f => f.Key).Order());
        var backend = deployment.Function("Backend");
        var authorizer = deployment.Function("Authorizer");
        Assert.Equal("arn:aws:lambda:us-east-1:123456789012:function:" + backend.Name, backend.Arn);

        // The role policies, intrinsics resolved.
        var post = $"arn:aws:execute-api:us-east-1:123456789012:emu0api001/{deployment.Stage}/POST/@connections/R0oXAdfD0kwCH6w=";
        Assert.True(backend.Policy.Allows("execute-api:ManageConnections", post));
        Assert.False(backend.Policy.Allows("execute-api:ManageConnections", post.Replace("emu0api001", "otherapi01", StringComparison.Ordinal)));
        Assert.False(authorizer.Policy.Allows("execute-api:ManageConnections", post));
        var table = Assert.Single(deployment.Tables);
        Assert.Equal($"arn:aws:dynamodb:us-east-1:123456789012:table/{table.Name}", table.Arn);
        Assert.True(authorizer.Policy.Allows("dynamodb:GetItem", table.Arn));
        Assert.False(authorizer.Policy.Allows("dynamodb:Scan", table.Arn));

        // The environment, with the parameter's value and the adapter's pass-through path.
        Assert.Equal("/events", authorizer.PassThroughPath);
        Assert.Equal("authorizer", authorizer.Environment["Talki__Aws__Role"]);
        Assert.Equal("backend", backend.Environment["Talki__Aws__Role"]);
        Assert.Equal(TemplateEmulatorFixture.Secret, backend.Environment["Talki__Aws__GatewaySecret"]);
        Assert.Equal(table.Name, backend.Environment["Talki__Aws__TableName"]);

        // The authorizer, its identity source, and the routes through the function URL.
        Assert.Same(authorizer, deployment.Authorizer!.Function);
        Assert.Equal(["ticket"], deployment.Authorizer.QueryIdentitySources);
        var route = deployment.Routes["$default"];
        Assert.Equal(new Uri(fixture.Emulator.FunctionUrl, "talki/aws/default"), route.Uri);
        Assert.Contains(new KeyValuePair<string, string>("x-talki-room", "context.authorizer.room"), route.RequestParameters);
        Assert.Contains(new KeyValuePair<string, string>("x-talki-gateway-secret", $"'{TemplateEmulatorFixture.Secret}'"), route.RequestParameters);
        Assert.Equal(new Uri(fixture.Emulator.FunctionUrl, "talki/aws/disconnect"), deployment.Routes["$disconnect"].Uri);
        Assert.Equal("Backend", Assert.Single(deployment.FunctionUrls).Function.Key);

        // The memory size each function is given (what its CPU share and its billed duration follow).
        Assert.Equal(SynthesizedTalkiTemplate.Json()["Resources"]!.AsObject().Single(r => r.Key.StartsWith("Backend", StringComparison.Ordinal) && (string?)r.Value!["Type"] == "AWS::Lambda::Function").Value!["Properties"]!["MemorySize"]!.GetValue<int>(), backend.MemorySizeMb);
    }

    [Fact]
    public async Task FunctionWithoutAMemorySize_HasCloudFormationsDefault128Mb_OneWithASize_HasIt()
    {
        await using var fixture = await TemplateEmulatorFixture.StartAsync(template =>
        {
            foreach (var function in template["Resources"]!.AsObject().Where(r => (string?)r.Value!["Type"] == "AWS::Lambda::Function"))
            {
                var properties = function.Value!["Properties"]!.AsObject();
                if (function.Key.StartsWith("Authorizer", StringComparison.Ordinal))
                {
                    properties.Remove("MemorySize");
                }
                else
                {
                    properties["MemorySize"] = 384;
                }
            }
        });

        Assert.Equal(EmulatedFunction.DefaultMemorySizeMb, fixture.Emulator.Deployment.Function("Authorizer").MemorySizeMb);
        Assert.Equal(128, EmulatedFunction.DefaultMemorySizeMb);
        Assert.Equal(384, fixture.Emulator.Deployment.Function("Backend").MemorySizeMb);
    }

    [Fact]
    public async Task Template_WithoutTheSecretParameterValue_DoesNotStart()
    {
        var options = new EmulatorOptions { Template = SynthesizedTalkiTemplate.Json() };

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => ApiGatewayEmulator.StartAsync(options));

        Assert.Contains("GatewaySecret", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("*", "arn:x:y", true)]
    [InlineData("arn:aws:execute-api:r:a:api/test/POST/@connections/*", "arn:aws:execute-api:r:a:api/test/POST/@connections/abc=", true)]
    [InlineData("arn:aws:execute-api:r:a:api/test/POST/@connections/*", "arn:aws:execute-api:r:a:api/test/DELETE/@connections/abc=", false)]
    [InlineData("arn:aws:execute-api:r:a:api/test/POST/@connections/?", "arn:aws:execute-api:r:a:api/test/POST/@connections/ab", false)]
    [InlineData("arn:aws:dynamodb:r:a:table/T", "arn:aws:dynamodb:r:a:table/T/index/I", false)]
    [InlineData("arn:aws:dynamodb:r:a:table/T", "arn:aws:dynamodb:r:a:table/t", false)]
    public void IamWildcards_MatchResourcesCaseSensitively(string pattern, string resource, bool expected)
        => Assert.Equal(expected, IamPolicy.Matches(pattern, resource, ignoreCase: false));

    [Fact]
    public void IamEvaluation_ExplicitDenyWins_ConditionsNeverAllow_ActionsIgnoreCase()
    {
        var allow = new IamStatement("Allow", ["dynamodb:*"], [], ["*"], [], HasCondition: false);
        var deny = new IamStatement("Deny", ["dynamodb:Scan"], [], ["*"], [], HasCondition: false);
        var conditional = new IamStatement("Allow", ["s3:GetObject"], [], ["*"], [], HasCondition: true);

        Assert.True(new IamPolicy([allow]).Allows("DynamoDB:getitem", "arn:t"));
        Assert.False(new IamPolicy([allow, deny]).Allows("dynamodb:Scan", "arn:t"));
        Assert.False(new IamPolicy([conditional]).Allows("s3:GetObject", "arn:t"));
        Assert.False(IamPolicy.Empty.Allows("dynamodb:GetItem", "arn:t"));
    }

    // ---------------------------------------------------------------- @connections under IAM

    [Theory]
    [InlineData("POST")]
    [InlineData("GET")]
    [InlineData("DELETE")]
    public async Task ConnectionsApi_SignedWithTheBackendRolesKey_IsAllowed(string verb)
    {
        await using var fixture = await TemplateEmulatorFixture.StartAsync();
        var (socket, id) = await fixture.ConnectAsync();
        using var _ = socket;
        using var http = Signed(fixture, TemplateEmulatorFixture.BackendKey, TemplateEmulatorFixture.BackendSecret);

        using var response = await http.SendAsync(ConnectionsRequest(fixture, verb, id));

        Assert.Equal(verb switch { "DELETE" => HttpStatusCode.NoContent, _ => HttpStatusCode.OK }, response.StatusCode);
        Assert.Equal(0, fixture.Emulator.Counters.ConnectionsAccessDenied);
    }

    [Theory]
    [InlineData("POST")]
    [InlineData("GET")]
    [InlineData("DELETE")]
    public async Task ConnectionsApi_SignedWithTheAuthorizerRolesKey_Is403AccessDenied_AndTheSocketIsUntouched(string verb)
    {
        await using var fixture = await TemplateEmulatorFixture.StartAsync();
        var (socket, id) = await fixture.ConnectAsync();
        using var _ = socket;
        using var http = Signed(fixture, TemplateEmulatorFixture.AuthorizerKey, TemplateEmulatorFixture.AuthorizerSecret);

        using var response = await http.SendAsync(ConnectionsRequest(fixture, verb, id));

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Equal("AccessDeniedException", Assert.Single(response.Headers.GetValues("x-amzn-ErrorType")));
        var message = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["Message"]!.GetValue<string>();
        var authorizer = fixture.Emulator.Deployment.Function("Authorizer");
        Assert.Equal(
            $"User: arn:aws:sts::123456789012:assumed-role/{authorizer.RoleName}/{authorizer.Name} is not authorized to perform: execute-api:ManageConnections " +
            $"on resource: arn:aws:execute-api:us-east-1:123456789012:emu0api001/{fixture.Emulator.Stage}/{verb}/@connections/{id}",
            message);
        Assert.Equal(1, fixture.Emulator.Counters.ConnectionsAccessDenied);
        Assert.Equal(0, fixture.Emulator.Counters.OutboundMessages);
        Assert.Equal(WebSocketState.Open, socket.State);
        Assert.Contains(id, fixture.Emulator.OpenConnectionIds);
    }

    [Fact]
    public async Task ConnectionsApi_SignedWithAKeyOfNoFunction_Is403AccessDenied()
    {
        await using var fixture = await TemplateEmulatorFixture.StartAsync();
        var (socket, id) = await fixture.ConnectAsync();
        using var _ = socket;
        using var http = Signed(fixture, EmulatorOptions.DefaultAccessKeyId, EmulatorOptions.DefaultSecretAccessKey);

        using var response = await http.SendAsync(ConnectionsRequest(fixture, "POST", id));

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Contains("user/AKIDEXAMPLE is not authorized", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    // ---------------------------------------------------------------- DynamoDB under IAM

    [Fact]
    public async Task DynamoDb_ActionsTheRolePolicyAllows_OnTheTable_AreForwarded()
    {
        await using var fixture = await TemplateEmulatorFixture.StartAsync();
        var table = fixture.Emulator.Deployment.Tables[0].Name;
        using var client = fixture.DynamoDbClient(TemplateEmulatorFixture.BackendKey, TemplateEmulatorFixture.BackendSecret);
        var key = new Dictionary<string, AttributeValue> { ["pk"] = new("ROOM#1"), ["sk"] = new("META") };

        await client.GetItemAsync(new GetItemRequest { TableName = table, Key = key });
        await client.PutItemAsync(new PutItemRequest { TableName = table, Item = key });
        await client.QueryAsync(new QueryRequest { TableName = table, KeyConditionExpression = "pk = :p", ExpressionAttributeValues = new() { [":p"] = new("ROOM#1") } });

        // Before forwarding the put, the emulator reads the item as it was, for its replica lag model (EmulatorOptions.
        // DynamoDbReplicaLag): its own read, not the caller's, and neither counted nor metered.
        Assert.Equal(["DynamoDB_20120810.GetItem", "DynamoDB_20120810.GetItem", "DynamoDB_20120810.PutItem", "DynamoDB_20120810.Query"], fixture.Dynamo.Calls.Select(c => c.Headers["x-amz-target"]));
        Assert.Equal(1, fixture.Emulator.Counters.DynamoDbCallCount("GetItem"));
    }

    public static TheoryData<string, Func<IAmazonDynamoDB, string, Task>> RefusedDynamoDbCalls => new()
    {
        { "Scan", (client, table) => client.ScanAsync(new ScanRequest { TableName = table }) },
        { "BatchWriteItem", (client, table) => client.BatchWriteItemAsync(new BatchWriteItemRequest { RequestItems = new() { [table] = [new WriteRequest { DeleteRequest = new DeleteRequest { Key = new() { ["pk"] = new("ROOM#1"), ["sk"] = new("META") } } }] } }) },
        { "DescribeTable", (client, table) => client.DescribeTableAsync(new DescribeTableRequest { TableName = table }) },
        { "DeleteTable", (client, table) => client.DeleteTableAsync(new DeleteTableRequest { TableName = table }) },
        { "GetItem", (client, _) => client.GetItemAsync(new GetItemRequest { TableName = "another-table", Key = new() { ["pk"] = new("x") } }) },
        { "ListTables", (client, _) => client.ListTablesAsync(new ListTablesRequest()) },
    };

    [Theory]
    [MemberData(nameof(RefusedDynamoDbCalls))]
    public async Task DynamoDb_ActionOrTableTheRolePolicyDoesNotAllow_Is400AccessDenied_AndNeverReachesTheTable(string action, Func<IAmazonDynamoDB, string, Task> call)
    {
        await using var fixture = await TemplateEmulatorFixture.StartAsync();
        var table = fixture.Emulator.Deployment.Tables[0];
        using var client = fixture.DynamoDbClient(TemplateEmulatorFixture.BackendKey, TemplateEmulatorFixture.BackendSecret);

        var error = await Assert.ThrowsAnyAsync<AmazonDynamoDBException>(() => call(client, table.Name));

        Assert.Equal("AccessDeniedException", error.ErrorCode);
        Assert.Equal(HttpStatusCode.BadRequest, error.StatusCode);
        var backend = fixture.Emulator.Deployment.Function("Backend");
        Assert.StartsWith($"User: arn:aws:sts::123456789012:assumed-role/{backend.RoleName}/{backend.Name} is not authorized to perform: dynamodb:{action} on resource: ", error.Message, StringComparison.Ordinal);
        Assert.Empty(fixture.Dynamo.Calls);
        Assert.Equal(1, fixture.Emulator.Counters.DynamoDbCallCount(action, allowed: false));
    }

    [Fact]
    public async Task DynamoDb_SignedWithAnUnknownKey_IsUnrecognizedClient()
    {
        await using var fixture = await TemplateEmulatorFixture.StartAsync();
        using var client = fixture.DynamoDbClient("local", "local");

        var error = await Assert.ThrowsAnyAsync<AmazonDynamoDBException>(() => client.GetItemAsync(new GetItemRequest { TableName = fixture.Emulator.Deployment.Tables[0].Name, Key = new() { ["pk"] = new("x") } }));

        Assert.Equal("UnrecognizedClientException", error.ErrorCode);
        Assert.Empty(fixture.Dynamo.Calls);
    }

    // ---------------------------------------------------------------- function URL and the adapter hop

    [Fact]
    public async Task FunctionUrl_ForwardsAnyRequest_WithHostCookiesAndBody_AndReturnsRedirectsAndCookiesAsTheyAre()
    {
        await using var fixture = await TemplateEmulatorFixture.StartAsync();
        using var http = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false, UseCookies = false });
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(fixture.Emulator.FunctionUrl, "redirect?x=1%2B1")) { Content = new StringContent("{\"a\":1}", System.Text.Encoding.UTF8, "application/json") };
        request.Headers.Add("Cookie", "talki.session=abc; other=1");
        request.Headers.Host = "localhost:" + fixture.Emulator.FunctionUrl.Port;

        using var response = await http.SendAsync(request);

        Assert.Equal(HttpStatusCode.Found, response.StatusCode);
        Assert.Equal("/there", response.Headers.Location!.OriginalString);
        Assert.Equal(["a=1; Path=/; HttpOnly", "b=2; Path=/; Secure"], response.Headers.GetValues("Set-Cookie"));
        var call = Assert.Single(fixture.Backend.Calls);
        Assert.Equal("/redirect", call.Path);
        Assert.Equal("?x=1%2B1", call.Query);
        Assert.Equal("{\"a\":1}", call.Body);
        Assert.Equal("talki.session=abc; other=1", call.Headers["cookie"]);
        Assert.Equal("localhost:" + fixture.Emulator.FunctionUrl.Port, call.Headers["host"]);
        var invocation = Assert.Single(fixture.Emulator.Counters.Invocations);
        Assert.Equal(("Backend", "url", "/redirect", 302), (invocation.Function, invocation.Trigger, invocation.Path, invocation.Status));
    }

    [Theory]
    [InlineData("BackendInvokeViaFunctionUrl")]
    [InlineData("Backendinvokefunctionurl")]
    public async Task FunctionUrl_WithoutOneOfItsTwoPermissions_Is403Forbidden_AndTheFunctionIsNeverInvoked(string removedPermission)
    {
        await using var fixture = await TemplateEmulatorFixture.StartAsync(t => TemplateEmulatorFixture.Remove(t, removedPermission));
        using var http = new HttpClient();

        using var response = await http.GetAsync(new Uri(fixture.Emulator.FunctionUrl, "talki/session"));

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Equal("{\"Message\":\"Forbidden\"}", await response.Content.ReadAsStringAsync());
        Assert.Empty(fixture.Backend.Calls);
        Assert.Equal(1, fixture.Emulator.Counters.FunctionUrlForbidden);
    }

    [Fact]
    public async Task WithoutTheInvokedViaFunctionUrlPermission_FramesAndDisconnectsNeverReachTheBackend_AndTheClientIsNotTold()
    {
        await using var fixture = await TemplateEmulatorFixture.StartAsync(t => TemplateEmulatorFixture.Remove(t, "BackendInvokeViaFunctionUrl"));
        var (socket, _) = await fixture.ConnectAsync();

        await socket.SendTextAsync("{\"type\":\"hello\"}");
        await socket.SendTextAsync("{\"type\":\"ping\"}");
        await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);
        socket.Dispose();
        await WaitUntilAsync(() => fixture.Emulator.Counters.Integrations.Count == 3);

        Assert.Empty(fixture.Backend.Calls);
        Assert.All(fixture.Emulator.Counters.Integrations, i => Assert.Equal(403, i.Status));
        Assert.Equal(3, fixture.Emulator.Counters.FunctionUrlForbidden);
    }

    [Fact]
    public async Task AuthorizerWithoutApiGatewaysInvokePermission_FailsTheConnectWith500_WithoutAnInvocation()
    {
        await using var fixture = await TemplateEmulatorFixture.StartAsync(t => TemplateEmulatorFixture.Remove(t, "AuthorizerApiGatewayInvokeAuthorizer"));
        using var socket = new ClientWebSocket();
        socket.Options.CollectHttpResponseDetails = true;

        await Assert.ThrowsAsync<WebSocketException>(() => socket.ConnectAsync(new Uri(fixture.Emulator.WebSocketUrl + "?ticket=t"), CancellationToken.None));

        Assert.Equal(HttpStatusCode.InternalServerError, socket.HttpStatusCode);
        Assert.Empty(fixture.Authorizer.Calls);
    }

    [Fact]
    public async Task AuthorizerWithoutTheAdapterLayer_IsInvokedThroughItsRuntimeApi_AndNoPassThroughPathApplies()
    {
        // The stack's authorizer: a custom runtime. A pass-through path in its environment means nothing without the adapter.
        await using var fixture = await TemplateEmulatorFixture.StartAsync(t =>
            t["Resources"]!.AsObject().Single(r => r.Key.StartsWith("AuthorizerBD", StringComparison.Ordinal)).Value!["Properties"]!["Environment"]!["Variables"]!["AWS_LWA_PASS_THROUGH_PATH"] = "/lambda-events");
        Assert.False(fixture.Emulator.Deployment.Function("Authorizer").UsesWebAdapter);

        var (socket, _) = await fixture.ConnectAsync();
        socket.Dispose();

        Assert.Equal(1, fixture.Emulator.RuntimeApi("Authorizer").Invocations);
        var invocation = Assert.Single(fixture.Emulator.Counters.Invocations, i => i.Function == "Authorizer");
        Assert.Equal("runtime-api", invocation.Path);
        Assert.Equal(200, invocation.Status);
        Assert.Equal(FakeBackend.Authorizer, Assert.Single(fixture.Authorizer.Calls).Path); // the bridge's own call to the fake
        Assert.Throws<InvalidOperationException>(() => fixture.Emulator.RuntimeApi("Backend")); // a web server, behind the adapter
    }

    [Fact]
    public async Task AuthorizerWhoseRuntimeFails_FailsTheConnectWith500_AndTheNextConnectIsServed()
    {
        await using var fixture = await TemplateEmulatorFixture.StartAsync();
        var runtime = fixture.Emulator.RuntimeApi("Authorizer");
        runtime.ResponseStatus = 413; // its answer refused: the invocation fails, as a function error
        using (var socket = new ClientWebSocket())
        {
            socket.Options.CollectHttpResponseDetails = true;
            await Assert.ThrowsAsync<WebSocketException>(() => socket.ConnectAsync(new Uri(fixture.Emulator.WebSocketUrl + "?ticket=t"), CancellationToken.None));
            Assert.Equal(HttpStatusCode.InternalServerError, socket.HttpStatusCode);
        }

        runtime.ResponseStatus = null;
        var (next, _) = await fixture.ConnectAsync();
        next.Dispose();
        Assert.Equal([502, 200], fixture.Emulator.Counters.Invocations.Where(i => i.Function == "Authorizer").Select(i => i.Status));
    }

    [Fact]
    public async Task AuthorizerEvent_GoesToTheAuthorizerFunctionsPassThroughPath_WhenItHasTheAdapterLayer()
    {
        await using var fixture = await TemplateEmulatorFixture.StartAsync(t =>
        {
            var properties = t["Resources"]!.AsObject().Single(r => r.Key.StartsWith("AuthorizerBD", StringComparison.Ordinal)).Value!["Properties"]!;
            properties["Layers"] = new System.Text.Json.Nodes.JsonArray("arn:aws:lambda:us-east-1:753240598075:layer:LambdaAdapterLayerArm64:25");
            properties["Environment"]!["Variables"]!["AWS_LWA_PASS_THROUGH_PATH"] = "/lambda-events";
        });
        using var socket = new ClientWebSocket();
        socket.Options.CollectHttpResponseDetails = true;

        await Assert.ThrowsAsync<WebSocketException>(() => socket.ConnectAsync(new Uri(fixture.Emulator.WebSocketUrl + "?ticket=t"), CancellationToken.None));

        // The fake answers 200 with an empty body on any other path: an invalid authorizer result.
        Assert.Equal(HttpStatusCode.InternalServerError, socket.HttpStatusCode);
        Assert.Equal("/lambda-events", Assert.Single(fixture.Authorizer.Calls).Path);
        Assert.Empty(fixture.Backend.Calls);
        Assert.Equal("Authorizer", Assert.Single(fixture.Emulator.Counters.Invocations).Function);
    }

    // ---------------------------------------------------------------- the authorizer context into the integration headers

    [Fact]
    public async Task AuthorizerContext_IsMappedIntoTheIntegrationHeaders_AsTheTemplateSays_Stringified()
    {
        await using var fixture = await TemplateEmulatorFixture.StartAsync(t =>
        {
            // One more mapping, of a boolean.
            var parameters = t["Resources"]!["DefaultIntegration"]!["Properties"]!["RequestParameters"]!.AsObject();
            parameters["integration.request.header.x-test-admin"] = "context.authorizer.admin";
            parameters["integration.request.header.x-test-missing"] = "context.authorizer.nothing";
        });
        var (socket, id) = await fixture.ConnectAsync();

        await socket.SendTextAsync("{\"type\":\"hello\"}");
        var call = await fixture.Backend.NextAsync(FakeBackend.Default);
        await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);
        var disconnect = await fixture.Backend.NextAsync(FakeBackend.Disconnect);
        socket.Dispose();

        foreach (var headers in new[] { call.Headers, disconnect.Headers })
        {
            Assert.Equal(id, headers["x-talki-connection-id"]);
            Assert.Equal(TemplateEmulatorFixture.Secret, headers["x-talki-gateway-secret"]);
            Assert.Equal("0", headers["sec-websocket-version"]);
            Assert.Equal("room-1", headers["x-talki-room"]);
            Assert.Equal("member-1", headers["x-talki-member"]);
            Assert.Equal("1", headers["x-talki-epoch"]);
            Assert.Equal("1767225600000", headers["x-talki-seals-at"]);
        }

        Assert.Equal("true", call.Headers["x-test-admin"]);
        Assert.False(call.Headers.ContainsKey("x-test-missing"));
        Assert.Equal("{\"type\":\"hello\"}", call.Body);
    }

    [Fact]
    public void AuthorizerDecision_StringifiesNumbersAndBooleans_AndKeepsThePrincipal()
    {
        var json = """{"principalId":"p","policyDocument":{"Statement":[{"Action":"execute-api:Invoke","Effect":"Allow","Resource":"arn:m"}]},"context":{"s":"x","n":12.5,"big":1767225600000,"t":true,"f":false}}"""u8.ToArray();

        var decision = ApiGatewayEmulator.DecideAuthorizer(json, "arn:m");

        Assert.Equal(200, decision.Status);
        Assert.Equal("x", decision.Context["s"]);
        Assert.Equal("12.5", decision.Context["n"]);
        Assert.Equal("1767225600000", decision.Context["big"]);
        Assert.Equal("true", decision.Context["t"]);
        Assert.Equal("false", decision.Context["f"]);
        Assert.Equal("p", decision.Context["principalId"]);
    }

    [Theory]
    [InlineData("""{"policyDocument":{"Statement":[{"Action":"execute-api:Invoke","Effect":"Allow","Resource":"arn:m"}]},"context":{"a":null}}""")]
    [InlineData("""{"policyDocument":{"Statement":[{"Action":"execute-api:Invoke","Effect":"Allow","Resource":"arn:m"}]},"context":{"a":{"b":1}}}""")]
    [InlineData("""{"policyDocument":{"Statement":[{"Action":"execute-api:Invoke","Effect":"Allow","Resource":"arn:m"}]},"context":{"a":[1]}}""")]
    [InlineData("""{"policyDocument":{"Statement":[{"Action":"execute-api:Invoke","Effect":"Allow","Resource":"arn:m"}]},"context":"flat?"}""")]
    [InlineData("""[{"policyDocument":{}}]""")]
    [InlineData("")]
    public void AuthorizerDecision_InvalidResult_Is500(string json)
        => Assert.Equal(500, ApiGatewayEmulator.DecideAuthorizer(System.Text.Encoding.UTF8.GetBytes(json), "arn:m").Status);

    // ---------------------------------------------------------------- Lambda's spread and the counters

    [Fact]
    public async Task Invocations_AreSpreadOverTheFunctionsInstances_AndCountedWithTheirDurations()
    {
        await using var fixture = await TemplateEmulatorFixture.StartAsync(backendInstances: 2);
        var (socket, _) = await fixture.ConnectAsync();
        using var _1 = socket;

        for (var i = 0; i < 6; i++)
        {
            await socket.SendTextAsync($"{{\"n\":{i}}}");
            await WaitUntilAsync(() => fixture.Emulator.Counters.IntegrationCalls("$default") == i + 1);
        }

        Assert.Equal(3, fixture.Backends[0].CallsTo(FakeBackend.Default).Count);
        Assert.Equal(3, fixture.Backends[1].CallsTo(FakeBackend.Default).Count);
        var counters = fixture.Emulator.Counters;
        Assert.Equal(6, counters.FunctionInvocations("Backend"));
        Assert.Equal(1, counters.FunctionInvocations("Authorizer"));
        Assert.Equal(1, counters.AuthorizerCalls);
        Assert.Equal([0, 1], counters.Invocations.Where(i => i.Function == "Backend").Select(i => i.Instance).Distinct().Order());
        Assert.All(counters.Invocations, i => Assert.True(i.Duration > TimeSpan.Zero));
        Assert.All(counters.Integrations, i => Assert.Equal(("$default", 200), (i.RouteKey, i.Status)));
        Assert.True(fixture.Emulator.ConnectionTime > TimeSpan.Zero);
    }

    internal static async Task WaitUntilAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "The condition did not become true within 10 s.");
            await Task.Delay(10);
        }
    }

    private static HttpClient Signed(TemplateEmulatorFixture fixture, string accessKey, string secretKey)
        => new(new SigV4SigningHandler(new BasicAWSCredentials(accessKey, secretKey), RegionEndpoint.USEast1, "execute-api", new SocketsHttpHandler { AllowAutoRedirect = false }))
        {
            BaseAddress = fixture.Emulator.ManagementEndpoint,
        };

    private static HttpRequestMessage ConnectionsRequest(TemplateEmulatorFixture fixture, string verb, string id)
        => new(new HttpMethod(verb), $"/{fixture.Emulator.Stage}/@connections/{Uri.EscapeDataString(id)}")
        {
            Content = verb == "POST" ? new StringContent("{\"type\":\"x\"}") : null,
        };
}
