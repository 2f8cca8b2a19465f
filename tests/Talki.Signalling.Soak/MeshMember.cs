using System.Text.Json;
using Talki.Signalling.Http;

namespace Talki.Signalling.Soak;

/// <summary>What one member sent to, and received from, one peer.</summary>
public sealed class PeerTally
{
    public long Epoch { get; set; }

    public bool Offerer { get; set; }

    public int Plans { get; set; }

    public int SentDescriptions { get; set; }

    public int SentCandidates { get; set; }

    public int ReceivedDescriptions { get; set; }

    public int ReceivedCandidates { get; set; }

    /// <summary>Gets or sets the number of relayed signals from this peer whose content was not what it sent.</summary>
    public int Garbled { get; set; }
}

/// <summary>
/// A member driving the protocol directly, as a client would: hello, and for each <c>connect_to_peer</c> a description
/// (offer when told to offer, else answer) and <see cref="Candidates"/> candidate signals to that peer, each naming
/// the pair so the receiver can check it; it tallies per peer what it sent and what was relayed to it.
/// </summary>
public sealed class MeshMember
{
    private readonly Dictionary<string, PeerTally> _peers = new(StringComparer.Ordinal);
    private readonly List<string> _errors = [];
    private readonly Dictionary<string, int> _undecodable = new(StringComparer.Ordinal);

    public MeshMember(LoadUser user, TicketResponse ticket, int candidates)
    {
        User = user;
        Ticket = ticket;
        Id = ticket.Member.ToString();
        Candidates = candidates;
    }

    public LoadUser User { get; }

    public TicketResponse Ticket { get; }

    public string Id { get; }

    public int Candidates { get; }

    public LoadSocket Socket { get; private set; } = null!;

