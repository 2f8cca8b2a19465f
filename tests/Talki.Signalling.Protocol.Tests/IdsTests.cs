namespace Talki.Signalling.Protocol.Tests;

public sealed class IdsTests
{
    [Fact]
    public void New_RoomIds_AreUniqueAndParse()
    {
        var ids = Enumerable.Range(0, 1000).Select(_ => RoomId.New()).ToHashSet();
        Assert.Equal(1000, ids.Count);
        foreach (var id in ids)
        {
            Assert.Equal(22, id.Value.Length); // 128 bits, base64url
            Assert.True(RoomId.TryParse(id.Value, out var parsed));
            Assert.Equal(id, parsed);
        }
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("a b")]
    [InlineData("a/b")]
    [InlineData("ä")]
    [InlineData("0123456789012345678901234567890123456789012345678901234567890123456789")]
    public void TryParse_Malformed_IsRefused(string? text)
    {
        Assert.False(RoomId.TryParse(text, out _));
        Assert.False(MemberId.TryParse(text, out _));
    }

    [Fact]
    public void MemberId_TryParseUtf8_MatchesTryParse()
    {
        var id = MemberId.New();
        Assert.True(MemberId.TryParseUtf8(System.Text.Encoding.ASCII.GetBytes(id.Value), out var parsed));
        Assert.Equal(id, parsed);
        Assert.False(MemberId.TryParseUtf8("x y"u8, out _));
    }

    [Fact]
    public void Result_Failure_CarriesCodeAndThrowsOnValue()
    {
        var result = SignallingResult<int>.Failure(SignallingErrorCode.RoomSealed, "sealed");
        Assert.False(result.IsSuccess);
        Assert.Equal(SignallingErrorCode.RoomSealed, result.Error.Code);
        Assert.Throws<InvalidOperationException>(() => result.Value);
        Assert.False(result.TryGetValue(out _, out var error));
        Assert.Equal("sealed", error.Message);
    }

    [Fact]
    public void Result_Success_CarriesValue()
    {
        SignallingResult<int> result = 42;
        Assert.True(result.IsSuccess);
        Assert.Equal(42, result.Value);
        Assert.Null(result.Error);
    }
}

public sealed class TicketIdTests
{
    [Fact]
    public void New_Is256BitBase64Url_AndParses()
    {
        var ticket = TicketId.New();
        Assert.Equal(TicketId.Length, ticket.Value.Length);
        Assert.True(TicketId.TryParse(ticket.Value, out var parsed));
        Assert.Equal(ticket, parsed);
        Assert.NotEqual(ticket, TicketId.New());
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("short")]
    [InlineData("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")]
    [InlineData("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+")]
    public void TryParse_Malformed_IsRefused(string? text) => Assert.False(TicketId.TryParse(text, out _));

    [Fact]
    public void New_ForAMemberRecord_NamesItAfterTheSecret_AndParses()
    {
        var room = RoomId.New();
        var member = MemberId.New();
        var ticket = TicketId.New(room, member);

        Assert.Equal($".{room}.{member}", ticket.Value[TicketId.Length..]);
        Assert.True(TicketId.TryParse(ticket.Value, out var parsed));
        Assert.Equal(ticket, parsed);
        Assert.True(parsed.TryGetHolder(out var holderRoom, out var holderMember));
        Assert.Equal((room, member), (holderRoom, holderMember));
        Assert.False(TicketId.New().TryGetHolder(out _, out _));
        Assert.NotEqual(ticket.Value[..TicketId.Length], TicketId.New(room, member).Value[..TicketId.Length]);
        Assert.Throws<ArgumentException>(() => TicketId.New(default, member));
        Assert.Throws<ArgumentException>(() => TicketId.New(room, default));
    }

    [Fact]
    public void Hash_OfAHeldTicket_CoversTheNames_SoTheSecretCannotBeMovedToAnotherRecord()
    {
        var ticket = TicketId.New(RoomId.New(), MemberId.New());
        var secret = ticket.Value[..TicketId.Length];
        Assert.True(TicketId.TryParse($"{secret}.{RoomId.New()}.{MemberId.New()}", out var moved));
        Assert.True(TicketId.TryParse(secret, out var bare));

        Assert.NotEqual(ticket.ComputeHash(), moved.ComputeHash());
        Assert.NotEqual(ticket.ComputeHash(), bare.ComputeHash());
        Assert.DoesNotContain(secret, ticket.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(".")]
    [InlineData(".r")]
    [InlineData(".r.")]
    [InlineData("..m")]
    [InlineData(".r.m.x")]
    [InlineData("-r.m")]
    [InlineData(".r/.m")]
    [InlineData(".r.m=")]
    [InlineData(".r. m")]
    public void TryParse_MalformedHolderNames_AreRefused(string tail)
    {
        Assert.False(TicketId.TryParse(TicketId.New().Value + tail, out _));
        Assert.False(TicketId.TryParse(TicketId.New().Value + "." + new string('r', RoomId.MaxLength + 1) + ".m", out _));
    }

    [Fact]
    public void ToString_IsRedacted_AndHashIsStableAndDifferent()
    {
        var ticket = TicketId.New();
        Assert.DoesNotContain(ticket.Value, ticket.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain(ticket.Value, $"{ticket}", StringComparison.Ordinal);
        Assert.Equal(ticket.ComputeHash(), ticket.ComputeHash());
        Assert.NotEqual(ticket.Value, ticket.ComputeHash());
        Assert.Equal(43, ticket.ComputeHash().Length);
        Assert.Throws<InvalidOperationException>(() => default(TicketId).ComputeHash());
    }
}
