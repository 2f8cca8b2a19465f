using System.Text.Json.Nodes;
using System.Text.Json.Schema;

namespace Talki.Signalling.Protocol;

/// <summary>The JSON Schema (draft 2020-12) of protocol v1, generated from the C# contracts.</summary>
internal static class ProtocolSchema
{
    /// <summary>Generates the schema: <c>$defs.clientMessage</c> and <c>$defs.serverMessage</c>, each a union over the <c>type</c> discriminator.</summary>
    /// <returns>The schema document.</returns>
    public static JsonObject Generate()
    {
        var options = new JsonSchemaExporterOptions { TreatNullObliviousAsNonNullable = true, TransformSchemaNode = Transform };
        var jsonOptions = TalkiJsonContext.Default.Options;
        return new JsonObject
        {
            ["$schema"] = "https://json-schema.org/draft/2020-12/schema",
            ["$id"] = "https://talki.dev/schemas/talki-protocol.schema.json",
            ["title"] = $"Talki signalling protocol, versions {ProtocolVersion.Minimum} to {ProtocolVersion.Current}",
            ["description"] = "WebSocket text frames between a Talki client and server. Every message is a JSON object with a 'type' discriminator. Generated from the C# contracts; do not edit by hand.",
            ["$defs"] = new JsonObject
            {
                ["clientMessage"] = jsonOptions.GetJsonSchemaAsNode(typeof(ClientMessage), options),
                ["serverMessage"] = jsonOptions.GetJsonSchemaAsNode(typeof(ServerMessage), options),
            },
        };
    }

    private static JsonNode Transform(JsonSchemaExporterContext context, JsonNode schema)
    {
        var type = context.TypeInfo.Type;
        if (type == typeof(RoomId) || type == typeof(MemberId))
        {
            return new JsonObject
            {
                ["type"] = "string",
                ["pattern"] = "^[A-Za-z0-9_-]{1,64}$",
                ["description"] = type == typeof(RoomId) ? "A room id." : "A member id.",
            };
        }

        return schema;
    }
}
