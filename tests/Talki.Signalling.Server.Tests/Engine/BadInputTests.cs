using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Talki.Signalling.Ports;
using Talki.Signalling.Protocol;
using Talki.Signalling.Server.Storage;

namespace Talki.Signalling.Server.Tests.Engine;

public sealed class BadInputTests
{
    [Theory]
    [InlineData("not json", SignallingErrorCode.MalformedMessage)]
    [InlineData("{", SignallingErrorCode.MalformedMessage)]
    [InlineData("[]", SignallingErrorCode.MalformedMessage)]
    [InlineData("\"hello\"", SignallingErrorCode.MalformedMessage)]
    [InlineData("{}", SignallingErrorCode.MalformedMessage)]
    [InlineData("""{"type":5}""", SignallingErrorCode.MalformedMessage)]
    [InlineData("""{"type":"ping"}{"type":"ping"}""", SignallingErrorCode.MalformedMessage)]
    [InlineData("""{"type":"teleport"}""", SignallingErrorCode.UnknownType)]
    [InlineData("""{"type":"Ping"}""", SignallingErrorCode.UnknownType)]
    [InlineData("""{"type":"signal"}""", SignallingErrorCode.MalformedMessage)]
    [InlineData("""{"type":"signal","to":"abc"}""", SignallingErrorCode.MalformedMessage)]
    [InlineData("""{"type":"signal","to":"a b","candidates":[{"candidate":"x"}]}""", SignallingErrorCode.MalformedMessage)]
    [InlineData("""{"type":"signal","to":"abc","description":"offer"}""", SignallingErrorCode.MalformedMessage)]
    [InlineData("""{"type":"signal","to":"abc","description":{"type":"bogus","sdp":"x"}}""", SignallingErrorCode.MalformedMessage)]
    [InlineData("""{"type":"signal","to":"abc","description":{"type":"offer"}}""", SignallingErrorCode.MalformedMessage)]
    [InlineData("""{"type":"signal","to":"abc","description":{"type":"offer","sdp":"x","extra":1}}""", SignallingErrorCode.MalformedMessage)]
    [InlineData("""{"type":"signal","to":"abc","candidates":[]}""", SignallingErrorCode.MalformedMessage)]
    [InlineData("""{"type":"signal","to":"abc","candidates":[{"sdpMid":"0"}]}""", SignallingErrorCode.MalformedMessage)]
    [InlineData("""{"type":"signal","to":"abc","candidates":[{"candidate":"x","sdpMLineIndex":-1}]}""", SignallingErrorCode.MalformedMessage)]
    [InlineData("""{"type":"signal","to":"abc","candidates":[{"candidate":"x","evil":"y"}]}""", SignallingErrorCode.MalformedMessage)]
    [InlineData("""{"type":"signal","to":"abc","toEpoch":"1","candidates":[{"candidate":"x"}]}""", SignallingErrorCode.MalformedMessage)]
    [InlineData("""{"type":"admit"}""", SignallingErrorCode.MalformedMessage)]
    [InlineData("""{"type":"deny","member":7}""", SignallingErrorCode.MalformedMessage)]
    [InlineData("""{"type":"hello","version":"one"}""", SignallingErrorCode.MalformedMessage)]
    [InlineData("""{"type":"ping","id":12}""", SignallingErrorCode.MalformedMessage)]
    [InlineData("""{"type":"ping","id":"\ud800"}""", SignallingErrorCode.MalformedMessage)]
    [InlineData("""{"type":"ping","id":"x\udc00y"}""", SignallingErrorCode.MalformedMessage)]
    [InlineData("""{"type":"\ud800"}""", SignallingErrorCode.MalformedMessage)]
    [InlineData("""{"\ud800":1,"type":"ping"}""", SignallingErrorCode.MalformedMessage)]
    [InlineData("""{"type":"signal","to":"\udfff","candidates":[{"candidate":"x"}]}""", SignallingErrorCode.MalformedMessage)]
    public async Task BadMessage_GetsItsErrorCode_AndConnectionStaysUsable(string json, SignallingErrorCode expected)
    {
        using var h = new EngineHarness();
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var connection = await h.ConnectAsync(admin);

        await h.SendAsync(connection, json);
        Assert.Equal(expected, h.Push.LastError(connection).Code);

        await h.SendAsync(connection, """{"type":"ping","id":"after"}""");
        Assert.Equal("after", h.Push.To<PongMessage>(connection).Last().Id);
    }

