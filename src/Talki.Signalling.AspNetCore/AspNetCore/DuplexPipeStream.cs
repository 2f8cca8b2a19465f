using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;

namespace Talki.Signalling.Server.AspNetCore;

/// <summary>
/// A connection's transport as the one duplex <see cref="Stream"/> that <see cref="System.Net.WebSockets.WebSocket.CreateFromStream(Stream, System.Net.WebSockets.WebSocketCreationOptions)"/>
/// needs: reads consume <see cref="IDuplexPipe.Input"/>, writes go to <see cref="IDuplexPipe.Output"/> and are flushed at
/// once. Asynchronous only. A zero-byte read waits for data and consumes none, so an idle WebSocket that reads zero bytes
/// first holds no buffer of its own (and Kestrel's socket transport allocates none before data arrives either).
/// Disposing it leaves the pipes alone: Kestrel completes them when the connection middleware returns.
/// </summary>
/// <remarks>
/// A read never returns bytes past the end of the WebSocket frame it is in (RFC 6455 §5.2: the header's length fields
/// give where the frame ends). The WebSocket reads headers into a small buffer of its own and would otherwise keep the
/// start, or the whole, of the next frame there. So once it has returned a frame's last byte it holds nothing of the
/// connection, everything not yet received is still in <see cref="Input"/>, and an idle reader can wait on the pipe
/// itself (<see cref="AtFrameBoundary"/>) instead of on a pending WebSocket receive.
/// </remarks>
internal sealed class DuplexPipeStream(IDuplexPipe pipe) : Stream
{
    /// <summary>RFC 6455 §5.5.3: a Pong frame, FIN, no payload, unmasked (a server's frame). Unsolicited, it is a keep-alive.</summary>
    private static readonly byte[] UnsolicitedPong = [0x8A, 0x00];

    /// <summary>The bytes from here to the end of the current frame; 0 at a frame boundary (the next byte starts a header).</summary>
    private long _toFrameEnd;

    /// <summary>1 while a write is in the output: the WebSocket's frame, or a keep-alive (<see cref="TryWriteKeepAlive"/>).</summary>
    private int _writing;

    /// <summary>The last keep-alive whose flush had to wait for the client to read (complete once it has), or null.</summary>
    private Task? _keepAliveFlush;

    /// <summary>1 once <see cref="Abort"/> has been called: every read and write from then on fails.</summary>
    private int _aborted;

    /// <summary>
    /// The most a corked write leaves unflushed in the output (<see cref="Cork"/>): past it, the write flushes as any other,
    /// and waits when the client is slow to read. A batch of relayed frames is rarely larger; what a receive loop's batch
    /// can add to a socket's output before that socket's client is heard from stays bounded.
    /// </summary>
    internal const int CorkLimit = 32 * 1024;

    /// <summary>Whether writes on this thread are corked (<see cref="Cork"/>).</summary>
    [ThreadStatic]
    private static bool t_corking;

    /// <summary>The streams written to on this thread without a flush since the last <see cref="FlushCorked"/>.</summary>
    [ThreadStatic]
    private static List<DuplexPipeStream>? t_corked;

    /// <summary>Gets the connection's input: what the WebSocket has not read yet, all of it.</summary>
    public PipeReader Input => pipe.Input;

    /// <summary>Gets whether every byte read so far ended a whole frame: the next read starts a frame's header.</summary>
    public bool AtFrameBoundary => _toFrameEnd == 0;

    public override bool CanRead => true;

    public override bool CanWrite => true;

