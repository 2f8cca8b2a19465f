using System.Text.Json.Nodes;
using Amazon.CDK.Assertions;
using Props = System.Collections.Generic.Dictionary<string, object>;

namespace Talki.Samples.AwsCdk.Tests;

[Collection(SynthesizedStacks.Name)]
public sealed class TalkiStackTests(StackFixture fixture)
{
    private readonly SynthesizedTemplate _stack = fixture.Default;

    private Template Template => _stack.Template;

    private string ApiId => _stack.LogicalId(_stack.Stack.Api);

    private string BackendId => _stack.LogicalId(_stack.Stack.Backend);

    private string AuthorizerFunctionId => _stack.LogicalId(_stack.Stack.AuthorizerFunction);

    private string FunctionUrlId => _stack.LogicalId(_stack.Stack.BackendUrl);

    private static Props Ref(string logicalId) => new() { ["Ref"] = logicalId };

    private static Props GetAtt(string logicalId, string attribute) =>
        new() { ["Fn::GetAtt"] = new object[] { logicalId, attribute } };

    private static Props Join(params object[] parts) => new() { ["Fn::Join"] = new object[] { "", parts } };

    // ---- API, stage -----------------------------------------------------------------------------------------

    [Fact]
    public void WebSocketApi_routes_on_the_message_type()
    {
        Template.ResourceCountIs("AWS::ApiGatewayV2::Api", 1);
        Template.HasResourceProperties("AWS::ApiGatewayV2::Api", new Props
        {
            ["ProtocolType"] = "WEBSOCKET",
            ["RouteSelectionExpression"] = "$request.body.type",
        });
    }

    [Fact]
    public void Stage_auto_deploys_under_the_configured_name()
    {
        Template.ResourceCountIs("AWS::ApiGatewayV2::Stage", 1);
        Template.HasResourceProperties("AWS::ApiGatewayV2::Stage", new Props
        {
            ["ApiId"] = Ref(ApiId),
            ["StageName"] = "dev",
            ["AutoDeploy"] = true,
        });
        fixture.WithSsmSecret.Template.HasResourceProperties("AWS::ApiGatewayV2::Stage",
            Match.ObjectLike(new Props { ["StageName"] = "prod", ["AutoDeploy"] = true }));
    }

    // ---- $connect -------------------------------------------------------------------------------------------

    [Fact]
    public void Connect_is_guarded_by_a_REQUEST_authorizer_on_the_ticket_query_parameter()
    {
        Template.ResourceCountIs("AWS::ApiGatewayV2::Authorizer", 1);
        Template.HasResourceProperties("AWS::ApiGatewayV2::Authorizer", new Props
        {
            ["ApiId"] = Ref(ApiId),
            ["AuthorizerType"] = "REQUEST",
            ["IdentitySource"] = new object[] { "route.request.querystring.ticket" },
            ["AuthorizerUri"] = Match.ObjectLike(new Props
            {
                ["Fn::Join"] = Match.ArrayWith([
                    "",
                    Match.ArrayWith([GetAtt(AuthorizerFunctionId, "Arn"), "/invocations"]),
                ]),
            }),
        });

        var authorizerId = _stack.Resources("AWS::ApiGatewayV2::Authorizer").Single().Id;
        Template.HasResourceProperties("AWS::ApiGatewayV2::Route", new Props
        {
            ["ApiId"] = Ref(ApiId),
            ["RouteKey"] = "$connect",
            ["AuthorizationType"] = "CUSTOM",
            ["AuthorizerId"] = Ref(authorizerId),
            ["Target"] = Match.AnyValue(),
        });
    }

    [Fact]
    public void Connect_integration_is_a_mock_that_answers_200()
    {
        var route = _stack.Resources("AWS::ApiGatewayV2::Route")
            .Single(r => (string?)r.Resource["Properties"]!["RouteKey"] == "$connect").Resource;
        var integrationId = TargetIntegrationId(route);
        var integration = _stack.Json["Resources"]![integrationId]!["Properties"]!;
        Assert.Equal("MOCK", (string?)integration["IntegrationType"]);
        Assert.Equal("{\"statusCode\":200}", (string?)integration["RequestTemplates"]!["$default"]);
    }

