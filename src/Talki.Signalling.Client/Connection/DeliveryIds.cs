namespace Talki.Signalling.Client.Connection;

/// <summary>
/// The delivery ids (<c>ServerMessage.MessageId</c>) seen on one connection, the most recent <see cref="Capacity"/> of
/// them: a gateway that retries a push sends the copy within seconds, long before that many messages went by. Used by
/// the receive loop only (no locking).
/// </summary>
internal sealed class DeliveryIds
{
    /// <summary>How many recent ids are remembered.</summary>
    public const int Capacity = 512;

    private readonly HashSet<string> _seen = new(StringComparer.Ordinal);
    private readonly Queue<string> _order = new();

    /// <summary>Gets how many ids are remembered.</summary>
    public int Count => _seen.Count;

    /// <summary>Records the id; false when it was seen already. A message without an id is always new.</summary>
    public bool IsNew(string? id)
    {
        if (id is null)
        {
            return true;
        }

        if (!_seen.Add(id))
        {
            return false;
        }

        _order.Enqueue(id);
        if (_order.Count > Capacity)
        {
            _seen.Remove(_order.Dequeue());
        }

        return true;
    }

    /// <summary>Forgets every id.</summary>
    public void Clear()
    {
        _seen.Clear();
        _order.Clear();
    }
}
