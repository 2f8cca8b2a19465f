using System.Text;
using System.Text.Json;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Talki.Signalling.Ports;
using Talki.Signalling.Server;

namespace Talki.Signalling.Benchmarks;

/// <summary>
/// The relay path in process with the in-memory store: one inbound <c>signal</c> frame, from
/// <see cref="ISignallingEngine.HandleMessageAsync"/> (UTF-8 validation, parse, connection/member/room
/// look-ups, epoch check) to the push of the rewritten frame to the addressed member. Each relay is
/// compared with a copy-only baseline of the same bytes: the floor, since a relay must move the bytes at
/// least once.
/// </summary>
/// <remarks>
/// Target (issue): a 1 KB SDP offer relays in at most 2 µs median and allocates at most 1.5 KB on the
/// 2-core CI machine.
/// </remarks>
[MemoryDiagnoser(displayGenColumns: false)]
[Config(typeof(RelayBenchmarkConfig))]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
[CategoriesColumn]
public class RelayBenchmarks
{
    private const string SenderConnection = "conn-a";
    private const string TargetConnection = "conn-b";

    private ServiceProvider? _services;
    private ISignallingEngine _engine = null!;
    private CountingPush _push = null!;
    private ConnectionGrant _grant = null!;
    private ReadOnlyMemory<byte> _offer;
    private ReadOnlyMemory<byte> _candidates;
    private byte[] _copyBuffer = [];

    /// <summary>Gets the services the engine was built from (after <see cref="Setup"/>).</summary>
    internal IServiceProvider Services => _services ?? throw new InvalidOperationException("Call Setup first.");

    /// <summary>Gets the 1 KB-SDP signal frame (after <see cref="Setup"/>).</summary>
    internal ReadOnlyMemory<byte> Offer => _offer;

    /// <summary>Gets the push port (after <see cref="Setup"/>).</summary>
    internal CountingPush Push => _push;

