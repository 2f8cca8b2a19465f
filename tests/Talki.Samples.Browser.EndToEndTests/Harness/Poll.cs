namespace Talki.Samples.Browser.EndToEndTests.Harness;

/// <summary>Polls the pages until a condition holds, with generous timeouts; never asserts durations.</summary>
internal static class Poll
{
    /// <summary>
    /// Evaluates <paramref name="observe"/> until it returns null (the condition holds) or the timeout passes; the
    /// returned text says what is still wrong and ends up in the timeout's message.
    /// </summary>
    public static async Task UntilAsync(string what, TimeSpan timeout, Func<Task<string?>> observe, TimeSpan? interval = null)
    {
        var deadline = DateTime.UtcNow + timeout;
        string? problem = null;
        Exception? lastError = null;
        while (true)
        {
            try
            {
                problem = await observe();
                lastError = null;
                if (problem is null)
                {
                    return;
                }
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                lastError = e;
                problem = e.Message;
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"Timed out after {timeout.TotalSeconds:0}s waiting until {what}; last observed: {problem}", lastError);
            }

            await Task.Delay(interval ?? TimeSpan.FromMilliseconds(500));
        }
    }
}
