namespace Talki.Signalling.Server.Tests;

/// <summary>Tests that judge timing on the real clock run alone, not beside the other classes of this assembly.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class RealClockTests
{
    public const string Name = "Real clock";
}
