import { LuaScript, NOW } from '../redis/lua-script.js';

/**
 * The Redis side of `RedisChannelLayer`: its key layout and the Lua scripts that keep each
 * operation atomic and one round trip, timed by Redis' clock (`NOW`).
 *
 * Keys (`P` is the layer's prefix; a process-local channel `a.b!c` is queued under `a.b!`):
 * - `P:q:<name>`  LIST of queued messages, each `<expires ms>:<local part>:<payload>`. Capacity is
 *   its length once expired heads are dropped; its TTL is `expiry`, so an unread queue vanishes.
 * - `P:g:<group>`  ZSET of the group's ordinary members, scored by membership expiry (ms).
 * - `P:gl:<group>` ZSET of its process-local members, likewise. `groupSend` never reads it: the
 *   processes owning those channels get the message by pub/sub and fan out themselves.
 *
 * Pub/sub channels (not keys: they live on the shard of the name they carry):
 * - `P:gs:<group>` one publish per `groupSend`; the payload, serialized (and sealed) once.
 * - `P:in:<name>`  `w` when `P:q:<name>` got a message; `a|d <group> <channel>` when another
 *   process added a process-local channel to a group or discarded it.
 *
 * On a Redis Cluster `P` is `<prefix>:<tag>`, the hash tag of the name's bucket (`{b3.0}`): every
 * key and shard channel of a script is then in one slot, and the channels are SPUBLISHed and
 * SSUBSCRIBEd. On plain Redis servers `P` is the prefix, as it always was.
 */
export class LayerKeys {
  /** `P`: the prefix, and on a cluster the bucket's hash tag after it. */
  readonly prefix: string;

  constructor(prefix: string, tag = '') {
    this.prefix = tag === '' ? prefix : `${prefix}:${tag}`;
  }

  /** `P:q:<name>`: a channel's queue, or the shared queue of process-local names under `x.y!`. */
  queue(name: string): string {
    return `${this.prefix}:q:${name}`;
  }

  /** `P:g:<group>`: the group's ordinary members. */
  members(group: string): string {
    return `${this.prefix}:g:${group}`;
  }

  /** `P:gl:<group>`: the group's process-local members. */
  localMembers(group: string): string {
    return `${this.prefix}:gl:${group}`;
  }

  /** `P:gs:<group>`: the topic a groupSend publishes on. */
  groupTopic(group: string): string {
    return `${this.prefix}:gs:${group}`;
  }

  /** `P:in:<name>`: the topic that wakes the readers of `P:q:<name>`. */
  inboxTopic(name: string): string {
    return `${this.prefix}:in:${name}`;
  }
}

/**
 * Queues one payload on each of KEYS unless that queue is full. ARGV: expiry ms, payload, then per
 * key: capacity, local part, wake topic. Returns how many queues were full.
 */
export const PUSH = new LuaScript(`${NOW}
local ttl = tonumber(ARGV[1])
local full = 0
for i, key in ipairs(KEYS) do
  local at = 2 + (i - 1) * 3
  -- Expired messages hold capacity until dropped; they are oldest, so at the head.
  while true do
    local head = redis.call('LINDEX', key, 0)
    if not head then break end
    local expires = tonumber(string.match(head, '^%d+'))
    if expires and expires > now then break end
    redis.call('LPOP', key)
  end
  if redis.call('LLEN', key) >= tonumber(ARGV[at + 1]) then
    full = full + 1
  else
    redis.call('RPUSH', key, string.format('%d:%s:', now + ttl, ARGV[at + 2]) .. ARGV[2])
    redis.call('PEXPIRE', key, ttl)
    redis.call('PUBLISH', ARGV[at + 3], 'w')
  end
end
return full
`);

/** Takes up to ARGV[1] unexpired messages from the head of KEYS[1], dropping expired ones. */
export const POP = new LuaScript(`${NOW}
local want = tonumber(ARGV[1])
local taken = {}
while #taken < want do
  local batch = redis.call('LPOP', KEYS[1], want - #taken)
  if not batch then break end
  for _, entry in ipairs(batch) do
    local expires = tonumber(string.match(entry, '^%d+'))
    if expires and expires > now then taken[#taken + 1] = entry end
  end
end
return taken
`);

/**
 * Puts messages taken by `POP` back at the head of KEYS[1], in their order, when the receive they
 * were taken for was aborted meanwhile. ARGV: wake topic, then the messages.
 */
export const UNPOP = new LuaScript(`${NOW}
local last = 0
for i = #ARGV, 2, -1 do
  redis.call('LPUSH', KEYS[1], ARGV[i])
  local expires = tonumber(string.match(ARGV[i], '^%d+')) or 0
  if expires > last then last = expires end
end
if last > now and redis.call('PTTL', KEYS[1]) < last - now then
  redis.call('PEXPIRE', KEYS[1], last - now)
end
redis.call('PUBLISH', ARGV[1], 'w')
return 1
`);

/**
 * Lua defining `group_add(members, ttl, channels)`, after `NOW`: adds or refreshes the channels
 * as members of the group ZSET for `ttl` ms. {@link GROUP_ADD} and every `GroupAddStep`'s script
 * add with it.
 */
export const GROUP_ADD_FUNCTION = `
local function group_add(members_key, ttl, channels)
  local args = {}
  for _, channel in ipairs(channels) do
    args[#args + 1] = now + ttl
    args[#args + 1] = channel
  end
  redis.call('ZADD', members_key, unpack(args))
  redis.call('PEXPIRE', members_key, ttl)
end
`;

/** Adds or refreshes ARGV[2..] as members of the group ZSET KEYS[1] for ARGV[1] ms. */
export const GROUP_ADD = new LuaScript(`${NOW}${GROUP_ADD_FUNCTION}
group_add(KEYS[1], tonumber(ARGV[1]), {unpack(ARGV, 2)})
return 1
`);

/**
 * Lua defining `group_send(members, topic, payload)`, after `NOW`: drops the expired ordinary
 * members of a group, publishes the payload once on its topic and returns the live ordinary
 * members. {@link GROUP_SEND} and every `GroupSendStep`'s script send with it, so both send alike.
 */
export const GROUP_SEND_FUNCTION = `
local function group_send(members_key, topic, payload)
  redis.call('ZREMRANGEBYSCORE', members_key, '-inf', now)
  local members = redis.call('ZRANGE', members_key, 0, -1)
  redis.call('PUBLISH', topic, payload)
  return members
end
`;

/**
 * The whole of a `groupSend` for process-local members, whatever their number: one publish of
 * ARGV[2] on topic ARGV[1]. Returns the live ordinary members of KEYS[1], which have queues to
 * push to (on whichever shard holds them).
 */
export const GROUP_SEND = new LuaScript(`${NOW}${GROUP_SEND_FUNCTION}
return group_send(KEYS[1], ARGV[1], ARGV[2])
`);

/** The live members of a group: KEYS[1] (ordinary) and KEYS[2] (process-local). */
export const GROUP_CHANNELS = new LuaScript(`${NOW}
local after = string.format('(%d', now)
local live = redis.call('ZRANGEBYSCORE', KEYS[1], after, '+inf')
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], after, '+inf')) do
  live[#live + 1] = member
end
return live
`);
