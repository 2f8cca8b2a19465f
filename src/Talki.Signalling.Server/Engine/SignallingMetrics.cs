using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Talki.Signalling.Server.Engine;

/// <summary>The engine's instruments, created through <see cref="IMeterFactory"/>.</summary>
internal sealed class SignallingMetrics
{
    internal const string ErrorCodeTag = "error.code";

    private readonly Counter<long> _roomsCreated;
    private readonly Counter<long> _ticketsIssued;
    private readonly Counter<long> _ticketsRefused;
    private readonly Counter<long> _connectionsOpened;
    private readonly UpDownCounter<long> _connectionsActive;
    private readonly Counter<long> _signalsRelayed;
    private readonly Counter<long> _errors;
    private readonly Counter<long> _resumes;
    private readonly Histogram<double> _relayDuration;

    public SignallingMetrics(IMeterFactory meterFactory)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        var meter = meterFactory.Create(TalkiDiagnostics.MeterName);
        _roomsCreated = meter.CreateCounter<long>("talki.signalling.rooms.created", "{room}", "Rooms created.");
        _ticketsIssued = meter.CreateCounter<long>("talki.signalling.tickets.issued", "{ticket}", "One-time tickets issued.");
        _ticketsRefused = meter.CreateCounter<long>("talki.signalling.tickets.refused", "{ticket}", "Connections refused at ticket check, by error code.");
        _connectionsOpened = meter.CreateCounter<long>("talki.signalling.connections.opened", "{connection}", "Connections authorized.");
        _connectionsActive = meter.CreateUpDownCounter<long>("talki.signalling.connections.active", "{connection}", "Connections currently bound to a member.");
        _signalsRelayed = meter.CreateCounter<long>("talki.signalling.signals.relayed", "{signal}", "Signals relayed between members.");
        _resumes = meter.CreateCounter<long>("talki.signalling.connections.resumes", "{connection}", "Dropped connections, by outcome: suspended (the grace period began), resumed (same epoch), expired (left after the grace period).");
        _errors = meter.CreateCounter<long>("talki.signalling.errors", "{error}", "Errors returned to clients, by error code.");
        _relayDuration = meter.CreateHistogram<double>(
            "talki.signalling.relay.duration",
            "s",
            "Time from receiving a signal to handing it to the gateway.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.000_002, 0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.005, 0.01, 0.05] });
    }

    public void RoomCreated() => _roomsCreated.Add(1);

    public void TicketIssued() => _ticketsIssued.Add(1);

    public void TicketRefused(SignallingErrorCode code) => _ticketsRefused.Add(1, new KeyValuePair<string, object?>(ErrorCodeTag, code.ToWireName()));

    public void ConnectionOpened()
    {
        _connectionsOpened.Add(1);
        _connectionsActive.Add(1);
    }

    public void ConnectionClosed() => _connectionsActive.Add(-1);

    public void Resume(string outcome) => _resumes.Add(1, new KeyValuePair<string, object?>("talki.resume.outcome", outcome));

    /// <summary>
    /// Counts a relayed signal and records how long it took since <paramref name="started"/> (a timestamp of
    /// <paramref name="time"/>); the clock is read for that only while a listener records the duration
    /// (<see cref="Instrument.Enabled"/>).
    /// </summary>
    public void SignalRelayed(TimeProvider time, long started)
    {
        _signalsRelayed.Add(1);
        if (_relayDuration.Enabled)
        {
            _relayDuration.Record(time.GetElapsedTime(started).TotalSeconds);
        }
    }

    public void Error(SignallingErrorCode code) => _errors.Add(1, new KeyValuePair<string, object?>(ErrorCodeTag, code.ToWireName()));
}

/// <summary>The engine's <see cref="ActivitySource"/>.</summary>
internal static class SignallingActivity
{
    public static readonly ActivitySource Source = new(TalkiDiagnostics.ActivitySourceName);
}
