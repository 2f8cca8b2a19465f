using System.Globalization;
using System.Net;
using System.Text;
using Talki.Signalling.Emulator;

namespace Talki.Signalling.Emulator.Tests;

/// <summary>
/// The emulator's model of an execution environment's runtime API (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html),
/// driven by hand as a custom runtime would drive it: what it sends, what it accepts, and how it refuses.
/// </summary>
public sealed class LambdaRuntimeApiTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task InvocationDuringInit_WaitsForTheFirstNext_ThenTheEventCarriesTheDocumentedHeaders()
    {
        await using var runtime = await LambdaRuntimeApi.StartAsync();
        using var http = Client(runtime);
        var invocation = runtime.InvokeAsync("{\"a\":1}"u8.ToArray(), Timeout);
        Assert.False(runtime.Initialized.IsCompleted); // a cold start: nobody has asked for an event yet

        using var next = await http.GetAsync("/2018-06-01/runtime/invocation/next");

        Assert.True(runtime.Initialized.IsCompletedSuccessfully);
        Assert.Equal(HttpStatusCode.OK, next.StatusCode);
        Assert.Equal("{\"a\":1}", await next.Content.ReadAsStringAsync());
        var id = Assert.Single(next.Headers.GetValues("Lambda-Runtime-Aws-Request-Id"));
        var deadline = long.Parse(Assert.Single(next.Headers.GetValues("Lambda-Runtime-Deadline-Ms")), CultureInfo.InvariantCulture);
        Assert.True(deadline > DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        Assert.Equal(runtime.FunctionArn, Assert.Single(next.Headers.GetValues("Lambda-Runtime-Invoked-Function-Arn")));
        Assert.StartsWith("Root=1-", Assert.Single(next.Headers.GetValues("Lambda-Runtime-Trace-Id")), StringComparison.Ordinal);

        using var posted = await http.PostAsync($"/2018-06-01/runtime/invocation/{id}/response", new StringContent("{\"ok\":true}"));
        Assert.Equal(HttpStatusCode.Accepted, posted.StatusCode);
        var result = await invocation;
        Assert.True(result.Succeeded);
        Assert.Equal("{\"ok\":true}", Encoding.UTF8.GetString(result.Payload));
    }

    [Fact]
    public async Task AnswerToAnotherRequestId_Is400_AndTheInvocationWaitsForItsOwn()
    {
        await using var runtime = await LambdaRuntimeApi.StartAsync();
        using var http = Client(runtime);
        var invocation = runtime.InvokeAsync("{}"u8.ToArray(), Timeout);
        var id = await NextIdAsync(http);

        using var wrong = await http.PostAsync("/2018-06-01/runtime/invocation/8476a536-e9f4-11e8-9739-2dfe598c3fcd/response", new StringContent("{}"));
        Assert.Equal(HttpStatusCode.BadRequest, wrong.StatusCode);
        Assert.False(invocation.IsCompleted);

        using var right = await http.PostAsync($"/2018-06-01/runtime/invocation/{id}/response", new StringContent("{}"));
        Assert.Equal(HttpStatusCode.Accepted, right.StatusCode);
        Assert.True((await invocation).Succeeded);

        using var twice = await http.PostAsync($"/2018-06-01/runtime/invocation/{id}/response", new StringContent("{}"));
        Assert.Equal(HttpStatusCode.BadRequest, twice.StatusCode); // answered already
    }

    [Fact]
    public async Task ResponseBeyondSixMegabytes_Is413_AndTheInvocationFails()
    {
        await using var runtime = await LambdaRuntimeApi.StartAsync();
        using var http = Client(runtime);
        var invocation = runtime.InvokeAsync("{}"u8.ToArray(), Timeout);
        var id = await NextIdAsync(http);

        using var posted = await http.PostAsync($"/2018-06-01/runtime/invocation/{id}/response", new ByteArrayContent(new byte[LambdaRuntimeApi.MaxResponseBytes + 1]));

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, posted.StatusCode);
        var result = await invocation;
        Assert.False(result.Succeeded);
        Assert.Equal("Function.ResponseSizeTooLarge", result.ErrorType);
    }

    [Fact]
    public async Task ErrorReports_FailTheInvocation_OrTheInit()
    {
        await using var runtime = await LambdaRuntimeApi.StartAsync();
        using var http = Client(runtime);
        var invocation = runtime.InvokeAsync("{}"u8.ToArray(), Timeout);
        var id = await NextIdAsync(http);
        using var error = new StringContent("{\"errorMessage\":\"boom\",\"errorType\":\"Boom\"}");
        error.Headers.Add("Lambda-Runtime-Function-Error-Type", "Unhandled.Boom");

        using var posted = await http.PostAsync($"/2018-06-01/runtime/invocation/{id}/error", error);

        Assert.Equal(HttpStatusCode.Accepted, posted.StatusCode);
        var result = await invocation;
        Assert.False(result.Succeeded);
        Assert.Equal("Unhandled.Boom", result.ErrorType);

        await using var broken = await LambdaRuntimeApi.StartAsync();
        using var brokenHttp = Client(broken);
        using var initError = await brokenHttp.PostAsync("/2018-06-01/runtime/init/error", new StringContent("{}"));
        Assert.Equal(HttpStatusCode.Accepted, initError.StatusCode);
        await Assert.ThrowsAsync<InvalidOperationException>(() => broken.Initialized);
    }

    [Fact]
    public async Task NoAnswerByTheFunctionTimeout_FailsTheInvocationAsTimedOut()
    {
        await using var runtime = await LambdaRuntimeApi.StartAsync();
        using var http = Client(runtime);
        var invocation = runtime.InvokeAsync("{}"u8.ToArray(), TimeSpan.FromMilliseconds(300));
        var id = await NextIdAsync(http);

        var result = await invocation;

        Assert.False(result.Succeeded);
        Assert.Equal("Sandbox.Timedout", result.ErrorType);
        using var late = await http.PostAsync($"/2018-06-01/runtime/invocation/{id}/response", new StringContent("{}"));
        Assert.Equal(HttpStatusCode.BadRequest, late.StatusCode);
    }

    [Fact]
    public async Task TwoInvocations_AreServedOneAtATime()
    {
        await using var runtime = await LambdaRuntimeApi.StartAsync();
        using var http = Client(runtime);
        var first = runtime.InvokeAsync("1"u8.ToArray(), Timeout);
        var second = runtime.InvokeAsync("2"u8.ToArray(), Timeout);
        var firstId = await NextIdAsync(http);

        // The environment is busy: the second event is not handed out until the first is answered.
        using var waiting = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => http.GetAsync("/2018-06-01/runtime/invocation/next", waiting.Token));

        using (await http.PostAsync($"/2018-06-01/runtime/invocation/{firstId}/response", new StringContent("one")))
        {
        }

        using var next = await http.GetAsync("/2018-06-01/runtime/invocation/next");
        Assert.Equal("2", await next.Content.ReadAsStringAsync());
        var secondId = Assert.Single(next.Headers.GetValues("Lambda-Runtime-Aws-Request-Id"));
        using (await http.PostAsync($"/2018-06-01/runtime/invocation/{secondId}/response", new StringContent("two")))
        {
        }

        Assert.Equal("one", Encoding.UTF8.GetString((await first).Payload));
        Assert.Equal("two", Encoding.UTF8.GetString((await second).Payload));
        Assert.Equal(2, runtime.Invocations);
    }

    private static HttpClient Client(LambdaRuntimeApi runtime)
        => new(new SocketsHttpHandler { UseProxy = false }) { BaseAddress = new Uri("http://" + runtime.RuntimeApi), Timeout = Timeout };

    private static async Task<string> NextIdAsync(HttpClient http)
    {
        using var next = await http.GetAsync("/2018-06-01/runtime/invocation/next");
        Assert.Equal(HttpStatusCode.OK, next.StatusCode);
        return Assert.Single(next.Headers.GetValues("Lambda-Runtime-Aws-Request-Id"));
    }
}
