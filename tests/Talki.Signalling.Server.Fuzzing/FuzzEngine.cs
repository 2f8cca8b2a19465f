using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using Talki.Signalling.Ports;
using Talki.Signalling.Server.Engine;

namespace Talki.Signalling.Server.Fuzzing;

/// <summary>An oracle violation: the frame, the sender and what went wrong.</summary>
internal sealed class FuzzFailure : Exception
{
    public FuzzFailure(string message, byte[]? frame = null, Exception? inner = null)
        : base(frame is null ? message : $"{message}\n  frame ({frame.Length} bytes): {Show(frame)}", inner)
    {
        Frame = frame;
    }

    public FuzzFailure()
    {
    }

    public FuzzFailure(string message)
        : base(message)
    {
    }

    public FuzzFailure(string message, Exception inner)
        : base(message, inner)
    {
    }

    public byte[]? Frame { get; }

    public static string Show(byte[] frame)
    {
        var text = Utf8.IsValid(frame) ? Encoding.UTF8.GetString(frame) : "(invalid UTF-8) " + Convert.ToHexString(frame.AsSpan(0, Math.Min(frame.Length, 400)));
        return text.Length > 600 ? text[..600] + "…" : text;
    }
}

/// <summary>What a run saw.</summary>
internal sealed class FuzzStats
{
    public long Cases { get; set; }

    public long Frames { get; set; }

    public long ParsedValid { get; set; }

    public long Relayed { get; set; }

    public long Exceptions { get; set; }

    public long InternalAnswers { get; set; }

    public long ErrorLogs { get; set; }

    public long ConsistencyChecks { get; set; }

    public SortedDictionary<string, long> ErrorCodes { get; } = new(StringComparer.Ordinal);

    public SortedDictionary<string, long> ParseOutcomes { get; } = new(StringComparer.Ordinal);

    /// <summary>Gets how often each distinct rejection message of the parser was seen.</summary>
    public SortedDictionary<string, long> RejectReasons { get; } = new(StringComparer.Ordinal);

    public void Count(SortedDictionary<string, long> counts, string key) => counts[key] = counts.GetValueOrDefault(key) + 1;
}

/// <summary>
/// Drives <see cref="ClientFrame.Parse"/> and the whole engine with fuzzed frames and checks the oracle: nothing throws,
/// nothing is answered <c>internal</c>, nothing is logged at Error, every error has a stable code, and afterwards the
/// room's other members still relay a valid signal.
/// </summary>
internal sealed class EngineFuzzer : IDisposable
{
    /// <summary>Every code <c>HandleMessageAsync</c> may answer with; anything else (<c>internal</c> first) is a failure.</summary>
    public static readonly IReadOnlySet<string> ExpectedCodes = new HashSet<string>(StringComparer.Ordinal)
    {
        "malformed_message", "unknown_type", "message_too_large", "unsupported_version", "room_not_found", "stale_epoch", "not_ready",
        "not_admitted", "not_admin", "member_not_found", "member_not_pending", "peer_unavailable", "room_full", "rate_limited",
    };

    /// <summary>
    /// Cases per engine. Every case leaves timers armed on the fake clock (a room's seal, each disconnected member's grace
    /// period: the clock moves 1 ms per connection, so none comes due), and every advance of the clock walks all of them:
    /// 200 cases spent 43 % of the run in <c>FakeTimeProvider.WakeWaiters</c> (perf, 2026-12-03), 50 cases 19 %.
    /// </summary>
    private const int CasesPerEngine = 50;

    private readonly IReadOnlyList<byte[]> _corpus;
    private readonly FuzzStats _stats;
    private Engine? _engine;
    private int _casesOnEngine;

    public EngineFuzzer(IReadOnlyList<byte[]> corpus, FuzzStats stats)
    {
        _corpus = corpus;
        _stats = stats;
    }

