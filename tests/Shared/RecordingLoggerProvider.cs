using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Talki.Signalling.Testing;

/// <summary>Records every log line (category, event, level, message and exception, and when it was logged), to prove what reaches the logs and what does not.</summary>
internal sealed class RecordingLoggerProvider : ILoggerProvider
{
    private readonly ConcurrentQueue<(string Category, EventId EventId, LogLevel Level, string Text, DateTimeOffset At)> _entries = new();

    public IReadOnlyList<(string Category, EventId EventId, LogLevel Level, string Text, DateTimeOffset At)> Entries => [.. _entries];

    public ILogger CreateLogger(string categoryName) => new Logger(categoryName, _entries);

    public void Dispose()
    {
    }

    private sealed class Logger(string category, ConcurrentQueue<(string, EventId, LogLevel, string, DateTimeOffset)> entries) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            => entries.Enqueue((category, eventId, logLevel, formatter(state, exception) + (exception is null ? string.Empty : " " + exception), DateTimeOffset.UtcNow));
    }
}
