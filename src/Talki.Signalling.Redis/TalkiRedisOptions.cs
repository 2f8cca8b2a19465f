namespace Talki.Signalling.Redis;

/// <summary>Options of Talki on Redis (<c>AddRedis</c>): the key prefix of the deployment and the push backplane's timings.</summary>
public sealed class TalkiRedisOptions
{
    /// <summary>The default <see cref="KeyPrefix"/>.</summary>
    public const string DefaultKeyPrefix = "talki:";

    /// <summary>
    /// Gets or sets the prefix of every Redis key and pub/sub channel Talki uses (rooms, tickets, connection bindings,
    /// socket registrations, quota counters, sessions). Give each deployment (tenant, environment) sharing one Redis its
    /// own prefix: two prefixes never see each other's data.
    /// </summary>
    /// <value>The default value is <c>talki:</c>. 1 to 64 characters, without <c>{</c> or <c>}</c> (they delimit Redis Cluster hash tags).</value>
    public string KeyPrefix { get; set; } = DefaultKeyPrefix;

    /// <summary>
    /// Gets or sets how long a socket's registration (which instance holds it) lives in Redis without a refresh. Each
    /// instance refreshes its registrations every third of it; when an instance dies, its sockets are gone for every
    /// other instance once this has passed (pushes to them answer <c>Gone</c>, and the engine prunes the member).
    /// </summary>
    /// <value>The default value is 30 seconds. Between 3 seconds and 10 minutes.</value>
    public TimeSpan RegistrationTtl { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Gets or sets how long a push to a socket held by another instance waits for that instance's answer before it is
    /// <c>Undeliverable</c> (not delivered, the member is kept; <c>Gone</c> only when the registration has vanished).
    /// </summary>
    /// <value>The default value is 5 seconds. Between 100 milliseconds and 1 minute.</value>
    public TimeSpan PushTimeout { get; set; } = TimeSpan.FromSeconds(5);
}
