using System.Net;
using System.Net.Http.Json;
using System.Text;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Server.IntegrationTests.AspNetCore;

/// <summary>Hostile bodies: nothing the Talki API reads is larger than <c>Hosting.MaxRequestBodyBytes</c>.</summary>
public sealed class RequestBodyLimitTests
{
    [Fact]
    public async Task SignIn_Announcing40Megabytes_Is413MessageTooLarge_BeforeTheBodyIsSent()
    {
        await using var host = await TestHost.StartAsync();
        using var tcp = new System.Net.Sockets.TcpClient();
        await tcp.ConnectAsync(host.BaseAddress.Host, host.BaseAddress.Port);
        var stream = tcp.GetStream();
        var head = $"POST /talki/session/anonymous HTTP/1.1\r\nHost: {host.BaseAddress.Authority}\r\nContent-Type: application/json\r\nContent-Length: {40 * 1024 * 1024}\r\n\r\n{{\"displayName\":\"aaaa";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(head)); // the 40 MB never follow: the answer must not wait for them

        using var reader = new StreamReader(stream, Encoding.ASCII);
        var statusLine = await reader.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(15));
        var rest = await reader.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(15));

        Assert.StartsWith("HTTP/1.1 413", statusLine, StringComparison.Ordinal);
        Assert.Contains("\"code\":\"message_too_large\"", rest, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SignIn_WithAChunkedBodyOverTheLimit_Is413MessageTooLarge()
    {
        await using var host = await TestHost.StartAsync();
        using var http = new HttpClient { BaseAddress = host.BaseAddress };
        var json = Encoding.UTF8.GetBytes("{\"displayName\":\"" + new string('a', 1024 * 1024) + "\"}");
        using var body = new StreamContent(new UnknownLengthStream(json)); // no Content-Length: sent chunked
        body.Headers.ContentType = new("application/json");

        using var response = await http.PostAsync("/talki/session/anonymous", body);

        Assert.Null(body.Headers.ContentLength);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Equal(SignallingErrorCode.MessageTooLarge, (await response.Content.ReadFromJsonAsync(TalkiJsonContext.Default.ErrorResponse))!.Code);
    }

    [Fact]
    public async Task SixteenConcurrentTenMegabyteSignIns_AreAllRefused_AndANormalSignInStillWorks()
    {
        await using var host = await TestHost.StartAsync();
        using var http = new HttpClient { BaseAddress = host.BaseAddress };
        var payload = Encoding.UTF8.GetBytes("{\"displayName\":\"" + new string('a', 10 * 1024 * 1024) + "\"}");

        var statuses = await Task.WhenAll(Enumerable.Range(0, 16).Select(async _ =>
        {
            using var body = new ByteArrayContent(payload);
            body.Headers.ContentType = new("application/json");
            using var response = await http.PostAsync("/talki/session/anonymous", body);
            return response.StatusCode;
        }));

        Assert.All(statuses, s => Assert.Equal(HttpStatusCode.RequestEntityTooLarge, s));
        using var ada = await host.SignInAsync("Ada");
    }

    [Fact]
    public async Task SignIn_JustUnderTheLimit_IsReadAndJudgedOnItsContent()
    {
        await using var host = await TestHost.StartAsync();
        using var http = new HttpClient { BaseAddress = host.BaseAddress };
        using var body = new StringContent("{\"displayName\":\"Ada\",\"pad\":\"" + new string(' ', 7000) + "\"}", Encoding.UTF8, "application/json");

        using var response = await http.PostAsync("/talki/session/anonymous", body);

        Assert.NotEqual(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
    }

    private sealed class UnknownLengthStream(byte[] data) : MemoryStream(data)
    {
        public override bool CanSeek => false;
    }
}
