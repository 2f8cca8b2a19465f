using System.Buffers;
using System.IO.Pipelines;

namespace Talki.Signalling.Server.AspNetCore;

/// <summary>
/// A connection's transport as the one duplex <see cref="Stream"/> that <see cref="System.Net.WebSockets.WebSocket.CreateFromStream(Stream, System.Net.WebSockets.WebSocketCreationOptions)"/>
/// needs: reads consume <see cref="IDuplexPipe.Input"/>, writes go to <see cref="IDuplexPipe.Output"/> and are flushed at
/// once. Asynchronous only. A zero-byte read waits for data and consumes none, so an idle WebSocket that reads zero bytes
/// first holds no buffer of its own (and Kestrel's socket transport allocates none before data arrives either).
/// Disposing it leaves the pipes alone: Kestrel completes them when the connection middleware returns.
/// </summary>
internal sealed class DuplexPipeStream(IDuplexPipe pipe) : Stream
{
    public override bool CanRead => true;

    public override bool CanWrite => true;

    public override bool CanSeek => false;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var result = await pipe.Input.ReadAsync(cancellationToken).ConfigureAwait(false);
        var readable = result.Buffer;
        if (result.IsCanceled)
        {
            pipe.Input.AdvanceTo(readable.Start);
            throw new OperationCanceledException("The pending read was cancelled.");
        }

        // Empty and completed: the end of the stream. A zero-byte read returns 0 with data still buffered.
        var count = (int)Math.Min(readable.Length, buffer.Length);
        readable.Slice(0, count).CopyTo(buffer.Span);
        pipe.Input.AdvanceTo(readable.GetPosition(count));
        return count;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var flushed = await pipe.Output.WriteAsync(buffer, cancellationToken).ConfigureAwait(false);
        if (flushed.IsCanceled)
        {
            throw new OperationCanceledException("The pending flush was cancelled.");
        }
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override async Task FlushAsync(CancellationToken cancellationToken) => await pipe.Output.FlushAsync(cancellationToken).ConfigureAwait(false);

    public override void Flush() => throw new NotSupportedException("Asynchronous only.");

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException("Asynchronous only.");

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException("Asynchronous only.");

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();
}
