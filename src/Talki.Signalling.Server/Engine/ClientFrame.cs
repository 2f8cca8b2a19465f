using System.Buffers;
using System.Text.Json;
using System.Text.Unicode;

namespace Talki.Signalling.Server.Engine;

internal enum ClientFrameKind
{
    Invalid = 0,
    Hello,
    Admit,
    Deny,
    Signal,
    Leave,
    Ping,
    Signals,
}

/// <summary>
/// One signal, alone or an entry of a <c>signals</c> frame: the byte ranges are into the frame. <paramref name="IsOffer"/>
/// tells whether the description's <c>type</c> is <c>offer</c> (read in the parse's one pass).
/// </summary>
internal readonly record struct SignalEntry(MemberId To, long? ToEpoch, Range Description, Range Candidates, string? CorrelationId, bool IsOffer = false);

/// <summary>
/// The result of one allocation-light pass over an inbound frame. Signals are never materialised: their
/// description and candidates are validated in place and relayed as the original JSON bytes.
/// </summary>
internal readonly struct ClientFrame
{
    public const int MaxCorrelationIdLength = 64;
    public const int MaxCandidatesPerSignal = 64;

    /// <summary>The most entries a <c>signals</c> frame may carry before the engine's own bound (one per other member) applies.</summary>
    public const int MaxSignalsPerFrame = 64;

    private ClientFrame(SignallingErrorCode errorCode, string errorMessage, string? correlationId)
    {
        Kind = ClientFrameKind.Invalid;
        ErrorCode = errorCode;
        ErrorMessage = errorMessage;
        CorrelationId = correlationId;
    }

    private ClientFrame(ClientFrameKind kind, string? correlationId, MemberId to, long? toEpoch, Range description, bool isOffer, Range candidates, int? version, MemberId member, SignalEntry[]? signals)
    {
        Signals = signals;
        IsOffer = isOffer;
        Kind = kind;
        CorrelationId = correlationId;
        To = to;
        ToEpoch = toEpoch;
        Description = description;
        Candidates = candidates;
        Version = version;
        Member = member;
    }

    public ClientFrameKind Kind { get; }

    public string? CorrelationId { get; }

    public SignallingErrorCode ErrorCode { get; }

    public string? ErrorMessage { get; }

    /// <summary>Gets the addressed member of a signal.</summary>
    public MemberId To { get; }

    public long? ToEpoch { get; }

    /// <summary>Gets the byte range of the signal's description object (empty when absent).</summary>
    public Range Description { get; }

    /// <summary>Gets a value indicating whether the signal's description is an offer.</summary>
    public bool IsOffer { get; }

    /// <summary>Gets the byte range of the signal's candidates array (empty when absent).</summary>
    public Range Candidates { get; }

    /// <summary>Gets the version of a hello.</summary>
    public int? Version { get; }

    /// <summary>Gets the member named by admit or deny.</summary>
    public MemberId Member { get; }

    /// <summary>Gets the entries of a <c>signals</c> frame (at least one, each for a different member).</summary>
    public SignalEntry[]? Signals { get; }

    public static ClientFrame Parse(ReadOnlySpan<byte> utf8)
    {
        if (!Utf8.IsValid(utf8))
        {
            return Malformed("The message is not valid UTF-8.", null);
        }

        // The ranges found in the blanked copy point at the same bytes of the original.
        var blanked = JsonEscapes.BlankLongEscapedStrings(utf8);
        try
        {
            return ParseValidUtf8(blanked is null ? utf8 : blanked.AsSpan(0, utf8.Length));
        }
        finally
        {
            if (blanked is not null)
            {
                ArrayPool<byte>.Shared.Return(blanked);
            }
        }
    }

    /// <summary>Parses without the escape pre-pass (the reference the pre-pass must agree with).</summary>
    internal static ClientFrame ParseValidUtf8(ReadOnlySpan<byte> utf8)
    {
        string? correlationId = null;
        try
        {
            var reader = new Utf8JsonReader(utf8, new JsonReaderOptions { MaxDepth = 16 });
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return Malformed("A message must be a JSON object.", null);
            }

            var kind = ClientFrameKind.Invalid;
            var sawType = false;
            var unknownType = false;
            MemberId to = default;
            MemberId member = default;
            long? toEpoch = null;
            int? version = null;
            Range description = default;
            var isOffer = false;
            string? descriptionError = null;
            Range candidates = default;
            string? candidatesError = null;
            SignalEntry[]? signals = null;
            string? invalidField = null;

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("type"u8))
                {
                    reader.Read();
                    if (reader.TokenType != JsonTokenType.String)
                    {
                        return Malformed("'type' must be a string.", correlationId);
                    }

                    sawType = true;
                    kind = KindOf(ref reader);
                    unknownType = kind == ClientFrameKind.Invalid;
                }
                else if (reader.ValueTextEquals("id"u8))
                {
                    ReadCorrelationId(ref reader, ref correlationId, ref invalidField);
                }
                else if (reader.ValueTextEquals("to"u8))
                {
                    reader.Read();
                    if (!TryReadMemberId(ref reader, out to))
                    {
                        invalidField ??= "'to' must be a member id.";
                    }
                }
                else if (reader.ValueTextEquals("member"u8))
                {
                    reader.Read();
                    if (!TryReadMemberId(ref reader, out member))
                    {
                        invalidField ??= "'member' must be a member id.";
                    }
                }
                else if (reader.ValueTextEquals("toEpoch"u8))
                {
                    ReadToEpoch(ref reader, ref toEpoch, ref invalidField);
                }
                else if (reader.ValueTextEquals("version"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.Number && reader.TryGetInt32(out var v))
                    {
                        version = v;
                    }
                    else if (reader.TokenType != JsonTokenType.Null)
                    {
                        invalidField ??= "'version' must be an integer.";
                    }
                }
                else if (reader.ValueTextEquals("description"u8))
                {
                    ReadDescription(ref reader, ref description, ref isOffer, ref descriptionError, ref invalidField);
                }
                else if (reader.ValueTextEquals("candidates"u8))
                {
                    ReadCandidates(ref reader, ref candidates, ref candidatesError, ref invalidField);
                }
                else if (reader.ValueTextEquals("signals"u8))
                {
                    reader.Read();
                    signals = ReadSignals(ref reader, ref invalidField);
                }
                else
                {
                    // Unknown properties are ignored for forward compatibility.
                    reader.Read();
                    reader.Skip();
                }
            }

            if (reader.TokenType != JsonTokenType.EndObject || reader.Read())
            {
                return Malformed("A message must be exactly one JSON object.", correlationId);
            }

            if (!sawType)
            {
                return Malformed("The message has no 'type'.", correlationId);
            }

            if (unknownType)
            {
                return new ClientFrame(SignallingErrorCode.UnknownType, "The message type is not known to this server (protocol versions 1 to 2).", correlationId);
            }

            if (invalidField is not null)
            {
                return Malformed(invalidField, correlationId);
            }

            switch (kind)
            {
                case ClientFrameKind.Signal:
                    if (ValidateSignal(to, description, descriptionError, candidates, candidatesError, "A signal") is { } signalError)
                    {
                        return Malformed(signalError, correlationId);
                    }

                    break;
                case ClientFrameKind.Signals when signals is not { Length: > 0 }:
                    return Malformed("A 'signals' message needs a non-empty 'signals' array.", correlationId);
                case ClientFrameKind.Admit or ClientFrameKind.Deny when member.Value.Length == 0:
                    return Malformed("'member' is required.", correlationId);
                default:
                    break;
            }

            return new ClientFrame(kind, correlationId, to, toEpoch, description, isOffer, candidates, version, member, kind == ClientFrameKind.Signals ? signals : null);
        }
        catch (JsonException)
        {
            return Malformed("The message is not valid JSON.", correlationId);
        }
        catch (InvalidOperationException)
        {
            // Utf8JsonReader throws InvalidOperationException when it unescapes text that is not valid UTF-16 (a lone
            // surrogate such as \ud800 in a property name or the type): bad input from the client, not a server bug.
            return Malformed("The message contains escaped text that is not valid Unicode (a lone surrogate).", correlationId);
        }
    }

    /// <summary>Reads a string value; <see langword="false"/> when its escapes encode invalid UTF-16 (a lone surrogate such as <c>\ud800</c>).</summary>
    private static bool TryGetString(ref Utf8JsonReader reader, out string? value)
    {
        try
        {
            value = reader.GetString();
            return true;
        }
        catch (InvalidOperationException)
        {
            // Utf8JsonReader.GetString throws InvalidOperationException for escaped invalid UTF-16: bad input, not a bug.
            value = null;
            return false;
        }
    }

    private static ClientFrame Malformed(string message, string? correlationId) => new(SignallingErrorCode.MalformedMessage, message, correlationId);

    /// <summary>What is wrong with a signal (or an entry of <c>signals</c>), or <see langword="null"/>.</summary>
    private static string? ValidateSignal(MemberId to, Range description, string? descriptionError, Range candidates, string? candidatesError, string what)
    {
        if (to.Value is not { Length: > 0 })
        {
            return what + " needs 'to'.";
        }

        if (description.Equals(default(Range)) && candidates.Equals(default(Range)))
        {
            return what + " needs a 'description' or 'candidates'.";
        }

        return descriptionError ?? candidatesError;
    }

    /// <summary>Reads an optional correlation id (a string of at most <see cref="MaxCorrelationIdLength"/> characters, or null); problems go to <paramref name="invalidField"/>.</summary>
    private static void ReadCorrelationId(ref Utf8JsonReader reader, ref string? id, ref string? invalidField)
    {
        reader.Read();
        if (reader.TokenType == JsonTokenType.String)
        {
            if (!TryGetString(ref reader, out id))
            {
                invalidField ??= "'id' must be valid Unicode text (no lone surrogate).";
            }
            else if (id!.Length > MaxCorrelationIdLength)
            {
                id = null;
                invalidField ??= "'id' must be at most 64 characters.";
            }
        }
        else if (reader.TokenType != JsonTokenType.Null)
        {
            invalidField ??= "'id' must be a string.";
        }
    }

    private static void ReadToEpoch(ref Utf8JsonReader reader, ref long? toEpoch, ref string? invalidField)
    {
        reader.Read();
        if (reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var epoch) && epoch >= 0)
        {
            toEpoch = epoch;
        }
        else if (reader.TokenType != JsonTokenType.Null)
        {
            invalidField ??= "'toEpoch' must be a non-negative integer.";
        }
    }

    /// <summary>Reads the array of a <c>signals</c> frame (the reader is on its first token); problems go to <paramref name="invalidField"/>.</summary>
    private static SignalEntry[]? ReadSignals(ref Utf8JsonReader reader, ref string? invalidField)
    {
        if (reader.TokenType != JsonTokenType.StartArray)
        {
            invalidField ??= "'signals' must be an array.";
            reader.Skip();
            return null;
        }

        var entries = new List<SignalEntry>();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                invalidField ??= "Each entry of 'signals' must be an object.";
                reader.Skip();
                continue;
            }

            MemberId to = default;
            long? toEpoch = null;
            Range description = default;
            var isOffer = false;
            string? descriptionError = null;
            Range candidates = default;
            string? candidatesError = null;
            string? id = null;
            string? invalidEntry = null;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("to"u8))
                {
                    reader.Read();
                    if (!TryReadMemberId(ref reader, out to))
                    {
                        invalidEntry ??= "'to' must be a member id.";
                    }
                }
                else if (reader.ValueTextEquals("toEpoch"u8))
                {
                    ReadToEpoch(ref reader, ref toEpoch, ref invalidEntry);
                }
                else if (reader.ValueTextEquals("description"u8))
                {
                    ReadDescription(ref reader, ref description, ref isOffer, ref descriptionError, ref invalidEntry);
                }
                else if (reader.ValueTextEquals("candidates"u8))
                {
                    ReadCandidates(ref reader, ref candidates, ref candidatesError, ref invalidEntry);
                }
                else if (reader.ValueTextEquals("id"u8))
                {
                    ReadCorrelationId(ref reader, ref id, ref invalidEntry);
                    reader.Skip(); // an id that is an object or an array is skipped whole (a no-op on a string)
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }

            invalidEntry ??= ValidateSignal(to, description, descriptionError, candidates, candidatesError, "the entry");
            if (invalidEntry is not null)
            {
                invalidField ??= $"Entry {entries.Count} of 'signals': {invalidEntry}";
            }
            else if (entries.Count == MaxSignalsPerFrame)
            {
                invalidField ??= $"'signals' may carry at most {MaxSignalsPerFrame} entries.";
            }
            else if (entries.Exists(e => e.To == to))
            {
                invalidField ??= "Two entries of 'signals' are for the same member.";
            }
            else
            {
                entries.Add(new SignalEntry(to, toEpoch, description, candidates, id, isOffer));
            }
        }

        return [.. entries];
    }

    private static ClientFrameKind KindOf(ref Utf8JsonReader reader)
    {
        if (reader.ValueTextEquals("signal"u8))
        {
            return ClientFrameKind.Signal;
        }

        if (reader.ValueTextEquals("hello"u8))
        {
            return ClientFrameKind.Hello;
        }

        if (reader.ValueTextEquals("ping"u8))
        {
            return ClientFrameKind.Ping;
        }

        if (reader.ValueTextEquals("admit"u8))
        {
            return ClientFrameKind.Admit;
        }

        if (reader.ValueTextEquals("deny"u8))
        {
            return ClientFrameKind.Deny;
        }

        if (reader.ValueTextEquals("signals"u8))
        {
            return ClientFrameKind.Signals;
        }

        return reader.ValueTextEquals("leave"u8) ? ClientFrameKind.Leave : ClientFrameKind.Invalid;
    }

    private static bool TryReadMemberId(ref Utf8JsonReader reader, out MemberId id)
    {
        id = default;
        return reader.TokenType == JsonTokenType.String
            && !reader.ValueIsEscaped
            && !reader.HasValueSequence
            && MemberId.TryParseUtf8(reader.ValueSpan, out id);
    }

    /// <summary>
    /// Reads a description where the reader stands on its property name: an object's range, whether it is an offer and what
    /// is wrong with it (checked in the same pass), or <see langword="null"/> (nothing changes), or anything else (an invalid
    /// field). The last description in the frame is the one that counts, as for any repeated property.
    /// </summary>
    private static void ReadDescription(ref Utf8JsonReader reader, ref Range range, ref bool isOffer, ref string? error, ref string? invalidField)
    {
        reader.Read();
        if (reader.TokenType == JsonTokenType.StartObject)
        {
            var from = (int)reader.TokenStartIndex;
            error = CheckDescription(ref reader, out isOffer);
            range = new Range(from, (int)reader.BytesConsumed);
        }
        else if (reader.TokenType != JsonTokenType.Null)
        {
            invalidField ??= "'description' must be an object.";
            reader.Skip();
        }
    }

    /// <summary>
    /// Checks a description object (the reader on its start, left on its end): <c>type</c> is one of the SDP types, <c>sdp</c>
    /// a string; nothing else. Returns the first problem, or <see langword="null"/>; <paramref name="isOffer"/> tells whether
    /// the last <c>type</c> read is <c>offer</c>.
    /// </summary>
    private static string? CheckDescription(ref Utf8JsonReader reader, out bool isOffer)
    {
        string? error = null;
        isOffer = false;
        var sawType = false;
        var rollback = false;
        var sawSdp = false;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            // The first problem is the one reported; the rest of the object is still read (its JSON must be valid), and the
            // last type read is the description's (as a browser's JSON.parse takes the last of repeated keys).
            if (reader.ValueTextEquals("type"u8))
            {
                reader.Read();
                var isString = reader.TokenType == JsonTokenType.String;
                isOffer = isString && reader.ValueTextEquals("offer"u8);
                rollback = isString && reader.ValueTextEquals("rollback"u8);
                if (!(isOffer || rollback || (isString && (reader.ValueTextEquals("answer"u8) || reader.ValueTextEquals("pranswer"u8)))))
                {
                    error ??= "'description.type' must be offer, answer, pranswer or rollback.";
                }

                sawType = true;
            }
            else if (reader.ValueTextEquals("sdp"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.String)
                {
                    sawSdp = true;
                }
                else if (reader.TokenType != JsonTokenType.Null)
                {
                    error ??= "'description.sdp' must be a string.";
                }
            }
            else
            {
                error ??= "'description' may only have 'type' and 'sdp'.";
                reader.Read();
            }

            reader.Skip(); // a value that is an object or an array is read past whole (a no-op on any other token)
        }

        if (error is not null)
        {
            return error;
        }

        if (!sawType)
        {
            return "'description.type' is required.";
        }

        return sawSdp || rollback ? null : "'description.sdp' is required.";
    }

    /// <summary>
    /// Reads a candidates array where the reader stands on its property name: its range and what is wrong with it (checked in
    /// the same pass), or <see langword="null"/> (nothing changes), or anything else (an invalid field). The last
    /// <c>candidates</c> in the frame is the one that counts, as for any repeated property.
    /// </summary>
    private static void ReadCandidates(ref Utf8JsonReader reader, ref Range range, ref string? error, ref string? invalidField)
    {
        reader.Read();
        if (reader.TokenType == JsonTokenType.StartArray)
        {
            var from = (int)reader.TokenStartIndex;
            error = CheckCandidates(ref reader);
            range = new Range(from, (int)reader.BytesConsumed);
        }
        else if (reader.TokenType != JsonTokenType.Null)
        {
            invalidField ??= "'candidates' must be an array.";
            reader.Skip();
        }
    }

    /// <summary>
    /// Checks a candidates array (the reader on its start, left on its end): objects with a string <c>candidate</c> and the
    /// optional W3C fields; nothing else. Returns the first problem, or <see langword="null"/>.
    /// </summary>
    private static string? CheckCandidates(ref Utf8JsonReader reader)
    {
        string? error = null;
        var count = 0;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (error is not null)
            {
                reader.Skip(); // the first problem is the one reported; the rest is only read past
            }
            else if (reader.TokenType != JsonTokenType.StartObject)
            {
                error = "Each candidate must be an object.";
                reader.Skip();
            }
            else if (++count > MaxCandidatesPerSignal)
            {
                error = "A signal may carry at most 64 candidates.";
                reader.Skip();
            }
            else
            {
                error = CheckCandidate(ref reader);
            }
        }

        return error ?? (count == 0 ? "'candidates' must not be empty." : null);
    }

    /// <summary>Checks one candidate object (the reader on its start, left on its end). Returns its first problem, or <see langword="null"/>.</summary>
    private static string? CheckCandidate(ref Utf8JsonReader reader)
    {
        string? error = null;
        var sawCandidate = false;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (error is not null)
            {
                reader.Skip(); // on a property name: its value, whole
                continue;
            }

            if (reader.ValueTextEquals("candidate"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.String)
                {
                    sawCandidate = true;
                }
                else
                {
                    error = "'candidate' must be a string.";
                }
            }
            else if (reader.ValueTextEquals("sdpMid"u8) || reader.ValueTextEquals("usernameFragment"u8))
            {
                reader.Read();
                if (reader.TokenType is not (JsonTokenType.String or JsonTokenType.Null))
                {
                    error = "'sdpMid' and 'usernameFragment' must be strings.";
                }
            }
            else if (reader.ValueTextEquals("sdpMLineIndex"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.Null && !(reader.TokenType == JsonTokenType.Number && reader.TryGetUInt16(out _)))
                {
                    error = "'sdpMLineIndex' must be an integer from 0 to 65535.";
                }
            }
            else
            {
                error = "A candidate may only have 'candidate', 'sdpMid', 'sdpMLineIndex' and 'usernameFragment'.";
                reader.Read();
            }

            reader.Skip(); // a value that is an object or an array is read past whole (a no-op on any other token)
        }

        return error ?? (sawCandidate ? null : "Each candidate needs 'candidate'.");
    }
}
