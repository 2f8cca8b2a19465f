using System.Xml.Linq;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.DataProtection.KeyManagement;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Talki.Signalling.Aws.DynamoDb;
using Talki.Signalling.Aws.Sessions;
using Talki.Signalling.Aws.Tests.DynamoDb;

namespace Talki.Signalling.Aws.Tests.Sessions;

/// <summary>The data-protection key ring in DynamoDB, on dynalite.</summary>
[Collection(DynaliteGroup.Name)]
public sealed class DynamoDbXmlRepositoryTests(DynaliteFixture dynalite)
{
    [Fact]
    public async Task StoredElements_AreReadBackByAnotherInstance()
    {
        var table = await NewTableAsync();
        using var first = NewTable(table);
        using var second = NewTable(table);
        var writer = new DynamoDbXmlRepository(first, NullLogger<DynamoDbXmlRepository>.Instance);
        var reader = new DynamoDbXmlRepository(second, NullLogger<DynamoDbXmlRepository>.Instance);
        Assert.Empty(reader.GetAllElements());

        var one = new XElement("key", new XAttribute("id", "1"), new XElement("secret", "abc"));
        var two = new XElement("key", new XAttribute("id", "2"), new XElement("secret", "<&>"));
        writer.StoreElement(one, "key-1");
        writer.StoreElement(two, "key-2");
        writer.StoreElement(two, "key-2"); // the same name twice is one key

        var read = reader.GetAllElements();
        Assert.Equal(2, read.Count);
        Assert.Contains(read, e => XNode.DeepEquals(e, one));
        Assert.Contains(read, e => XNode.DeepEquals(e, two));
    }

    [Fact]
    public async Task KeyRing_RoundTrips_APayloadProtectedByOneProviderIsReadByAnother()
    {
        var table = await NewTableAsync();
        using var first = DataProtection(table);
        using var second = DataProtection(table);

        var payload = first.GetRequiredService<IDataProtectionProvider>().CreateProtector("test").Protect("hello");
        Assert.Equal("hello", second.GetRequiredService<IDataProtectionProvider>().CreateProtector("test").Unprotect(payload));

        using var reader = NewTable(table);
        var keys = new DynamoDbXmlRepository(reader, NullLogger<DynamoDbXmlRepository>.Instance).GetAllElements();
        Assert.Single(keys);
        Assert.Equal("key", keys.Single().Name.LocalName);
    }

    private ServiceProvider DataProtection(string table)
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddSingleton(NewTable(table));
        services.AddSingleton<DynamoDbXmlRepository>();
        services.AddDataProtection().SetApplicationName("Talki.Signalling");
        services.AddOptions<KeyManagementOptions>().Configure<DynamoDbXmlRepository>((o, r) => o.XmlRepository = r);
        return services.BuildServiceProvider();
    }

    private DynamoDbSessionTable NewTable(string table)
        => new(dynalite.Client, Options.Create(new DynamoDbRoomStoreOptions { TableName = table }), TimeProvider.System, NullLogger<DynamoDbSessionTable>.Instance);

    private async Task<string> NewTableAsync()
    {
        var table = "keys-" + Guid.NewGuid().ToString("N");
        await dynalite.EnsureTableAsync(table);
        return table;
    }
}
