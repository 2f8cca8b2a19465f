using System.Net;
using System.Net.Sockets;
using Talki.Signalling.Emulator;

namespace Talki.Signalling.ApiGatewayEmulator.Tests;

public sealed class LoopbackPortsTests
{
    [Fact]
    public void Choose_GivesDistinctBindablePorts_BelowTheKernelsEphemeralRange()
    {
        var ports = Enumerable.Range(0, 50).Select(_ => LoopbackPorts.Choose()).ToList();

        Assert.Equal(ports.Count, ports.Distinct().Count());
        Assert.All(ports, port => Assert.InRange(port, 1024, LoopbackPorts.EphemeralRangeStart - 1));
        foreach (var port in ports)
        {
            using var listener = new TcpListener(IPAddress.Loopback, port);
            listener.Start();
        }
    }

    [Fact]
    public void Choose_GivesPortsBelowEveryPortTheKernelHandsToPortZeroListeners()
    {
        // What raced before: the kernel's own choices. Twenty of them, held open, all lie above every port chosen here,
        // so a port chosen here is never one the kernel gives to somebody else meanwhile.
        var held = Enumerable.Range(0, 20).Select(_ =>
        {
            var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            return listener;
        }).ToList();
        try
        {
            var kernelPorts = held.Select(l => ((IPEndPoint)l.LocalEndpoint).Port).ToHashSet();
            var chosen = Enumerable.Range(0, 50).Select(_ => LoopbackPorts.Choose()).ToList();
            Assert.True(chosen.Max() < kernelPorts.Min(), $"chosen up to {chosen.Max()}, the kernel gave {kernelPorts.Min()}");
        }
        finally
        {
            held.ForEach(l => l.Stop());
        }
    }
}