    /// <summary>Found by the fuzzer: a lone surrogate in a long (over 256 bytes) id was hidden by the escape pre-pass.</summary>
    [Fact]
    public async Task LongIdWithLoneSurrogate_IsMalformedAsNotValidUnicode()
    {
        using var h = new EngineHarness();
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var connection = await h.ConnectAsync(admin);

        await h.SendAsync(connection, $$"""{"type":"ping","id":"{{new string('a', 300)}}\ud800"}""");

        var error = h.Push.LastError(connection);
        Assert.Equal(SignallingErrorCode.MalformedMessage, error.Code);
        Assert.Equal("'id' must be valid Unicode text (no lone surrogate).", error.Message);
    }

    [Fact]
    public async Task UnknownType_EchoesCorrelationId()
    {
        using var h = new EngineHarness();
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var connection = await h.ConnectAsync(admin);
        await h.SendAsync(connection, """{"id":"corr-1","type":"teleport","where":"mars"}""");
        var error = h.Push.LastError(connection);
        Assert.Equal(SignallingErrorCode.UnknownType, error.Code);
        Assert.Equal("corr-1", error.Id);
    }

    [Fact]
    public async Task UnknownProperties_AreIgnored()
    {
        using var h = new EngineHarness();
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var connection = await h.ConnectAsync(admin);
        await h.SendAsync(connection, """{"type":"ping","id":"p","future":{"nested":[1,2,3]}}""");
        Assert.Equal("p", h.Push.Single<PongMessage>(connection).Id);
    }

    [Fact]
    public async Task InvalidUtf8_Malformed()
    {
        using var h = new EngineHarness();
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var connection = await h.ConnectAsync(admin);
        await h.Engine.HandleMessageAsync(connection, new byte[] { (byte)'{', 0xC3, 0x28, (byte)'}' });
        Assert.Equal(SignallingErrorCode.MalformedMessage, h.Push.LastError(connection).Code);
    }

    [Fact]
    public async Task OversizedMessage_MessageTooLarge()
    {
        using var h = new EngineHarness();
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var connection = await h.ConnectAsync(admin);
        var big = $$$"""{"type":"ping","id":"x","pad":"{{{new string('a', 33 * 1024)}}}"}""";
        await h.SendAsync(connection, big);
        Assert.Equal(SignallingErrorCode.MessageTooLarge, h.Push.LastError(connection).Code);
    }

    [Fact]
    public async Task MessageOnUnknownConnection_RoomNotFoundAndClosed()
    {
        using var h = new EngineHarness();
        await h.SendAsync("never-connected", """{"type":"ping"}""");
        Assert.Equal(SignallingErrorCode.RoomNotFound, h.Push.LastError("never-connected").Code);
        Assert.True(h.Push.WasClosed("never-connected"));
    }

    [Fact]
    public async Task UnexpectedException_BecomesInternalErrorWithReference_AndConnectionSurvives()
    {
        var failing = new FailingStore();
        using var h = new EngineHarness(store: sp => failing.Wrap(sp.GetRequiredService<InMemoryRoomStore>()));
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var connection = await h.ConnectAsync(admin);

        failing.FailListMembers = true;
        await h.SendAsync(connection, """{"type":"hello","id":"boom"}""");
        var error = h.Push.LastError(connection);
        Assert.Equal(SignallingErrorCode.Internal, error.Code);
        Assert.Equal("boom", error.Id);
        Assert.False(string.IsNullOrEmpty(error.Reference));
        Assert.DoesNotContain("store exploded", error.Message, StringComparison.Ordinal);

        failing.FailListMembers = false;
        await h.SendAsync(connection, """{"type":"ping","id":"alive"}""");
        Assert.Equal("alive", h.Push.Single<PongMessage>(connection).Id);
    }

    [Fact]
    public async Task TwoFailuresOnOneConnection_HaveDifferentReferences_NeitherTheClientsTraceId()
    {
        var failing = new FailingStore();
        using var h = new EngineHarness(store: sp => failing.Wrap(sp.GetRequiredService<InMemoryRoomStore>()));
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var connection = await h.ConnectAsync(admin);
        using var source = new System.Diagnostics.ActivitySource("test.upgrade");
        using var listener = new System.Diagnostics.ActivityListener
        {
            ShouldListenTo = s => s.Name == "test.upgrade",
            Sample = static (ref System.Diagnostics.ActivityCreationOptions<System.Diagnostics.ActivityContext> _) => System.Diagnostics.ActivitySamplingResult.AllData,
        };
        System.Diagnostics.ActivitySource.AddActivityListener(listener);
        using var upgrade = source.StartActivity("upgrade"); // the client's traceparent, as on the gateway's upgrade request
        Assert.NotNull(upgrade);

        failing.FailListMembers = true;
        await h.SendAsync(connection, """{"type":"hello","id":"one"}""");
        await h.SendAsync(connection, """{"type":"hello","id":"two"}""");
        var references = h.Push.To<ErrorMessage>(connection).Where(e => e.Code == SignallingErrorCode.Internal).Select(e => e.Reference).ToList();

        Assert.Equal(2, references.Count);
        Assert.NotEqual(references[0], references[1]);
        Assert.DoesNotContain(upgrade.TraceId.ToHexString(), references);
    }

