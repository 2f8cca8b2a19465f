using System.Buffers;
using System.Collections.Concurrent;
using System.Net.WebSockets;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Primitives;

// The bare relay: the ceiling the load tool compares the Talki gateway with (benchmarks/README.md).
//   dotnet Talki.Benchmarks.BareRelay.dll --urls http://127.0.0.1:5090 [--transport]
// GET /healthz answers "ok"; /relay?id=ID accepts a WebSocket, registers it under ID and sends {"open":"ID"}; every text
// frame whose top-level "to" names a connected socket is forwarded to it unchanged. Nothing else: no auth, no rooms,
// no parsing beyond finding "to", frames to unknown ids are dropped.
// --transport: the WebSocket upgrade of GET /relay is handled at Kestrel's connection level (ConnectionUpgrade.cs),
// outside the HTTP request pipeline; every other request (and /relay without "Upgrade: websocket") goes on to it as before.
const string TransportFlag = "--transport";
var transport = args.Contains(TransportFlag, StringComparer.Ordinal);
var builder = WebApplication.CreateSlimBuilder([.. args.Where(a => a != TransportFlag)]);
builder.Logging.ClearProviders();
var relay = new Relay();
if (transport)
{
    // Endpoint defaults apply to the --urls addresses too: every listener gets the middleware before HTTP/1.1.
    builder.WebHost.ConfigureKestrel(kestrel => kestrel.ConfigureEndpointDefaults(listen => listen.Use(next => new ConnectionUpgrade(next, relay).OnConnectionAsync)));
}

var app = builder.Build();
app.UseWebSockets(new WebSocketOptions { KeepAliveInterval = TimeSpan.Zero });
app.MapGet("/healthz", () => Results.Text("ok"));
app.Map(Relay.Path, relay.AcceptAsync);
app.Lifetime.ApplicationStarted.Register(() =>
{
    foreach (var address in app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses ?? [])
    {
        Console.WriteLine("listening " + address + (transport ? " (WebSocket upgrade at the connection level)" : ""));
    }
});
app.Run();

/// <summary>The sockets by id; one receive loop per socket; sends to a socket are serialized by its lock.</summary>
internal sealed class Relay
{
    private const int MaxMessageBytes = 32 * 1024;
    private const int MaxIdLength = 128;
    private readonly ConcurrentDictionary<string, Client> _clients = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Client>.AlternateLookup<ReadOnlySpan<char>> _byId;

    public Relay()
    {
        _byId = _clients.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    /// <summary>The path clients connect to (<c>/relay?id=ID</c>).</summary>
    public const string Path = "/relay";

    /// <summary>The relay through the ASP.NET Core request pipeline (the <c>bare</c> row of the load tool).</summary>
    public async Task AcceptAsync(HttpContext context)
    {
        if (!context.WebSockets.IsWebSocketRequest || IdOf(context.Request.Query["id"]) is not { } id)
        {
            context.Response.StatusCode = StatusCodes.Status400BadRequest;
            return;
        }

        using var socket = await context.WebSockets.AcceptWebSocketAsync();
        await ServeAsync(id, socket, context.RequestAborted);
    }

    /// <summary>The client's id: the one non-empty <c>id</c> of the query string, at most 128 characters; otherwise null (a 400).</summary>
    public static string? IdOf(StringValues ids) => ids is [{ Length: > 0 and <= MaxIdLength } id] ? id : null;

    /// <summary>Registers an accepted socket under <paramref name="id"/>, greets it and relays its frames until it closes.</summary>
    public async Task ServeAsync(string id, WebSocket socket, CancellationToken cancellationToken)
    {
        var client = new Client(socket);
        _clients[id] = client;
        try
        {
            await client.SendAsync(JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, string> { ["open"] = id }));
            await ReceiveLoopAsync(client, cancellationToken);
        }
        catch (Exception e) when (e is WebSocketException or OperationCanceledException)
        {
        }
        finally
        {
            _clients.TryRemove(new KeyValuePair<string, Client>(id, client));
        }
    }

    private async Task ReceiveLoopAsync(Client client, CancellationToken cancellationToken)
    {
        var socket = client.Socket;
        while (true)
        {
            // A zero-byte read first: an idle socket holds no receive buffer.
            var peek = await socket.ReceiveAsync(Memory<byte>.Empty, cancellationToken);
            if (peek.MessageType == WebSocketMessageType.Close)
            {
                await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, cancellationToken);
                return;
            }

            var buffer = ArrayPool<byte>.Shared.Rent(4096);
            try
            {
                var count = 0;
                var result = peek;
                while (!result.EndOfMessage)
                {
                    if (count == buffer.Length)
                    {
                        if (buffer.Length >= MaxMessageBytes)
                        {
                            await socket.CloseAsync(WebSocketCloseStatus.MessageTooBig, null, cancellationToken);
                            return;
                        }

                        var larger = ArrayPool<byte>.Shared.Rent(buffer.Length * 2);
                        buffer.AsSpan(0, count).CopyTo(larger);
                        ArrayPool<byte>.Shared.Return(buffer);
                        buffer = larger;
                    }

                    result = await socket.ReceiveAsync(buffer.AsMemory(count), cancellationToken);
                    count += result.Count;
                }

                if (result.MessageType == WebSocketMessageType.Close)
                {
                    await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, cancellationToken);
                    return;
                }

                if (result.MessageType == WebSocketMessageType.Text && TargetOf(buffer.AsSpan(0, count)) is { } target)
                {
                    await target.SendAsync(buffer.AsMemory(0, count));
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }

    /// <summary>The socket named by the top-level <c>"to"</c> of a JSON object, or null.</summary>
    private Client? TargetOf(ReadOnlySpan<byte> json)
    {
        var reader = new Utf8JsonReader(json);
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return null;
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var isTo = reader.ValueTextEquals("to"u8);
                reader.Read();
                if (isTo)
                {
                    if (reader.TokenType != JsonTokenType.String || reader.ValueSpan.Length > MaxIdLength)
                    {
                        return null;
                    }

                    Span<char> id = stackalloc char[MaxIdLength];
                    var length = reader.CopyString(id);
                    return _byId.TryGetValue(id[..length], out var target) ? target : null;
                }

                reader.Skip();
            }
        }
        catch (JsonException)
        {
        }

        return null;
    }

    private sealed class Client(WebSocket socket)
    {
        private readonly SemaphoreSlim _sending = new(1, 1);

        public WebSocket Socket => socket;

        /// <summary>Sends one text frame; a socket that has gone drops it.</summary>
        public async Task SendAsync(ReadOnlyMemory<byte> frame)
        {
            await _sending.WaitAsync();
            try
            {
                await socket.SendAsync(frame, WebSocketMessageType.Text, endOfMessage: true, CancellationToken.None);
            }
            catch (Exception e) when (e is WebSocketException or ObjectDisposedException or InvalidOperationException or IOException)
            {
            }
            finally
            {
                _sending.Release();
            }
        }
    }
}
