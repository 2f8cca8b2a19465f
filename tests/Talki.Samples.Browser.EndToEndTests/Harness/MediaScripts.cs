namespace Talki.Samples.Browser.EndToEndTests.Harness;

/// <summary>Init scripts (test-side, before the app's scripts) that give a browser context other media devices.</summary>
internal static class MediaScripts
{
    /// <summary>Camera and microphone both refused (the user said no to the permission prompt).</summary>
    public const string DenyAll = """
        (() => {
          if (!navigator.mediaDevices) return;
          navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));
        })();
        """;

    /// <summary>A machine with a microphone and no camera: video requests fail as the browser fails them without a device.</summary>
    public const string NoCamera = """
        (() => {
          if (!navigator.mediaDevices) return;
          const original = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
          navigator.mediaDevices.getUserMedia = c => c && c.video ? Promise.reject(new DOMException('Requested device not found', 'NotFoundError')) : original(c);
        })();
        """;

    /// <summary>An audio-only member: the microphone permission and no camera.</summary>
    public static UserOptions AudioOnly { get; } = new() { Permissions = ["microphone"], InitScript = NoCamera };

    /// <summary>A member who refused both: nothing is sent, only received.</summary>
    public static UserOptions NoMedia { get; } = new() { Permissions = [], InitScript = DenyAll };
}
