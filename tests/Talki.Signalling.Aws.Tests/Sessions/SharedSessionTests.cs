using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Amazon.DynamoDBv2;
using Amazon.DynamoDBv2.Model;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Talki.Signalling.Aws.DynamoDb;
using Talki.Signalling.Aws.Sessions;
using Talki.Signalling.Aws.Tests.DynamoDb;

namespace Talki.Signalling.Aws.Tests.Sessions;

/// <summary>
/// The promise of <c>AddDynamoDbSessions()</c>: a session created on one instance of the host works on another (as on two
/// Lambda instances), and survives both restarting; without it, the second instance does not know the session.
/// </summary>
[Collection(DynaliteGroup.Name)]
public sealed class SharedSessionTests(DynaliteFixture dynalite)
{
    [Fact]
    public async Task CookieSession_CreatedOnOneInstance_WorksOnAnother_AndSurvivesBothRestarting()
    {
        var table = await NewTableAsync();
        string cookie;
        await using (var first = await StartAsync(table))
        await using (var second = await StartAsync(table))
        {
            cookie = await SignInWithCookieAsync(first);
            Assert.Equal(HttpStatusCode.OK, await GetSessionAsync(second, cookie: cookie));
            Assert.Equal(HttpStatusCode.OK, await GetSessionAsync(first, cookie: cookie));
        }

        Assert.Equal(1, await CountAsync(table, "cache#"));
        Assert.Equal(1, await CountAsync(table, "dataprotection"));

        await using var third = await StartAsync(table);
        await using var fourth = await StartAsync(table);
        Assert.Equal(HttpStatusCode.OK, await GetSessionAsync(third, cookie: cookie));
        Assert.Equal(HttpStatusCode.OK, await GetSessionAsync(fourth, cookie: cookie));
    }

    [Fact]
    public async Task BearerSession_CreatedOnOneInstance_WorksOnAnother_AndSurvivesBothRestarting()
    {
        var table = await NewTableAsync();
        string token;
        await using (var first = await StartAsync(table))
        await using (var second = await StartAsync(table))
        {
            token = await SignInWithBearerAsync(first);
            Assert.Equal(HttpStatusCode.OK, await GetSessionAsync(second, bearer: token));
        }

        await using var third = await StartAsync(table);
        await using var fourth = await StartAsync(table);
        Assert.Equal(HttpStatusCode.OK, await GetSessionAsync(third, bearer: token));
        Assert.Equal(HttpStatusCode.OK, await GetSessionAsync(fourth, bearer: token));
        Assert.Equal(HttpStatusCode.Unauthorized, await GetSessionAsync(fourth, bearer: token + "x"));
    }

    [Fact]
    public async Task SignOut_OnOneInstance_EndsTheSessionOnTheOther()
    {
        var table = await NewTableAsync();
        await using var first = await StartAsync(table);
        await using var second = await StartAsync(table);
        var cookie = await SignInWithCookieAsync(first);
        Assert.Equal(HttpStatusCode.OK, await GetSessionAsync(second, cookie: cookie));

        using var http = Client(first);
        using var signOut = new HttpRequestMessage(HttpMethod.Post, "/talki/session/sign-out") { Content = Json("{}") };
        signOut.Headers.Add("Cookie", cookie);
        Assert.Equal(HttpStatusCode.NoContent, (await http.SendAsync(signOut)).StatusCode);

        Assert.Equal(HttpStatusCode.Unauthorized, await GetSessionAsync(second, cookie: cookie));
        Assert.Equal(0, await CountAsync(table, "cache#"));
    }

    [Fact]
    public async Task Control_WithoutAddDynamoDbSessions_TheSecondInstanceAnswers401()
    {
        var table = await NewTableAsync();
        await using var first = await StartAsync(table, sessions: false);
        await using var second = await StartAsync(table, sessions: false);
        var cookie = await SignInWithCookieAsync(first);
        var token = await SignInWithBearerAsync(first);

        Assert.Equal(HttpStatusCode.OK, await GetSessionAsync(first, cookie: cookie));
        Assert.Equal(HttpStatusCode.Unauthorized, await GetSessionAsync(second, cookie: cookie));
        Assert.Equal(HttpStatusCode.Unauthorized, await GetSessionAsync(second, bearer: token));
        Assert.Equal(0, await CountAsync(table, "cache#"));
    }

