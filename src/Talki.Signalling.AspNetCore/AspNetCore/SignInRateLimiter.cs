using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Options;
using Talki.Signalling.Ports;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Server.AspNetCore;

/// <summary>
/// Sign-ins per client address (<see cref="TalkiLimitsOptions.SignInsPerAddressPerMinute"/>): a fixed window of one
/// minute per address through the <see cref="IQuotaCounter"/> (in this process by default, shared by every instance with
/// <c>AddRedis</c>), keyed by the connection's remote address (the forwarded client address once ASP.NET Core's
/// forwarded headers are enabled; IPv6 per /64). It runs as an endpoint filter of the sign-in endpoints, so it cannot
/// be lost by a missing <c>app.UseRateLimiter()</c>. When the shared counter is unavailable the sign-in is answered
/// 503 <c>service_unavailable</c>.
/// </summary>
internal sealed class SignInRateLimiter : IEndpointFilter
{
    private static readonly TimeSpan Window = TimeSpan.FromMinutes(1);
    private readonly IQuotaCounter _quotas;
    private readonly int _permits;

    public SignInRateLimiter(IOptions<TalkiSignallingOptions> options, IQuotaCounter quotas)
    {
        _permits = options.Value.Limits.SignInsPerAddressPerMinute;
        _quotas = quotas;
    }

    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(next);
        bool acquired;
        try
        {
            acquired = await _quotas.TryAcquireAsync("sign-in:" + PartitionKey(context.HttpContext.Connection.RemoteIpAddress), _permits, Window, context.HttpContext.RequestAborted).ConfigureAwait(false);
        }
        catch (RoomStoreUnavailableException)
        {
            await HttpErrors.WriteStoreUnavailableAsync(context.HttpContext).ConfigureAwait(false);
            return null;
        }

        if (!acquired)
        {
            context.HttpContext.Response.Headers.RetryAfter = "60";
            await HttpErrors.WriteAsync(context.HttpContext, StatusCodes.Status429TooManyRequests, SignallingErrorCode.RateLimited, $"At most {_permits} sign-ins per minute from one address.").ConfigureAwait(false);
            return null;
        }

        return await next(context).ConfigureAwait(false);
    }

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
