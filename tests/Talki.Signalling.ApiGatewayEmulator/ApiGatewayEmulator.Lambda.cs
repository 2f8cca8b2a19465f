using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Talki.Signalling.Emulator.Deployment;

namespace Talki.Signalling.Emulator;

/// <summary>The Lambda side: function URLs (front door and integration target) and the IAM-checking DynamoDB endpoint.</summary>
public sealed partial class ApiGatewayEmulator
{
    private const int MaxDynamoDbRequestBytes = 16 * 1024 * 1024;

    private static readonly HashSet<string> HopByHopHeaders = new(StringComparer.OrdinalIgnoreCase)
    {
        "Connection", "Keep-Alive", "Transfer-Encoding", "Upgrade", "Proxy-Connection", "TE", "Trailer", "Host",
    };

    // ---------------------------------------------------------------- function URLs

    /// <summary>
    /// A function URL request: the URL's resource-based policy is checked, then the request goes to one of the function's
    /// instances as the Lambda Web Adapter would send it (same method, path, query, headers, cookies and body, streamed
    /// both ways; redirects are the caller's business), and the instance's response comes back as it is.
    /// </summary>
    private async Task FunctionUrlAsync(HttpContext context, EmulatedFunctionUrl url)
    {
        var function = url.Function;
        if (Deployment.EnforcesIam && UrlRefusal(url) is { } reason)
        {
            // "Forbidden" with 403, before any invocation.
            Counters.FunctionUrlRefused();
            Log.FunctionUrlForbidden(_logger, function.Key, reason);
            context.Response.StatusCode = StatusCodes.Status403Forbidden;
            context.Response.Headers["x-amzn-RequestId"] = Guid.NewGuid().ToString();
            context.Response.Headers["x-amzn-ErrorType"] = "AccessDeniedException";
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync("{\"Message\":\"Forbidden\"}").ConfigureAwait(false);
            return;
        }

        var pool = _pools[function.Key];
        if (pool.Count == 0)
        {
            Log.NoInstance(_logger, function.Key);
            await WriteLambdaErrorAsync(context).ConfigureAwait(false);
            return;
        }

        using var lease = pool.Acquire();
        var rawTarget = context.Features.GetRequiredFeature<IHttpRequestFeature>().RawTarget;
        var path = rawTarget.Split('?', 2)[0];
        using var request = new HttpRequestMessage(new HttpMethod(context.Request.Method), new Uri(lease.Instance.GetLeftPart(UriPartial.Authority) + rawTarget));
        var hasBody = context.Request.ContentLength > 0 || context.Request.Headers.TransferEncoding.Count > 0;
        if (hasBody)
        {
            request.Content = new StreamContent(context.Request.Body);
        }

        foreach (var (name, values) in context.Request.Headers)
        {
            if (HopByHopHeaders.Contains(name))
            {
                continue;
            }

            if (!request.Headers.TryAddWithoutValidation(name, (IEnumerable<string?>)values))
            {
                request.Content?.Headers.TryAddWithoutValidation(name, (IEnumerable<string?>)values);
            }
        }

        // The Host the caller used (the browser's origin), and what a front proxy adds.
        request.Headers.Host = context.Request.Host.Value;
        request.Headers.TryAddWithoutValidation("X-Forwarded-For", context.Connection.RemoteIpAddress?.ToString() ?? "127.0.0.1");
        if (!request.Headers.Contains("X-Forwarded-Proto"))
        {
            request.Headers.TryAddWithoutValidation("X-Forwarded-Proto", context.Request.Scheme);
        }

        if (!request.Headers.Contains("X-Amzn-Trace-Id"))
        {
            request.Headers.TryAddWithoutValidation("X-Amzn-Trace-Id", TraceId(_options.TimeProvider));
        }

        using var timer = new CancellationTokenSource(function.Timeout, TimeProvider.System);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(timer.Token, context.RequestAborted);
        var started = TimeProvider.System.GetTimestamp();
        var status = 0;
        try
        {
            using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, linked.Token).ConfigureAwait(false);
            status = (int)response.StatusCode;
            context.Response.StatusCode = status;
            foreach (var (name, values) in response.Headers.Concat(response.Content.Headers))
            {
                if (!HopByHopHeaders.Contains(name))
                {
                    context.Response.Headers[name] = values.ToArray();
                }
            }

            await using var body = await response.Content.ReadAsStreamAsync(linked.Token).ConfigureAwait(false);
            await body.CopyToAsync(context.Response.Body, linked.Token).ConfigureAwait(false);
        }
        catch (Exception exception) when (exception is HttpRequestException or OperationCanceledException or IOException)
        {
            if (!context.RequestAborted.IsCancellationRequested)
            {
                Log.InstanceFailed(_logger, function.Key, lease.Index, exception);
                if (!context.Response.HasStarted)
                {
                    await WriteLambdaErrorAsync(context).ConfigureAwait(false);
                }
                else
                {
                    context.Abort();
                }
            }
        }
        finally
        {
            Counters.Invocation(new InvocationRecord(function.Key, lease.Index, "url", path, status, TimeProvider.System.GetElapsedTime(started)));
        }
    }

    /// <summary>
    /// Why the function URL's resource-based policy refuses a public request, or null. AuthType NONE needs both
    /// <c>lambda:InvokeFunctionUrl</c> for principal <c>*</c> with <c>FunctionUrlAuthType = NONE</c> and, since October
    /// 2025, <c>lambda:InvokeFunction</c> for principal <c>*</c> with <c>InvokedViaFunctionUrl = true</c> (Lambda developer
    /// guide, "Control access to Lambda function URLs", https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html).
    /// AuthType AWS_IAM needs SigV4-signed requests, which no caller of the emulator makes: refused.
    /// </summary>
    internal static string? UrlRefusal(EmulatedFunctionUrl url)
    {
        if (!string.Equals(url.AuthType, "NONE", StringComparison.Ordinal))
        {
            return $"AuthType {url.AuthType} needs signed requests";
        }

        var permissions = url.Function.Permissions;
        if (!permissions.Any(p => p.Principal == "*" && IamPolicy.Matches(p.Action, "lambda:InvokeFunctionUrl", ignoreCase: true) && p.FunctionUrlAuthType == "NONE"))
        {
            return "no lambda:InvokeFunctionUrl permission for principal * with FunctionUrlAuthType NONE";
        }

        if (!permissions.Any(p => p.Principal == "*" && IamPolicy.Matches(p.Action, "lambda:InvokeFunction", ignoreCase: true) && p.InvokedViaFunctionUrl == true))
        {
            return "no lambda:InvokeFunction permission for principal * with InvokedViaFunctionUrl true";
        }

        return null;
    }

    /// <summary>What a function URL answers when the function fails or cannot be reached: 502, <c>Internal Server Error</c>.</summary>
    private static async Task WriteLambdaErrorAsync(HttpContext context)
    {
        context.Response.StatusCode = StatusCodes.Status502BadGateway;
        context.Response.Headers["x-amzn-RequestId"] = Guid.NewGuid().ToString();
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync("{\"Message\":\"Internal Server Error\"}").ConfigureAwait(false);
    }

    // ---------------------------------------------------------------- DynamoDB

    /// <summary>
    /// The DynamoDB endpoint (JSON protocol: <c>POST /</c>, <c>X-Amz-Target: DynamoDB_20120810.{Action}</c>). In template
    /// mode the SigV4 signature is verified (service <c>dynamodb</c>) and the signing function's role policy must allow
    /// <c>dynamodb:{Action}</c> on every table (or index) the request names
    /// (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/using-identity-based-policies.html); a refusal is
    /// DynamoDB's HTTP 400 <c>AccessDeniedException</c>. Allowed requests are forwarded to dynalite as they are, except
    /// that the item actions are metered (<see cref="MeteredAction"/>).
    /// </summary>
    private async Task DynamoDbAsync(HttpContext context)
    {
        byte[] body;
        using (var buffer = new MemoryStream())
        {
            await context.Request.Body.CopyToAsync(buffer, context.RequestAborted).ConfigureAwait(false);
            if (buffer.Length > MaxDynamoDbRequestBytes)
            {
                await WriteDynamoDbErrorAsync(context, 413, "com.amazon.coral.service#RequestEntityTooLarge", "Request entity too large").ConfigureAwait(false);
                return;
            }

            body = buffer.ToArray();
        }

        var target = context.Request.Headers["X-Amz-Target"].ToString();
        var action = target.Contains('.', StringComparison.Ordinal) ? target[(target.IndexOf('.', StringComparison.Ordinal) + 1)..] : target;
        var principal = "anonymous";
        if (Deployment.EnforcesIam)
        {
            var headers = context.Request.Headers.ToDictionary(h => h.Key.ToLowerInvariant(), h => string.Join(',', h.Value.Select(v => v?.Trim())), StringComparer.Ordinal);
            if (!headers.TryGetValue("authorization", out var authorization))
            {
                await WriteDynamoDbErrorAsync(context, 400, "com.amazon.coral.service#MissingAuthenticationTokenException", "Request is missing Authentication Token").ConfigureAwait(false);
                return;
            }

            var rawTarget = context.Features.GetRequiredFeature<IHttpRequestFeature>().RawTarget;
            var signatureError = _dynamoVerifier.Verify(new SignedRequest(context.Request.Method, rawTarget, headers, body));
            if (signatureError is not null)
            {
                Log.DynamoDbRefused(_logger, signatureError);
                var unknownKey = signatureError == "unknown access key";
                await WriteDynamoDbErrorAsync(context, 400,
                    unknownKey ? "com.amazon.coral.service#UnrecognizedClientException" : "com.amazon.coral.service#InvalidSignatureException",
                    unknownKey ? "The security token included in the request is invalid." : "The request signature we calculated does not match the signature you provided.").ConfigureAwait(false);
                return;
            }

            var accessKey = SigV4Verifier.AccessKeyOf(authorization)!;
            _functionsByAccessKey.TryGetValue(accessKey, out var function);
            principal = function?.Key ?? accessKey;
            foreach (var resource in DynamoDbResources(action, body))
            {
                if (function is null || !function.Policy.Allows("dynamodb:" + action, resource))
                {
                    Counters.DynamoDb(principal, action, allowed: false);
                    var user = function?.AssumedRoleArn(_options.Partition, _options.AccountId) ?? $"arn:{_options.Partition}:iam::{_options.AccountId}:user/{accessKey}";
                    var message = $"User: {user} is not authorized to perform: dynamodb:{action} on resource: {resource} because no identity-based policy allows the dynamodb:{action} action";
                    Log.AccessDenied(_logger, message);
                    await WriteDynamoDbErrorAsync(context, 400, "com.amazon.coral.service#AccessDeniedException", message).ConfigureAwait(false);
                    return;
                }
            }
        }

        Counters.DynamoDb(principal, action, allowed: true);
        var request = ParseRequest(body);
        var replica = ReplicaAction(action, request);
        var before = replica is { Write: true } written ? await CurrentItemAsync(written.Table, written.Key, context.RequestAborted).ConfigureAwait(false) : null;
        var metered = MeteredAction(action, request, ref body);
        using var forward = new HttpRequestMessage(HttpMethod.Post, _options.DynamoDb) { Content = new ByteArrayContent(body) };
        foreach (var (name, values) in context.Request.Headers)
        {
            // The length is the body's (a metered request's body may have grown).
            if (!HopByHopHeaders.Contains(name) && !string.Equals(name, "Content-Length", StringComparison.OrdinalIgnoreCase)
                && !forward.Headers.TryAddWithoutValidation(name, (IEnumerable<string?>)values))
            {
                forward.Content.Headers.TryAddWithoutValidation(name, (IEnumerable<string?>)values);
            }
        }

        try
        {
            using var response = await _http.SendAsync(forward, context.RequestAborted).ConfigureAwait(false);
            var answer = await response.Content.ReadAsByteArrayAsync(context.RequestAborted).ConfigureAwait(false);
            var crc = metered is { } meter ? Meter(principal, action, meter, (int)response.StatusCode, ref answer, Counters) : null;
            if (replica is { } seen && response.StatusCode == System.Net.HttpStatusCode.OK)
            {
                crc = Replicate(seen, before, ref answer) ?? crc;
            }

            context.Response.StatusCode = (int)response.StatusCode;
            foreach (var (name, values) in response.Headers.Concat(response.Content.Headers))
            {
                if (!HopByHopHeaders.Contains(name) && !string.Equals(name, "Content-Length", StringComparison.OrdinalIgnoreCase))
                {
                    context.Response.Headers[name] = values.ToArray();
                }
            }

            if (crc is not null)
            {
                context.Response.Headers["x-amz-crc32"] = crc;
            }

            context.Response.ContentLength = answer.Length;
            await context.Response.Body.WriteAsync(answer, context.RequestAborted).ConfigureAwait(false);
        }
        catch (HttpRequestException)
        {
            await WriteDynamoDbErrorAsync(context, 500, "com.amazonaws.dynamodb.v20120810#InternalServerError", "DynamoDB (dynalite) could not be reached").ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Prepares the metering of an item action (reads: <c>GetItem</c>, <c>Query</c>, <c>Scan</c>, <c>BatchGetItem</c>;
    /// writes: <c>PutItem</c>, <c>UpdateItem</c>, <c>DeleteItem</c>, <c>BatchWriteItem</c>): unless the caller asked for
    /// <c>ReturnConsumedCapacity</c> itself, the request asks for <c>TOTAL</c>, so that dynalite says what the request
    /// consumed. dynalite sizes items as DynamoDB documents it: reads in 4 KB steps, half a unit when eventually consistent;
    /// writes in 1 KB steps, an update or a put over an existing item the larger of the item before and after, a delete the
    /// deleted item's size, at least one unit
    /// (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html).
    /// </summary>
    /// <returns>
    /// Whether the action writes, whether the caller asked for the capacity itself and for a strongly consistent read, and
    /// the kind of item (<see cref="ItemKind"/>), or null when the action is not metered.
    /// </returns>
    private (bool Write, bool CallerAsked, bool Consistent, string Kind)? MeteredAction(string action, JsonObject? request, ref byte[] body)
    {
        bool write;
        switch (action)
        {
            case "GetItem" or "Query" or "Scan" or "BatchGetItem":
                write = false;
                break;
            case "PutItem" or "UpdateItem" or "DeleteItem" or "BatchWriteItem":
                write = true;
                break;
            default:
                return null;
        }

        if (request is null)
        {
            return null; // not a JSON object: dynalite answers it with its own error
        }

        var consistent = request["ConsistentRead"] is JsonValue value && value.TryGetValue<bool>(out var strongly) && strongly;
        var kind = ItemKind(request);
        if ((string?)(request["ReturnConsumedCapacity"] as JsonValue) is "TOTAL" or "INDEXES")
        {
            return (write, true, consistent, kind);
        }

        request["ReturnConsumedCapacity"] = "TOTAL";
        body = Encoding.UTF8.GetBytes(request.ToJsonString());
        return (write, false, consistent, kind);
    }

    /// <summary>
    /// The kind of item a single-table request touches, from its key's string values up to their first <c>#</c> (a value
    /// without one as it is, when short): <c>ROOM#/MEMBER#</c>, <c>CONN#/CONN</c>. A query's is its first string value
    /// (the partition it reads); a batch's is <c>batch</c>. It tells where a call's capacity goes, not what it costs.
    /// </summary>
    private string ItemKind(JsonObject request)
    {
        static string Prefix(string? value) => value switch
        {
            null => "?",
            _ when value.IndexOf('#', StringComparison.Ordinal) is var hash and >= 0 => value[..(hash + 1)],
            { Length: <= 16 } => value,
            _ => "…",
        };

        if (request["Key"] is not JsonObject && request["Item"] is not JsonObject)
        {
            return request["ExpressionAttributeValues"] is JsonObject values
                ? Prefix(values.Select(v => (string?)(v.Value?["S"] as JsonValue)).FirstOrDefault(v => v is not null)) + " (query)"
                : "batch";
        }

        var item = (request["Key"] ?? request["Item"])!.AsObject();
        var table = Deployment.Tables.FirstOrDefault(t => t.Name == (string?)(request["TableName"] as JsonValue));
        var keyNames = table?.CreateTableRequest["KeySchema"] is JsonArray schema
            ? schema.OrderBy(k => (string?)k?["KeyType"] == "HASH" ? 0 : 1).Select(k => (string?)k?["AttributeName"]).ToList()
            : [.. item.Select(p => (string?)p.Key).Take(2)];
        return string.Join('/', keyNames.Select(name => Prefix(name is null ? null : (string?)(item[name]?["S"] as JsonValue))));
    }

    /// <summary>
    /// Counts what an item action consumed, from dynalite's answer, and takes the <c>ConsumedCapacity</c> the caller did not
    /// ask for out of it again (DynamoDB returns it only when asked), with the body's CRC32 that the SDK checks
    /// (<c>x-amz-crc32</c>) computed anew. A conditional write whose condition failed is an error without capacity in
    /// dynalite, but DynamoDB still consumes write capacity for it, by the larger of the existing and the new item's size
    /// (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html): it is counted as one
    /// unit, the least it can be (an undercount only for items over 1 KB, which the room store does not write), and
    /// counted apart (<see cref="EmulatorCounters.DynamoDbConditionalCheckFailures"/>). A
    /// <c>Query</c> or <c>Scan</c> that read no item is 0 units in dynalite; it is counted as the smallest read (one 4 KB
    /// read: 1 unit, or 0.5 eventually consistent), an assumption on the side of a higher bill, as no AWS page we found says
    /// what an empty query consumes.
    /// </summary>
    /// <returns>The new <c>x-amz-crc32</c> value when the body changed; otherwise null.</returns>
    private static string? Meter(string principal, string action, (bool Write, bool CallerAsked, bool Consistent, string Kind) request, int status, ref byte[] answer, EmulatorCounters counters)
    {
        JsonObject? result;
        try
        {
            result = JsonNode.Parse(answer) as JsonObject;
        }
        catch (JsonException)
        {
            return null;
        }

        if (result is null)
        {
            return null;
        }

        if (status != 200)
        {
            if (request.Write && ((string?)(result["__type"] as JsonValue))?.EndsWith("#ConditionalCheckFailedException", StringComparison.Ordinal) == true)
            {
                counters.DynamoDbConditionalCheckFailed(principal, action, request.Kind);
            }

            return null;
        }

        var units = result["ConsumedCapacity"] switch
        {
            JsonObject one => (double?)one["CapacityUnits"] ?? 0,
            JsonArray tables => tables.Sum(t => (double?)t?["CapacityUnits"] ?? 0),
            _ => 0,
        };
        if (units == 0 && action is "Query" or "Scan")
        {
            units = request.Consistent ? 1 : 0.5;
        }

        counters.DynamoDbCapacity(principal, action, request.Write, units, request.Kind);
        if (request.CallerAsked || !result.Remove("ConsumedCapacity"))
        {
            return null;
        }

        answer = Encoding.UTF8.GetBytes(result.ToJsonString());
        return Crc32.Of(answer).ToString(System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>The request's JSON object, parsed once for the metering and the replica lag model; null when it is not one.</summary>
    private static JsonObject? ParseRequest(byte[] body)
    {
        try
        {
            return JsonNode.Parse(body) as JsonObject;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>
    /// The item a request reads eventually consistent or writes, for the replica lag model
    /// (<see cref="EmulatorOptions.DynamoDbReplicaLag"/>): its table, its key (the key schema's attributes, as JSON), and
    /// whether it writes. Null when the model is off or the request is neither.
    /// </summary>
    private (string Table, JsonObject Key, string Id, bool Write)? ReplicaAction(string action, JsonObject? request)
    {
        if (_options.DynamoDbReplicaLag <= TimeSpan.Zero || action is not ("GetItem" or "PutItem" or "UpdateItem" or "DeleteItem"))
        {
            return null;
        }

        if (request?["TableName"] is not JsonValue tableValue || (string?)tableValue is not { } table
            || (request["Key"] ?? request["Item"]) is not JsonObject item
            || (action == "GetItem" && request["ConsistentRead"] is JsonValue consistent && consistent.TryGetValue<bool>(out var strongly) && strongly))
        {
            return null;
        }

        var schema = Deployment.Tables.FirstOrDefault(t => t.Name == table)?.CreateTableRequest["KeySchema"] as JsonArray;
        if (schema is null && request["Key"] is null)
        {
            return null; // a put into a table the template does not declare: its key attributes are unknown
        }

        var names = schema is null ? [.. item.Select(p => p.Key)] : schema.Select(k => (string?)k?["AttributeName"]).OfType<string>().ToList();
        var key = new JsonObject();
        foreach (var name in names.Order(StringComparer.Ordinal))
        {
            if (item[name] is { } value)
            {
                key[name] = value.DeepClone();
            }
        }

        return (table, key, table + "\n" + key.ToJsonString(), action != "GetItem");
    }

    /// <summary>The item as dynalite holds it now (a strongly consistent read, neither counted nor metered), or null.</summary>
    private async Task<JsonObject?> CurrentItemAsync(string table, JsonObject key, CancellationToken cancellationToken)
    {
        var dynamo = _options.DynamoDb!;
        var request = new JsonObject { ["TableName"] = table, ["Key"] = key.DeepClone(), ["ConsistentRead"] = true };
        using var response = await DynaliteAsync(dynamo, "GetItem", request.ToJsonString(), cancellationToken).ConfigureAwait(false);
        return response.IsSuccessStatusCode && JsonNode.Parse(await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false))?["Item"] is JsonObject item
            ? item
            : null;
    }

    /// <summary>
    /// The replica lag model: a successful write remembers the item as it was before it; an eventually consistent read is
    /// answered with the item as it was before the earliest write of the last <see cref="EmulatorOptions.DynamoDbReplicaLag"/>
    /// (no item when that write created it), the oldest state a replica that lags that much may still hold.
    /// </summary>
    /// <returns>The new <c>x-amz-crc32</c> value when the answer changed; otherwise null.</returns>
    private string? Replicate((string Table, JsonObject Key, string Id, bool Write) request, JsonObject? before, ref byte[] answer)
    {
        var now = _options.TimeProvider.GetTimestamp();
        var lag = _options.DynamoDbReplicaLag;
        if (request.Write)
        {
            _replica.AddOrUpdate(
                request.Id,
                _ => [new StaleImage(now, before)],
                (_, writes) => [.. writes.Where(w => _options.TimeProvider.GetElapsedTime(w.WrittenAt, now) < lag), new StaleImage(now, before)]);
            return null;
        }

        if (!_replica.TryGetValue(request.Id, out var recent)
            || recent.FirstOrDefault(w => _options.TimeProvider.GetElapsedTime(w.WrittenAt, now) < lag) is not { } oldest
            || JsonNode.Parse(answer) is not JsonObject result)
        {
            return null;
        }

        if (oldest.Before is null)
        {
            result.Remove("Item");
        }
        else
        {
            result["Item"] = oldest.Before.DeepClone();
        }

        Counters.DynamoDbStaleRead();
        answer = Encoding.UTF8.GetBytes(result.ToJsonString());
        return Crc32.Of(answer).ToString(System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>A write the replica lag model remembers: when it was made, and the item as it was before it (null: absent).</summary>
    private sealed record StaleImage(long WrittenAt, JsonObject? Before);

    /// <summary>The resources a DynamoDB request acts on: its table (or index) ARNs, or <c>*</c> for account-level actions.</summary>
    internal IEnumerable<string> DynamoDbResources(string action, byte[] body)
    {
        JsonObject? request;
        try
        {
            request = JsonNode.Parse(body) as JsonObject;
        }
        catch (JsonException)
        {
            request = null;
        }

        string Arn(string table, string? index = null)
        {
            var arn = table.StartsWith("arn:", StringComparison.Ordinal) ? table : $"arn:{_options.Partition}:dynamodb:{_options.Region}:{_options.AccountId}:table/{table}";
            return index is null ? arn : $"{arn}/index/{index}";
        }

        var resources = new List<string>();
        if (request?["TableName"] is JsonValue table)
        {
            resources.Add(Arn((string)table!, (string?)request["IndexName"]));
        }

        foreach (var (name, _) in request?["RequestItems"] as JsonObject ?? [])
        {
            resources.Add(Arn(name));
        }

        foreach (var item in request?["TransactItems"] as JsonArray ?? [])
        {
            foreach (var (_, operation) in item as JsonObject ?? [])
            {
                if (operation?["TableName"] is JsonValue inner)
                {
                    resources.Add(Arn((string)inner!));
                }
            }
        }

        return resources.Count > 0 ? resources : ["*"];
    }

    private static async Task WriteDynamoDbErrorAsync(HttpContext context, int status, string type, string message)
    {
        context.Response.StatusCode = status;
        context.Response.Headers["x-amzn-RequestId"] = Guid.NewGuid().ToString("N").ToUpperInvariant();
        context.Response.ContentType = "application/x-amz-json-1.0";
        var error = new JsonObject { ["__type"] = type, ["Message"] = message };
        await context.Response.WriteAsync(error.ToJsonString()).ConfigureAwait(false);
    }

    /// <summary>A DynamoDB call straight to dynalite (what CloudFormation does when it creates the table).</summary>
    private async Task<HttpResponseMessage> DynaliteAsync(Uri dynamo, string action, string json, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, dynamo) { Content = new StringContent(json, Encoding.UTF8) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/x-amz-json-1.0");
        request.Headers.TryAddWithoutValidation("X-Amz-Target", "DynamoDB_20120810." + action);
        request.Headers.TryAddWithoutValidation("X-Amz-Date", DateTime.UtcNow.ToString("yyyyMMdd'T'HHmmss'Z'", System.Globalization.CultureInfo.InvariantCulture));
        request.Headers.TryAddWithoutValidation("Authorization",
            $"AWS4-HMAC-SHA256 Credential=cloudformation/{DateTime.UtcNow:yyyyMMdd}/{_options.Region}/dynamodb/aws4_request, SignedHeaders=host;x-amz-date, Signature={new string('0', 64)}");
        return await _http.SendAsync(request, cancellationToken).ConfigureAwait(false);
    }
}