    public override bool CanSeek => false;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    /// <summary>
    /// Ends every read and write, pending or to come, with an <see cref="OperationCanceledException"/>, without a
    /// cancellation token: a pending read of the input (this stream's, or the gateway's own wait on <see cref="Input"/>) and
    /// a pending flush of the output (a frame's, or a keep-alive's that a frame waits behind) are cancelled, and a read or
    /// write that starts afterwards fails at once. The WebSocket's reads and sends can then pass
    /// <see cref="CancellationToken.None"/>, which spares a registration per call and lets a send that the pipe takes at
    /// once complete synchronously. The pipes stay open: Kestrel completes them when the connection ends.
    /// </summary>
    /// <remarks>
    /// <see cref="PipeReader.CancelPendingRead"/> and <see cref="PipeWriter.CancelPendingFlush"/> cancel the pending call,
    /// or the next one when none is pending (their documentation: "If there is no pending operation, this cancels the next
    /// operation"); the flag covers every call after that one.
    /// </remarks>
    public void Abort()
    {
        if (Interlocked.Exchange(ref _aborted, 1) != 0)
        {
            return;
        }

        try
        {
            pipe.Input.CancelPendingRead();
            pipe.Output.CancelPendingFlush();
        }
        catch (Exception exception) when (exception is InvalidOperationException or ObjectDisposedException)
        {
            // The transport has ended already: nothing is pending any more. (This runs in a cancellation callback, on a
            // timer's thread: nothing may escape it.)
        }
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        while (true)
        {
            ThrowIfAborted();
            var result = await pipe.Input.ReadAsync(cancellationToken).ConfigureAwait(false);
            var readable = result.Buffer;
            if (result.IsCanceled)
            {
                pipe.Input.AdvanceTo(readable.Start);
                throw new OperationCanceledException("The pending read was cancelled.");
            }

            if (buffer.IsEmpty)
            {
                // A zero-byte read: data is there (or the stream ended); nothing is consumed.
                pipe.Input.AdvanceTo(readable.Start);
                return 0;
            }

            if (_toFrameEnd == 0 && !readable.IsEmpty)
            {
                var frame = FrameLength(readable);
                if (frame < 0 && !result.IsCompleted)
                {
                    // Not the whole header yet: the WebSocket cannot use a part of it before the rest either.
                    pipe.Input.AdvanceTo(readable.Start, readable.End);
                    continue;
                }

                // A header cut short by the end of the stream is handed on as it is: the WebSocket reports the early end.
                _toFrameEnd = frame < 0 ? readable.Length : frame;
            }

            // Empty and completed: the end of the stream.
            var count = (int)Math.Min(Math.Min(readable.Length, buffer.Length), _toFrameEnd);
            readable.Slice(0, count).CopyTo(buffer.Span);
            pipe.Input.AdvanceTo(readable.GetPosition(count));
            _toFrameEnd -= count;
            return count;
        }
    }

    /// <summary>
    /// What the input holds for the next receive, consuming nothing: whether the receive can take what it needs without
    /// waiting for the client, so that a buffer rented for it is not held while a client trickles (or stops mid-frame).
    /// </summary>
    /// <param name="largest">
    /// The most of a data frame worth waiting for: a frame longer than this is <see cref="NextFrame.Receivable"/> once this
    /// much of it is there (a receive buffer holds no more than this anyway). It must stay under the transport's read
    /// buffer limit (Kestrel's <c>MaxReadBufferSize</c>, 1 MiB by default), at which the pipe stops reading the socket.
    /// </param>
    /// <returns>
    /// <see cref="NextFrame.WholeDataFrame"/>: at a frame boundary, a whole data frame (text, binary or a continuation;
    /// RFC 6455 §5.2 opcodes 0x0–0x2), header and payload. <see cref="NextFrame.Receivable"/>: a receive will not wait for
    /// the client — at a boundary a control frame's whole header (the WebSocket reads its payload itself, into no buffer of
    /// ours), or <paramref name="largest"/> bytes of a longer data frame; inside a frame, the rest of it (or
    /// <paramref name="largest"/> less a header's 14 bytes of it); or the end of the input. <see cref="NextFrame.NotThere"/>:
    /// anything less. Then everything in the input is marked examined, so the next <see cref="PipeReader.ReadAsync"/> of
    /// <see cref="Input"/> waits for more.
    /// </returns>
    /// <exception cref="OperationCanceledException">The stream was aborted (the read that would see it is cancelled).</exception>
    public NextFrame Peek(long largest)
    {
        ThrowIfAborted();
        if (!pipe.Input.TryRead(out var result))
        {
            return NextFrame.NotThere; // nothing there at all: the pipe's next read waits
        }

        var readable = result.Buffer;
        if (result.IsCanceled)
        {
            // The abort's cancellation of the next read, taken here: it must still end the connection.
            pipe.Input.AdvanceTo(readable.Start);
            throw new OperationCanceledException("The pending read was cancelled.");
        }

        var next = Classify(readable, largest);
        if (next == NextFrame.NotThere && result.IsCompleted)
        {
            next = NextFrame.Receivable; // the end of the input: the WebSocket reports it
        }

        // Nothing consumed; when more is needed, everything examined: the pipe's next read then waits for more.
        pipe.Input.AdvanceTo(readable.Start, next == NextFrame.NotThere ? readable.End : readable.Start);
        return next;
    }

    private NextFrame Classify(ReadOnlySequence<byte> readable, long largest)
    {
        if (_toFrameEnd != 0)
        {
            return readable.Length >= Math.Min(_toFrameEnd, largest - 14) ? NextFrame.Receivable : NextFrame.NotThere;
        }

        var length = FrameLength(readable);
        if (length < 0)
        {
            return NextFrame.NotThere; // not the whole header
        }

        Span<byte> first = stackalloc byte[1];
        readable.Slice(0, 1).CopyTo(first); // not FirstSpan: a sequence's first segment may be empty
        if ((first[0] & 0x0F) > 0x2)
        {
            return NextFrame.Receivable;
        }

        return length <= readable.Length ? NextFrame.WholeDataFrame
            : readable.Length >= largest ? NextFrame.Receivable
            : NextFrame.NotThere;
    }