    [Fact]
    public async Task Disconnect_StoreFailure_IsSwallowedAndLogged()
    {
        var failing = new FailingStore();
        using var h = new EngineHarness(store: sp => failing.Wrap(sp.GetRequiredService<InMemoryRoomStore>()));
        var admin = await h.CreateRoomAsync(EngineHarness.User("ada"));
        var connection = await h.ConnectAsync(admin);
        failing.FailListMembers = true;
        await h.Engine.DisconnectAsync(connection); // does not throw
    }

    private sealed class FailingStore
    {
        public bool FailListMembers { get; set; }

        public IRoomStore Wrap(IRoomStore inner) => new Store(inner, this);

        private sealed class Store(IRoomStore inner, FailingStore owner) : IRoomStore
        {
            public ValueTask CreateRoomAsync(RoomRecord room, MemberRecord admin, CancellationToken cancellationToken = default) => inner.CreateRoomAsync(room, admin, cancellationToken);

            public ValueTask<RoomRecord?> GetRoomAsync(RoomId room, CancellationToken cancellationToken = default) => inner.GetRoomAsync(room, cancellationToken);

            public ValueTask<MemberRecord?> GetMemberAsync(RoomId room, MemberId member, CancellationToken cancellationToken = default) => inner.GetMemberAsync(room, member, cancellationToken);

            public ValueTask<MemberRecord?> FindMemberByUserAsync(RoomId room, string userId, CancellationToken cancellationToken = default) => inner.FindMemberByUserAsync(room, userId, cancellationToken);

            public ValueTask<IReadOnlyList<MemberRecord>> ListMembersAsync(RoomId room, CancellationToken cancellationToken = default)
                => owner.FailListMembers ? throw new InvalidOperationException("store exploded") : inner.ListMembersAsync(room, cancellationToken);

            public ValueTask<AddMemberOutcome> TryAddMemberAsync(MemberRecord member, int capacity, int maxPending, CancellationToken cancellationToken = default) => inner.TryAddMemberAsync(member, capacity, maxPending, cancellationToken);

            public ValueTask<AdmitMemberOutcome> TryAdmitMemberAsync(MemberRecord admitted, int capacity, CancellationToken cancellationToken = default) => inner.TryAdmitMemberAsync(admitted, capacity, cancellationToken);

            public ValueTask<MemberRecord?> TryUpdateMemberAsync(MemberRecord updated, CancellationToken cancellationToken = default) => inner.TryUpdateMemberAsync(updated, cancellationToken);

            public ValueTask StoreTicketAsync(TicketRecord ticket, CancellationToken cancellationToken = default) => inner.StoreTicketAsync(ticket, cancellationToken);

            public ValueTask<bool> EnqueueMessageAsync(RoomId room, MemberId member, long epoch, ReadOnlyMemory<byte> message, int maxMessages, int maxBytes, DateTimeOffset expiresAt, CancellationToken cancellationToken = default)
                => inner.EnqueueMessageAsync(room, member, epoch, message, maxMessages, maxBytes, expiresAt, cancellationToken);

            public ValueTask<QueuedMessages> TakeQueuedMessagesAsync(RoomId room, MemberId member, long epoch, CancellationToken cancellationToken = default)
                => inner.TakeQueuedMessagesAsync(room, member, epoch, cancellationToken);

            public ValueTask<TicketRecord?> ConsumeTicketAsync(string hash, CancellationToken cancellationToken = default) => inner.ConsumeTicketAsync(hash, cancellationToken);

            public ValueTask<MemberRecord?> TakeMemberTicketAsync(RoomId room, MemberId member, string hash, CancellationToken cancellationToken = default) => inner.TakeMemberTicketAsync(room, member, hash, cancellationToken);

            public ValueTask PutConnectionAsync(ConnectionRecord connection, CancellationToken cancellationToken = default) => inner.PutConnectionAsync(connection, cancellationToken);

            public ValueTask<ConnectionRecord?> GetConnectionAsync(string connectionId, CancellationToken cancellationToken = default) => inner.GetConnectionAsync(connectionId, cancellationToken);

            public ValueTask<ConnectionRecord?> RemoveConnectionAsync(string connectionId, CancellationToken cancellationToken = default) => inner.RemoveConnectionAsync(connectionId, cancellationToken);
        }
    }
}
