import { GroupSendStep } from '../channel-layer/group-send-step.js';
import { LuaScript, NOW } from '../redis/lua-script.js';

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
 * - `R:written` ZSET of the rooms with history on this Redis, scored by a strictly increasing
 *   stamp of their last append (Redis time in µs, or one past the newest).
 * - `R:sizes` HASH, room → the sum of its stream's `b` fields, for the rooms of `R:written`.
 * - `R:bytes` STRING, the sum of `R:sizes`: the bytes of history this Redis holds.
 *
 *   Every append keeps these three exact together: it records its room's size after the trim
 *   and adds the difference to `R:bytes`; a room whose stream is gone when it is written again
 *   starts from zero. It then drops the entries of `R:written` older than the expiry (by Redis'
 *   clock: their streams have expired) with their sizes, and deletes the history of the lowest
 *   (least recently written) rooms, with their sizes, while `R:written` holds more than
 *   `maxRooms` rooms or `R:bytes` is above `maxHistoryBytes`; the room just written goes last,
 *   only when it alone holds more. So this Redis holds at most `maxRooms` histories, of at most
 *   `historyBytes` each and `maxHistoryBytes` in all. A stream with no size in `R:sizes` is
 *   counted once, from its entries, by its next append, and is in the total from then on; until
 *   then only `maxRooms` bounds it. The three keys take the streams' TTL, so a Redis whose rooms
 *   all went idle keeps none of them.
 * - `R:hb:<room>` STRING, read by nothing: a byte count that stores without `R:sizes` kept beside
 *   a stream. The append that counts the room's stream, or evicts the room, deletes it.
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
 * resync scripts reach keys they compute from `R` (`R:h:<room>`, `R:hb:<room>`, `R:p:<room>`):
 * fine on a plain Redis, which is what the store shards over; on Redis Cluster every key of a
 * prefix would need one hash tag, which is issue 20's.
 */

/** Sets a room's member count in `R:active`, or removes the room once empty. */
const COUNT = `
local function count(presence, active, room)
  local n = redis.call('HLEN', presence)
  if n == 0 then redis.call('ZREM', active, room) else redis.call('ZADD', active, n, room) end
end
`;

