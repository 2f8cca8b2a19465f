using Amazon.DynamoDBv2;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.DataProtection.KeyManagement;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Talki.Signalling.Aws.DynamoDb;
using Talki.Signalling.Aws.Sessions;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Keeps Talki sessions and the data-protection key ring in the room store's DynamoDB table.</summary>
public static class TalkiDynamoDbSessionsExtensions
{
    /// <summary>
    /// Stores sessions (cookie and bearer) in DynamoDB, replacing the in-memory <see cref="IDistributedCache"/>, and the
    /// ASP.NET Core data-protection key ring that encrypts the session cookie in the same table, so that a session
    /// created on one instance (one Lambda instance) works on every other and survives restarts. Both live in the table
    /// named by <see cref="DynamoDbRoomStoreOptions.TableName"/> (items <c>cache#{key}</c> / <c>cache</c>, with TTL, and
    /// <c>dataprotection</c> / <c>{key name}</c>), through the <see cref="IAmazonDynamoDB"/> registered in the container
    /// or else a client of its own. <c>AddAwsGateway</c> calls it; calling it again changes nothing.
    /// </summary>
    /// <param name="builder">The Talki builder.</param>
    /// <returns>The builder.</returns>
    public static ITalkiSignallingBuilder AddDynamoDbSessions(this ITalkiSignallingBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var services = builder.Services;
        if (services.Any(static d => d.ServiceType == typeof(DynamoDbSessionTable)))
        {
            return builder;
        }

        services.AddOptions<DynamoDbRoomStoreOptions>().ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<DynamoDbRoomStoreOptions>, DynamoDbRoomStoreOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.AddLogging();
        services.AddSingleton(static sp => new DynamoDbSessionTable(
            sp.GetService<IAmazonDynamoDB>(),
            sp.GetRequiredService<IOptions<DynamoDbRoomStoreOptions>>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<ILogger<DynamoDbSessionTable>>()));
        services.AddSingleton<DynamoDbDistributedCache>();
        services.Replace(ServiceDescriptor.Singleton<IDistributedCache>(static sp => sp.GetRequiredService<DynamoDbDistributedCache>()));
        services.AddSingleton<DynamoDbXmlRepository>();
        services.AddDataProtection().SetApplicationName("Talki.Signalling");
        services.AddOptions<KeyManagementOptions>()
            .Configure<DynamoDbXmlRepository>(static (options, repository) => options.XmlRepository = repository);
        return builder;
    }
}