    /// <summary>Called after every fuzzed frame with its bytes and a signature of what happened (parse outcome, answers).</summary>
    public Action<FuzzFrame, byte[], string>? OnFrame { get; set; }

    /// <summary>Runs one case on a fresh room; throws <see cref="FuzzFailure"/> on an oracle violation.</summary>
    public void Run(FuzzFrame[] frames)
    {
        if (_engine is null || _casesOnEngine++ >= CasesPerEngine)
        {
            _engine?.Dispose();
            _engine = new Engine();
            _casesOnEngine = 1;
        }

        var engine = _engine;
        var room = engine.NewRoom();
        _stats.Cases++;
        foreach (var frame in frames)
        {
            var bytes = FuzzFrames.Render(frame, _corpus, room);
            _stats.Frames++;
            var answered = engine.Send(room.ConnectionOf(frame.Sender), bytes, _stats);
            var parsed = CheckParse(bytes);
            OnFrame?.Invoke(frame, bytes, $"{frame.Sender}|{parsed}|{answered}");
        }

        engine.CheckConsistency(room, _stats);
        engine.Release(room);
    }

    /// <summary>Checks one frame against <see cref="ClientFrame.Parse"/> alone (no engine).</summary>
    /// <returns>The outcome: the frame kind, or the error message.</returns>
    public string CheckParse(byte[] bytes)
    {
        ClientFrame frame;
        try
        {
            frame = ClientFrame.Parse(bytes);
        }
        catch (Exception exception)
        {
            _stats.Exceptions++;
            throw new FuzzFailure($"ClientFrame.Parse threw {exception.GetType().Name}: {exception.Message}", bytes, exception);
        }

        if (frame.Kind == ClientFrameKind.Invalid)
        {
            if (frame.ErrorCode is not (SignallingErrorCode.MalformedMessage or SignallingErrorCode.UnknownType) || string.IsNullOrEmpty(frame.ErrorMessage))
            {
                throw new FuzzFailure($"ClientFrame.Parse rejected with {frame.ErrorCode} '{frame.ErrorMessage}'", bytes);
            }

            _stats.Count(_stats.ParseOutcomes, frame.ErrorCode == SignallingErrorCode.UnknownType ? "unknown_type" : "malformed_message");
            _stats.Count(_stats.RejectReasons, frame.ErrorMessage!);
        }
        else
        {
            _stats.ParsedValid++;
            _stats.Count(_stats.ParseOutcomes, frame.Kind.ToString().ToLowerInvariant());
            if (!IsJson(bytes))
            {
                throw new FuzzFailure($"ClientFrame.Parse accepted a {frame.Kind} that is not valid JSON", bytes);
            }

            if (frame.Kind == ClientFrameKind.Signal)
            {
                CheckSignal(bytes, frame.Description, frame.Candidates, frame.IsOffer, "the signal");
            }

            if (frame.Kind == ClientFrameKind.Signals)
            {
                if (frame.Signals is not { Length: > 0 and <= ClientFrame.MaxSignalsPerFrame } entries)
                {
                    throw new FuzzFailure($"ClientFrame.Parse accepted a signals frame of {frame.Signals?.Length} entries", bytes);
                }

                for (var i = 0; i < entries.Length; i++)
                {
                    CheckSignal(bytes, entries[i].Description, entries[i].Candidates, entries[i].IsOffer, $"entry {i}");
                    if (entries.Take(i).Any(e => e.To == entries[i].To))
                    {
                        throw new FuzzFailure($"ClientFrame.Parse accepted a signals frame whose entry {i} is for a member an earlier entry is for", bytes);
                    }
                }
            }
        }

        // The escape pre-pass must not change any decision: the reference parser agrees on everything.
        if (Utf8.IsValid(bytes))
        {
            var reference = ClientFrame.ParseValidUtf8(bytes);
            if (Describe(reference) != Describe(frame))
            {
                throw new FuzzFailure($"Parse and ParseValidUtf8 disagree:\n  parse:     {Describe(frame)}\n  reference: {Describe(reference)}", bytes);
            }
        }

        return frame.Kind == ClientFrameKind.Invalid ? frame.ErrorMessage! : frame.Kind.ToString();
    }

