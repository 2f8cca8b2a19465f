using System.Buffers.Text;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Options;

namespace Talki.Signalling.Server.AspNetCore;

/// <summary>
/// Server-side sessions for cookie authentication over <see cref="IDistributedCache"/> (in memory by default,
/// Redis or any other cache by registering it). The cookie (or the bearer token) carries only a random
/// 256-bit key; the cache holds the entry under the key's SHA-256, so a leaked cache yields no usable
/// session. Sign-out deletes the entry. When the cache is the in-process default (<see cref="MemoryDistributedCache"/>, no
/// shared cache registered) the sessions are kept in a table of this process instead (<see cref="InProcessSessionTable"/>,
/// the same hashes and expiries at a third of the memory per session), and those Talki starts in a compact encoding
/// (<see cref="CompactSessionTicket"/>); a shared cache gets the standard format.
/// </summary>
internal sealed class DistributedSessionStore : ITicketStore
{
    internal const string KeyPrefix = "talki:session:";

    private readonly IDistributedCache _cache;
    private readonly TimeProvider _time;
    private readonly TimeSpan _lifetime;
    private readonly InProcessSessionTable? _local;

    /// <summary>
    /// Creates the store. The in-process table takes its bound from the in-process cache's options, so that a host that set
    /// <see cref="MemoryCacheOptions.SizeLimit"/> (<c>services.Configure&lt;MemoryDistributedCacheOptions&gt;(…)</c>) keeps its
    /// bound: 200 MiB by default, none when it set the limit to <see langword="null"/>; each session counts its bytes and
    /// its entry's (<see cref="InProcessSessionTable.EntryOverheadBytes"/>).
    /// </summary>
    public DistributedSessionStore(IDistributedCache cache, TimeProvider time, IOptions<TalkiSignallingOptions> options, IOptions<MemoryDistributedCacheOptions>? memoryCacheOptions = null)
        : this(cache, time, options, memoryCacheOptions is null ? InProcessSessionTable.DefaultCapacityBytes : memoryCacheOptions.Value.SizeLimit ?? long.MaxValue)
    {
    }

    /// <summary>Creates the store with the in-process table bounded at <paramref name="localCapacityBytes"/> (tests).</summary>
    internal DistributedSessionStore(IDistributedCache cache, TimeProvider time, IOptions<TalkiSignallingOptions> options, long localCapacityBytes)
    {
        _cache = cache;
        _time = time;
        _lifetime = options.Value.Hosting.SessionLifetime;
        // Only this process reads the in-process cache, so the sessions need not be in it: the table holds them, and only
        // this version reads them, so the compact form needs no reader elsewhere.
        _local = cache is MemoryDistributedCache ? new InProcessSessionTable(time, localCapacityBytes) : null;
    }

    /// <summary>Gets the in-process table the sessions are kept in, or <see langword="null"/> when they go to a shared cache.</summary>
    internal InProcessSessionTable? Local => _local;

    public Task<string> StoreAsync(AuthenticationTicket ticket) => StoreAsync(ticket, CancellationToken.None);

    public async Task<string> StoreAsync(AuthenticationTicket ticket, CancellationToken cancellationToken)
    {
        Span<byte> bytes = stackalloc byte[32];
        RandomNumberGenerator.Fill(bytes);
        var key = Base64Url.EncodeToString(bytes);
        await RenewAsync(key, ticket, cancellationToken).ConfigureAwait(false);
        return key;
    }

    public Task RenewAsync(string key, AuthenticationTicket ticket) => RenewAsync(key, ticket, CancellationToken.None);

    public Task RenewAsync(string key, AuthenticationTicket ticket, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(ticket);
        // Relative to this clock, so that a cache with its own clock (Redis) expires the entry with the session.
        var now = _time.GetUtcNow();
        var remaining = (ticket.Properties.ExpiresUtc ?? now + _lifetime) - now;
        if (remaining <= TimeSpan.Zero)
        {
            return RemoveAsync(key, cancellationToken);
        }

        if (_local is { } local)
        {
            var session = CompactSessionTicket.TryWrite(ticket, out var compact) ? compact : TicketSerializer.Default.Serialize(ticket);
            if (!local.TrySet(InProcessSessionTable.DigestOf(key), session, now + remaining))
            {
                throw new SessionStoreFullException();
            }

            return Task.CompletedTask;
        }

        return _cache.SetAsync(CacheKey(key), TicketSerializer.Default.Serialize(ticket), new DistributedCacheEntryOptions { AbsoluteExpirationRelativeToNow = remaining }, cancellationToken);
    }

