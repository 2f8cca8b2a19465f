namespace Talki.Signalling.Client.Tests;

public sealed class TalkiClientOptionsTests
{
    [Fact]
    public void CandidateGatherWindow_DefaultsTo50Ms_AndZeroTurnsItOff()
    {
        Assert.Equal(TimeSpan.FromMilliseconds(50), new TalkiClientOptions().CandidateGatherWindow);
        new TalkiClientOptions { CandidateGatherWindow = TimeSpan.Zero }.Validate();
        new TalkiClientOptions { CandidateGatherWindow = TimeSpan.FromMilliseconds(500) }.Validate();
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(501)]
    [InlineData(30_000)]
    public void CandidateGatherWindow_OutOfRange_FailsAtStartUp(int milliseconds)
    {
        var options = new TalkiClientOptions { CandidateGatherWindow = TimeSpan.FromMilliseconds(milliseconds) };

        var error = Assert.Throws<InvalidOperationException>(options.Validate);
        Assert.Contains("CandidateGatherWindow", error.Message, StringComparison.Ordinal);
        Assert.Throws<InvalidOperationException>(() => new TalkiCallFactory(new TalkiApiClient(new HttpClient(), new TalkiClientOptions()), options));
    }

    [Fact]
    public void CandidateGatherWindow_Infinite_FailsAtStartUp() =>
        Assert.Throws<InvalidOperationException>(new TalkiClientOptions { CandidateGatherWindow = Timeout.InfiniteTimeSpan }.Validate);
}
