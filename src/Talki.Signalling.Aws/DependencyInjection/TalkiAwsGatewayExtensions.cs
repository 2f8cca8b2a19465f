using Amazon;
using Amazon.DynamoDBv2;
using Amazon.Runtime;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Talki.Signalling.Aws.Callbacks;
using Talki.Signalling.Ports;
using Talki.Signalling.Server;
using Talki.Signalling.Server.AspNetCore;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Runs Talki signalling behind API Gateway WebSockets, with rooms in DynamoDB.</summary>
public static class TalkiAwsGatewayExtensions
{
    /// <summary>The preloading service's name (internal to <c>Microsoft.AspNetCore.DataProtection</c>; pinned by the start-up tests).</summary>
    private const string DataProtectionHostedService = "Microsoft.AspNetCore.DataProtection.Internal.DataProtectionHostedService";

    /// <summary>
    /// Switches the host registered by <c>AddTalkiSignalling</c> to AWS in one call: rooms in DynamoDB
    /// (<c>AddDynamoDbRoomStore</c>), pushes through API Gateway's SigV4-signed <c>@connections</c> API, and API Gateway's
    /// callbacks (the <c>$connect</c> authorizer on the Lambda Web Adapter's pass-through path and the <c>$default</c> /
    /// <c>$disconnect</c> HTTP integrations), which <c>MapTalkiSignalling()</c> then maps instead of the self-hosted
    /// <c>/ws</c>. Rooms seal on read (Lambda instances come and go, so no timer), and tickets name the stage's
    /// <c>wss://</c> URL. Every option is validated at start-up, and every failure is listed.
    /// </summary>
    /// <param name="builder">The Talki builder.</param>
    /// <param name="configuration">
    /// The AWS section, for example <c>configuration.GetSection("Talki:Aws")</c>, with the keys <c>TableName</c>,
    /// <c>ApiEndpoint</c> (the <c>https://{api-id}.execute-api.{region}.amazonaws.com</c> endpoint), <c>Stage</c>,
    /// <c>Region</c>, <c>GatewaySecret</c> (the header API Gateway adds to its integration calls) and, optionally,
    /// <c>WebSocketUrl</c> (a custom domain), <c>Role</c> (<c>backend</c>: map <c>$default</c>/<c>$disconnect</c> only, for the
    /// function behind a public URL; <c>authorizer</c>: map the authorizer's pass-through path only; unset: all three, for one
    /// local process), <c>CreateTable</c> (development only), <c>DynamoDbServiceUrl</c>,
    /// <c>AccessKeyId</c> and <c>SecretAccessKey</c> (local emulators only; on AWS the function's role is used).
    /// </param>
    /// <returns>The builder.</returns>
    public static ITalkiSignallingBuilder AddAwsGateway(this ITalkiSignallingBuilder builder, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(configuration);
        var services = builder.Services;
        var region = configuration["Region"] is { Length: > 0 } configuredRegion ? configuredRegion : null;
        _ = Uri.TryCreate(configuration["ApiEndpoint"], UriKind.Absolute, out var apiEndpoint);
        var stage = configuration["Stage"] ?? string.Empty;
        var role = configuration["Role"] switch
        {
            null or "" => ApiGatewayRole.All,
            var value when string.Equals(value, "backend", StringComparison.OrdinalIgnoreCase) => ApiGatewayRole.Backend,
            var value when string.Equals(value, "authorizer", StringComparison.OrdinalIgnoreCase) => ApiGatewayRole.Authorizer,
            var value => throw new ArgumentException($"Talki:Aws:Role is '{value}'; expected 'backend', 'authorizer' or nothing (both).", nameof(configuration)),
        };

        // Local development and tests point the store at dynalite (or the emulator's IAM-checking DynamoDB endpoint, which
        // needs the role's own key: the configured one when there is one).
        if (configuration["DynamoDbServiceUrl"] is { Length: > 0 } serviceUrl)
        {
            var localCredentials = configuration["AccessKeyId"] is { Length: > 0 } localKey && configuration["SecretAccessKey"] is { Length: > 0 } localSecret
                ? new BasicAWSCredentials(localKey, localSecret)
                : new BasicAWSCredentials("local", "local");
            services.TryAddSingleton<IAmazonDynamoDB>(_ => new AmazonDynamoDBClient(
                localCredentials,
                new AmazonDynamoDBConfig { ServiceURL = serviceUrl, AuthenticationRegion = region ?? "us-east-1" }));
        }
        else if (region is not null)
        {
            // The configured region; otherwise the SDK's default chain (AWS_REGION, which Lambda sets).
            services.TryAddSingleton<IAmazonDynamoDB>(_ => new AmazonDynamoDBClient(RegionEndpoint.GetBySystemName(region)));
        }

        services.Configure<TalkiSignallingOptions>(options =>
        {
            // Lambda instances come and go: sealing is enforced on every read instead of on a timer.
            options.SealRoomsOnTimer = false;
            if (configuration["WebSocketUrl"] is { Length: > 0 } webSocketUrl && Uri.TryCreate(webSocketUrl, UriKind.Absolute, out var url))
            {
                options.Hosting.PublicWebSocketUrl = url;
            }
            else if (apiEndpoint is not null)
            {
                options.Hosting.PublicWebSocketUrl = new UriBuilder(apiEndpoint) { Scheme = apiEndpoint.Scheme == "http" ? "ws" : "wss", Path = stage }.Uri;
            }
        });

        builder.AddDynamoDbRoomStore(options =>
        {
            options.TableName = configuration["TableName"] ?? string.Empty;
            options.CreateTableIfMissing = string.Equals(configuration["CreateTable"], "true", StringComparison.OrdinalIgnoreCase);
        });
        if (role == ApiGatewayRole.Authorizer)
        {
            // The authorizer reaches no connection (its role has no execute-api:ManageConnections, and nothing it decides
            // pushes or closes): no @connections client, HTTP client factory or resilience pipeline is built on its cold start.
            services.Replace(ServiceDescriptor.Singleton<IConnectionPush, NoPushFromTheAuthorizer>());
        }
        else
        {
            builder.AddApiGatewayPush(options =>
            {
                options.Endpoint = apiEndpoint;
                options.Stage = stage;
                options.Region = region ?? string.Empty;
                if (configuration["AccessKeyId"] is { Length: > 0 } accessKey && configuration["SecretAccessKey"] is { Length: > 0 } secretKey)
                {
                    options.Credentials = new BasicAWSCredentials(accessKey, secretKey);
                }
            });
        }

        builder
            .AddApiGatewayCallbacks(options => options.GatewaySecret = configuration["GatewaySecret"])
            .AddDynamoDbSessions();
        services.Replace(ServiceDescriptor.Singleton<TalkiGatewayEndpoints>(new ApiGatewayEndpoints(role)));
        if (role == ApiGatewayRole.Authorizer)
        {
            WithoutKeyRingPreload(services);
        }

        return builder;
    }

    /// <summary>
    /// Removes ASP.NET Core's data-protection hosted service, which only loads the key ring when the host starts (so that the
    /// first request that needs it does not wait). The authorizer function reads no cookie and protects nothing: the preload
    /// was a DynamoDB query on every cold start, before the function could answer its first event. Anything that does need
    /// the key ring still loads it on first use. A later <c>AddDataProtection</c> or <c>AddAuthentication</c> registers the
    /// service again (it only costs the query).
    /// </summary>
    private static void WithoutKeyRingPreload(IServiceCollection services)
    {
        for (var i = services.Count - 1; i >= 0; i--)
        {
            // The service type first: reading FullName builds the reflection data of every registered implementation type, a
            // measurable part of a Native AOT cold start (a few milliseconds over the ~200 registrations).
            if (services[i].ServiceType == typeof(IHostedService) && services[i].ImplementationType?.FullName == DataProtectionHostedService)
            {
                services.RemoveAt(i);
            }
        }
    }
}
