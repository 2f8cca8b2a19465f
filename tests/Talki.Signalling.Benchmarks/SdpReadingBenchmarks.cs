using BenchmarkDotNet.Attributes;
using Talki.Signalling.Client.Negotiation;
using Talki.Signalling.Testing;

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

    [GlobalSetup]
    public void Setup()
    {
        _offer = SignalSizingBenchmarks.NoMediaOffer(1);
        if (!SdpOrigin.TryParse(_offer, out var origin))
        {
            throw new InvalidOperationException("The benchmark's offer has no origin.");
        }

        _answer = SdpOrigin.AddAttribute(SignalSizingBenchmarks.NoMediaOffer(2), Tag, $"{origin.SessionId} {origin.Version}");
    }

    [Benchmark(Baseline = true)]
    public int SplitIntoLines()
    {
        var read = 0;
        if (SplitLinesSdp.ReadAttribute(_answer, Tag) is { } tag && SplitLinesSdp.TryParse(_offer, out var local, out var version)
            && tag == $"{local} {version}")
        {
            var applied = SplitLinesSdp.RemoveAttribute(_answer, Tag);
            read += SplitLinesSdp.TryParse(applied, out _, out _) ? 1 : 0;
            read += SplitLinesSdp.ReadAttribute(applied, "ice-ufrag")?.Length ?? 0;
            for (var i = 0; i < 3; i++)
            {
                read += SplitLinesSdp.ReadAttribute(applied, "ice-ufrag")?.Length ?? 0;
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
}
