using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Talki.Signalling.Aws.Callbacks;
using Talki.Signalling.Emulator;

namespace Talki.Signalling.Aws.Tests.Callbacks;

/// <summary>
/// The <c>$connect</c> authorizer as a Lambda custom runtime (<c>AddAwsLambdaRuntime</c>), driven through the emulator's
/// model of an execution environment's runtime API (<see cref="LambdaRuntimeApi"/>, which follows the documented API and
/// its failures): the same answers as the pass-through path, one ticket use across both, and what a broken runtime API,
/// a hostile event or a refused answer does to it.
/// </summary>
[Collection(LambdaRuntimeExitCode.Name)]
public sealed class LambdaRuntimeAuthorizerTests
{
    private const string AdaConnection = "R0oXAdfD0kwCH6w=";
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task ValidTicket_ThroughTheRuntimeApi_IsAllowedAsOnThePassThroughPath_AndWorksOnce()
    {
        await using var runtime = await LambdaRuntimeApi.StartAsync();
        await using var host = await CallbacksTestHost.StartAsync(lambdaRuntimeApi: runtime.RuntimeApi);
        var ada = await host.SignInAsync("Ada");
        var room = await ada.CreateRoomAsync();
        var joiner = await (await host.SignInAsync("Grace")).JoinAsync(room.Room);

        var result = await runtime.InvokeAsync(Event(AdaConnection, room.Ticket), Timeout);

        Assert.True(result.Succeeded, result.ErrorMessage);
        var answer = AuthorizerAnswer.Parse(Encoding.UTF8.GetString(result.Payload));
        Assert.Equal("Allow", answer.Effect);
        Assert.Equal(CallbacksTestHost.MethodArn, answer.Resource);
        Assert.Equal(room.Member.Value, answer.PrincipalId);
        Assert.Equal(room.Room.Value, answer.Context!.Value.GetProperty("room").GetString());
        Assert.Equal(room.Member.Value, answer.Context!.Value.GetProperty("member").GetString());
        Assert.DoesNotContain(AdaConnection, answer.Raw, StringComparison.Ordinal);
        Assert.DoesNotContain(room.Ticket, answer.Raw, StringComparison.Ordinal);

        // The ticket is spent, on either path; another member's ticket is not.
        var replay = await runtime.InvokeAsync(Event(AdaConnection, room.Ticket), Timeout);
        Assert.Equal("Deny", AuthorizerAnswer.Parse(Encoding.UTF8.GetString(replay.Payload)).Effect);
        Assert.Equal("Deny", (await host.AuthorizeAsync(AdaConnection, CallbacksTestHost.TicketQuery(room.Ticket))).Effect);
        Assert.Equal("Allow", (await host.AuthorizeAsync("S1oXAdfD0kwCH6w=", CallbacksTestHost.TicketQuery(joiner.Ticket))).Effect);
        Assert.Equal(2, runtime.Invocations);
    }

    [Theory]
    [InlineData("")]
    [InlineData("{")]
    [InlineData("null")]
    [InlineData("[1,2,3]")]
    [InlineData("""{"type":"REQUEST","methodArn":"arn:x","requestContext":{"connectionId":"R0oXAdfD0kwCH6w="},"queryStringParameters":{"ticket":["t"]}}""")]
    [InlineData("oversized")]
    public async Task HostileOrMalformedEvent_IsDenied_AndTheNextEventIsServed(string body)
    {
        await using var runtime = await LambdaRuntimeApi.StartAsync();
        await using var host = await CallbacksTestHost.StartAsync(lambdaRuntimeApi: runtime.RuntimeApi);
        var room = await (await host.SignInAsync("Ada")).CreateRoomAsync();
        var payload = body == "oversized"
            ? Event(AdaConnection, room.Ticket, padding: new string('x', ApiGatewayCallbacks.MaxAuthorizerEventBytes))
            : Encoding.UTF8.GetBytes(body);

        var hostile = await runtime.InvokeAsync(payload, Timeout);

        Assert.True(hostile.Succeeded, hostile.ErrorMessage); // answered, not an invocation error
        var answer = AuthorizerAnswer.Parse(Encoding.UTF8.GetString(hostile.Payload));
        Assert.Equal("Deny", answer.Effect);
        Assert.Equal(ApiGatewayCallbacks.DeniedPrincipal, answer.PrincipalId);
        Assert.DoesNotContain("   at ", answer.Raw, StringComparison.Ordinal);

        // Nothing else lost: the oversized event's ticket was not taken, and the runtime serves the next event.
        var next = await runtime.InvokeAsync(Event(AdaConnection, room.Ticket), Timeout);
        Assert.Equal("Allow", AuthorizerAnswer.Parse(Encoding.UTF8.GetString(next.Payload)).Effect);
        Assert.False(host.Lifetime.ApplicationStopping.IsCancellationRequested);
    }