    [Fact]
    public void Api_gateway_may_invoke_the_authorizer_through_this_authorizer_only()
    {
        var authorizerId = _stack.Resources("AWS::ApiGatewayV2::Authorizer").Single().Id;
        Template.HasResourceProperties("AWS::Lambda::Permission", new Props
        {
            ["Action"] = "lambda:InvokeFunction",
            ["FunctionName"] = GetAtt(AuthorizerFunctionId, "Arn"),
            ["Principal"] = "apigateway.amazonaws.com",
            ["SourceArn"] = Match.ObjectLike(new Props
            {
                ["Fn::Join"] = Match.ArrayWith(["", Match.ArrayWith([Ref(ApiId), "/authorizers/", Ref(authorizerId)])]),
            }),
        });
    }

    // ---- $default, $disconnect ------------------------------------------------------------------------------

    [Theory]
    [InlineData("$default", "talki/aws/default")]
    [InlineData("$disconnect", "talki/aws/disconnect")]
    public void Route_posts_to_the_backend_function_url_with_the_mapped_headers(string routeKey, string path)
    {
        Template.HasResourceProperties("AWS::ApiGatewayV2::Route", new Props
        {
            ["ApiId"] = Ref(ApiId),
            ["RouteKey"] = routeKey,
            ["AuthorizationType"] = "NONE",
        });
        var route = _stack.Resources("AWS::ApiGatewayV2::Route")
            .Single(r => (string?)r.Resource["Properties"]!["RouteKey"] == routeKey).Resource;
        var integrationId = TargetIntegrationId(route);

        Template.HasResource("AWS::ApiGatewayV2::Integration", Match.ObjectLike(new Props
        {
            ["Properties"] = Match.ObjectLike(new Props
            {
                ["ApiId"] = Ref(ApiId),
                ["IntegrationType"] = "HTTP_PROXY",
                ["IntegrationMethod"] = "POST",
                ["IntegrationUri"] = Join(GetAtt(FunctionUrlId, "FunctionUrl"), path),
                ["RequestParameters"] = new Props
                {
                    ["integration.request.header.x-talki-connection-id"] = "context.connectionId",
                    ["integration.request.header.x-talki-gateway-secret"] = Join("'", Ref("GatewaySecret"), "'"),
                    ["integration.request.header.Sec-WebSocket-Version"] = "'0'",
                    ["integration.request.header.x-talki-room"] = "context.authorizer.room",
                    ["integration.request.header.x-talki-member"] = "context.authorizer.member",
                    ["integration.request.header.x-talki-epoch"] = "context.authorizer.epoch",
                    ["integration.request.header.x-talki-seals-at"] = "context.authorizer.sealsAt",
                    ["integration.request.header.x-talki-resume"] = "context.authorizer.resume",
                },
            }),
        }));
        Assert.Equal("HTTP_PROXY", (string?)_stack.Json["Resources"]![integrationId]!["Properties"]!["IntegrationType"]);
        Assert.Contains(path, _stack.Json["Resources"]![integrationId]!["Properties"]!["IntegrationUri"]!.ToJsonString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Exactly_the_three_routes_and_their_integrations_exist()
    {
        Template.ResourceCountIs("AWS::ApiGatewayV2::Route", 3);
        Template.ResourceCountIs("AWS::ApiGatewayV2::Integration", 3);
        var keys = _stack.Resources("AWS::ApiGatewayV2::Route")
            .Select(r => (string?)r.Resource["Properties"]!["RouteKey"]).Order(StringComparer.Ordinal);
        Assert.Equal(["$connect", "$default", "$disconnect"], keys);
    }

    // ---- Lambda ---------------------------------------------------------------------------------------------

    [Fact]
    public void The_backend_runs_the_host_behind_the_web_adapter_and_the_authorizer_is_a_custom_runtime()
    {
        Template.ResourceCountIs("AWS::Lambda::Function", 2);
        foreach (var id in new[] { BackendId, AuthorizerFunctionId })
        {
            var backend = id == BackendId;
            var variables = new Props
            {
                ["Talki__Aws__TableName"] = Ref(_stack.LogicalId(_stack.Stack.Table)),
                ["Talki__Aws__Stage"] = "dev",
                ["Talki__Aws__ApiEndpoint"] = Match.ObjectLike(new Props
                {
                    ["Fn::Join"] = Match.ArrayWith(["", Match.ArrayWith(["https://", Ref(ApiId)])]),
                }),
                ["Talki__Aws__GatewaySecret"] = Ref("GatewaySecret"),
            };
            if (backend)
            {
                variables["AWS_LWA_PORT"] = "8080";
            }

            var properties = new Props
            {
                ["Runtime"] = "provided.al2023",
                ["Handler"] = "bootstrap",
                ["Architectures"] = new object[] { "arm64" },
                ["Role"] = Match.AnyValue(),
                ["Layers"] = backend ? new object[] { new Props { ["Fn::Sub"] = TalkiStackProps.DefaultLambdaWebAdapterLayerArn } } : Match.Absent(),
                ["Environment"] = new Props { ["Variables"] = Match.ObjectLike(variables) },
                // No START/END/REPORT lines (INFO system logs); the host's own lines keep the default INFO application level.
                ["LoggingConfig"] = new Props { ["LogFormat"] = "JSON", ["SystemLogLevel"] = "WARN" },
            };
            Template.HasResource("AWS::Lambda::Function", Match.ObjectLike(new Props { ["Properties"] = Match.ObjectLike(properties) }));
            Assert.NotNull(_stack.Json["Resources"]![id]);
        }

        // The authorizer's runtime is its own executable: nothing of the adapter or of a web server is configured for it,
        // and its code is its own asset (not the sample host's).
        Assert.DoesNotContain(Environment(AuthorizerFunctionId), v => v.Key.StartsWith("AWS_LWA_", StringComparison.Ordinal) || v.Key == "ASPNETCORE_URLS");
        Assert.NotEqual(
            _stack.Json["Resources"]![BackendId]!["Properties"]!["Code"]!["S3Key"]!.ToJsonString(),
            _stack.Json["Resources"]![AuthorizerFunctionId]!["Properties"]!["Code"]!["S3Key"]!.ToJsonString());
    }

    [Fact]
    public void Backend_has_512_MB_and_the_authorizer_1024_as_measured_at_their_cpu_shares()
    {
        // benchmarks/lambda-memory.sh and cold-start.py --memory (docs/performance.md): the backend's handlers take as long at
        // 512 MB as at 1024, for half the duration's price; the authorizer's first answer after a cold start doubles at 512.
        Assert.Equal(512, (int)_stack.Json["Resources"]![BackendId]!["Properties"]!["MemorySize"]!);
        Assert.Equal(1024, (int)_stack.Json["Resources"]![AuthorizerFunctionId]!["Properties"]!["MemorySize"]!);
        Assert.Equal(TalkiStack.BackendMemorySizeMb, (int)_stack.Json["Resources"]![BackendId]!["Properties"]!["MemorySize"]!);
    }

    [Fact]
    public void No_function_uses_the_web_adapters_pass_through_path()
    {
        // The authorizer's events come from the runtime API to its own executable; the backend's only through its URL.
        Assert.False(Environment(AuthorizerFunctionId).ContainsKey("AWS_LWA_PASS_THROUGH_PATH"));
        Assert.False(Environment(BackendId).ContainsKey("AWS_LWA_PASS_THROUGH_PATH"));
        Assert.Equal("8080", (string?)Environment(BackendId)["AWS_LWA_PORT"]);
    }

    [Fact]
    public void Function_code_is_the_prebuilt_host_asset_not_inline_code()
    {
        foreach (var (_, function) in _stack.Resources("AWS::Lambda::Function"))
        {
            var code = function["Properties"]!["Code"]!.AsObject();
            Assert.True(code.ContainsKey("S3Bucket") && code.ContainsKey("S3Key"), code.ToJsonString());
            Assert.False(code.ContainsKey("ZipFile"));
        }
    }

    [Fact]
    public void Backend_has_a_function_url_with_auth_none()
    {
        Template.ResourceCountIs("AWS::Lambda::Url", 1);
        Template.HasResourceProperties("AWS::Lambda::Url", new Props
        {
            ["AuthType"] = "NONE",
            ["TargetFunctionArn"] = GetAtt(BackendId, "Arn"),
        });
    }

    // ---- DynamoDB -------------------------------------------------------------------------------------------

    [Fact]
    public void Table_has_string_keys_on_demand_billing_ttl_and_is_destroyed_with_the_stack()
    {
        Template.ResourceCountIs("AWS::DynamoDB::Table", 1);
        Template.HasResource("AWS::DynamoDB::Table", new Props
        {
            ["Type"] = "AWS::DynamoDB::Table",
            ["Properties"] = new Props
            {
                ["KeySchema"] = new object[]
                {
                    new Props { ["AttributeName"] = "pk", ["KeyType"] = "HASH" },
                    new Props { ["AttributeName"] = "sk", ["KeyType"] = "RANGE" },
                },
                ["AttributeDefinitions"] = new object[]
                {
                    new Props { ["AttributeName"] = "pk", ["AttributeType"] = "S" },
                    new Props { ["AttributeName"] = "sk", ["AttributeType"] = "S" },
                },
                ["BillingMode"] = "PAY_PER_REQUEST",
                ["TimeToLiveSpecification"] = new Props { ["AttributeName"] = "expiresAt", ["Enabled"] = true },
            },
            ["DeletionPolicy"] = "Delete",
            ["UpdateReplacePolicy"] = "Delete",
        });
    }

    // ---- IAM ------------------------------------------------------------------------------------------------

    [Fact]
    public void Backend_may_manage_connections_of_this_api_and_stage_only()
    {
        var statement = Assert.Single(Statements(RolePolicyFor(BackendId)),
            s => Actions(s).Contains("execute-api:ManageConnections"));
        Assert.Equal(["execute-api:ManageConnections"], Actions(statement));

        var resources = Resources(statement);
        Assert.Equal(3, resources.Count);
        foreach (var verb in new[] { "POST", "GET", "DELETE" })
        {
            Assert.Contains(resources, r => r.ToJsonString() == Join(
                "arn:", Ref("AWS::Partition"), ":execute-api:", Ref("AWS::Region"), ":", Ref("AWS::AccountId"), ":",
                Ref(ApiId), $"/dev/{verb}/@connections/*").ToJsonNode().ToJsonString());
        }

        Template.HasResourceProperties("AWS::IAM::Policy", Match.ObjectLike(new Props
        {
            ["PolicyDocument"] = Match.ObjectLike(new Props
            {
                ["Statement"] = Match.ArrayWith([
                    Match.ObjectLike(new Props
                    {
                        ["Action"] = "execute-api:ManageConnections",
                        ["Effect"] = "Allow",
                    }),
                ]),
            }),
        }));
    }

    [Fact]
    public void Stage_name_flows_into_the_connections_arn()
    {
        var other = fixture.WithSsmSecret;
        var backendPolicy = PolicyFor(other, other.LogicalId(other.Stack.Backend));
        var arns = Statements(backendPolicy).Where(s => Actions(s).Contains("execute-api:ManageConnections"))
            .SelectMany(Resources).Select(r => r.ToJsonString()).ToList();
        Assert.Equal(3, arns.Count);
        Assert.All(arns, a => Assert.Contains("/prod/", a, StringComparison.Ordinal));
    }

    [Fact]
    public void Authorizer_gets_no_connection_management()
    {
        var actions = Statements(RolePolicyFor(AuthorizerFunctionId)).SelectMany(Actions);
        Assert.DoesNotContain(actions, a => a.StartsWith("execute-api:", StringComparison.Ordinal));
    }

    [Fact]
    public void Both_functions_get_dynamodb_read_write_on_the_table_only()
    {
        var tableArn = GetAtt(_stack.LogicalId(_stack.Stack.Table), "Arn").ToJsonNode().ToJsonString();
        foreach (var id in new[] { BackendId, AuthorizerFunctionId })
        {
            var statement = Assert.Single(Statements(RolePolicyFor(id)),
                s => Actions(s).Any(a => a.StartsWith("dynamodb:", StringComparison.Ordinal)));
            Assert.Contains("dynamodb:PutItem", Actions(statement));
            Assert.Contains("dynamodb:UpdateItem", Actions(statement));
            Assert.Contains("dynamodb:Query", Actions(statement));
            var resources = Resources(statement).Select(r => r.ToJsonString())
                .Where(r => r != "{\"Ref\":\"AWS::NoValue\"}").ToList();
            Assert.Equal([tableArn], resources);
        }
    }

    [Fact]
    public void No_policy_grants_wildcard_actions_or_resources_for_execute_api_or_dynamodb()
    {
        foreach (var template in new[] { fixture.Default, fixture.WithSsmSecret })
        {
            var statements = template.Resources("AWS::IAM::Policy")
                .SelectMany(p => Statements(p.Resource)).ToList();
            Assert.NotEmpty(statements);
            foreach (var statement in statements)
            {
                var actions = Actions(statement);
                Assert.DoesNotContain("*", actions);
                Assert.DoesNotContain("execute-api:*", actions);
                Assert.DoesNotContain("dynamodb:*", actions);
                if (!actions.Any(a => a.StartsWith("execute-api:", StringComparison.Ordinal) ||
                                      a.StartsWith("dynamodb:", StringComparison.Ordinal)))
                {
                    continue;
                }

                foreach (var resource in Resources(statement))
                {
                    var text = resource is JsonValue ? (string?)resource : null;
                    Assert.NotEqual("*", text);
                    Assert.False(text is not null && text.EndsWith(":*", StringComparison.Ordinal), text);
                    // A join may end in "@connections/*", but never leave the API id or stage open.
                    var json = resource.ToJsonString();
                    Assert.DoesNotContain("\"*\"", json, StringComparison.Ordinal);
                    Assert.DoesNotContain(":*/", json, StringComparison.Ordinal);
                    Assert.DoesNotContain("/*/", json, StringComparison.Ordinal);
                }
            }
        }
    }

    [Fact]
    public void Roles_carry_only_the_basic_execution_managed_policy()
    {
        foreach (var (_, role) in _stack.Resources("AWS::IAM::Role"))
        {
            var managed = role["Properties"]!["ManagedPolicyArns"]!.AsArray().Select(m => m!.ToJsonString()).ToList();
            var only = Assert.Single(managed);
            Assert.Contains("AWSLambdaBasicExecutionRole", only, StringComparison.Ordinal);
        }
    }

    // ---- outputs, secret ------------------------------------------------------------------------------------

    [Fact]
    public void Outputs_the_websocket_url_and_the_function_url()
    {
        Template.HasOutput("WebSocketUrl", new Props
        {
            ["Value"] = Join("wss://", Ref(ApiId), ".execute-api.", Ref("AWS::Region"), ".", Ref("AWS::URLSuffix"), "/dev"),
        });
        Template.HasOutput("FunctionUrl", new Props { ["Value"] = GetAtt(FunctionUrlId, "FunctionUrl") });
    }

    [Fact]
    public void Gateway_secret_is_a_noecho_parameter_by_default()
    {
        Template.HasParameter("GatewaySecret", new Props
        {
            ["Type"] = "String",
            ["NoEcho"] = true,
            ["MinLength"] = 32,
        });
        var parameter = _stack.Json["Parameters"]!["GatewaySecret"]!.AsObject();
        Assert.False(parameter.ContainsKey("Default"));
    }

    [Fact]
    public void Gateway_secret_can_come_from_an_ssm_parameter()
    {
        var other = fixture.WithSsmSecret;
        var parameters = other.Json["Parameters"]!.AsObject();
        Assert.False(parameters.ContainsKey("GatewaySecret"));
        var (name, ssm) = Assert.Single(parameters, p => (string?)p.Value!["Default"] == "/talki/gateway-secret");
        Assert.Equal("AWS::SSM::Parameter::Value<String>", (string?)ssm!["Type"]);

        other.Template.HasResourceProperties("AWS::ApiGatewayV2::Integration", Match.ObjectLike(new Props
        {
            ["RequestParameters"] = Match.ObjectLike(new Props
            {
                ["integration.request.header.x-talki-gateway-secret"] = Join("'", Ref(name), "'"),
            }),
        }));
        other.Template.AllResourcesProperties("AWS::Lambda::Function", Match.ObjectLike(new Props
        {
            ["Environment"] = Match.ObjectLike(new Props
            {
                ["Variables"] = Match.ObjectLike(new Props { ["Talki__Aws__GatewaySecret"] = Ref(name) }),
            }),
        }));
    }

    [Fact]
    public void Redis_sessions_take_their_configuration_string_from_an_ssm_parameter_never_a_literal()
    {
        var other = fixture.WithSsmSecret;
        var (name, ssm) = Assert.Single(other.Json["Parameters"]!.AsObject(), p => (string?)p.Value!["Default"] == "/talki/redis");
        Assert.Equal("AWS::SSM::Parameter::Value<String>", (string?)ssm!["Type"]);
        other.Template.AllResourcesProperties("AWS::Lambda::Function", Match.ObjectLike(new Props
        {
            ["Environment"] = Match.ObjectLike(new Props
            {
                ["Variables"] = Match.ObjectLike(new Props { ["Talki__Redis"] = Ref(name) }),
            }),
        }));
    }

    [Fact]
    public void Functions_log_warnings_only_so_a_normal_call_writes_no_host_lines()
    {
        Template.AllResourcesProperties("AWS::Lambda::Function", Match.ObjectLike(new Props
        {
            ["Environment"] = Match.ObjectLike(new Props
            {
                ["Variables"] = Match.ObjectLike(new Props { ["Logging__LogLevel__Default"] = "Warning" }),
            }),
        }));
    }

    [Fact]
    public void Sessions_stay_in_the_table_unless_a_redis_parameter_is_named()
    {
        foreach (var (_, function) in _stack.Resources("AWS::Lambda::Function"))
        {
            var variables = function["Properties"]!["Environment"]!["Variables"]!.AsObject();
            Assert.False(variables.ContainsKey("Talki__Redis"));
        }
    }

    // ---- the stack works as deployed -------------------------------------------------------------------------

    [Fact]
    public void Public_principal_may_invoke_the_backend_only_through_its_function_url()
    {
        var publicPermissions = _stack.Resources("AWS::Lambda::Permission")
            .Select(p => p.Resource["Properties"]!.AsObject())
            .Where(p => (string?)p["Principal"] == "*")
            .ToList();
        Assert.Equal(2, publicPermissions.Count);
        Assert.All(publicPermissions, p => Assert.Equal(GetAtt(BackendId, "Arn").ToJsonNode().ToJsonString(), p["FunctionName"]!.ToJsonString()));

        // What CDK's FunctionUrl adds for auth NONE ...
        var url = Assert.Single(publicPermissions, p => (string?)p["Action"] == "lambda:InvokeFunctionUrl");
        Assert.Equal("NONE", (string?)url["FunctionUrlAuthType"]);
        // ... and what new function URLs need since October 2025: InvokeFunction, only via the URL.
        var invoke = Assert.Single(publicPermissions, p => (string?)p["Action"] == "lambda:InvokeFunction");
        Assert.True((bool?)invoke["InvokedViaFunctionUrl"]);

        // Nothing wider for the public principal, on any function.
        foreach (var permission in publicPermissions)
        {
            var action = (string?)permission["Action"];
            Assert.True(action is "lambda:InvokeFunctionUrl" or "lambda:InvokeFunction", action);
            Assert.False(permission.ContainsKey("Qualifier"));
        }

        Assert.DoesNotContain(_stack.Resources("AWS::Lambda::Permission"), p =>
            (string?)p.Resource["Properties"]!["Principal"] == "*" &&
            (string?)p.Resource["Properties"]!["Action"] == "lambda:InvokeFunction" &&
            (bool?)p.Resource["Properties"]!["InvokedViaFunctionUrl"] != true);
        Assert.DoesNotContain(_stack.Resources("AWS::Lambda::Permission"), p =>
            ((string?)p.Resource["Properties"]!["Action"])?.EndsWith('*') == true);
        Assert.DoesNotContain(_stack.Resources("AWS::Lambda::Permission"), p =>
            (string?)p.Resource["Properties"]!["Principal"] == "*" &&
            p.Resource["Properties"]!["FunctionName"]!.ToJsonString().Contains(AuthorizerFunctionId, StringComparison.Ordinal));
    }

    [Fact]
    public void Each_function_is_told_its_role_so_only_the_authorizer_maps_the_pass_through_path()
    {
        Assert.Equal("backend", (string?)Environment(BackendId)["Talki__Aws__Role"]);
        Assert.Equal("authorizer", (string?)Environment(AuthorizerFunctionId)["Talki__Aws__Role"]);
    }

    [Fact]
    public void Dynamodb_actions_are_exactly_those_the_room_store_calls()
    {
        // DynamoDbRoomStore calls GetItem, PutItem, UpdateItem, DeleteItem and Query (table creation is off on AWS).
        string[] expected = ["dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"];
        foreach (var template in new[] { fixture.Default, fixture.WithSsmSecret })
        {
            foreach (var id in new[] { template.LogicalId(template.Stack.Backend), template.LogicalId(template.Stack.AuthorizerFunction) })
            {
                var actions = Statements(PolicyFor(template, id)).SelectMany(Actions)
                    .Where(a => a.StartsWith("dynamodb:", StringComparison.Ordinal)).Order(StringComparer.Ordinal).ToList();
                Assert.Equal(expected, actions);
                Assert.DoesNotContain("dynamodb:Scan", actions);
                Assert.DoesNotContain("dynamodb:BatchWriteItem", actions);
            }
        }
    }

    [Fact]
    public void Only_the_backend_may_manage_connections()
    {
        var holders = _stack.Resources("AWS::IAM::Policy")
            .Where(p => Statements(p.Resource).SelectMany(Actions).Any(a => a.StartsWith("execute-api:", StringComparison.Ordinal)))
            .ToList();
        var holder = Assert.Single(holders);
        Assert.Same(RolePolicyFor(BackendId), holder.Resource);
    }

    [Fact]
    public void Functions_run_on_arm64_and_only_the_backend_has_the_arm64_web_adapter_layer()
    {
        foreach (var (id, function) in _stack.Resources("AWS::Lambda::Function"))
        {
            var properties = function["Properties"]!;
            Assert.Equal("[\"arm64\"]", properties["Architectures"]!.ToJsonString());
            if (id == AuthorizerFunctionId)
            {
                Assert.Null(properties["Layers"]); // a custom runtime: no adapter taking its invocations
                continue;
            }

            var layer = Assert.Single(properties["Layers"]!.AsArray())!.ToJsonString();
            Assert.Contains("LambdaAdapterLayerArm64", layer, StringComparison.Ordinal);
            Assert.DoesNotContain("X86", layer, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void An_x86_adapter_layer_is_refused_for_the_arm64_functions()
    {
        var exception = Assert.Throws<ArgumentException>(() => new TalkiStack(new Amazon.CDK.App(), "X86", new TalkiStackProps
        {
            HostAssetPath = Path.GetTempPath(),
            AuthorizerAssetPath = Path.GetTempPath(),
            LambdaWebAdapterLayerArn = "arn:${AWS::Partition}:lambda:${AWS::Region}:753240598075:layer:LambdaAdapterLayerX86:25",
        }));
        Assert.Contains("arm64", exception.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void No_arn_in_the_template_names_the_aws_partition_literally()
    {
        foreach (var template in new[] { fixture.Default, fixture.WithSsmSecret })
        {
            var literals = Strings(template.Json).Where(s => s.Contains("arn:aws:", StringComparison.Ordinal)).ToList();
            Assert.True(literals.Count == 0, string.Join('\n', literals));
        }
    }

    [Fact]
    public void Stage_writes_access_logs_to_a_log_group_with_a_retention()
    {
        var stage = _stack.Resources("AWS::ApiGatewayV2::Stage").Single().Resource["Properties"]!;
        var settings = stage["AccessLogSettings"]!;
        var logGroup = Assert.Single(_stack.Resources("AWS::Logs::LogGroup"));
        Assert.Equal(GetAtt(logGroup.Id, "Arn").ToJsonNode().ToJsonString(), settings["DestinationArn"]!.ToJsonString());
        Assert.True((int?)logGroup.Resource["Properties"]!["RetentionInDays"] > 0);
        var format = (string?)settings["Format"];
        Assert.NotNull(format);
        foreach (var variable in new[] { "$context.requestId", "$context.connectionId", "$context.routeKey", "$context.status" })
        {
            Assert.Contains(variable, format, StringComparison.Ordinal);
        }

        // CloudWatch Logs bills every byte of every line: no variable twice, and not the event type, which the route key
        // already says ($connect, $default, $disconnect).
        var variables = System.Text.RegularExpressions.Regex.Matches(format, @"\$context\.[A-Za-z0-9_.]+").Select(m => m.Value).ToList();
        Assert.Equal(variables.Count, variables.Distinct(StringComparer.Ordinal).Count());
        Assert.DoesNotContain("$context.eventType", variables);
    }

    [Fact]
    public void Without_access_logs_the_stage_has_no_log_settings_and_no_log_group_and_nothing_else_changes()
    {
        var without = fixture.WithoutAccessLogs;
        var stage = without.Resources("AWS::ApiGatewayV2::Stage").Single().Resource["Properties"]!.AsObject();
        Assert.False(stage.ContainsKey("AccessLogSettings"), stage.ToJsonString());
        Assert.Empty(without.Resources("AWS::Logs::LogGroup"));
        Assert.Null(without.Stack.AccessLogs);

        // Everything else is the default stack's: the same resources but the log group, the same stage but its log settings.
        var resources = without.Json["Resources"]!.AsObject().Select(r => r.Key).Order(StringComparer.Ordinal).ToList();
        var defaults = _stack.Json["Resources"]!.AsObject().Where(r => (string?)r.Value!["Type"] != "AWS::Logs::LogGroup").Select(r => r.Key).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(defaults, resources);
        var defaultStage = _stack.Resources("AWS::ApiGatewayV2::Stage").Single().Resource["Properties"]!.DeepClone().AsObject();
        defaultStage.Remove("AccessLogSettings");
        Assert.True(JsonNode.DeepEquals(defaultStage, stage), stage.ToJsonString());
    }

    [Fact]
    public void Stage_throttles_every_route()
    {
        var stage = _stack.Resources("AWS::ApiGatewayV2::Stage").Single().Resource["Properties"]!;
        var route = stage["DefaultRouteSettings"]!;
        Assert.True((int?)route["ThrottlingBurstLimit"] > 0);
        Assert.True((double?)route["ThrottlingRateLimit"] > 0);
    }

    // ---- helpers --------------------------------------------------------------------------------------------

    private static IEnumerable<string> Strings(JsonNode? node) => node switch
    {
        JsonObject o => o.SelectMany(p => Strings(p.Value).Prepend(p.Key)),
        JsonArray a => a.SelectMany(Strings),
        JsonValue v when v.TryGetValue<string>(out var text) => [text],
        _ => [],
    };

    private static string TargetIntegrationId(JsonObject route)
    {
        var target = route["Properties"]!["Target"]!.ToJsonString();
        var match = System.Text.RegularExpressions.Regex.Match(target, "\\{\"Ref\":\"([^\"]+)\"\\}");
        Assert.True(match.Success, target);
        return match.Groups[1].Value;
    }

    private JsonObject Environment(string functionId) =>
        _stack.Json["Resources"]![functionId]!["Properties"]!["Environment"]!["Variables"]!.AsObject();

    private JsonObject RolePolicyFor(string functionId) => PolicyFor(_stack, functionId);

    private static JsonObject PolicyFor(SynthesizedTemplate stack, string functionId)
    {
        var roleRef = stack.Json["Resources"]![functionId]!["Properties"]!["Role"]!["Fn::GetAtt"]![0]!.GetValue<string>();
        return Assert.Single(stack.Resources("AWS::IAM::Policy"),
            p => p.Resource["Properties"]!["Roles"]!.AsArray().Any(r => (string?)r!["Ref"] == roleRef)).Resource;
    }

    private static IEnumerable<JsonObject> Statements(JsonObject policy) =>
        policy["Properties"]!["PolicyDocument"]!["Statement"]!.AsArray().Select(s => s!.AsObject());

    private static List<string> Actions(JsonObject statement) => statement["Action"] switch
    {
        JsonArray many => many.Select(a => (string)a!).ToList(),
        JsonNode one => [(string)one!],
        null => [],
    };

    private static List<JsonNode> Resources(JsonObject statement) => statement["Resource"] switch
    {
        JsonArray many => many.Select(r => r!).ToList(),
        JsonNode one => [one],
        null => [],
    };
}

internal static class JsonExtensions
{
    public static JsonNode ToJsonNode(this Dictionary<string, object> value) =>
        JsonNode.Parse(System.Text.Json.JsonSerializer.Serialize(value))!;
}