    [GlobalSetup]
    public void Setup()
    {
        // The engine is built exactly as an application builds it; only the push port is the benchmark's.
        // The join window is the longest allowed so that no run, however long, reaches the room's seal
        // (a sealed room answers room_sealed instead of relaying).
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddTalkiSignalling(o =>
        {
            o.SealRoomsOnTimer = false;
            o.JoinWindow = TimeSpan.FromHours(24);
            o.Limits.MessagesPerSecond = 10_000; // the most the options allow
            o.Limits.MessageBurst = 100_000;
            o.Limits.MessageBytesPerSecond = 64 * 1024 * 1024; // the most the options allow, in bytes too
            o.Limits.MessageBytesBurst = 64 * 1024 * 1024;
        });

        // One connection relays millions of frames here, far above any client's rate: the per-connection token bucket
        // (which reads TimeProvider.GetTimestamp) would refuse them. Its clock runs a millisecond ahead per reading, so
        // the bucket refills faster than the benchmark drains it; wall-clock time (UtcNow, the seal) is the system's.
        services.AddSingleton<TimeProvider>(new FastTimestamps());
        _push = new CountingPush { Capture = true };
        services.RemoveAll<IConnectionPush>();
        services.AddSingleton<IConnectionPush>(_push);
        _services = services.BuildServiceProvider();
        _engine = _services.GetRequiredService<ISignallingEngine>();

        // Alice creates the room (admin); Bob asks to join; both connect and say hello; Alice admits Bob.
        var alice = Ok(_engine.CreateRoomAsync(new CallerIdentity("u1", "Alice", false)));
        var bob = Ok(_engine.IssueJoinTicketAsync(new CallerIdentity("u2", "Bob", false), alice.Room));
        var aliceConnection = Ok(_engine.ConnectAsync(SenderConnection, alice.Ticket.Value));
        Handle(SenderConnection, """{"type":"hello","id":"h1","version":1}""");
        var bobConnection = Ok(_engine.ConnectAsync(TargetConnection, bob.Ticket.Value));
        Handle(TargetConnection, """{"type":"hello","id":"h2","version":1}""");
        Handle(SenderConnection, $$"""{"type":"admit","id":"a1","member":"{{bob.Member.Value}}"}""");

        // Both must have been told to connect to each other; Alice addresses Bob's epoch from her plan.
        var bobEpoch = PeerEpochIn(Single(SenderConnection, "connect_to_peer"), bob.Member);
        _ = PeerEpochIn(Single(TargetConnection, "connect_to_peer"), alice.Member);
        if (bobEpoch != bobConnection.Epoch)
        {
            throw new InvalidOperationException($"connect_to_peer gave Bob's epoch as {bobEpoch}, his connection has {bobConnection.Epoch}.");
        }

        _offer = Payloads.Offer(bob.Member, bobEpoch);
        _candidates = Payloads.Candidates(bob.Member, bobEpoch);
        _copyBuffer = new byte[Math.Max(_offer.Length, _candidates.Length)];
        var sdpBytes = Encoding.UTF8.GetByteCount(Payloads.Sdp);
        if (sdpBytes is < 1000 or > 1100)
        {
            throw new InvalidOperationException($"The SDP is {sdpBytes} bytes; the benchmark is specified for about 1 KB.");
        }

        // One warm-up relay of each: exactly one push, to Bob, carrying Alice's description / candidates.
        VerifyRelay(_offer, alice, aliceConnection.Epoch, relayed => relayed.GetProperty("description").GetProperty("sdp").GetString() == Payloads.Sdp);
        VerifyRelay(_candidates, alice, aliceConnection.Epoch, relayed => relayed.GetProperty("candidates")[0].GetProperty("candidate").GetString()!.StartsWith("candidate:842163049 ", StringComparison.Ordinal));
        _grant = aliceConnection;
        VerifyRelay(_offer, alice, aliceConnection.Epoch, relayed => relayed.GetProperty("description").GetProperty("sdp").GetString() == Payloads.Sdp, _grant);

        _push.Capture = false;
        _push.Reset();
        _push.ExpectedTarget = TargetConnection;
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        var misdirected = _push.Misdirected;
        var closes = _push.Closes;
        _services?.Dispose();
        if (misdirected != 0 || closes != 0)
        {
            // Anything but a push to Bob means the engine answered with an error (or sealed the room):
            // the numbers measured some other path than the relay.
            throw new InvalidOperationException($"The engine did not only relay: {misdirected} push(es) went elsewhere than Bob and {closes} connection(s) were closed.");
        }
    }

    /// <summary>The floor: one copy of the 1 KB-SDP signal frame into a preallocated buffer.</summary>
    [BenchmarkCategory("offer (1 KB SDP)")]
    [Benchmark(Baseline = true)]
    public void CopyOnly() => _offer.Span.CopyTo(_copyBuffer);

    /// <summary>One signal carrying a 1 KB SDP offer, from parse to push.</summary>
    [BenchmarkCategory("offer (1 KB SDP)")]
    [Benchmark]
    public void RelaySignal() => Complete(_engine.HandleMessageAsync(SenderConnection, _offer));

    /// <summary>
    /// The same signal as the gateways hand it over: with the connection's grant (<see cref="ISignallingEngine.HandleAuthorizedMessageAsync"/>,
    /// what the self-hosted gateway and the API Gateway callbacks call), which reads the sender and the receiver in one store
    /// request instead of the binding, the pair and the room.
    /// </summary>
    [BenchmarkCategory("offer (1 KB SDP)")]
    [Benchmark]
    public void RelaySignalWithGrant() => Complete(_engine.HandleAuthorizedMessageAsync(SenderConnection, _grant, _offer));

    /// <summary>The floor for the candidate frame.</summary>
    [BenchmarkCategory("one ICE candidate")]
    [Benchmark(Baseline = true)]
    public void CopyOnlyCandidate() => _candidates.Span.CopyTo(_copyBuffer);

