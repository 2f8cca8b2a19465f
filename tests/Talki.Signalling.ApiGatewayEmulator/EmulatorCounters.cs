using System.Collections.Concurrent;

namespace Talki.Signalling.Emulator;

/// <summary>One Lambda invocation the emulator made: which function and instance, what triggered it, and how long the handler took.</summary>
/// <param name="Function">The function's construct id (<c>Backend</c>, <c>Authorizer</c>).</param>
/// <param name="Instance">The index of the instance that ran it.</param>
/// <param name="Trigger"><c>authorizer</c> (the REQUEST authorizer event on the pass-through path) or <c>url</c> (a function URL request).</param>
/// <param name="Path">The request path (e.g. <c>/talki/aws/default</c>, <c>/events</c>).</param>
/// <param name="Status">The HTTP status the instance answered (0 when it could not be reached).</param>
/// <param name="Duration">From sending the request to the instance until its response was complete (the handler's duration as Lambda bills it, give or take the local hop).</param>
public sealed record InvocationRecord(string Function, int Instance, string Trigger, string Path, int Status, TimeSpan Duration);

/// <summary>One HTTP integration call of a route.</summary>
/// <param name="RouteKey"><c>$default</c> or <c>$disconnect</c>.</param>
/// <param name="Status">The integration's HTTP status (0 when unreachable or timed out); it is not returned to the client.</param>
/// <param name="Duration">The integration latency.</param>
public sealed record IntegrationRecord(string RouteKey, int Status, TimeSpan Duration);

/// <summary>What the emulator has done so far (thread-safe): the quantities API Gateway bills and the calls it made.</summary>
public sealed class EmulatorCounters
{
    private readonly ConcurrentDictionary<(string Verb, int Status), long> _connectionsCalls = new();
    private readonly ConcurrentDictionary<(string Function, string Action, bool Allowed), long> _dynamoDbCalls = new();
    private readonly ConcurrentDictionary<(string Function, string Action, bool Write, string Kind), double> _dynamoDbUnits = new();
    private readonly ConcurrentDictionary<(string Function, string Action), long> _conditionalCheckFailures = new();
    private long _staleReads;
    private readonly ConcurrentQueue<InvocationRecord> _invocations = new();
    private readonly ConcurrentQueue<IntegrationRecord> _integrations = new();
    private readonly ConcurrentQueue<string> _accessLog = new();
    private long _accessLogLines;
    private long _accessLogBytes;
    private long _functionUrlForbidden;
    private long _connectionsAccessDenied;
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

    /// <summary>Gets every Lambda invocation made so far (authorizer events and function URL requests), in completion order.</summary>
    public IReadOnlyList<InvocationRecord> Invocations => [.. _invocations];

    /// <summary>Gets every HTTP integration call made so far, in completion order.</summary>
    public IReadOnlyList<IntegrationRecord> Integrations => [.. _integrations];

    /// <summary>Gets the Lambda invocations of one function (construct id, e.g. <c>Backend</c>).</summary>
    public long FunctionInvocations(string function) => _invocations.Count(i => i.Function == function);

    /// <summary>Gets the integration calls of one route (<c>$default</c>, <c>$disconnect</c>).</summary>
    public long IntegrationCalls(string routeKey) => _integrations.Count(i => i.RouteKey == routeKey);

    /// <summary>Gets the function URL requests refused by the URL's resource-based policy (403 before any invocation).</summary>
    public long FunctionUrlForbidden => Interlocked.Read(ref _functionUrlForbidden);

    /// <summary>Gets the <c>@connections</c> calls refused by IAM (403 AccessDeniedException).</summary>
    public long ConnectionsAccessDenied => Interlocked.Read(ref _connectionsAccessDenied);

    /// <summary>Gets the DynamoDB calls through the emulator's endpoint, by <c>"{function} {action} {allowed|denied}"</c>.</summary>
    public IReadOnlyDictionary<string, long> DynamoDbCalls
        => _dynamoDbCalls.ToDictionary(p => $"{p.Key.Function} {p.Key.Action} {(p.Key.Allowed ? "allowed" : "denied")}", p => p.Value, StringComparer.Ordinal);

    /// <summary>Gets the DynamoDB calls of this action (e.g. <c>GetItem</c>) that IAM allowed, from any function.</summary>
    public long DynamoDbCallCount(string action, bool allowed = true) => _dynamoDbCalls.Where(p => p.Key.Action == action && p.Key.Allowed == allowed).Sum(p => p.Value);

    /// <summary>
    /// Gets the read capacity units the DynamoDB item reads consumed (<c>GetItem</c>, <c>Query</c>, <c>Scan</c>,
    /// <c>BatchGetItem</c>), as dynalite sizes them: what an on-demand table bills as read request units.
    /// </summary>
    public double DynamoDbReadUnits => _dynamoDbUnits.Where(p => !p.Key.Write).Sum(p => p.Value);

    /// <summary>
    /// Gets the write capacity units the DynamoDB item writes consumed (<c>PutItem</c>, <c>UpdateItem</c>,
    /// <c>DeleteItem</c>, <c>BatchWriteItem</c>), one per conditional write whose condition failed included: what an
    /// on-demand table bills as write request units.
    /// </summary>
    public double DynamoDbWriteUnits => _dynamoDbUnits.Where(p => p.Key.Write).Sum(p => p.Value);

