import { GROUP_SEND_FUNCTION, LuaScript } from '../channel-layer/redis-scripts';

/**
 * The Redis side of `RedisRoomState`: its key layout and the Lua scripts that keep each change
 * atomic and one round trip. Deadlines come from Redis (`TIME`), so processes with skewed clocks
 * still agree on who is gone.
 *
 * Keys (`R` is `<prefix>:rooms`; a member's field is `<node id>:<member>`):
 * - `R:h:<room>` STREAM, the room's history: one entry per record, field `r` holding the record
 *   serialized once (`{message,user,ts}`; its id is the entry's id, its room the key's) and field
 *   `b` the bytes it counts for (`recordBytes`). Trimmed on every append, oldest first, to at most
 *   `historyLimit` entries and `historyBytes` bytes (the newest entry always stays); its TTL
 *   (refreshed by appends) drops idle rooms.
 * - `R:hb:<room>` STRING, the sum of the stream's `b` fields, kept exact by every append and
 *   trim, with the stream's TTL.
 * - `R:written` ZSET of the rooms with history on this Redis, scored by a strictly increasing
 *   stamp of their last append (Redis time in µs, or one past the newest). Past `maxRooms`, an
 *   append deletes the history of the lowest (least recently written) rooms; entries of rooms
 *   whose history expired are dropped by the next append. So this Redis holds at most
 *   `maxRooms` histories of at most `historyBytes` each.
 * - `R:evicted-id` STRING, the highest id an evicted stream had handed out: a room written again
 *   within that millisecond starts past it, so its ids still increase.
 * - `R:p:<room>` HASH, presence: `<node>:<member>` → user name.
 * - `R:active`   ZSET of rooms with members, scored by their member count.
 * - `R:nodes`    ZSET of the processes that have registered, scored by the Redis time (ms) at
 *   which their heartbeat runs out. One key finds every expired process without a SCAN.
 * - `R:n:<node>` HASH, a process's own index: room → how many of its members are there, so the
 *   sweep of a dead process visits only its rooms.
 *
 * Scripts declare the keys they are given in KEYS. The append's eviction and the sweep and
 * resync scripts reach keys they compute from `R` (`R:h:<room>`, `R:p:<room>`): fine on a plain
 * Redis, which is what the store shards over; on Redis Cluster every key of a prefix would need
 * one hash tag, which is issue 20's.
 */

const NOW = `
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
`;

/** Sets a room's member count in `R:active`, or removes the room once empty. */
const COUNT = `
local function count(presence, active, room)
  local n = redis.call('HLEN', presence)
  if n == 0 then redis.call('ZREM', active, room) else redis.call('ZADD', active, n, room) end
end
`;

/**
 * Lua defining `append(keys, argv)`, shared by {@link APPEND} and {@link APPEND_AND_SEND}:
 * the record's XADD, the trim of its room to both bounds, the room's stamp in `R:written` and the
 * eviction of the least recently written rooms past `maxRooms`, and the expiry. KEYS: stream,
 * its byte count, `R:written`, `R:evicted-id`. ARGV: historyLimit, historyBytes, maxRooms, ttl ms
 * (0: none), payload, the record's bytes, `R`, room. Returns `{id, records trimmed, rooms
 * evicted}`.
 */
