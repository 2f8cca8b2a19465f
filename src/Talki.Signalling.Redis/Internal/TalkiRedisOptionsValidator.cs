using Microsoft.Extensions.Options;

namespace Talki.Signalling.Redis.Internal;

/// <summary>Validates <see cref="TalkiRedisOptions"/> at start-up (trim safe, no reflection), every failure listed.</summary>
internal sealed class TalkiRedisOptionsValidator : IValidateOptions<TalkiRedisOptions>
{
    public ValidateOptionsResult Validate(string? name, TalkiRedisOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();
        if (options.KeyPrefix is not { Length: >= 1 and <= 64 } prefix || prefix.Any(c => c is '{' or '}' || char.IsWhiteSpace(c) || char.IsControl(c)))
        {
            failures.Add($"{nameof(TalkiRedisOptions.KeyPrefix)} must be 1 to 64 characters without '{{', '}}', white space or control characters.");
        }

        if (options.RegistrationTtl < TimeSpan.FromSeconds(3) || options.RegistrationTtl > TimeSpan.FromMinutes(10))
        {
            failures.Add($"{nameof(TalkiRedisOptions.RegistrationTtl)} must be between 00:00:03 and 00:10:00.");
        }

        if (options.PushTimeout < TimeSpan.FromMilliseconds(100) || options.PushTimeout > TimeSpan.FromMinutes(1))
        {
            failures.Add($"{nameof(TalkiRedisOptions.PushTimeout)} must be between 00:00:00.1 and 00:01:00.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
