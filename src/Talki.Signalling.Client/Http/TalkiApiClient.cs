using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Talki.Signalling.Http;
using Talki.Signalling.Protocol;

namespace Talki.Signalling.Client;

/// <summary>
/// The typed HTTP client of the Talki API: sign-in (pseudonym or Google), the session, sign-out, create room and join room.
/// Friendly to <c>IHttpClientFactory</c> (register it with <c>services.AddTalkiClient(...)</c>); in Blazor WebAssembly every
/// request carries <c>credentials: 'include'</c> so the session cookie reaches an API on another origin. Failures are results
/// with the server's stable error code; a transport failure is <see cref="SignallingErrorCode.ServiceUnavailable"/>.
/// </summary>
public sealed class TalkiApiClient
{
    private static readonly HttpRequestOptionsKey<IDictionary<string, object>> BrowserFetchOptions = new("WebAssemblyFetchOptions");
    private readonly HttpClient _http;
    private readonly TalkiClientOptions _options;
    private readonly TalkiAccessToken _token;

    /// <summary>Initializes a new instance of the <see cref="TalkiApiClient"/> class.</summary>
    /// <param name="httpClient">The HTTP client; its <see cref="HttpClient.BaseAddress"/> is used when <see cref="TalkiClientOptions.ApiBaseAddress"/> is not set.</param>
    /// <param name="options">The options, or <see langword="null"/> for the defaults.</param>
    /// <exception cref="ArgumentNullException"><paramref name="httpClient"/> is <see langword="null"/>.</exception>
    public TalkiApiClient(HttpClient httpClient, TalkiClientOptions? options = null)
        : this(httpClient, options ?? new TalkiClientOptions(), new TalkiAccessToken())
    {
    }

    internal TalkiApiClient(HttpClient httpClient, TalkiClientOptions options, TalkiAccessToken token)
    {
        ArgumentNullException.ThrowIfNull(httpClient);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _http = httpClient;
        _options = options;
        _token = token;
    }

    /// <summary>Signs in with a pseudonym (an unverified, anonymous session).</summary>
    /// <param name="displayName">The name others see (1 to 64 printable characters).</param>
    /// <param name="cancellationToken">Cancels the request.</param>
    /// <returns>The session, or the server's refusal (<see cref="SignallingErrorCode.InvalidRequest"/> for a bad name).</returns>
    public Task<SignallingResult<SessionResponse>> SignInAnonymousAsync(string displayName, CancellationToken cancellationToken = default) =>
        SignInAsync("session/anonymous", new AnonymousSignInRequest { DisplayName = displayName, UseBearerToken = _options.UseBearerToken }, TalkiJsonContext.Default.AnonymousSignInRequest, cancellationToken);

    /// <summary>Signs in with a Google ID token (from Google Identity Services); the session is verified.</summary>
    /// <param name="idToken">The ID token.</param>
    /// <param name="cancellationToken">Cancels the request.</param>
    /// <returns>The session, or the refusal (for example <see cref="SignallingErrorCode.TokenExpired"/>).</returns>
    public Task<SignallingResult<SessionResponse>> SignInWithGoogleAsync(string idToken, CancellationToken cancellationToken = default) =>
        SignInAsync("session/google", new GoogleSignInRequest { IdToken = idToken, UseBearerToken = _options.UseBearerToken }, TalkiJsonContext.Default.GoogleSignInRequest, cancellationToken);

    /// <summary>Reads the current session.</summary>
    /// <param name="cancellationToken">Cancels the request.</param>
    /// <returns>The session, or <see cref="SignallingErrorCode.Unauthenticated"/> when signed out.</returns>
    public Task<SignallingResult<SessionResponse>> GetSessionAsync(CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Get, "session", null, TalkiJsonContext.Default.SessionResponse, cancellationToken);

    /// <summary>Signs out: the server deletes the session.</summary>
    /// <param name="cancellationToken">Cancels the request.</param>
    /// <returns><see langword="true"/> when signed out.</returns>
    public async Task<SignallingResult<bool>> SignOutAsync(CancellationToken cancellationToken = default)
    {
        var result = await SendAsync<object>(HttpMethod.Post, "session/sign-out", "{}", null, cancellationToken).ConfigureAwait(false);
        if (result.IsSuccess)
        {
            _token.Value = null;
            return true;
        }

        return result.Error!;
    }

    /// <summary>Creates a room; the caller is its admin. The answer carries the one-time ticket for the WebSocket.</summary>
    /// <param name="cancellationToken">Cancels the request.</param>
    /// <returns>The ticket, or the refusal (for example <see cref="SignallingErrorCode.RoomQuotaExceeded"/>).</returns>
    public Task<SignallingResult<TicketResponse>> CreateRoomAsync(CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Post, "rooms", "{}", TalkiJsonContext.Default.TicketResponse, cancellationToken);