    /// <summary>Gets the capacity units by action (e.g. <c>"PutItem" → 21</c>), conditional failures included.</summary>
    public IReadOnlyDictionary<string, double> DynamoDbUnitsByAction
        => _dynamoDbUnits.GroupBy(p => p.Key.Action, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Sum(p => p.Value), StringComparer.Ordinal);

    /// <summary>
    /// Gets the capacity units by kind of item and direction (e.g. <c>"ROOM#/MEMBER# write" → 11</c>): the key's values up
    /// to their first <c>#</c>, a query's partition with <c>(query)</c>. Where a call's capacity goes.
    /// </summary>
    public IReadOnlyDictionary<string, double> DynamoDbUnitsByItemKind
        => _dynamoDbUnits.GroupBy(p => $"{p.Key.Kind} {(p.Key.Write ? "write" : "read")}", StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Sum(p => p.Value), StringComparer.Ordinal);

    /// <summary>Gets the conditional writes whose condition failed (DynamoDB bills them; dynalite's error says nothing of it).</summary>
    public long DynamoDbConditionalCheckFailures => _conditionalCheckFailures.Values.Sum();

    /// <summary>
    /// Gets the eventually consistent reads the emulator answered with an item as it was before a recent write (the replica
    /// lag model, <see cref="EmulatorOptions.DynamoDbReplicaLag"/>).
    /// </summary>
    public long DynamoDbStaleReads => Interlocked.Read(ref _staleReads);

    /// <summary>Gets the lines the stage's access log received (none when the template's stage writes no access logs).</summary>
    public long AccessLogLines => Interlocked.Read(ref _accessLogLines);

    /// <summary>Gets the UTF-8 bytes of those lines (the log events' messages, without CloudWatch Logs' per-event overhead).</summary>
    public long AccessLogBytes => Interlocked.Read(ref _accessLogBytes);

    /// <summary>Gets the first <see cref="MaxAccessLogLinesKept"/> access-log lines, in the order they were written.</summary>
    public IReadOnlyList<string> AccessLog => [.. _accessLog];

    /// <summary>How many access-log lines <see cref="AccessLog"/> keeps (all of them are counted).</summary>
    public const int MaxAccessLogLinesKept = 10_000;

    /// <summary>Clears every counter (the connections still open keep counting their time from their start).</summary>
    public void Reset()
    {
        _connectionsCalls.Clear();
        _dynamoDbCalls.Clear();
        _dynamoDbUnits.Clear();
        _conditionalCheckFailures.Clear();
        Interlocked.Exchange(ref _staleReads, 0);
        _invocations.Clear();
        _integrations.Clear();
        _accessLog.Clear();
        Interlocked.Exchange(ref _accessLogLines, 0);
        Interlocked.Exchange(ref _accessLogBytes, 0);
        Interlocked.Exchange(ref _inbound, 0);
        Interlocked.Exchange(ref _outbound, 0);
        Interlocked.Exchange(ref _dropped, 0);
        Interlocked.Exchange(ref _meteredMessages, 0);
        Interlocked.Exchange(ref _authorizerCalls, 0);
        Interlocked.Exchange(ref _defaultCalls, 0);
        Interlocked.Exchange(ref _disconnectCalls, 0);
        Interlocked.Exchange(ref _accepted, 0);
        Interlocked.Exchange(ref _rejected, 0);
        Interlocked.Exchange(ref _connectionTicks, 0);
        Interlocked.Exchange(ref _functionUrlForbidden, 0);
        Interlocked.Exchange(ref _connectionsAccessDenied, 0);
    }

    internal void Invocation(InvocationRecord record) => _invocations.Enqueue(record);

    internal void Integration(IntegrationRecord record) => _integrations.Enqueue(record);

    internal void AccessLogLine(string line)
    {
        if (Interlocked.Increment(ref _accessLogLines) <= MaxAccessLogLinesKept)
        {
            _accessLog.Enqueue(line);
        }

        Interlocked.Add(ref _accessLogBytes, System.Text.Encoding.UTF8.GetByteCount(line));
    }

    internal void FunctionUrlRefused() => Interlocked.Increment(ref _functionUrlForbidden);

    internal void ConnectionsDenied() => Interlocked.Increment(ref _connectionsAccessDenied);

    internal void DynamoDb(string function, string action, bool allowed) => _dynamoDbCalls.AddOrUpdate((function, action, allowed), 1, static (_, n) => n + 1);

    internal void DynamoDbCapacity(string function, string action, bool write, double units, string kind)
        => _dynamoDbUnits.AddOrUpdate((function, action, write, kind), units, (_, n) => n + units);

    /// <summary>A conditional write whose condition failed: counted, and one write unit (the least DynamoDB bills for it).</summary>
    internal void DynamoDbConditionalCheckFailed(string function, string action, string kind)
    {
        _conditionalCheckFailures.AddOrUpdate((function, action), 1, static (_, n) => n + 1);
        DynamoDbCapacity(function, action, write: true, units: 1, kind);
    }

    internal void DynamoDbStaleRead() => Interlocked.Increment(ref _staleReads);

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
