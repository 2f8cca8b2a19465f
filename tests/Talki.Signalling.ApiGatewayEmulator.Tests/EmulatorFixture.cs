using System.Net.WebSockets;
using System.Text;
using Amazon.Runtime;
using Microsoft.Extensions.DependencyInjection;
using Talki.Signalling.Aws.ApiGateway;

namespace Talki.Signalling.Emulator.Tests;

/// <summary>A fake backend, an emulator in front of it, and the real <c>AddApiGatewayPush</c> client pointed at the emulator.</summary>
internal sealed class EmulatorFixture : IAsyncDisposable
{
    public const string Secret = "emulator-gateway-secret-0123456789";

    private ServiceProvider? _services;

    private EmulatorFixture(FakeBackend backend, ApiGatewayEmulator emulator)
    {
        Backend = backend;
        Emulator = emulator;
    }

    public FakeBackend Backend { get; }

    public ApiGatewayEmulator Emulator { get; }

    /// <summary>Gets the real @connections client (SigV4 signer + resilience pipeline) configured against the emulator.</summary>
    public IApiGatewayConnections Connections => (_services ??= PushClient()).GetRequiredService<IApiGatewayConnections>();

    public static async Task<EmulatorFixture> StartAsync(Action<EmulatorOptions>? configure = null)
    {
        var backend = await FakeBackend.StartAsync();
        var options = new EmulatorOptions { Backend = backend.Address, GatewaySecret = Secret };
        configure?.Invoke(options);
        var emulator = await ApiGatewayEmulator.StartAsync(options);
        return new EmulatorFixture(backend, emulator);
    }

    /// <summary>A push client as a host configures it; <paramref name="configure"/> may spoil it.</summary>
    public ServiceProvider PushClient(Action<ApiGatewayPushOptions>? configure = null)
    {
        var services = new ServiceCollection();
        services.AddTalkiSignalling().AddApiGatewayPush(options =>
        {
            options.Endpoint = Emulator.ManagementEndpoint;
            options.Stage = Emulator.Stage;
            options.Region = "us-east-1";
            options.Credentials = new BasicAWSCredentials(EmulatorOptions.DefaultAccessKeyId, EmulatorOptions.DefaultSecretAccessKey);
            options.Retry.MaxRetryAttempts = 3;
            options.Retry.BaseDelay = TimeSpan.FromMilliseconds(5);
            options.Retry.MaxDelay = TimeSpan.FromMilliseconds(20);
            options.Timeouts.Attempt = TimeSpan.FromSeconds(5);
            options.Timeouts.Total = TimeSpan.FromSeconds(15);
            configure?.Invoke(options);
        });
        return services.BuildServiceProvider();
    }

    /// <summary>Connects a client with a ticket (or none), collecting HTTP response details of a refused upgrade.</summary>
    public async Task<ClientWebSocket> ConnectAsync(string? ticket = "t-123", string? extraQuery = "v=1")
    {
        var client = new ClientWebSocket();
        client.Options.CollectHttpResponseDetails = true;
        client.Options.SetRequestHeader("User-Agent", "EmulatorTests/1.0");
        var query = string.Join('&', new[] { extraQuery, ticket is null ? null : "ticket=" + Uri.EscapeDataString(ticket) }.Where(q => q is not null));
        var uri = new Uri(Emulator.WebSocketUrl + (query.Length > 0 ? "?" + query : string.Empty));
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await client.ConnectAsync(uri, cts.Token);
        return client;
    }

    /// <summary>Connects and returns the socket with the connection id the authorizer saw.</summary>
    public async Task<(ClientWebSocket Socket, string ConnectionId)> ConnectWithIdAsync()
    {
        var socket = await ConnectAsync();
        var call = Backend.CallsTo(FakeBackend.Authorizer)[^1];
        var id = System.Text.Json.Nodes.JsonNode.Parse(call.Body)!["requestContext"]!["connectionId"]!.GetValue<string>();
        return (socket, id);
    }

    public async ValueTask DisposeAsync()
    {
        if (_services is not null)
        {
            await _services.DisposeAsync();
        }

        await Emulator.DisposeAsync();
        await Backend.DisposeAsync();
    }
}

/// <summary>Reading from a client socket with a time limit.</summary>
internal static class ClientSocketExtensions
{
    public sealed record Received(WebSocketMessageType Type, string Text, WebSocketCloseStatus? CloseStatus, string? CloseDescription)
    {
        /// <summary>Gets the text without the delivery id (<c>"mid"</c>) the real <c>@connections</c> client stamps on every push.</summary>
        public string Message => System.Text.RegularExpressions.Regex.Replace(Text, ",\"mid\":\"[A-Za-z0-9_.-]+\"}$", "}");
    }

    public static async Task<Received> ReceiveAsync(this ClientWebSocket socket, TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(10));
        var buffer = new byte[256 * 1024];
        var total = 0;
        while (true)
        {
            var result = await socket.ReceiveAsync(buffer.AsMemory(total), cts.Token);
            total += result.Count;
            if (result.MessageType == WebSocketMessageType.Close)
            {
                return new Received(result.MessageType, string.Empty, socket.CloseStatus, socket.CloseStatusDescription);
            }

            if (result.EndOfMessage)
            {
                return new Received(result.MessageType, Encoding.UTF8.GetString(buffer, 0, total), null, null);
            }
        }
    }

    public static Task SendTextAsync(this ClientWebSocket socket, string text, bool endOfMessage = true)
        => socket.SendAsync(Encoding.UTF8.GetBytes(text), WebSocketMessageType.Text, endOfMessage, CancellationToken.None);

    /// <summary>Reads until the server's close frame and answers it; returns the close status.</summary>
    public static async Task<(WebSocketCloseStatus? Status, string? Description)> ExpectCloseAsync(this ClientWebSocket socket)
    {
        while (true)
        {
            var received = await socket.ReceiveAsync();
            if (received.Type == WebSocketMessageType.Close)
            {
                if (socket.State == WebSocketState.CloseReceived)
                {
                    await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);
                }

                return (received.CloseStatus, received.CloseDescription);
            }
        }
    }
}
