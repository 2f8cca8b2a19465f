using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Server.Tests.Engine;

public sealed class MetricsTests
{
    [Fact]
    public async Task Meter_ReportsRoomsTicketsConnectionsSignalsErrorsAndLatency()
    {
        using var h = new EngineHarness();
        var longs = new ConcurrentDictionary<string, long>();
        var doubles = new ConcurrentBag<(string Name, double Value)>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            // Only this harness's meter: the factory scopes meters to its service provider.
            if (instrument.Meter.Name == TalkiDiagnostics.MeterName && ReferenceEquals(instrument.Meter.Scope, h.Services.GetService(typeof(IMeterFactory))))
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            var key = instrument.Name;
            foreach (var tag in tags)
            {
                key += $"|{tag.Key}={tag.Value}";
            }

            longs.AddOrUpdate(key, value, (_, old) => old + value);
        });
        listener.SetMeasurementEventCallback<double>((instrument, value, _, _) => doubles.Add((instrument.Name, value)));
        listener.Start();

        var (admin, adminConnection, members) = await h.RoomWithMembersAsync("bob");
        await h.SendAsync(adminConnection, $$$"""{"type":"signal","to":"{{{members[0].Grant.Member}}}","candidates":[{"candidate":"x"}]}""");
        await h.SendAsync(adminConnection, """{"type":"teleport"}""");
        _ = await h.Engine.ConnectAsync("forged", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
        await h.Engine.DisconnectAsync(members[0].Connection);

        Assert.Equal(1, longs["talki.signalling.rooms.created"]);
        Assert.Equal(2, longs["talki.signalling.tickets.issued"]);
        Assert.Equal(1, longs["talki.signalling.tickets.refused|error.code=ticket_invalid"]);
        Assert.Equal(2, longs["talki.signalling.connections.opened"]);
        Assert.Equal(1, longs["talki.signalling.connections.active"]); // +2 opened, -1 disconnected
        Assert.Equal(1, longs["talki.signalling.signals.relayed"]);
        Assert.Equal(1, longs["talki.signalling.errors|error.code=unknown_type"]);
        var latency = Assert.Single(doubles, d => d.Name == "talki.signalling.relay.duration");
        Assert.True(latency.Value >= 0);
    }

    [Fact]
    public async Task ActivitySource_EmitsRelaySpanWithCorrelationId()
    {
        using var h = new EngineHarness();
        var (_, adminConnection, members) = await h.RoomWithMembersAsync("bob");
        var spans = new ConcurrentBag<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == TalkiDiagnostics.ActivitySourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = spans.Add,
        };
        ActivitySource.AddActivityListener(listener);

        await h.SendAsync(adminConnection, $$$"""{"type":"signal","id":"corr-42","to":"{{{members[0].Grant.Member}}}","candidates":[{"candidate":"x"}]}""");

        var span = Assert.Single(spans, s => s.OperationName == "talki.signal.relay" && (string?)s.GetTagItem(TalkiDiagnostics.CorrelationIdTag) == "corr-42");
        Assert.Equal(members[0].Grant.Member.Value, span.GetTagItem("talki.member.to"));
        Assert.DoesNotContain(span.Tags, t => t.Value is { } v && v.Contains(adminConnection, StringComparison.Ordinal));
    }
}