    [Theory]
    [InlineData(400)]
    [InlineData(403)]
    [InlineData(413)]
    public async Task AnswerRefusedWith4xx_IsLogged_AndTheRuntimeGoesOn(int status)
    {
        await using var runtime = await LambdaRuntimeApi.StartAsync();
        await using var host = await CallbacksTestHost.StartAsync(lambdaRuntimeApi: runtime.RuntimeApi);
        var room = await (await host.SignInAsync("Ada")).CreateRoomAsync();
        runtime.ResponseStatus = status;

        var refused = await runtime.InvokeAsync(Event(AdaConnection, "A" + new string('b', 42)), Timeout);
        runtime.ResponseStatus = null;
        var next = await runtime.InvokeAsync(Event(AdaConnection, room.Ticket), Timeout);

        Assert.False(refused.Succeeded);
        Assert.True(next.Succeeded, next.ErrorMessage);
        Assert.Equal("Allow", AuthorizerAnswer.Parse(Encoding.UTF8.GetString(next.Payload)).Effect);
        Assert.Contains(host.Logs.Entries, e => e.EventId.Id == 6023);
        Assert.False(host.Lifetime.ApplicationStopping.IsCancellationRequested);
    }

    [Theory]
    [InlineData("next-500")]
    [InlineData("next-403")]
    [InlineData("answer-500")]
    [InlineData("no-request-id")]
    public async Task RuntimeApiInANonRecoverableState_StopsTheHostWithExitCode1(string fault)
    {
        await using var runtime = await LambdaRuntimeApi.StartAsync();
        switch (fault)
        {
            case "next-500": runtime.NextStatus = 500; break;
            case "next-403": runtime.NextStatus = 403; break;
            case "answer-500": runtime.ResponseStatus = 500; break;
            default: runtime.OmitRequestId = true; break;
        }

        using var exitCode = new LambdaRuntimeExitCode();
        await using var host = await CallbacksTestHost.StartAsync(lambdaRuntimeApi: runtime.RuntimeApi);
        if (fault is "answer-500" or "no-request-id")
        {
            _ = runtime.InvokeAsync(Event(AdaConnection, "A" + new string('b', 42)), TimeSpan.FromSeconds(5));
        }

        await WaitAsync(host.Lifetime.ApplicationStopping);
        Assert.Equal(1, exitCode.Observed);
        Assert.Contains(host.Logs.Entries, e => e.EventId.Id is 6021 or 6022 or 6024);
    }

    [Fact]
    public async Task RuntimeApiRefusingAtOnce_WhileTheHostStillStarts_TakesNothingBeforeTheStart_AndStopsTheStartedHostWithExitCode1()
    {
        // A service that starts after the runtime's, slowly (CI, 2026-12-07: a refusal during the start cancelled the host's
        // start half way, and StartAsync threw): the first /next waits for the host to have started.
        await using var runtime = await LambdaRuntimeApi.StartAsync();
        runtime.NextStatus = 403;
        var slow = new SlowStart(runtime, TimeSpan.FromMilliseconds(300));
        using var exitCode = new LambdaRuntimeExitCode();
        await using var host = await CallbacksTestHost.StartAsync(lambdaRuntimeApi: runtime.RuntimeApi, services: s => s.AddHostedService(_ => slow));

        Assert.False(slow.NextAskedDuringTheStart, "the runtime asked for an event before the host had started");
        await WaitAsync(host.Lifetime.ApplicationStopping);
        Assert.Equal(1, exitCode.Observed);
        Assert.Contains(host.Logs.Entries, e => e.EventId.Id == 6021);
    }

    [Fact]
    public async Task RuntimeApiNotListening_StopsTheHostWithExitCode1()
    {
        using var exitCode = new LambdaRuntimeExitCode();
        await using var host = await CallbacksTestHost.StartAsync(lambdaRuntimeApi: $"127.0.0.1:{ClosedPort()}");

        await WaitAsync(host.Lifetime.ApplicationStopping);
        Assert.Equal(1, exitCode.Observed);
        Assert.Contains(host.Logs.Entries, e => e.EventId.Id == 6020);
    }