/**
 * Lua defining `append(keys, argv)`, after `NOW`; shared by {@link APPEND} and {@link APPEND_AND_SEND}:
 * the record's XADD, the trim of its room to both bounds, its size in `R:sizes` and `R:bytes`,
 * its stamp in `R:written`, the pruning of expired rooms and the eviction of the least recently
 * written rooms past `maxRooms` or `maxHistoryBytes`, and the expiry. KEYS: stream, `R:sizes`,
 * `R:bytes`, `R:written`, `R:evicted-id`. ARGV: historyLimit, historyBytes, maxRooms,
 * maxHistoryBytes, ttl ms (0: none), payload, the record's bytes, `R`, room. Returns `{id,
 * records trimmed, rooms evicted}`.
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

local function integer(n)
  return string.format('%.0f', n)
end

local function append(keys, argv)
  local stream, sizes, total_key, written, evicted_id = keys[1], keys[2], keys[3], keys[4], keys[5]
  local limit, max_bytes, max_rooms = tonumber(argv[1]), tonumber(argv[2]), tonumber(argv[3])
  local max_total, ttl, size = tonumber(argv[4]), tonumber(argv[5]), tonumber(argv[7])
  local root, room = argv[8], argv[9]

  local total = tonumber(redis.call('GET', total_key))
  if not total then
    -- Only when the sum itself is gone: count it once from the sizes.
    total = 0
    for _, bytes in ipairs(redis.call('HVALS', sizes)) do total = total + tonumber(bytes) end
  end
  -- What the total holds for this room; its stream may have expired since.
  local recorded = tonumber(redis.call('HGET', sizes, room))
  local len = redis.call('XLEN', stream)
  local bytes = 0
  if len > 0 then
    bytes = recorded
    if not bytes then
      -- A stream whose size is not recorded: count it once.
      bytes = 0
      for _, entry in ipairs(redis.call('XRANGE', stream, '-', '+')) do
        bytes = bytes + entry_bytes(entry[2])
      end
      redis.call('UNLINK', root .. ':hb:' .. room)
    end
  end
  total = total - (recorded or 0) + bytes
  local next_id = '*'
  if len == 0 and redis.call('EXISTS', stream) == 0 then
    -- A new stream: past the ids of an evicted one of this room in this very millisecond.
    local mark = redis.call('GET', evicted_id)
    if mark then
      local ms, seq = string.match(mark, '^(%d+)-(%d+)$')
      if tonumber(ms) >= now then
        next_id = ms .. '-' .. integer(tonumber(seq) + 1)
      end
    end
  end
  local id = redis.call('XADD', stream, next_id, 'r', argv[6], 'b', size)
  len = len + 1
  bytes = bytes + size
  total = total + size

  -- Oldest first, while over either bound; the newest stays however big (not with limit 0).
  local trimmed = 0
  local after = '-'
  local batch = math.max(len - limit, 1)
  while len > limit or (len > 1 and bytes > max_bytes) do
    local entries = redis.call('XRANGE', stream, after, '+', 'COUNT', batch)
    if #entries == 0 then break end
    for _, entry in ipairs(entries) do
      if not (len > limit or (len > 1 and bytes > max_bytes)) then break end
      local dropped = entry_bytes(entry[2])
      len = len - 1
      bytes = bytes - dropped
      total = total - dropped
      trimmed = trimmed + 1
      after = '(' .. entry[1]
    end
    batch = batch * 2
  end
  if trimmed > 0 then redis.call('XTRIM', stream, 'MAXLEN', len) end
  if ttl > 0 then redis.call('PEXPIRE', stream, ttl) end
  redis.call('HSET', sizes, room, integer(bytes))

  -- Stamps increase strictly, so appends in one microsecond keep their order too.
  local now_us = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
  local stamp = now_us
  local newest = redis.call('ZRANGE', written, -1, -1, 'WITHSCORES')
  if newest[2] and tonumber(newest[2]) >= stamp then stamp = tonumber(newest[2]) + 1 end
  redis.call('ZADD', written, integer(stamp), room)
  if ttl > 0 then
    -- Written to longer ago than the expiry (by Redis' clock): their history is gone already.
    local cutoff = '(' .. integer(now_us - ttl * 1000)
    local expired = redis.call('ZRANGEBYSCORE', written, '-inf', cutoff)
    for _, old in ipairs(expired) do
      total = total - (tonumber(redis.call('HGET', sizes, old)) or 0)
      redis.call('HDEL', sizes, old)
    end
    if #expired > 0 then redis.call('ZREMRANGEBYSCORE', written, '-inf', cutoff) end
  end

  -- Least recently written first, while over either bound; this room is the newest.
  local evicted = 0
  local rooms = redis.call('ZCARD', written)
  if rooms > max_rooms or total > max_total then
    local mark = redis.call('GET', evicted_id)
    while rooms > max_rooms or total > max_total do
      local batch = math.min(math.max(rooms - max_rooms, 16), 1000)
      local oldest = redis.call('ZRANGE', written, 0, batch - 1)
      if #oldest == 0 then break end
      local gone = 0
      for _, old in ipairs(oldest) do
        if not (rooms > max_rooms or total > max_total) then break end
        local old_stream = root .. ':h:' .. old
        if redis.call('EXISTS', old_stream) == 1 then
          local last = last_id(old_stream)
          if not mark or later(last, mark) then mark = last end
          evicted = evicted + 1
        end
        redis.call('UNLINK', old_stream, root .. ':hb:' .. old)
        total = total - (tonumber(redis.call('HGET', sizes, old)) or 0)
        redis.call('HDEL', sizes, old)
        rooms = rooms - 1
        gone = gone + 1
      end
      redis.call('ZREMRANGEBYRANK', written, 0, gone - 1)
    end
    if mark and ttl > 0 then
      redis.call('SET', evicted_id, mark, 'PX', ttl)
    elseif mark then
      redis.call('SET', evicted_id, mark)
    end
  end
  if ttl > 0 then
    redis.call('SET', total_key, integer(total), 'PX', ttl)
    redis.call('PEXPIRE', sizes, ttl)
    redis.call('PEXPIRE', written, ttl)
  else
    redis.call('SET', total_key, integer(total))
  end
  return {id, trimmed, evicted}
end
`;

/**
 * Appends a record to a room's history, within the bounds. KEYS and ARGV: `append()`'s (see
 * APPEND_FUNCTION). Returns `{id, records trimmed, rooms evicted}`; the id, `<ms>-<seq>`, is
 * unique and increasing within the stream.
 */
export const APPEND = new LuaScript(`${NOW}${APPEND_FUNCTION}
return append(KEYS, ARGV)
`);

/**
 * {@link APPEND} as a channel layer's `GroupSendStep`: the record is appended and published to
 * the room's group in one script, so a room's messages go out in id order whichever process
 * appended them. KEYS and ARGV: APPEND's; returns APPEND's, and the message carries the id.
 */
export const APPEND_AND_SEND = new GroupSendStep(`${APPEND_FUNCTION}
local step = append
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
