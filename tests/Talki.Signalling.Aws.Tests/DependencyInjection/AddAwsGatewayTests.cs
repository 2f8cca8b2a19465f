using System.Net;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Talki.Signalling.Aws.ApiGateway;
using Talki.Signalling.Aws.DynamoDb;
using Talki.Signalling.Ports;
using Talki.Signalling.Server;

namespace Talki.Signalling.Aws.Tests.DependencyInjection;

/// <summary><c>AddTalkiSignalling().AddAwsGateway(configuration)</c>: AWS mode in one call, and only the gateway's endpoints mapped.</summary>
public sealed class AddAwsGatewayTests
{
    private static readonly Dictionary<string, string?> Complete = new()
    {
        ["Talki:Aws:TableName"] = "talki-test",
        ["Talki:Aws:ApiEndpoint"] = "https://abc123.execute-api.eu-west-1.amazonaws.com",
        ["Talki:Aws:Stage"] = "prod",
        ["Talki:Aws:Region"] = "eu-west-1",
        ["Talki:Aws:GatewaySecret"] = "a-gateway-secret-of-32-characters",
    };

    [Fact]
    public async Task AddAwsGateway_OneCall_RegistersStorePushAndCallbacks_AndMapsNoSelfHostedSocket()
    {
        await using var app = await StartAsync(Complete);
        using var http = new HttpClient { BaseAddress = new Uri(app.Urls.Single()) };

        Assert.IsType<DynamoDbRoomStoreGuard>(app.Services.GetRequiredService<IRoomStore>());
        Assert.IsType<ApiGatewayConnections>(app.Services.GetRequiredService<IConnectionPush>());
        var options = app.Services.GetRequiredService<IOptions<TalkiSignallingOptions>>().Value;
        Assert.False(options.SealRoomsOnTimer);
        Assert.Equal(new Uri("wss://abc123.execute-api.eu-west-1.amazonaws.com/prod"), options.Hosting.PublicWebSocketUrl);

        // The self-hosted socket is not there: nothing would push to it on AWS.
        using (var upgrade = new HttpRequestMessage(HttpMethod.Get, "/talki/ws?v=1&ticket=anything"))
        {
            upgrade.Headers.Add("Connection", "Upgrade");
            upgrade.Headers.Add("Upgrade", "websocket");
            upgrade.Headers.Add("Sec-WebSocket-Version", "13");
            upgrade.Headers.Add("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==");
            var status = (await http.SendAsync(upgrade)).StatusCode;
            Assert.True(status is HttpStatusCode.NotFound or HttpStatusCode.MethodNotAllowed, $"GET /talki/ws answered {status}"); // 405: only the CORS preflight route matches
        }

        Assert.DoesNotContain(Routes(app), r => r.EndsWith("/ws", StringComparison.Ordinal));
        Assert.Contains("/events", Routes(app));

        // The callbacks are: a malformed authorizer event is denied (200 with a Deny policy), an unsigned $default is 401.
        using var authorizer = await http.PostAsync("/events", new StringContent("{}", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, authorizer.StatusCode);
        Assert.Contains("Deny", await authorizer.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        using var unsigned = await http.PostAsync("/talki/aws/default", new StringContent("{}", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.Unauthorized, unsigned.StatusCode);
    }

    [Fact]
    public async Task AddAwsGateway_RoleBackend_MapsTheIntegrationsButNotTheAuthorizer()
    {
        await using var app = await StartAsync(new(Complete) { ["Talki:Aws:Role"] = "backend" });
        using var http = new HttpClient { BaseAddress = new Uri(app.Urls.Single()) };

        // Behind the public function URL, /events would let anyone consume a ticket and bind it to any connection id.
        Assert.DoesNotContain("/events", Routes(app));
        Assert.Contains("/talki/aws/default", Routes(app));
        Assert.Contains("/talki/aws/disconnect", Routes(app));
        using var authorizer = await http.PostAsync("/events", new StringContent("{}", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.NotFound, authorizer.StatusCode);
        using var unsigned = await http.PostAsync("/talki/aws/default", new StringContent("{}", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.Unauthorized, unsigned.StatusCode);
    }

    [Fact]
    public async Task AddAwsGateway_RoleAuthorizer_BuildsNoConnectionsClient_AndAPushThereFailsLoudly()
    {
        await using var app = await StartAsync(new(Complete) { ["Talki:Aws:Role"] = "authorizer" });

        // The authorizer's role may not call @connections: nothing of the client is registered, and a push is a bug.
        var push = app.Services.GetRequiredService<IConnectionPush>();
        Assert.IsType<Talki.Signalling.Aws.Callbacks.NoPushFromTheAuthorizer>(push);
        Assert.Null(app.Services.GetService<IApiGatewayConnections>());
        await Assert.ThrowsAsync<InvalidOperationException>(() => push.PushAsync("R0oXAdfD0kwCH6w=", "{}"u8.ToArray()).AsTask());
        await Assert.ThrowsAsync<InvalidOperationException>(() => push.CloseAsync("R0oXAdfD0kwCH6w=").AsTask());

        await using var backend = await StartAsync(new(Complete) { ["Talki:Aws:Role"] = "backend" });
        Assert.IsNotType<Talki.Signalling.Aws.Callbacks.NoPushFromTheAuthorizer>(backend.Services.GetRequiredService<IConnectionPush>());
    }

    [Fact]
    public async Task AddAwsGateway_RoleAuthorizer_MapsOnlyTheAuthorizer()
    {
        await using var app = await StartAsync(new(Complete) { ["Talki:Aws:Role"] = "authorizer" });
        using var http = new HttpClient { BaseAddress = new Uri(app.Urls.Single()) };

        Assert.Contains("/events", Routes(app));
        Assert.DoesNotContain("/talki/aws/default", Routes(app));
        Assert.DoesNotContain("/talki/aws/disconnect", Routes(app));
        using var authorizer = await http.PostAsync("/events", new StringContent("{}", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, authorizer.StatusCode);
        Assert.Contains("Deny", await authorizer.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        using var integration = await http.PostAsync("/talki/aws/default", new StringContent("{}", Encoding.UTF8, "application/json"));
        Assert.True(integration.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.MethodNotAllowed, $"POST /talki/aws/default answered {integration.StatusCode}");

        // Nor the HTTP API: the authorizer function answers API Gateway's $connect events and nothing else, so a sign-in, a
        // room or a ticket asked of it (through a URL added by mistake) finds no endpoint.
        Assert.Equal(["/events"], Routes(app));
        using var signIn = await http.PostAsync("/talki/session/anonymous", new StringContent("{\"displayName\":\"Ada\"}", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.NotFound, signIn.StatusCode);
        using var room = await http.PostAsync("/talki/rooms", new StringContent("{}", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.NotFound, room.StatusCode);
    }

    [Fact]
    public async Task AddAwsGateway_RoleBackend_ServesTheHttpApi()
    {
        await using var app = await StartAsync(new(Complete) { ["Talki:Aws:Role"] = "backend" });

        Assert.Contains("/talki/session/anonymous", Routes(app));
        Assert.Contains("/talki/rooms", Routes(app));
        Assert.Contains("/talki/rooms/{roomId}/tickets", Routes(app));
    }

    [Fact]
    public void AddAwsGateway_UnknownRole_IsRefused()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>(Complete) { ["Talki:Aws:Role"] = "both" }).Build();
        var talki = new ServiceCollection().AddTalkiSignalling();
        var exception = Assert.Throws<ArgumentException>(() => talki.AddAwsGateway(configuration.GetSection("Talki:Aws")));
        Assert.Contains("Role", exception.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AddTalkiSignalling_WithoutAGatewayAdapter_MapsTheSelfHostedSocketAndNoCallbacks()
    {
        await using var app = await StartAsync(null);
        using var http = new HttpClient { BaseAddress = new Uri(app.Urls.Single()) };

        using var authorizer = await http.PostAsync("/events", new StringContent("{}", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.NotFound, authorizer.StatusCode);
        Assert.Contains("/talki/ws", Routes(app));
        Assert.DoesNotContain("/events", Routes(app));
    }

    [Fact]
    public async Task AddAwsGateway_MissingSettings_FailsAtStartUpListingEveryFailure()
    {
        var incomplete = new Dictionary<string, string?> { ["Talki:Aws:TableName"] = "x" };
        var exception = await Assert.ThrowsAnyAsync<Exception>(() => StartAsync(incomplete));
        var messages = exception is AggregateException aggregate
            ? string.Join('\n', aggregate.Flatten().InnerExceptions.Select(e => e.Message))
            : exception.Message;

        Assert.Contains(nameof(DynamoDbRoomStoreOptions.TableName), messages, StringComparison.Ordinal);
        Assert.Contains(nameof(ApiGatewayPushOptions.Endpoint), messages, StringComparison.Ordinal);
        Assert.Contains(nameof(ApiGatewayPushOptions.Stage), messages, StringComparison.Ordinal);
        Assert.Contains("GatewaySecret", messages, StringComparison.Ordinal);
    }

    private static List<string> Routes(WebApplication app)
        => [.. app.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>().Select(e => "/" + e.RoutePattern.RawText?.TrimStart('/'))];

    /// <summary>Starts a host on a free port with <paramref name="aws"/> as its configuration and AWS mode when it is given.</summary>
    /// <param name="aws">The configuration (the <c>Talki:Aws</c> keys), or <see langword="null"/> for the embedded defaults.</param>
    /// <param name="services">Registers services of the test's own before Talki's (a DynamoDB client, for example).</param>
    internal static async Task<WebApplication> StartAsync(Dictionary<string, string?>? aws, Action<IServiceCollection>? services = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        builder.Configuration.AddInMemoryCollection(aws ?? []);
        services?.Invoke(builder.Services);
        var talki = builder.Services.AddTalkiSignalling();
        if (aws is not null)
        {
            talki.AddAwsGateway(builder.Configuration.GetSection("Talki:Aws"));
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
}
