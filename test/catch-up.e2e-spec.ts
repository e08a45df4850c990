import {
  CHAT_MESSAGE,
  ChatRooms,
  DeliveryGapListener,
  InMemoryChannelLayer,
  RoomState,
} from '../src/index.js';
import type { ChatTestClient } from '../src/testing/index.js';
import { RunningChatApp, startChatApp } from './support/chat-app.js';

/**
 * The in-memory layer, which never loses a delivery, with its gap listeners at hand: the test
 * tells the gateway of a gap as the Redis layer would (test/redis-faults.e2e-spec.ts has a real
 * one), and stores or sends what that gap would have left missing or late.
 */
class GapLayer extends InMemoryChannelLayer {
  readonly listeners: DeliveryGapListener[] = [];
  override onDeliveryGap(listener: DeliveryGapListener): void {
    this.listeners.push(listener);
  }
  lost(room: string): void {
    for (const listener of this.listeners) listener.lost([room]);
  }
  back(room: string): void {
    for (const listener of this.listeners) listener.back([room]);
  }
}

/** `maxHeldMessages` of the app under test. */
const HELD = 20;

describe('A room after a gap in its deliveries', () => {
  let chat: RunningChatApp;
  let layer: GapLayer;

  beforeAll(async () => {
    chat = await startChatApp({
      layer: () => new GapLayer(),
      rateLimit: false,
      maxHeldMessages: HELD,
    });
    layer = chat.layer as GapLayer;
  });

  afterAll(async () => {
    await chat?.close();
  });

  async function chatFrames(client: ChatTestClient, count: number): Promise<string[]> {
    const texts: string[] = [];
    while (texts.length < count) {
      texts.push((await client.nextOfType<{ type: 'chat'; message: string }>('chat')).message);
    }
    await client.expectSilence(200, 'chat');
    return texts;
  }

  it('holds what arrives during the gap, then gives what was missed and what came, once', async () => {
    const rooms = chat.app.get(RoomState);
    const listener = await chat.join('/ws/chat/gap/?name=listener');
    const sender = await chat.join('/ws/chat/gap/?name=sender');
    sender.send({ message: 'before' });
    await expect(chatFrames(listener, 1)).resolves.toEqual(['before']);

    layer.lost('gap');
    // Arrives while the gap lasts: held, not given ahead of what the gap lost.
    sender.send({ message: 'during', id: 'd' });
    await expect(sender.nextOfType('ack')).resolves.toMatchObject({ id: 'd' });
    await listener.expectSilence(200, 'chat');
    // Stored and never delivered here: what the gap lost.
    await rooms.append('gap', { message: 'lost', user: 'elsewhere' });
    layer.back('gap');
    await expect(chatFrames(listener, 2)).resolves.toEqual(['during', 'lost']);

    // A record the catch-up read whose live copy comes after it: given once.
    layer.lost('gap');
    const late = await rooms.append('gap', { message: 'late', user: 'elsewhere' });
    layer.back('gap');
    await expect(chatFrames(listener, 1)).resolves.toEqual(['late']);
    await layer.groupSend('gap', { ...late, type: CHAT_MESSAGE });
    await listener.expectSilence(200, 'chat');
    sender.send({ message: 'after' });
    await expect(chatFrames(listener, 1)).resolves.toEqual(['after']);
  });

  it('holds at most maxHeldMessages for a socket, refusing the rest as a full channel', async () => {
    const listener = await chat.join('/ws/chat/held/?name=listener');
    const skipped = layer.stats.groupSendSkippedFull;
    layer.lost('held');
    const emit = chat.app.get(ChatRooms);
    for (let n = 0; n < HELD + 5; n++) await emit.emit('held', { type: 'note', n });
    expect(layer.stats.groupSendSkippedFull - skipped).toBe(5);
    layer.back('held');
    for (let n = 0; n < HELD; n++) {
      await expect(listener.nextOfType('note')).resolves.toEqual({ type: 'note', n });
    }
    await listener.expectSilence(200, 'note');
  });

  it('catches up a socket that was joining when the gap began', async () => {
    const rooms = chat.app.get(RoomState);
    layer.lost('joining');
    const joiner = await chat.join('/ws/chat/joining/?name=joiner');
    await rooms.append('joining', { message: 'lost', user: 'elsewhere' });
    await joiner.expectSilence(200, 'chat');
    layer.back('joining');
    await expect(chatFrames(joiner, 1)).resolves.toEqual(['lost']);
  });
});
