using System.Buffers.Text;
using System.Collections.Concurrent;
using System.Net.WebSockets;
using System.Security.Cryptography;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using StackExchange.Redis;
using Talki.Signalling.Ports;
using Talki.Signalling.Redis.Internal;
using Talki.Signalling.Server.AspNetCore;

namespace Talki.Signalling.Redis.Backplane;

/// <summary>
/// The push backplane of the self-hosted gateway across instances, on Redis (SignalR's model: pub/sub to the instance
/// that holds the socket), with one difference: a push answers its outcome, so that <c>Gone</c> means gone everywhere.
/// </summary>
/// <remarks>
/// <para>
/// <b>Registrations.</b> Each instance has a random id and registers every socket it accepts, before accepting it:
/// <c>Psocket:{connection}</c> = instance id, with a time to live of <see cref="TalkiRedisOptions.RegistrationTtl"/> that
/// the instance refreshes every third of it (and writes again if Redis lost it). A socket that ends is unregistered
/// (compare-and-delete); the registrations of an instance that dies vanish when their time to live runs out.
/// </para>
/// <para>
/// <b>Pushes.</b> A push to a socket this instance does not hold reads its registration. None: <see cref="PushOutcome.Gone"/>
/// (no instance holds it). Another instance: the push is published on that instance's channel (<c>Pbackplane:{instance}</c>)
/// with a request id; the instance delivers it locally and publishes the outcome on the sender's channel. No subscriber on
/// the channel (the instance is down) or no answer within <see cref="TalkiRedisOptions.PushTimeout"/>: the registration is
/// read again; gone now is <see cref="PushOutcome.Gone"/>, still there is <see cref="PushOutcome.Undeliverable"/> (the
/// member is kept, the sender may retry). Redis unreachable: <see cref="PushOutcome.Undeliverable"/>. Each instance handles
/// its channel's messages one at a time, in order, so pushes from one sender to one socket keep their order.
/// </para>
/// <para>
/// <b>Closes</b> are published the same way, without an answer (a close of a socket no instance holds is a no-op).
/// Connection ids travel only between servers, through Redis: they never reach a client.
/// </para>
/// <para>
/// The refresh and the push timeout run on the system clock, not on the host's <see cref="TimeProvider"/>: they pair with
/// Redis's own expiry, which a host's logical clock (a fake clock in tests) does not drive.
/// </para>
/// </remarks>
internal sealed class RedisGatewayBackplane : IGatewayBackplane, IHostedService, IAsyncDisposable
{
    /// <summary>KEYS: the registration. ARGV: the instance id. Deletes it if it is this instance's.</summary>
    private const string UnregisterScript = """
        if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
        return 0
        """;

    private readonly RedisConnection _redis;
    private readonly IServiceProvider _services;
    private readonly ILogger _logger;
    private readonly string _prefix;
    private readonly TimeSpan _ttl;
    private readonly TimeSpan _pushTimeout;
    private readonly TimeProvider _clock = TimeProvider.System;
    private readonly ConcurrentDictionary<string, byte> _held = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<long, TaskCompletionSource<PushOutcome>> _pending = new();
    private readonly CancellationTokenSource _stopping = new();
    private SelfHostedGateway? _gateway;
    private ChannelMessageQueue? _queue;
    private Task? _refreshing;
    private long _nextRequest;

    public RedisGatewayBackplane(RedisConnection redis, IServiceProvider services, IOptions<TalkiRedisOptions> options, ILogger<RedisGatewayBackplane> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _redis = redis;
        _services = services;
        _logger = logger;
        _prefix = options.Value.KeyPrefix;
        _ttl = options.Value.RegistrationTtl;
        _pushTimeout = options.Value.PushTimeout;
        Span<byte> bytes = stackalloc byte[12];
        RandomNumberGenerator.Fill(bytes);
        InstanceId = Base64Url.EncodeToString(bytes);
    }

    /// <summary>Gets this instance's id (random per process).</summary>
    internal string InstanceId { get; }

