using System.Globalization;
using System.Text;
using CsCheck;

namespace Talki.Signalling.Server.Fuzzing;

/// <summary>Who a member reference names; resolved against the case's live room when the frame is rendered.</summary>
internal enum Who
{
    /// <summary>The room's admin (connected, said hello): the main sender.</summary>
    Admin,

    /// <summary>An admitted, live member that also sends fuzzed frames.</summary>
    Peer,

    /// <summary>A pending member, connected and said hello.</summary>
    Pending,

    /// <summary>A pending member that knocked (has a ticket) but never connected.</summary>
    Knocker,

    /// <summary>A pending member, connected, that never said hello.</summary>
    NoHello,

    /// <summary>An admitted member whose gateway answers <c>Gone</c> to every push.</summary>
    Gone,

    /// <summary>An admitted member whose gateway refuses pushes over 1 KB (<c>PayloadTooLarge</c>).</summary>
    Small,

    /// <summary>A control member (never a sender) whose relays are checked after every case.</summary>
    ControlB,

    /// <summary>The other control member.</summary>
    ControlC,

    /// <summary>The admin of another room.</summary>
    OtherRoom,
}

/// <summary>Which connection sends a frame.</summary>
internal enum Sender
{
    Admin,
    Peer,
    Pending,
    NoHello,

    /// <summary>A connection id the engine has never seen.</summary>
    Stranger,
}

/// <summary>A JSON-like value that may be invalid on purpose; rendered to bytes once the room is known.</summary>
internal abstract record JValue;

/// <summary>Text pasted verbatim (numbers, literals, broken tokens).</summary>
internal sealed record JRaw(string Text) : JValue;

/// <summary>A string whose body is already JSON-escaped text (it may hold <c>\ud800</c> and the like).</summary>
internal sealed record JString(string Body) : JValue;

/// <summary>A member id of the room (or of another room), as a JSON string.</summary>
internal sealed record JMember(Who Who) : JValue;

/// <summary>The member's current epoch plus <see cref="Delta"/> (negative: a stale epoch).</summary>
internal sealed record JEpoch(Who Who, int Delta) : JValue;

internal sealed record JObject(JProp[] Props) : JValue;

internal sealed record JArray(JValue[] Items) : JValue;

/// <summary>Values written one after the other (a frame followed by trailing bytes).</summary>
internal sealed record JSeq(JValue[] Parts) : JValue;

/// <summary>A property; the key is JSON-escaped text.</summary>
internal sealed record JProp(string Key, JValue Value);

/// <summary>One byte-level mutation of a rendered frame.</summary>
internal readonly record struct ByteMutation(int Kind, int Position, int Length, byte Value);

/// <summary>One fuzzed frame: a structured tree, or (when <see cref="Tree"/> is null) a corpus seed; then raw byte mutations.</summary>
internal sealed record FuzzFrame(Sender Sender, JValue? Tree, int CorpusIndex, bool Spaced, ByteMutation[] Mutations);

/// <summary>The member ids and epochs a frame is rendered against.</summary>
internal interface IFuzzRoom
{
    string IdOf(Who who);

    long EpochOf(Who who);
}

/// <summary>The structure-aware generators (CsCheck, so failures shrink) and the renderer.</summary>
internal static class FuzzFrames
{
    public const int InboundLimit = 32 * 1024;

    private static readonly string[] Types = ["hello", "ping", "leave", "admit", "deny", "signal", "signals"];

    private static readonly Gen<string> Numbers = Gen.OneOf(
        "0", "1", "-1", "2", "1.5", "-0", "1e3", "1E400", "-1e400", "1e-400", "9223372036854775807", "9223372036854775808",
        "-9223372036854775809", "2147483647", "2147483648", "-2147483649", "65535", "65536", "0.0", "1.0", "123456789012345678901234567890",
        "00", "01", "+1", "NaN", "Infinity", "-", "1.", ".5", "0x10", "1e", "18446744073709551616");

