using Microsoft.AspNetCore.Cors.Infrastructure;
using Microsoft.Extensions.Options;

namespace Talki.Signalling.Server.AspNetCore;

/// <summary>The CORS policy of the HTTP API: the configured origins, with credentials (cookies or bearer tokens).</summary>
internal sealed class TalkiCors : IConfigureOptions<CorsOptions>
{
    internal const string PolicyName = "Talki.Signalling";

    private readonly TalkiHostingOptions _options;

    public TalkiCors(IOptions<TalkiSignallingOptions> options) => _options = options.Value.Hosting;

    public void Configure(CorsOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.AddPolicy(PolicyName, policy => policy
            .WithOrigins([.. _options.AllowedOrigins])
            .AllowCredentials()
            .WithMethods("GET", "POST")
            .WithHeaders("Content-Type", "Authorization")
            .SetPreflightMaxAge(TimeSpan.FromMinutes(10)));
    }
}
