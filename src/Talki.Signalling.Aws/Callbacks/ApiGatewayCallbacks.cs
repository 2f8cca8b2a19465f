using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Talki.Signalling.Http;
using Talki.Signalling.Ports;
using Talki.Signalling.Protocol;
using Talki.Signalling.Server;

using Talki.Signalling.Server.AspNetCore;
using Talki.Signalling.Server.Engine;

namespace Talki.Signalling.Aws.Callbacks;

/// <summary>
/// The API Gateway WebSocket callbacks: the <c>$connect</c> REQUEST authorizer (the Lambda Web Adapter POSTs the raw
/// event to the pass-through path and returns the response body to Lambda; a custom runtime, <see cref="LambdaRuntimeAuthorizer"/>,
/// hands it the event from the Lambda runtime API instead) and the HTTP integrations of
/// <c>$default</c> and <c>$disconnect</c>, which only trust calls that carry the connection id header and the shared
/// gateway secret. Connection ids and tickets never appear in responses or logs.
/// </summary>
internal sealed class ApiGatewayCallbacks
{
    /// <summary>The largest authorizer event read; larger events are denied.</summary>
    internal const int MaxAuthorizerEventBytes = 256 * 1024;

    /// <summary>The longest accepted connection id, in characters (API Gateway's are 16).</summary>
    internal const int MaxConnectionIdLength = 128;

    /// <summary>The principal of denied connections.</summary>
    internal const string DeniedPrincipal = "talki";

    private const string DefaultRoute = "$default";
    private const string DisconnectRoute = "$disconnect";

    private readonly ISignallingEngine _engine;
    private readonly ApiGatewayCallbacksOptions _options;
    private readonly byte[] _secretHash;
    private readonly string _roomHeader;
    private readonly string _memberHeader;
    private readonly string _epochHeader;
    private readonly string _sealsAtHeader;
    private readonly string _resumeHeader;
    private readonly int _maxMessageBytes;
    private readonly ILogger _logger;
    private byte[]? _overLimit;

    public ApiGatewayCallbacks(
        ISignallingEngine engine,
        IOptions<ApiGatewayCallbacksOptions> options,
        IOptions<TalkiSignallingOptions> signallingOptions,
        ILogger<ApiGatewayCallbacks> logger)
    {
        _engine = engine;
        _options = options.Value;
        _secretHash = SHA256.HashData(Encoding.UTF8.GetBytes(_options.GatewaySecret ?? throw new InvalidOperationException("ApiGatewayCallbacksOptions.GatewaySecret is required.")));
        _maxMessageBytes = signallingOptions.Value.Hosting.MaxInboundMessageBytes;
        var prefix = _options.AuthorizerContextHeaderPrefix;
        (_roomHeader, _memberHeader, _epochHeader, _sealsAtHeader, _resumeHeader) = (prefix + "room", prefix + "member", prefix + "epoch", prefix + "seals-at", prefix + "resume");
        _logger = logger;
    }

    /// <summary>
    /// <c>POST {AuthorizerPath}</c>: the REQUEST authorizer event in, the authorizer response out, always with 200 (a
    /// malformed event, a missing or bad ticket and internal failures all answer a Deny policy).
    /// </summary>
    public async Task AuthorizeAsync(HttpContext context)
    {
        var response = await DecideAsync(context).ConfigureAwait(false);
        if (response is null)
        {
            return; // the caller went away
        }

        context.Response.StatusCode = StatusCodes.Status200OK;
        context.Response.Headers.CacheControl = "no-store";
        await context.Response.WriteAsJsonAsync(response, ApiGatewayCallbacksJsonContext.Default.AuthorizerResponse, "application/json", context.RequestAborted).ConfigureAwait(false);
    }

