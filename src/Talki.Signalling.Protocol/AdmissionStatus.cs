using System.Text.Json.Serialization;

namespace Talki.Signalling;

/// <summary>Where a member stands with the room's admin.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<AdmissionStatus>))]
public enum AdmissionStatus
{
    /// <summary><c>pending</c>: waiting for the admin's decision.</summary>
    [JsonStringEnumMemberName("pending")]
    Pending = 0,

    /// <summary><c>admitted</c>: in the room; the decision is remembered for this user in this room.</summary>
    [JsonStringEnumMemberName("admitted")]
    Admitted,

    /// <summary><c>denied</c>: refused by the admin; the decision is remembered for this user in this room.</summary>
    [JsonStringEnumMemberName("denied")]
    Denied,
}
