using Talki.Signalling;
using Talki.Signalling.Client;
using Talki.Signalling.Http;

namespace Talki.Samples.Browser.Services;

/// <summary>The signed-in user of this tab (the session itself is the server's cookie).</summary>
public sealed class AppSession(TalkiApiClient api)
{
    private Task? _loading;

    /// <summary>Raised when <see cref="User"/> changes.</summary>
    public event EventHandler? Changed;

    /// <summary>Gets the signed-in user, or null.</summary>
    public SessionResponse? User { get; private set; }

    /// <summary>Gets a value indicating whether the session was looked up.</summary>
    public bool Loaded { get; private set; }

    /// <summary>Looks the session up once (the cookie may already hold one).</summary>
    public Task EnsureLoadedAsync() => _loading ??= LoadAsync();

    /// <summary>Signs in with a pseudonym.</summary>
    public async Task<SignallingError?> SignInAsync(string displayName)
    {
        var result = await api.SignInAnonymousAsync(displayName);
        return Apply(result);
    }

    /// <summary>Signs in with a Google ID token.</summary>
    public async Task<SignallingError?> SignInWithGoogleAsync(string idToken)
    {
        var result = await api.SignInWithGoogleAsync(idToken);
        return Apply(result);
    }

    /// <summary>Signs out.</summary>
    public async Task SignOutAsync()
    {
        await api.SignOutAsync();
        User = null;
        Changed?.Invoke(this, EventArgs.Empty);
    }

    private async Task LoadAsync()
    {
        var result = await api.GetSessionAsync();
        User = result.IsSuccess ? result.Value : null;
        Loaded = true;
        Changed?.Invoke(this, EventArgs.Empty);
    }

    private SignallingError? Apply(SignallingResult<SessionResponse> result)
    {
        if (!result.TryGetValue(out var user, out var error))
        {
            return error;
        }

        User = user;
        Loaded = true;
        Changed?.Invoke(this, EventArgs.Empty);
        return null;
    }
}
