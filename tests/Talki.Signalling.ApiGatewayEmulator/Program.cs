using System.Globalization;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Talki.Signalling.Emulator;

// dotnet run --project tests/Talki.Signalling.ApiGatewayEmulator -- --backend http://127.0.0.1:5080 --secret … --port 0
var options = new EmulatorOptions { ConfigureLogging = static logging => logging.AddSimpleConsole(o => o.SingleLine = true) };
for (var i = 0; i < args.Length; i++)
{
    string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value.");
    switch (args[i])
    {
        case "--backend": options.Backend = new Uri(Next()); break;
        case "--secret": options.GatewaySecret = Next(); break;
        case "--port": options.Port = int.Parse(Next(), CultureInfo.InvariantCulture); break;
        case "--stage": options.Stage = Next(); break;
        case "--api-id": options.ApiId = Next(); break;
        case "--region": options.Region = Next(); break;
        case "--idle-timeout-seconds": options.IdleTimeout = TimeSpan.FromSeconds(double.Parse(Next(), CultureInfo.InvariantCulture)); break;
        case "--access-key":
            options.Credentials.Clear();
            options.Credentials[Next()] = args.Length > i + 2 && args[i + 1] == "--secret-key" ? args[i += 2] : throw new ArgumentException("--access-key must be followed by --secret-key <secret>.");
            break;
        case "--help" or "-h":
            Console.WriteLine("usage: --backend <url> --secret <gateway secret> [--port 0] [--stage test] [--api-id id] [--region us-east-1] [--idle-timeout-seconds 600] [--access-key AKID --secret-key SECRET]");
            return 0;
        default: throw new ArgumentException($"Unknown argument {args[i]}; see --help.");
    }
}

await using var emulator = await ApiGatewayEmulator.StartAsync(options);
Console.WriteLine($"WebSocket URL:       {emulator.WebSocketUrl}");
Console.WriteLine($"Management endpoint: {emulator.ManagementEndpoint} (stage {emulator.Stage}, region {options.Region})");
Console.WriteLine("Ctrl+C to stop.");
var stop = new TaskCompletionSource();
using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.TrySetResult(); });
using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.TrySetResult(); });
await stop.Task;
return 0;
