using System.Collections.Concurrent;
using System.Net;
using System.Threading.Channels;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Talki.Signalling.Emulator;

namespace Talki.Signalling.Aws.Tests.ApiGateway;

/// <summary>What the fake answers to one request: a status, after an optional latency.</summary>
internal sealed record FakeReply(int Status, TimeSpan Latency = default)
{
    public static FakeReply Ok { get; } = new(0);

    public static FakeReply Slow(TimeSpan latency) => new(0, latency);
}

/// <summary>One request the fake received.</summary>
internal sealed record RecordedRequest(
    string Method,
    string RawTarget,
    string? ConnectionId,
    IReadOnlyDictionary<string, string> Headers,
    IReadOnlyList<string> AuthorizationValues,
    byte[] Body,
    string? SignatureError,
    int Status)
{
    public bool SignatureValid => SignatureError is null;
}

/// <summary>
/// A small fake of API Gateway's <c>@connections</c> API on Kestrel at 127.0.0.1 (a free port). It verifies the SigV4
/// signature of every request (403 InvalidSignatureException when wrong), records the requests, and answers scripted
/// replies (429, 5xx, 410, 413, latency) in order, then the default (POST 200, GET 200 with JSON, DELETE 204).
/// </summary>
internal sealed class FakeConnectionsServer : IAsyncDisposable
{
    public const string AccessKey = "AKIDEXAMPLE";
    public const string SecretKey = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    public const string Region = "us-east-1";
    public const string Stage = "test";

    private readonly WebApplication _app;
    private readonly ConcurrentQueue<FakeReply> _script = new();
    private readonly ConcurrentQueue<RecordedRequest> _requests = new();
    private readonly Channel<RecordedRequest> _arrivals = Channel.CreateUnbounded<RecordedRequest>();
    private readonly SigV4Verifier _verifier = new(new Dictionary<string, string> { [AccessKey] = SecretKey }, Region, "execute-api");

    private FakeConnectionsServer(WebApplication app) => _app = app;

    /// <summary>Gets the endpoint, <c>http://127.0.0.1:{port}</c>.</summary>
    public Uri Endpoint { get; private set; } = null!;

    /// <summary>Gets the requests received so far, in order.</summary>
    public IReadOnlyList<RecordedRequest> Requests => [.. _requests];

    /// <summary>Gets or sets the reply once the script is exhausted (status 0 = the operation's success).</summary>
    public FakeReply Default { get; set; } = FakeReply.Ok;

    public static async Task<FakeConnectionsServer> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        var server = new FakeConnectionsServer(app);
        app.Run(server.HandleAsync);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.Single();
        server.Endpoint = new Uri(address);
        return server;
    }

    /// <summary>Scripts the replies to the next requests, in order.</summary>
    public void Enqueue(params FakeReply[] replies)
    {
        foreach (var reply in replies)
        {
            _script.Enqueue(reply);
        }
    }

    /// <summary>Scripts plain statuses for the next requests.</summary>
    public void Enqueue(params int[] statuses) => Enqueue([.. statuses.Select(s => new FakeReply(s))]);

    /// <summary>Waits until a request has arrived (before its latency is served).</summary>
    public async Task<RecordedRequest> NextArrivalAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        return await _arrivals.Reader.ReadAsync(cts.Token);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private async Task HandleAsync(HttpContext context)
    {
        var rawTarget = context.Features.GetRequiredFeature<IHttpRequestFeature>().RawTarget;
        using var body = new MemoryStream();
        await context.Request.Body.CopyToAsync(body, context.RequestAborted);
        var headers = context.Request.Headers.ToDictionary(
            h => h.Key.ToLowerInvariant(),
            h => string.Join(',', h.Value.Select(v => v?.Trim())),
            StringComparer.Ordinal);
        var signed = new SignedRequest(context.Request.Method, rawTarget, headers, body.ToArray());
        var signatureError = _verifier.Verify(signed);

        var prefix = "/" + Stage + "/@connections/";
        var connectionId = rawTarget.StartsWith(prefix, StringComparison.Ordinal) ? Uri.UnescapeDataString(rawTarget[prefix.Length..]) : null;

        var reply = signatureError is not null ? new FakeReply(403)
            : connectionId is null ? new FakeReply(404)
            : _script.TryDequeue(out var scripted) ? scripted
            : Default;
        var status = reply.Status != 0 ? reply.Status : context.Request.Method switch
        {
            "POST" => 200,
            "GET" => 200,
            "DELETE" => 204,
            _ => 405,
        };

        var recorded = new RecordedRequest(context.Request.Method, rawTarget, connectionId, headers, [.. context.Request.Headers.Authorization.Select(v => v ?? string.Empty)], signed.Body, signatureError, status);
        _requests.Enqueue(recorded);
        _arrivals.Writer.TryWrite(recorded);

        if (reply.Latency > TimeSpan.Zero)
        {
            try
            {
                await Task.Delay(reply.Latency, context.RequestAborted);
            }
            catch (OperationCanceledException)
            {
                return; // the client gave up
            }
        }

        context.Response.StatusCode = status;
        context.Response.Headers["x-amzn-RequestId"] = Guid.NewGuid().ToString();
        var errorType = status switch
        {
            403 when signatureError is not null => "InvalidSignatureException",
            403 => "ForbiddenException",
            404 => "NotFoundException",
            410 => "GoneException",
            413 => "PayloadTooLargeException",
            429 => "LimitExceededException",
            >= 500 => "InternalServerErrorException",
            _ => null,
        };
        if (errorType is not null)
        {
            context.Response.Headers["x-amzn-ErrorType"] = errorType + ":http://internal.amazon.com/coral/com.amazonaws.gatewaymanagementapi/";
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync(status == 410 ? "{}" : $"{{\"message\":\"{signatureError ?? errorType}\"}}");
            return;
        }

        if (context.Request.Method == "GET")
        {
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync("""{"connectedAt":"2025-01-02T03:04:05.000Z","identity":{"sourceIp":"203.0.113.7","userAgent":"Mozilla/5.0"},"lastActiveAt":"2025-01-02T03:05:06.000Z"}""");
        }
    }
}
