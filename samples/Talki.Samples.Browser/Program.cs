using Microsoft.AspNetCore.Components.Web;
using Microsoft.AspNetCore.Components.WebAssembly.Hosting;
using Microsoft.Extensions.Logging;
using Talki.Samples.Browser;
using Talki.Samples.Browser.Services;

var builder = WebAssemblyHostBuilder.CreateDefault(args);
builder.RootComponents.Add<App>("#app");
builder.RootComponents.Add<HeadOutlet>("head::after");

// A quiet console in normal operation: HttpClient's per-request lines (information) are not logged; warnings still are.
builder.Logging.AddFilter("System.Net.Http.HttpClient", LogLevel.Warning);

// The host serves this app and the API from one origin; /sample-config.json may name another API origin and the Google client id.
var baseAddress = new Uri(builder.HostEnvironment.BaseAddress);
var config = await SampleConfig.LoadAsync(baseAddress);
builder.Services.AddSingleton(config);
builder.Services.AddSingleton(TimeProvider.System);
builder.Services.AddTalkiClient(options =>
{
    options.ApiBaseAddress = string.IsNullOrWhiteSpace(config.ApiBaseAddress) ? baseAddress : new Uri(config.ApiBaseAddress);
    if (config.CandidateGatherWindowMs is { } gatherMs)
    {
        options.CandidateGatherWindow = TimeSpan.FromMilliseconds(gatherMs); // validated at start-up like every option
    }

    if (config.LinkUpTimeoutMs is { } linkUpMs)
    {
        options.LinkUpTimeout = TimeSpan.FromMilliseconds(linkUpMs);
    }
});
builder.Services.AddTalkiBrowserWebRtc();
builder.Services.AddScoped<AppSession>();
builder.Services.AddScoped<CallHost>();

await builder.Build().RunAsync();
