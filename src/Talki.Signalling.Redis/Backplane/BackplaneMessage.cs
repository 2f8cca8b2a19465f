using System.Buffers.Binary;
using System.Net.WebSockets;
using System.Text;
using Talki.Signalling.Ports;

namespace Talki.Signalling.Redis.Backplane;

/// <summary>What travels on an instance's channel.</summary>
internal enum BackplaneMessageKind : byte
{
    /// <summary>Deliver a payload to a socket of the receiving instance and answer the outcome.</summary>
    Push = 1,

    /// <summary>The outcome of a push this instance asked for.</summary>
    Reply = 2,

    /// <summary>Close a socket of the receiving instance (no answer).</summary>
    Close = 3,
}

/// <summary>
/// The backplane's binary frames (one pub/sub message each; ids are ASCII, at most 255 bytes):
/// push <c>[1][request id: 8][sender length: 1][sender][connection length: 1][connection][payload]</c>,
/// reply <c>[2][request id: 8][outcome: 1]</c>, close <c>[3][status: 2][connection length: 1][connection][reason, UTF-8]</c>.
/// </summary>
internal readonly struct BackplaneMessage
{
    private readonly ReadOnlyMemory<byte> _frame;

    private BackplaneMessage(ReadOnlyMemory<byte> frame) => _frame = frame;

    public BackplaneMessageKind Kind => (BackplaneMessageKind)_frame.Span[0];

    public static byte[] Push(long requestId, string sender, string connectionId, ReadOnlySpan<byte> payload)
    {
        var frame = new byte[1 + 8 + 1 + sender.Length + 1 + connectionId.Length + payload.Length];
        frame[0] = (byte)BackplaneMessageKind.Push;
        BinaryPrimitives.WriteInt64LittleEndian(frame.AsSpan(1), requestId);
        var offset = WriteId(frame, 9, sender);
        offset = WriteId(frame, offset, connectionId);
        payload.CopyTo(frame.AsSpan(offset));
        return frame;
    }

    public static byte[] Reply(long requestId, PushOutcome outcome)
    {
        var frame = new byte[10];
        frame[0] = (byte)BackplaneMessageKind.Reply;
        BinaryPrimitives.WriteInt64LittleEndian(frame.AsSpan(1), requestId);
        frame[9] = (byte)outcome;
        return frame;
    }

    public static byte[] Close(string connectionId, WebSocketCloseStatus status, string reason)
    {
        var reasonLength = Encoding.UTF8.GetByteCount(reason);
        var frame = new byte[1 + 2 + 1 + connectionId.Length + reasonLength];
        frame[0] = (byte)BackplaneMessageKind.Close;
        BinaryPrimitives.WriteUInt16LittleEndian(frame.AsSpan(1), (ushort)status);
        var offset = WriteId(frame, 3, connectionId);
        Encoding.UTF8.GetBytes(reason, frame.AsSpan(offset));
        return frame;
    }

    public static bool TryRead(ReadOnlyMemory<byte> frame, out BackplaneMessage message)
    {
        message = new BackplaneMessage(frame);
        return frame.Length > 0 && (BackplaneMessageKind)frame.Span[0] switch
        {
            BackplaneMessageKind.Push => frame.Length >= 11,
            BackplaneMessageKind.Reply => frame.Length == 10,
            BackplaneMessageKind.Close => frame.Length >= 4,
            _ => false,
        };
    }

    public long RequestId => BinaryPrimitives.ReadInt64LittleEndian(_frame.Span[1..]);

    public PushOutcome Outcome => (PushOutcome)_frame.Span[9];

    /// <summary>Reads a push: who asked, for which socket, and what.</summary>
    public (string Sender, string ConnectionId, ReadOnlyMemory<byte> Payload) ReadPush()
    {
        var (sender, offset) = ReadId(_frame.Span, 9);
        var (connectionId, next) = ReadId(_frame.Span, offset);
        return (sender, connectionId, _frame[next..]);
    }

    /// <summary>Reads a close.</summary>
    public (string ConnectionId, WebSocketCloseStatus Status, string Reason) ReadClose()
    {
        var status = (WebSocketCloseStatus)BinaryPrimitives.ReadUInt16LittleEndian(_frame.Span[1..]);
        var (connectionId, offset) = ReadId(_frame.Span, 3);
        return (connectionId, status, Encoding.UTF8.GetString(_frame.Span[offset..]));
    }

    private static int WriteId(byte[] frame, int offset, string id)
    {
        if (id.Length > byte.MaxValue)
        {
            throw new ArgumentException("Backplane ids are at most 255 characters.", nameof(id));
        }

        frame[offset] = (byte)id.Length;
        return offset + 1 + Encoding.ASCII.GetBytes(id, frame.AsSpan(offset + 1));
    }

    private static (string Id, int Next) ReadId(ReadOnlySpan<byte> frame, int offset)
    {
        var length = frame[offset];
        return (Encoding.ASCII.GetString(frame.Slice(offset + 1, length)), offset + 1 + length);
    }
}
