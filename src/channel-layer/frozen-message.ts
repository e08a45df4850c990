import { ChannelMessage } from './channel-layer';
import { InvalidChannelLayerInput } from './channel-layer.errors';
import { assertMessage } from './channel-names';

/** One deep copy, frozen: the sender may reuse its object, receivers can't alter each other's. */
export function freezeCopy(message: ChannelMessage): ChannelMessage {
  assertMessage(message);
  let copy: ChannelMessage;
  try {
    copy = structuredClone(message);
  } catch (error) {
    throw new InvalidChannelLayerInput(
      `a message must hold only cloneable data: ${(error as Error).message}`,
    );
  }
  return deepFreeze(copy);
}

/** Freezes `value` and everything it holds, in place; every receiver may then share it. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key]);
  }
  return value;
}
