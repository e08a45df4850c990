import type { ChannelLayer, ChannelMessage } from '../../src/channel-layer/index.js';
import { waitFor } from '../channel-layer.conformance.js';

/**
 * `b` hears `room`: a channel of its own, attached and in the room's group, that has already
 * heard a `groupSend` from `a`. `got` collects the `text` of what it hears.
 */
export async function hearingRoom(
  a: ChannelLayer,
  b: ChannelLayer,
  room: string,
): Promise<{ inB: string; got: unknown[] }> {
  const got: unknown[] = [];
  const inB = await b.newChannel();
  b.attach(inB, (message: ChannelMessage) => void got.push(message.text));
  await b.groupAdd(room, inB);
  await a.groupSend(room, { type: 'test.message', text: 'before' });
  await waitFor(() => got.includes('before'));
  return { inB, got };
}