    public void Dispose() => _engine?.Dispose();

    private static string Describe(ClientFrame f)
        => $"{f.Kind}|{f.ErrorCode}|{f.ErrorMessage}|{f.CorrelationId}|{f.To}|{f.ToEpoch}|{f.Description}|{f.Candidates}|{f.IsOffer}|{f.Version}|{f.Member}|"
            + string.Join(";", f.Signals ?? []);

    /// <summary>
    /// An accepted signal's ranges are the object and the array they claim, and it is an offer exactly when its description's
    /// last <c>type</c> (read by the reference parser, escapes decoded) is <c>offer</c>: the flag decides whether the relay
    /// carries the receiver's side of the link.
    /// </summary>
    private static void CheckSignal(byte[] bytes, Range description, Range candidates, bool isOffer, string what)
    {
        if (!(InRange(description, bytes.Length, JsonValueKind.Object, bytes) && InRange(candidates, bytes.Length, JsonValueKind.Array, bytes)))
        {
            throw new FuzzFailure($"ClientFrame.Parse returned a range of {what} that is not the object or array it claims", bytes);
        }

        var expected = false;
        if (!description.Equals(default(Range)))
        {
            var (offset, count) = description.GetOffsetAndLength(bytes.Length);
            using var document = JsonDocument.Parse(bytes.AsMemory(offset, count));
            foreach (var property in document.RootElement.EnumerateObject())
            {
                if (property.NameEquals("type"))
                {
                    expected = property.Value.ValueKind == JsonValueKind.String && property.Value.ValueEquals("offer");
                }
            }
        }

        if (isOffer != expected)
        {
            throw new FuzzFailure($"ClientFrame.Parse says {what} is {(isOffer ? "" : "not ")}an offer; its description's last type says otherwise", bytes);
        }
    }

