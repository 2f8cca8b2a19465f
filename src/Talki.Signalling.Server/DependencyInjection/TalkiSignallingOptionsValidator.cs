using Microsoft.Extensions.Options;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Server.DependencyInjection;

/// <summary>Validates <see cref="TalkiSignallingOptions"/> at start-up (trim safe, no reflection).</summary>
internal sealed class TalkiSignallingOptionsValidator : IValidateOptions<TalkiSignallingOptions>
{
    public ValidateOptionsResult Validate(string? name, TalkiSignallingOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();
        Range(failures, nameof(options.JoinWindow), options.JoinWindow, TimeSpan.FromSeconds(10), TimeSpan.FromHours(24));
        Range(failures, nameof(options.TicketLifetime), options.TicketLifetime, TimeSpan.FromSeconds(1), TimeSpan.FromMinutes(10));
        Range(failures, nameof(options.SealedRoomRetention), options.SealedRoomRetention, TimeSpan.Zero, TimeSpan.FromHours(24));
        if (options.MinimumProtocolVersion is < ProtocolVersion.Minimum or > ProtocolVersion.Current)
        {
            failures.Add($"{nameof(options.MinimumProtocolVersion)} must be between {ProtocolVersion.Minimum} and {ProtocolVersion.Current}.");
        }

        if (options.MaxDisplayNameLength is < 1 or > 256)
        {
            failures.Add($"{nameof(options.MaxDisplayNameLength)} must be between 1 and 256.");
        }

        foreach (var server in options.IceServers)
        {
            if (server is null || server.Urls.Count == 0 || server.Urls.Any(u => !(u.StartsWith("stun:", StringComparison.Ordinal) || u.StartsWith("turn:", StringComparison.Ordinal) || u.StartsWith("turns:", StringComparison.Ordinal))))
            {
                failures.Add("Every ICE server needs at least one stun:, turn: or turns: URL.");
                break;
            }
        }

        var limits = options.Limits;
        if (limits.MaxMembersPerRoom is < 2 or > 1000)
        {
            failures.Add($"Limits.{nameof(limits.MaxMembersPerRoom)} must be between 2 and 1000.");
        }

        if (limits.MaxPendingPerRoom is < 1 or > 1000)
        {
            failures.Add($"Limits.{nameof(limits.MaxPendingPerRoom)} must be between 1 and 1000.");
        }

        if (limits.SignInsPerAddressPerMinute is < 1 or > 100_000)
        {
            failures.Add($"Limits.{nameof(limits.SignInsPerAddressPerMinute)} must be between 1 and 100000.");
        }

        if (limits.RoomsPerSessionPerHour is < 1 or > 100_000 || limits.KnocksPerUserPerMinute is < 1 or > 100_000 || limits.ReconnectsPerUserPerMinute is < 1 or > 100_000)
        {
            failures.Add($"Limits.{nameof(limits.RoomsPerSessionPerHour)}, Limits.{nameof(limits.KnocksPerUserPerMinute)} and Limits.{nameof(limits.ReconnectsPerUserPerMinute)} must be between 1 and 100000.");
        }

        if (limits.MessagesPerSecond is < 1 or > 10_000)
        {
            failures.Add($"Limits.{nameof(limits.MessagesPerSecond)} must be between 1 and 10000.");
        }

        if (limits.MessageBurst is < 1 or > 100_000 || limits.RateLimitedMessagesBeforeClose is < 1 or > 100_000)
        {
            failures.Add($"Limits.{nameof(limits.MessageBurst)} and Limits.{nameof(limits.RateLimitedMessagesBeforeClose)} must be between 1 and 100000.");
        }

        if (limits.MessageBurst < limits.MaxMembersPerRoom - 1)
        {
            // A newcomer's first offers to every member leave in one 'signals' message that pays one token per entry.
            failures.Add($"Limits.{nameof(limits.MessageBurst)} must be at least Limits.{nameof(limits.MaxMembersPerRoom)} - 1 ({limits.MaxMembersPerRoom - 1}): a newcomer's first offers leave in one 'signals' message that counts one message per member.");
        }

        if (limits.MessageBytesPerSecond is < 1024 or > 64 * 1024 * 1024 || limits.MessageBytesBurst is < 1024 or > 64 * 1024 * 1024)
        {
            failures.Add($"Limits.{nameof(limits.MessageBytesPerSecond)} and Limits.{nameof(limits.MessageBytesBurst)} must be between 1024 and 67108864 (64 MiB).");
        }
        else if (limits.MessageBytesBurst < options.Hosting.MaxInboundMessageBytes)
        {
            failures.Add($"Limits.{nameof(limits.MessageBytesBurst)} must be at least Hosting.{nameof(options.Hosting.MaxInboundMessageBytes)} ({options.Hosting.MaxInboundMessageBytes}): a message of the largest size must be able to pass.");
        }

        Range(failures, "Limits." + nameof(limits.RateLimitWindow), limits.RateLimitWindow, TimeSpan.FromSeconds(1), TimeSpan.FromHours(1));
        Range(failures, "Limits." + nameof(limits.HelloTimeout), limits.HelloTimeout, TimeSpan.FromSeconds(1), TimeSpan.FromMinutes(10));
        Range(failures, nameof(options.ResumeGracePeriod), options.ResumeGracePeriod, TimeSpan.Zero, TimeSpan.FromMinutes(10));
        if (limits.MaxQueuedMessagesPerMember is < 1 or > 10_000)
        {
            failures.Add($"Limits.{nameof(limits.MaxQueuedMessagesPerMember)} must be between 1 and 10000.");
        }

        if (limits.MaxQueuedBytesPerMember is < 1024 or > 16 * 1024 * 1024)
        {
            failures.Add($"Limits.{nameof(limits.MaxQueuedBytesPerMember)} must be between 1024 and 16777216.");
        }

        var google = options.Google;
        if (!google.KeysUrl.IsAbsoluteUri || !(google.KeysUrl.Scheme == "https" || (google.KeysUrl.Scheme == "http" && google.KeysUrl.IsLoopback))
            || google.Issuers.Count == 0 || google.ClientIds.Any(string.IsNullOrWhiteSpace))
        {
            failures.Add("Google.KeysUrl must be an absolute https URL (http only on loopback, for tests), Google.Issuers must not be empty and Google.ClientIds must not contain blanks.");
        }

        Range(failures, "Google." + nameof(google.ClockSkew), google.ClockSkew, TimeSpan.Zero, TimeSpan.FromMinutes(10));

        var turn = options.Turn;
        if (turn.Urls.Any(u => u is null || !(u.StartsWith("turn:", StringComparison.Ordinal) || u.StartsWith("turns:", StringComparison.Ordinal))))
        {
            failures.Add($"Every Turn.{nameof(turn.Urls)} entry must be a turn: or turns: URL.");
        }

        if (turn.Urls.Count > 0 && string.IsNullOrEmpty(turn.SharedSecret))
        {
            failures.Add($"Turn.{nameof(turn.SharedSecret)} is required when Turn.{nameof(turn.Urls)} is not empty.");
        }

        Range(failures, "Turn." + nameof(turn.CredentialMargin), turn.CredentialMargin, TimeSpan.Zero, TimeSpan.FromHours(24));

        var hosting = options.Hosting;
        if (string.IsNullOrEmpty(hosting.PathPrefix) || hosting.PathPrefix[0] != '/' || (hosting.PathPrefix.Length > 1 && hosting.PathPrefix[^1] == '/'))
        {
            failures.Add($"Hosting.{nameof(hosting.PathPrefix)} must start with '/' and not end with one (for example /talki).");
        }

        if (hosting.PublicWebSocketUrl is { } url && (!url.IsAbsoluteUri || url.Scheme is not ("ws" or "wss")))
        {
            failures.Add($"Hosting.{nameof(hosting.PublicWebSocketUrl)} must be an absolute ws:// or wss:// URL.");
        }

        Range(failures, "Hosting." + nameof(hosting.SessionLifetime), hosting.SessionLifetime, TimeSpan.FromSeconds(1), TimeSpan.FromDays(30));
        foreach (var origin in hosting.AllowedOrigins)
        {
            if (!Uri.TryCreate(origin, UriKind.Absolute, out var uri) || uri.Scheme is not ("https" or "http") || uri.GetLeftPart(UriPartial.Authority) != origin.TrimEnd('/') || origin.EndsWith('/'))
            {
                failures.Add($"Hosting.{nameof(hosting.AllowedOrigins)} entries must be origins such as https://app.example.org (scheme, host and port only): '{origin}'.");
            }
        }

        Range(failures, "Hosting." + nameof(hosting.IdleTimeout), hosting.IdleTimeout, TimeSpan.FromSeconds(1), TimeSpan.FromHours(2));
        if (hosting.MaxRequestBodyBytes is < 1024 or > 1024 * 1024)
        {
            failures.Add($"Hosting.{nameof(hosting.MaxRequestBodyBytes)} must be between 1 KiB and 1 MiB.");
        }

        if (hosting.MaxInboundMessageBytes is < 1024 or > 1024 * 1024)
        {
            failures.Add($"Hosting.{nameof(hosting.MaxInboundMessageBytes)} must be between 1 KiB and 1 MiB.");
        }

        if (hosting.MaxOutboundMessageBytes < hosting.MaxInboundMessageBytes + 256 || hosting.MaxOutboundMessageBytes > 4 * 1024 * 1024)
        {
            failures.Add($"Hosting.{nameof(hosting.MaxOutboundMessageBytes)} must exceed {nameof(hosting.MaxInboundMessageBytes)} by at least 256 bytes (a relayed signal grows) and be at most 4 MiB.");
        }

        if (hosting.OutboundQueueCapacity is < 1 or > 65536)
        {
            failures.Add($"Hosting.{nameof(hosting.OutboundQueueCapacity)} must be between 1 and 65536.");
        }

        if (string.IsNullOrWhiteSpace(hosting.SessionCookieName))
        {
            failures.Add($"Hosting.{nameof(hosting.SessionCookieName)} is required.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    private static void Range(List<string> failures, string name, TimeSpan value, TimeSpan min, TimeSpan max)
    {
        if (value < min || value > max)
        {
            failures.Add($"{name} must be between {min} and {max}.");
        }
    }
}