const APPEND_FUNCTION = `
local function entry_bytes(fields)
  for i = 1, #fields, 2 do
    if fields[i] == 'b' then return tonumber(fields[i + 1]) end
  end
  -- An entry stored without its size counts its stored JSON plus 80.
  for i = 1, #fields, 2 do
    if fields[i] == 'r' then return #fields[i + 1] + 80 end
  end
  return 0
end

-- Ids as <ms>-<seq>: true when a comes after b.
local function later(a, b)
  local a_ms, a_seq = string.match(a, '^(%d+)-(%d+)$')
  local b_ms, b_seq = string.match(b, '^(%d+)-(%d+)$')
  if tonumber(a_ms) ~= tonumber(b_ms) then return tonumber(a_ms) > tonumber(b_ms) end
  return tonumber(a_seq) > tonumber(b_seq)
end

local function last_id(stream)
  local info = redis.call('XINFO', 'STREAM', stream)
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then return info[i + 1] end
  end
end

local function append(keys, argv)
  local stream, bytes_key, written, evicted_id = keys[1], keys[2], keys[3], keys[4]
  local limit, max_bytes, max_rooms = tonumber(argv[1]), tonumber(argv[2]), tonumber(argv[3])
  local ttl, size, root, room = tonumber(argv[4]), tonumber(argv[6]), argv[7], argv[8]

  local len = redis.call('XLEN', stream)
  local bytes = 0
  if len > 0 then
    bytes = tonumber(redis.call('GET', bytes_key))
    if not bytes then
      -- A stream without its count (stored before counts were kept): count it once.
      bytes = 0
      for _, entry in ipairs(redis.call('XRANGE', stream, '-', '+')) do
        bytes = bytes + entry_bytes(entry[2])
      end
    end
  end
  local next_id = '*'
  if len == 0 and redis.call('EXISTS', stream) == 0 then
    -- A new stream: past the ids of an evicted one of this room in this very millisecond.
    local mark = redis.call('GET', evicted_id)
    if mark then
      local clock = redis.call('TIME')
      local ms, seq = string.match(mark, '^(%d+)-(%d+)$')
      if tonumber(ms) >= tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000) then
        next_id = ms .. '-' .. string.format('%.0f', tonumber(seq) + 1)
      end
    end
  end
  local id = redis.call('XADD', stream, next_id, 'r', argv[5], 'b', size)
  len = len + 1
  bytes = bytes + size

  -- Oldest first, while over either bound; the newest stays however big (not with limit 0).
  local trimmed = 0
  local after = '-'
  local batch = math.max(len - limit, 1)
  while len > limit or (len > 1 and bytes > max_bytes) do
    local entries = redis.call('XRANGE', stream, after, '+', 'COUNT', batch)
    if #entries == 0 then break end
    for _, entry in ipairs(entries) do
      if not (len > limit or (len > 1 and bytes > max_bytes)) then break end
      len = len - 1
      bytes = bytes - entry_bytes(entry[2])
      trimmed = trimmed + 1
      after = '(' .. entry[1]
    end
    batch = batch * 2
  end
  if trimmed > 0 then redis.call('XTRIM', stream, 'MAXLEN', len) end
  if ttl > 0 then
    redis.call('PEXPIRE', stream, ttl)
    redis.call('SET', bytes_key, bytes, 'PX', ttl)
  else
    redis.call('SET', bytes_key, bytes)
  end

  -- Stamps increase strictly, so appends in one microsecond keep their order too.
  local clock = redis.call('TIME')
  local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
  local stamp = now
  local newest = redis.call('ZRANGE', written, -1, -1, 'WITHSCORES')
  if newest[2] and tonumber(newest[2]) >= stamp then stamp = tonumber(newest[2]) + 1 end
  redis.call('ZADD', written, string.format('%.0f', stamp), room)
  if ttl > 0 then
    -- Written to longer ago than the expiry (by Redis' clock): their history is gone already.
    redis.call('ZREMRANGEBYSCORE', written, '-inf', string.format('(%.0f', now - ttl * 1000))
    redis.call('PEXPIRE', written, ttl)
  end
  local evicted = 0
  local over = redis.call('ZCARD', written) - max_rooms
  if over > 0 then
    local mark = redis.call('GET', evicted_id)
    for _, old in ipairs(redis.call('ZRANGE', written, 0, over - 1)) do
      local old_stream = root .. ':h:' .. old
      if redis.call('EXISTS', old_stream) == 1 then
        local last = last_id(old_stream)
        if not mark or later(last, mark) then mark = last end
        evicted = evicted + 1
      end
      redis.call('UNLINK', old_stream, root .. ':hb:' .. old)
    end
    redis.call('ZREMRANGEBYRANK', written, 0, over - 1)
    if mark and ttl > 0 then
      redis.call('SET', evicted_id, mark, 'PX', ttl)
    elseif mark then
      redis.call('SET', evicted_id, mark)
    end
  end
  return {id, trimmed, evicted}
end
`;

/**
 * Appends a record to a room's history, within the bounds. KEYS and ARGV: `append()`'s (see
 * APPEND_FUNCTION). Returns `{id, records trimmed, rooms evicted}`; the id, `<ms>-<seq>`, is
 * unique and increasing within the stream.
 */
export const APPEND = new LuaScript(`${APPEND_FUNCTION}
return append(KEYS, ARGV)
`);

/**
 * {@link APPEND}, then the channel layer's `group_send` of the chat message carrying the new id,
 * in one step. KEYS: APPEND's four, then the group's ordinary members (the layer's key). ARGV:
 * APPEND's eight, then the group's topic, the message's JSON up to its id and after it.
 * Returns `{id, the group's live ordinary members, records trimmed, rooms evicted}`. Being
 * atomic, it publishes a room's messages in id order whichever process appended them.
 */
export const APPEND_AND_SEND = new LuaScript(`${APPEND_FUNCTION}${GROUP_SEND_FUNCTION}
local appended = append(KEYS, ARGV)
local id = appended[1]
return {id, group_send(KEYS[5], ARGV[9], ARGV[10] .. id .. ARGV[11]), appended[2], appended[3]}
`);

/**
 * The `ARGV[1]` rooms with the most members, between rooms with as many the first by name.
 * KEYS: active. Returns room, member count pairs. Reads O(log n + limit), however many rooms.
 */
