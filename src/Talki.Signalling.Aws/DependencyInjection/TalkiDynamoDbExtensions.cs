using Amazon.DynamoDBv2;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Talki.Signalling.Aws.DynamoDb;
using Talki.Signalling.Ports;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Keeps Talki rooms in DynamoDB.</summary>
public static class TalkiDynamoDbExtensions
{
    /// <summary>
    /// Replaces the in-memory room store with the single-table DynamoDB store (conditional writes, read-side expiry,
    /// strongly consistent reads). It uses the <see cref="IAmazonDynamoDB"/> registered in the container, or else a
    /// client of its own built from the default AWS credential and region chains (disposed with the container).
    /// Options are validated at start-up.
    /// </summary>
    /// <param name="builder">The Talki builder.</param>
    /// <param name="configure">Configures the store (table name, table creation for development).</param>
    /// <returns>The builder.</returns>
    public static ITalkiSignallingBuilder AddDynamoDbRoomStore(this ITalkiSignallingBuilder builder, Action<DynamoDbRoomStoreOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var services = builder.Services;
        var options = services.AddOptions<DynamoDbRoomStoreOptions>();
        if (configure is not null)
        {
            options.Configure(configure);
        }

        options.ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<DynamoDbRoomStoreOptions>, DynamoDbRoomStoreOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton(static sp =>
        {
            var client = sp.GetService<IAmazonDynamoDB>();
            return new DynamoDbRoomStore(
                client ?? new AmazonDynamoDBClient(),
                ownsClient: client is null,
                sp.GetRequiredService<IOptions<DynamoDbRoomStoreOptions>>(),
                sp.GetRequiredService<TimeProvider>(),
                sp.GetRequiredService<ILogger<DynamoDbRoomStore>>());
        });
        services.RemoveAll<IRoomStore>();
        services.AddSingleton<IRoomStore>(static sp => new DynamoDbRoomStoreGuard(sp.GetRequiredService<DynamoDbRoomStore>()));
        return builder;
    }
}
