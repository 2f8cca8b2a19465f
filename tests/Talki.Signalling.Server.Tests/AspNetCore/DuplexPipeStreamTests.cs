using System.Buffers;
using System.IO.Pipelines;
using Talki.Signalling.Server.AspNetCore;

namespace Talki.Signalling.Server.Tests.AspNetCore;

public sealed class DuplexPipeStreamTests
{
    [Theory]
    [InlineData(new byte[] { 0x81 }, -1)] // one byte: no length yet
    [InlineData(new byte[] { 0x81, 0x02 }, 4)] // unmasked, 7-bit length 2
    [InlineData(new byte[] { 0x81, 0x82, 1, 2, 3 }, -1)] // masked, the key cut short
    [InlineData(new byte[] { 0x81, 0x82, 1, 2, 3, 4 }, 8)] // masked, 7-bit length 2
    [InlineData(new byte[] { 0x81, 0x80, 1, 2, 3, 4 }, 6)] // masked, empty
    [InlineData(new byte[] { 0x81, 0xFE, 0x01 }, -1)] // 16-bit length cut short
    [InlineData(new byte[] { 0x81, 0xFE, 0x01, 0x00, 1, 2, 3, 4 }, 8 + 256)] // masked, 16-bit length 256
    [InlineData(new byte[] { 0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4 }, 14 + 65536)] // masked, 64-bit length 65,536
    [InlineData(new byte[] { 0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0 }, long.MaxValue)] // a 64-bit length with its top bit set
    public void FrameLength_FollowsTheHeaderOfRfc6455Section52(byte[] header, long expected)
    {
        Assert.Equal(expected, DuplexPipeStream.FrameLength(new ReadOnlySequence<byte>(header)));
    }

    [Fact]
    public async Task Read_StopsAtTheEndOfAFrame_TheNextFrameStaysInThePipe()
    {
        var (stream, input) = NewStream();
        byte[] empty = [0x81, 0x80, 1, 2, 3, 4];
        byte[] two = [0x81, 0x82, 1, 2, 3, 4, 0x7A, 0x4F];
        await input.WriteAsync(empty.Concat(two).ToArray());

        var buffer = new byte[14]; // what ManagedWebSocket reads a header into
        Assert.True(stream.AtFrameBoundary);
        Assert.Equal(6, await stream.ReadAsync(buffer));
        Assert.True(stream.AtFrameBoundary);
        Assert.Equal(8, await stream.ReadAsync(buffer));
        Assert.True(stream.AtFrameBoundary);
    }

    [Fact]
    public async Task Read_OfAPartOfAFrame_IsNotAtABoundary_UntilItsLastByte()
    {
        var (stream, input) = NewStream();
        await input.WriteAsync(new byte[] { 0x81, 0x8A, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x81, 0x80, 1, 2, 3, 4 });

        var buffer = new byte[14];
        Assert.Equal(14, await stream.ReadAsync(buffer)); // the header and 8 of the 10 payload bytes
        Assert.False(stream.AtFrameBoundary);
        Assert.Equal(2, await stream.ReadAsync(buffer));
        Assert.True(stream.AtFrameBoundary);
        Assert.Equal(6, await stream.ReadAsync(buffer));
    }

    [Fact]
    public async Task Read_WaitsForTheWholeHeader_ThenReturnsIt()
    {
        var (stream, input) = NewStream();
        await input.WriteAsync(new byte[] { 0x81, 0xFE, 0x00 });
        var buffer = new byte[14];
        var read = stream.ReadAsync(buffer);
        await Task.Delay(50);
        Assert.False(read.IsCompleted); // three bytes of an eight-byte header

        await input.WriteAsync(new byte[] { 0x7E, 1, 2, 3, 4, 9 });
        Assert.Equal(9, await read); // the header and the payload byte there is
        Assert.False(stream.AtFrameBoundary);
    }

    [Fact]
    public async Task Read_AtTheEndOfTheStream_ReturnsAHeaderCutShort_ThenZero()
    {
        var (stream, input) = NewStream();
        await input.WriteAsync(new byte[] { 0x81, 0xFE, 0x00 });
        await input.CompleteAsync();
        var buffer = new byte[14];
        Assert.Equal(3, await stream.ReadAsync(buffer));
        Assert.Equal(0, await stream.ReadAsync(buffer));
    }

    [Fact]
    public async Task ZeroByteRead_WaitsForData_AndConsumesNone()
    {
        var (stream, input) = NewStream();
        var wait = stream.ReadAsync(Memory<byte>.Empty);
        await Task.Delay(50);
        Assert.False(wait.IsCompleted);
        await input.WriteAsync(new byte[] { 0x81, 0x80, 1, 2, 3, 4 });
        Assert.Equal(0, await wait);
        Assert.Equal(6, await stream.ReadAsync(new byte[14]));
    }

    private static (DuplexPipeStream Stream, PipeWriter Input) NewStream()
    {
        var input = new Pipe();
        var output = new Pipe();
        return (new DuplexPipeStream(new Duplex(input.Reader, output.Writer)), input.Writer);
    }

    private sealed record Duplex(PipeReader Input, PipeWriter Output) : IDuplexPipe;
}
