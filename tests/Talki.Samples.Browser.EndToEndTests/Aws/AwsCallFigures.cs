using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Talki.Signalling.Emulator;

namespace Talki.Samples.Browser.EndToEndTests.Aws;

/// <summary>
/// What a call cost on the AWS path, read from the emulator's counters (a snapshot): Lambda invocations by function and by
/// kind (sign-ins, the rest of the HTTP API, the app's files, <c>$default</c>/<c>$disconnect</c> integrations, authorizer
/// events), with the measured handler durations; <c>@connections</c> calls; DynamoDB calls by action; API Gateway messages
/// and connection time.
/// </summary>
internal sealed partial record AwsCallFigures(
    IReadOnlyList<InvocationRecord> Invocations,
    IReadOnlyList<IntegrationRecord> Integrations,
    IReadOnlyDictionary<string, long> ConnectionsApiCalls,
    IReadOnlyDictionary<string, long> DynamoDbCalls,
    long ConnectionsAccepted,
    long ConnectionsRejected,
    long AuthorizerCalls,
    long InboundMessages,
    long OutboundMessages,
    long MeteredMessages,
    TimeSpan ConnectionTime,
    long ConnectionsAccessDenied,
    long FunctionUrlForbidden)
{
    public const string SignIn = "sign-in";
    public const string HttpApi = "HTTP API (other)";
    public const string AppFiles = "app files";
    public const string Default = "$default";
    public const string Disconnect = "$disconnect";
    public const string Authorizer = "authorizer";

    public static AwsCallFigures Take(ApiGatewayEmulator emulator)
    {
        var counters = emulator.Counters;
        return new AwsCallFigures(
            counters.Invocations,
            counters.Integrations,
            counters.ConnectionsApiCalls,
            counters.DynamoDbCalls,
            counters.ConnectionsAccepted,
            counters.ConnectionsRejected,
            counters.AuthorizerCalls,
            counters.InboundMessages,
            counters.OutboundMessages,
            counters.MeteredMessages,
            emulator.ConnectionTime,
            counters.ConnectionsAccessDenied,
            counters.FunctionUrlForbidden);
    }

    /// <summary>What an invocation was for.</summary>
    public static string Kind(InvocationRecord invocation) => invocation switch
    {
        { Trigger: "authorizer" } => Authorizer,
        { Path: "/talki/aws/default" } => Default,
        { Path: "/talki/aws/disconnect" } => Disconnect,
        { Path: "/talki/session/anonymous" or "/talki/session/google" } => SignIn,
        { Path: var path } when path.StartsWith("/talki/", StringComparison.Ordinal) => HttpApi,
        _ => AppFiles,
    };

    /// <summary>The HTTP API route of a path, ids replaced (<c>POST /talki/rooms/{id}/tickets</c> is counted once per route).</summary>
    public static string Route(string path) => RoomId().Replace(path, "/rooms/{id}");

    public IEnumerable<InvocationRecord> Of(string kind) => Invocations.Where(i => Kind(i) == kind);

    public long DynamoDbDenied => DynamoDbCalls.Where(c => c.Key.EndsWith(" denied", StringComparison.Ordinal)).Sum(c => c.Value);

    /// <summary>The DynamoDB calls IAM allowed, by action.</summary>
    public IReadOnlyDictionary<string, long> DynamoDbByAction => DynamoDbCalls
        .Where(c => c.Key.EndsWith(" allowed", StringComparison.Ordinal))
        .GroupBy(c => c.Key.Split(' ')[1], StringComparer.Ordinal)
        .OrderBy(g => g.Key, StringComparer.Ordinal)
        .ToDictionary(g => g.Key, g => g.Sum(c => c.Value), StringComparer.Ordinal);

    public long ConnectionsApi(string verb) => ConnectionsApiCalls.Where(c => c.Key.StartsWith(verb + " ", StringComparison.Ordinal)).Sum(c => c.Value);

    /// <summary>The difference from an earlier snapshot of the same emulator (what happened in between).</summary>
    public AwsCallFigures Since(AwsCallFigures earlier) => new(
        [.. Invocations.Skip(earlier.Invocations.Count)],
        [.. Integrations.Skip(earlier.Integrations.Count)],
        Minus(ConnectionsApiCalls, earlier.ConnectionsApiCalls),
        Minus(DynamoDbCalls, earlier.DynamoDbCalls),
        ConnectionsAccepted - earlier.ConnectionsAccepted,
        ConnectionsRejected - earlier.ConnectionsRejected,
        AuthorizerCalls - earlier.AuthorizerCalls,
        InboundMessages - earlier.InboundMessages,
        OutboundMessages - earlier.OutboundMessages,
        MeteredMessages - earlier.MeteredMessages,
        ConnectionTime - earlier.ConnectionTime,
        ConnectionsAccessDenied - earlier.ConnectionsAccessDenied,
        FunctionUrlForbidden - earlier.FunctionUrlForbidden);

    /// <summary>The figures as text, one quantity a line.</summary>
    public string Format()
    {
        var text = new StringBuilder();
        void Line(string name, object value) => text.AppendLine(CultureInfo.InvariantCulture, $"{name,-64} {value}");

        Line("sign-ins (POST /talki/session/anonymous)", Of(SignIn).Count());
        Line("HTTP API invocations (/talki/*, sign-ins included)", Of(SignIn).Count() + Of(HttpApi).Count());
        foreach (var route in Of(SignIn).Concat(Of(HttpApi)).GroupBy(i => Route(i.Path), StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            Line($"  {route.Key}", $"{route.Count()} (statuses {Statuses(route)})");
        }

        Line("app file invocations (the app's files via the function URL)", Of(AppFiles).Count());
        Line("  distinct app file paths (a caching browser's first visit)", Of(AppFiles).Select(i => i.Path).Distinct(StringComparer.Ordinal).Count());
        Line("authorizer invocations", $"{Of(Authorizer).Count()} (REQUEST authorizer calls {AuthorizerCalls})");
        Line("$default invocations", $"{Of(Default).Count()} (integration calls {Integrations.Count(i => i.RouteKey == "$default")})");
        Line("$disconnect invocations", $"{Of(Disconnect).Count()} (integration calls {Integrations.Count(i => i.RouteKey == "$disconnect")})");
        Line("Lambda invocations, Backend", Invocations.Count(i => i.Function == "Backend"));
        foreach (var instance in Invocations.Where(i => i.Function == "Backend").GroupBy(i => i.Instance).OrderBy(g => g.Key))
        {
            Line($"  Backend instance {instance.Key}", $"{instance.Count()} ({string.Join(", ", instance.GroupBy(Kind).OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => $"{g.Key} {g.Count()}"))})");
        }

        Line("Lambda invocations, Authorizer", Invocations.Count(i => i.Function == "Authorizer"));
        Line("@connections POST", $"{ConnectionsApi("POST")} ({Statuses(ConnectionsApiCalls, "POST")})");
        Line("@connections DELETE", $"{ConnectionsApi("DELETE")} ({Statuses(ConnectionsApiCalls, "DELETE")})");
        Line("@connections GET", ConnectionsApi("GET"));
        Line("DynamoDB calls (allowed)", DynamoDbByAction.Values.Sum());
        foreach (var (action, count) in DynamoDbByAction)
        {
            Line($"  {action} ({(IsRead(action) ? "read" : "write")})", count);
        }

        Line("  reads / writes", $"{DynamoDbByAction.Where(a => IsRead(a.Key)).Sum(a => a.Value)} / {DynamoDbByAction.Where(a => !IsRead(a.Key)).Sum(a => a.Value)}");
        foreach (var byFunction in DynamoDbCalls.Where(c => c.Key.EndsWith(" allowed", StringComparison.Ordinal)).OrderBy(c => c.Key, StringComparer.Ordinal))
        {
            Line($"  by {byFunction.Key[..^" allowed".Length]}", byFunction.Value);
        }

        Line("WebSocket connections accepted / rejected", $"{ConnectionsAccepted} / {ConnectionsRejected}");
        Line("messages in / out (metered, 32 KB units)", $"{InboundMessages} / {OutboundMessages} ({MeteredMessages})");
        Line("connection time (s, through the close at the seal)", ConnectionTime.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture));
        Line("connection-minutes", ConnectionTime.TotalMinutes.ToString("0.00", CultureInfo.InvariantCulture));
        Line("IAM: @connections AccessDenied", ConnectionsAccessDenied);
        Line("IAM: DynamoDB AccessDenied", DynamoDbDenied);
        Line("function URL 403 (resource policy)", FunctionUrlForbidden);
        text.AppendLine("handler duration (ms; request sent to the instance until its response completed, on a shared 2-core machine):");
        text.AppendLine(CultureInfo.InvariantCulture, $"  {"function / kind",-30} {"n",5} {"mean",8} {"p50",8} {"p95",8} {"max",8}");
        foreach (var function in Invocations.GroupBy(i => i.Function).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            Durations(text, function.Key, function);
            foreach (var kind in function.GroupBy(Kind).OrderBy(g => g.Key, StringComparer.Ordinal))
            {
                Durations(text, "  " + kind.Key, kind);
            }
        }

        return text.ToString();
    }

    private static void Durations(StringBuilder text, string name, IEnumerable<InvocationRecord> invocations)
    {
        var ms = invocations.Select(i => i.Duration.TotalMilliseconds).Order().ToList();
        text.AppendLine(CultureInfo.InvariantCulture, $"  {name,-30} {ms.Count,5} {ms.Average(),8:0.0} {Percentile(ms, 0.50),8:0.0} {Percentile(ms, 0.95),8:0.0} {ms[^1],8:0.0}");
    }

    /// <summary>Nearest-rank percentile of sorted values.</summary>
    private static double Percentile(List<double> sorted, double p) => sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Count) - 1, 0, sorted.Count - 1)];

    private static bool IsRead(string action) => action is "GetItem" or "Query" or "Scan" or "BatchGetItem" or "DescribeTable" or "TransactGetItems";

    private static string Statuses(IEnumerable<InvocationRecord> invocations)
        => string.Join(", ", invocations.GroupBy(i => i.Status).OrderBy(g => g.Key).Select(g => $"{g.Key}×{g.Count()}"));

    private static string Statuses(IReadOnlyDictionary<string, long> calls, string verb)
        => string.Join(", ", calls.Where(c => c.Key.StartsWith(verb + " ", StringComparison.Ordinal)).OrderBy(c => c.Key, StringComparer.Ordinal).Select(c => $"{c.Key[(verb.Length + 1)..]}×{c.Value}"));

    private static IReadOnlyDictionary<string, long> Minus(IReadOnlyDictionary<string, long> now, IReadOnlyDictionary<string, long> before)
        => now.Select(p => (p.Key, Value: p.Value - before.GetValueOrDefault(p.Key))).Where(p => p.Value != 0).ToDictionary(p => p.Key, p => p.Value, StringComparer.Ordinal);

    [GeneratedRegex(@"/rooms/[^/]+")]
    private static partial Regex RoomId();
}
