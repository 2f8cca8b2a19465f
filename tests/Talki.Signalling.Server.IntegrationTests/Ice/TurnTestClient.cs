using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace Talki.Signalling.Server.IntegrationTests.Ice;

/// <summary>The outcome of a TURN Allocate: a relayed address, or the server's error.</summary>
/// <param name="RelayedAddress">The XOR-RELAYED-ADDRESS of a success response.</param>
/// <param name="ErrorCode">The ERROR-CODE of an error response (401: unauthenticated).</param>
/// <param name="ErrorReason">The error's reason phrase.</param>
internal sealed record TurnAllocation(IPEndPoint? RelayedAddress, int? ErrorCode, string? ErrorReason)
{
    public override string ToString() => RelayedAddress is not null ? $"relayed {RelayedAddress}" : $"error {ErrorCode} {ErrorReason}";
}

/// <summary>
/// A minimal TURN client over UDP (RFC 8656/5766 Allocate with the RFC 8489/5389 long-term credential mechanism), for tests:
/// Allocate → 401 with REALM and NONCE → Allocate again with USERNAME, REALM, NONCE and MESSAGE-INTEGRITY.
/// Every exchange retransmits and gives up after a timeout, so nothing can hang.
/// </summary>
internal sealed class TurnTestClient : IDisposable
{
    private const ushort BindingRequest = 0x0001;
    private const ushort AllocateRequest = 0x0003;
    private const ushort SuccessClass = 0x0100;
    private const ushort ErrorClass = 0x0110;
    private const ushort AttrUsername = 0x0006;
    private const ushort AttrMessageIntegrity = 0x0008;
    private const ushort AttrErrorCode = 0x0009;
    private const ushort AttrRealm = 0x0014;
    private const ushort AttrNonce = 0x0015;
    private const ushort AttrXorRelayedAddress = 0x0016;
    private const ushort AttrRequestedTransport = 0x0019;
    private const uint MagicCookie = 0x2112A442;
    private const int HeaderLength = 20;
    private const int IntegrityAttributeLength = 4 + 20;
    private static readonly TimeSpan Retransmit = TimeSpan.FromMilliseconds(500);

    private readonly UdpClient _udp;
    private readonly IPEndPoint _server;
    private readonly TimeSpan _timeout;

    public TurnTestClient(IPEndPoint server, TimeSpan? timeout = null)
    {
        _server = server;
        _timeout = timeout ?? TimeSpan.FromSeconds(5);
        _udp = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        _udp.Connect(server);
    }

    /// <summary>Asks for a UDP relay with the long-term credentials <paramref name="username"/>/<paramref name="password"/>.</summary>
    public async Task<TurnAllocation> AllocateAsync(string username, string password, CancellationToken cancellationToken = default)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(_timeout);
        var challenge = await ExchangeAsync(Message(AllocateRequest, [RequestedTransportUdp()], key: null), cts.Token);
        if (challenge.Type == (AllocateRequest | SuccessClass))
        {
            throw new InvalidOperationException("The TURN server allocated without asking for credentials.");
        }

        var response = challenge;
        for (var attempt = 0; attempt < 2; attempt++)
        {
            var (code, reason) = ErrorOf(response);
            var realm = response.Text(AttrRealm);
            var nonce = response.Text(AttrNonce);
            if (code is not (401 or 438) || realm is null || nonce is null)
            {
                return new TurnAllocation(null, code, reason);
            }

            var key = LongTermKey(username, realm, password);
            var request = Message(
                AllocateRequest,
                [RequestedTransportUdp(), (AttrUsername, Encoding.UTF8.GetBytes(username)), (AttrRealm, Encoding.UTF8.GetBytes(realm)), (AttrNonce, Encoding.UTF8.GetBytes(nonce))],
                key);
            response = await ExchangeAsync(request, cts.Token);
            if (response.Type == (AllocateRequest | SuccessClass))
            {
                if (!response.HasValidIntegrity(key))
                {
                    throw new InvalidOperationException("The success response's MESSAGE-INTEGRITY does not match the credentials.");
                }

                return new TurnAllocation(response.XorAddress(AttrXorRelayedAddress) ?? throw new InvalidOperationException("No XOR-RELAYED-ADDRESS."), null, null);
            }

            if (ErrorOf(response).Code != 438)
            {
                break; // 438 Stale Nonce: once more with the fresh nonce; anything else is the answer.
            }
        }

