import { LuaScript, NOW } from '../redis/lua-script.js';

// The presence of `RedisRoomState`: its keys are laid out in `redis-room-keys.ts`.

/** Sets a room's member count in `R:active`, or removes the room once empty. */
const COUNT = `
local function count(presence, active, room)
  local n = redis.call('HLEN', presence)
  if n == 0 then redis.call('ZREM', active, room) else redis.call('ZADD', active, n, room) end
end
`;

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
