import { ChannelMessage } from './channel-layer.js';
import { toJson } from './frozen-message.js';
import { randomName } from './random-name.js';
import { GROUP_ADD_FUNCTION, GROUP_SEND_FUNCTION } from './redis-scripts.js';
import { LuaScript, NOW } from '../redis/lua-script.js';

// Lua that a caller runs inside the Redis layer's own scripts, so that what it writes and what the
// layer does happen at once, in one round trip. `RedisRoomState` is the caller: a chat record's
// append travels with its publish, a join's presence and history read with its group add.

/**
 * Lua that `RedisChannelLayer.groupSendWith` runs in the same script as a `groupSend`, before the
 * publish: the step's writes and the publish happen at once, with no other command of any process
 * between them. `RedisRoomState` appends a chat record this way, so every receiver gets a room's
 * records in id order whichever process sent them.
 *
 * The Lua defines `step(keys, argv)`, which returns a list whose first item is a string: the value
 * of the message's field that the step fills in (the record's id), needing no JSON escaping; the
 * whole message's JSON when the call names no field (a presence announcement); or `false` when
 * nothing is to be sent (the step found its work done already: a resend, a presence told). It
 * may use `now`, Redis' clock in ms. KEYS and ARGV start with the step's own keys and args; the
 * layer's follow them.
 */
export class GroupSendStep {
  /** The whole script: the clock, the step, the layer's send, and what joins them. */
  readonly script: LuaScript;

  constructor(lua: string) {
    // The layer's KEYS and ARGV come last: the group's members key; its topic, then the
    // message's JSON before and after the field's value.
    this.script = new LuaScript(`${NOW}${lua}${GROUP_SEND_FUNCTION}
local done = step(KEYS, ARGV)
if not done[1] then return {{}, done} end
local n = #ARGV
return {group_send(KEYS[#KEYS], ARGV[n - 2], ARGV[n - 1] .. done[1] .. ARGV[n]), done}
`);
  }
}

/** One run of a {@link GroupSendStep}, as `RedisChannelLayer.groupSendWith` takes it. */
export interface GroupSendStepCall {
  readonly step: GroupSendStep;
  /**
   * The Redis server and database holding `keys` (`host:port/db`, as the caller's connection is
   * configured): the step runs with the group's keys, so only where those live too.
   */
  readonly server: string;
  readonly keys: readonly string[];
  readonly args: ReadonlyArray<string | number>;
  /**
   * The message's top-level field that carries the step's first result; none when that result is
   * the whole message's JSON (then the message given to `groupSendWith` is not sent).
   */
  readonly field?: string;
}

/**
 * Lua that `RedisChannelLayer.groupAddWith` runs in the same script as a `groupAdd` of one or
 * more channels, after it: the memberships and the step's writes and reads happen at once, in one
 * round trip. `RedisRoomState` registers joining sockets in presence and reads the history each
 * resumes from this way: any message published after the script reaches them, any before it is
 * in what was read.
 *
 * The Lua defines `step(keys, argv)`, whose result the script returns. KEYS and ARGV start with
 * the step's own; the layer's follow them.
 */
export class GroupAddStep {
  readonly script: LuaScript;

  constructor(lua: string) {
    // The layer's KEYS and ARGV come last: the group's members key; the memberships' lifetime in
    // ms, the channels, then their number.
    this.script = new LuaScript(`${NOW}${lua}${GROUP_ADD_FUNCTION}
local n = #ARGV
local channels = tonumber(ARGV[n])
group_add(KEYS[#KEYS], tonumber(ARGV[n - channels - 1]), {unpack(ARGV, n - channels, n - 1)})
return step(KEYS, ARGV)
`);
  }
}

/**
 * Lua that `RedisChannelLayer.groupDiscardWith` runs in the same script as a `groupDiscard` of
 * one or more channels, after it: `RedisRoomState` takes leaving sockets out of presence this
 * way, one command for the group and presence of a crowd. The Lua defines `step(keys, argv)`, as
 * a {@link GroupAddStep}'s does.
 */
export class GroupDiscardStep {
  readonly script: LuaScript;

  constructor(lua: string) {
    // The layer's KEYS and ARGV come last: the group's members key; the channels, then their
    // number.
    this.script = new LuaScript(`${lua}
local n = #ARGV
local channels = tonumber(ARGV[n])
redis.call('ZREM', KEYS[#KEYS], unpack(ARGV, n - channels, n - 1))
return step(KEYS, ARGV)
`);
  }
}

/**
 * One run of a {@link GroupAddStep} or {@link GroupDiscardStep}, as `RedisChannelLayer`'s
 * `groupAddWith` and `groupDiscardWith` take it.
 */
export interface GroupStepCall<Step extends GroupAddStep | GroupDiscardStep> {
  readonly step: Step;
  /** As {@link GroupSendStepCall.server}: where `keys` live. */
  readonly server: string;
  readonly keys: readonly string[];
  readonly args: ReadonlyArray<string | number>;
}

/** One run of a {@link GroupAddStep}. */
export type GroupAddStepCall = GroupStepCall<GroupAddStep>;
/** One run of a {@link GroupDiscardStep}. */
export type GroupDiscardStepCall = GroupStepCall<GroupDiscardStep>;

/**
 * `message` as JSON, cut around the value of its string field `field`: the part up to the
 * value's opening quote and the part from its closing quote. A random mark stands in for the
 * value, so nothing else in the message can be taken for it.
 */
export function jsonAround(message: ChannelMessage, field: string): [head: string, tail: string] {
  for (;;) {
    const mark = randomName(16);
    const json = toJson({ ...message, [field]: mark });
    const at = json.indexOf(mark);
    if (at !== -1 && json.lastIndexOf(mark) === at) {
      return [json.slice(0, at), json.slice(at + mark.length)];
    }
  }
}