        var (finalCode, finalReason) = ErrorOf(response);
        return new TurnAllocation(null, finalCode, finalReason);
    }

    /// <summary>Sends an Allocate without credentials; the answer of a TURN server with long-term credentials is 401 with a REALM.</summary>
    public async Task<string?> ChallengeRealmAsync(CancellationToken cancellationToken = default)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(_timeout);
        var response = await ExchangeAsync(Message(AllocateRequest, [RequestedTransportUdp()], key: null), cts.Token);
        return ErrorOf(response).Code == 401 ? response.Text(AttrRealm) : null;
    }

    /// <summary>A STUN Binding request; true when a success response arrives.</summary>
    public async Task<bool> BindingAsync(CancellationToken cancellationToken = default)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(_timeout);
        var response = await ExchangeAsync(Message(BindingRequest, [], key: null), cts.Token);
        return response.Type == (BindingRequest | SuccessClass);
    }

    public void Dispose() => _udp.Dispose();

    /// <summary>The long-term credential key: MD5(username ":" realm ":" password) (SASLprep is the identity for these ASCII values).</summary>
    private static byte[] LongTermKey(string username, string realm, string password)
    {
#pragma warning disable CA5351 // STUN's long-term credential mechanism mandates MD5 for the key.
        return MD5.HashData(Encoding.UTF8.GetBytes($"{username}:{realm}:{password}"));
#pragma warning restore CA5351
    }

    private static (ushort Type, byte[] Value) RequestedTransportUdp() => (AttrRequestedTransport, [17, 0, 0, 0]);

    private static (int? Code, string? Reason) ErrorOf(StunMessage message)
    {
        if ((message.Type & ErrorClass) != ErrorClass || message.Attribute(AttrErrorCode) is not { Length: >= 4 } value)
        {
            return (null, null);
        }

        return (((value[2] & 0x07) * 100) + value[3], Encoding.UTF8.GetString(value, 4, value.Length - 4));
    }

    /// <summary>Encodes a request; with a key, MESSAGE-INTEGRITY (HMAC-SHA1 over the message, its length counting the attribute) ends it.</summary>
    private static byte[] Message(ushort type, IReadOnlyList<(ushort Type, byte[] Value)> attributes, byte[]? key)
    {
        var length = attributes.Sum(a => 4 + Padded(a.Value.Length)) + (key is null ? 0 : IntegrityAttributeLength);
        var buffer = new byte[HeaderLength + length];
        BinaryPrimitives.WriteUInt16BigEndian(buffer, type);
        BinaryPrimitives.WriteUInt16BigEndian(buffer.AsSpan(2), (ushort)length);
        BinaryPrimitives.WriteUInt32BigEndian(buffer.AsSpan(4), MagicCookie);
        RandomNumberGenerator.Fill(buffer.AsSpan(8, 12));
        var offset = HeaderLength;
        foreach (var (attributeType, value) in attributes)
        {
            BinaryPrimitives.WriteUInt16BigEndian(buffer.AsSpan(offset), attributeType);
            BinaryPrimitives.WriteUInt16BigEndian(buffer.AsSpan(offset + 2), (ushort)value.Length);
            value.CopyTo(buffer, offset + 4);
            offset += 4 + Padded(value.Length);
        }

        if (key is not null)
        {
            BinaryPrimitives.WriteUInt16BigEndian(buffer.AsSpan(offset), AttrMessageIntegrity);
            BinaryPrimitives.WriteUInt16BigEndian(buffer.AsSpan(offset + 2), 20);
            Integrity(key, buffer.AsSpan(0, offset)).CopyTo(buffer, offset + 4);
        }

        return buffer;
    }

    /// <summary>HMAC-SHA1 over the message up to MESSAGE-INTEGRITY; its header's length already counts that attribute.</summary>
    private static byte[] Integrity(byte[] key, ReadOnlySpan<byte> messageBeforeIntegrity)
    {
#pragma warning disable CA5350 // STUN's MESSAGE-INTEGRITY is HMAC-SHA1 by definition.
        return HMACSHA1.HashData(key, messageBeforeIntegrity);
#pragma warning restore CA5350
    }

    private static int Padded(int length) => (length + 3) & ~3;

    /// <summary>Sends the request (again every 500 ms) until a response with its transaction id arrives.</summary>
    private async Task<StunMessage> ExchangeAsync(byte[] request, CancellationToken cancellationToken)
    {
        var transaction = request[8..20];
        try
        {
            while (true)
            {
                using var attempt = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                attempt.CancelAfter(Retransmit);
                try
                {
                    await _udp.SendAsync(request, attempt.Token);
                    while (true)
                    {
                        var datagram = (await _udp.ReceiveAsync(attempt.Token)).Buffer;
                        if (StunMessage.TryParse(datagram, out var message) && message.TransactionId.AsSpan().SequenceEqual(transaction))
                        {
                            return message;
                        }
                    }
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    // No answer yet: retransmit.
                }
                catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused)
                {
                    // ICMP port unreachable: nothing listens (yet). Wait, then retransmit.
                    await Task.Delay(Retransmit, cancellationToken);
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"No STUN answer from {_server} within {_timeout}.");
        }
    }

    private sealed class StunMessage
    {
        private readonly byte[] _bytes;
        private readonly List<(ushort Type, int Offset, int Length)> _attributes;

        private StunMessage(byte[] bytes, List<(ushort Type, int Offset, int Length)> attributes)
        {
            _bytes = bytes;
            _attributes = attributes;
        }

        public ushort Type => BinaryPrimitives.ReadUInt16BigEndian(_bytes);

        public byte[] TransactionId => _bytes[8..20];

        public static bool TryParse(byte[] bytes, out StunMessage message)
        {
            message = null!;
            if (bytes.Length < HeaderLength || BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(4)) != MagicCookie)
            {
                return false;
            }

            var end = HeaderLength + BinaryPrimitives.ReadUInt16BigEndian(bytes.AsSpan(2));
            if (end > bytes.Length)
            {
                return false;
            }

            var attributes = new List<(ushort, int, int)>();
            var offset = HeaderLength;
            while (offset + 4 <= end)
            {
                var type = BinaryPrimitives.ReadUInt16BigEndian(bytes.AsSpan(offset));
                var length = BinaryPrimitives.ReadUInt16BigEndian(bytes.AsSpan(offset + 2));
                if (offset + 4 + length > end)
                {
                    return false;
                }

                attributes.Add((type, offset, length));
                offset += 4 + Padded(length);
            }

            message = new StunMessage(bytes, attributes);
            return true;
        }

        public byte[]? Attribute(ushort type)
        {
            foreach (var (t, offset, length) in _attributes)
            {
                if (t == type)
                {
                    return _bytes[(offset + 4)..(offset + 4 + length)];
                }
            }

            return null;
        }

        public string? Text(ushort type) => Attribute(type) is { } value ? Encoding.UTF8.GetString(value) : null;

        public IPEndPoint? XorAddress(ushort type)
        {
            if (Attribute(type) is not { Length: 8 } value || value[1] != 0x01)
            {
                return null; // only IPv4 is asked for
            }

            var port = BinaryPrimitives.ReadUInt16BigEndian(value.AsSpan(2)) ^ (ushort)(MagicCookie >> 16);
            var address = BinaryPrimitives.ReadUInt32BigEndian(value.AsSpan(4)) ^ MagicCookie;
            var octets = new byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(octets, address);
            return new IPEndPoint(new IPAddress(octets), port);
        }

        /// <summary>Checks the response's MESSAGE-INTEGRITY with the same key (the server proves it knows the password too).</summary>
        public bool HasValidIntegrity(byte[] key)
        {
            foreach (var (t, offset, length) in _attributes)
            {
                if (t == AttrMessageIntegrity && length == 20)
                {
                    var covered = _bytes[..offset];
                    BinaryPrimitives.WriteUInt16BigEndian(covered.AsSpan(2), (ushort)(offset - HeaderLength + IntegrityAttributeLength));
                    return CryptographicOperations.FixedTimeEquals(Integrity(key, covered), _bytes.AsSpan(offset + 4, 20));
                }
            }

            return false;
        }
    }
}
