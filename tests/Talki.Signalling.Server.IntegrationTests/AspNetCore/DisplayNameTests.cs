using System.Net;
using System.Net.Http.Json;
using System.Text;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Server.IntegrationTests.AspNetCore;

/// <summary>A display name is seen by every member: it cannot be invisible, reorder the text around it, or crash the API.</summary>
public sealed class DisplayNameTests
{
    [Theory]
    [InlineData("\\u200B\\u200C\\u200D")]             // zero-width only
    [InlineData("\\u2060\\uFEFF")]                    // word joiner, BOM: format characters only
    [InlineData("\\u0301\\u0308")]                    // combining marks with nothing to combine with
    [InlineData("admin\\u202Egnp.exe")]               // right-to-left override
    [InlineData("\\u2066Ada\\u2069")]                 // isolates
    [InlineData("Ada\\u200F")]                        // right-to-left mark
    [InlineData("\\ud800")]                           // lone surrogate
    [InlineData("Ada\\u0007")]                        // control
    public async Task SignIn_WithADeceptiveOrInvisibleName_Is400InvalidRequest(string escapedName)
    {
        await using var host = await TestHost.StartAsync();
        using var http = new HttpClient { BaseAddress = host.BaseAddress };
        using var body = new StringContent("{\"displayName\":\"" + escapedName + "\"}", Encoding.UTF8, "application/json");

        using var response = await http.PostAsync("/talki/session/anonymous", body);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal(SignallingErrorCode.InvalidRequest, (await response.Content.ReadFromJsonAsync(TalkiJsonContext.Default.ErrorResponse))!.Code);
    }

    [Fact]
    public async Task SignIn_WithADecomposedName_IsStoredInNormalizationFormC()
    {
        await using var host = await TestHost.StartAsync();
        using var zoe = await host.SignInAsync("  Zoe\u0308 ");

        var session = await zoe.SendAsync(new HttpRequestMessage(HttpMethod.Get, "/talki/session"));
        Assert.Equal("Zo\u00EB", (await session.Content.ReadFromJsonAsync(TalkiJsonContext.Default.SessionResponse))!.DisplayName);
    }

    [Theory]
    [InlineData("Ada Lovelace")]
    [InlineData("李小龍")]
    [InlineData("مريم")]
    [InlineData("🎉 party")]
    public async Task SignIn_WithAnOrdinaryName_Works(string name)
    {
        await using var host = await TestHost.StartAsync();
        using var user = await host.SignInAsync(name);
    }
}
