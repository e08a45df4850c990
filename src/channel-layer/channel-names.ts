import { InvalidChannelLayerInput } from './channel-layer.errors.js';

/** Channels' MAX_NAME_LENGTH: a name must be strictly shorter than this. */
export const MAX_NAME_LENGTH = 100;

const GROUP_NAME = /^[A-Za-z0-9\-_.]+$/;
const CHANNEL_NAME = /^[A-Za-z0-9\-_.]+(![A-Za-z0-9\-_.]*)?$/;

const GROUP_RULE = `ASCII letters, digits, '-', '_' or '.', shorter than ${MAX_NAME_LENGTH} characters`;
const CHANNEL_RULE = `${GROUP_RULE}, with at most one '!' marking a process-local channel`;

/** Throws `InvalidChannelLayerInput` naming the rule unless `name` is a valid group name. */
export function assertGroupName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || name.length >= MAX_NAME_LENGTH || !GROUP_NAME.test(name)) {
    throw new InvalidChannelLayerInput(
      `invalid group name ${JSON.stringify(name)}: use ${GROUP_RULE}`,
    );
  }
}

/** Throws `InvalidChannelLayerInput` naming the rule unless `name` is a valid channel name. */
export function assertChannelName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || name.length >= MAX_NAME_LENGTH || !CHANNEL_NAME.test(name)) {
    throw new InvalidChannelLayerInput(
      `invalid channel name ${JSON.stringify(name)}: use ${CHANNEL_RULE}`,
    );
  }
}

/** True for group names; never throws. */
export function isValidGroupName(name: unknown): name is string {
  return typeof name === 'string' && name.length < MAX_NAME_LENGTH && GROUP_NAME.test(name);
}

/**
 * The part of a process-local name up to and including the `!` (`specific.abc!xyz` →
 * `specific.abc!`); other names are returned whole. The ASGI spec applies capacity to this part.
 */
export function nonLocalName(channel: string): string {
  const bang = channel.indexOf('!');
  return bang === -1 ? channel : channel.slice(0, bang + 1);
}

/**
 * A message must be a plain object whose `type` names a handler; like Channels' consumers we
 * refuse types that would reach private handlers (leading `_` or `.`).
 */
export function assertMessage(message: unknown): asserts message is { type: string } {
  if (typeof message !== 'object' || message === null || Array.isArray(message)) {
    throw new InvalidChannelLayerInput('a message must be a plain object');
  }
  const type = (message as { type?: unknown }).type;
  if (typeof type !== 'string' || type.length === 0) {
    throw new InvalidChannelLayerInput('a message needs a non-empty string "type"');
  }
  if (type[0] === '_' || type[0] === '.') {
    throw new InvalidChannelLayerInput(
      `invalid message type ${JSON.stringify(type)}: it must not start with '_' or '.'`,
    );
  }
}

/** A compiled `channelCapacity` table: first matching pattern wins, as in Channels. */
export type CapacityTable = ReadonlyArray<readonly [RegExp, number]>;

/** Compiles Channels-style glob patterns (`*`, `?`) or regular expressions to a lookup table. */
export function compileCapacities(
  patterns: Readonly<Record<string, number>> | ReadonlyArray<readonly [RegExp | string, number]>,
): CapacityTable {
  const entries = Array.isArray(patterns)
    ? (patterns as ReadonlyArray<readonly [RegExp | string, number]>)
    : Object.entries(patterns);
  return entries.map(([pattern, capacity]) => {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new InvalidChannelLayerInput(`capacity for ${String(pattern)} must be an integer >= 1`);
    }
    return [typeof pattern === 'string' ? globToRegExp(pattern) : pattern, capacity] as const;
  });
}

/** The capacity of `channel`: matched on its non-local part, else `fallback`. */
export function capacityOf(table: CapacityTable, channel: string, fallback: number): number {
  const name = nonLocalName(channel);
  for (const [pattern, capacity] of table) {
    if (pattern.test(name)) return capacity;
  }
  return fallback;
}

function globToRegExp(glob: string): RegExp {
  const source = glob
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${source}$`);
}

/** A duration option in seconds: positive and finite, or `InvalidChannelLayerInput`. */
export function positiveSeconds(value: number, name: string): number {
  if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value)) {
    throw new InvalidChannelLayerInput(`${name} must be a positive number of seconds`);
  }
  return value;
}
