using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Talki.Samples.AwsAuthorizer;

/// <summary>
/// The authorizer function's host: a generic host (<c>Host.CreateEmptyApplicationBuilder</c>: no Kestrel, routing,
/// middleware, authentication or sessions) with the signalling engine (<c>AddTalkiSignallingCore</c>), Talki in AWS mode
/// (<c>AddAwsGateway</c>: rooms in DynamoDB) and the runtime API's client (<c>AddAwsLambdaRuntime</c>). Configured as the
/// sample host is in AWS mode: the <c>Talki</c> section from the environment (<c>Talki__Aws__TableName</c>, which the stack
/// sets) and the command line; its logs go to the console, which Lambda sends to CloudWatch.
/// </summary>
internal static class AuthorizerFunction
{
    /// <summary>Builds the host; <c>Run</c> it.</summary>
    /// <param name="args">The command line (<c>--Talki:Aws:TableName=…</c>; the environment is read too).</param>
    /// <param name="runtimeApi">The runtime API's <c>host:port</c>; <see langword="null"/>: <c>AWS_LAMBDA_RUNTIME_API</c>, which Lambda sets.</param>
    /// <param name="configureServices">A last say on the services (tests: a DynamoDB client signing with the role's key).</param>
    /// <returns>The host.</returns>
    /// <exception cref="InvalidOperationException">No table is configured (<c>Talki:Aws:TableName</c>).</exception>
    public static IHost Build(string[] args, string? runtimeApi = null, Action<IServiceCollection>? configureServices = null)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings { Args = args });
        builder.Configuration.AddEnvironmentVariables().AddCommandLine(args);

        // It is the authorizer whatever its environment says: no @connections client, no key-ring preload.
        builder.Configuration.AddInMemoryCollection([new("Talki:Aws:Role", "authorizer")]);
        builder.Logging.AddConfiguration(builder.Configuration.GetSection("Logging")).AddSimpleConsole(static o => o.SingleLine = true);

        var aws = builder.Configuration.GetSection("Talki:Aws");
        if (string.IsNullOrEmpty(aws["TableName"]))
        {
            throw new InvalidOperationException("Talki:Aws:TableName is not set: the authorizer checks tickets in the DynamoDB table (the stack sets Talki__Aws__TableName).");
        }

        builder.Services.AddTalkiSignallingCore()
            .BindConfiguration(builder.Configuration.GetSection("Talki"))
            .AddAwsGateway(aws)
            .AddAwsLambdaRuntime(runtimeApi);
        configureServices?.Invoke(builder.Services);
        return builder.Build();
    }
}
