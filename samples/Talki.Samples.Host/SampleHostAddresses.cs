using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;

/// <summary>The sample host's address: its default when none is configured, and the console lines that say where it listens.</summary>
internal static class SampleHostAddresses
{
    /// <summary>
    /// Listens on http://localhost:5080 unless <c>urls</c> or <c>ASPNETCORE_URLS</c> says otherwise (http://localhost is a
    /// secure context in browsers, so the Secure session cookie and WebRTC work).
    /// </summary>
    /// <param name="builder">The application builder.</param>
    public static void UseDefault(WebApplicationBuilder builder)
    {
        if (string.IsNullOrEmpty(builder.Configuration["urls"]) && string.IsNullOrEmpty(Environment.GetEnvironmentVariable("ASPNETCORE_URLS")))
        {
            builder.WebHost.UseUrls("http://localhost:5080");
        }
    }

    /// <summary>Writes one <c>{name} listening on {address}</c> line per address.</summary>
    /// <param name="app">The started application.</param>
    /// <param name="name">How the lines name the host.</param>
    public static void Write(WebApplication app, string name)
    {
        var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses ?? [];
        foreach (var address in addresses)
        {
            Console.WriteLine($"{name} listening on {address}");
        }
    }
}
