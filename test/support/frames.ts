import type { ChatFrame, PresenceFrame } from '../../src/index.js';
import type { ChatTestClient } from '../../src/testing/index.js';

/** A frame as tests look at it; the protocol only ever adds fields and frame types. */
export type Frame = { type: string; code?: string; message?: string; count?: number };

/**
 * The next frame of one of `types`, skipping any other (presence, history, ...): tests of one
 * feature stay true when the protocol gains frame types.
 */
export async function nextOf(client: ChatTestClient, ...types: string[]): Promise<Frame> {
  for (;;) {
    const frame = await client.next<Frame>();
    if (types.includes(frame.type)) return frame;
  }
}

/** The next `count` frames of `types`, in order. */
export async function takeOf(
  client: ChatTestClient,
  count: number,
  ...types: string[]
): Promise<Frame[]> {
  const frames: Frame[] = [];
  for (let i = 0; i < count; i++) frames.push(await nextOf(client, ...types));
  return frames;
}

/** Resolves if no frame of `types` arrives within `ms` (others are taken and ignored). */
export async function expectNoneOf(
  client: ChatTestClient,
  ms: number,
  ...types: string[]
): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) return;
    const frame = await client.next<Frame>(left).catch(() => undefined);
    if (frame === undefined) return;
    if (types.includes(frame.type)) throw new Error(`unexpected frame ${JSON.stringify(frame)}`);
  }
}

/** Every frame that arrives until `quietMs` pass without one. */
export async function drain(client: ChatTestClient, quietMs = 200): Promise<Frame[]> {
  const frames: Frame[] = [];
  for (;;) {
    const frame = await client.next<Frame>(quietMs).catch(() => undefined);
    if (frame === undefined) return frames;
    frames.push(frame);
  }
}

/** The next presence frame listing exactly `users`; earlier ones may still be in flight. */
export async function presenceOf(client: ChatTestClient, users: string[]): Promise<PresenceFrame> {
  for (;;) {
    const frame = await client.nextOfType<PresenceFrame>('presence');
    if (JSON.stringify(frame.users) === JSON.stringify(users)) return frame;
  }
}

/** The chat frame carrying `text`, once `client` has seen it come back through the room. */
export async function echoOf(client: ChatTestClient, text: string): Promise<Required<ChatFrame>> {
  for (;;) {
    const frame = await client.nextOfType<Required<ChatFrame>>('chat');
    if (frame.message === text) return frame;
  }
}
