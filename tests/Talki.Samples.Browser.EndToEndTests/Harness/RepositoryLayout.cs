using System.Reflection;

namespace Talki.Samples.Browser.EndToEndTests.Harness;

/// <summary>Where things are: the repository root, the built sample host, the artifacts folder.</summary>
internal static class RepositoryLayout
{
    /// <summary>The folder holding <c>Talki.Signalling.slnx</c>, found upwards from the running assembly.</summary>
    public static string Root { get; } = FindRoot();

    /// <summary>The build configuration this assembly was built with (the host is looked up under the same).</summary>
    public static string Configuration { get; } =
        typeof(RepositoryLayout).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .FirstOrDefault(a => a.Key == "TalkiBuildConfiguration")?.Value ?? "Debug";

    public static string SampleHostProjectDirectory => Path.Combine(Root, "samples", "Talki.Samples.Host");

    /// <summary>
    /// The sample host's dll: <c>TALKI_SAMPLE_HOST_DLL</c> when set, else
    /// <c>samples/Talki.Samples.Host/bin/{Configuration}/net10.0/Talki.Samples.Host.dll</c>.
    /// </summary>
    public static string SampleHostDll()
    {
        if (Environment.GetEnvironmentVariable("TALKI_SAMPLE_HOST_DLL") is { Length: > 0 } configured)
        {
            return File.Exists(configured)
                ? Path.GetFullPath(configured)
                : throw new FileNotFoundException($"TALKI_SAMPLE_HOST_DLL points to a missing file: {configured}");
        }

        return Built(SampleHostProjectDirectory, "Talki.Samples.Host", "sample host");
    }

    public static string AwsAuthorizerProjectDirectory => Path.Combine(Root, "samples", "Talki.Samples.AwsAuthorizer");

    /// <summary>
    /// The AWS stack's authorizer function (a Lambda custom runtime) as a built dll:
    /// <c>samples/Talki.Samples.AwsAuthorizer/bin/{Configuration}/net10.0/Talki.Samples.AwsAuthorizer.dll</c>.
    /// </summary>
    public static string AwsAuthorizerDll() => Built(AwsAuthorizerProjectDirectory, "Talki.Samples.AwsAuthorizer", "authorizer");

    private static string Built(string projectDirectory, string name, string what)
    {
        var dll = Path.Combine(projectDirectory, "bin", Configuration, "net10.0", name + ".dll");
        return File.Exists(dll)
            ? dll
            : throw new FileNotFoundException(
                $"The {what} is not built: {dll} is missing. Build this project (it references the {what}) or run " +
                $"`dotnet build samples/{name} -c {Configuration}`.");
    }

    /// <summary>
    /// Test artifacts (screenshots, logs): <c>TALKI_ARTIFACTS</c> when set, else <c>TestResults</c> in the output folder.
    /// </summary>
    public static string Artifacts { get; } = Path.GetFullPath(
        Environment.GetEnvironmentVariable("TALKI_ARTIFACTS") is { Length: > 0 } artifacts
            ? artifacts
            : Path.Combine(AppContext.BaseDirectory, "TestResults"));

    private static string FindRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Talki.Signalling.slnx")))
            {
                return directory.FullName;
            }
        }

        throw new DirectoryNotFoundException($"No Talki.Signalling.slnx above {AppContext.BaseDirectory}.");
    }
}