    /// <summary>Pieces of escaped string bodies that are valid JSON (valid escapes, pairs, raw UTF-8).</summary>
    private static readonly Gen<string> ValidPieces = Gen.OneOf(
        "a", "Z", " ", "offer", @"\ud83d\ude00", @"\u00e9", @"\u0070", "\\\"", @"\\", @"\/", @"\n", @"\r\n", @"\t", "é", "😀", "\u2028");

    /// <summary>Pieces of escaped string bodies: escapes (valid, lone surrogates, broken), raw UTF-8, control characters.</summary>
    private static readonly Gen<string> Pieces = Gen.OneOf(
        "a", "Z", "0", " ", "-", "_", "offer", "hello", "signal", @"\ud800", @"\udc00", @"\uDBFF", @"\udfff", @"\ud83d\ude00", @"\ud800\ud800",
        @"\udc00\ud800", @"\u0000", @"\u001f", "\\\"", @"\\", @"\/", @"\n", @"\r\n", @"\t", @"\b", @"\f", @"\u00e9", @"\u0070", @"\x41", @"\u12",
        @"\u", @"\", "é", "😀", "\u0001", "\t", "\u007f", "\u2028", "\uFEFF");

    private static readonly Gen<string> Word = Gen.Char["abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"].Array[0, 70].Select(a => new string(a));

    private static readonly Gen<string> EscapedText = Gen.Frequency(
        (4, Word),
        (2, ValidPieces.Array[1, 8].Select(string.Concat)),
        (1, Pieces.Array[1, 4].Select(string.Concat)),
        (1, LongText()));

    private static readonly Gen<JValue> Scalar = Gen.Frequency(
        (3, EscapedText.Select(s => (JValue)new JString(s))),
        (3, Numbers.Select(n => (JValue)new JRaw(n))),
        (2, Gen.OneOf("null", "true", "false", "{}", "[]", "\"\"", "tru", "nul", "'x'", "", "}", "]", ",", ":").Select(r => (JValue)new JRaw(r))),
        (1, Gen.Int[1, 40].Select(Nested)));

    private static readonly Gen<JValue> AnyValue = Gen.Frequency(
        (6, Scalar),
        (2, Gen.Select(EscapedText, Scalar).Select((k, v) => new JProp(k, v)).Array[0, 4].Select(p => (JValue)new JObject(p))),
        (2, Scalar.Array[0, 5].Select(a => (JValue)new JArray(a))));

    private static readonly Gen<JValue> MemberRef = Gen.Frequency(
        (12, Gen.Enum<Who>().Select(w => (JValue)new JMember(w))),
        (2, Gen.OneOf("", "a b", "abc", "AAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAA=", "!!!!!!!!!!!!!!!!", new string('A', 64), new string('A', 65), @"\u0041AAAAAAAAAAAAAAA", @"\ud800").Select(s => (JValue)new JString(s))),
        (1, AnyValue));

    private static readonly Gen<JValue> Epoch = Gen.Frequency(
        (6, Gen.Select(Gen.Enum<Who>(), Gen.Int[-2, 2]).Select((w, d) => (JValue)new JEpoch(w, d))),
        (2, Numbers.Select(n => (JValue)new JRaw(n))),
        (1, AnyValue));

    private static readonly Gen<JValue> CorrelationId = Gen.Frequency(
        (6, Word.Select(w => (JValue)new JString(w))),
        (1, Gen.OneOf(new string('i', 64), new string('i', 65), "é" + new string('i', 63), @"\u0069" + new string('i', 63)).Select(s => (JValue)new JString(s))),
        (2, EscapedText.Select(s => (JValue)new JString(s))),
        (1, AnyValue));

    private static readonly Gen<JValue> TypeValue = Gen.Frequency(
        (20, Gen.OneOf(Types).Select(t => (JValue)new JString(t))),
        (2, Gen.OneOf("teleport", "Ping", "PING", "pong", "welcome", "error", "signal ", " hello", "", @"\u0070ing", @"sign\u0061l", @"\ud800", "hell\u00f6").Select(t => (JValue)new JString(t))),
        (1, AnyValue));

    private static readonly Gen<JValue> Version = Gen.Frequency(
        (6, Gen.Const((JValue)new JRaw("1"))),
        (3, Numbers.Select(n => (JValue)new JRaw(n))),
        (1, AnyValue));

    private static readonly Gen<string> SdpType = Gen.Frequency(
        (10, Gen.OneOf("offer", "answer", "pranswer", "rollback")),
        (1, Gen.OneOf("Offer", "bogus", "", @"\u006fffer", @"\ud800")));

    private static readonly Gen<string> Sdp = Gen.Frequency(
        (4, Gen.Const(@"v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n")),
        (2, EscapedText),
        (1, LongText()));

    private static readonly Gen<JValue> Description = Gen.Frequency(
        (8, Gen.Select(SdpType, Sdp, Gen.Int[0, 5]).Select((t, s, shape) => (JValue)new JObject(shape switch
        {
            0 => [new JProp("type", new JString(t))],
            1 => [new JProp("sdp", new JString(s)), new JProp("type", new JString(t))],
            2 => [new JProp("type", new JString(t)), new JProp("sdp", new JRaw("null"))],
            3 => [new JProp("type", new JString(t)), new JProp("sdp", new JString(s)), new JProp("type", new JString("offer"))],
            _ => [new JProp("type", new JString(t)), new JProp("sdp", new JString(s))],
        }))),
        (2, Gen.Select(Gen.OneOf("type", "sdp", "extra", "Type", @"\u0074ype"), AnyValue).Select((k, v) => new JProp(k, v)).Array[0, 4].Select(p => (JValue)new JObject(p))),
        (1, AnyValue));

    private static readonly Gen<JValue> Candidate = Gen.Frequency(
        (8, Gen.Select(Word, Gen.Int[0, 3]).Select((c, shape) => (JValue)new JObject(shape switch
        {
            0 => [new JProp("candidate", new JString("candidate:1 1 udp 2122260223 192.0.2.1 54400 typ host " + c))],
            1 => [new JProp("candidate", new JString(c)), new JProp("sdpMid", new JString("0")), new JProp("sdpMLineIndex", new JRaw("0"))],
            2 => [new JProp("candidate", new JString(c)), new JProp("usernameFragment", new JRaw("null")), new JProp("sdpMid", new JRaw("null")), new JProp("sdpMLineIndex", new JRaw("null"))],
            _ => [new JProp("candidate", new JString(c))],
        }))),
        (2, Gen.Select(Gen.OneOf("candidate", "sdpMid", "sdpMLineIndex", "usernameFragment", "evil"), AnyValue).Select((k, v) => new JProp(k, v)).Array[0, 4].Select(p => (JValue)new JObject(p))),
        (1, AnyValue));

    private static readonly Gen<JValue> Candidates = Gen.Frequency(
        (8, Candidate.Array[1, 4].Select(a => (JValue)new JArray(a))),
        (1, Gen.Select(Candidate, Gen.Int[60, 70]).Select((c, n) => (JValue)new JArray(Enumerable.Repeat(c, n).ToArray()))),
        (1, Gen.OneOf("[]", "[1]", "[[]]", "[{}]", "{}", "\"x\"", "null").Select(r => (JValue)new JRaw(r))),
        (1, AnyValue));

    /// <summary>One structural mutation of a property list.</summary>
    private static readonly Gen<(int Kind, int Index, JProp Extra)> PropMutation = Gen.Select(
        Gen.Int[0, 7],
        Gen.Int[0, 16],
        Gen.Select(
            Gen.Frequency(
                (4, Gen.OneOf("type", "id", "to", "member", "toEpoch", "version", "description", "candidates")),
                (2, Word),
                (1, Gen.OneOf(@"t\u0079pe", @"\ud800", @"\u0000", "", "TYPE", "type ", "é", "\\\""))),
            Gen.Frequency((3, AnyValue), (1, TypeValue), (1, MemberRef), (1, Epoch), (1, Description), (1, Candidates)))
            .Select((k, v) => new JProp(k, v)));

    /// <summary>A signal's fields without its type (some left out): a <c>signal</c> frame's, or a <c>signals</c> entry's.</summary>
    private static readonly Gen<JProp[]> SignalFields = Gen.Select(MemberRef, Epoch, Description, Candidates, CorrelationId, Gen.Int[0, 16]).Select((to, epoch, d, c, id, o) => Props(
        o < 14 ? ("to", to) : default,
        (o & 1) != 0 ? ("toEpoch", epoch) : default,
        (o & 2) != 0 || (o & 4) == 0 ? ("description", d) : default,
        (o & 4) != 0 ? ("candidates", c) : default,
        o > 10 ? ("id", id) : default));

    /// <summary>
    /// One entry of a <c>signals</c> frame (protocol 2: a newcomer's first offers in one message): most often a well-formed one
    /// to a member of the room (its type repeated now and then), else a signal's fuzzed fields, mutated ones (a <c>type</c>
    /// among the keys a mutation inserts), or anything at all.
    /// </summary>
    private static readonly Gen<JValue> SignalsEntry = Gen.Frequency(
        (10, Gen.Select(Gen.Enum<Who>(), Gen.Int[-1, 1], Gen.OneOf("offer", "answer", "pranswer", "rollback"), Gen.OneOf("offer", "answer"), Gen.Int[0, 7]).Select((who, delta, type, earlier, o) => (JValue)new JObject(Props(
            ("to", new JMember(who)),
            (o & 1) != 0 ? ("toEpoch", new JEpoch(who, delta)) : default,
            ("description", new JObject(Props(
                (o & 2) != 0 ? ("type", new JString(earlier)) : default, // a repeated type: the last one is the description's
                ("sdp", new JString(@"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n")),
                ("type", new JString(type))))),
            (o & 4) != 0 ? ("candidates", new JRaw("[{\"candidate\":\"candidate:1 1 udp 2122260223 192.0.2.1 54400 typ host\",\"sdpMid\":\"0\",\"sdpMLineIndex\":0}]")) : default)))),
        (8, SignalFields.Select(fields => (JValue)new JObject(fields))),
        (2, Gen.Select(SignalFields, PropMutation.Array[1, 2]).Select((fields, mutations) => (JValue)new JObject(Mutate(fields, mutations)))),
        (1, AnyValue));

    /// <summary>
    /// The entries of a <c>signals</c> frame: a few (the same member twice now and then), none, or around the 64-entry limit
    /// (to members that are not in the room, each its own id, so that the limit and not a duplicate decides).
    /// </summary>
    private static readonly Gen<JValue> SignalsArray = Gen.Frequency(
        (12, SignalsEntry.Array[1, 5].Select(a => (JValue)new JArray(a))),
        (1, Gen.Const((JValue)new JArray([]))),
        (2, Gen.Select(Gen.OneOf("offer", "answer"), Gen.Int[62, 66]).Select((type, n) => (JValue)new JArray([.. Enumerable.Range(0, n).Select(i => (JValue)new JObject(Props(
            ("to", new JString("stranger" + i.ToString(CultureInfo.InvariantCulture))),
            ("description", new JObject([new JProp("type", new JString(type)), new JProp("sdp", new JString("v=0"))])))))]))),
        (1, Gen.OneOf("{}", "null", "\"x\"", "[1]", "[[]]", "[null]").Select(r => (JValue)new JRaw(r))));

    /// <summary>A valid-looking frame of one type (signals most often): its properties before structural mutation.</summary>
    private static readonly Gen<JProp[]> BaseProps = Gen.Frequency((2, 0), (3, 1), (1, 2), (2, 3), (2, 4), (6, 5), (3, 7), (1, 6)).SelectMany(kind => kind switch
    {
        0 => Gen.Select(Version, CorrelationId, Gen.Int[0, 3]).Select((v, id, o) => Props(("type", new JString("hello")), o > 0 ? ("version", v) : default, o > 1 ? ("id", id) : default)),
        1 => Gen.Select(CorrelationId, Gen.Bool).Select((id, withId) => Props(("type", new JString("ping")), withId ? ("id", id) : default)),
        2 => Gen.Select(CorrelationId, Gen.Bool).Select((id, withId) => Props(("type", new JString("leave")), withId ? ("id", id) : default)),
        3 or 4 => Gen.Select(MemberRef, CorrelationId, Gen.Int[0, 6]).Select((m, id, o) => Props(("type", new JString(kind == 3 ? "admit" : "deny")), o > 0 ? ("member", m) : default, o > 3 ? ("id", id) : default)),
        5 => SignalFields.Select(fields => (JProp[])[new JProp("type", new JString("signal")), .. fields]),
        7 => Gen.Select(SignalsArray, CorrelationId, Gen.Int[0, 3]).Select((entries, id, o) => Props(
            ("type", new JString("signals")),
            o > 0 ? ("signals", entries) : default,
            o > 2 ? ("id", id) : default)),
        _ => Gen.Select(TypeValue, CorrelationId).Select((t, id) => Props(("type", t), ("id", id))),
    });

    private static readonly Gen<JValue> Top = Gen.Frequency(
        (20, BaseProps.Select(props => (JValue)new JObject(props))),
        (20, Gen.Select(BaseProps, PropMutation.Array[1, 3]).Select((props, mutations) => (JValue)new JObject(Mutate(props, mutations)))),
        (2, Gen.Select(BaseProps, Gen.OneOf("", " ", "\n", "{}", "{\"type\":\"ping\"}", "x", "\u0000", ",", "]")).Select((p, tail) => (JValue)new JSeq([new JObject(p), new JRaw(tail)]))),
        (1, AnyValue));

    private static readonly Gen<ByteMutation> Mutation = Gen.Select(Gen.Int[0, 8], Gen.Int[0, int.MaxValue], Gen.Int[1, 16], Gen.Byte)
        .Select((k, p, l, v) => new ByteMutation(k, p, l, v));

    private static readonly Gen<Sender> Senders = Gen.Frequency(
        (12, Gen.Const(Sender.Admin)),
        (3, Gen.Const(Sender.Peer)),
        (2, Gen.Const(Sender.Pending)),
        (2, Gen.Const(Sender.NoHello)),
        (1, Gen.Const(Sender.Stranger)));

    /// <summary>Invalid or tricky UTF-8 sequences for the insert mutation.</summary>
    private static readonly byte[][] Utf8Traps =
    [
        [0x80], [0xBF], [0xC0, 0x80], [0xC1, 0xBF], [0xC3], [0xC3, 0x28], [0xE0, 0x80, 0x80], [0xED, 0xA0, 0x80], [0xED, 0xBF, 0xBF],
        [0xF4, 0x90, 0x80, 0x80], [0xF5, 0x80, 0x80, 0x80], [0xFE], [0xFF], [0xEF, 0xBB, 0xBF], [0xF0, 0x9F, 0x98], [0x00], [(byte)'\\'],
        [(byte)'"'], [(byte)'\\', (byte)'u', (byte)'d', (byte)'8', (byte)'0', (byte)'0'],
    ];

    /// <summary>Gets the generator of one case: a sequence of frames sent to one fresh room, in order.</summary>
    public static Gen<FuzzFrame[]> Case(int corpusCount)
    {
        var structured = Gen.Select(Senders, Top, Gen.Int[0, 9], Mutation.Array[0, 2])
            .Select((s, tree, spaced, m) => new FuzzFrame(s, tree, 0, spaced == 0, spaced < 7 ? [] : m));
        var frame = corpusCount == 0
            ? structured
            : Gen.Frequency(
                (3, structured),
                (1, Gen.Select(Senders, Gen.Int[0, corpusCount - 1], Gen.Bool, Mutation.Array[1, 4]).Select((s, i, mutate, m) => new FuzzFrame(s, null, i, false, mutate ? m : []))));
        return frame.Array[1, 24];
    }

    /// <summary>Renders a frame to the bytes sent to the engine.</summary>
    public static byte[] Render(FuzzFrame frame, IReadOnlyList<byte[]> corpus, IFuzzRoom room)
    {
        var bytes = frame.Tree is { } tree
            ? Encoding.UTF8.GetBytes(Render(tree, room, frame.Spaced))
            : Substitute(corpus[frame.CorpusIndex % corpus.Count], room);
        foreach (var mutation in frame.Mutations)
        {
            bytes = Apply(bytes, mutation);
        }

        return bytes;
    }

    /// <summary>Replaces the corpus placeholders (<c>@admin@</c>, <c>@peer.epoch@</c>, …) with the room's ids and epochs.</summary>
    public static byte[] Substitute(byte[] seed, IFuzzRoom room)
    {
        if (seed.AsSpan().IndexOf((byte)'@') < 0)
        {
            return seed;
        }

        var text = Encoding.Latin1.GetString(seed); // byte-preserving, even for invalid UTF-8
        foreach (var who in Enum.GetValues<Who>())
        {
            var name = who.ToString().ToLowerInvariant();
            text = text.Replace("@" + name + ".epoch@", room.EpochOf(who).ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal)
                .Replace("@" + name + "@", room.IdOf(who), StringComparison.Ordinal);
        }

        return Encoding.Latin1.GetBytes(text);
    }

    public static string Render(JValue value, IFuzzRoom room, bool spaced)
    {
        var builder = new StringBuilder();
        Write(builder, value, room, spaced);
        return builder.ToString();
    }

    /// <summary>A short, printable description of a case (for shrunk failures).</summary>
    public static string Describe(FuzzFrame[] frames, IReadOnlyList<byte[]> corpus)
    {
        var builder = new StringBuilder();
        foreach (var frame in frames)
        {
            var bytes = Render(frame, corpus, NoRoom.Instance);
            var text = Encoding.UTF8.GetString(bytes);
            builder.Append(CultureInfo.InvariantCulture, $"\n  {frame.Sender}: {(text.Length > 300 ? text[..300] + $"…({bytes.Length} bytes)" : text)}");
            if (frame.Mutations.Length > 0)
            {
                builder.Append(CultureInfo.InvariantCulture, $" [mutations {string.Join(' ', frame.Mutations)}]");
            }
        }

        return builder.ToString();
    }

    private static JProp[] Props(params (string Key, JValue? Value)[] props)
        => [.. props.Where(p => p.Value is not null).Select(p => new JProp(p.Key, p.Value!))];

    private static JProp[] Mutate(JProp[] props, (int Kind, int Index, JProp Extra)[] mutations)
    {
        var list = props.ToList();
        foreach (var (kind, index, extra) in mutations)
        {
            var i = list.Count == 0 ? 0 : index % list.Count;
            switch (kind)
            {
                case 0 when list.Count > 0:
                    list.RemoveAt(i); // a missing field
                    break;
                case 1 when list.Count > 0:
                    list.Insert(index % (list.Count + 1), list[i]); // a duplicate key, same value
                    break;
                case 2 when list.Count > 0:
                    list.Add(list[i] with { Value = extra.Value }); // a duplicate key, another value
                    break;
                case 3 when list.Count > 0:
                    list[i] = list[i] with { Value = extra.Value }; // a wrong value
                    break;
                case 4:
                    list.Reverse();
                    break;
                default:
                    list.Insert(list.Count == 0 ? 0 : index % (list.Count + 1), extra); // an unknown (or known) field
                    break;
            }
        }

        return [.. list];
    }

    private static JValue Nested(int depth)
    {
        JValue value = new JRaw("1");
        for (var i = 0; i < depth; i++)
        {
            value = i % 3 == 2 ? new JObject([new JProp("a", value)]) : new JArray([value]);
        }

        return value;
    }

    /// <summary>Long strings around the pre-pass threshold (256 bytes) and the 32 KB frame limit, plain or escape-dense.</summary>
    private static Gen<string> LongText() => Gen.Select(
        Gen.OneOf(250, 255, 256, 257, 1000, 4096, InboundLimit - 300, InboundLimit - 120, InboundLimit - 60, InboundLimit - 30, InboundLimit - 10, InboundLimit, InboundLimit + 100),
        Gen.Int[0, 6],
        Gen.Int[0, int.MaxValue]).Select((length, style, at) =>
        {
            var unit = style switch
            {
                0 => "a",
                1 => @"\r\n",
                2 => @"a=candidate:1 1 udp 1 192.0.2.1 9 typ host\r\n",
                3 => @"\u00e9",
                4 => "\\\"",
                _ => "é",
            };
            var builder = new StringBuilder(length + 16);
            while (builder.Length < length)
            {
                builder.Append(unit);
            }

            builder.Length = length;
            if (style == 6 || at % 10 == 0)
            {
                // A lone surrogate (or a broken escape) somewhere in the long string, where only the pre-pass looks.
                var trap = (at / 10 % 4) switch { 0 => @"\ud800", 1 => @"\udc00x", 2 => @"\u12", _ => @"\q" };
                builder.Insert(at % length, trap);
            }

            // Never end on a lone backslash by accident (it would escape the closing quote).
            return builder.ToString().TrimEnd('\\');
        });

    private static void Write(StringBuilder builder, JValue value, IFuzzRoom room, bool spaced)
    {
        switch (value)
        {
            case JRaw raw:
                builder.Append(raw.Text);
                break;
            case JString s:
                builder.Append('"').Append(s.Body).Append('"');
                break;
            case JMember m:
                builder.Append('"').Append(room.IdOf(m.Who)).Append('"');
                break;
            case JEpoch e:
                builder.Append(room.EpochOf(e.Who) + e.Delta);
                break;
            case JObject o:
                builder.Append('{');
                for (var i = 0; i < o.Props.Length; i++)
                {
                    if (i > 0)
                    {
                        builder.Append(',');
                    }

                    if (spaced)
                    {
                        builder.Append("\n  ");
                    }

                    builder.Append('"').Append(o.Props[i].Key).Append(spaced ? "\" : " : "\":");
                    Write(builder, o.Props[i].Value, room, spaced);
                }

                builder.Append(spaced ? "\r\n}\t" : "}");
                break;
            case JSeq seq:
                foreach (var part in seq.Parts)
                {
                    Write(builder, part, room, spaced);
                }

                break;
            case JArray a:
                builder.Append('[');
                for (var i = 0; i < a.Items.Length; i++)
                {
                    if (i > 0)
                    {
                        builder.Append(spaced ? ", " : ",");
                    }

                    Write(builder, a.Items[i], room, spaced);
                }

                builder.Append(']');
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(value));
        }
    }

