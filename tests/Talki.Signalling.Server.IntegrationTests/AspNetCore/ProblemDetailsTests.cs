using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Server.IntegrationTests.AspNetCore;

/// <summary>HTTP errors are RFC 9457 problem details written by ASP.NET Core's problem-details service, with the stable code.</summary>
public sealed class ProblemDetailsTests
{
    [Fact]
    public async Task Unauthenticated_IsAProblemDocument_WithTheStableCode()
    {
        await using var host = await TestHost.StartAsync();
        using var http = new HttpClient { BaseAddress = host.BaseAddress };
        using var request = new HttpRequestMessage(HttpMethod.Post, "/talki/rooms") { Content = JsonContent.Create(new { }) };

        using var response = await http.SendAsync(request);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal(401, json.RootElement.GetProperty("status").GetInt32());
        Assert.Equal("Unauthorized", json.RootElement.GetProperty("title").GetString());
        Assert.False(string.IsNullOrEmpty(json.RootElement.GetProperty("detail").GetString()));
        Assert.Equal("unauthenticated", json.RootElement.GetProperty("code").GetString());
        var typed = JsonSerializer.Deserialize(json.RootElement, TalkiJsonContext.Default.ErrorResponse)!;
        Assert.Equal(SignallingErrorCode.Unauthenticated, typed.Code);
    }

    [Fact]
    public async Task AnAppsProblemDetailsCustomization_AppliesToTalkiErrors()
    {
        await using var host = await TestHost.StartAsync(services: s => s.AddProblemDetails(o => o.CustomizeProblemDetails = c => c.ProblemDetails.Extensions["tenant"] = "acme"));
        using var http = new HttpClient { BaseAddress = host.BaseAddress };

        using var response = await http.GetAsync("/talki/session");

        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("acme", json.RootElement.GetProperty("tenant").GetString());
        Assert.Equal("unauthenticated", json.RootElement.GetProperty("code").GetString());
    }

    [Fact]
    public async Task AClientThatAcceptsNoJson_StillGetsTheProblemDocument()
    {
        await using var host = await TestHost.StartAsync();
        using var http = new HttpClient { BaseAddress = host.BaseAddress };
        using var request = new HttpRequestMessage(HttpMethod.Get, "/talki/session");
        request.Headers.Accept.ParseAdd("text/html");

        using var response = await http.SendAsync(request);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal(SignallingErrorCode.Unauthenticated, (await response.Content.ReadFromJsonAsync(TalkiJsonContext.Default.ErrorResponse))!.Code);
    }
}