export const BUSIEST = new LuaScript(`
local limit = tonumber(ARGV[1])
local top = redis.call('ZREVRANGEBYSCORE', KEYS[1], '+inf', '(0', 'WITHSCORES', 'LIMIT', 0, limit)
if #top < 2 * limit then return top end
-- The reversed range ends with the last count's rooms in reverse name order: of those, take
-- the first by name instead.
local last = top[#top]
local ties = 0
for i = 2, #top, 2 do
  if top[i] == last then ties = ties + 1 end
end
local first = redis.call('ZRANGEBYSCORE', KEYS[1], last, last, 'LIMIT', 0, ties)
for i = 1, ties do top[#top - 2 * ties + 2 * i - 1] = first[i] end
return top
`);

/**
 * Adds (or renames) a member. KEYS: presence, active, node index. ARGV: room, field, user.
 * Returns 1 when the member is new.
 */
export const JOIN = new LuaScript(`${COUNT}
local added = redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
if added == 1 then redis.call('HINCRBY', KEYS[3], ARGV[1], 1) end
count(KEYS[1], KEYS[2], ARGV[1])
return added
`);

/** Removes a member. KEYS: presence, active, node index. ARGV: room, field. Returns 1 if it was there. */
export const LEAVE = new LuaScript(`${COUNT}
local removed = redis.call('HDEL', KEYS[1], ARGV[2])
if removed == 1 and redis.call('HINCRBY', KEYS[3], ARGV[1], -1) <= 0 then
  redis.call('HDEL', KEYS[3], ARGV[1])
end
count(KEYS[1], KEYS[2], ARGV[1])
return removed
`);

/**
 * A process's heartbeat. KEYS: nodes, its index. ARGV: node, ttl ms, or 0 for its goodbye: gone
 * at once if it has no members left, else counted as run out so the next sweep drops them.
 * Returns 1 when the process was unknown or had run out, so others may have swept (part of) its
 * members and it must register them again; 0 otherwise.
 */
export const HEARTBEAT = new LuaScript(`${NOW}
local previous = redis.call('ZSCORE', KEYS[1], ARGV[1])
local ttl = tonumber(ARGV[2])
if ttl == 0 then
  if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('ZREM', KEYS[1], ARGV[1])
  elseif previous then redis.call('ZADD', KEYS[1], 0, ARGV[1]) end
  return 0
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
if not previous or tonumber(previous) < now then return 1 end
return 0
`);

/**
 * Removes the members of one process whose heartbeat ran out, from at most ARGV[2] of its rooms;
 * the process itself is forgotten once none are left. KEYS: nodes, active. ARGV: `R`, max rooms,
 * the sweeping process (never itself: if it stalled past its deadline, its next heartbeat says so).
 * Returns nil when no other process has run out, else `{node, rooms whose presence changed}`.
 */
export const SWEEP = new LuaScript(`${NOW}${COUNT}
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now, 'LIMIT', 0, 2)
local node = dead[1] ~= ARGV[3] and dead[1] or dead[2]
if not node then return false end
local index = ARGV[1] .. ':n:' .. node
local changed = {}
local rooms = redis.call('HRANDFIELD', index, tonumber(ARGV[2]))
for _, room in ipairs(rooms) do
  local presence = ARGV[1] .. ':p:' .. room
  local removed = 0
  local cursor = '0'
  repeat
    local page = redis.call('HSCAN', presence, cursor, 'MATCH', node .. ':*', 'COUNT', 1000)
    cursor = page[1]
    for i = 1, #page[2], 2 do removed = removed + redis.call('HDEL', presence, page[2][i]) end
  until cursor == '0'
  redis.call('HDEL', index, room)
  count(presence, KEYS[2], room)
  if removed > 0 then changed[#changed + 1] = room end
end
if redis.call('EXISTS', index) == 0 then redis.call('ZREM', KEYS[1], node) end
return {node, changed}
`);

/**
 * Makes one room's presence hold exactly this process's members: drops its fields not listed,
 * adds the listed ones. KEYS: presence, active, node index. ARGV: room, node, then member, user
 * pairs. Returns 1 when the room's presence changed.
 */
export const RESYNC = new LuaScript(`${COUNT}
local room, node = ARGV[1], ARGV[2]
local wanted = {}
local members = 0
for i = 3, #ARGV, 2 do
  wanted[node .. ':' .. ARGV[i]] = ARGV[i + 1]
  members = members + 1
end
local changed = 0
local cursor = '0'
repeat
  local page = redis.call('HSCAN', KEYS[1], cursor, 'MATCH', node .. ':*', 'COUNT', 1000)
  cursor = page[1]
  for i = 1, #page[2], 2 do
    local field = page[2][i]
    if wanted[field] ~= page[2][i + 1] then
      if wanted[field] == nil then redis.call('HDEL', KEYS[1], field) end
      changed = 1
    end
  end
until cursor == '0'
for field, user in pairs(wanted) do
  if redis.call('HSET', KEYS[1], field, user) == 1 then changed = 1 end
end
if members > 0 then redis.call('HSET', KEYS[3], room, members) else redis.call('HDEL', KEYS[3], room) end
count(KEYS[1], KEYS[2], room)
return changed
`);
