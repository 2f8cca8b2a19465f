using System.Collections.Concurrent;

namespace Talki.Signalling.Emulator;

/// <summary>What the emulator has done so far (thread-safe): the quantities API Gateway bills and the calls it made.</summary>
public sealed class EmulatorCounters
{
    private readonly ConcurrentDictionary<(string Verb, int Status), long> _connectionsCalls = new();
    private long _inbound;
    private long _outbound;
    private long _dropped;
    private long _meteredMessages;
    private long _authorizerCalls;
    private long _defaultCalls;
    private long _disconnectCalls;
    private long _accepted;
    private long _rejected;
    private long _connectionTicks;

    /// <summary>Gets the complete text messages received from clients (each one forwarded to <c>$default</c>).</summary>
    public long InboundMessages => Interlocked.Read(ref _inbound);

    /// <summary>Gets the pushes delivered to clients (<c>@connections</c> POSTs answered 200 and sent).</summary>
    public long OutboundMessages => Interlocked.Read(ref _outbound);

    /// <summary>Gets the pushes answered 200 but not delivered (the drop fault).</summary>
    public long DroppedPushes => Interlocked.Read(ref _dropped);

    /// <summary>Gets the messages as API Gateway meters them: inbound and outbound, in 32 KB increments.</summary>
    public long MeteredMessages => Interlocked.Read(ref _meteredMessages);

    /// <summary>Gets the REQUEST authorizer calls made.</summary>
    public long AuthorizerCalls => Interlocked.Read(ref _authorizerCalls);

    /// <summary>Gets the <c>$default</c> integration calls made.</summary>
    public long DefaultRouteCalls => Interlocked.Read(ref _defaultCalls);

    /// <summary>Gets the <c>$disconnect</c> integration calls made.</summary>
    public long DisconnectRouteCalls => Interlocked.Read(ref _disconnectCalls);

    /// <summary>Gets the backend integration calls made (<c>$default</c> + <c>$disconnect</c>).</summary>
    public long BackendCalls => DefaultRouteCalls + DisconnectRouteCalls;

    /// <summary>Gets the connections accepted (authorized and upgraded).</summary>
    public long ConnectionsAccepted => Interlocked.Read(ref _accepted);

    /// <summary>Gets the upgrade requests rejected (401, 403, 500).</summary>
    public long ConnectionsRejected => Interlocked.Read(ref _rejected);

    /// <summary>Gets the summed duration of the connections that have ended, on the emulator's <see cref="TimeProvider"/>.</summary>
    public TimeSpan ConnectionTime => TimeSpan.FromTicks(Interlocked.Read(ref _connectionTicks));

    /// <summary>Gets <see cref="ConnectionTime"/> in minutes (what API Gateway bills as connection-minutes).</summary>
    public double ConnectionMinutes => ConnectionTime.TotalMinutes;

    /// <summary>Gets the <c>@connections</c> calls by verb and status, e.g. <c>["POST 200"] = 3</c>.</summary>
    public IReadOnlyDictionary<string, long> ConnectionsApiCalls
        => _connectionsCalls.ToDictionary(p => $"{p.Key.Verb} {p.Key.Status}", p => p.Value, StringComparer.Ordinal);

    /// <summary>Gets the number of <c>@connections</c> calls with this verb and status.</summary>
    public long ConnectionsApiCallCount(string verb, int status) => _connectionsCalls.TryGetValue((verb, status), out var count) ? count : 0;

    /// <summary>Gets the number of <c>@connections</c> calls with this verb, whatever the status.</summary>
    public long ConnectionsApiCallCount(string verb) => _connectionsCalls.Where(p => p.Key.Verb == verb).Sum(p => p.Value);

    internal void Inbound(int bytes)
    {
        Interlocked.Increment(ref _inbound);
        Interlocked.Add(ref _meteredMessages, Metered(bytes));
    }

    internal void Outbound(int bytes)
    {
        Interlocked.Increment(ref _outbound);
        Interlocked.Add(ref _meteredMessages, Metered(bytes));
    }

    internal void Dropped() => Interlocked.Increment(ref _dropped);

    internal void Authorizer() => Interlocked.Increment(ref _authorizerCalls);

    internal void DefaultRoute() => Interlocked.Increment(ref _defaultCalls);

    internal void DisconnectRoute() => Interlocked.Increment(ref _disconnectCalls);

    internal void Accepted() => Interlocked.Increment(ref _accepted);

    internal void Rejected() => Interlocked.Increment(ref _rejected);

    internal void Ended(TimeSpan duration) => Interlocked.Add(ref _connectionTicks, Math.Max(0, duration.Ticks));

    internal void ConnectionsCall(string verb, int status) => _connectionsCalls.AddOrUpdate((verb, status), 1, static (_, n) => n + 1);

    private static long Metered(int bytes) => Math.Max(1, (bytes + (32 * 1024) - 1) / (32 * 1024));
}
