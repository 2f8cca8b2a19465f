using System.Diagnostics;
using Talki.Samples.Browser.EndToEndTests.Harness;
using Xunit.Abstractions;

namespace Talki.Samples.Browser.EndToEndTests;

/// <summary>
/// The native memory trim in the sample host's own process (<c>samples/Talki.Samples.Host/NativeMemoryTrim.cs</c>), no browser:
/// on by default on glibc, where it trims after the host's start-up compiled its code; off when configured off, and then it
/// never trims. The trim's debug log line is the witness (<c>NativeMemoryTrimTests</c> test the class itself).
/// </summary>
public sealed class NativeMemoryTrimHostTests(ITestOutputHelper output)
{
    private const string Trimmed = "Native memory trimmed: memory given back";

    private static readonly Dictionary<string, string> DebugLog = new() { ["Logging__LogLevel__NativeMemoryTrim"] = "Debug" };

    [Fact]
    public async Task Host_ByDefault_SaysTheTrimIsOn_AndTrimsAfterItsStartUp()
    {
        await using var host = await SampleHost.StartAsync(TimeSpan.FromMinutes(5), environment: DebugLog);

        // The first trim comes one period (2 s) after the host started; the start-up compiled code, so it is not skipped.
        var waited = Stopwatch.StartNew();
        while (!host.Output.Contains(Trimmed, StringComparison.Ordinal) && waited.Elapsed < TimeSpan.FromSeconds(20))
        {
            await Task.Delay(100);
        }

        output.WriteLine(host.Output);
        Assert.Contains("Talki sample host: native memory trim on (auto: glibc; at most every 2 s, after the runtime compiled or collected)", host.Output, StringComparison.Ordinal);
        Assert.Contains(Trimmed, host.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Host_WithTheTrimOff_SaysSo_AndNeverTrims()
    {
        await using var host = await SampleHost.StartAsync(
            TimeSpan.FromMinutes(5), new Dictionary<string, string> { ["Talki:Sample:TrimNativeMemory"] = "false" }, environment: DebugLog);

        await Task.Delay(TimeSpan.FromSeconds(5)); // two and a half periods
        output.WriteLine(host.Output);
        Assert.Contains("Talki sample host: native memory trim off (Talki:Sample:TrimNativeMemory=false)", host.Output, StringComparison.Ordinal);
        Assert.DoesNotContain(Trimmed, host.Output, StringComparison.Ordinal);
    }
}
