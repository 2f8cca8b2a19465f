using System.Globalization;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Server.DependencyInjection;

/// <summary>
/// Binds <see cref="TalkiSignallingOptions"/> from a configuration section without reflection (trim and AOT safe; the
/// source-generated binder cannot build the protocol's <see cref="IceServer"/>, whose <c>Urls</c> is required). Keys
/// are the property names (<c>JoinWindow</c>, <c>Limits:MaxMembersPerRoom</c>, <c>Hosting:AllowedOrigins:0</c>…);
/// time spans are <c>hh:mm:ss</c>; a list in configuration replaces the default list; an ICE server is a URL string or
/// <c>{Urls, Username, Credential}</c>. A value that does not parse is a start-up validation failure naming its key,
/// listed with every other failure.
/// </summary>
internal sealed class TalkiOptionsConfiguration(IConfiguration section) : IConfigureOptions<TalkiSignallingOptions>, IValidateOptions<TalkiSignallingOptions>
{
    public void Configure(TalkiSignallingOptions options) => Bind(options, failures: null);

    public ValidateOptionsResult Validate(string? name, TalkiSignallingOptions options)
    {
        var failures = new List<string>();
        Bind(new TalkiSignallingOptions(), failures);
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    private void Bind(TalkiSignallingOptions o, List<string>? failures)
    {
        var reader = new Reader(section, failures);
        reader.TimeSpan("JoinWindow", v => o.JoinWindow = v);
        reader.TimeSpan("TicketLifetime", v => o.TicketLifetime = v);
        reader.TimeSpan("SealedRoomRetention", v => o.SealedRoomRetention = v);
        reader.TimeSpan("ResumeGracePeriod", v => o.ResumeGracePeriod = v);
        reader.Bool("SealRoomsOnTimer", v => o.SealRoomsOnTimer = v);
        reader.Int("MaxDisplayNameLength", v => o.MaxDisplayNameLength = v);
        reader.Int("MinimumProtocolVersion", v => o.MinimumProtocolVersion = v);
        reader.IceServers("IceServers", o.IceServers);

        reader.Int("Limits:MaxMembersPerRoom", v => o.Limits.MaxMembersPerRoom = v);
        reader.Int("Limits:RoomsPerSessionPerHour", v => o.Limits.RoomsPerSessionPerHour = v);
        reader.Int("Limits:KnocksPerUserPerMinute", v => o.Limits.KnocksPerUserPerMinute = v);
        reader.Int("Limits:ReconnectsPerUserPerMinute", v => o.Limits.ReconnectsPerUserPerMinute = v);
        reader.Int("Limits:SignInsPerAddressPerMinute", v => o.Limits.SignInsPerAddressPerMinute = v);
        reader.Int("Limits:MaxPendingPerRoom", v => o.Limits.MaxPendingPerRoom = v);
        reader.Int("Limits:MessagesPerSecond", v => o.Limits.MessagesPerSecond = v);
        reader.Int("Limits:MessageBurst", v => o.Limits.MessageBurst = v);
        reader.Int("Limits:MessageBytesPerSecond", v => o.Limits.MessageBytesPerSecond = v);
        reader.Int("Limits:MessageBytesBurst", v => o.Limits.MessageBytesBurst = v);
        reader.Int("Limits:RateLimitedMessagesBeforeClose", v => o.Limits.RateLimitedMessagesBeforeClose = v);
        reader.TimeSpan("Limits:RateLimitWindow", v => o.Limits.RateLimitWindow = v);
        reader.TimeSpan("Limits:HelloTimeout", v => o.Limits.HelloTimeout = v);
        reader.Int("Limits:MaxQueuedMessagesPerMember", v => o.Limits.MaxQueuedMessagesPerMember = v);
        reader.Int("Limits:MaxQueuedBytesPerMember", v => o.Limits.MaxQueuedBytesPerMember = v);

        reader.Strings("Turn:Urls", o.Turn.Urls);
        reader.String("Turn:SharedSecret", v => o.Turn.SharedSecret = v);
        reader.TimeSpan("Turn:CredentialMargin", v => o.Turn.CredentialMargin = v);

        reader.Strings("Google:ClientIds", o.Google.ClientIds);
        reader.Uri("Google:KeysUrl", v => o.Google.KeysUrl = v);
        reader.Strings("Google:Issuers", o.Google.Issuers);
        reader.Bool("Google:RequireVerifiedEmail", v => o.Google.RequireVerifiedEmail = v);
        reader.TimeSpan("Google:ClockSkew", v => o.Google.ClockSkew = v);

        reader.String("Hosting:PathPrefix", v => o.Hosting.PathPrefix = v);
        reader.Uri("Hosting:PublicWebSocketUrl", v => o.Hosting.PublicWebSocketUrl = v);
        reader.TimeSpan("Hosting:SessionLifetime", v => o.Hosting.SessionLifetime = v);
        reader.Strings("Hosting:AllowedOrigins", o.Hosting.AllowedOrigins);
        reader.String("Hosting:SessionCookieName", v => o.Hosting.SessionCookieName = v);
        reader.Int("Hosting:MaxRequestBodyBytes", v => o.Hosting.MaxRequestBodyBytes = v);
        reader.Int("Hosting:MaxInboundMessageBytes", v => o.Hosting.MaxInboundMessageBytes = v);
        reader.Int("Hosting:MaxOutboundMessageBytes", v => o.Hosting.MaxOutboundMessageBytes = v);
        reader.TimeSpan("Hosting:IdleTimeout", v => o.Hosting.IdleTimeout = v);
        reader.Int("Hosting:OutboundQueueCapacity", v => o.Hosting.OutboundQueueCapacity = v);
    }

    private readonly struct Reader(IConfiguration section, List<string>? failures)
    {
        public void String(string key, Action<string> set)
        {
            if (section[key] is { } value)
            {
                set(value);
            }
        }

        public void Int(string key, Action<int> set) => Parse(key, set, static (string s, out int v) => int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out v), "an integer");

        public void Bool(string key, Action<bool> set) => Parse(key, set, static (string s, out bool v) => bool.TryParse(s, out v), "true or false");

        public void TimeSpan(string key, Action<TimeSpan> set) => Parse(key, set, static (string s, out TimeSpan v) => System.TimeSpan.TryParse(s, CultureInfo.InvariantCulture, out v), "a time span (hh:mm:ss)");

        public void Uri(string key, Action<Uri> set) => Parse(key, set, static (string s, out Uri v) => System.Uri.TryCreate(s, UriKind.Absolute, out v!), "an absolute URI");

        public void Strings(string key, IList<string> target)
        {
            var children = section.GetSection(key).GetChildren().ToList();
            if (children.Count == 0)
            {
                return;
            }

            target.Clear();
            foreach (var child in children)
            {
                if (child.Value is { Length: > 0 } value)
                {
                    target.Add(value);
                }
            }
        }

        public void IceServers(string key, IList<IceServer> target)
        {
            var children = section.GetSection(key).GetChildren().ToList();
            if (children.Count == 0)
            {
                return;
            }

            target.Clear();
            foreach (var child in children)
            {
                if (child.Value is { Length: > 0 } url)
                {
                    target.Add(new IceServer { Urls = [url] });
                    continue;
                }

                var urls = child.GetSection("Urls").GetChildren().Select(c => c.Value).OfType<string>().Where(u => u.Length > 0).ToList();
                if (child["Urls"] is { Length: > 0 } single)
                {
                    urls.Add(single);
                }

                if (urls.Count == 0)
                {
                    failures?.Add($"{section.GetSection(key).Path}:{child.Key}: an ICE server needs a URL or Urls.");
                    continue;
                }

                target.Add(new IceServer { Urls = urls, Username = child["Username"], Credential = child["Credential"] });
            }
        }

        private void Parse<T>(string key, Action<T> set, TryParser<T> parse, string expected)
        {
            if (section[key] is not { } text)
            {
                return;
            }

            if (parse(text, out var value))
            {
                set(value);
            }
            else
            {
                failures?.Add($"{section.GetSection(key).Path}: '{text}' is not {expected}.");
            }
        }
    }

    private delegate bool TryParser<T>(string text, out T value);
}
