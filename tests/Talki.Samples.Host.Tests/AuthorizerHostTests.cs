using System.Net;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Talki.Samples.Host.Tests;

/// <summary>
/// The sample host as the AWS stack's authorizer function (<c>samples/Talki.Samples.Host/AuthorizerHost.cs</c>): when it
/// takes the slim start, and that the slim host answers API Gateway's authorizer events and serves nothing else.
/// </summary>
public sealed class AuthorizerHostTests
{
    private static readonly string[] Aws =
    [
        "--Talki:Aws:TableName=talki-test",
        "--Talki:Aws:ApiEndpoint=https://abc123.execute-api.eu-west-1.amazonaws.com",
        "--Talki:Aws:Stage=prod",
        "--Talki:Aws:Region=eu-west-1",
        "--Talki:Aws:GatewaySecret=a-gateway-secret-of-32-characters",
        "--Talki:Aws:DynamoDbServiceUrl=http://127.0.0.1:9",
    ];

    [Theory]
    [InlineData("--Talki:Aws:Role=authorizer")]
    [InlineData("--Talki:Aws:Role", "authorizer")]
    [InlineData("/Talki:Aws:Role=Authorizer")]
    [InlineData("--talki:aws:role=AUTHORIZER")]
    public void IsRequested_TheAuthorizerRoleOnTheCommandLine_InEveryFormTheHostReads_IsTheAuthorizer(params string[] args)
        => Assert.True(AuthorizerHost.IsRequested(args));

    [Theory]
    [InlineData("--Talki:Aws:Role=backend")]
    [InlineData("--Talki:Aws:TableName=talki")]
    [InlineData]
    public void IsRequested_AnotherRoleOrNone_IsTheFullHost(params string[] args)
        => Assert.False(AuthorizerHost.IsRequested(args));

    [Fact]
    public void Build_WithoutATable_FailsAtOnce_SayingWhy()
    {
        var exception = Assert.Throws<InvalidOperationException>(() => AuthorizerHost.Build(["--Talki:Aws:Role=authorizer", "--urls=http://127.0.0.1:0"]));
        Assert.Contains("TableName", exception.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheSlimHost_AnswersAuthorizerEvents_AndServesNeitherTheHttpApiNorTheApp()
    {
        await using var app = AuthorizerHost.Build([.. Aws, "--Talki:Aws:Role=authorizer", "--urls=http://127.0.0.1:0", "--Logging:LogLevel:Default=None"]);
        await app.StartAsync();
        using var http = new HttpClient { BaseAddress = new Uri(app.Urls.Single()) };

        var routes = app.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>()
            .Select(e => "/" + e.RoutePattern.RawText?.TrimStart('/')).Order(StringComparer.Ordinal);
        Assert.Equal(["/events", "/healthz"], routes);

        // A malformed event is denied without a store call (the table's URL here refuses connections).
        using var authorizer = await http.PostAsync("/events", new StringContent("{}", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, authorizer.StatusCode);
        Assert.Contains("Deny", await authorizer.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal("ok", await http.GetStringAsync("/healthz"));

        // Anyone reaching the function some other way finds no sign-in, no room, no integration and no app.
        using var signIn = await http.PostAsync("/talki/session/anonymous", new StringContent("{\"displayName\":\"Ada\"}", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.NotFound, signIn.StatusCode);
        using var integration = await http.PostAsync("/talki/aws/default", new StringContent("{}", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.NotFound, integration.StatusCode);
        using var page = await http.GetAsync("/");
        Assert.Equal(HttpStatusCode.NotFound, page.StatusCode);
    }
}