    [Fact]
    public async Task HostStoppedWhileWaitingForAnEvent_StopsCleanly_WithoutAnError()
    {
        await using var runtime = await LambdaRuntimeApi.StartAsync();
        using var exitCode = new LambdaRuntimeExitCode();
        var host = await CallbacksTestHost.StartAsync(lambdaRuntimeApi: runtime.RuntimeApi);
        await runtime.Initialized.WaitAsync(Timeout);

        await host.DisposeAsync(); // the GET for the next event is still open

        Assert.Equal(0, exitCode.Observed);
        Assert.DoesNotContain(host.Logs.Entries, e => e.EventId.Id is >= 6020 and <= 6029);
    }

    [Theory]
    [InlineData("")]
    [InlineData("localhost")]
    [InlineData("127.0.0.1:9001/path")]
    [InlineData("user@127.0.0.1:9001")]
    [InlineData("http://127.0.0.1:9001")]
    public void AddAwsLambdaRuntime_EndpointNotAHostAndPort_Throws(string endpoint)
    {
        var talki = new ServiceCollection().AddTalkiSignalling();

        var exception = Assert.Throws<ArgumentException>(() => talki.AddAwsLambdaRuntime(endpoint));

        Assert.Contains("host:port", exception.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AddAwsLambdaRuntime_WithoutTheAwsCallbacks_FailsAtStartSayingSo()
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddTalkiSignalling().AddAwsLambdaRuntime("127.0.0.1:9001");
        using var host = builder.Build();

        var exception = await Assert.ThrowsAsync<InvalidOperationException>(() => host.StartAsync());

        Assert.Contains("AddAwsGateway", exception.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AddAwsLambdaRuntime_OutsideLambdaWithoutAnEndpoint_FailsAtStartNamingTheVariable()
    {
        Assert.Null(Environment.GetEnvironmentVariable(LambdaRuntimeAuthorizer.RuntimeApiVariable)); // not on Lambda
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddTalkiSignalling().AddApiGatewayCallbacks(o => o.GatewaySecret = CallbacksTestHost.Secret).AddAwsLambdaRuntime();
        using var host = builder.Build();

        var exception = await Assert.ThrowsAsync<InvalidOperationException>(() => host.StartAsync());

        Assert.Contains(LambdaRuntimeAuthorizer.RuntimeApiVariable, exception.Message, StringComparison.Ordinal);
    }

    private static byte[] Event(string connectionId, string ticket, string? padding = null)
    {
        var query = CallbacksTestHost.TicketQuery(ticket);
        if (padding is not null)
        {
            query["padding"] = padding;
        }

        return Encoding.UTF8.GetBytes(CallbacksTestHost.AuthorizerEvent(connectionId, query));
    }

    private static int ClosedPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port; // closed again when disposed: nothing listens there
    }

    /// <summary>A hosted service whose start takes a while, noting whether the runtime asked for an event meanwhile.</summary>
    private sealed class SlowStart(LambdaRuntimeApi runtime, TimeSpan startTakes) : IHostedService
    {
        public bool NextAskedDuringTheStart { get; private set; }

        public async Task StartAsync(CancellationToken cancellationToken)
        {
            await Task.Delay(startTakes, CancellationToken.None);
            NextAskedDuringTheStart = runtime.Initialized.IsCompleted;
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    private static async Task WaitAsync(CancellationToken stopping)
    {
        var stopped = new TaskCompletionSource();
        using var registration = stopping.Register(stopped.SetResult);
        await stopped.Task.WaitAsync(Timeout, CancellationToken.None);
    }
}

/// <summary>
/// Keeps <see cref="Environment.ExitCode"/>, which a runtime that cannot go on sets to 1, from leaking out of a test: it
/// records what the test left there and puts the old value back. The tests that set it run in one collection, one at a time.
/// </summary>
internal sealed class LambdaRuntimeExitCode : IDisposable
{
    public const string Name = "Environment.ExitCode";
    private readonly int _before = Environment.ExitCode;

    public LambdaRuntimeExitCode() => Environment.ExitCode = 0;

    public int Observed => Environment.ExitCode;

    public void Dispose() => Environment.ExitCode = _before;
}
