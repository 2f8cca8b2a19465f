namespace Talki.Signalling.Emulator;

/// <summary>
/// The execution environments of one function. Lambda runs one invocation at a time per execution environment and
/// sends a new invocation to an idle one, creating environments as concurrency grows; which idle environment gets it
/// is not documented (https://docs.aws.amazon.com/lambda/latest/dg/lambda-concurrency.html). The emulator has a fixed
/// set: it takes the next idle instance in round-robin order and, when all are busy, the next one anyway (where Lambda
/// would start a new environment).
/// </summary>
internal sealed class FunctionPool
{
    private readonly Uri[] _instances;
    private readonly int[] _inFlight;
    private readonly Lock _lock = new();
    private int _next;

    public FunctionPool(string function, IEnumerable<Uri> instances)
    {
        Function = function;
        _instances = [.. instances];
        _inFlight = new int[_instances.Length];
    }

    public string Function { get; }

    public int Count => _instances.Length;

    /// <summary>Takes an instance for one invocation; dispose the lease when the invocation is over.</summary>
    public Lease Acquire()
    {
        if (_instances.Length == 0)
        {
            throw new InvalidOperationException($"Function {Function} has no instance (EmulatorOptions.Functions).");
        }

        lock (_lock)
        {
            var chosen = _next;
            for (var i = 0; i < _instances.Length; i++)
            {
                var candidate = (_next + i) % _instances.Length;
                if (_inFlight[candidate] == 0)
                {
                    chosen = candidate;
                    break;
                }
            }

            _inFlight[chosen]++;
            _next = (chosen + 1) % _instances.Length;
            return new Lease(this, chosen, _instances[chosen]);
        }
    }

    private void Release(int index)
    {
        lock (_lock)
        {
            _inFlight[index]--;
        }
    }

    internal sealed class Lease(FunctionPool pool, int index, Uri instance) : IDisposable
    {
        private int _released;

        public int Index => index;

        public Uri Instance => instance;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                pool.Release(index);
            }
        }
    }
}
