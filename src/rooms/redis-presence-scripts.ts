import { GroupAddStep, GroupDiscardStep, GroupSendStep } from '../channel-layer/redis-steps.js';
import { LuaScript, NOW } from '../redis/lua-script.js';

// The presence of `RedisRoomState`: its keys are laid out in `redis-room-keys.ts`.

/**
 * Sets a room's member count in `R:active`, or removes the room once empty; counts a change of its
 * presence in `R:pv:<room>` (`v`), which the announcement compares with the version it last told
 * (`a`). An empty room's versions go with it: the next join is a change to tell.
 */
const COUNT = `
local function count(presence, active, version, room, changed)
  local n = redis.call('HLEN', presence)
  if n == 0 then
    redis.call('ZREM', active, room)
    redis.call('DEL', version)
  else
    redis.call('ZADD', active, n, room)
    if changed then redis.call('HINCRBY', version, 'v', 1) end
  end
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
 * Lua defining `add(keys, room, field, user)`, which adds (or renames) a member and returns
 * whether it was new and whether presence changed, leaving the room's count to `count`, and
 * `join(keys, room, field, user)`, which does both and returns 1 when the member is new. keys:
 * presence, active, node index, versions.
 */
export const JOIN_FUNCTION = `${COUNT}
local function add(keys, room, field, user)
  local before = redis.call('HGET', keys[1], field)
  redis.call('HSET', keys[1], field, user)
  if not before then redis.call('HINCRBY', keys[3], room, 1) end
  return not before, before ~= user
end
local function join(keys, room, field, user)
  local added, changed = add(keys, room, field, user)
  count(keys[1], keys[2], keys[4], room, changed)
  return added and 1 or 0
end
`;

/**
 * Adds (or renames) a member. KEYS: presence, active, node index, versions. ARGV: room, field,
 * user. Returns 1 when the member is new.
 */
export const JOIN = new LuaScript(`${JOIN_FUNCTION}
return join(KEYS, ARGV[1], ARGV[2], ARGV[3])
`);

/**
 * Removes a member. KEYS: presence, active, node index, versions. ARGV: room, field. Returns 1 if
 * it was there.
 */
export const LEAVE = new LuaScript(`${COUNT}
local removed = redis.call('HDEL', KEYS[1], ARGV[2])
if removed == 1 and redis.call('HINCRBY', KEYS[3], ARGV[1], -1) <= 0 then
  redis.call('HDEL', KEYS[3], ARGV[1])
end
count(KEYS[1], KEYS[2], KEYS[4], ARGV[1], removed == 1)
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
  count(presence, KEYS[2], ARGV[1] .. ':pv:' .. room, room, removed > 0)
  if removed > 0 then changed[#changed + 1] = room end
end
if redis.call('EXISTS', index) == 0 then redis.call('ZREM', KEYS[1], node) end
return {node, changed}
`);

/**
 * Makes one room's presence hold exactly this process's members: drops its fields not listed,
 * adds the listed ones. KEYS: presence, active, node index, versions. ARGV: room, node, then
 * member, user pairs. Returns 1 when the room's presence changed.
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
count(KEYS[1], KEYS[2], KEYS[4], room, changed == 1)
return changed
`);

/**
 * Joins of one room as a channel layer's `GroupAddStep`: the sockets' channels join the room's
 * group, their members the room's presence, and the history each resumes from is read, at once.
 * KEYS: as `JOIN`, then the room's stream. ARGV: room, how many records at most, the number of
 * joins, then for each its field, user and the range's start (`-`, or `(<id>` for the records
 * after it). Returns `{reads, history of each join}`: `reads` the entries read, newest first, for
 * each distinct start, and each join's index in it; joins from the same point share one read.
 */
export const ENTER = new GroupAddStep(`${JOIN_FUNCTION}
local function step(keys, argv)
  local room, limit, joins = argv[1], tonumber(argv[2]), tonumber(argv[3])
  local changed = false
  local reads, readOf, which = {}, {}, {}
  for i = 0, joins - 1 do
    local at = 4 + 3 * i
    local _, renamed = add(keys, room, argv[at], argv[at + 1])
    changed = changed or renamed
    local start = argv[at + 2]
    if not readOf[start] then
      reads[#reads + 1] = limit == 0 and {} or redis.call('XREVRANGE', keys[5], '+', start, 'COUNT', limit)
      readOf[start] = #reads
    end
    which[i + 1] = readOf[start]
  end
  count(keys[1], keys[2], keys[4], room, changed)
  return {reads, which}
end
`);

/**
 * Leaves of one room as a channel layer's `GroupDiscardStep`: the sockets' channels leave the
 * room's group and their members its presence at once. KEYS: as `LEAVE`. ARGV: room, the number
 * of leaves, then the members' fields. Returns how many were there.
 */
export const EXIT = new GroupDiscardStep(`${COUNT}
local function step(keys, argv)
  local room = argv[1]
  local removed = redis.call('HDEL', keys[1], unpack(argv, 3, 2 + tonumber(argv[2])))
  if removed > 0 and redis.call('HINCRBY', keys[3], room, -removed) <= 0 then
    redis.call('HDEL', keys[3], room)
  end
  count(keys[1], keys[2], keys[4], room, removed > 0)
  return removed
end
`);

/**
 * The room's presence announcement, unless announced since its last change: marks its version
 * told and returns `{json}`, the frame's JSON (ARGV[2], the JSON of its other fields without the
 * closing brace, then `users`, the first ARGV[1] names sorted by their bytes and each once, and
 * their `count`), or `{false}`. KEYS: presence, versions.
 */
const ANNOUNCE_FUNCTION = `
local function step(keys, argv)
  local versions = redis.call('HMGET', keys[2], 'v', 'a')
  if not versions[1] or versions[1] == versions[2] then return {false} end
  redis.call('HSET', keys[2], 'a', versions[1])
  local seen, users = {}, {}
  for _, name in ipairs(redis.call('HVALS', keys[1])) do
    if not seen[name] then
      seen[name] = true
      users[#users + 1] = name
    end
  end
  table.sort(users)
  local shown = {}
  for i = 1, math.min(#users, tonumber(argv[1])) do shown[i] = users[i] end
  local list = #shown == 0 and '[]' or cjson.encode(shown)
  return {argv[2] .. ',"users":' .. list .. ',"count":' .. #users .. '}'}
end
`;

/** The announcement as a channel layer's `GroupSendStep`: checked, marked and published at once. */
export const ANNOUNCE = new GroupSendStep(ANNOUNCE_FUNCTION);

/** The announcement's check and mark alone: the frame's JSON for the caller to send, or nil. */
export const CLAIM_ANNOUNCEMENT = new LuaScript(`${ANNOUNCE_FUNCTION}
return step(KEYS, ARGV)[1]
`);
