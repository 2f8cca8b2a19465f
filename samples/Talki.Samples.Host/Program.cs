using Microsoft.AspNetCore.HttpOverrides;
using Microsoft.AspNetCore.Routing;

// The Talki sample host: everything in one process with the embedded defaults
// (in-memory rooms and sessions, the self-hosted WebSocket gateway) and the Talki browser app
// (samples/Talki.Samples.Browser, Blazor WebAssembly) at /.
// The AWS stack's $connect authorizer function starts as a slim host of its own (AuthorizerHost.cs): it answers API
// Gateway's authorizer events and nothing else, and every connect after an idle spell waits for its cold start.
if (AuthorizerHost.IsRequested(args))
{
    AuthorizerHost.Build(args).Run();
    return;
}

var builder = WebApplication.CreateBuilder(args);

// Serve the browser app's files from the build output in every environment (`dotnet run` is Production, the
// end-to-end tests run the built dll as Development); a published host has them in its own wwwroot.
builder.WebHost.UseStaticWebAssets();
SampleHostAddresses.UseDefault(builder);

// The self-hosted gateway's WebSocket upgrades are taken at Kestrel's connection level: an open socket keeps none of ASP.NET
// Core's per-request state (HttpContext, headers, Activity, scopes) for its life. Every other request, and any handshake the
// fast path does not take, is served by the endpoints below as before. Talki:Sample:ConnectionLevelWebSockets=false turns it
// off (benchmarks compare both).
if (!string.Equals(builder.Configuration["Talki:Sample:ConnectionLevelWebSockets"], "false", StringComparison.OrdinalIgnoreCase))
{
    builder.WebHost.ConfigureKestrel(kestrel => kestrel.ConfigureEndpointDefaults(endpoint => endpoint.UseTalkiWebSockets()));
}

// Every Talki option from the "Talki" section (appsettings.json, environment Talki__*, command line --Talki:…):
// JoinWindow, IceServers, Hosting:AllowedOrigins, Turn:Urls / Turn:SharedSecret, Google:ClientIds, Google:KeysUrl…
var talki = builder.Services.AddTalkiSignalling().BindConfiguration(builder.Configuration.GetSection("Talki"));

// Behind a reverse proxy on this machine (the Lambda Web Adapter on AWS, a local nginx): the client's address and scheme
// come from X-Forwarded-For / X-Forwarded-Proto, trusted from loopback proxies only (ASP.NET Core's default). The
// per-address sign-in limit and the same-origin check rely on them.
builder.Services.Configure<ForwardedHeadersOptions>(o => o.ForwardedHeaders = ForwardedHeaders.XForwardedFor | ForwardedHeaders.XForwardedProto);

// AWS mode (DynamoDB, API Gateway push and callbacks) when Talki:Aws:TableName is configured.
var awsMode = AwsMode.TryAdd(talki, builder.Configuration);

// One switch for several instances behind a load balancer: with a Redis configuration string (--Talki:Redis=127.0.0.1:6379),
// sessions and the cookie's key ring, rooms, tickets, the socket registrations of the push backplane and the quota
// counters live in Redis, so every instance serves the same rooms. Talki:RedisKeyPrefix separates deployments sharing a Redis.
var redis = builder.Configuration["Talki:Redis"];
if (!string.IsNullOrEmpty(redis))
{
    var keyPrefix = builder.Configuration["Talki:RedisKeyPrefix"];
    talki.AddRedis(redis, o => o.KeyPrefix = keyPrefix is { Length: > 0 } ? keyPrefix : o.KeyPrefix);
}

// Inline I/O (Talki:Sample:InlineIo: auto by default, true, false): with the stores in this process, Kestrel's
// continuations and the sockets' completions run on the I/O threads instead of the thread pool. It must be decided before
// the application is built, while no socket is open (InlineIo.cs says why, and why auto is off with Redis or in AWS mode).
var inlineIo = InlineIo.Apply(builder.WebHost, builder.Configuration, storesInProcess: !awsMode && string.IsNullOrEmpty(redis));

// Native memory trim (Talki:Sample:TrimNativeMemory: auto by default, true, false): glibc gives back the free memory it keeps
// from the JIT's scratch memory (NativeMemoryTrim.cs).
var nativeMemoryTrim = NativeMemoryTrim.Add(builder.Services, builder.Configuration);

var app = builder.Build();

