using System.Collections.Concurrent;
using System.Net;
using System.Text;
using Amazon.DynamoDBv2;
using Amazon.Runtime;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Talki.Signalling.Aws.DynamoDb;
using Talki.Signalling.Ports;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Aws.Tests.DynamoDb;

/// <summary>
/// A room's item is read eventually consistent (half a read unit), through dynalite and a replica that can lag: DynamoDB
/// documents that such a read "might not reflect the results of a recently completed write operation" (Developer Guide,
/// "DynamoDB read consistency"), and dynalite, a single copy, never lags, so the handler below answers a read as a replica
/// that has not seen the item yet does: an empty <c>GetItem</c> answer.
/// </summary>
[Collection(DynaliteGroup.Name)]
public sealed class DynamoDbRoomReadTests(DynaliteFixture dynalite)
{
    private const string Table = "room-reads";

    [Fact]
    public async Task GetRoom_IsOneEventuallyConsistentRead_AndAReplicaThatHasNotSeenTheRoomYet_IsAskedAgainStrongly()
    {
        var replica = new LaggingReplica();
        await dynalite.EnsureTableAsync(Table);
        using var client = new AmazonDynamoDBClient(new BasicAWSCredentials("test", "test"), new AmazonDynamoDBConfig { ServiceURL = dynalite.ServiceUrl, HttpClientFactory = replica });
        using var store = new DynamoDbRoomStore(client, ownsClient: false, Options.Create(new DynamoDbRoomStoreOptions { TableName = Table }), TimeProvider.System, NullLogger<DynamoDbRoomStore>.Instance);
        var now = TimeProvider.System.GetUtcNow();
        var room = new RoomRecord(RoomId.New(), MemberId.New(), now, now.AddMinutes(5), now.AddMinutes(15));
        await store.CreateRoomAsync(room, new MemberRecord { Room = room.Id, Id = room.AdminMember, UserId = "u-ada", DisplayName = "Ada", IsAdmin = true, Admission = AdmissionStatus.Admitted, JoinedAt = now });

        replica.Reads.Clear();
        Assert.Equal(room.SealsAt, (await store.GetRoomAsync(room.Id))!.SealsAt);
        Assert.Equal(["eventual"], replica.Reads);

        // Just created, not yet on the replica the read reaches: the room is found all the same.
        replica.Reads.Clear();
        replica.MissNext = true;
        Assert.Equal(room.AdminMember, (await store.GetRoomAsync(room.Id))!.AdminMember);
        Assert.Equal(["eventual (missed)", "strong"], replica.Reads);

        // A knock on it at that moment is added, not refused as room_not_found.
        replica.MissNext = true;
        var knock = new MemberRecord { Room = room.Id, Id = MemberId.New(), UserId = "u-bob", DisplayName = "Bob", Admission = AdmissionStatus.Pending, JoinedAt = now, ExpiresAt = now.AddSeconds(30) };
        Assert.Equal(AddMemberOutcome.Added, await store.TryAddMemberAsync(knock, capacity: 8, maxPending: 16));

        // A room that is not there is read twice and is absent.
        replica.Reads.Clear();
        Assert.Null(await store.GetRoomAsync(RoomId.New()));
        Assert.Equal(["eventual", "strong"], replica.Reads);
    }

    /// <summary>Passes every request to dynalite, recording room reads; answers the next eventually consistent one as a replica without the item would.</summary>
    private sealed class LaggingReplica : HttpClientFactory
    {
        public ConcurrentQueue<string> Reads { get; private set; } = new();

        public bool MissNext { get; set; }

        public override HttpClient CreateHttpClient(IClientConfig clientConfig) => new(new Handler(this) { InnerHandler = new SocketsHttpHandler() });

        public override bool UseSDKHttpClientCaching(IClientConfig clientConfig) => false;

        private sealed class Handler(LaggingReplica owner) : DelegatingHandler
        {
            protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
            {
                var target = request.Headers.TryGetValues("X-Amz-Target", out var values) ? values.Single() : string.Empty;
                if (!target.EndsWith(".GetItem", StringComparison.Ordinal) || request.Content is null)
                {
                    return await base.SendAsync(request, cancellationToken);
                }

                var body = await request.Content.ReadAsStringAsync(cancellationToken);
                if (!body.Contains("\"META\"", StringComparison.Ordinal))
                {
                    return await base.SendAsync(request, cancellationToken);
                }

                var strong = body.Contains("\"ConsistentRead\":true", StringComparison.Ordinal);
                if (!strong && owner.MissNext)
                {
                    owner.MissNext = false;
                    owner.Reads.Enqueue("eventual (missed)");
                    var response = new HttpResponseMessage(HttpStatusCode.OK) { RequestMessage = request, Content = new StringContent("{}", Encoding.UTF8, "application/x-amz-json-1.0") };
                    response.Headers.TryAddWithoutValidation("x-amzn-RequestId", Guid.NewGuid().ToString("N"));
                    return response;
                }

                owner.Reads.Enqueue(strong ? "strong" : "eventual");
                return await base.SendAsync(request, cancellationToken);
            }
        }
    }
}
