namespace Talki.Signalling.Aws;

/// <summary>Facts about this package.</summary>
internal static class AwsPackage
{
    /// <summary>The user-agent suffix of every AWS call the package makes (<c>lib/Talki.Signalling#{version}</c>).</summary>
    public static string UserAgentSuffix { get; } = "lib/Talki.Signalling#" + (typeof(AwsPackage).Assembly.GetName().Version?.ToString(3) ?? "0.0.0");
}
