namespace Talki.Signalling.Aws.ApiGateway;

/// <summary>Appends <see cref="AwsPackage.UserAgentSuffix"/> to the <c>User-Agent</c> of every request (once, also across retries).</summary>
internal sealed class UserAgentSuffixHandler : DelegatingHandler
{
    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        AddSuffix(request);
        return base.SendAsync(request, cancellationToken);
    }

    protected override HttpResponseMessage Send(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        AddSuffix(request);
        return base.Send(request, cancellationToken);
    }

    private static void AddSuffix(HttpRequestMessage request)
    {
        if (!request.Headers.TryGetValues("User-Agent", out var values) || !values.Any(v => v.Contains(AwsPackage.UserAgentSuffix, StringComparison.Ordinal)))
        {
            request.Headers.TryAddWithoutValidation("User-Agent", AwsPackage.UserAgentSuffix);
        }
    }
}