    private static bool InRange(Range range, int length, JsonValueKind kind, byte[] bytes)
    {
        if (range.Equals(default(Range)))
        {
            return true;
        }

        var (offset, count) = range.GetOffsetAndLength(length);
        try
        {
            using var document = JsonDocument.Parse(bytes.AsMemory(offset, count));
            return document.RootElement.ValueKind == kind;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    private static bool IsJson(ReadOnlyMemory<byte> bytes)
    {
        try
        {
            using var document = JsonDocument.Parse(bytes);
            return true;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    /// <summary>One engine (DI container, fake clock, in-memory store) shared by <see cref="EngineFuzzer.CasesPerEngine"/> cases, each in its own room.</summary>
    private sealed class Engine : IDisposable
    {
        private readonly ServiceProvider _services;
        private readonly ISignallingEngine _engine;
        private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 27, 12, 0, 0, TimeSpan.Zero));
        private readonly FuzzPush _push = new();
        private readonly ErrorLog _log = new();
        private readonly (string Member, long Epoch) _otherRoomAdmin;
        private int _users;
        private int _connections;

        public Engine()
        {
            var services = new ServiceCollection();
            services.AddSingleton<TimeProvider>(_time);
            services.AddSingleton<IConnectionPush>(_push);
            services.AddLogging(b => b.ClearProviders().AddProvider(_log).SetMinimumLevel(LogLevel.Warning));
            services.AddTalkiSignallingCore(o =>
            {
                // Generous limits: the fuzzer checks the frames, not the flood protection (every case is a few dozen frames).
                o.Limits.MessagesPerSecond = 10_000;
                o.Limits.MessageBurst = 100_000;
                o.Limits.MessageBytesPerSecond = 64 * 1024 * 1024;
                o.Limits.MessageBytesBurst = 64 * 1024 * 1024;
            });
            _services = services.BuildServiceProvider();
            _engine = _services.GetRequiredService<ISignallingEngine>();
            var other = NewRoom();
            _otherRoomAdmin = (other.IdOf(Who.Admin), other.EpochOf(Who.Admin));
        }

        public FuzzRoom NewRoom()
        {
            var admin = Wait(_engine.CreateRoomAsync(User()));
            var room = new FuzzRoom(admin.Value.Room);
            room.Add(Who.Admin, admin.Value.Member, Connect(admin.Value, hello: true));
            foreach (var who in (Who[])[Who.ControlB, Who.ControlC, Who.Peer, Who.Gone, Who.Small, Who.Pending, Who.NoHello, Who.Knocker])
            {
                var grant = Wait(_engine.IssueJoinTicketAsync(User(), room.Room)).Value;
                var connected = who == Who.Knocker ? default : Connect(grant, hello: who != Who.NoHello);
                room.Add(who, grant.Member, connected);
                if (who is not (Who.Pending or Who.NoHello or Who.Knocker))
                {
                    Send(room.ConnectionOf(Sender.Admin), Encoding.UTF8.GetBytes($$"""{"type":"admit","member":"{{grant.Member}}"}"""), null);
                }
            }

            room.OtherRoom = _otherRoomAdmin;
            _push.Gone.TryAdd(room.ConnectionOfMember(Who.Gone), true);
            _push.Small.TryAdd(room.ConnectionOfMember(Who.Small), true);
            _push.Clear();
            return room;
        }

        /// <summary>Sends one frame and checks every push it caused.</summary>
        /// <returns>The types (and error codes) pushed, in order.</returns>
        public string Send(string connection, byte[] frame, FuzzStats? stats)
        {
            try
            {
                var pending = _engine.HandleMessageAsync(connection, frame);
                if (!pending.IsCompletedSuccessfully)
                {
                    pending.AsTask().GetAwaiter().GetResult();
                }
            }
            catch (Exception exception)
            {
                if (stats is not null)
                {
                    stats.Exceptions++;
                }

                throw new FuzzFailure($"HandleMessageAsync threw {exception.GetType().Name}: {exception.Message}", frame, exception);
            }

            var hasErrorLog = _log.Errors.TryDequeue(out var logged);
            _log.Errors.Clear();
            if (hasErrorLog && stats is not null)
            {
                stats.ErrorLogs++;
            }

            var answered = new StringBuilder();
            foreach (var (to, json) in _push.Drain())
            {
                answered.Append(to == connection ? "" : ">").Append(CheckPush(to, json, frame, stats)).Append(' ');
            }

            if (hasErrorLog)
            {
                throw new FuzzFailure($"The engine logged at {logged.Level}: {logged.Message}", frame, logged.Exception);
            }

            return answered.ToString();
        }

        /// <summary>The room's control members still relay a valid signal each way, and a connected admin still answers ping.</summary>
        public void CheckConsistency(FuzzRoom room, FuzzStats stats)
        {
            stats.ConsistencyChecks++;
            foreach (var (from, to) in (ReadOnlySpan<(Who, Who)>)[(Who.ControlB, Who.ControlC), (Who.ControlC, Who.ControlB)])
            {
                var signal = $$$"""{"type":"signal","to":"{{{room.IdOf(to)}}}","toEpoch":{{{room.EpochOf(to)}}},"description":{"type":"offer","sdp":"v=0\r\n"},"id":"check"}""";
                var before = _push.Count;
                Send(room.ConnectionOfMember(from), Encoding.UTF8.GetBytes(signal), null);
                var pushes = _push.Since(before);
                var expected = $$$"""{"type":"signal","from":"{{{room.IdOf(from)}}}","fromEpoch":{{{room.EpochOf(from)}}},"description":{"type":"offer","sdp":"v=0\r\n"}}""";
                if (pushes.Count != 1 || pushes[0].To != room.ConnectionOfMember(to) || pushes[0].Json != expected)
                {
                    throw new FuzzFailure($"After the case, {from} -> {to} did not relay exactly one signal: {string.Join(" | ", pushes.Select(p => p.To + " " + p.Json))}");
                }
            }

            if (!_push.WasClosed(room.ConnectionOf(Sender.Admin)))
            {
                var before = _push.Count;
                Send(room.ConnectionOf(Sender.Admin), """{"type":"ping","id":"alive"}"""u8.ToArray(), null);
                var pushes = _push.Since(before);
                if (pushes.Count != 1 || pushes[0].Json != """{"type":"pong","id":"alive"}""")
                {
                    throw new FuzzFailure($"After the case, the admin did not answer ping: {string.Join(" | ", pushes.Select(p => p.To + " " + p.Json))}");
                }
            }
        }

        /// <summary>Disconnects the room's connections (the engine keeps no per-connection state for them afterwards).</summary>
        public void Release(FuzzRoom room)
        {
            foreach (var connection in room.Connections)
            {
                Wait(_engine.DisconnectAsync(connection));
            }

            if (_log.Errors.TryDequeue(out var logged))
            {
                throw new FuzzFailure($"The engine logged at {logged.Level} on disconnect: {logged.Message}", null, logged.Exception);
            }

            _push.Clear();
        }

        public void Dispose() => _services.Dispose();

        private static T Wait<T>(ValueTask<T> task) => task.IsCompletedSuccessfully ? task.Result : task.AsTask().GetAwaiter().GetResult();

        private static void Wait(ValueTask task)
        {
            if (!task.IsCompletedSuccessfully)
            {
                task.AsTask().GetAwaiter().GetResult();
            }
        }

        private static string CheckPush(string to, string json, byte[] frame, FuzzStats? stats)
        {
            string? type = null;
            string? code = null;
            try
            {
                using var document = JsonDocument.Parse(json);
                var root = document.RootElement;
                type = root.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
                code = type == "error" && root.TryGetProperty("code", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString() : null;
            }
            catch (JsonException exception)
            {
                throw new FuzzFailure($"The engine pushed invalid JSON to {to}: {json}", frame, exception);
            }

            if (type is null)
            {
                throw new FuzzFailure($"The engine pushed a message without a type to {to}: {json}", frame);
            }

            if (type == "signal" && stats is not null)
            {
                stats.Relayed++;
            }

            if (type != "error")
            {
                return type;
            }

            if (code == "internal")
            {
                if (stats is not null)
                {
                    stats.InternalAnswers++;
                }

                throw new FuzzFailure($"The engine answered internal: {json}", frame);
            }

            if (code is null || !ExpectedCodes.Contains(code))
            {
                throw new FuzzFailure($"The engine answered an unexpected error code: {json}", frame);
            }

            stats?.Count(stats.ErrorCodes, code);
            return code;
        }

        private CallerIdentity User()
        {
            var n = Interlocked.Increment(ref _users);
            return new CallerIdentity("fuzz-user-" + n.ToString(CultureInfo.InvariantCulture), "Fuzz " + n.ToString(CultureInfo.InvariantCulture), IsVerified: n % 2 == 0);
        }

        private (string Connection, long Epoch) Connect(TicketGrant grant, bool hello)
        {
            var connection = "fuzz-conn-" + Interlocked.Increment(ref _connections).ToString(CultureInfo.InvariantCulture);
            _time.Advance(TimeSpan.FromMilliseconds(1));
            var result = Wait(_engine.ConnectAsync(connection, grant.Ticket.Value));
            if (!result.IsSuccess)
            {
                throw new FuzzFailure($"Setting up the room failed: {result}");
            }

            if (hello)
            {
                Send(connection, """{"type":"hello","version":1}"""u8.ToArray(), null);
            }

            return (connection, result.Value.Epoch);
        }
    }

    /// <summary>One case's room: member ids, epochs and connections.</summary>
    private sealed class FuzzRoom(RoomId room) : IFuzzRoom
    {
        private readonly Dictionary<Who, (string Member, string? Connection, long Epoch)> _members = [];

        public RoomId Room { get; } = room;

        public (string Member, long Epoch) OtherRoom { get; set; }

        public IEnumerable<string> Connections => _members.Values.Where(m => m.Connection is not null).Select(m => m.Connection!);

        public void Add(Who who, MemberId member, (string Connection, long Epoch) connected)
            => _members[who] = (member.Value, connected.Connection, connected.Epoch);

        public string IdOf(Who who) => who == Who.OtherRoom ? OtherRoom.Member : _members[who].Member;

        public long EpochOf(Who who) => who == Who.OtherRoom ? OtherRoom.Epoch : _members[who].Epoch;

        public string ConnectionOfMember(Who who) => _members[who].Connection!;

        public string ConnectionOf(Sender sender) => sender switch
        {
            Sender.Admin => ConnectionOfMember(Who.Admin),
            Sender.Peer => ConnectionOfMember(Who.Peer),
            Sender.Pending => ConnectionOfMember(Who.Pending),
            Sender.NoHello => ConnectionOfMember(Who.NoHello),
            _ => "fuzz-stranger",
        };
    }

    /// <summary>A gateway that records every push; <c>Gone</c> connections answer Gone, <c>Small</c> ones refuse pushes over 1 KB.</summary>
    private sealed class FuzzPush : IConnectionPush, IPolicyClosingPush
    {
        private readonly List<(string To, string Json)> _pushes = [];
        private readonly HashSet<string> _closed = new(StringComparer.Ordinal);
        private int _checked;

        public ConcurrentDictionary<string, bool> Gone { get; } = new(StringComparer.Ordinal);

        public ConcurrentDictionary<string, bool> Small { get; } = new(StringComparer.Ordinal);

        public int Count => _pushes.Count;

        public ValueTask<PushOutcome> PushAsync(string connectionId, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
        {
            if (Gone.ContainsKey(connectionId))
            {
                return new(PushOutcome.Gone);
            }

            if (payload.Length > 1024 && Small.ContainsKey(connectionId))
            {
                return new(PushOutcome.PayloadTooLarge);
            }

            _pushes.Add((connectionId, Encoding.UTF8.GetString(payload.Span)));
            return new(PushOutcome.Delivered);
        }

        public ValueTask CloseAsync(string connectionId, CancellationToken cancellationToken = default)
        {
            _closed.Add(connectionId);
            return ValueTask.CompletedTask;
        }

        public ValueTask ClosePolicyViolationAsync(string connectionId, string reason, CancellationToken cancellationToken = default)
            => CloseAsync(connectionId, cancellationToken);

        public bool WasClosed(string connectionId) => _closed.Contains(connectionId);

        public List<(string To, string Json)> Since(int index) => _pushes[index..];

        /// <summary>Returns the pushes not yet checked.</summary>
        public List<(string To, string Json)> Drain()
        {
            var fresh = _pushes[_checked..];
            _checked = _pushes.Count;
            return fresh;
        }

        public void Clear()
        {
            _pushes.Clear();
            _closed.Clear();
            _checked = 0;
        }
    }

    /// <summary>Records every entry at Error or above.</summary>
    private sealed class ErrorLog : ILoggerProvider, ILogger
    {
        public ConcurrentQueue<(LogLevel Level, string Message, Exception? Exception)> Errors { get; } = new();

        public ILogger CreateLogger(string categoryName) => this;

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (logLevel >= LogLevel.Error)
            {
                Errors.Enqueue((logLevel, $"{eventId.Name}: {formatter(state, exception)} {exception}", exception));
            }
        }

        public void Dispose()
        {
        }
    }
}
