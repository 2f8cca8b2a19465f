using System.Buffers;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;
using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.DependencyInjection;
using Talki.Signalling.Ports;
using Talki.Signalling.Server;
using Talki.Signalling.Server.Engine;

namespace Talki.Signalling.Benchmarks;

/// <summary>
/// The relay of the 1 KB-SDP offer (<see cref="RelayBenchmarks.RelaySignal"/>) taken apart, step by step
/// in the order <c>SignallingEngine.HandleMessageAsync</c> and <c>RelayAsync</c> run them, on the same
/// engine, store and payload. The steps do not add up exactly (each is measured alone, with warm caches),
/// but they show where the time goes.
/// </summary>
[MemoryDiagnoser(displayGenColumns: false)]
[Config(typeof(RelayBenchmarkConfig))]
public class RelayBreakdownBenchmarks
{
    private readonly RelayBenchmarks _relay = new();
    private IRoomStore _store = null!;
    private SignallingMetrics _metrics = null!;
    private ReadOnlyMemory<byte> _offer;
    private ReadOnlyMemory<byte> _offerWithoutEscapes;
    private string _sender = string.Empty;
    private ClientFrame _frame;
    private MemberRecord _self = null!;
    private int _sdpStart;

    [GlobalSetup]
    public void Setup()
    {
        _relay.Setup();
        _store = _relay.Services.GetRequiredService<IRoomStore>();
        _metrics = _relay.Services.GetRequiredService<SignallingMetrics>();
        _offer = _relay.Offer;
        _sender = "conn-a";
        _frame = ClientFrame.Parse(_offer.Span);
        if (_frame.Kind != ClientFrameKind.Signal)
        {
            throw new InvalidOperationException($"The offer did not parse as a signal: {_frame.ErrorMessage}");
        }

        var connection = Sync(_store.GetConnectionAsync(_sender))!;
        _self = Sync(_store.GetMemberAsync(connection.Room, connection.Member))!;

        // The same frame with every "\r\n" escape in the SDP replaced by two spaces: same length, no escapes.
        _offerWithoutEscapes = Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(_offer.Span).Replace("\\r\\n", "    ", StringComparison.Ordinal));
        if (_offerWithoutEscapes.Length != _offer.Length)
        {
            throw new InvalidOperationException("The unescaped variant must keep the frame's length.");
        }

        var push = _relay.Push;
        var expected = push.Pushes + 1;
        _relay.Relay(_offerWithoutEscapes);
        if (push.Pushes != expected || push.Misdirected != 0)
        {
            throw new InvalidOperationException("The unescaped variant was not relayed to Bob.");
        }

        // The SDP string token inside the offer: from the quote after "sdp": to the closing quote.
        _sdpStart = _offer.Span.IndexOf("\"sdp\":"u8) + 6;
        var sdpToken = JsonStringScanner.Scan(_offer.Span[_sdpStart..]);
        if (sdpToken < 1000 || _offer.Span[_sdpStart + sdpToken - 1] != (byte)'"' || _offer.Span[_sdpStart + sdpToken] != (byte)'}')
        {
            throw new InvalidOperationException($"The prototype scanner did not find the SDP string ({sdpToken}).");
        }
    }

    [GlobalCleanup]
    public void Cleanup() => _relay.Cleanup();

    /// <summary>The whole relay, for reference (same as <see cref="RelayBenchmarks.RelaySignal"/>).</summary>
    [Benchmark(Baseline = true)]
    public void WholeRelay() => _relay.RelaySignal();

    /// <summary>Step 1 of <c>ClientFrame.Parse</c>: <c>Utf8.IsValid</c> over the frame.</summary>
    [Benchmark]
    public bool Utf8Validation() => Utf8.IsValid(_offer.Span);

    /// <summary>The whole relay of the same-length frame whose SDP has no escapes: what the relay costs when its strings are scanned at vector speed.</summary>
    [Benchmark]
    public void WholeRelayWithoutEscapes() => _relay.Relay(_offerWithoutEscapes);

    /// <summary>One plain <see cref="Utf8JsonReader"/> pass over every token of the frame (what the reader costs by itself).</summary>
    [Benchmark]
    public int JsonReaderPass() => ReadAll(_offer.Span);

    /// <summary>The same pass over the same-length frame whose SDP has no escapes.</summary>
    [Benchmark]
    public int JsonReaderPassWithoutEscapes() => ReadAll(_offerWithoutEscapes.Span);

    /// <summary><c>ClientFrame.Parse</c>: UTF-8 check, reader pass (skipping the description), then <c>ValidateDescription</c>'s second pass.</summary>
    [Benchmark]
    public int Parse() => (int)ClientFrame.Parse(_offer.Span).Kind;

    /// <summary><c>ClientFrame.Parse</c> of the same-length frame whose SDP has no escapes.</summary>
    [Benchmark]
    public int ParseWithoutEscapes() => (int)ClientFrame.Parse(_offerWithoutEscapes.Span).Kind;

    /// <summary>The prototype <see cref="JsonStringScanner"/> validating the (escaped) SDP string token once.</summary>
    /// <summary>The escape pre-pass of <see cref="ClientFrame.Parse"/> alone (copy and blank the SDP's escapes).</summary>
    [Benchmark]
    public int EscapePrePass()
    {
        var copy = JsonEscapes.BlankLongEscapedStrings(_offer.Span);
        if (copy is null)
        {
            return 0;
        }

        System.Buffers.ArrayPool<byte>.Shared.Return(copy);
        return 1;
    }

    [Benchmark]
    public int ProposedSdpScan() => JsonStringScanner.Scan(_offer.Span[_sdpStart..]);

    /// <summary>The four in-memory store reads of the relay: connection, sender, room, target.</summary>
    [Benchmark]
    public long StoreReads()
    {
        var connection = Sync(_store.GetConnectionAsync(_sender))!;
        var self = Sync(_store.GetMemberAsync(connection.Room, connection.Member))!;
        var room = Sync(_store.GetRoomAsync(connection.Room))!;
        var target = Sync(_store.GetMemberAsync(self.Room, _frame.To))!;
        return room.CreatedAt.Ticks + target.Epoch;
    }

    /// <summary><c>RelayFrame.Write</c> into a pooled buffer and its return to the pool.</summary>
    [Benchmark]
    public int WriteRelayFrame()
    {
        var span = _offer.Span;
        var buffer = RelayFrame.Write(_self.Id, _self.Epoch, span[_frame.Description], span[_frame.Candidates], out var length);
        ArrayPool<byte>.Shared.Return(buffer);
        return length;
    }

    /// <summary><c>SignallingMetrics.SignalRelayed</c> (counter and histogram, no listener) with the timestamp the engine reads before it.</summary>
    [Benchmark]
    public void Metrics()
    {
        var started = TimeProvider.System.GetTimestamp();
        _metrics.SignalRelayed(TimeProvider.System, started); // as the engine does: the clock again only while a listener records the duration
    }

    /// <summary>The in-memory store completes synchronously; the fallback only keeps the analyzer honest.</summary>
    private static T Sync<T>(ValueTask<T> pending) => pending.IsCompletedSuccessfully ? pending.Result : pending.AsTask().GetAwaiter().GetResult();

    private static int ReadAll(ReadOnlySpan<byte> json)
    {
        var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 16 });
        var tokens = 0;
        while (reader.Read())
        {
            tokens++;
        }

        return tokens;
    }
}
