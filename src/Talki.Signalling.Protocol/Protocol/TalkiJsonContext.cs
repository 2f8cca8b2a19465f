using System.Text.Json.Serialization;
using Talki.Signalling.Http;

namespace Talki.Signalling.Protocol;

/// <summary>Source-generated JSON metadata for the protocol (trim and AOT safe). Use <c>TalkiJsonContext.Default</c>.</summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    AllowOutOfOrderMetadataProperties = true,
    RespectNullableAnnotations = true,
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Skip,
    MaxDepth = 16)]
[JsonSerializable(typeof(ClientMessage))]
[JsonSerializable(typeof(ServerMessage))]
[JsonSerializable(typeof(PeerLink))]
[JsonSerializable(typeof(SignallingError))]
[JsonSerializable(typeof(AnonymousSignInRequest))]
[JsonSerializable(typeof(GoogleSignInRequest))]
[JsonSerializable(typeof(SessionResponse))]
[JsonSerializable(typeof(TicketResponse))]
[JsonSerializable(typeof(ErrorResponse))]
internal sealed partial class TalkiJsonContext : JsonSerializerContext;
