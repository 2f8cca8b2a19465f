using System.Collections.Concurrent;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Talki.Signalling.Emulator.Tests;

/// <summary>What the fake authorizer answers (through the Lambda Web Adapter only the body counts, never the status).</summary>
public enum AuthorizerMode
{
    /// <summary>200 with an Allow policy and a flat context.</summary>
    Allow,

    /// <summary>200 with a Deny policy.</summary>
    Deny,

    /// <summary>401 with an empty body (a status the adapter discards: the empty result is an authorizer error).</summary>
    Unauthorized,

    /// <summary>500 with an empty body.</summary>
    Fail,

    /// <summary>500 with a valid Allow body: the adapter discards the status, so this allows.</summary>
    AllowWithStatus500,

    /// <summary>200 with a body that is not JSON.</summary>
    GarbageWithStatus200,

    /// <summary>Allow, but the context holds an object.</summary>
    NestedContext,

    /// <summary>Allow, but the context holds an array.</summary>
    ArrayInContext,

    /// <summary>Allow, with a result just over 8 KB.</summary>
    OversizedResult,

    /// <summary>Allow, with a result of exactly 8 KB.</summary>
    ResultOfExactly8KB,
}

/// <summary>One call the fake backend received.</summary>
internal sealed record BackendCall(string Path, IReadOnlyDictionary<string, string> Headers, string Body, string Query = "")
{
    public string? ConnectionId => Headers.TryGetValue("x-talki-connection-id", out var id) ? id : null;
}

/// <summary>
/// A tiny backend on Kestrel at 127.0.0.1: records <c>/events</c>, <c>/talki/aws/default</c> and
/// <c>/talki/aws/disconnect</c> calls and answers the authorizer with Allow, Deny, 401 or 500.
/// </summary>
internal sealed class FakeBackend : IAsyncDisposable
{
    public const string Authorizer = "/events";
    public const string Default = "/talki/aws/default";
    public const string Disconnect = "/talki/aws/disconnect";

    private readonly WebApplication _app;
    private readonly ConcurrentDictionary<string, Channel<BackendCall>> _arrivals = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<BackendCall> _calls = new();

    private int _disposed;

    private FakeBackend(WebApplication app) => _app = app;

    public Uri Address { get; private set; } = null!;

    public AuthorizerMode Mode { get; set; } = AuthorizerMode.Allow;

    /// <summary>Gets or sets the status <c>$default</c> calls answer (the gateway must not pass it on).</summary>
    public int DefaultStatus { get; set; } = 200;

    /// <summary>Gets or sets a hook run inside each <c>$default</c> call before it answers.</summary>
    public Func<BackendCall, Task>? OnDefault { get; set; }

    /// <summary>Gets or sets a hook run inside the authorizer call, with the new connection id, before it answers.</summary>
    public Func<string, Task>? OnAuthorize { get; set; }

    public IReadOnlyList<BackendCall> Calls => [.. _calls];

    public IReadOnlyList<BackendCall> CallsTo(string path) => [.. _calls.Where(c => c.Path == path)];

    public static async Task<FakeBackend> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        var backend = new FakeBackend(app);
        app.Run(backend.HandleAsync);
        await app.StartAsync();
        backend.Address = new Uri(app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.Single());
        return backend;
    }

    /// <summary>Waits for the next call to a path.</summary>
    public async Task<BackendCall> NextAsync(string path, TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(10));
        return await Arrivals(path).Reader.ReadAsync(cts.Token);
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private Channel<BackendCall> Arrivals(string path) => _arrivals.GetOrAdd(path, static _ => Channel.CreateUnbounded<BackendCall>());

    private async Task HandleAsync(HttpContext context)
    {
        using var reader = new StreamReader(context.Request.Body, Encoding.UTF8);
        var body = await reader.ReadToEndAsync();
        var headers = context.Request.Headers.ToDictionary(h => h.Key.ToLowerInvariant(), h => h.Value.ToString(), StringComparer.Ordinal);
        var call = new BackendCall(context.Request.Path.Value ?? string.Empty, headers, body, context.Request.QueryString.Value ?? string.Empty);
        _calls.Enqueue(call);

        if (call.Path == Authorizer)
        {
            var methodArn = JsonNode.Parse(body)?["methodArn"]?.GetValue<string>() ?? "*";
            var connectionId = JsonNode.Parse(body)?["requestContext"]?["connectionId"]?.GetValue<string>() ?? string.Empty;
            if (OnAuthorize is { } hook)
            {
                await hook(connectionId);
            }

            Arrivals(call.Path).Writer.TryWrite(call);
            object authorizerContext = new { room = "room-1", member = "member-1", epoch = 1, sealsAt = 1_767_225_600_000, admin = true };
            switch (Mode)
            {
                case AuthorizerMode.Unauthorized:
                    context.Response.StatusCode = 401;
                    return;
                case AuthorizerMode.Fail:
                    context.Response.StatusCode = 500;
                    return;
                case AuthorizerMode.GarbageWithStatus200:
                    context.Response.StatusCode = 200;
                    await context.Response.WriteAsync("<html>not a policy</html>");
                    return;
                case AuthorizerMode.NestedContext:
                    authorizerContext = new { room = "room-1", member = new { id = "member-1" } };
                    break;
                case AuthorizerMode.ArrayInContext:
                    authorizerContext = new { room = "room-1", members = new[] { "member-1" } };
                    break;
                case AuthorizerMode.OversizedResult:
                case AuthorizerMode.ResultOfExactly8KB:
                    authorizerContext = new { room = "room-1", padding = "" };
                    break;
            }

            var effect = Mode == AuthorizerMode.Deny ? "Deny" : "Allow";
            var result = JsonSerializer.Serialize(new
            {
                principalId = "member-1",
                policyDocument = new { Version = "2012-10-17", Statement = new[] { new { Action = "execute-api:Invoke", Effect = effect, Resource = methodArn } } },
                context = authorizerContext,
            });
            if (Mode is AuthorizerMode.OversizedResult or AuthorizerMode.ResultOfExactly8KB)
            {
                var size = Encoding.UTF8.GetByteCount(result);
                var target = 8 * 1024 + (Mode == AuthorizerMode.OversizedResult ? 1 : 0);
                result = result.Replace("\"padding\":\"\"", "\"padding\":\"" + new string('x', target - size) + "\"", StringComparison.Ordinal);
            }

            context.Response.StatusCode = Mode == AuthorizerMode.AllowWithStatus500 ? 500 : 200;
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync(result);
            return;
        }

        Arrivals(call.Path).Writer.TryWrite(call);
        if (call.Path == Default && OnDefault is { } onDefault)
        {
            await onDefault(call);
        }

        if (headers.ContainsKey("x-amz-target"))
        {
            // Stands in for DynamoDB: an empty result of any action.
            context.Response.ContentType = "application/x-amz-json-1.0";
            await context.Response.WriteAsync("{}");
            return;
        }

        if (call.Path == "/redirect")
        {
            context.Response.StatusCode = 302;
            context.Response.Headers.Location = "/there";
            context.Response.Headers.Append("Set-Cookie", "a=1; Path=/; HttpOnly");
            context.Response.Headers.Append("Set-Cookie", "b=2; Path=/; Secure");
            return;
        }

        context.Response.StatusCode = call.Path == Default ? DefaultStatus : 200;
        if (call.Path == Default)
        {
            await context.Response.WriteAsync("{\"statusCode\":200,\"body\":\"this response must not reach the client\"}");
        }
    }
}