    public Task<AuthenticationTicket?> RetrieveAsync(string key) => RetrieveAsync(key, CancellationToken.None);

    public async Task<AuthenticationTicket?> RetrieveAsync(string key, CancellationToken cancellationToken)
    {
        var bytes = _local is { } local ? local.Get(InProcessSessionTable.DigestOf(key)) : await _cache.GetAsync(CacheKey(key), cancellationToken).ConfigureAwait(false);
        if (bytes is null)
        {
            return null;
        }

        var ticket = bytes is [CompactSessionTicket.Marker, ..] ? CompactSessionTicket.Read(bytes) : TicketSerializer.Default.Deserialize(bytes);
        return ticket?.Properties.ExpiresUtc is { } expires && expires <= _time.GetUtcNow() ? null : ticket;
    }

    public Task RemoveAsync(string key) => RemoveAsync(key, CancellationToken.None);

    public Task RemoveAsync(string key, CancellationToken cancellationToken)
    {
        if (_local is { } local)
        {
            local.Remove(InProcessSessionTable.DigestOf(key));
            return Task.CompletedTask;
        }

        return _cache.RemoveAsync(CacheKey(key), cancellationToken);
    }

    private static string CacheKey(string key) => KeyPrefix + Base64Url.EncodeToString(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(key)));
}

/// <summary>
/// The in-process session table is full of live sessions (<see cref="InProcessSessionTable"/>): thrown by
/// <see cref="DistributedSessionStore.StoreAsync(AuthenticationTicket, CancellationToken)"/>, the only way out of
/// <see cref="ITicketStore"/>, and answered by sign-in as <c>503 service_unavailable</c> (<c>TalkiHttpApi.StartSessionAsync</c>).
/// </summary>
internal sealed class SessionStoreFullException : Exception
{
    public SessionStoreFullException()
        : base("The server holds as many sessions as it may.")
    {
    }
}

/// <summary>Configures the Talki session cookie: HttpOnly, Secure, absolute lifetime, server-side store, 401/403 instead of redirects.</summary>
internal sealed class ConfigureSessionCookie : IConfigureNamedOptions<CookieAuthenticationOptions>
{
    private readonly DistributedSessionStore _store;
    private readonly TalkiHostingOptions _options;
    private readonly TimeProvider _time;

    public ConfigureSessionCookie(DistributedSessionStore store, IOptions<TalkiSignallingOptions> options, TimeProvider time)
    {
        _store = store;
        _options = options.Value.Hosting;
        _time = time;
    }

    public void Configure(string? name, CookieAuthenticationOptions options)
    {
        if (name == TalkiAuthenticationDefaults.CookieScheme)
        {
            Configure(options);
        }
    }

    public void Configure(CookieAuthenticationOptions options)
    {
        options.SessionStore = _store;
        options.TimeProvider = _time;
        options.ExpireTimeSpan = _options.SessionLifetime;
        options.SlidingExpiration = false;
        options.Cookie.Name = _options.SessionCookieName;
        options.Cookie.HttpOnly = true;
        options.Cookie.SecurePolicy = Microsoft.AspNetCore.Http.CookieSecurePolicy.Always;
        // Cross-origin apps need the cookie on cross-site requests; CSRF is then stopped by the origin check.
        options.Cookie.SameSite = _options.AllowedOrigins.Count > 0 ? Microsoft.AspNetCore.Http.SameSiteMode.None : Microsoft.AspNetCore.Http.SameSiteMode.Lax;
        options.Cookie.IsEssential = true;
        options.Events.OnRedirectToLogin = context =>
        {
            context.Response.StatusCode = Microsoft.AspNetCore.Http.StatusCodes.Status401Unauthorized;
            return Task.CompletedTask;
        };
        options.Events.OnRedirectToAccessDenied = context =>
        {
            context.Response.StatusCode = Microsoft.AspNetCore.Http.StatusCodes.Status403Forbidden;
            return Task.CompletedTask;
        };
    }
}
