using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Talki.Signalling.Aws.Tests.DynamoDb;
using Talki.Signalling.Emulator;

namespace Talki.Samples.AwsAuthorizer.Tests;

/// <summary>
/// The authorizer function's host (<see cref="AuthorizerFunction"/>, <c>Program.cs</c>): configured only from the environment
/// and the command line, answering through the Lambda runtime API against a real (dynalite) table, with no web server.
/// </summary>
[Collection(DynaliteGroup.Name)]
public sealed class AuthorizerFunctionTests(DynaliteFixture dynalite)
{
    private const string Table = "talki-authorizer-sample";
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    [Fact]
    public void Build_WithoutATable_FailsAtOnceSayingSo()
    {
        var exception = Assert.Throws<InvalidOperationException>(() => AuthorizerFunction.Build(["--Talki:Aws:Region=us-east-1"], "127.0.0.1:9001"));

        Assert.Contains("Talki:Aws:TableName", exception.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Build_RegistersNoWebServer_AndTheRuntimeApisClient()
    {
        using var host = AuthorizerFunction.Build(Arguments(), "127.0.0.1:9001");

        Assert.Null(host.Services.GetService<IServer>());
        Assert.Contains(host.Services.GetServices<IHostedService>(), s => s.GetType().Name == "LambdaRuntimeAuthorizer");
    }

    [Fact]
    public void Build_IsTheAuthorizerWhateverTheRoleSetting_SoItHoldsNoConnectionsClient()
    {
        using var host = AuthorizerFunction.Build([.. Arguments(), "--Talki:Aws:Role=backend"], "127.0.0.1:9001");

        Assert.Equal("NoPushFromTheAuthorizer", host.Services.GetRequiredService<Talki.Signalling.Ports.IConnectionPush>().GetType().Name);
    }

    [Fact]
    public async Task InThisProcess_AnUnknownTicketOrAMalformedEvent_IsDenied_AndTheRuntimeGoesOn()
    {
        await dynalite.EnsureTableAsync(Table);
        await using var runtime = await LambdaRuntimeApi.StartAsync();
        using var host = AuthorizerFunction.Build(Arguments(), runtime.RuntimeApi);
        await host.StartAsync();
        try
        {
            var unknown = await runtime.InvokeAsync(Event("A" + new string('b', 42)), Timeout);
            var malformed = await runtime.InvokeAsync("{\"type\":"u8.ToArray(), Timeout);

            Assert.Equal("Deny", Effect(unknown));
            Assert.Equal("Deny", Effect(malformed));
            Assert.Equal(2, runtime.Invocations);
        }
        finally
        {
            await host.StopAsync();
        }
    }

    [Fact]
    public async Task AsAProcess_ConfiguredByItsEnvironmentAsLambdaConfiguresIt_AnswersThroughTheRuntimeApi()
    {
        await dynalite.EnsureTableAsync(Table);
        await using var runtime = await LambdaRuntimeApi.StartAsync();
        var dll = BuiltAuthorizer();
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } dotnet ? dotnet : "dotnet")
        {
            ArgumentList = { dll },
            WorkingDirectory = Path.GetDirectoryName(dll)!,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.Environment["AWS_LAMBDA_RUNTIME_API"] = runtime.RuntimeApi;
        foreach (var argument in Arguments())
        {
            var (key, value) = (argument[2..argument.IndexOf('=', StringComparison.Ordinal)], argument[(argument.IndexOf('=', StringComparison.Ordinal) + 1)..]);
            start.Environment[key.Replace(":", "__", StringComparison.Ordinal)] = value;
        }

        using var process = Process.Start(start)!;
        try
        {
            var answer = await runtime.InvokeAsync(Event("A" + new string('c', 42)), Timeout);

            Assert.True(answer.Succeeded, $"{answer.ErrorMessage}; the process {(process.HasExited ? $"exited with {process.ExitCode}: {await process.StandardError.ReadToEndAsync()}" : "runs")}");
            Assert.Equal("Deny", Effect(answer));
            Assert.True(runtime.Initialized.IsCompletedSuccessfully);
            Assert.False(process.HasExited);
        }
        finally
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }
    }

    /// <summary>
    /// The authorizer as its project builds it (<c>samples/Talki.Samples.AwsAuthorizer/bin/{configuration}/net10.0</c>, the
    /// configuration this test was built with): the function's files as they are published, with its own dependencies.
    /// </summary>
    private static string BuiltAuthorizer()
    {
        var output = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        var configuration = output.Parent!.Name;
        for (var directory = output; directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Talki.Signalling.slnx")))
            {
                var dll = Path.Combine(directory.FullName, "samples", "Talki.Samples.AwsAuthorizer", "bin", configuration, "net10.0", "Talki.Samples.AwsAuthorizer.dll");
                return File.Exists(dll) ? dll : throw new FileNotFoundException($"The authorizer is not built: {dll}");
            }
        }

        throw new DirectoryNotFoundException($"No Talki.Signalling.slnx above {output.FullName}.");
    }

    private string[] Arguments() =>
    [
        "--Talki:Aws:TableName=" + Table,
        "--Talki:Aws:Role=authorizer",
        "--Talki:Aws:Region=us-east-1",
        "--Talki:Aws:DynamoDbServiceUrl=" + dynalite.ServiceUrl,
        "--Talki:Aws:AccessKeyId=local",
        "--Talki:Aws:SecretAccessKey=local",
        "--Talki:Aws:GatewaySecret=authorizer-sample-secret-0123456789abcdef",
        "--Talki:Aws:ApiEndpoint=https://abcdef123.execute-api.us-east-1.amazonaws.com",
        "--Talki:Aws:Stage=default",
        "--Logging:LogLevel:Default=Warning",
    ];

    private static byte[] Event(string ticket) => Encoding.UTF8.GetBytes(JsonSerializer.Serialize(new
    {
        type = "REQUEST",
        methodArn = "arn:aws:execute-api:us-east-1:123456789012:abcdef123/default/$connect",
        queryStringParameters = new Dictionary<string, string> { ["v"] = "4", ["ticket"] = ticket },
        requestContext = new { routeKey = "$connect", eventType = "CONNECT", connectionId = "Abc123Def456Ghi=", stage = "default", apiId = "abcdef123" },
    }));

    private static string Effect(LambdaInvocationResult result)
    {
        using var answer = JsonDocument.Parse(result.Payload);
        return answer.RootElement.GetProperty("policyDocument").GetProperty("Statement")[0].GetProperty("Effect").GetString()!;
    }
}
