using System.Text;

namespace Talki.Signalling.Emulator.Tests;

/// <summary>The checksum the emulator writes into <c>x-amz-crc32</c> when it changes a DynamoDB response.</summary>
public sealed class Crc32Tests
{
    [Theory]
    [InlineData("123456789", 0xCBF43926u)] // CRC-32/ISO-HDLC's check value
    [InlineData("", 0u)]
    [InlineData("{}", 0xA3A6BF43u)] // zlib.crc32(b"{}"), the same algorithm
    public void Of_KnownInputs_GivesTheIsoHdlcChecksum(string text, uint expected) => Assert.Equal(expected, Crc32.Of(Encoding.ASCII.GetBytes(text)));
}
