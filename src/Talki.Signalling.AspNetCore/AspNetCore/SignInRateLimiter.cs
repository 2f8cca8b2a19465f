using System.Net;
using System.Net.Sockets;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Options;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Server.AspNetCore;

/// <summary>
/// Sign-ins per client address (<see cref="TalkiLimitsOptions.SignInsPerAddressPerMinute"/>): a fixed-window
/// <see cref="PartitionedRateLimiter"/> of System.Threading.RateLimiting, the limiter behind ASP.NET Core's rate-limiting
/// middleware, partitioned by the connection's remote address (the forwarded client address once ASP.NET Core's
/// forwarded headers are enabled; IPv6 per /64). It runs as an endpoint filter of the sign-in endpoints, so it cannot
/// be lost by a missing <c>app.UseRateLimiter()</c>.
/// </summary>
/// <remarks>
/// The limiter keeps its own monotonic clock: System.Threading.RateLimiting takes no <see cref="TimeProvider"/>, so
/// this is the one limit not driven by the injected clock.
/// </remarks>
internal sealed class SignInRateLimiter : IEndpointFilter, IDisposable
{
    private readonly PartitionedRateLimiter<HttpContext> _limiter;
    private readonly int _permits;

    public SignInRateLimiter(IOptions<TalkiSignallingOptions> options)
    {
        _permits = options.Value.Limits.SignInsPerAddressPerMinute;
        var permits = _permits;
        _limiter = PartitionedRateLimiter.Create<HttpContext, string>(context => RateLimitPartition.GetFixedWindowLimiter(
            PartitionKey(context.Connection.RemoteIpAddress),
            _ => new FixedWindowRateLimiterOptions { PermitLimit = permits, Window = TimeSpan.FromMinutes(1), QueueLimit = 0, AutoReplenishment = true }));
    }

    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(next);
        using var lease = _limiter.AttemptAcquire(context.HttpContext);
        if (!lease.IsAcquired)
        {
            context.HttpContext.Response.Headers.RetryAfter = "60";
            await HttpErrors.WriteAsync(context.HttpContext, StatusCodes.Status429TooManyRequests, SignallingErrorCode.RateLimited, $"At most {_permits} sign-ins per minute from one address.").ConfigureAwait(false);
            return null;
        }

        return await next(context).ConfigureAwait(false);
    }

    public void Dispose() => _limiter.Dispose();

    /// <summary>The partition of an address: IPv4 as is, IPv6 by its /64 (one subscriber's block), IPv4-mapped as IPv4.</summary>
    internal static string PartitionKey(IPAddress? address)
    {
        if (address is null)
        {
            return "unknown";
        }

        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        if (address.AddressFamily != AddressFamily.InterNetworkV6)
        {
            return address.ToString();
        }

        Span<byte> bytes = stackalloc byte[16];
        address.TryWriteBytes(bytes, out _);
        bytes[8..].Clear();
        return new IPAddress(bytes).ToString() + "/64";
    }
}
