using System.Net;
using Amazon.DynamoDBv2;
using Amazon.DynamoDBv2.Model;
using Amazon.Runtime;
using Talki.Signalling.Ports;

namespace Talki.Signalling.Aws.DynamoDb;

/// <summary>
/// The DynamoDB store as the engine sees it: DynamoDB's throttling and server errors that outlast the SDK's own retries
/// become <see cref="RoomStoreUnavailableException"/>, an expected failure the engine answers with
/// <c>service_unavailable</c>. DynamoDB answers 400 <c>ProvisionedThroughputExceededException</c>,
/// <c>RequestLimitExceeded</c> or <c>ThrottlingException</c> when throttled and 5xx on its own failures, and the SDKs
/// retry them with backoff first ("Error handling with DynamoDB", DynamoDB developer guide).
/// </summary>
internal sealed class DynamoDbRoomStoreGuard(DynamoDbRoomStore inner) : IRoomStore
{
    internal DynamoDbRoomStore Inner => inner;

    public ValueTask CreateRoomAsync(RoomRecord room, MemberRecord admin, CancellationToken cancellationToken = default) => Guard(inner.CreateRoomAsync(room, admin, cancellationToken));

    public ValueTask<RoomRecord?> GetRoomAsync(RoomId room, CancellationToken cancellationToken = default) => Guard(inner.GetRoomAsync(room, cancellationToken));

    public ValueTask<MemberRecord?> GetMemberAsync(RoomId room, MemberId member, CancellationToken cancellationToken = default) => Guard(inner.GetMemberAsync(room, member, cancellationToken));

    public ValueTask<(MemberRecord? First, MemberRecord? Second)> GetMemberPairAsync(RoomId room, MemberId first, MemberId second, CancellationToken cancellationToken = default) => Guard(inner.GetMemberPairAsync(room, first, second, cancellationToken));

    public ValueTask<MemberRecord?> FindMemberByUserAsync(RoomId room, string userId, CancellationToken cancellationToken = default) => Guard(inner.FindMemberByUserAsync(room, userId, cancellationToken));

    public ValueTask<IReadOnlyList<MemberRecord>> ListMembersAsync(RoomId room, CancellationToken cancellationToken = default) => Guard(inner.ListMembersAsync(room, cancellationToken));

    public ValueTask<AddMemberOutcome> TryAddMemberAsync(MemberRecord member, int capacity, int maxPending, CancellationToken cancellationToken = default) => Guard(inner.TryAddMemberAsync(member, capacity, maxPending, cancellationToken));

    public ValueTask<MemberRecord?> TryUpdateMemberAsync(MemberRecord updated, CancellationToken cancellationToken = default) => Guard(inner.TryUpdateMemberAsync(updated, cancellationToken));

    public ValueTask<AdmitMemberOutcome> TryAdmitMemberAsync(MemberRecord admitted, int capacity, CancellationToken cancellationToken = default) => Guard(inner.TryAdmitMemberAsync(admitted, capacity, cancellationToken));

    public ValueTask StoreTicketAsync(TicketRecord ticket, CancellationToken cancellationToken = default) => Guard(inner.StoreTicketAsync(ticket, cancellationToken));

    public ValueTask<TicketRecord?> ConsumeTicketAsync(string hash, CancellationToken cancellationToken = default) => Guard(inner.ConsumeTicketAsync(hash, cancellationToken));

    public ValueTask<MemberRecord?> TakeMemberTicketAsync(RoomId room, MemberId member, string hash, CancellationToken cancellationToken = default) => Guard(inner.TakeMemberTicketAsync(room, member, hash, cancellationToken));

    public ValueTask<MemberRecord?> TakeMemberTicketToWaitAsync(RoomId room, MemberId member, string hash, string connectionId, int protocolVersion, DateTimeOffset now, CancellationToken cancellationToken = default) => Guard(inner.TakeMemberTicketToWaitAsync(room, member, hash, connectionId, protocolVersion, now, cancellationToken));

    public ValueTask PutConnectionAsync(ConnectionRecord connection, CancellationToken cancellationToken = default) => Guard(inner.PutConnectionAsync(connection, cancellationToken));

    public ValueTask<ConnectionRecord?> GetConnectionAsync(string connectionId, CancellationToken cancellationToken = default) => Guard(inner.GetConnectionAsync(connectionId, cancellationToken));

    public ValueTask<ConnectionRecord?> RemoveConnectionAsync(string connectionId, CancellationToken cancellationToken = default) => Guard(inner.RemoveConnectionAsync(connectionId, cancellationToken));

    public ValueTask<bool> EnqueueMessageAsync(RoomId room, MemberId member, long epoch, ReadOnlyMemory<byte> message, int maxMessages, int maxBytes, DateTimeOffset expiresAt, CancellationToken cancellationToken = default)
        => Guard(inner.EnqueueMessageAsync(room, member, epoch, message, maxMessages, maxBytes, expiresAt, cancellationToken));

    public ValueTask<QueuedMessages> TakeQueuedMessagesAsync(RoomId room, MemberId member, long epoch, CancellationToken cancellationToken = default)
        => Guard(inner.TakeQueuedMessagesAsync(room, member, epoch, cancellationToken));

    internal static bool IsUnavailable(AmazonServiceException exception) => exception switch
    {
        ProvisionedThroughputExceededException or RequestLimitExceededException or InternalServerErrorException => true,
        { ErrorCode: "ThrottlingException" or "ServiceUnavailable" or "ThrottlingError" } => true,
        { StatusCode: >= HttpStatusCode.InternalServerError } => true,
        _ => false,
    };

    private static async ValueTask Guard(ValueTask operation)
    {
        try
        {
            await operation.ConfigureAwait(false);
        }
        catch (AmazonServiceException exception) when (IsUnavailable(exception))
        {
            throw Unavailable(exception);
        }
    }

    private static async ValueTask<T> Guard<T>(ValueTask<T> operation)
    {
        try
        {
            return await operation.ConfigureAwait(false);
        }
        catch (AmazonServiceException exception) when (IsUnavailable(exception))
        {
            throw Unavailable(exception);
        }
    }

    private static RoomStoreUnavailableException Unavailable(AmazonServiceException exception)
        => new($"DynamoDB is unavailable after the SDK's retries ({exception.ErrorCode}, {(int)exception.StatusCode}).", exception);
}
