namespace Talki.Signalling.Redis.Storage;

/// <summary>
/// The Lua scripts of <see cref="RedisRoomStore"/>: each check-and-write is one script, so Redis runs it atomically
/// (no other command interleaves). A room's keys share the hash tag <c>{room id}</c>, so every script touches one slot
/// (Redis Cluster safe). Instants are 19-digit tick strings compared as strings; <c>ARGV[1]</c> is always "now" by the
/// host's injected clock, so read-side expiry does not depend on Redis's clock or on when Redis deletes keys.
/// StackExchange.Redis sends a script's SHA-1 (<c>EVALSHA</c>) once Redis knows it, and the text again after a Redis restart.
/// </summary>
internal static class RedisRoomScripts
{
    /// <summary>KEYS: room, members, users. ARGV: now, ttl ms, admin, created, seals, expires, admin id, admin json, admin user, member-id key (empty: none). Returns 1, or 0 when a live room has the id.</summary>
    public const string Create = """
        local exp = redis.call('HGET', KEYS[1], 'expires')
        if exp and exp > ARGV[1] then return 0 end
        redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
        redis.call('HSET', KEYS[1], 'admin', ARGV[3], 'created', ARGV[4], 'seals', ARGV[5], 'expires', ARGV[6])
        if ARGV[10] ~= '' then redis.call('HSET', KEYS[1], 'key', ARGV[10]) end
        redis.call('HSET', KEYS[2], ARGV[7], ARGV[8])
        redis.call('HSET', KEYS[3], ARGV[9], ARGV[7])
        redis.call('PEXPIRE', KEYS[1], ARGV[2])
        redis.call('PEXPIRE', KEYS[2], ARGV[2])
        redis.call('PEXPIRE', KEYS[3], ARGV[2])
        return 1
        """;

    /// <summary>KEYS: room, members. ARGV: now, member id. Returns the member's JSON, or nil.</summary>
    public const string GetMember = """
        local exp = redis.call('HGET', KEYS[1], 'expires')
        if not exp or exp <= ARGV[1] then return false end
        return redis.call('HGET', KEYS[2], ARGV[2])
        """;

    /// <summary>KEYS: room, members. ARGV: now, member id, member id. Returns both members' JSON (nil for an absent one), or nil when the room is gone.</summary>
    public const string GetMemberPair = """
        local exp = redis.call('HGET', KEYS[1], 'expires')
        if not exp or exp <= ARGV[1] then return false end
        return redis.call('HMGET', KEYS[2], ARGV[2], ARGV[3])
        """;

    /// <summary>KEYS: room, members, users. ARGV: now, user id. Returns the member's JSON, or nil.</summary>
    public const string FindByUser = """
        local exp = redis.call('HGET', KEYS[1], 'expires')
        if not exp or exp <= ARGV[1] then return false end
        local id = redis.call('HGET', KEYS[3], ARGV[2])
        if not id then return false end
        return redis.call('HGET', KEYS[2], id)
        """;

    /// <summary>KEYS: room, members. ARGV: now. Returns every member's JSON (none when the room is gone).</summary>
    public const string List = """
        local exp = redis.call('HGET', KEYS[1], 'expires')
        if not exp or exp <= ARGV[1] then return {} end
        return redis.call('HVALS', KEYS[2])
        """;

    /// <summary>
    /// KEYS: room, members, users. ARGV: now, member id, user id, json, admission, capacity, max pending.
    /// Drops expired members, then refuses a second member of a user, a seat above the capacity, a knock above the
    /// pending limit. Returns added, exists, full, toomanypending or notfound.
    /// </summary>
    public const string Add = """
        local now = ARGV[1]
        local exp = redis.call('HGET', KEYS[1], 'expires')
        if not exp or exp <= now then return 'notfound' end
        local all = redis.call('HGETALL', KEYS[2])
        local admitted, pending = 0, 0
        for i = 1, #all, 2 do
          local m = cjson.decode(all[i + 1])
          if m.x and m.x <= now then
            redis.call('HDEL', KEYS[2], all[i])
            if redis.call('HGET', KEYS[3], m.u) == all[i] then redis.call('HDEL', KEYS[3], m.u) end
          elseif m.a == 'admitted' then admitted = admitted + 1
          elseif m.a == 'pending' then pending = pending + 1 end
        end
        if redis.call('HEXISTS', KEYS[3], ARGV[3]) == 1 or redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then return 'exists' end
        if ARGV[5] == 'admitted' and admitted >= tonumber(ARGV[6]) then return 'full' end
        if ARGV[5] == 'pending' and pending >= tonumber(ARGV[7]) then return 'toomanypending' end
        redis.call('HSET', KEYS[2], ARGV[2], ARGV[4])
        redis.call('HSET', KEYS[3], ARGV[3], ARGV[2])
        local ttl = redis.call('PTTL', KEYS[1])
        if ttl > 0 then
          redis.call('PEXPIRE', KEYS[2], ttl)
          redis.call('PEXPIRE', KEYS[3], ttl)
        end
        return 'added'
        """;

