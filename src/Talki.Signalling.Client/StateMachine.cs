using System.Collections.Frozen;
using Microsoft.Extensions.Logging;

namespace Talki.Signalling.Client;

/// <summary>
/// A state and the explicit table of the transitions allowed from each state. <see cref="TrySetState"/> is the only way the
/// state changes: a transition not in the table is refused (logged, never applied). The owner raises its events out of the lock.
/// </summary>
/// <typeparam name="TState">The state enum.</typeparam>
internal sealed partial class StateMachine<TState>
    where TState : struct, Enum
{
    private readonly object _sync = new();
    private readonly ILogger _logger;
    private readonly string _name;
    private TState _state;

    public StateMachine(string name, TState initial, IEnumerable<(TState From, TState To)> transitions, ILogger logger)
    {
        _name = name;
        _state = initial;
        _logger = logger;
        Transitions = transitions.ToFrozenSet();
    }

    /// <summary>Gets the allowed transitions.</summary>
    public FrozenSet<(TState From, TState To)> Transitions { get; }

    /// <summary>Gets the current state.</summary>
    public TState State
    {
        get
        {
            lock (_sync)
            {
                return _state;
            }
        }
    }

    /// <summary>Moves to <paramref name="next"/> if the table allows it from the current state.</summary>
    /// <param name="next">The state to move to.</param>
    /// <param name="previous">The state before (the current one when refused).</param>
    /// <returns><see langword="true"/> when the transition was applied.</returns>
    public bool TrySetState(TState next, out TState previous)
    {
        lock (_sync)
        {
            previous = _state;
            if (!Transitions.Contains((previous, next)))
            {
                LogRefused(_logger, _name, previous, next);
                return false;
            }

            _state = next;
            return true;
        }
    }

    [LoggerMessage(EventId = 4106, Level = LogLevel.Debug, Message = "Refused the {Machine} transition {From} -> {To}: not in the transition table.")]
    private static partial void LogRefused(ILogger logger, string machine, TState from, TState to);
}
