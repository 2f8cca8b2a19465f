namespace Talki.Benchmarks.Load.Tests;

/// <summary>The load tool's rounds: which server runs in which place of each round.</summary>
public sealed class LoadOptionsTests
{
    [Fact]
    public void InRoundOrder_EachRoundStartsOneServerLater_SoThatEveryServerRunsOnceInEveryPlace()
    {
        var servers = LoadOptions.Parse(["--server", "talki,peerjs,bare", "--repeat", "6"]).Servers;

        Assert.Equal(["talki", "peerjs", "bare"], LoadOptions.InRoundOrder(servers, 1));
        Assert.Equal(["peerjs", "bare", "talki"], LoadOptions.InRoundOrder(servers, 2));
        Assert.Equal(["bare", "talki", "peerjs"], LoadOptions.InRoundOrder(servers, 3));
        Assert.Equal(["talki", "peerjs", "bare"], LoadOptions.InRoundOrder(servers, 4));

        // Over as many rounds as servers, every server once in every place, and every round has every server once.
        var rounds = Enumerable.Range(1, servers.Count).Select(r => LoadOptions.InRoundOrder(servers, r)).ToList();
        Assert.All(rounds, r => Assert.Equal(servers.Order(), r.Order()));
        for (var place = 0; place < servers.Count; place++)
        {
            Assert.Equal(servers.Order(), rounds.Select(r => r[place]).Order());
        }
    }

    [Fact]
    public void InRoundOrder_OneServer_OrNone_AndRoundZeroIsMisuse()
    {
        Assert.Equal(["talki"], LoadOptions.InRoundOrder(["talki"], 5));
        Assert.Empty(LoadOptions.InRoundOrder([], 3));
        Assert.Throws<ArgumentOutOfRangeException>(() => LoadOptions.InRoundOrder(["talki"], 0));
    }
}
