using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Talki.Samples.Browser.Services;

/// <summary>What the host tells the app at start (<c>GET /sample-config.json</c>).</summary>
public sealed record SampleConfig
{
    /// <summary>Gets the Google OAuth client id; without one there is no Google sign-in button.</summary>
    public string? GoogleClientId { get; init; }

    /// <summary>Gets the ICE transport policy: <c>relay</c> sends all media through TURN (members never see each other's addresses).</summary>
    public string? IceTransportPolicy { get; init; }

    /// <summary>
    /// Gets the client's candidate gather window in milliseconds (<c>TalkiClientOptions.CandidateGatherWindow</c>; the host's
    /// <c>Talki:Sample:CandidateGatherWindowMs</c>, for benchmarks), or null for the library's default.
    /// </summary>
    public int? CandidateGatherWindowMs { get; init; }

    /// <summary>
    /// Gets the client's link-up watchdog in milliseconds (<c>TalkiClientOptions.LinkUpTimeout</c>; the host's
    /// <c>Talki:Sample:LinkUpTimeoutMs</c>, for benchmarks), or null for the library's default.
    /// </summary>
    public int? LinkUpTimeoutMs { get; init; }

    /// <summary>
    /// Gets how long the call page holds renders that only show links setting up, in milliseconds (0: renders are not
    /// held; the host's <c>Talki:Sample:LinkUpRenderHoldMs</c>), or null for the page's default of one second.
    /// </summary>
    public int? LinkUpRenderHoldMs { get; init; }

    /// <summary>Gets the API base address when the API is on another origin; same origin when empty.</summary>
    public string? ApiBaseAddress { get; init; }

    /// <summary>Loads the configuration; a missing or broken file means the defaults.</summary>
    public static async Task<SampleConfig> LoadAsync(Uri baseAddress)
    {
        using var http = new HttpClient { BaseAddress = baseAddress };
        try
        {
            return await http.GetFromJsonAsync("sample-config.json", SampleConfigJsonContext.Default.SampleConfig) ?? new SampleConfig();
        }
        catch (HttpRequestException)
        {
            return new SampleConfig();
        }
        catch (System.Text.Json.JsonException)
        {
            return new SampleConfig();
        }
    }
}

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(SampleConfig))]
internal sealed partial class SampleConfigJsonContext : JsonSerializerContext;
