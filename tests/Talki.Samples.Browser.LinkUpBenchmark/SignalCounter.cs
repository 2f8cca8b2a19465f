using System.Diagnostics;
using System.Text.Json;
using Microsoft.Playwright;
using Talki.Samples.Browser.EndToEndTests.Harness;

namespace Talki.Samples.Browser.LinkUpBenchmark;

/// <summary>
/// Counts the signals each page sends over its signalling WebSocket (a <c>signal</c>, or each entry of a <c>signals</c>) (Playwright's <c>framesent</c> events:
/// test-side, the app is not changed), from <see cref="Start"/> on: per sender and addressee, with or without a
/// description, and how many candidates each carries.
/// </summary>
internal sealed class SignalCounter
{
    private readonly List<Sent> _sent = [];
    private readonly List<(TalkiUser User, string What, double AtMs)> _received = [];
    private readonly Stopwatch _clock = new();
    private volatile bool _counting;

    /// <summary>Listens to every WebSocket <paramref name="user"/>'s page opens from now on.</summary>
    public void Watch(TalkiUser user) =>
        user.Page.WebSocket += (_, socket) =>
        {
            socket.FrameSent += (_, frame) => Record(user, frame);
            socket.FrameReceived += (_, frame) => RecordReceived(user, frame);
        };

    /// <summary>The messages <paramref name="user"/> received since <see cref="Start"/>: their type (a relayed signal's description type or candidate count) and ms since start.</summary>
    public IReadOnlyList<string> ReceivedBy(TalkiUser user)
    {
        lock (_received)
        {
            return [.. _received.Where(r => r.User == user).Select(r => $"{r.What}@{r.AtMs:0}")];
        }
    }

    private void RecordReceived(TalkiUser user, IWebSocketFrame frame)
    {
        if (!_counting || frame.Text is not { Length: > 0 } text)
        {
            return;
        }

        var at = _clock.Elapsed.TotalMilliseconds;
        string what;
        try
        {
            using var json = JsonDocument.Parse(text);
            var root = json.RootElement;
            what = root.TryGetProperty("type", out var type) ? type.GetString() ?? "?" : "?";
            if (what == "signal")
            {
                var description = DescriptionType(root) ?? "-";
                var candidates = root.TryGetProperty("candidates", out var c) && c.ValueKind == JsonValueKind.Array ? c.GetArrayLength() : 0;
                var from = root.TryGetProperty("from", out var f) ? f.GetString() : null;
                what = $"signal:{description}+{candidates}c" + (from is null ? string.Empty : $" from {from}");
            }
            else if (what == "error" && root.TryGetProperty("code", out var code))
            {
                what = $"error:{code}";
            }
        }
        catch (JsonException)
        {
            what = "(not json)";
        }

        lock (_received)
        {
            _received.Add((user, what, at));
        }
    }

    /// <summary>Starts counting afresh: what was counted before is forgotten (the set-up's signals, before the timed click).</summary>
    public void Start()
    {
        lock (_sent)
        {
            _sent.Clear();
        }

        lock (_received)
        {
            _received.Clear();
        }

        _clock.Restart();
        _counting = true;
    }

    public void Stop() => _counting = false;

    /// <summary>The signals sent from <paramref name="from"/> to the member <paramref name="toId"/> since <see cref="Start"/>.</summary>
    public IReadOnlyList<Sent> Between(TalkiUser from, string toId)
    {
        lock (_sent)
        {
            return [.. _sent.Where(s => s.From == from && s.To == toId)];
        }
    }

    private void Record(TalkiUser user, IWebSocketFrame frame)
    {
        if (!_counting || frame.Text is not { Length: > 0 } text || !text.Contains("\"signal", StringComparison.Ordinal))
        {
            return;
        }

        try
        {
            using var json = JsonDocument.Parse(text);
            var root = json.RootElement;
            var kind = root.TryGetProperty("type", out var type) ? type.GetString() : null;
            if (kind == "signal")
            {
                Add(user, root, batch: 0);
            }
            else if (kind == "signals" && root.TryGetProperty("signals", out var entries) && entries.ValueKind == JsonValueKind.Array)
            {
                // Protocol 2: a newcomer's first offers in one message; each entry is one link side's signal.
                var size = entries.GetArrayLength();
                foreach (var entry in entries.EnumerateArray())
                {
                    Add(user, entry, size);
                }
            }
        }
        catch (JsonException)
        {
            // Not ours to judge.
        }
    }

    private void Add(TalkiUser user, JsonElement signal, int batch)
    {
        var to = signal.TryGetProperty("to", out var t) ? t.GetString() ?? string.Empty : string.Empty;
        var description = DescriptionType(signal);
        var candidates = signal.TryGetProperty("candidates", out var c) && c.ValueKind == JsonValueKind.Array ? c.EnumerateArray().ToList() : [];
        var ends = candidates.Count(x => x.TryGetProperty("candidate", out var line) && line.GetString() is { Length: 0 });
        lock (_sent)
        {
            _sent.Add(new Sent(user, to, description, candidates.Count - ends, ends, _clock.Elapsed.TotalMilliseconds, batch));
        }
    }

    /// <summary>The type of the description a signal carries (<c>offer</c>, <c>answer</c>…), or null.</summary>
    private static string? DescriptionType(JsonElement signal) =>
        signal.TryGetProperty("description", out var d) && d.ValueKind == JsonValueKind.Object && d.TryGetProperty("type", out var type) ? type.GetString() : null;

    /// <summary>
    /// One signal: its sender, addressee, description type (or null), candidates, end-of-candidates markers, ms since start,
    /// and the size of the <c>signals</c> message it came in (0 when it came alone).
    /// </summary>
    internal sealed record Sent(TalkiUser From, string To, string? Description, int Candidates, int EndMarkers, double AtMs, int Batch)
    {
        public override string ToString() =>
            $"{(Description ?? "-")}+{Candidates}c{(EndMarkers > 0 ? "+end" : string.Empty)}{(Batch > 0 ? $" (in signals of {Batch})" : string.Empty)}@{AtMs:0}";
    }
}
