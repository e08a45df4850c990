import { GroupSendStep } from '../channel-layer/redis-steps.js';
import { LuaScript, NOW } from '../redis/lua-script.js';

// The history of `RedisRoomState`: its keys are laid out in `redis-room-keys.ts`.

/**
 * Lua defining `remember(resends, order, key, value, window, max_ids)`, after `NOW`: stores a
 * resend key's value, then forgets, oldest first, the keys past `max_ids` or out of the window.
 */
const REMEMBER_FUNCTION = `
local function remember(resends, order, key, value, window, max_ids)
  redis.call('HSET', resends, key, value)
  local n = redis.call('LPUSH', order, key)
  while n > 0 do
    local oldest = redis.call('LINDEX', order, -1)
    local seen = redis.call('HGET', resends, oldest)
    local at = seen and tonumber(string.match(seen, '^(%d+):'))
    local stale = not at or at + window <= now
    if n <= max_ids and not stale then break end
    redis.call('RPOP', order)
    -- A key stored again since holds a newer value: it stays unless past the bound.
    if seen and (stale or oldest ~= key) then redis.call('HDEL', resends, oldest) end
    n = n - 1
  end
  redis.call('PEXPIRE', resends, window)
  redis.call('PEXPIRE', order, window)
end
`;

/**
 * Lua defining `append(keys, argv)`, after `NOW`; shared by {@link APPEND} and {@link APPEND_AND_SEND}:
 * the record's XADD, the trim of its room to both bounds, its size in `R:sizes` and `R:bytes`,
 * its stamp in `R:written`, the pruning of expired rooms and the eviction of the least recently
 * written rooms past `maxRooms` or `maxHistoryBytes`, and the expiry. KEYS: stream, `R:sizes`,
 * `R:bytes`, `R:written`, `R:evicted-id`, `R:rs:<room>`, `R:ro:<room>`. ARGV: historyLimit,
 * historyBytes, maxRooms, maxHistoryBytes, ttl ms (0: none), payload, the record's bytes, `R`,
 * room, resend key ('' for none), resend window ms, resend ids per room, the record's ts. Returns `{id, records
 * trimmed, rooms evicted}`, or `{false, the first record's id, its ts}` for a resend key stored
 * within the window (nothing is appended).
 *
 * Resend keys: `R:rs:<room>` HASH, key → `<Redis ms>:<ts>:<id>`; `R:ro:<room>` LIST of the keys,
 * newest first. Each append with a key forgets, oldest first, the keys past the per-room bound
 * or out of the window; both keys expire with the window, and go with the room's history when it
 * is evicted.
 */
const APPEND_FUNCTION = `${REMEMBER_FUNCTION}
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
  local resends, resend_order = keys[6], keys[7]
  local limit, max_bytes, max_rooms = tonumber(argv[1]), tonumber(argv[2]), tonumber(argv[3])
  local max_total, ttl, size = tonumber(argv[4]), tonumber(argv[5]), tonumber(argv[7])
  local root, room = argv[8], argv[9]
  local resend_key, window, max_ids = argv[10], tonumber(argv[11]), tonumber(argv[12])
  if resend_key ~= '' and max_ids > 0 then
    local seen = redis.call('HGET', resends, resend_key)
    if seen then
      local at, ts, first = string.match(seen, '^(%d+):(%d+):(.+)$')
      if at and tonumber(at) + window > now then return {false, first, tonumber(ts)} end
    end
  end

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
  if resend_key ~= '' and max_ids > 0 then
    remember(resends, resend_order, resend_key, integer(now) .. ':' .. argv[13] .. ':' .. id, window, max_ids)
  end
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
        redis.call('UNLINK', old_stream, root .. ':hb:' .. old, root .. ':rs:' .. old, root .. ':ro:' .. old)
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
 * Stores a resend key after its record was appended and sent in two steps (a layer that cannot
 * run the append in its `groupSend`). KEYS: `R:rs:<room>`, `R:ro:<room>`. ARGV: the key, the
 * record's ts, its id, the window ms, the ids per room.
 */
export const REMEMBER = new LuaScript(`${NOW}${REMEMBER_FUNCTION}
remember(KEYS[1], KEYS[2], ARGV[1], string.format('%.0f', now) .. ':' .. ARGV[2] .. ':' .. ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]))
return 1
`);
