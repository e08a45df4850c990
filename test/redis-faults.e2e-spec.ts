import { RedisChannelLayer, RedisRoomState } from '../src/index.js';
import { ChatTestClient } from '../src/testing/index.js';
import { RedisServerProcess, describeWithRedisServer, uniquePrefix } from './redis-test-support.js';
import { RunningChatApp, startChatApp } from './support/chat-app.js';
import { sample, scrape } from './support/metrics.js';
import { deafen, onRedis } from './support/redis-processes.js';

/** The sender's answer to its message `text`: its echo or an error frame (others skipped). */
async function replyTo(
  client: ChatTestClient,
  text: string,
): Promise<{ type: string; code?: string }> {
  for (;;) {
    const frame = await client.next<{ type: string; code?: string; message?: string }>();
    if ((frame.type === 'chat' && frame.message === text) || frame.type === 'error') return frame;
  }
}

/** The messages of the chat frames `client` gets, up to and with `last`. */
async function chatUpTo(client: ChatTestClient, last: string): Promise<string[]> {
  const texts: string[] = [];
  while (texts.at(-1) !== last) {
    texts.push((await client.nextOfType<{ type: 'chat'; message: string }>('chat')).message);
  }
  return texts;
}

describeWithRedisServer('The chat when Redis goes away mid-traffic and comes back', () => {
  let redis: RedisServerProcess;
  let chat: RunningChatApp;

  beforeAll(async () => {
    redis = await RedisServerProcess.start();
    const prefix = uniquePrefix('faults');
    chat = await startChatApp({
      layer: () => new RedisChannelLayer({ hosts: redis.url, prefix }),
      rateLimit: false,
    });
  });

  afterAll(async () => {
    await chat?.close();
    await redis?.stop();
  });

  it('answers sends with layer_unavailable while down, stays up, and resumes fan-out', async () => {
    const [sender, listener] = await Promise.all([
      chat.join('/ws/chat/faults/?name=sender'),
      chat.join('/ws/chat/faults/?name=listener'),
    ]);
    sender.send({ message: 'before' });
    await expect(listener.nextOfType('chat')).resolves.toMatchObject({ message: 'before' });

    await redis.stop();
    sender.send({ message: 'during' });
    await expect(sender.nextOfType('error')).resolves.toMatchObject({
      type: 'error',
      code: 'layer_unavailable',
    });
    await listener.expectSilence(200, 'chat');
    // The HTTP side still answers while Redis is away.
    expect((await fetch(`${chat.httpUrl}/api/rooms`)).status).toBe(200);

    await redis.restart();
    // Memberships come back without a restart of the app: send until a message goes through.
    const deadline = Date.now() + 15_000;
    const tried: string[] = [];
    for (;;) {
      tried.push(`after ${tried.length}`);
      sender.send({ message: tried.at(-1) });
      const reply = await replyTo(sender, tried.at(-1) as string);
      if (reply.type === 'chat') break;
      expect(reply).toMatchObject({ code: 'layer_unavailable' });
      if (Date.now() > deadline) throw new Error('fan-out did not resume within 15 s');
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    // The in-memory room store kept every message whose send then failed (a store apart from
    // the layer appends first): the listener, caught up when the layer heard the room again,
    // gets the room's history since what it saw, in order and each once, as a new socket would.
    await expect(chatUpTo(listener, tried.at(-1) as string)).resolves.toEqual(['during', ...tried]);
    await listener.expectSilence(200, 'chat');
    // A new socket joins, too.
    const late = await ChatTestClient.connect(chat.wsUrl('/ws/chat/faults/?name=late'));
    await expect(late.greeted()).resolves.toBe(late);
    await late.close();
  }, 40_000);
});

describeWithRedisServer('Two chat apps when one loses its subscriptions for a while', () => {
  let redis: RedisServerProcess;
  const apps: RunningChatApp[] = [];
  const acl = (...args: string[]) => onRedis(redis.port, (r) => r.call('ACL', ...args));

  beforeAll(async () => {
    redis = await RedisServerProcess.start();
    // `b` connects as a user whose pub/sub rights a test can take away and give back: Redis 7
    // then drops b's subscribers, and their SUBSCRIBE answers NOPERM until the rights are back,
    // while b's commands and the other app go on.
    await acl('SETUSER', 'b', 'on', '>secret', '~*', '&*', '+@all');
    const prefix = uniquePrefix('gap');
    for (const url of [redis.url, `redis://b:secret@127.0.0.1:${redis.port}`]) {
      apps.push(
        await startChatApp({
          layer: () => new RedisChannelLayer({ hosts: url, prefix }),
          roomState: () => new RedisRoomState({ hosts: url, prefix }),
          rateLimit: false,
        }),
      );
    }
  });

  afterAll(async () => {
    await Promise.all(apps.map((app) => app.close()));
    await redis?.stop();
  });

  it("gives the other app's sockets what was sent while it could not hear the room", async () => {
    const [a, b] = apps;
    const sender = await a.join('/ws/chat/gap/?name=sender');
    const listener = await b.join('/ws/chat/gap/?name=listener');
    sender.send({ message: 'before' });
    await expect(listener.nextOfType('chat')).resolves.toMatchObject({ message: 'before' });

    // b's subscriber is back without its subscriptions: a send now is stored and acknowledged,
    // and does not reach b live.
    await deafen(redis.port, 'b');
    for (const [i, text] of ['during 1', 'during 2'].entries()) {
      sender.send({ message: text, id: `m-${i + 1}` });
      await expect(sender.nextOfType('ack')).resolves.toMatchObject({ id: `m-${i + 1}` });
    }
    await listener.expectSilence(300, 'chat');

    await acl('SETUSER', 'b', 'allchannels');
    // Sends go on while b subscribes again and catches up: some reach b live before it has
    // caught up, some are read from history and come live again a moment after.
    const sent: string[] = [];
    for (const started = Date.now(); Date.now() - started < 1500;) {
      sent.push(`live ${sent.length}`);
      sender.send({ message: sent.at(-1), id: `l-${sent.length}` });
      await expect(sender.nextOfType('ack')).resolves.toMatchObject({ id: `l-${sent.length}` });
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    // Everything acknowledged, in order, each once.
    await expect(chatUpTo(listener, sent.at(-1) as string)).resolves.toEqual([
      'during 1',
      'during 2',
      ...sent,
    ]);
    await listener.expectSilence(300, 'chat');
    const metrics = await scrape(b.httpUrl);
    expect(sample(metrics, 'chat_caught_up_messages_total')).toBeGreaterThanOrEqual(2);
    expect(sample(metrics, 'chat_catch_ups_failed_total')).toBe(0);
  }, 30_000);
});