    /// <summary>Asks for a ticket into a room (a first knock, or a rejoin: an approval is remembered).</summary>
    /// <param name="room">The room.</param>
    /// <param name="cancellationToken">Cancels the request.</param>
    /// <returns>The ticket, or the refusal (<see cref="SignallingErrorCode.RoomNotFound"/>, <see cref="SignallingErrorCode.RoomSealed"/>, <see cref="SignallingErrorCode.Denied"/>, <see cref="SignallingErrorCode.RoomFull"/>…).</returns>
    public Task<SignallingResult<TicketResponse>> JoinRoomAsync(RoomId room, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Post, $"rooms/{Uri.EscapeDataString(room.ToString())}/tickets", "{}", TalkiJsonContext.Default.TicketResponse, cancellationToken);

    private async Task<SignallingResult<SessionResponse>> SignInAsync<TRequest>(string path, TRequest request, JsonTypeInfo<TRequest> requestType, CancellationToken cancellationToken)
    {
        var body = JsonSerializer.Serialize(request, requestType);
        var result = await SendAsync(HttpMethod.Post, path, body, TalkiJsonContext.Default.SessionResponse, cancellationToken).ConfigureAwait(false);
        if (result.TryGetValue(out var session, out _))
        {
            _token.Value = session.AccessToken;
        }

        return result;
    }

    private async Task<SignallingResult<T>> SendAsync<T>(HttpMethod method, string path, string? jsonBody, JsonTypeInfo<T>? responseType, CancellationToken cancellationToken)
        where T : class
    {
        using var request = new HttpRequestMessage(method, Resolve(path));
        if (jsonBody is not null)
        {
            request.Content = new StringContent(jsonBody, Encoding.UTF8, "application/json");
        }

        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        if (_token.Value is { } token)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        if (_options.IncludeBrowserCredentials)
        {
            // Read by the browser's HttpClient handler (what SetBrowserRequestCredentials does); ignored elsewhere.
            request.Options.Set(BrowserFetchOptions, new Dictionary<string, object>(StringComparer.Ordinal) { ["credentials"] = "include" });
        }

        try
        {
            using var response = await _http.SendAsync(request, cancellationToken).ConfigureAwait(false);
            if (response.IsSuccessStatusCode)
            {
                if (responseType is null)
                {
                    return SignallingResult<T>.Success(default!);
                }

                var value = await ReadJsonAsync(response, responseType, cancellationToken).ConfigureAwait(false);
                return value is null
                    ? SignallingResult<T>.Failure(SignallingErrorCode.ServiceUnavailable, $"The server answered {(int)response.StatusCode} without the expected body.")
                    : SignallingResult<T>.Success(value);
            }

            var error = await ReadJsonAsync(response, TalkiJsonContext.Default.ErrorResponse, cancellationToken).ConfigureAwait(false);
            return error is not null
                ? SignallingResult<T>.Failure(error.Code, error.Reference is null ? error.Detail : $"{error.Detail} (reference {error.Reference})")
                : SignallingResult<T>.Failure(response.StatusCode == HttpStatusCode.Unauthorized ? SignallingErrorCode.Unauthenticated : SignallingErrorCode.ServiceUnavailable, $"The server answered {(int)response.StatusCode} {response.ReasonPhrase}.");
        }
        catch (HttpRequestException ex)
        {
            return SignallingResult<T>.Failure(SignallingErrorCode.ServiceUnavailable, $"The server could not be reached: {ex.Message}");
        }
        catch (TaskCanceledException ex) when (!cancellationToken.IsCancellationRequested)
        {
            return SignallingResult<T>.Failure(SignallingErrorCode.ServiceUnavailable, $"The request timed out: {ex.Message}");
        }
    }

    private static async Task<TValue?> ReadJsonAsync<TValue>(HttpResponseMessage response, JsonTypeInfo<TValue> type, CancellationToken cancellationToken)
        where TValue : class
    {
        if (response.Content.Headers.ContentType?.MediaType is not { } mediaType || !mediaType.EndsWith("json", StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        try
        {
            var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
            await using (stream.ConfigureAwait(false))
            {
                return await JsonSerializer.DeserializeAsync(stream, type, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private Uri Resolve(string path)
    {
        var baseAddress = _options.ApiBaseAddress ?? _http.BaseAddress
            ?? throw new InvalidOperationException("Set TalkiClientOptions.ApiBaseAddress or the HttpClient's BaseAddress.");
        var prefix = _options.PathPrefix.Trim('/');
        var root = baseAddress.AbsoluteUri.EndsWith('/') ? baseAddress : new Uri(baseAddress.AbsoluteUri + "/");
        return new Uri(root, prefix.Length == 0 ? path : $"{prefix}/{path}");
    }
}

/// <summary>Holds the bearer token of the session (when <see cref="TalkiClientOptions.UseBearerToken"/> is on), shared by the typed clients.</summary>
internal sealed class TalkiAccessToken
{
    private volatile string? _value;

    public string? Value
    {
        get => _value;
        set => _value = value;
    }
}