    /// <summary>
    /// The length of the frame that starts <paramref name="data"/>, header included (RFC 6455 §5.2: a 7-bit length, or
    /// 126 and 16 bits, or 127 and 64 bits, then the 4-byte masking key when MASK is set), or −1 while the header is
    /// incomplete. A 64-bit length with its top bit set (a protocol error the WebSocket closes on) counts as the longest.
    /// </summary>
    internal static long FrameLength(ReadOnlySequence<byte> data)
    {
        Span<byte> header = stackalloc byte[14];
        var available = (int)Math.Min(data.Length, header.Length);
        if (available < 2)
        {
            return -1;
        }

        data.Slice(0, available).CopyTo(header);
        var length7 = header[1] & 0x7F;
        var extended = length7 switch { 126 => 2, 127 => 8, _ => 0 };
        var headerLength = 2 + extended + ((header[1] & 0x80) != 0 ? 4 : 0);
        if (available < headerLength)
        {
            return -1;
        }

        var payload = extended switch
        {
            2 => BinaryPrimitives.ReadUInt16BigEndian(header[2..]),
            8 => BinaryPrimitives.ReadUInt64BigEndian(header[2..]),
            _ => (ulong)length7,
        };
        return payload > (ulong)(long.MaxValue - headerLength) ? long.MaxValue : headerLength + (long)payload;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    /// <summary>
    /// Corks (<paramref name="on"/>) or uncorks the writes made on this thread: while corked, a write that finds the output
    /// free and under <see cref="CorkLimit"/> unflushed bytes goes into the pipe without a flush, and
    /// <see cref="FlushCorked"/> flushes it later. A receive loop corks while the senders of one message run, and flushes
    /// once no whole message is waiting in its input: the frames a batch of pipelined messages relays to one socket then
    /// leave in one flush (with inline I/O, one send) instead of one each.
    /// </summary>
    /// <remarks>
    /// Whoever corks must call <see cref="FlushCorked"/> on the same thread before it gives the thread up (before any
    /// asynchronous wait), so that no write is left unflushed behind a thread that went on to other work.
    /// </remarks>
    public static void Cork(bool on) => t_corking = on;

    /// <summary>
    /// Flushes every output written to on this thread while corked. An output another writer holds is left to it: every
    /// holder flushes (a write, a keep-alive, another thread's cork, a flush waiting for the client).
    /// </summary>
    public static void FlushCorked()
    {
        if (t_corked is not { Count: > 0 } corked)
        {
            return;
        }

        foreach (var stream in corked)
        {
            stream.FlushDeferred();
        }

        corked.Clear();
    }

    private void FlushDeferred()
    {
        if (Volatile.Read(ref _aborted) != 0 || Interlocked.CompareExchange(ref _writing, 1, 0) != 0)
        {
            return;
        }

        FlushHeld();
    }

    /// <summary>Flushes the output, which the caller holds (<see cref="_writing"/>), and releases it once flushed.</summary>
    private void FlushHeld()
    {
        ValueTask<FlushResult> flush;
        try
        {
            flush = pipe.Output.FlushAsync();
        }
        catch (Exception exception) when (exception is InvalidOperationException or IOException or ObjectDisposedException)
        {
            // The output is completed: the connection is ending, and its receive loop sees it.
            Volatile.Write(ref _writing, 0);
            return;
        }

        if (flush.IsCompleted)
        {
            Volatile.Write(ref _writing, 0);
            return;
        }

        // The client is not reading: the socket's next frame waits for this flush, as it would for its own.
        Volatile.Write(ref _keepAliveFlush, ReleaseAfterAsync(flush));
    }

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (t_corking && TryWriteCorked(buffer.Span))
        {
            return;
        }

        // The WebSocket writes each frame in one call and one at a time; a keep-alive goes between two of them, never
        // inside one (RFC 6455 §5.4: control frames may come between the fragments of a message, not inside a frame).
        while (Interlocked.CompareExchange(ref _writing, 1, 0) != 0)
        {
            if (Volatile.Read(ref _keepAliveFlush) is { IsCompleted: false } pending)
            {
                await pending.WaitAsync(cancellationToken).ConfigureAwait(false);
            }
            else
            {
                await Task.Yield(); // a keep-alive between taking the output and writing its two bytes
            }
        }

        try
        {
            // Checked once the output is ours: a writer that waited behind a keep-alive's flush, which the abort cancelled,
            // must not write after it.
            ThrowIfAborted();
            var flushed = await pipe.Output.WriteAsync(buffer, cancellationToken).ConfigureAwait(false);
            if (flushed.IsCanceled)
            {
                throw new OperationCanceledException("The pending flush was cancelled.");
            }
        }
        finally
        {
            Volatile.Write(ref _writing, 0);
        }
    }

