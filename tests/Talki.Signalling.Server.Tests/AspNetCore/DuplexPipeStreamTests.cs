using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using CsCheck;
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
        Assert.Equal(NextFrame.WholeDataFrame, stream.Peek(1024)); // the second frame is in the pipe already
        Assert.Equal(8, await stream.ReadAsync(buffer));
        Assert.True(stream.AtFrameBoundary);
        Assert.Equal(NextFrame.NotThere, stream.Peek(1024));
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

    /// <summary>
    /// Frames of every length form (7-bit, 16-bit, 64-bit; masked or not; lengths around each form's edge) arrive in chunks
    /// of any size while reads of any size, zero included, take them: every byte comes out once and in order, no read
    /// crosses the end of a frame, and <see cref="DuplexPipeStream.AtFrameBoundary"/> is true exactly at frames' ends.
    /// </summary>
    [Fact]
    public void AnyFramesInAnyChunks_ReadInAnySizes_NoReadCrossesAFrameEnd_AndEveryByteComesOutOnce()
    {
        var length = Gen.Frequency(
            (6, Gen.Int[0, 130]),
            (2, Gen.Int[65_530, 65_540]),
            (1, Gen.Const(0)));
        var frame = Gen.Select(length, Gen.Bool, Gen.Int[0, 2]);
        var scenario = Gen.Select(frame.Array[1, 12], Gen.Int[1, 40].Array[200], Gen.Int[0, 20].Array[200]);
        scenario.Sample(
            (frames, chunks, reads) => CheckAsync(frames, chunks, reads).GetAwaiter().GetResult(),
            iter: 300,
            threads: 1);
    }

    private static async Task CheckAsync((int Length, bool Masked, int Form)[] frames, int[] chunks, int[] reads)
    {
        var bytes = new List<byte>();
        var ends = new HashSet<long>();
        foreach (var (length, masked, form) in frames)
        {
            bytes.AddRange(Header(length, masked, form));
            bytes.AddRange(new byte[length]);
            ends.Add(bytes.Count);
        }

        var (stream, input) = NewStream();
        var writing = Task.Run(async () =>
        {
            var at = 0;
            for (var i = 0; at < bytes.Count; i++)
            {
                var size = Math.Min(chunks[i % chunks.Length], bytes.Count - at);
                await input.WriteAsync(bytes.GetRange(at, size).ToArray());
                at += size;
            }

            await input.CompleteAsync();
        });

        long read = 0;
        for (var i = 0; ; i++)
        {
            var buffer = new byte[reads[i % reads.Length]];
            var count = await stream.ReadAsync(buffer).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
            if (count == 0 && buffer.Length > 0)
            {
                break; // the end of the stream
            }

            Assert.True(buffer.Length == 0 || count > 0);
            var crossed = ends.Any(end => end > read && end < read + count);
            Assert.False(crossed, $"a read of {count} bytes from {read} crossed the end of a frame");
            read += count;
            Assert.Equal(ends.Contains(read) || read == 0, stream.AtFrameBoundary);
        }

        await writing;
        Assert.Equal(bytes.Count, read);
    }

    /// <summary>RFC 6455 §5.2: the smallest length form for <paramref name="form"/> 0, the next one up for 1 and 2 when the length allows.</summary>
    private static byte[] Header(int length, bool masked, int form)
    {
        var extended = length > 65_535 || form == 2 ? 8 : length > 125 || form == 1 ? 2 : 0;
        var header = new byte[2 + extended + (masked ? 4 : 0)];
        header[0] = 0x81;
        header[1] = (byte)((masked ? 0x80 : 0) | extended switch { 2 => 126, 8 => 127, _ => length });
        if (extended == 2)
        {
            BinaryPrimitives.WriteUInt16BigEndian(header.AsSpan(2), (ushort)length);
        }
        else if (extended == 8)
        {
            BinaryPrimitives.WriteUInt64BigEndian(header.AsSpan(2), (ulong)length);
        }

        return header;
    }

    /// <summary>
    /// The interleaving a fresh-clone CI run hit once: the WebSocket flushes after each frame it writes
    /// (<c>ManagedWebSocket.SendFrameLockAcquiredNonCancelableAsync</c> calls <c>_stream.FlushAsync()</c> once
    /// <c>WriteAsync</c> has completed), and a keep-alive can come between the two while the client is slow to read, so
    /// that the keep-alive's flush waits. A pipe's flush has one awaiter: a second one while the first waits makes the
    /// <see cref="Pipe"/> complete its reader (<c>Pipe.OnFlushAsyncCompleted</c>, "concurrent operations are not
    /// supported"), which on Kestrel's transport ends the connection. The WebSocket's flush must wait for nothing of the
    /// pipe's: every write was flushed already.
    /// </summary>
    [Fact]
    public async Task FlushAfterAFrame_WhileAKeepAlivesFlushWaitsForTheClient_LeavesTheOutputWhole()
    {
        var frame = new byte[] { 0x81, 0x7E, 0x27, 0xFE }.Concat(new byte[10_238]).ToArray(); // a 10,242-byte text frame
        var output = new Pipe(new PipeOptions(pauseWriterThreshold: frame.Length + 1, resumeWriterThreshold: 1, useSynchronizationContext: false));
        var stream = new DuplexPipeStream(new Duplex(new Pipe().Reader, output.Writer));

        await stream.WriteAsync(frame); // below the pause threshold: its flush completes
        Assert.True(stream.TryWriteKeepAlive()); // two bytes more: now above it, so this flush waits for the client
        var flush = stream.FlushAsync(); // what the WebSocket does next

        var wire = new List<byte>();
        while (wire.Count < frame.Length + 2)
        {
            var read = await output.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10));
            wire.AddRange(read.Buffer.ToArray());
            output.Reader.AdvanceTo(read.Buffer.End);
        }

        await flush.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(frame.Concat(new byte[] { 0x8A, 0x00 }), wire);

        // The output still works: the next frame goes out behind the keep-alive.
        await stream.WriteAsync(new byte[] { 0x81, 0x00 }).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        var next = await output.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(new byte[] { 0x81, 0x00 }, next.Buffer.ToArray());
    }

    /// <summary>
    /// Keep-alives written while the WebSocket sends messages of any size, with a client that reads in bursts (so that
    /// flushes wait, the keep-alive's included): every message arrives whole and in order, each keep-alive that was
    /// written is one pong between two frames, and nothing else is on the wire.
    /// </summary>
    [Fact]
    public void KeepAlivesBetweenTheWebSocketsFrames_NeverSplitAFrame_AndEachIsOnePong()
    {
        var message = Gen.Frequency((6, Gen.Int[0, 300]), (1, Gen.Int[60_000, 140_000]));
        Gen.Select(message.Array[1, 12], Gen.Int[0, 3], Gen.Int[1, 50_000]).Sample(
            (sizes, keepAliveDelayMs, readChunk) => KeepAliveScenarioAsync(sizes, keepAliveDelayMs, readChunk).GetAwaiter().GetResult(),
            iter: 40,
            threads: 1);
    }

    private static async Task KeepAliveScenarioAsync(int[] sizes, int keepAliveDelayMs, int readChunk)
    {
        var output = new Pipe(new PipeOptions(pauseWriterThreshold: 16 * 1024, resumeWriterThreshold: 8 * 1024, useSynchronizationContext: false));
        var stream = new DuplexPipeStream(new Duplex(new Pipe().Reader, output.Writer));
        using var socket = System.Net.WebSockets.WebSocket.CreateFromStream(stream, new System.Net.WebSockets.WebSocketCreationOptions { IsServer = true, KeepAliveInterval = TimeSpan.Zero });
        var messages = sizes.Select((size, i) => Enumerable.Range(0, size).Select(b => (byte)('a' + ((b + i) % 26))).ToArray()).ToList();

        var sent = Task.Run(async () =>
        {
            foreach (var bytes in messages)
            {
                await socket.SendAsync(bytes, System.Net.WebSockets.WebSocketMessageType.Text, endOfMessage: true, CancellationToken.None);
            }
        });
        var keepAlives = 0;
        var keepAlive = Task.Run(async () =>
        {
            while (!sent.IsCompleted)
            {
                if (stream.TryWriteKeepAlive())
                {
                    keepAlives++;
                }

                if (keepAliveDelayMs == 0)
                {
                    // Not Task.Delay(0): it completes at once, and the loop would hold a pool thread until the last send
                    // (in a CI run, with the other test classes on the 2 cores, the pool starved and a read timed out).
                    // The gateway's timer calls TryWriteKeepAlive once a tick; nothing in the product spins on it.
                    await Task.Yield();
                }
                else
                {
                    await Task.Delay(keepAliveDelayMs);
                }
            }
        });

        var finished = Task.Run(async () =>
        {
            await sent;
            await keepAlive;
            // One last message: it waits for a keep-alive's flush still pending, so the output is quiet after it.
            await socket.SendAsync("end"u8.ToArray(), System.Net.WebSockets.WebSocketMessageType.Text, endOfMessage: true, CancellationToken.None);
            await output.Writer.CompleteAsync();
        });

        var wire = new List<byte>();
        while (true)
        {
            var read = await output.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(30));
            var take = read.Buffer.Slice(0, Math.Min(read.Buffer.Length, readChunk));
            wire.AddRange(take.ToArray());
            output.Reader.AdvanceTo(take.End);
            if (read.IsCompleted && read.Buffer.Length == take.Length)
            {
                break;
            }

            await Task.Yield();
        }

        await finished;
        var (texts, pongs) = ParseServerFrames([.. wire]);
        Assert.Equal("end"u8.ToArray(), texts[^1]);
        texts.RemoveAt(texts.Count - 1);
        Assert.Equal(messages.Count, texts.Count);
        for (var i = 0; i < messages.Count; i++)
        {
            Assert.Equal(messages[i], texts[i]);
        }

        Assert.Equal(keepAlives, pongs);
    }

    /// <summary>RFC 6455 §5.2, a server's frames (unmasked): the text frames' payloads, and the count of empty pongs; anything else fails.</summary>
    private static (List<byte[]> Texts, int Pongs) ParseServerFrames(byte[] wire)
    {
        var texts = new List<byte[]>();
        var pongs = 0;
        var at = 0;
        while (at < wire.Length)
        {
            Assert.Equal(0x80, wire[at] & 0xF0); // FIN, no RSV bits: the WebSocket sends each message as one frame
            var opcode = wire[at] & 0x0F;
            Assert.Equal(0, wire[at + 1] & 0x80);
            var length7 = wire[at + 1] & 0x7F;
            var (headerLength, length) = length7 switch
            {
                126 => (4, (long)BinaryPrimitives.ReadUInt16BigEndian(wire.AsSpan(at + 2))),
                127 => (10, (long)BinaryPrimitives.ReadUInt64BigEndian(wire.AsSpan(at + 2))),
                _ => (2, (long)length7),
            };
            var payload = wire.AsSpan(at + headerLength, (int)length).ToArray();
            switch (opcode)
            {
                case 0x1:
                    texts.Add(payload);
                    break;
                case 0xA:
                    Assert.Empty(payload);
                    pongs++;
                    break;
                default:
                    Assert.Fail($"an unexpected frame, opcode {opcode}, at byte {at}");
                    break;
            }

            at += headerLength + (int)length;
        }

        return (texts, pongs);
    }

    /// <summary>
    /// The gateway gives the WebSocket no cancellation token on the pipe: <see cref="DuplexPipeStream.Abort"/> is what ends
    /// a client that stopped reading. A frame whose flush waits for that client is released with a cancellation, and so
    /// is every read and write after it.
    /// </summary>
    [Fact]
    public async Task Abort_ReleasesAWriteWaitingForAClientThatStoppedReading_AndFailsEveryCallAfterIt()
    {
        var output = new Pipe(new PipeOptions(pauseWriterThreshold: 1, resumeWriterThreshold: 1, useSynchronizationContext: false));
        var stream = new DuplexPipeStream(new Duplex(new Pipe().Reader, output.Writer));
        var write = stream.WriteAsync(new byte[] { 0x81, 0x01, 0x41 }, CancellationToken.None).AsTask();
        await Task.Delay(50);
        Assert.False(write.IsCompleted); // nobody reads the output: the flush waits

        stream.Abort();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => write.WaitAsync(TimeSpan.FromSeconds(10)));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => stream.WriteAsync(new byte[] { 0x81, 0x00 }, CancellationToken.None).AsTask().WaitAsync(TimeSpan.FromSeconds(10)));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => stream.ReadAsync(new byte[16], CancellationToken.None).AsTask().WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.False(stream.TryWriteKeepAlive());
    }

    /// <summary>
    /// A frame that waits behind a keep-alive whose flush waits for the client (the output is the keep-alive's until then)
    /// has no flush of its own to cancel: the abort cancels the keep-alive's, and the frame must then fail, not be written.
    /// </summary>
    [Fact]
    public async Task Abort_ReleasesAFrameWaitingBehindAKeepAlivesFlush_WithoutWritingIt()
    {
        var output = new Pipe(new PipeOptions(pauseWriterThreshold: 1, resumeWriterThreshold: 1, useSynchronizationContext: false));
        var stream = new DuplexPipeStream(new Duplex(new Pipe().Reader, output.Writer));
        Assert.True(stream.TryWriteKeepAlive()); // two bytes over the threshold: its flush waits
        var write = stream.WriteAsync(new byte[] { 0x81, 0x01, 0x41 }, CancellationToken.None).AsTask();
        await Task.Delay(50);
        Assert.False(write.IsCompleted);

        stream.Abort();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => write.WaitAsync(TimeSpan.FromSeconds(10)));
        output.Writer.Complete();
        var wire = await output.Reader.ReadAsync();
        Assert.Equal(new byte[] { 0x8A, 0x00 }, wire.Buffer.ToArray()); // the keep-alive only
    }

    /// <summary>A read waiting for data, given no token, ends with a cancellation when the stream is aborted; so does the gateway's own wait on the input.</summary>
    [Fact]
    public async Task Abort_ReleasesAPendingRead_AndTheGatewaysWaitOnTheInput()
    {
        var (stream, _) = NewStream();
        var read = stream.ReadAsync(new byte[16], CancellationToken.None).AsTask();
        await Task.Delay(50);
        Assert.False(read.IsCompleted);
        stream.Abort();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => read.WaitAsync(TimeSpan.FromSeconds(10)));

        var (idle, _) = NewStream();
        var wait = idle.Input.ReadAsync(CancellationToken.None).AsTask();
        await Task.Delay(50);
        Assert.False(wait.IsCompleted);
        idle.Abort();
        Assert.True((await wait.WaitAsync(TimeSpan.FromSeconds(10))).IsCanceled);
    }

    /// <summary>
    /// The abort can come between two calls (nothing pending): the next read and the next write fail all the same, however
    /// they interleave with it (the keep-alive's timer and the cancellation callback run on other threads).
    /// </summary>
    [Fact]
    public void Abort_AtAnyMoment_EndsTheReadAndTheWriteThatFollow_NeitherHangs()
    {
        Gen.Int[0, 3].Array[3].Sample(
            delays =>
            {
                var (stream, _) = NewStream();
                var abort = Task.Run(async () =>
                {
                    await Task.Delay(delays[0]);
                    stream.Abort();
                });
                var write = Task.Run(async () =>
                {
                    await Task.Delay(delays[1]);
                    await stream.WriteAsync(new byte[] { 0x81, 0x00 }, CancellationToken.None);
                    await stream.WriteAsync(new byte[] { 0x81, 0x00 }, CancellationToken.None);
                });
                var read = Task.Run(async () =>
                {
                    await Task.Delay(delays[2]);
                    _ = await stream.ReadAsync(new byte[16], CancellationToken.None); // no data is ever written: it can only end by the abort
                });

                abort.GetAwaiter().GetResult();
                // The writes may both have gone out before the abort, never hang after it; the read has no data and must end.
                try
                {
                    write.WaitAsync(TimeSpan.FromSeconds(10)).GetAwaiter().GetResult();
                }
                catch (OperationCanceledException)
                {
                }

                Assert.ThrowsAny<OperationCanceledException>(() => read.WaitAsync(TimeSpan.FromSeconds(10)).GetAwaiter().GetResult());
                Assert.ThrowsAny<OperationCanceledException>(() => stream.WriteAsync(new byte[] { 0x81, 0x00 }, CancellationToken.None).AsTask().GetAwaiter().GetResult());
            },
            iter: 200,
            threads: 1);
    }

    /// <summary>
    /// The gateway skips the WebSocket's zero-byte read only when a whole data frame is in the pipe: a header cut short,
    /// a payload not all there, or a control frame (handled inside a receive, which then waits on) do not count, and
    /// asking consumes nothing. It rents a buffer only once a receive will not wait for the client: a control frame's
    /// header, or as much of a long data frame as the buffer holds (here 40 bytes), is receivable; less is not.
    /// </summary>
    [Theory]
    [InlineData(new byte[] { }, (int)NextFrame.NotThere)]
    [InlineData(new byte[] { 0x81 }, (int)NextFrame.NotThere)] // a part of a header
    [InlineData(new byte[] { 0x81, 0x82, 1, 2, 3, 4, 0x41 }, (int)NextFrame.NotThere)] // masked text of 2 bytes, 1 there
    [InlineData(new byte[] { 0x81, 0x82, 1, 2, 3, 4, 0x41, 0x42 }, (int)NextFrame.WholeDataFrame)] // masked text, whole
    [InlineData(new byte[] { 0x81, 0x80, 1, 2, 3, 4 }, (int)NextFrame.WholeDataFrame)] // an empty text message
    [InlineData(new byte[] { 0x01, 0x81, 1, 2, 3, 4, 0x41 }, (int)NextFrame.WholeDataFrame)] // a first fragment, whole
    [InlineData(new byte[] { 0x82, 0x81, 1, 2, 3, 4, 0x41 }, (int)NextFrame.WholeDataFrame)] // binary: a data frame (the gateway refuses it after reading it)
    [InlineData(new byte[] { 0x8A, 0x80, 1, 2, 3, 4 }, (int)NextFrame.Receivable)] // a pong: a control frame
    [InlineData(new byte[] { 0x89, 0x85, 1, 2, 3, 4, 9 }, (int)NextFrame.Receivable)] // a ping's header and a part of its payload
    [InlineData(new byte[] { 0x89, 0x80, 1, 2, 3, 4, 0x81, 0x80, 1, 2, 3, 4 }, (int)NextFrame.Receivable)] // a ping, then a whole message
    [InlineData(new byte[] { 0x88, 0x82, 1, 2, 3, 4, 0x03, 0xE8 }, (int)NextFrame.Receivable)] // a close frame
    [InlineData(new byte[] { 0x81, 0xB2, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }, (int)NextFrame.NotThere)] // 50 bytes announced, 39 of the frame there
    [InlineData(new byte[] { 0x81, 0xB2, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }, (int)NextFrame.Receivable)] // 50 announced, 40 there
    public async Task Peek_AtAFrameBoundary_SaysWhatTheNextReceiveCanTake_AndConsumesNothing(byte[] input, int next)
    {
        var expected = (NextFrame)next;
        var (stream, writer) = NewStream();
        await writer.WriteAsync(input);
        Assert.Equal(expected, stream.Peek(40));
        Assert.Equal(expected, stream.Peek(40)); // asked twice: the same answer, nothing was taken

        writer.Complete();
        Assert.Equal(expected == NextFrame.NotThere ? NextFrame.Receivable : expected, stream.Peek(40)); // at the end, whatever is there is the receive's
        var all = new List<byte>();
        var buffer = new byte[64];
        int read;
        while ((read = await stream.ReadAsync(buffer)) > 0)
        {
            all.AddRange(buffer.AsSpan(0, read).ToArray());
        }

        Assert.Equal(input, all); // every byte still there for the WebSocket
    }

    [Fact]
    public async Task Peek_InsideAFrame_IsReceivableOnceTheRestIsThere_AndNotThere_MakesThePipesNextReadWaitForMore()
    {
        var (stream, writer) = NewStream();
        await writer.WriteAsync(new byte[] { 0x81, 0x8A, 1, 2, 3, 4, 0, 0 }); // 10 bytes announced, 2 there
        var buffer = new byte[14];
        Assert.Equal(8, await stream.ReadAsync(buffer)); // what a WebSocket's header read takes
        Assert.False(stream.AtFrameBoundary);
        Assert.Equal(NextFrame.NotThere, stream.Peek(1024));

        var read = stream.Input.ReadAsync();
        await Task.Delay(50);
        Assert.False(read.IsCompleted); // everything was examined: the pipe waits for more, it does not spin
        await writer.WriteAsync(new byte[] { 0, 0, 0, 0, 0, 0, 0 });
        var result = await read;
        stream.Input.AdvanceTo(result.Buffer.Start);
        Assert.Equal(NextFrame.NotThere, stream.Peek(1024)); // 7 of the 8 left

        await writer.WriteAsync(new byte[] { 0 });
        Assert.Equal(NextFrame.Receivable, stream.Peek(1024));
    }

    /// <summary>A sequence may start with an empty segment: the opcode is read from the first byte, not the first span.</summary>
    [Fact]
    public void Peek_WhenTheFirstSegmentIsEmpty_ReadsTheFirstByteFromTheNext()
    {
        var empty = new Segment(Array.Empty<byte>());
        var last = empty.Append([0x81, 0x80, 1, 2, 3, 4]); // an empty masked text message
        var stream = new DuplexPipeStream(new Duplex(new FixedReader(new ReadOnlySequence<byte>(empty, 0, last, last.Memory.Length)), new Pipe().Writer));
        Assert.Equal(NextFrame.WholeDataFrame, stream.Peek(1024));
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(byte[] bytes) => Memory = bytes;

        public Segment Append(byte[] bytes)
        {
            var next = new Segment(bytes) { RunningIndex = RunningIndex + Memory.Length };
            Next = next;
            return next;
        }
    }

    /// <summary>A reader that always holds the same bytes (what <see cref="DuplexPipeStream.Peek"/> looks at).</summary>
    private sealed class FixedReader(ReadOnlySequence<byte> bytes) : PipeReader
    {
        public override bool TryRead(out ReadResult result)
        {
            result = new ReadResult(bytes, isCanceled: false, isCompleted: false);
            return true;
        }

        public override ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default) => new(new ReadResult(bytes, false, false));

        public override void AdvanceTo(SequencePosition consumed)
        {
        }

        public override void AdvanceTo(SequencePosition consumed, SequencePosition examined)
        {
        }

        public override void CancelPendingRead()
        {
        }

        public override void Complete(Exception? exception = null)
        {
        }
    }

    /// <summary>
    /// While a thread corks, a frame goes into its socket's pipe without a flush, and the write completes at once;
    /// <see cref="DuplexPipeStream.FlushCorked"/> flushes every output written to, each frame whole and in its order.
    /// </summary>
    [Fact]
    public async Task CorkedWrites_StayInThePipe_UntilFlushCorked_ThenLeaveInOrder()
    {
        var (a, aWire) = NewOutput();
        var (b, bWire) = NewOutput();
        byte[] one = [0x81, 0x01, 0x31], two = [0x81, 0x01, 0x32], three = [0x81, 0x01, 0x33];

        DuplexPipeStream.Cork(true);
        try
        {
            Assert.True(CompletesAtOnce(a.WriteAsync(one)));
            Assert.True(CompletesAtOnce(a.WriteAsync(two)));
            Assert.True(CompletesAtOnce(b.WriteAsync(three)));
        }
        finally
        {
            DuplexPipeStream.Cork(false);
        }

        Assert.False(aWire.TryRead(out _)); // nothing flushed yet
        Assert.False(bWire.TryRead(out _));

        DuplexPipeStream.FlushCorked();
        Assert.Equal(one.Concat(two).ToArray(), ReadAll(aWire));
        Assert.Equal(three, ReadAll(bWire));
        DuplexPipeStream.FlushCorked(); // nothing left: a second flush writes nothing
        Assert.False(aWire.TryRead(out _));
    }

    /// <summary>A write that is not corked (another thread's, or after the cork) flushes what was corked before it, in order.</summary>
    [Fact]
    public async Task AWriteOutsideTheCork_FlushesWhatWasCorkedBeforeIt_InOrder_AndAnotherThreadIsNeverCorked()
    {
        var (a, aWire) = NewOutput();
        byte[] one = [0x81, 0x01, 0x31], two = [0x81, 0x01, 0x32], three = [0x81, 0x01, 0x33];

        DuplexPipeStream.Cork(true);
        try
        {
            await a.WriteAsync(one);
            await Task.Run(async () => await a.WriteAsync(two)); // another thread: not corked, so it flushes both
        }
        finally
        {
            DuplexPipeStream.Cork(false);
        }

        Assert.Equal(one.Concat(two).ToArray(), ReadAll(aWire));
        await a.WriteAsync(three);
        Assert.Equal(three, ReadAll(aWire));
        DuplexPipeStream.FlushCorked();
    }

    /// <summary>
    /// A cork holds at most <see cref="DuplexPipeStream.CorkLimit"/> unflushed bytes per output: the frame that would pass
    /// it flushes what is corked and goes out as any write does.
    /// </summary>
    [Fact]
    public async Task CorkedWrites_PastTheCorkLimit_AreFlushed()
    {
        var (a, aWire) = NewOutput();
        var frame = new byte[] { 0x81, 0x7E, 0x0F, 0xFC }.Concat(new byte[4092]).ToArray(); // 4,096 bytes
        var frames = (DuplexPipeStream.CorkLimit / frame.Length) + 1;

        DuplexPipeStream.Cork(true);
        try
        {
            for (var i = 0; i < frames; i++)
            {
                await a.WriteAsync(frame);
            }
        }
        finally
        {
            DuplexPipeStream.Cork(false);
        }

        Assert.Equal(frames * frame.Length, ReadAll(aWire).Length); // all of it flushed by the last write
        DuplexPipeStream.FlushCorked();
    }

    /// <summary>
    /// The flush of a cork to a client that stopped reading waits, and holds the output as a write's flush would: the next
    /// frame waits behind it, and the abort releases both.
    /// </summary>
    [Fact]
    public async Task FlushCorked_ToAClientThatStoppedReading_HoldsTheOutput_UntilTheAbort()
    {
        var output = new Pipe(new PipeOptions(pauseWriterThreshold: 1, resumeWriterThreshold: 1, useSynchronizationContext: false));
        var stream = new DuplexPipeStream(new Duplex(new Pipe().Reader, output.Writer));
        DuplexPipeStream.Cork(true);
        try
        {
            Assert.True(CompletesAtOnce(stream.WriteAsync(new byte[] { 0x81, 0x01, 0x41 })));
        }
        finally
        {
            DuplexPipeStream.Cork(false);
        }

        DuplexPipeStream.FlushCorked(); // over the pause threshold: the flush waits for the client
        var next = stream.WriteAsync(new byte[] { 0x81, 0x00 }, CancellationToken.None).AsTask();
        await Task.Delay(50);
        Assert.False(next.IsCompleted);

        stream.Abort();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => next.WaitAsync(TimeSpan.FromSeconds(10)));
        var wire = await output.Reader.ReadAsync();
        Assert.Equal(new byte[] { 0x81, 0x01, 0x41 }, wire.Buffer.ToArray()); // the corked frame, and not the one after the abort
    }

    /// <summary>
    /// Corked writes, plain writes (as from another thread) and keep-alives in any order over two sockets, with a flush of
    /// the cork at any point and at the end: each socket's wire is its frames whole and in their order, with pongs only
    /// between them.
    /// </summary>
    [Fact]
    public void CorkedPlainAndKeepAliveWrites_InAnyOrder_LeaveEveryFrameWholeAndInOrder()
    {
        Gen.Select(Gen.Int[0, 3], Gen.Int[0, 1], Gen.Int[1, 300]).Array[1, 40].Sample(
            steps =>
            {
                var sockets = new[] { NewOutput(), NewOutput() };
                var sent = new[] { new List<byte[]>(), new List<byte[]>() };
                try
                {
                    foreach (var (kind, which, length) in steps)
                    {
                        var (stream, _) = sockets[which];
                        var frame = TextFrame(sent[which].Count, length);
                        switch (kind)
                        {
                            case 0:
                                DuplexPipeStream.Cork(true);
                                try
                                {
                                    Assert.True(CompletesAtOnce(stream.WriteAsync(frame)));
                                }
                                finally
                                {
                                    DuplexPipeStream.Cork(false);
                                }

                                sent[which].Add(frame);
                                break;
                            case 1:
                                stream.WriteAsync(frame).AsTask().GetAwaiter().GetResult();
                                sent[which].Add(frame);
                                break;
                            case 2:
                                stream.TryWriteKeepAlive();
                                break;
                            default:
                                DuplexPipeStream.FlushCorked();
                                break;
                        }
                    }
                }
                finally
                {
                    DuplexPipeStream.FlushCorked();
                }

                for (var i = 0; i < 2; i++)
                {
                    var wire = ReadAll(sockets[i].Wire);
                    var frames = new List<byte[]>();
                    var at = 0;
                    while (at < wire.Length)
                    {
                        var length = (int)DuplexPipeStream.FrameLength(new ReadOnlySequence<byte>(wire, at, wire.Length - at));
                        Assert.True(length > 0 && at + length <= wire.Length, "a frame cut short");
                        if (wire[at] != 0x8A)
                        {
                            frames.Add(wire[at..(at + length)]);
                        }
                        else
                        {
                            Assert.Equal(2, length); // a keep-alive: an empty pong
                        }

                        at += length;
                    }

                    Assert.Equal(sent[i], frames);
                }
            },
            iter: 300,
            threads: 1);

        static byte[] TextFrame(int index, int length)
        {
            var payload = new byte[length];
            payload.AsSpan().Fill((byte)('a' + (index % 26)));
            return length < 126
                ? [0x81, (byte)length, .. payload]
                : [0x81, 0x7E, (byte)(length >> 8), (byte)length, .. payload];
        }
    }

    /// <summary>Whether <paramref name="write"/> had completed when it returned (then observed, as a ValueTask must be once).</summary>
    private static bool CompletesAtOnce(ValueTask write)
    {
        var done = write.IsCompletedSuccessfully;
        write.AsTask().GetAwaiter().GetResult();
        return done;
    }

    /// <summary>A stream over a new output pipe (large enough never to wait), and the pipe's reader: the wire.</summary>
    private static (DuplexPipeStream Stream, PipeReader Wire) NewOutput()
    {
        var output = new Pipe(new PipeOptions(pauseWriterThreshold: 0, useSynchronizationContext: false));
        return (new DuplexPipeStream(new Duplex(new Pipe().Reader, output.Writer)), output.Reader);
    }

    /// <summary>Everything flushed to <paramref name="wire"/> so far (a read that does not wait).</summary>
    private static byte[] ReadAll(PipeReader wire)
    {
        if (!wire.TryRead(out var result))
        {
            return [];
        }

        var bytes = result.Buffer.ToArray();
        wire.AdvanceTo(result.Buffer.End);
        return bytes;
    }

    private static (DuplexPipeStream Stream, PipeWriter Input) NewStream()
    {
        var input = new Pipe();
        var output = new Pipe();
        return (new DuplexPipeStream(new Duplex(input.Reader, output.Writer)), input.Writer);
    }

    private sealed record Duplex(PipeReader Input, PipeWriter Output) : IDuplexPipe;
}
