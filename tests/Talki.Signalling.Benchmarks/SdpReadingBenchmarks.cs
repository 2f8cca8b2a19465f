using BenchmarkDotNet.Attributes;
using Talki.Signalling.Client.Negotiation;

namespace Talki.Signalling.Benchmarks;

/// <summary>
/// The reads of descriptions a link makes when its offer is answered: the answer's tag (the offer it answers) against the
/// local offer's origin, the tag removed, the answer's origin, its ICE ufrag, and the remote ufrag again for each of the
/// three candidates that follow (<c>PeerNegotiator.HandleDescriptionAsync</c>, <c>OfferCandidateAsync</c>).
/// <see cref="SplitIntoLines"/> is how <see cref="SdpOrigin"/> read until 2026-12-07 (each read split the whole description
/// into lines); <see cref="ScannedInPlace"/> is the code as it is.
/// </summary>
/// <remarks>
/// The descriptions are a no-media Chromium offer's shape (about 7 KB). The JIT's figures here; the browser runs the client
/// in .NET's WebAssembly interpreter, where each allocation and each character handled by managed code costs many times more.
/// </remarks>
[MemoryDiagnoser(displayGenColumns: false)]
[Config(typeof(RelayBenchmarkConfig))]
public class SdpReadingBenchmarks
{
    private const string Tag = "x-talki-answer-to";
    private string _offer = string.Empty;
    private string _answer = string.Empty;
    private string _expectedTag = string.Empty;

    [GlobalSetup]
    public void Setup()
    {
        _offer = SignalSizingBenchmarks.NoMediaOffer(1);
        if (!SdpOrigin.TryParse(_offer, out var origin))
        {
            throw new InvalidOperationException("The benchmark's offer has no origin.");
        }

        _expectedTag = $"{origin.SessionId} {origin.Version}";
        _answer = SdpOrigin.AddAttribute(SignalSizingBenchmarks.NoMediaOffer(2), Tag, _expectedTag);
    }

    [Benchmark(Baseline = true)]
    public int SplitIntoLines()
    {
        var read = 0;
        if (SplitLines.ReadAttribute(_answer, Tag) is { } tag && SplitLines.TryParse(_offer, out var local, out var version)
            && tag == $"{local} {version}")
        {
            var applied = SplitLines.RemoveAttribute(_answer, Tag);
            read += SplitLines.TryParse(applied, out _, out _) ? 1 : 0;
            read += SplitLines.ReadAttribute(applied, "ice-ufrag")?.Length ?? 0;
            for (var i = 0; i < 3; i++)
            {
                read += SplitLines.ReadAttribute(applied, "ice-ufrag")?.Length ?? 0;
            }
        }

        return read;
    }

    [Benchmark]
    public int ScannedInPlace()
    {
        var read = 0;
        if (SdpOrigin.ReadAttribute(_answer, Tag) is { } tag && SdpOrigin.TryParse(_offer, out var local)
            && tag == $"{local.SessionId} {local.Version}")
        {
            var applied = SdpOrigin.RemoveAttribute(_answer, Tag);
            read += SdpOrigin.TryParse(applied, out _) ? 1 : 0;
            read += SdpOrigin.ReadAttribute(applied, "ice-ufrag")?.Length ?? 0;
            for (var i = 0; i < 3; i++)
            {
                read += SdpOrigin.ReadAttribute(applied, "ice-ufrag")?.Length ?? 0;
            }
        }

        return read;
    }

    /// <summary>The reading before 2026-12-07: every read split the description into lines.</summary>
    private static class SplitLines
    {
        public static bool TryParse(string? sdp, out string? sessionId, out ulong version)
        {
            sessionId = null;
            version = 0;
            if (string.IsNullOrEmpty(sdp))
            {
                return false;
            }

            foreach (var raw in sdp.Split('\n'))
            {
                var line = raw.TrimEnd('\r');
                if (!line.StartsWith("o=", StringComparison.Ordinal))
                {
                    continue;
                }

                var parts = line[2..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (parts.Length >= 3 && ulong.TryParse(parts[2], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out version))
                {
                    sessionId = parts[1];
                    return true;
                }

                return false;
            }

            return false;
        }

        public static string? ReadAttribute(string? sdp, string name)
        {
            if (sdp is null)
            {
                return null;
            }

            var prefix = "a=" + name + ":";
            foreach (var raw in sdp.Split('\n'))
            {
                var line = raw.TrimEnd('\r');
                if (line.StartsWith(prefix, StringComparison.Ordinal))
                {
                    return line[prefix.Length..];
                }
            }

            return null;
        }

        public static string? RemoveAttribute(string? sdp, string name)
        {
            if (sdp is null)
            {
                return null;
            }

            var prefix = "a=" + name + ":";
            var lines = sdp.Split('\n');
            return lines.Any(l => l.StartsWith(prefix, StringComparison.Ordinal))
                ? string.Join('\n', lines.Where(l => !l.StartsWith(prefix, StringComparison.Ordinal)))
                : sdp;
        }
    }
}