    /// <summary>Gets the number of sockets this instance has registered.</summary>
    internal int RegisteredCount => _held.Count;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        _gateway = _services.GetRequiredService<SelfHostedGateway>();
        await TrySubscribeAsync().ConfigureAwait(false);
        _refreshing = RefreshLoopAsync(_stopping.Token);
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        if (_refreshing is not null)
        {
            await _refreshing.ConfigureAwait(false);
        }

        if (_queue is { } queue)
        {
            try
            {
                await queue.UnsubscribeAsync().ConfigureAwait(false);
            }
            catch (Exception exception) when (LinkDown(exception))
            {
                RedisLog.BackplaneBestEffortFailed(_logger, exception);
            }
        }
    }

    public ValueTask DisposeAsync()
    {
        _stopping.Dispose();
        return ValueTask.CompletedTask;
    }

    public async ValueTask RegisterAsync(string connectionId, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connectionId);
        var db = await _redis.GetDatabaseAsync().ConfigureAwait(false);
        await RedisFailures.Guard(db.StringSetAsync(SocketKey(connectionId), InstanceId, _ttl)).ConfigureAwait(false);
        _held[connectionId] = 0;
    }

    public async ValueTask UnregisterAsync(string connectionId)
    {
        ArgumentNullException.ThrowIfNull(connectionId);
        _held.TryRemove(connectionId, out _);
        try
        {
            var db = await _redis.GetDatabaseAsync().ConfigureAwait(false);
            await db.ScriptEvaluateAsync(UnregisterScript, [SocketKey(connectionId)], [InstanceId]).ConfigureAwait(false);
        }
        catch (Exception exception) when (LinkDown(exception))
        {
            RedisLog.BackplaneBestEffortFailed(_logger, exception);
        }
    }

    public async ValueTask<PushOutcome> PushAsync(string connectionId, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connectionId);
        var request = Interlocked.Increment(ref _nextRequest);
        var answer = new TaskCompletionSource<PushOutcome>(TaskCreationOptions.RunContinuationsAsynchronously);
        try
        {
            var connection = await _redis.GetAsync().ConfigureAwait(false);
            var owner = (string?)await connection.GetDatabase().StringGetAsync(SocketKey(connectionId)).ConfigureAwait(false);
            if (owner is null || owner == InstanceId)
            {
                return PushOutcome.Gone; // no instance holds it (this one does not: the gateway looked first)
            }

            _pending[request] = answer;
            var receivers = await connection.GetSubscriber()
                .PublishAsync(Channel(owner), BackplaneMessage.Push(request, InstanceId, connectionId, payload.Span))
                .ConfigureAwait(false);
            if (receivers > 0)
            {
                try
                {
                    return await answer.Task.WaitAsync(_pushTimeout, _clock, cancellationToken).ConfigureAwait(false);
                }
                catch (TimeoutException)
                {
                    // Fall through: is the socket still registered?
                }
            }

            RedisLog.BackplaneNoAnswer(_logger, owner);
            return await connection.GetDatabase().KeyExistsAsync(SocketKey(connectionId)).ConfigureAwait(false) ? PushOutcome.Undeliverable : PushOutcome.Gone;
        }
        catch (Exception exception) when (LinkDown(exception))
        {
            RedisLog.BackplanePushFailed(_logger, exception);
            return PushOutcome.Undeliverable;
        }
        finally
        {
            _pending.TryRemove(request, out _);
        }
    }

    public async ValueTask CloseAsync(string connectionId, WebSocketCloseStatus status, string reason, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connectionId);
        ArgumentNullException.ThrowIfNull(reason);
        try
        {
            var connection = await _redis.GetAsync().ConfigureAwait(false);
            var owner = (string?)await connection.GetDatabase().StringGetAsync(SocketKey(connectionId)).ConfigureAwait(false);
            if (owner is not null && owner != InstanceId)
            {
                await connection.GetSubscriber().PublishAsync(Channel(owner), BackplaneMessage.Close(connectionId, status, reason)).ConfigureAwait(false);
            }
        }
        catch (Exception exception) when (LinkDown(exception))
        {
            RedisLog.BackplaneBestEffortFailed(_logger, exception);
        }
    }

    /// <summary>Redis unavailable, or this instance's connection to it closed (shutting down): pushes are undeliverable, the rest is best effort.</summary>
    private static bool LinkDown(Exception exception) => RedisFailures.IsUnavailable(exception) || exception is ObjectDisposedException;

    private string SocketKey(string connectionId) => _prefix + "socket:" + connectionId;

    private RedisChannel Channel(string instance) => RedisChannel.Literal(_prefix + "backplane:" + instance);

    private async Task<bool> TrySubscribeAsync()
    {
        if (_queue is not null)
        {
            return true;
        }

        try
        {
            var connection = await _redis.GetAsync().ConfigureAwait(false);
            var queue = await connection.GetSubscriber().SubscribeAsync(Channel(InstanceId)).ConfigureAwait(false);
            queue.OnMessage(HandleAsync); // one message at a time, in order
            _queue = queue;
            RedisLog.BackplaneSubscribed(_logger, InstanceId);
            return true;
        }
        catch (Exception exception) when (LinkDown(exception))
        {
            RedisLog.BackplaneSubscribeFailed(_logger, exception);
            return false;
        }
    }

    private async Task HandleAsync(ChannelMessage received)
    {
        try
        {
            if (!BackplaneMessage.TryRead((ReadOnlyMemory<byte>)received.Message, out var message))
            {
                RedisLog.BackplaneMalformedMessage(_logger);
                return;
            }

            switch (message.Kind)
            {
                case BackplaneMessageKind.Reply:
                    if (_pending.TryGetValue(message.RequestId, out var answer))
                    {
                        answer.TrySetResult(message.Outcome);
                    }

                    break;
                case BackplaneMessageKind.Push:
                    var (sender, connectionId, payload) = message.ReadPush();
                    var outcome = _gateway!.PushLocal(connectionId, payload.Span);
                    var connection = await _redis.GetAsync().ConfigureAwait(false);
                    await connection.GetSubscriber().PublishAsync(Channel(sender), BackplaneMessage.Reply(message.RequestId, outcome), CommandFlags.FireAndForget).ConfigureAwait(false);
                    break;
                case BackplaneMessageKind.Close:
                    var (closing, status, reason) = message.ReadClose();
                    _gateway!.CloseLocal(closing, status, reason);
                    break;
            }
        }
        catch (Exception exception)
        {
            RedisLog.BackplaneHandlerFailed(_logger, exception);
        }
    }

    /// <summary>Every third of the time to live: refreshes this instance's registrations (writing back any Redis lost) and retries a failed subscription.</summary>
    private async Task RefreshLoopAsync(CancellationToken stopping)
    {
        using var timer = new PeriodicTimer(_ttl / 3, _clock);
        try
        {
            while (await timer.WaitForNextTickAsync(stopping).ConfigureAwait(false))
            {
                await RefreshAsync().ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
            // Stopping.
        }
    }

    /// <summary>Refreshes every registration of this instance once.</summary>
    internal async Task RefreshAsync()
    {
        try
        {
            await TrySubscribeAsync().ConfigureAwait(false);
            var db = await _redis.GetDatabaseAsync().ConfigureAwait(false);
            var held = _held.Keys.ToArray();
            var refreshed = await Task.WhenAll(held.Select(id => db.KeyExpireAsync(SocketKey(id), _ttl))).ConfigureAwait(false);
            var lost = held.Where((id, i) => !refreshed[i] && _held.ContainsKey(id)).ToArray();
            if (lost.Length > 0)
            {
                await Task.WhenAll(lost.Select(id => db.StringSetAsync(SocketKey(id), InstanceId, _ttl))).ConfigureAwait(false);
                RedisLog.BackplaneReRegistered(_logger, lost.Length);
            }
        }
        catch (Exception exception) when (LinkDown(exception))
        {
            RedisLog.BackplaneRefreshFailed(_logger, exception);
        }
    }
}
