namespace Talki.Signalling.Emulator;

/// <summary>Faults injected into the <c>@connections</c> API; thread-safe and settable while the emulator runs.</summary>
public sealed class EmulatorFaults
{
    private readonly Lock _lock = new();
    private readonly Queue<int> _failures = new();
    private int _drops;
    private TimeSpan _latency;
    private volatile bool _loseDisconnects;
    private TimeSpan _frameJitter;
    private TimeSpan _connectCompletionDelay;

    /// <summary>
    /// Gets or sets a value indicating whether the <c>$disconnect</c> integration call is lost when a socket ends: API
    /// Gateway documents <c>$disconnect</c> as best effort, so a backend must not depend on it.
    /// </summary>
    public bool LoseDisconnects
    {
        get => _loseDisconnects;
        set => _loseDisconnects = value;
    }

    /// <summary>
    /// Gets or sets the largest random delay added before each inbound frame's integration call (uniform in [0, value), on
    /// the real clock: it reorders HTTP calls in flight). API Gateway does not serialise a connection's frames: "Responses
    /// are asynchronous and are not necessarily received by the client in the same order as the client's messages were
    /// sent" (https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-routes-integrations.html),
    /// so a backend must not depend on the order of one connection's frames.
    /// </summary>
    public TimeSpan FrameJitter
    {
        get
        {
            lock (_lock)
            {
                return _frameJitter;
            }
        }

        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, TimeSpan.Zero);
            lock (_lock)
            {
                _frameJitter = value;
            }
        }
    }

    /// <summary>
    /// Gets or sets a delay between the authorizer's Allow and the end of <c>$connect</c> (the socket's accept), on the real
    /// clock. Meanwhile the connection exists but is not established: <c>@connections</c> answers it 410, as API Gateway does
    /// ("GoneException ... if you try to post to a connection before the $connect route is complete", AWS re:Post knowledge
    /// center, https://repost.aws/knowledge-center/410-gone-api-gateway). On AWS the moment is short; this widens it, to
    /// test what a backend does with a connection its authorizer bound before it is open.
    /// </summary>
    public TimeSpan ConnectCompletionDelay
    {
        get
        {
            lock (_lock)
            {
                return _connectCompletionDelay;
            }
        }

        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, TimeSpan.Zero);
            lock (_lock)
            {
                _connectCompletionDelay = value;
            }
        }
    }

    /// <summary>Gets or sets the latency added to every <c>@connections</c> call (on the emulator's <see cref="TimeProvider"/>).</summary>
    public TimeSpan Latency
    {
        get
        {
            lock (_lock)
            {
                return _latency;
            }
        }

        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, TimeSpan.Zero);
            lock (_lock)
            {
                _latency = value;
            }
        }
    }

    /// <summary>Gets the number of scripted push failures not yet served.</summary>
    public int PendingFailures
    {
        get
        {
            lock (_lock)
            {
                return _failures.Count;
            }
        }
    }

    /// <summary>Makes the next <paramref name="count"/> pushes (POST) answer <paramref name="status"/>: 429 (LimitExceededException), 500 or 503.</summary>
    public void FailNextPushes(int count, int status = 429)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfLessThan(status, 400);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(status, 599);
        lock (_lock)
        {
            for (var i = 0; i < count; i++)
            {
                _failures.Enqueue(status);
            }
        }
    }

    /// <summary>Makes the next pushes answer these statuses, in order (e.g. 429, 500, 503).</summary>
    public void ScriptPushFailures(params int[] statuses)
    {
        ArgumentNullException.ThrowIfNull(statuses);
        foreach (var status in statuses)
        {
            FailNextPushes(1, status);
        }
    }

    /// <summary>Makes the next <paramref name="count"/> pushes to live connections answer 200 without delivering the frame.</summary>
    public void DropNextPushes(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        lock (_lock)
        {
            _drops += count;
        }
    }

    /// <summary>Clears every fault.</summary>
    public void Reset()
    {
        lock (_lock)
        {
            _failures.Clear();
            _drops = 0;
            _latency = TimeSpan.Zero;
            _frameJitter = TimeSpan.Zero;
            _connectCompletionDelay = TimeSpan.Zero;
            _loseDisconnects = false;
        }
    }

    internal bool TryTakeFailure(out int status)
    {
        lock (_lock)
        {
            return _failures.TryDequeue(out status);
        }
    }

    internal bool TryTakeDrop()
    {
        lock (_lock)
        {
            if (_drops == 0)
            {
                return false;
            }

            _drops--;
            return true;
        }
    }
}
