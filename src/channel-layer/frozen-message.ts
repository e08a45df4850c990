import { ChannelMessage } from './channel-layer.js';
import { InvalidChannelLayerInput } from './channel-layer.errors.js';
import { assertMessage } from './channel-names.js';

/**
 * A message as JSON, checked first. Every layer carries messages as JSON (Redis has to), so a
 * message means the same on each: a Date arrives as its ISO string, an undefined field not at all.
 */
export function toJson(message: ChannelMessage): string {
  assertMessage(message);
  try {
    return JSON.stringify(message);
  } catch (error) {
    // A BigInt or a cycle.
    throw new InvalidChannelLayerInput(
      `a message must hold only JSON data: ${(error as Error).message}`,
    );
  }
}

/** A received message, frozen: every receiver may share it. */
export function fromJson(json: string): ChannelMessage {
  return deepFreeze(JSON.parse(json) as ChannelMessage);
}

/** One deep copy, frozen: the sender may reuse its object, receivers can't alter each other's. */
export function freezeCopy(message: ChannelMessage): ChannelMessage {
  return fromJson(toJson(message));
}

/** Freezes `value` and everything it holds, in place. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key]);
  }
  return value;
}
