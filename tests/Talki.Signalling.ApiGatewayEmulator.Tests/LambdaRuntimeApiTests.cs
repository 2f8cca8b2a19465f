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
    public async Task TwoInvocations_AreServedOneAtATime_AnotherNextMeanwhileGetsTheOneInProgress()
    {
        await using var runtime = await LambdaRuntimeApi.StartAsync();
        using var http = Client(runtime);
        var first = runtime.InvokeAsync("1"u8.ToArray(), Timeout);
        var second = runtime.InvokeAsync("2"u8.ToArray(), Timeout);
        var firstId = await NextIdAsync(http);

        // The environment is busy: asking again (as after a dropped connection) gets the event in progress, never the second.
        using (var again = await http.GetAsync("/2018-06-01/runtime/invocation/next"))
        {
            Assert.Equal("1", await again.Content.ReadAsStringAsync());
            Assert.Equal(firstId, Assert.Single(again.Headers.GetValues("Lambda-Runtime-Aws-Request-Id")));
        }

        Assert.Equal(1, runtime.Invocations);
        Assert.False(second.IsCompleted);

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

    [Fact]
    public async Task CallerGivesUp_TheInvocationRunsOn_AndTheNextWaitsForItsAnswer()
    {
        await using var runtime = await LambdaRuntimeApi.StartAsync();
        using var http = Client(runtime);
        using var caller = new CancellationTokenSource();
        var abandoned = runtime.InvokeAsync("1"u8.ToArray(), Timeout, caller.Token);
        var firstId = await NextIdAsync(http);
        await caller.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => abandoned);

        var second = runtime.InvokeAsync("2"u8.ToArray(), Timeout);
        using (var again = await http.GetAsync("/2018-06-01/runtime/invocation/next"))
        {
            Assert.Equal(firstId, Assert.Single(again.Headers.GetValues("Lambda-Runtime-Aws-Request-Id"))); // still busy with the first
        }

        using (var answered = await http.PostAsync($"/2018-06-01/runtime/invocation/{firstId}/response", new StringContent("one")))
        {
            Assert.Equal(HttpStatusCode.Accepted, answered.StatusCode);
        }

        var secondId = await NextIdAsync(http);
        using (await http.PostAsync($"/2018-06-01/runtime/invocation/{secondId}/response", new StringContent("two")))
        {
        }

        Assert.Equal("two", Encoding.UTF8.GetString((await second).Payload));
    }

    [Fact]
    public async Task NextAbandonedByTheRuntime_DoesNotSwallowTheEvent_TheRuntimesNextAskGetsIt()
    {
        // A flaky runtime: its GET …/next is dropped (a cancelled request, a reset connection) just before an event
        // comes. The server may not have seen the drop yet when the event arrives; the event must still reach the
        // runtime's next ask, not vanish into the dead request (the invocation would hang to its timeout).
        await using var runtime = await LambdaRuntimeApi.StartAsync();
        using var http = Client(runtime);
        for (var round = 0; round < 40; round++)
        {
            using (var gone = new CancellationTokenSource())
            {
                var abandoned = http.GetAsync("/2018-06-01/runtime/invocation/next", gone.Token);
                await Task.Delay(round % 2 == 0 ? 20 : 1); // let it reach the server (or not quite)
                await gone.CancelAsync();
                await Assert.ThrowsAnyAsync<OperationCanceledException>(() => abandoned);
            }

            var payload = round.ToString(CultureInfo.InvariantCulture);
            var invocation = runtime.InvokeAsync(Encoding.UTF8.GetBytes(payload), Timeout);
            using var asking = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            using var next = await http.GetAsync("/2018-06-01/runtime/invocation/next", asking.Token);
            Assert.Equal(payload, await next.Content.ReadAsStringAsync(asking.Token));
            var id = Assert.Single(next.Headers.GetValues("Lambda-Runtime-Aws-Request-Id"));
            using (await http.PostAsync($"/2018-06-01/runtime/invocation/{id}/response", new StringContent(payload), asking.Token))
            {
            }

            var result = await invocation;
            Assert.True(result.Succeeded, $"round {round}: {result.ErrorType} {result.ErrorMessage}");
            Assert.Equal(payload, Encoding.UTF8.GetString(result.Payload));
        }

        Assert.Equal(40, runtime.Invocations);
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
