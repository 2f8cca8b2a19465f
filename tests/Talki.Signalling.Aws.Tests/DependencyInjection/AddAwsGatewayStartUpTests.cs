using System.Net;
using System.Text;
using Amazon.DynamoDBv2;
using Amazon.DynamoDBv2.Model;
using Amazon.Runtime;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Talki.Signalling.Aws.Tests.DynamoDb;

namespace Talki.Signalling.Aws.Tests.DependencyInjection;

/// <summary>
/// What each function's process asks DynamoDB before it can answer, against dynalite: the authorizer function reads no
/// cookie, so it must not load the cookie's key ring at start (ASP.NET Core's data protection preloads it in a hosted
/// service: a query on the cold start of every authorizer instance, before it answers API Gateway).
/// </summary>
[Collection(DynaliteGroup.Name)]
public sealed class AddAwsGatewayStartUpTests(DynaliteFixture dynalite)
{
    [Fact]
    public async Task RoleAuthorizer_StartsWithoutReadingTheKeyRing_AndAnswersAnEventWithoutIt()
    {
        var table = await NewTableAsync();
        using var dynamo = new CountingDynamoDb(dynalite.ServiceUrl);
        await using var app = await StartAsync(table, "authorizer", dynamo);
        Assert.Equal(0, dynamo.KeyRingQueries);

        using var http = new HttpClient { BaseAddress = new Uri(app.Urls.Single()) };
        using var answer = await http.PostAsync("/events", new StringContent(AuthorizerEvent(new string('A', 43)), Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
        Assert.Contains("\"Deny\"", await answer.Content.ReadAsStringAsync(), StringComparison.Ordinal); // an unknown ticket
        Assert.True(dynamo.Requests > 0, "the ticket was not looked up: " + await answer.Content.ReadAsStringAsync());
        Assert.Equal(0, dynamo.KeyRingQueries);
    }

    [Theory]
    [InlineData("backend")]
    [InlineData("")]
    public async Task RolesThatReadCookies_StillLoadTheKeyRingAtStart(string role)
    {
        // The backend function (and one local process with every role) signs users in: the key ring is loaded before the
        // first request, as ASP.NET Core does by default. Also what shows the count above can see a preload.
        var table = await NewTableAsync();
        using var dynamo = new CountingDynamoDb(dynalite.ServiceUrl);
        await using var app = await StartAsync(table, role, dynamo);
        Assert.True(dynamo.KeyRingQueries >= 1, $"role '{role}': the key ring was not read at start");
    }

    private static string AuthorizerEvent(string ticket) => $$$"""
        {"type":"REQUEST","methodArn":"arn:aws:execute-api:us-east-1:123456789012:abcdef123/prod/$connect",
         "headers":{"Host":"abcdef123.execute-api.us-east-1.amazonaws.com","Upgrade":"websocket"},
         "queryStringParameters":{"v":"1","ticket":"{{{ticket}}}"},
         "requestContext":{"routeKey":"$connect","eventType":"CONNECT","connectionId":"Abc123Def456Ghi=","stage":"prod",
           "apiId":"abcdef123","domainName":"abcdef123.execute-api.us-east-1.amazonaws.com"}}
        """;

    private static Task<WebApplication> StartAsync(string table, string role, IAmazonDynamoDB dynamo)
        => AddAwsGatewayTests.StartAsync(
            new()
            {
                ["Talki:Aws:TableName"] = table,
                ["Talki:Aws:ApiEndpoint"] = "https://abcdef123.execute-api.us-east-1.amazonaws.com",
                ["Talki:Aws:Stage"] = "prod",
                ["Talki:Aws:Region"] = "us-east-1",
                ["Talki:Aws:GatewaySecret"] = "a-gateway-secret-of-32-characters",
                ["Talki:Aws:Role"] = role,
            },
            services => services.AddSingleton(dynamo));

    private async Task<string> NewTableAsync()
    {
        var table = "startup-" + Guid.NewGuid().ToString("N");
        await dynalite.EnsureTableAsync(table);
        return table;
    }

    /// <summary>A real client of dynalite that counts its requests, and the queries of the data-protection key ring among them.</summary>
    private sealed class CountingDynamoDb(string serviceUrl)
        : AmazonDynamoDBClient(new BasicAWSCredentials("test", "test"), new AmazonDynamoDBConfig { ServiceURL = serviceUrl })
    {
        private int _keyRingQueries;
        private int _requests;

        public int KeyRingQueries => Volatile.Read(ref _keyRingQueries);

        public int Requests => Volatile.Read(ref _requests);

        public override Task<QueryResponse> QueryAsync(QueryRequest request, CancellationToken cancellationToken = default)
        {
            Interlocked.Increment(ref _requests);
            if (request.ExpressionAttributeValues?.Values.Any(static v => v.S == "dataprotection") == true)
            {
                Interlocked.Increment(ref _keyRingQueries);
            }

            return base.QueryAsync(request, cancellationToken);
        }

        public override Task<DeleteItemResponse> DeleteItemAsync(DeleteItemRequest request, CancellationToken cancellationToken = default)
        {
            Interlocked.Increment(ref _requests);
            return base.DeleteItemAsync(request, cancellationToken);
        }

        public override Task<GetItemResponse> GetItemAsync(GetItemRequest request, CancellationToken cancellationToken = default)
        {
            Interlocked.Increment(ref _requests);
            return base.GetItemAsync(request, cancellationToken);
        }

        public override Task<UpdateItemResponse> UpdateItemAsync(UpdateItemRequest request, CancellationToken cancellationToken = default)
        {
            Interlocked.Increment(ref _requests);
            return base.UpdateItemAsync(request, cancellationToken);
        }
    }
}