    /// <summary>One signal carrying one ICE candidate, from parse to push.</summary>
    [BenchmarkCategory("one ICE candidate")]
    [Benchmark]
    public void RelayCandidates() => Complete(_engine.HandleMessageAsync(SenderConnection, _candidates));

    /// <summary>Relays another frame from Alice (for <see cref="RelayBreakdownBenchmarks"/>).</summary>
    internal void Relay(ReadOnlyMemory<byte> payload) => Complete(_engine.HandleMessageAsync(SenderConnection, payload));

    /// <summary>Waits for a ValueTask; over the in-memory store and this push port the relay completes synchronously.</summary>
    private static void Complete(ValueTask task)
    {
        if (!task.IsCompletedSuccessfully)
        {
            task.AsTask().GetAwaiter().GetResult();
        }
    }

    private static T Ok<T>(ValueTask<SignallingResult<T>> pending)
    {
        var result = pending.AsTask().GetAwaiter().GetResult();
        return result.IsSuccess ? result.Value : throw new InvalidOperationException($"Set-up failed: {result.Error.Code}: {result.Error.Message}");
    }

    private void Handle(string connectionId, string json)
        => _engine.HandleMessageAsync(connectionId, Encoding.UTF8.GetBytes(json)).AsTask().GetAwaiter().GetResult();

    private JsonElement Single(string connectionId, string type)
    {
        var matches = _push.Captured
            .Where(m => m.ConnectionId == connectionId && m.Text.StartsWith($$"""{"type":"{{type}}",""", StringComparison.Ordinal))
            .ToList();
        if (matches.Count != 1)
        {
            throw new InvalidOperationException($"Expected one '{type}' pushed to {connectionId}, got {matches.Count}. Pushed: {Describe()}");
        }

        return JsonDocument.Parse(matches[0].Text).RootElement;
    }

    private static long PeerEpochIn(JsonElement plan, MemberId peer)
    {
        if (plan.GetProperty("peer").GetProperty("id").GetString() != peer.Value)
        {
            throw new InvalidOperationException($"connect_to_peer names the wrong peer: {plan}");
        }

        return plan.GetProperty("peerEpoch").GetInt64();
    }

    private void VerifyRelay(ReadOnlyMemory<byte> payload, TicketGrant sender, long senderEpoch, Func<JsonElement, bool> carriesPayload, ConnectionGrant? grant = null)
    {
        _push.Reset();
        Complete(grant is null ? _engine.HandleMessageAsync(SenderConnection, payload) : _engine.HandleAuthorizedMessageAsync(SenderConnection, grant, payload));
        if (_push.Captured.Count != 1 || _push.Captured[0].ConnectionId != TargetConnection || !_push.Captured[0].Text.StartsWith("""{"type":"signal",""", StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"The signal was not relayed to Bob. Pushed: {Describe()}");
        }

        var relayed = JsonDocument.Parse(_push.Captured[0].Text).RootElement;
        if (relayed.GetProperty("from").GetString() != sender.Member.Value || relayed.GetProperty("fromEpoch").GetInt64() != senderEpoch || !carriesPayload(relayed))
        {
            throw new InvalidOperationException($"The relayed signal is not Alice's: {_push.Captured[0].Text}");
        }
    }

    private string Describe() => string.Join("; ", _push.Captured.Select(m => $"{m.ConnectionId} <- {m.Text}"));
}

/// <summary>Shows the median next to the mean (the issue's target is a median) and the bytes allocated per operation.</summary>
public sealed class RelayBenchmarkConfig : ManualConfig
{
    public RelayBenchmarkConfig()
    {
        AddColumn(StatisticColumn.Median);
    }
}

/// <summary>The system clock, except that every timestamp reading is a millisecond later than the previous one.</summary>
internal sealed class FastTimestamps : TimeProvider
{
    private long _offset;

    public override long GetTimestamp() => base.GetTimestamp() + Interlocked.Add(ref _offset, TimestampFrequency / 1000);
}
