import { Redis } from 'ioredis';
import {
  ChatFrame,
  HistoryFrame,
  RedisChannelLayer,
  RedisRoomState,
  compareRecordIds,
} from '../src/index.js';
import { ChatTestClient } from '../src/testing/index.js';
import { REDIS_URL, describeWithRedis, uniquePrefix } from './redis-test-support.js';
import { RunningChatApp, startChatApp } from './support/chat-app.js';
import { presenceOf } from './support/frames.js';

type Chat = Required<ChatFrame>;

describeWithRedis('Two app processes sharing one Redis: rooms, presence and history', () => {
  // One deployment: both apps share the prefix, for the layer and the rooms alike.
  const prefix = uniquePrefix('cluster');
  let a: RunningChatApp;
  let b: RunningChatApp;

  const startProcess = (): Promise<RunningChatApp> =>
    startChatApp({
      layer: () => new RedisChannelLayer({ hosts: REDIS_URL, prefix }),
      roomState: () => new RedisRoomState({ hosts: REDIS_URL, prefix, historyLimit: 5 }),
      presenceDelayMs: 20,
      rateLimit: false,
    });

  beforeAll(async () => {
    [a, b] = await Promise.all([startProcess(), startProcess()]);
  });

  afterAll(async () => {
    await Promise.all([a?.close(), b?.close()]);
    const redis = new Redis(REDIS_URL);
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      if (keys.length > 0) await redis.unlink(...keys);
      cursor = next;
    } while (cursor !== '0');
    await redis.quit();
  });

  /** Joins `room` on `app` as `name` (plus `query`), and takes the history frame. */
  async function enter(
    app: RunningChatApp,
    room: string,
    name: string,
    query = '',
  ): Promise<{ client: ChatTestClient; history: HistoryFrame }> {
    const client = await app.join(`/ws/chat/${room}/?name=${name}${query}`);
    const history = await client.next<HistoryFrame>();
    expect(history.type).toBe('history');
    return { client, history };
  }

  async function chats(client: ChatTestClient, count: number): Promise<Chat[]> {
    const got: Chat[] = [];
    while (got.length < count) got.push(await client.nextOfType<Chat>('chat'));
    return got;
  }

  it('delivers each message once to both processes, in each sender’s order', async () => {
    const { client: ann } = await enter(a, 'across', 'ann');
    const { client: bob } = await enter(b, 'across', 'bob');
    await presenceOf(ann, ['ann', 'bob']);
    for (let i = 0; i < 20; i++) {
      ann.send({ message: `ann ${i}` });
      bob.send({ message: `bob ${i}` });
    }
    for (const client of [ann, bob]) {
      const got = await chats(client, 40);
      const from = (user: string): string[] =>
        got.filter((frame) => frame.user === user).map((frame) => frame.message);
      expect(from('ann')).toEqual(Array.from({ length: 20 }, (_, i) => `ann ${i}`));
      expect(from('bob')).toEqual(Array.from({ length: 20 }, (_, i) => `bob ${i}`));
      expect(new Set(got.map((frame) => frame.id)).size).toBe(40);
      await client.expectSilence(150, 'chat');
    }
    await Promise.all([ann.close(), bob.close()]);
  });

  it('shows people on both processes in presence, and drops them when they leave', async () => {
    const { client: ann } = await enter(a, 'people', 'ann');
    const { client: bob } = await enter(b, 'people', 'bob');
    const { client: bob2 } = await enter(a, 'people', 'bob');
    await expect(presenceOf(ann, ['ann', 'bob'])).resolves.toMatchObject({ count: 2 });
    await presenceOf(bob, ['ann', 'bob']);
    const listed = (await (await fetch(`${b.httpUrl}/api/rooms`)).json()) as unknown[];
    expect(listed).toContainEqual({ room: 'people', members: 3 });
    await ann.close();
    await presenceOf(bob, ['bob']);
    await Promise.all([bob.close(), bob2.close()]);
  });

  it('gives a late joiner on one process the history written through the other', async () => {
    const { client: talker } = await enter(a, 'late', 'talker');
    for (let i = 1; i <= 7; i++) talker.send({ message: `m${i}` });
    const sent = await chats(talker, 7);
    const { client: late, history } = await enter(b, 'late', 'late');
    expect(history.messages).toEqual(sent.slice(2));
    await Promise.all([talker.close(), late.close()]);
  });

  it('resumes with ?since= on the other process: every missed message, once', async () => {
    const { client: talker } = await enter(a, 'resume', 'talker');
    const { client: reader } = await enter(b, 'resume', 'reader');
    talker.send({ message: 'seen' });
    const seen = await reader.nextOfType<Chat>('chat');
    reader.socket.terminate();
    await reader.closed;
    for (const message of ['missed 1', 'missed 2', 'missed 3']) talker.send({ message });
    const echoed = await chats(talker, 4);
    // Reconnects through the other process, as behind a load balancer.
    const { client: back, history } = await enter(a, 'resume', 'reader', `&since=${seen.id}`);
    expect(history.messages).toEqual(echoed.slice(1));
    expect(history.messages.every((m) => compareRecordIds(m.id as string, seen.id) > 0)).toBe(true);
    talker.send({ message: 'live again' });
    await expect(back.nextOfType('chat')).resolves.toMatchObject({ message: 'live again' });
    await back.expectSilence(150, 'chat');
    await Promise.all([talker.close(), back.close()]);
  });
});
