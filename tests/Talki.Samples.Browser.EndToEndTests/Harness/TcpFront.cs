using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;

namespace Talki.Samples.Browser.EndToEndTests.Harness;

/// <summary>
/// A load balancer in its simplest form: a TCP forwarder on 127.0.0.1 and a free port. Each accepted connection is
/// connected to the primary backend (127.0.0.1:<see cref="PrimaryPort"/>) or, if that connection is refused, to the
/// fallback; then bytes are piped both ways until either side closes, and both are closed. It knows nothing of HTTP or
/// WebSocket: the backends see the browser's own <c>Host</c> header (<c>localhost:{front port}</c>). Browsers reach it as
/// <c>http://localhost:{port}</c>, as they reach <see cref="SampleHost"/>.
/// </summary>
internal sealed class TcpFront : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly Action<string>? _log;
    private readonly CancellationTokenSource _stopping = new();
    private readonly ConcurrentDictionary<long, (Socket Client, Socket Backend)> _open = new();
    private readonly ConcurrentDictionary<int, int> _connectionsByBackend = new();
    private readonly Task _accepting;
    private long _next;

    private TcpFront(string name, int primaryPort, int fallbackPort, Action<string>? log)
    {
        Name = name;
        PrimaryPort = primaryPort;
        FallbackPort = fallbackPort;
        _log = log;
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _accepting = AcceptLoopAsync(_stopping.Token);
    }

    public string Name { get; }

    public int Port { get; }

    public int PrimaryPort { get; }

    public int FallbackPort { get; }

    /// <summary>The origin browsers use: <c>http://localhost:{port}</c>.</summary>
    public Uri BaseAddress => new($"http://localhost:{Port}");

    /// <summary>How many connections went to each backend port so far.</summary>
    public IReadOnlyDictionary<int, int> ConnectionsByBackend => new Dictionary<int, int>(_connectionsByBackend);

    /// <summary>Starts a front on a free port of 127.0.0.1.</summary>
    public static TcpFront Start(string name, int primaryPort, int fallbackPort, Action<string>? log = null)
    {
        var front = new TcpFront(name, primaryPort, fallbackPort, log);
        log?.Invoke($"{name}: 127.0.0.1:{front.Port} → 127.0.0.1:{primaryPort}, else 127.0.0.1:{fallbackPort} (browsers: {front.BaseAddress})");
        return front;
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync();
        _listener.Stop();
        try
        {
            await _accepting;
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            // Stopped.
        }

        foreach (var (_, (client, backend)) in _open)
        {
            client.Dispose();
            backend.Dispose();
        }

        _stopping.Dispose();
    }

    private async Task AcceptLoopAsync(CancellationToken stopping)
    {
        while (!stopping.IsCancellationRequested)
        {
            var client = await _listener.AcceptSocketAsync(stopping);
            _ = ForwardAsync(client, stopping);
        }
    }

    private async Task ForwardAsync(Socket client, CancellationToken stopping)
    {
        var id = Interlocked.Increment(ref _next);
        Socket? backend = null;
        try
        {
            var port = PrimaryPort;
            backend = await ConnectAsync(port, stopping);
            if (backend is null)
            {
                port = FallbackPort;
                backend = await ConnectAsync(port, stopping);
                _log?.Invoke($"{Name}: connection #{id} refused by 127.0.0.1:{PrimaryPort}, forwarded to the fallback 127.0.0.1:{port}");
            }

            if (backend is null)
            {
                _log?.Invoke($"{Name}: connection #{id} refused by both backends; closed");
                return;
            }

            _connectionsByBackend.AddOrUpdate(port, 1, (_, n) => n + 1);
            _open[id] = (client, backend);

            // Either direction ending (end of stream, reset, or the front stopping) ends both.
            await Task.WhenAny(PipeAsync(client, backend, stopping), PipeAsync(backend, client, stopping));
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // The front is stopping.
        }
        finally
        {
            _open.TryRemove(id, out _);
            client.Dispose();
            backend?.Dispose();
        }
    }

    /// <summary>A connected socket to 127.0.0.1:<paramref name="port"/>, or null when the connection is refused.</summary>
    private static async Task<Socket?> ConnectAsync(int port, CancellationToken stopping)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), stopping);
            return socket;
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused)
        {
            socket.Dispose();
            return null;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private static async Task PipeAsync(Socket from, Socket to, CancellationToken stopping)
    {
        var buffer = new byte[16 * 1024];
        try
        {
            while (true)
            {
                var read = await from.ReceiveAsync(buffer, SocketFlags.None, stopping);
                if (read == 0)
                {
                    return;
                }

                var sent = 0;
                while (sent < read)
                {
                    sent += await to.SendAsync(buffer.AsMemory(sent, read - sent), SocketFlags.None, stopping);
                }
            }
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // Reset, closed by the other direction, or stopping.
        }
    }
}
