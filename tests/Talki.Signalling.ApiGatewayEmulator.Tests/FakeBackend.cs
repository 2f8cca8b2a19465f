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

/// <summary>What the fake authorizer answers.</summary>
public enum AuthorizerMode
{
    Allow,
    Deny,
    Unauthorized,
    Fail,
}

/// <summary>One call the fake backend received.</summary>
internal sealed record BackendCall(string Path, IReadOnlyDictionary<string, string> Headers, string Body)
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
        var call = new BackendCall(context.Request.Path.Value ?? string.Empty, headers, body);
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
            switch (Mode)
            {
                case AuthorizerMode.Unauthorized:
                    context.Response.StatusCode = 401;
                    return;
                case AuthorizerMode.Fail:
                    context.Response.StatusCode = 500;
                    return;
                default:
                    var effect = Mode == AuthorizerMode.Allow ? "Allow" : "Deny";
                    context.Response.ContentType = "application/json";
                    await context.Response.WriteAsync(JsonSerializer.Serialize(new
                    {
                        principalId = "member-1",
                        policyDocument = new { Version = "2012-10-17", Statement = new[] { new { Action = "execute-api:Invoke", Effect = effect, Resource = methodArn } } },
                        context = new { room = "room-1", member = "member-1", epoch = 1 },
                    }));
                    return;
            }
        }

        Arrivals(call.Path).Writer.TryWrite(call);
        context.Response.StatusCode = 200;
        if (call.Path == Default)
        {
            await context.Response.WriteAsync("{\"statusCode\":200,\"body\":\"this response must not reach the client\"}");
        }
    }
}
