using Amazon.DynamoDBv2;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Talki.Signalling.Aws.DynamoDb;

namespace Talki.Signalling.Aws.Sessions;

/// <summary>
/// The room store's table as the session cache and the data-protection key ring use it: the client, the table name
/// (<see cref="DynamoDbRoomStoreOptions.TableName"/>) and, in development, the table's creation before the first use.
/// </summary>
internal sealed class DynamoDbSessionTable : IDisposable
{
    private readonly Lazy<IAmazonDynamoDB> _client;
    private readonly bool _ownsClient;
    private readonly IOptions<DynamoDbRoomStoreOptions> _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private volatile bool _ready;

    /// <summary>Initializes a new instance of the <see cref="DynamoDbSessionTable"/> class.</summary>
    /// <param name="client">
    /// The DynamoDB client; when <see langword="null"/>, a client of its own, built on first use (not at start-up, where
    /// data protection already loads the key ring) from the default AWS credential and region chains, and disposed with this.
    /// </param>
    /// <param name="options">The room store's options: the table, and whether to create it.</param>
    /// <param name="time">The clock.</param>
    /// <param name="logger">The logger.</param>
    public DynamoDbSessionTable(IAmazonDynamoDB? client, IOptions<DynamoDbRoomStoreOptions> options, TimeProvider time, ILogger<DynamoDbSessionTable> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _client = client is null ? new Lazy<IAmazonDynamoDB>(static () => new AmazonDynamoDBClient()) : new Lazy<IAmazonDynamoDB>(client);
        _ownsClient = client is null;
        _options = options; // read on first use: data protection builds this at start-up, before the options are validated
        _time = time;
        _logger = logger;
    }

    /// <summary>Gets the client.</summary>
    public IAmazonDynamoDB Client => _client.Value;

    /// <summary>Gets the table name.</summary>
    public string Name => _options.Value.TableName;

    /// <summary>Creates the table before the first operation when <see cref="DynamoDbRoomStoreOptions.CreateTableIfMissing"/> is set.</summary>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <returns>A task that completes when the table can be used.</returns>
    public async ValueTask ReadyAsync(CancellationToken cancellationToken)
    {
        if (_ready || !_options.Value.CreateTableIfMissing)
        {
            return;
        }

        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (!_ready)
            {
                await DynamoDbTableCreator.CreateIfMissingAsync(Client, Name, _time, _logger, cancellationToken).ConfigureAwait(false);
                _ready = true;
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _gate.Dispose();
        if (_ownsClient && _client.IsValueCreated)
        {
            _client.Value.Dispose();
        }
    }
}