// The app's files (fingerprinted, with brotli/gzip variants) from the static web assets manifest of a build or a publish;
// plain static files when there is no manifest (for example under WebApplicationFactory in another test project). The AWS
// authorizer function serves no files: it skips reading the manifest (hundreds of endpoints) on its cold start.
var servesApp = !string.Equals(builder.Configuration["Talki:Aws:Role"], "authorizer", StringComparison.OrdinalIgnoreCase);
if (servesApp && File.Exists(Path.Combine(AppContext.BaseDirectory, $"{app.Environment.ApplicationName}.staticwebassets.endpoints.json")))
{
    app.MapStaticAssets();
}
else if (servesApp)
{
    app.UseStaticFiles();
}

app.UseForwardedHeaders();
app.UseCors(); // cross-origin browser apps (Talki:Hosting:AllowedOrigins): ASP.NET Core's CORS middleware applies the Talki policy
app.MapTalkiSignalling(); // the HTTP API, and the self-hosted /ws or (AWS mode) API Gateway's callbacks

app.MapGet("/healthz", () => Results.Text("ok"));

// What the browser app needs to know at start: the Google client id (no Google button without one), the ICE transport
// policy, and (benchmarks) the client's candidate gather window and link-up watchdog in ms when
// Talki:Sample:CandidateGatherWindowMs and Talki:Sample:LinkUpTimeoutMs are set (absent: the client library's defaults),
// and how long the call page holds renders of links setting up, Talki:Sample:LinkUpRenderHoldMs (absent: the app's 1 s; 0: off).
app.MapGet("/sample-config.json", (IConfiguration configuration) => Results.Json(
    new SampleConfig(
        configuration["Talki:Google:ClientIds:0"] is { Length: > 0 } id ? id : null,
        string.Equals(configuration["Talki:Sample:IceTransportPolicy"], "relay", StringComparison.OrdinalIgnoreCase) ? "relay" : "all",
        int.TryParse(configuration["Talki:Sample:CandidateGatherWindowMs"], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var gatherMs) ? gatherMs : null,
        int.TryParse(configuration["Talki:Sample:LinkUpTimeoutMs"], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var linkUpMs) && linkUpMs > 0 ? linkUpMs : null,
        int.TryParse(configuration["Talki:Sample:LinkUpRenderHoldMs"], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var holdMs) ? holdMs : null),
    SampleConfigJsonContext.Default.SampleConfig));

// Client-side routes (/room/{id}, …) load the app on GET; unknown API paths stay 404.
// A RequestDelegate, not a Delegate: under Native AOT the request delegate generator intercepts
// MapFallback(string, Delegate) and registered it with the default fallback pattern {*path:nonfile}, so every client-side
// route (and /) answered 404 in the native host.
app.MapFallback("/talki/{**rest}", static context =>
{
    context.Response.StatusCode = StatusCodes.Status404NotFound;
    return Task.CompletedTask;
});
if (servesApp)
{
    app.MapFallbackToFile("index.html").WithMetadata(new HttpMethodMetadata(["GET", "HEAD"]));
}

app.Lifetime.ApplicationStarted.Register(() =>
{
    Console.WriteLine($"Talki sample host: {inlineIo}");
    Console.WriteLine($"Talki sample host: {nativeMemoryTrim}");
    SampleHostAddresses.Write(app, "Talki sample host");
});

app.Run();

/// <summary>Makes the host reachable from integration tests.</summary>
public partial class Program;

/// <summary>The browser app's start-up configuration.</summary>
/// <param name="GoogleClientId">The Google OAuth client id, or null when Google sign-in is off.</param>
/// <param name="IceTransportPolicy"><c>relay</c> or <c>all</c>.</param>
/// <param name="CandidateGatherWindowMs">The client's <c>CandidateGatherWindow</c> in ms, or null for the library's default.</param>
/// <param name="LinkUpTimeoutMs">The client's <c>LinkUpTimeout</c> (the link-up watchdog) in ms, or null for the library's default.</param>
/// <param name="LinkUpRenderHoldMs">How long the call page holds renders of links setting up, in ms (0: off), or null for the app's default.</param>
internal sealed record SampleConfig(
    string? GoogleClientId,
    string IceTransportPolicy,
    [property: System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)] int? CandidateGatherWindowMs = null,
    [property: System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)] int? LinkUpTimeoutMs = null,
    [property: System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)] int? LinkUpRenderHoldMs = null);

[System.Text.Json.Serialization.JsonSourceGenerationOptions(System.Text.Json.JsonSerializerDefaults.Web)]
[System.Text.Json.Serialization.JsonSerializable(typeof(SampleConfig))]
internal sealed partial class SampleConfigJsonContext : System.Text.Json.Serialization.JsonSerializerContext;
