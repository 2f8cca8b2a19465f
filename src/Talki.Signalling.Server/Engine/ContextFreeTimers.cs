namespace Talki.Signalling.Server.Engine;

/// <summary>Timers that do not keep the execution context of the code that armed them.</summary>
internal static class ContextFreeTimers
{
    /// <summary>
    /// <see cref="TimeProvider.CreateTimer"/> with the execution context's flow suppressed. The system clock's timer is a
    /// <see cref="System.Threading.Timer"/>, which captures the current <see cref="ExecutionContext"/> and holds it until
    /// it is disposed (ASP.NET Core suppresses the flow for its own timers for this reason: dotnet/aspnetcore,
    /// src/Shared/NonCapturingTimer). A room's seal timer is armed by the HTTP request that creates the room, so it kept
    /// that request's <c>Activity</c>, logging scope and async locals alive for the whole join window (about 580 bytes
    /// a room, measured with ClrMD at 1,376 rooms), and its callback ran, and logged, inside a request that had long
    /// ended. The callbacks here take their state explicitly.
    /// </summary>
    public static ITimer CreateContextFreeTimer(this TimeProvider time, TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        var restore = !ExecutionContext.IsFlowSuppressed();
        if (restore)
        {
            ExecutionContext.SuppressFlow();
        }

        try
        {
            return time.CreateTimer(callback, state, dueTime, period);
        }
        finally
        {
            if (restore)
            {
                ExecutionContext.RestoreFlow();
            }
        }
    }
}
