using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Talki.Signalling.Server.Ice;

/// <summary>
/// Ephemeral TURN credentials in the TURN REST API scheme (draft-uberti-behave-turn-rest), which coturn implements
/// with <c>use-auth-secret</c> and <c>static-auth-secret</c>.
/// </summary>
/// <remarks>
/// <para>The user name is <c>{expiry}:{member id}</c>, where the expiry is in Unix seconds (UTC, sub-second part dropped)
/// and <c>:</c> is coturn's default <c>rest-api-separator</c>. Member ids are base64url, so they never contain it.</para>
/// <para>The credential (the TURN password) is <c>base64(HMAC-SHA1(shared secret, user name))</c>, with the secret and the
/// user name taken as UTF-8 bytes. The TURN server holds the same secret: it recomputes the password from the user name,
/// and refuses the user name once its expiry has passed, so nothing has to be stored or revoked.</para>
/// <para>SHA-1 is what the scheme and coturn mandate; as an HMAC keyed with a secret it is not open to collision attacks.</para>
/// </remarks>
internal static class TurnRestCredentials
{
    /// <summary>Separates the expiry from the member id in the user name (coturn's default <c>rest-api-separator</c>).</summary>
    public const char Separator = ':';

    /// <summary>Builds the TURN user name for a member whose credentials expire at <paramref name="expiresAt"/>.</summary>
    /// <param name="expiresAt">When the credentials stop being accepted.</param>
    /// <param name="member">The member the credentials are for.</param>
    /// <returns><c>{expiry unix seconds}:{member id}</c>.</returns>
    /// <exception cref="ArgumentException"><paramref name="member"/> is the default (empty) id.</exception>
    public static string CreateUsername(DateTimeOffset expiresAt, MemberId member)
    {
        if (member.Value.Length == 0)
        {
            throw new ArgumentException("A TURN user name needs a member id.", nameof(member));
        }

        return string.Create(CultureInfo.InvariantCulture, $"{expiresAt.ToUnixTimeSeconds()}{Separator}{member.Value}");
    }

    /// <summary>Computes the TURN password for a user name: <c>base64(HMAC-SHA1(shared secret, user name))</c>.</summary>
    /// <param name="sharedSecret">The secret shared with the TURN server (coturn <c>static-auth-secret</c>).</param>
    /// <param name="username">The user name from <see cref="CreateUsername"/>.</param>
    /// <returns>The base64 credential.</returns>
    /// <exception cref="ArgumentException"><paramref name="sharedSecret"/> is empty.</exception>
    public static string ComputeCredential(string sharedSecret, string username)
    {
        ArgumentException.ThrowIfNullOrEmpty(sharedSecret);
        ArgumentNullException.ThrowIfNull(username);
#pragma warning disable CA5350 // The TURN REST scheme (and coturn) mandate HMAC-SHA1; a keyed HMAC is not weakened by SHA-1 collisions.
        var mac = HMACSHA1.HashData(Encoding.UTF8.GetBytes(sharedSecret), Encoding.UTF8.GetBytes(username));
#pragma warning restore CA5350
        return Convert.ToBase64String(mac);
    }

    /// <summary>Mints a user name and credential for a member.</summary>
    /// <param name="sharedSecret">The secret shared with the TURN server.</param>
    /// <param name="member">The member the credentials are for.</param>
    /// <param name="expiresAt">When the credentials stop being accepted.</param>
    /// <returns>The user name and the credential.</returns>
    public static (string Username, string Credential) Mint(string sharedSecret, MemberId member, DateTimeOffset expiresAt)
    {
        var username = CreateUsername(expiresAt, member);
        return (username, ComputeCredential(sharedSecret, username));
    }
}
