using Amazon.Runtime;
using Amazon.Runtime.Credentials;

namespace Talki.Signalling.Aws.ApiGateway;

/// <summary>
/// Credentials from the standard AWS chain (<see cref="DefaultAWSCredentialsIdentityResolver"/>), resolved lazily on
/// each signing so that nothing blocks at start-up and refreshed (role, container) credentials are picked up.
/// The resolver caches what it found.
/// </summary>
internal sealed class DefaultChainCredentials : AWSCredentials
{
    public override ImmutableCredentials GetCredentials()
        => DefaultAWSCredentialsIdentityResolver.GetCredentials(null).GetCredentials();

    public override async Task<ImmutableCredentials> GetCredentialsAsync()
    {
        var credentials = await DefaultAWSCredentialsIdentityResolver.GetCredentialsAsync(null).ConfigureAwait(false);
        return await credentials.GetCredentialsAsync().ConfigureAwait(false);
    }
}
