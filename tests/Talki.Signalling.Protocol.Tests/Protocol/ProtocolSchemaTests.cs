using System.Text.Json;
using System.Text.Json.Nodes;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Protocol.Tests.Protocol;

public sealed class ProtocolSchemaTests
{
    private const string SchemaPath = "schema/talki-protocol.schema.json";

    [Fact]
    public void CheckedInSchema_MatchesContracts()
    {
        var root = RepositoryRoot();
        var path = Path.Combine(root, SchemaPath);
        var generated = ProtocolSchema.Generate().ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n";
        if (Environment.GetEnvironmentVariable("TALKI_UPDATE_SCHEMA") == "1")
        {
            File.WriteAllText(path, generated);
        }

        Assert.True(File.Exists(path), $"{SchemaPath} is missing. Run: TALKI_UPDATE_SCHEMA=1 dotnet test tests/Talki.Signalling.Protocol.Tests");
        var checkedIn = File.ReadAllText(path).ReplaceLineEndings("\n");
        Assert.True(
            checkedIn == generated,
            $"{SchemaPath} is stale: the protocol contracts changed. Regenerate it with: TALKI_UPDATE_SCHEMA=1 dotnet test tests/Talki.Signalling.Protocol.Tests");
    }

    [Fact]
    public void Schema_ListsEveryMessageKind()
    {
        var schema = ProtocolSchema.Generate().ToJsonString();
        foreach (var kind in new[] { "hello", "admit", "deny", "signal", "leave", "ping", "welcome", "admission_request", "admitted", "denied", "connect_to_peer", "peer_left", "peer_resumed", "room_sealed", "pong", "error" })
        {
            Assert.Contains($"\"{kind}\"", schema, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Schema_DescribesIdsAsPatternedStrings()
    {
        var schema = ProtocolSchema.Generate();
        Assert.Contains("^[A-Za-z0-9_-]{1,64}$", schema.ToJsonString(), StringComparison.Ordinal);
        Assert.Equal("https://json-schema.org/draft/2020-12/schema", (string?)schema["$schema"]);
        Assert.NotNull(schema["$defs"]?["clientMessage"]);
        Assert.NotNull(schema["$defs"]?["serverMessage"]);
    }

    internal static string RepositoryRoot()
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
