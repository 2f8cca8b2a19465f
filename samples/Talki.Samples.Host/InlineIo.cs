using System.Reflection;

/// <summary>
/// Inline I/O in the sample host (<c>Talki:Sample:InlineIo</c>: <c>auto</c>, the default, <c>true</c> or <c>false</c>). On,
/// Kestrel runs the application's and the transport's continuations on the I/O threads instead of the thread pool
/// (<c>SocketTransportOptions.UnsafePreferInlineScheduling</c>), and the runtime runs the sockets' completions on its event
/// threads, one per core (<c>DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1</c>, which Kestrel's documentation of the option
/// recommends with it). With the gateway's corked relays that is the cheaper and faster setting (docs/performance.md,
/// "Corked relays" and "Inline I/O as auto").
/// </summary>
/// <remarks>
/// <para>
/// The price: code that blocks on an I/O thread holds every socket served by that thread, and code that blocks waiting for
/// a socket's answer can wait for the very thread it holds. The embedded defaults (rooms, sessions and the key ring in
/// this process) never do. The Redis and DynamoDB adapters read the Data Protection key ring synchronously
/// (<c>IXmlRepository</c> has no asynchronous API), so <c>auto</c> is on only with the embedded stores, off with
/// <c>Talki:Redis</c> or in AWS mode; <c>true</c> forces it on anyway.
/// </para>
/// <para>
/// It was opt-in for a while: with it on, the end-to-end test that kills a member's socket while a newcomer's offer to it
/// is on its way (<c>SocketFaultTests</c>) failed in 2 of 9 runs. A frame the server hands to a socket in the moment it
/// dies was lost, and inline I/O made that moment likelier. Since <c>peer_resumed</c> the peers send such frames again
/// after the resume (the test now loses the offer on purpose), and <c>auto</c> is the default again. docs/performance.md,
/// "Inline I/O as auto" and "peer_resumed".
/// </para>
/// <para>
/// The runtime reads the socket setting once, from the environment, when the process first registers a socket for
/// asynchronous I/O (<c>SocketAsyncEngine</c>). The host sets it for itself before building the application, which opens
/// no socket before that, and only when it is the process's entry point: under <c>WebApplicationFactory</c> the test
/// runner owns the process and its other sockets. A value already in the environment is left as it is.
/// </para>
/// </remarks>
internal static class InlineIo
{
    /// <summary>The configuration key.</summary>
    public const string Key = "Talki:Sample:InlineIo";

    /// <summary>The runtime's environment variable for inline socket completions (read once per process).</summary>
    public const string SocketCompletionsVariable = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";

    /// <summary>Applies the setting to the host and says what it decided.</summary>
    /// <param name="webHost">The host's web host builder.</param>
    /// <param name="configuration">The host's configuration.</param>
    /// <param name="storesInProcess">Whether the rooms, sessions and key ring live in this process (no Redis, not AWS mode).</param>
    /// <returns>One line for the console: on or off, and why.</returns>
    /// <exception cref="InvalidOperationException">The setting is not <c>auto</c>, <c>true</c> or <c>false</c>.</exception>
    public static string Apply(IWebHostBuilder webHost, IConfiguration configuration, bool storesInProcess)
    {
        var setting = configuration[Key];
        bool on;
        string why;
        if (string.IsNullOrEmpty(setting) || string.Equals(setting, "auto", StringComparison.OrdinalIgnoreCase))
        {
            on = storesInProcess;
            why = storesInProcess ? "auto: the stores are in this process" : "auto: the key ring is read synchronously from Redis or DynamoDB";
        }
        else if (bool.TryParse(setting, out on))
        {
            why = $"{Key}={setting}";
        }
        else
        {
            throw new InvalidOperationException($"{Key} is '{setting}'; it takes auto (the default), true or false.");
        }

        if (!on)
        {
            return $"inline I/O off ({why})";
        }

        webHost.UseSockets(sockets => sockets.UnsafePreferInlineScheduling = true);
        var inEnvironment = Environment.GetEnvironmentVariable(SocketCompletionsVariable);
        if (inEnvironment is null && Assembly.GetEntryAssembly() == typeof(InlineIo).Assembly)
        {
            Environment.SetEnvironmentVariable(SocketCompletionsVariable, "1");
            inEnvironment = "1";
        }

        return inEnvironment == "1"
            ? $"inline I/O on ({why}; socket completions on the runtime's event threads)"
            : $"inline I/O on ({why}; socket completions on the thread pool: {SocketCompletionsVariable} is {inEnvironment ?? "not set by this process"})";
    }
}
