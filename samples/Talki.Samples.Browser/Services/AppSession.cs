using Microsoft.JSInterop;
using Talki.Signalling;
using Talki.Signalling.Client;
using Talki.Signalling.Http;

namespace Talki.Samples.Browser.Services;

/// <summary>The signed-in user of this tab (the session itself is the server's cookie).</summary>
public sealed class AppSession(TalkiApiClient api, IJSRuntime js)
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
        return await ApplyAsync(result);
    }

    /// <summary>Signs in with a Google ID token.</summary>
    public async Task<SignallingError?> SignInWithGoogleAsync(string idToken)
    {
        var result = await api.SignInWithGoogleAsync(idToken);
        return await ApplyAsync(result);
    }

    /// <summary>Signs out.</summary>
    public async Task SignOutAsync()
    {
        await api.SignOutAsync();
        await RememberAsync(false);
        User = null;
        Changed?.Invoke(this, EventArgs.Empty);
    }

    private async Task LoadAsync()
    {
        // Signed out here (never signed in, or signed out since): no lookup, so no 401 in the browser's console.
        if (await js.InvokeAsync<bool>("talkiApp.sessionHint.get"))
        {
            var result = await api.GetSessionAsync();
            User = result.IsSuccess ? result.Value : null;
            if (User is null)
            {
                await RememberAsync(false); // the session expired: the next load skips the lookup
            }
        }

        Loaded = true;
        Changed?.Invoke(this, EventArgs.Empty);
    }

    private async Task<SignallingError?> ApplyAsync(SignallingResult<SessionResponse> result)
    {
        if (!result.TryGetValue(out var user, out var error))
        {
            return error;
        }

        await RememberAsync(true);
        User = user;
        Loaded = true;
        Changed?.Invoke(this, EventArgs.Empty);
        return null;
    }

    private async Task RememberAsync(bool signedIn)
    {
        try
        {
            await js.InvokeVoidAsync("talkiApp.sessionHint.set", signedIn);
        }
        catch (JSException)
        {
            // No storage (a private mode that refuses it): the next load asks the server, as before.
        }
    }
}
