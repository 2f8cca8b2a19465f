using System.Text.RegularExpressions;

namespace Talki.Signalling.Protocol.Tests;

/// <summary>The README's closed list of error codes is the enum's, no more and no less.</summary>
public sealed partial class ErrorCodeDocumentationTests
{
    [Fact]
    public void Readme_ListsEveryErrorCode_AndNoOther()
    {
        var readme = File.ReadAllText(Path.Combine(RepositoryRoot(), "README.md"));
        var line = readme.Split('\n').Single(l => l.Contains("Error codes (closed set", StringComparison.Ordinal));
        var listed = CodeSpan().Matches(line[line.IndexOf("):", StringComparison.Ordinal)..]).Select(m => m.Groups[1].Value).ToHashSet(StringComparer.Ordinal);
        var actual = Enum.GetValues<SignallingErrorCode>().Select(c => c.ToWireName()).ToHashSet(StringComparer.Ordinal);

        Assert.Empty(actual.Except(listed));
        Assert.Empty(listed.Except(actual));
    }

    [GeneratedRegex("`([a-z_]+)`")]
    private static partial Regex CodeSpan();

    private static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Talki.Signalling.slnx")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException("The repository root (Talki.Signalling.slnx) was not found above " + AppContext.BaseDirectory);
    }
}
