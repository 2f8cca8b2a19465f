/// <summary>
/// The sample host as the AWS stack's <c>$connect</c> authorizer function (<c>Talki:Aws:Role</c> <c>authorizer</c>): a slim
/// ASP.NET Core host with Talki in AWS mode and nothing of the sample's own (no browser app, static files, CORS, forwarded
/// headers, connection-level WebSockets, memory trim). The function answers API Gateway's authorizer events and nothing else,
/// and every connect after an idle spell waits for its cold start (docs/performance.md, "A slim host for the authorizer").
/// </summary>
internal static class AuthorizerHost
{
    /// <summary>
    /// Whether the environment or the command line (where the stack and the test harnesses set it) asks for the authorizer
    /// role, read as the host reads them (<c>Talki__Aws__Role</c>, <c>--Talki:Aws:Role=authorizer</c>). The role set
    /// elsewhere (appsettings.json, a test's host settings) still works: the full host maps the authorizer's path alone too.
    /// </summary>
    /// <param name="args">The command line.</param>
    /// <returns><see langword="true"/> for the authorizer role.</returns>
    public static bool IsRequested(string[] args)
    {
        var configuration = new ConfigurationBuilder().AddEnvironmentVariables().AddCommandLine(args).Build();
        return string.Equals(configuration["Talki:Aws:Role"], "authorizer", StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>Builds the authorizer's host; <c>Run</c> it.</summary>
    /// <param name="args">The command line.</param>
    /// <returns>The application.</returns>
    /// <exception cref="InvalidOperationException">AWS mode is not configured (no <c>Talki:Aws:TableName</c>).</exception>
    public static WebApplication Build(string[] args)
    {
        var builder = WebApplication.CreateSlimBuilder(args);
        SampleHostAddresses.UseDefault(builder);

        var talki = builder.Services.AddTalkiSignalling().BindConfiguration(builder.Configuration.GetSection("Talki"));
        if (!AwsMode.TryAdd(talki, builder.Configuration))
        {
            throw new InvalidOperationException("Talki:Aws:Role is 'authorizer' but Talki:Aws:TableName is not set: the authorizer checks tickets in the DynamoDB table.");
        }

        var app = builder.Build();
        app.MapTalkiSignalling(); // the authorizer's pass-through path (/events) alone
        app.MapGet("/healthz", () => Results.Text("ok"));
        app.Lifetime.ApplicationStarted.Register(() => SampleHostAddresses.Write(app, "Talki sample host (authorizer)"));
        return app;
    }
}