    public TaskCompletionSource<string> Welcome { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public TaskCompletionSource Admitted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public TaskCompletionSource<DateTimeOffset> Sealed { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Gets or sets a handler for frames the mesh does not handle itself (the storm's latency probes).</summary>
    public Action<MeshMember, LoadFrame>? Extra { get; set; }

    /// <summary>Gets the error frames this member received.</summary>
    public IReadOnlyList<string> Errors
    {
        get
        {
            lock (_errors)
            {
                return [.. _errors];
            }
        }
    }

    /// <summary>Signs in, takes a ticket (creates the room when <paramref name="room"/> is null), connects and says hello.</summary>
    public static async Task<MeshMember> JoinAsync(HttpClient http, string name, Http.TicketResponse? room, int candidates)
    {
        var user = new LoadUser(http, name);
        await user.SignInAsync();
        var ticket = room is null ? await user.CreateRoomAsync() : await user.JoinAsync(room.Room);
        var member = new MeshMember(user, ticket, candidates);
        member.Socket = await LoadSocket.ConnectAsync(ticket.WebSocketUrl, (_, frame) => member.OnFrame(frame));
        member.Socket.Send("""{"type":"hello","version":1}""");
        return member;
    }

    /// <summary>Gets a copy of the tally for <paramref name="peer"/> (empty when never heard of).</summary>
    public PeerTally TallyOf(string peer)
    {
        lock (_peers)
        {
            return _peers.TryGetValue(peer, out var tally)
                ? new PeerTally
                {
                    Epoch = tally.Epoch,
                    Offerer = tally.Offerer,
                    Plans = tally.Plans,
                    SentDescriptions = tally.SentDescriptions,
                    SentCandidates = tally.SentCandidates,
                    ReceivedDescriptions = tally.ReceivedDescriptions,
                    ReceivedCandidates = tally.ReceivedCandidates,
                    Garbled = tally.Garbled,
                }
                : new PeerTally();
        }
    }

    /// <summary>Gets the current epoch of <paramref name="peer"/> as <c>connect_to_peer</c> gave it (0 when not planned).</summary>
    public long EpochOf(string peer)
    {
        lock (_peers)
        {
            return _peers.TryGetValue(peer, out var tally) ? tally.Epoch : 0;
        }
    }

    /// <summary>Whether this member has been told to connect to each of <paramref name="peers"/> and received its whole part of the exchange.</summary>
    public bool MeshCompleteWith(IEnumerable<MeshMember> peers) =>
        peers.Where(p => p != this).All(p => TallyOf(p.Id) is { Plans: > 0 } mine && p.TallyOf(Id) is var theirs
            && theirs.SentDescriptions > 0 && mine.ReceivedDescriptions == theirs.SentDescriptions && mine.ReceivedCandidates == theirs.SentCandidates);

    private void OnFrame(LoadFrame frame)
    {
        var root = frame.Root;
        switch (frame.Type)
        {
            case "welcome":
                Welcome.TrySetResult(root.GetProperty("status").ToString());
                break;
            case "admitted":
                Admitted.TrySetResult();
                break;
            case "connect_to_peer":
                OnPlan(root);
                break;
            case "signal":
                OnSignal(frame);
                break;
            case "room_sealed":
                Sealed.TrySetResult(frame.ReceivedAt);
                break;
            case "error":
                lock (_errors)
                {
                    _errors.Add(root.GetRawText());
                }

                break;
            default:
                Extra?.Invoke(this, frame);
                break;
        }
    }

    private void OnPlan(JsonElement root)
    {
        var peer = root.GetProperty("peer").GetProperty("id").GetString()!;
        var epoch = root.GetProperty("peerEpoch").GetInt64();
        var offerer = root.GetProperty("offerer").GetBoolean();
        lock (_peers)
        {
            var tally = Tally(peer);
            tally.Plans++;
            tally.Epoch = epoch;
            tally.Offerer = offerer;
            tally.SentDescriptions++;
            tally.SentCandidates += Candidates;
        }

        var kind = offerer ? "offer" : "answer";
        Socket.Send($$$"""{"type":"signal","to":"{{{peer}}}","toEpoch":{{{epoch}}},"description":{"type":"{{{kind}}}","sdp":"v=0 {{{Id}}}->{{{peer}}}"}}""");
        for (var i = 0; i < Candidates; i++)
        {
            Socket.Send($$$"""{"type":"signal","to":"{{{peer}}}","toEpoch":{{{epoch}}},"candidates":[{"candidate":"candidate:{{{i}}} 1 udp 1 127.0.0.1 {{{40000 + i}}} typ host {{{Id}}}->{{{peer}}}","sdpMid":"0","sdpMLineIndex":0}]}""");
        }
    }

    /// <summary>Gets the relayed signals, by sender, whose text could not be decoded (escaped lone surrogates).</summary>
    public IReadOnlyDictionary<string, int> Undecodable
    {
        get
        {
            lock (_undecodable)
            {
                return new Dictionary<string, int>(_undecodable, StringComparer.Ordinal);
            }
        }
    }

    private void OnSignal(LoadFrame frame)
    {
        var from = frame.Root.GetProperty("from").GetString()!;
        try
        {
            OnSignal(frame, from);
        }
        catch (InvalidOperationException)
        {
            // Text with an escaped lone surrogate: System.Text.Json will not decode it (the .NET client SDK treats the
            // frame as malformed and resets that peer's link). Counted by sender.
            lock (_undecodable)
            {
                _undecodable[from] = _undecodable.GetValueOrDefault(from) + 1;
            }
        }
    }

    private void OnSignal(LoadFrame frame, string from)
    {
        var root = frame.Root;
        var pair = $"{from}->{Id}";
        if (root.TryGetProperty("candidates", out var candidates) && candidates[0].GetProperty("candidate").GetString() is { } candidate
            && !candidate.EndsWith(pair, StringComparison.Ordinal) && Extra is not null)
        {
            Extra(this, frame); // not a mesh candidate: the storm's probe, or a peer that is not a mesh member
            return;
        }

        lock (_peers)
        {
            var tally = Tally(from);
            if (root.TryGetProperty("description", out var description))
            {
                tally.ReceivedDescriptions++;
                if (description.GetProperty("sdp").GetString() != "v=0 " + pair)
                {
                    tally.Garbled++;
                }
            }
            else if (root.TryGetProperty("candidates", out candidates))
            {
                tally.ReceivedCandidates++;
                if (candidates.GetArrayLength() != 1 || !candidates[0].GetProperty("candidate").GetString()!.EndsWith(pair, StringComparison.Ordinal))
                {
                    tally.Garbled++;
                }
            }
        }
    }

    private PeerTally Tally(string peer)
    {
        if (!_peers.TryGetValue(peer, out var tally))
        {
            tally = new PeerTally();
            _peers[peer] = tally;
        }

        return tally;
    }
}
