using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;

// The Talki sample host: everything in one process with the embedded defaults
// (in-memory rooms and sessions, the self-hosted WebSocket gateway) and a plain test page.
var builder = WebApplication.CreateBuilder(args);
if (string.IsNullOrEmpty(builder.Configuration["urls"]) && string.IsNullOrEmpty(Environment.GetEnvironmentVariable("ASPNETCORE_URLS")))
{
    // http://localhost is a secure context in browsers, so the Secure session cookie and WebRTC work.
    builder.WebHost.UseUrls("http://localhost:5080");
}

var talki = builder.Services.AddTalkiSignalling(options =>
{
    // Browser apps served from other origins (CORS with credentials, SameSite=None cookie).
    foreach (var origin in builder.Configuration.GetSection("Talki:AllowedOrigins").Get<string[]>() ?? [])
    {
        options.Hosting.AllowedOrigins.Add(origin);
    }

    if (int.TryParse(builder.Configuration["Talki:JoinWindowSeconds"], out var seconds))
    {
        options.JoinWindow = TimeSpan.FromSeconds(seconds);
    }

    // STUN/TURN servers handed to browsers in the welcome (appsettings.json, Talki:IceServers).
    foreach (var url in builder.Configuration.GetSection("Talki:IceServers").Get<string[]>() ?? [])
    {
        options.IceServers.Add(new Talki.Signalling.Protocol.IceServer { Urls = [url] });
    }
});

// AWS mode (DynamoDB, API Gateway push and callbacks) when Talki:Aws:TableName is configured.
var awsMode = AwsMode.TryAdd(talki, builder.Configuration);

// One switch: with a Redis configuration string, sessions (and the cookie's key ring) live in Redis.
if (builder.Configuration["Talki:Redis"] is { Length: > 0 } redis)
{
    talki.AddRedisSessions(redis);
}

var app = builder.Build();
app.UseDefaultFiles();
app.UseStaticFiles();
app.MapTalkiSignalling();
if (awsMode)
{
    app.MapTalkiApiGatewayCallbacks();
}

app.MapGet("/healthz", () => Results.Text("ok"));

app.Lifetime.ApplicationStarted.Register(() =>
{
    var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses ?? [];
    foreach (var address in addresses)
    {
        Console.WriteLine($"Talki sample host listening on {address}");
    }
});

app.Run();

/// <summary>Makes the host reachable from integration tests.</summary>
public partial class Program;