    [Fact]
    public async Task AddAwsGateway_RegistersTheDynamoDbSessions()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Talki:Aws:TableName"] = "talki-test",
            ["Talki:Aws:ApiEndpoint"] = "https://abc123.execute-api.eu-west-1.amazonaws.com",
            ["Talki:Aws:Stage"] = "prod",
            ["Talki:Aws:Region"] = "eu-west-1",
            ["Talki:Aws:GatewaySecret"] = "a-gateway-secret-of-32-characters",
            ["Talki:Aws:DynamoDbServiceUrl"] = dynalite.ServiceUrl,
        });
        builder.Services.AddTalkiSignalling().AddAwsGateway(builder.Configuration.GetSection("Talki:Aws")).AddDynamoDbSessions();
        await using var app = builder.Build();

        Assert.IsType<DynamoDbDistributedCache>(app.Services.GetRequiredService<IDistributedCache>());
        Assert.Single(app.Services.GetServices<DynamoDbSessionTable>());
        var keyManagement = app.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<Microsoft.AspNetCore.DataProtection.KeyManagement.KeyManagementOptions>>().Value;
        Assert.IsType<DynamoDbXmlRepository>(keyManagement.XmlRepository);
    }

    private async Task<WebApplication> StartAsync(string table, bool sessions = true)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton<IAmazonDynamoDB>(dynalite.Client);
        builder.Services.Configure<DynamoDbRoomStoreOptions>(o => o.TableName = table);
        var talki = builder.Services.AddTalkiSignalling();
        if (sessions)
        {
            talki.AddDynamoDbSessions();
        }

        var app = builder.Build();
        app.MapTalkiSignalling();
        try
        {
            await app.StartAsync();
        }
        catch
        {
            await app.DisposeAsync();
            throw;
        }

        return app;
    }

    private static HttpClient Client(WebApplication app)
        => new(new SocketsHttpHandler { UseCookies = false }) { BaseAddress = new Uri(app.Urls.Single()) };

    private static async Task<string> SignInWithCookieAsync(WebApplication app)
    {
        using var http = Client(app);
        using var response = await http.PostAsync("/talki/session/anonymous", Json("""{"displayName":"Ada"}"""));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var session = response.Headers.GetValues("Set-Cookie").Single(c => c.StartsWith("talki.session=", StringComparison.Ordinal));
        return session.Split(';')[0];
    }

    private static async Task<string> SignInWithBearerAsync(WebApplication app)
    {
        using var http = Client(app);
        using var response = await http.PostAsync("/talki/session/anonymous", Json("""{"displayName":"Ada","useBearerToken":true}"""));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return body.RootElement.GetProperty("accessToken").GetString()!;
    }

    private static async Task<HttpStatusCode> GetSessionAsync(WebApplication app, string? cookie = null, string? bearer = null)
    {
        using var http = Client(app);
        using var request = new HttpRequestMessage(HttpMethod.Get, "/talki/session");
        if (cookie is not null)
        {
            request.Headers.Add("Cookie", cookie);
        }

        if (bearer is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        }

        using var response = await http.SendAsync(request);
        return response.StatusCode;
    }

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private async Task<int> CountAsync(string table, string pkPrefix)
    {
        var response = await dynalite.Client.ScanAsync(new ScanRequest
        {
            TableName = table,
            FilterExpression = "begins_with(pk, :p)",
            ExpressionAttributeValues = new() { [":p"] = new AttributeValue { S = pkPrefix } },
        });
        return response.Items?.Count ?? 0;
    }

    private async Task<string> NewTableAsync()
    {
        var table = "sessions-" + Guid.NewGuid().ToString("N");
        await dynalite.EnsureTableAsync(table);
        return table;
    }
}
