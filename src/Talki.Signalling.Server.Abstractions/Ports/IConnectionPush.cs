namespace Talki.Signalling.Ports;

/// <summary>What became of a push to a gateway connection.</summary>
public enum PushOutcome
{
    /// <summary>The gateway accepted the message for the connection.</summary>
    Delivered = 0,

    /// <summary>The connection no longer exists (API Gateway's 410); the engine prunes it.</summary>
    Gone,

    /// <summary>The message is larger than the gateway allows (API Gateway's 413); nothing was sent.</summary>
    PayloadTooLarge,

    /// <summary>
    /// The outcome could not be established within the gateway's bounds (API Gateway throttling or failing after the
    /// retries, a timeout, a transport error): the message was not delivered, but the connection may well be alive, so
    /// this is not a departure. Only <see cref="Gone"/> (API Gateway's 410) removes a member.
    /// </summary>
    Undeliverable,
}

/// <summary>The outbound side of a gateway: sends a text frame to one connection, or closes it.</summary>
public interface IConnectionPush
{
    /// <summary>Sends one UTF-8 JSON text message to a connection.</summary>
    /// <param name="connectionId">The gateway connection id.</param>
    /// <param name="payload">The message. It is only valid until the returned task completes: implementations that queue must copy it.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <returns>The outcome. Expected failures are outcomes, not exceptions.</returns>
    ValueTask<PushOutcome> PushAsync(string connectionId, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default);

    /// <summary>Closes a connection after the messages already pushed to it (no-op when it is gone).</summary>
    /// <param name="connectionId">The gateway connection id.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <returns>A task that completes when the close has been requested.</returns>
    ValueTask CloseAsync(string connectionId, CancellationToken cancellationToken = default);
}
