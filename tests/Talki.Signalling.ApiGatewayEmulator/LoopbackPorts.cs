using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Talki.Signalling.Emulator;

/// <summary>
/// Chooses loopback ports for listeners that must be named before they start: a function instance's address goes into
/// the emulator's routing (and the host's own settings) before the host binds it; a child process (dynalite,
/// redis-server, the sample host) is told its port on its command line.
/// </summary>
/// <remarks>
/// Asking the kernel for port 0, reading the port and closing the socket is a race: until the host binds, the port is
/// free, and the kernel hands ports from the same range to every other port-0 listener and to every outgoing
/// connection's local end (Linux <c>ip_local_port_range</c>, 32768–60999 by default; see ip(7) and
/// https://www.kernel.org/doc/html/latest/networking/ip-sysctl.html). One CI run lost that race: a host failed with
/// "address already in use" after the emulator had started and created its tables. So the ports chosen here come from
/// below that range, where the kernel assigns nothing on its own: only a listener that asks for the exact port can
/// take it. Each is checked by binding it, and none is handed out twice by this process.
/// </remarks>
public static class LoopbackPorts
{
    private const int Lowest = 15000;
    private static readonly HashSet<int> Handed = [];
    private static readonly Lock Gate = new();

    /// <summary>Gets the lowest port the kernel assigns on its own (the start of <c>ip_local_port_range</c>).</summary>
    public static int EphemeralRangeStart { get; } = ReadEphemeralRangeStart();

    /// <summary>Returns a loopback port nobody listens on, outside the kernel's ephemeral range.</summary>
    public static int Choose()
    {
        var highest = Math.Max(Lowest + 1000, EphemeralRangeStart);
        lock (Gate)
        {
            for (var attempt = 0; attempt < 200; attempt++)
            {
                var port = Random.Shared.Next(Lowest, highest);
                if (Handed.Contains(port) || !IsFree(port))
                {
                    continue;
                }

                Handed.Add(port);
                return port;
            }
        }

        throw new InvalidOperationException($"No free loopback port between {Lowest} and {highest} after 200 attempts.");
    }

    private static bool IsFree(int port)
    {
        try
        {
            using var listener = new TcpListener(IPAddress.Loopback, port);
            listener.Start();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private static int ReadEphemeralRangeStart()
    {
        const string RangeFile = "/proc/sys/net/ipv4/ip_local_port_range";
        try
        {
            var first = File.ReadAllText(RangeFile).Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)[0];
            return int.Parse(first, CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return 32768; // Linux's default; Windows' and macOS' ranges start higher, at 49152
        }
    }
}
