using System.Reflection;

namespace Talki.Signalling.Client.Tests.Packaging;

/// <summary>A browser client ships the protocol and nothing of the server: no ports, no records, no connection ids.</summary>
public sealed class ClientClosureTests
{
    [Fact]
    public void ClientPackage_ReferencesOnlyTheProtocolAmongTalkiAssemblies()
    {
        var closure = TalkiClosure(typeof(TalkiCall).Assembly);

        Assert.Equal(["Talki.Signalling.Client", "Talki.Signalling.Protocol"], closure.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void ProtocolPackage_ExportsNoServerTypeAndNoConnectionId()
    {
        var exported = typeof(RoomId).Assembly.GetExportedTypes();

        Assert.DoesNotContain(exported, t => t.Namespace == "Talki.Signalling.Ports");
        Assert.DoesNotContain(exported, t => t.Name is "RoomRecord" or "MemberRecord" or "TicketRecord" or "ConnectionRecord" or "CallerIdentity");
        Assert.DoesNotContain(exported, t => t.GetProperties().Any(p => p.Name.Contains("ConnectionId", StringComparison.OrdinalIgnoreCase)));
        Assert.DoesNotContain(typeof(RoomId).Assembly.GetReferencedAssemblies(), a => a.Name!.StartsWith("Talki.", StringComparison.Ordinal));
    }

    private static HashSet<string> TalkiClosure(Assembly root)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal) { root.GetName().Name! };
        var queue = new Queue<Assembly>([root]);
        while (queue.TryDequeue(out var assembly))
        {
            foreach (var reference in assembly.GetReferencedAssemblies())
            {
                if (reference.Name!.StartsWith("Talki.", StringComparison.Ordinal) && seen.Add(reference.Name))
                {
                    queue.Enqueue(Assembly.Load(reference));
                }
            }
        }

        return seen;
    }
}
