namespace Talki.Signalling.Server;

/// <summary>Names to subscribe to with OpenTelemetry: <c>AddMeter(TalkiDiagnostics.MeterName)</c> and <c>AddSource(TalkiDiagnostics.ActivitySourceName)</c>.</summary>
public static class TalkiDiagnostics
{
    /// <summary>The name of the <see cref="System.Diagnostics.Metrics.Meter"/>.</summary>
    public const string MeterName = "Talki.Signalling";

    /// <summary>The name of the <see cref="System.Diagnostics.ActivitySource"/>.</summary>
    public const string ActivitySourceName = "Talki.Signalling";

    /// <summary>The tag that carries a client message's correlation id on spans.</summary>
    public const string CorrelationIdTag = "talki.correlation_id";
}
