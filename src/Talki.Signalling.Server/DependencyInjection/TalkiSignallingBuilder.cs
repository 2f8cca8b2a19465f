using Microsoft.Extensions.DependencyInjection;

namespace Talki.Signalling.Server.DependencyInjection;

internal sealed record TalkiSignallingBuilder(IServiceCollection Services) : ITalkiSignallingBuilder;

/// <summary>Marks that <c>AddTalkiSignallingCore</c> ran, so a second call does not stack registrations.</summary>
internal sealed class TalkiSignallingCoreMarker;