    private static byte[] Apply(byte[] bytes, ByteMutation m)
    {
        var length = bytes.Length;
        var at = length == 0 ? 0 : m.Position % (length + 1);
        switch (m.Kind)
        {
            case 0: // truncate
                return bytes[..Math.Min(at, length)];
            case 1 when length > 0: // overwrite a byte
                var copy = (byte[])bytes.Clone();
                copy[Math.Min(at, length - 1)] = m.Value;
                return copy;
            case 2: // insert a byte
                return [.. bytes[..at], m.Value, .. bytes[at..]];
            case 3: // delete a range
                return [.. bytes[..at], .. bytes[Math.Min(length, at + m.Length)..]];
            case 4: // duplicate a range
                var end = Math.Min(length, at + m.Length);
                return [.. bytes[..end], .. bytes[at..end], .. bytes[end..]];
            case 5: // insert an invalid or tricky UTF-8 sequence
                return [.. bytes[..at], .. Utf8Traps[m.Value % Utf8Traps.Length], .. bytes[at..]];
            case 6 when length > 1: // swap two adjacent bytes
                var swapped = (byte[])bytes.Clone();
                var i = Math.Min(at, length - 2);
                (swapped[i], swapped[i + 1]) = (swapped[i + 1], swapped[i]);
                return swapped;
            default: // flip one bit
                if (length == 0)
                {
                    return bytes;
                }

                var flipped = (byte[])bytes.Clone();
                flipped[Math.Min(at, length - 1)] ^= (byte)(1 << (m.Value % 8));
                return flipped;
        }
    }

    /// <summary>Renders member references with placeholder ids (for printing and for seeding the corpus).</summary>
    internal sealed class NoRoom : IFuzzRoom
    {
        public static readonly NoRoom Instance = new();

        public string IdOf(Who who) => "@" + who.ToString().ToLowerInvariant() + "@";

        public long EpochOf(Who who) => 1;
    }
}