    /// <summary><c>POST {DefaultRoutePath}</c>: the body is the client's frame; answers 200 with an empty body once handled.</summary>
    public async Task DefaultAsync(HttpContext context)
    {
        if (!TryAuthenticate(context, DefaultRoute, out var connectionId))
        {
            await WriteUnauthenticatedAsync(context).ConfigureAwait(false);
            return;
        }

        try
        {
            using var body = await RentedBody.ReadAsync(context.Request.Body, context.Request.ContentLength, _maxMessageBytes, context.RequestAborted).ConfigureAwait(false);
            var payload = body.Memory;
            if (body.TooLarge)
            {
                // Not read, and refused by the engine as it refuses any message over the limit: it pays the largest allowed
                // message to the sender's rate limiter and is answered message_too_large, or rate_limited (closing the
                // connection as a flood does). Answered here without paying, a member could have the operator pay for one
                // invocation and one push per oversized message without end. The engine reads only the length of such a
                // message.
                Log.MessageTooLarge(_logger, _maxMessageBytes);
                payload = _overLimit ??= new byte[_maxMessageBytes + 1];
            }
            else if (body.Length == 0)
            {
                Log.MessageEmpty(_logger);
                await WriteErrorAsync(context, StatusCodes.Status400BadRequest, SignallingErrorCode.MalformedMessage, "The message is empty.").ConfigureAwait(false);
                return;
            }

            switch (ReadGrant(context.Request.Headers, out var grant))
            {
                case GrantHeaders.Present:
                    await _engine.HandleAuthorizedMessageAsync(connectionId, grant!, payload, context.RequestAborted).ConfigureAwait(false);
                    break;
                case GrantHeaders.Absent:
                    // An integration without the context mapping: only a connection bound some other way can talk.
                    Log.NoAuthorizerContext(_logger);
                    await _engine.HandleMessageAsync(connectionId, payload, context.RequestAborted).ConfigureAwait(false);
                    break;
                default:
                    await WriteErrorAsync(context, StatusCodes.Status400BadRequest, SignallingErrorCode.MalformedMessage, "The authorizer context headers are malformed.").ConfigureAwait(false);
                    return;
            }

            if (body.TooLarge)
            {
                await WriteErrorAsync(context, StatusCodes.Status413PayloadTooLarge, SignallingErrorCode.MessageTooLarge, $"The message exceeds {_maxMessageBytes} bytes.").ConfigureAwait(false);
                return;
            }

            context.Response.StatusCode = StatusCodes.Status200OK;
            context.Response.ContentLength = 0;
        }
        catch (Exception exception) when (exception is not OperationCanceledException || !context.RequestAborted.IsCancellationRequested)
        {
            await WriteFailureAsync(context, exception, DefaultRoute).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// <c>POST {DisconnectRoutePath}</c>: unbinds the connection and tells the room (after the seal, with the authorizer's
    /// context mapped, neither); answers 200 with an empty body.
    /// </summary>
    public async Task DisconnectAsync(HttpContext context)
    {
        if (!TryAuthenticate(context, DisconnectRoute, out var connectionId))
        {
            await WriteUnauthenticatedAsync(context).ConfigureAwait(false);
            return;
        }

        try
        {
            // The stack maps the authorizer's context on $disconnect as on $default: API Gateway keeps it for the connection's
            // life. With it, a disconnect after the seal needs no store access. Without it, or malformed (logged), the
            // connection's binding says whose it was: a disconnect is never refused.
            if (ReadGrant(context.Request.Headers, out var grant) == GrantHeaders.Present)
            {
                await _engine.HandleAuthorizedDisconnectAsync(connectionId, grant!, CancellationToken.None).ConfigureAwait(false);
            }
            else
            {
                await _engine.DisconnectAsync(connectionId, CancellationToken.None).ConfigureAwait(false);
            }

            context.Response.StatusCode = StatusCodes.Status200OK;
            context.Response.ContentLength = 0;
        }
        catch (Exception exception)
        {
            await WriteFailureAsync(context, exception, DisconnectRoute).ConfigureAwait(false);
        }
    }

    /// <summary>Whether a text is acceptable as a connection id: 1 to 128 visible ASCII characters.</summary>
    internal static bool IsConnectionId(string? text)
    {
        if (string.IsNullOrEmpty(text) || text.Length > MaxConnectionIdLength)
        {
            return false;
        }

        foreach (var c in text)
        {
            if (c is < '!' or > '~')
            {
                return false;
            }
        }

        return true;
    }

    private static AuthorizerResponse Allow(string methodArn, ConnectionGrant grant) => new()
    {
        PrincipalId = grant.Member.Value,
        PolicyDocument = new PolicyDocument { Statement = [new PolicyStatement { Effect = "Allow", Resource = methodArn }] },
        Context = new AuthorizerContext
        {
            Room = grant.Room.Value,
            Member = grant.Member.Value,
            Epoch = grant.Epoch.ToString(CultureInfo.InvariantCulture),
            SealsAt = grant.SealsAt.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture),
            Resume = (grant.ResumeEpoch ?? 0).ToString(CultureInfo.InvariantCulture),
        },
    };

    /// <summary>Reads the authorizer's grant from the context headers the integration maps (trusted: the caller proved the gateway secret).</summary>
    private GrantHeaders ReadGrant(IHeaderDictionary headers, out ConnectionGrant? grant)
    {
        grant = null;
        var room = headers[_roomHeader];
        var member = headers[_memberHeader];
        var epoch = headers[_epochHeader];
        var sealsAt = headers[_sealsAtHeader];
        if (room.Count == 0 && member.Count == 0 && epoch.Count == 0 && sealsAt.Count == 0)
        {
            return GrantHeaders.Absent;
        }

        if (room.Count != 1 || member.Count != 1 || epoch.Count != 1 || sealsAt.Count != 1
            || !RoomId.TryParse(room[0], out var roomId)
            || !MemberId.TryParse(member[0], out var memberId)
            || !TryParseInteger(epoch[0], out var epochValue) || epochValue < 1
            || !TryParseInteger(sealsAt[0], out var sealsAtMs) || sealsAtMs < 0 || sealsAtMs > MaxUnixMilliseconds)
        {
            Log.AuthorizerContextMalformed(_logger);
            return GrantHeaders.Malformed;
        }

        // Optional, for stacks that predate resuming: absent or 0 is a fresh start; a resume is only ever for the epoch before.
        long? resume = null;
        var resumeValues = headers[_resumeHeader];
        if (resumeValues.Count == 1 && TryParseInteger(resumeValues[0], out var resumeValue) && (resumeValue == 0 || resumeValue == epochValue - 1))
        {
            resume = resumeValue == 0 ? null : resumeValue;
        }
        else if (resumeValues.Count != 0)
        {
            Log.AuthorizerContextMalformed(_logger);
            return GrantHeaders.Malformed;
        }

        grant = new ConnectionGrant(roomId, memberId, epochValue, DateTimeOffset.FromUnixTimeMilliseconds(sealsAtMs)) { ResumeEpoch = resume };
        return GrantHeaders.Present;
    }

    /// <summary>
    /// Parses an integer that API Gateway may have rendered from a JSON number (<c>5</c>, <c>5.0</c>, <c>1.7E12</c>) as
    /// well as from a string; fractions are refused.
    /// </summary>
    internal static bool TryParseInteger(string? text, out long value)
    {
        value = 0;
        if (string.IsNullOrEmpty(text) || text.Length > 32
            || !decimal.TryParse(text, NumberStyles.AllowDecimalPoint | NumberStyles.AllowExponent, CultureInfo.InvariantCulture, out var number)
            || number != decimal.Truncate(number) || number > long.MaxValue)
        {
            return false;
        }

        value = (long)number;
        return true;
    }

    private const long MaxUnixMilliseconds = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z

    private enum GrantHeaders
    {
        Absent,
        Present,
        Malformed,
    }

    private static AuthorizerResponse Deny(string? methodArn) => new()
    {
        PrincipalId = DeniedPrincipal,
        PolicyDocument = new PolicyDocument { Statement = [new PolicyStatement { Effect = "Deny", Resource = string.IsNullOrEmpty(methodArn) ? "*" : methodArn }] },
    };

    private static Task WriteUnauthenticatedAsync(HttpContext context)
        => WriteErrorAsync(context, StatusCodes.Status401Unauthorized, SignallingErrorCode.Unauthenticated, "The call does not come from the configured API Gateway integration.");

    private static Task WriteErrorAsync(HttpContext context, int status, SignallingErrorCode code, string message, string? reference = null)
        => HttpErrors.WriteAsync(context, status, code, message, reference);

    private static string NewReference() => SignallingEngine.NewCorrelationId();

    private async Task<AuthorizerResponse?> DecideAsync(HttpContext context)
    {
        try
        {
            using var body = await RentedBody.ReadAsync(context.Request.Body, context.Request.ContentLength, MaxAuthorizerEventBytes, context.RequestAborted).ConfigureAwait(false);
            return await DecideAsync(body, context.RequestAborted).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            return null;
        }
        catch (Exception exception)
        {
            Log.AuthorizerFailed(_logger, exception, NewReference());
            return Deny(null);
        }
    }

    /// <summary>
    /// The authorizer's answer to an event already read (by the pass-through path above, or from the Lambda runtime API):
    /// Allow or Deny; <see langword="null"/> only when <paramref name="cancellationToken"/> was cancelled.
    /// </summary>
    internal async Task<AuthorizerResponse?> DecideAsync(RentedBody body, CancellationToken cancellationToken)
    {
        string? methodArn = null;
        try
        {
            AuthorizerRequest? request;
            if (body.TooLarge || body.Length == 0)
            {
                Log.AuthorizerEventMalformed(_logger, body.TooLarge ? $"larger than {MaxAuthorizerEventBytes} bytes" : "empty body");
                return Deny(null);
            }

            try
            {
                request = JsonSerializer.Deserialize(body.Memory.Span, ApiGatewayCallbacksJsonContext.Default.AuthorizerRequest);
            }
            catch (JsonException)
            {
                Log.AuthorizerEventMalformed(_logger, "not an authorizer event in JSON");
                return Deny(null);
            }

            methodArn = request?.MethodArn;
            var malformation = Check(request);
            if (malformation is not null)
            {
                Log.AuthorizerEventMalformed(_logger, malformation);
                return Deny(methodArn);
            }

            var query = request!.QueryStringParameters;
            if (query is not null && query.TryGetValue("v", out var version)
                && !(int.TryParse(version, NumberStyles.None, CultureInfo.InvariantCulture, out var asked) && ProtocolVersion.IsSupported(asked)))
            {
                Log.ConnectDenied(_logger, SignallingErrorCode.UnsupportedVersion);
                return Deny(methodArn);
            }

            string? ticket = null;
            if (query?.TryGetValue("ticket", out ticket) != true || string.IsNullOrEmpty(ticket))
            {
                Log.ConnectDenied(_logger, SignallingErrorCode.TicketInvalid);
                return Deny(methodArn);
            }

            // Only the ticket: binding the connection (and closing the member's previous one) needs @connections, which
            // the authorizer's role does not have. The backend binds on the connection's first frame from this context.
            // A waiting member of version 4 (wait=1) sends no first frame: its connection is bound here, ready, in the same
            // write that takes its ticket (nothing is pushed; its previous connection, if any, is not closed).
            long? resume = query!.TryGetValue("resume", out var resumeText)
                && long.TryParse(resumeText, NumberStyles.None, CultureInfo.InvariantCulture, out var resumeEpoch) && resumeEpoch > 0
                ? resumeEpoch
                : null;
            if (!SelfHostedGateway.TryReadWaiting(query.GetValueOrDefault(ProtocolVersion.WaitParameter), query.GetValueOrDefault("v"), out var waiting))
            {
                Log.ConnectDenied(_logger, SignallingErrorCode.MalformedMessage);
                return Deny(methodArn);
            }

            var grant = waiting is { } waitingVersion
                ? await _engine.AuthorizeWaitingAsync(request.RequestContext!.ConnectionId!, ticket, waitingVersion, cancellationToken).ConfigureAwait(false)
                : await _engine.AuthorizeAsync(ticket, resume, cancellationToken).ConfigureAwait(false);
            if (!grant.IsSuccess)
            {
                Log.ConnectDenied(_logger, grant.Error.Code);
                return Deny(methodArn);
            }

            Log.ConnectAllowed(_logger, grant.Value.Member, grant.Value.Room, grant.Value.Epoch);
            return Allow(methodArn!, grant.Value);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return null;
        }
        catch (Exception exception)
        {
            Log.AuthorizerFailed(_logger, exception, NewReference());
            return Deny(methodArn);
        }
    }

    /// <summary>Returns why the event is not a WebSocket <c>$connect</c> REQUEST authorizer event, or <see langword="null"/>.</summary>
    private static string? Check(AuthorizerRequest? request)
    {
        if (request is null)
        {
            return "null event";
        }

        if (!string.Equals(request.Type, "REQUEST", StringComparison.Ordinal))
        {
            return "type is not REQUEST";
        }

        if (string.IsNullOrEmpty(request.MethodArn))
        {
            return "no methodArn";
        }

        var requestContext = request.RequestContext;
        if (requestContext is null)
        {
            return "no requestContext";
        }

        if (requestContext.EventType is not null && !string.Equals(requestContext.EventType, "CONNECT", StringComparison.Ordinal))
        {
            return "eventType is not CONNECT";
        }

        if (requestContext.RouteKey is not null && !string.Equals(requestContext.RouteKey, "$connect", StringComparison.Ordinal))
        {
            return "routeKey is not $connect";
        }

        return IsConnectionId(requestContext.ConnectionId) ? null : "no valid requestContext.connectionId";
    }

    private bool TryAuthenticate(HttpContext context, string route, out string connectionId)
    {
        connectionId = string.Empty;
        var headers = context.Request.Headers;
        var secrets = headers[_options.GatewaySecretHeader];
        if (secrets.Count != 1 || !SecretMatches(secrets[0]))
        {
            Log.CallbackUnauthenticated(_logger, route, secrets.Count == 0 ? "no gateway secret header" : "wrong gateway secret");
            return false;
        }

        var ids = headers[_options.ConnectionIdHeader];
        if (ids.Count != 1 || !IsConnectionId(ids[0]))
        {
            Log.CallbackUnauthenticated(_logger, route, ids.Count == 0 ? "no connection id header" : "invalid connection id header");
            return false;
        }

        connectionId = ids[0]!;
        return true;
    }

    private bool SecretMatches(string? presented)
    {
        if (presented is null)
        {
            return false;
        }

        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(Encoding.UTF8.GetBytes(presented), hash);
        return CryptographicOperations.FixedTimeEquals(hash, _secretHash);
    }

    private async Task WriteFailureAsync(HttpContext context, Exception exception, string route)
    {
        var reference = NewReference();
        Log.CallbackFailed(_logger, exception, route, reference);
        if (!context.Response.HasStarted)
        {
            context.Response.Clear();
            await WriteErrorAsync(context, StatusCodes.Status500InternalServerError, SignallingErrorCode.Internal, "An unexpected error occurred; quote the reference to the operator.", reference).ConfigureAwait(false);
        }
    }

    /// <summary>A request body read into a pooled buffer, up to a limit.</summary>
    internal sealed class RentedBody : IDisposable
    {
        private byte[]? _buffer;

        private RentedBody(byte[]? buffer, int length)
        {
            _buffer = buffer;
            Length = length;
        }

        /// <summary>Gets the body's length, or -1 when it exceeds the limit.</summary>
        public int Length { get; }

        public bool TooLarge => Length < 0;

        public ReadOnlyMemory<byte> Memory => _buffer is null || Length <= 0 ? ReadOnlyMemory<byte>.Empty : _buffer.AsMemory(0, Length);

        /// <summary>Reads <paramref name="body"/> to its end, or to one byte past <paramref name="limit"/> (then too large).</summary>
        public static async Task<RentedBody> ReadAsync(Stream body, long? contentLength, int limit, CancellationToken cancellationToken)
        {
            if (contentLength > limit)
            {
                return new RentedBody(null, -1);
            }

            var buffer = ArrayPool<byte>.Shared.Rent(limit + 1);
            var total = 0;
            try
            {
                while (total <= limit)
                {
                    var read = await body.ReadAsync(buffer.AsMemory(total, limit + 1 - total), cancellationToken).ConfigureAwait(false);
                    if (read == 0)
                    {
                        break;
                    }

                    total += read;
                }
            }
            catch
            {
                ArrayPool<byte>.Shared.Return(buffer);
                throw;
            }

            if (total > limit)
            {
                ArrayPool<byte>.Shared.Return(buffer);
                return new RentedBody(null, -1);
            }

            return new RentedBody(buffer, total);
        }

        public void Dispose()
        {
            var buffer = Interlocked.Exchange(ref _buffer, null);
            if (buffer is not null)
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }
}
