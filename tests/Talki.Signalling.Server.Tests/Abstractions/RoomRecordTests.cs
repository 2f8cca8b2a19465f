namespace Talki.Signalling.Server.Tests.Abstractions;

public sealed class RoomRecordTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 6, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public void MemberIdOf_IsAWellFormedIdThatDependsOnTheKeyAndTheUser_AndNoneWithoutAKey()
    {
        var room = NewRoom(RoomRecord.NewMemberIdKey());
        var id = room.MemberIdOf("user-1")!.Value;

        Assert.Equal(id, room.MemberIdOf("user-1"));
        Assert.Equal(id, (room with { SealsAt = Now }).MemberIdOf("user-1")); // the key and the user only
        Assert.Equal(MemberId.New().Value.Length, id.Value.Length);
        Assert.True(MemberId.TryParse(id.Value, out _));
        Assert.NotEqual(id, room.MemberIdOf("user-2"));
        Assert.NotEqual(id, room.MemberIdOf("User-1"));
        Assert.NotEqual(id, room.MemberIdOf("user-1 "));
        Assert.NotEqual(id, NewRoom(RoomRecord.NewMemberIdKey()).MemberIdOf("user-1"));
        Assert.Null(NewRoom(null).MemberIdOf("user-1"));
        Assert.NotEqual(room.MemberIdOf(string.Empty), room.MemberIdOf("\0"));
    }

    [Fact]
    public void MemberIdOf_AKnownKeyAndUser_GiveAFixedId()
    {
        // HMAC-SHA256 over "talki member id\0" and the user id in UTF-16LE, first 12 bytes in base64url: pinned, because a
        // store keeps ids made by one version and another version must derive the same ones.
        var room = NewRoom(System.Buffers.Text.Base64Url.EncodeToString(Enumerable.Range(0, 32).Select(i => (byte)i).ToArray()));
        using var hmac = new System.Security.Cryptography.HMACSHA256(Enumerable.Range(0, 32).Select(i => (byte)i).ToArray());
        var expected = System.Buffers.Text.Base64Url.EncodeToString(hmac.ComputeHash([.. "talki member id\0"u8, .. System.Text.Encoding.Unicode.GetBytes("user-1")]).AsSpan(0, 12));

        Assert.Equal(expected, room.MemberIdOf("user-1")!.Value.Value);
        Assert.Equal("RkENrs2iS_2ueVM7", room.MemberIdOf("user-1")!.Value.Value);
    }

    [Fact]
    public void MemberIdOf_TwoUserIdsThatDifferOnlyInTheirLoneSurrogates_AreTwoMemberIds()
    {
        // UTF-8 would encode both as the replacement character: two users, one member id, and the second locked out.
        var room = NewRoom(RoomRecord.NewMemberIdKey());

        Assert.NotEqual(room.MemberIdOf("user-\uD800"), room.MemberIdOf("user-\uD801"));
        Assert.NotEqual(room.MemberIdOf("user-\uD800"), room.MemberIdOf("user-\uFFFD"));
    }

    [Theory]
    [InlineData("")]
    [InlineData("short")]
    [InlineData("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")] // 33 bytes
    [InlineData("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")] // 31 bytes
    [InlineData("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+")] // not base64url
    public void MemberIdOf_AMalformedStoredKey_Throws(string key)
        => Assert.Throws<InvalidOperationException>(() => NewRoom(key).MemberIdOf("user-1"));

    [Fact]
    public void NewMemberIdKey_Is32RandomBytes_AndToStringNeverShowsIt()
    {
        var key = RoomRecord.NewMemberIdKey();
        var room = NewRoom(key);

        Assert.Equal(32, System.Buffers.Text.Base64Url.DecodeFromChars(key).Length);
        Assert.NotEqual(key, RoomRecord.NewMemberIdKey());
        Assert.DoesNotContain(key, room.ToString(), StringComparison.Ordinal);
        Assert.Contains(room.Id.Value, room.ToString(), StringComparison.Ordinal);
        Assert.Contains("MemberIdKey = (secret)", room.ToString(), StringComparison.Ordinal);
        Assert.Contains("MemberIdKey = none", NewRoom(null).ToString(), StringComparison.Ordinal);
    }

    private static RoomRecord NewRoom(string? key)
        => new(RoomId.New(), MemberId.New(), Now, Now.AddMinutes(5), Now.AddMinutes(15)) { MemberIdKey = key };
}