    private bool TryWriteCorked(ReadOnlySpan<byte> frame)
    {
        if (!pipe.Output.CanGetUnflushedBytes || Interlocked.CompareExchange(ref _writing, 1, 0) != 0)
        {
            return false;
        }

        try
        {
            ThrowIfAborted();
            if (pipe.Output.UnflushedBytes + frame.Length > CorkLimit)
            {
                FlushHeld(); // what is corked goes now, and this frame waits for it like any other (it releases the output)
                return false;
            }

            pipe.Output.Write(frame);
        }
        catch
        {
            Volatile.Write(ref _writing, 0);
            throw;
        }

        Volatile.Write(ref _writing, 0);
        var corked = t_corked ??= [];
        if (corked.Count == 0 || corked[^1] != this)
        {
            corked.Add(this);
        }

        return true;
    }

    /// <summary>
    /// Writes an unsolicited Pong (RFC 6455 §5.5.3: "a unidirectional heartbeat"; the client answers nothing) unless a
    /// frame is being written, which keeps the connection alive as well. One timer of the gateway calls this for every
    /// idle socket, where the WebSocket's own keep-alive is a timer per socket (about 170 bytes each).
    /// </summary>
    /// <returns><see langword="false"/> when nothing was written: a write was in progress, or the output is completed.</returns>
    public bool TryWriteKeepAlive()
    {
        if (Volatile.Read(ref _aborted) != 0 || Interlocked.CompareExchange(ref _writing, 1, 0) != 0)
        {
            return false;
        }

        try
        {
            pipe.Output.Write(UnsolicitedPong);
        }
        catch (Exception exception) when (exception is InvalidOperationException or IOException or ObjectDisposedException)
        {
            // The output is completed: the connection is ending, and its receive loop sees it.
            Volatile.Write(ref _writing, 0);
            return false;
        }

        FlushHeld();
        return true;
    }

    private async Task ReleaseAfterAsync(ValueTask<FlushResult> flush)
    {
        try
        {
            await flush.ConfigureAwait(false);
        }
        catch (Exception exception) when (exception is InvalidOperationException or IOException or ObjectDisposedException or OperationCanceledException)
        {
            // The connection is ending.
        }
        finally
        {
            Volatile.Write(ref _writing, 0); // the task left in _keepAliveFlush is complete: writers no longer wait on it
        }
    }

    private void ThrowIfAborted()
    {
        if (Volatile.Read(ref _aborted) != 0)
        {
            throw new OperationCanceledException("The connection was aborted.");
        }
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    /// <summary>
    /// Completes at once: every write here is flushed as it is written (<see cref="WriteAsync(ReadOnlyMemory{byte}, CancellationToken)"/>
    /// awaits the pipe's flush, a keep-alive flushes its own two bytes), so nothing is ever left to flush.
    /// </summary>
    /// <remarks>
    /// The WebSocket calls this after every frame (<c>ManagedWebSocket</c> flushes once its <c>WriteAsync</c> completed).
    /// Flushing the pipe again here would be wrong as well as wasted: a keep-alive can come between the frame and this
    /// call, and when the client is slow to read, the keep-alive's flush is waiting. A second awaiter of a waiting flush
    /// makes a <see cref="Pipe"/> complete its reader ("concurrent operations are not supported"), and on Kestrel's
    /// transport that ends the connection.
    /// </remarks>
    public override Task FlushAsync(CancellationToken cancellationToken) =>
        cancellationToken.IsCancellationRequested ? Task.FromCanceled(cancellationToken) : Task.CompletedTask;

    public override void Flush() => throw new NotSupportedException("Asynchronous only.");

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException("Asynchronous only.");

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException("Asynchronous only.");

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();
}

/// <summary>What the input holds for the WebSocket's next receive (<see cref="DuplexPipeStream.Peek"/>).</summary>
internal enum NextFrame
{
    /// <summary>Not yet what the receive needs: it would wait for the client.</summary>
    NotThere,

    /// <summary>At a frame boundary, a whole data frame: the receive into a buffer takes it at once.</summary>
    WholeDataFrame,

    /// <summary>What a receive takes without waiting for the client, but not a whole data frame (a control frame, the end…).</summary>
    Receivable,
}