    /// <summary>
    /// KEYS: room, members. ARGV: now, member id, ticket hash. Takes the ticket a live member's record keeps when its hash
    /// is the one given: removes the record's <c>t</c> and <c>tx</c> and bumps its <c>v</c>, in the stored text itself
    /// (re-encoding with cjson would round the 19-digit tick numbers; System.Text.Json escapes every quote inside a string
    /// value, so <c>"t":</c>, <c>"tx":</c> and <c>"v":</c> occur only as keys). Returns the record as it was, or nil.
    /// </summary>
    public const string TakeTicket = """
        local now = ARGV[1]
        local exp = redis.call('HGET', KEYS[1], 'expires')
        if not exp or exp <= now then return false end
        local current = redis.call('HGET', KEYS[2], ARGV[2])
        if not current then return false end
        local m = cjson.decode(current)
        if m.t ~= ARGV[3] or (m.x and m.x <= now) then return false end
        local taken = string.gsub(current, ',"t":"[^"]*"', '', 1)
        taken = string.gsub(taken, ',"tx":%-?%d+', '', 1)
        taken = string.gsub(taken, '"v":(%d+)', function(v) return '"v":' .. string.format('%d', tonumber(v) + 1) end, 1)
        redis.call('HSET', KEYS[2], ARGV[2], taken)
        return current
        """;

    /// <summary>
    /// KEYS: room, members. ARGV: now, member id, user id, expected version, json, new admission. Writes if the stored
    /// member lives and has that version and user, and the write does not admit it. Returns 1 or 0.
    /// </summary>
    public const string Update = """
        local now = ARGV[1]
        local exp = redis.call('HGET', KEYS[1], 'expires')
        if not exp or exp <= now then return 0 end
        local current = redis.call('HGET', KEYS[2], ARGV[2])
        if not current then return 0 end
        local m = cjson.decode(current)
        if m.v ~= tonumber(ARGV[4]) or m.u ~= ARGV[3] or (m.x and m.x <= now) then return 0 end
        if ARGV[6] == 'admitted' and m.a ~= 'admitted' then return 0 end
        redis.call('HSET', KEYS[2], ARGV[2], ARGV[5])
        return 1
        """;

    /// <summary>
    /// KEYS: room, members. ARGV: now, member id, user id, expected version, json, capacity. Admits a live, not yet
    /// admitted member of that version and user if fewer than capacity live members are admitted. Returns admitted, full
    /// or conflict.
    /// </summary>
    public const string Admit = """
        local now = ARGV[1]
        local exp = redis.call('HGET', KEYS[1], 'expires')
        if not exp or exp <= now then return 'conflict' end
        local current = redis.call('HGET', KEYS[2], ARGV[2])
        if not current then return 'conflict' end
        local m = cjson.decode(current)
        if m.v ~= tonumber(ARGV[4]) or m.u ~= ARGV[3] or (m.x and m.x <= now) or m.a == 'admitted' then return 'conflict' end
        local seated = 0
        for _, json in ipairs(redis.call('HVALS', KEYS[2])) do
          local other = cjson.decode(json)
          if other.a == 'admitted' and not (other.x and other.x <= now) then seated = seated + 1 end
        end
        if seated >= tonumber(ARGV[6]) then return 'full' end
        redis.call('HSET', KEYS[2], ARGV[2], ARGV[5])
        return 'admitted'
        """;

    /// <summary>
    /// KEYS: messages (list), queue (hash: expires, bytes, dropped). ARGV: now, message, its length, max messages, max
    /// bytes, expires, ttl ms. A queue without a live hash starts afresh (its list too); the expiry only grows; the message
    /// is appended if the bounds allow it, else the drop is counted. Both keys expire with the queue. Returns 1 (stored) or 0
    /// (dropped).
    /// </summary>
    public const string Enqueue = """
        local now = ARGV[1]
        local exp = redis.call('HGET', KEYS[2], 'expires')
        if not exp or exp <= now then
          redis.call('DEL', KEYS[1], KEYS[2])
          exp = false
        end
        if not exp or ARGV[6] > exp then
          redis.call('HSET', KEYS[2], 'expires', ARGV[6])
          redis.call('PEXPIRE', KEYS[2], ARGV[7])
        end
        local stored = 0
        local bytes = tonumber(redis.call('HGET', KEYS[2], 'bytes') or '0')
        if redis.call('LLEN', KEYS[1]) < tonumber(ARGV[4]) and bytes + tonumber(ARGV[3]) <= tonumber(ARGV[5]) then
          redis.call('RPUSH', KEYS[1], ARGV[2])
          redis.call('HINCRBY', KEYS[2], 'bytes', ARGV[3])
          stored = 1
        else
          redis.call('HINCRBY', KEYS[2], 'dropped', 1)
        end
        local ttl = redis.call('PTTL', KEYS[2])
        if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
        return stored
        """;

    /// <summary>
    /// KEYS: messages, queue. ARGV: now. Deletes the queue and returns its dropped count followed by its messages, oldest
    /// first; just <c>0</c> when there is none or it expired.
    /// </summary>
    public const string TakeQueue = """
        local exp = redis.call('HGET', KEYS[2], 'expires')
        local dropped = tonumber(redis.call('HGET', KEYS[2], 'dropped') or '0')
        local messages = redis.call('LRANGE', KEYS[1], 0, -1)
        redis.call('DEL', KEYS[1], KEYS[2])
        if not exp or exp <= ARGV[1] then return {0} end
        table.insert(messages, 1, dropped)
        return messages
        """;
}
