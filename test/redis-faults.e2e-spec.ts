import { RedisChannelLayer } from '../src/index.js';
import { ChatTestClient } from '../src/testing/index.js';
import { RedisServerProcess, describeWithRedisServer, uniquePrefix } from './redis-test-support.js';
import { RunningChatApp, startChatApp } from './support/chat-app.js';

/** The sender's answer to its own message: its echo or an error frame (presence skipped). */
async function replyTo(client: ChatTestClient): Promise<{ type: string; code?: string }> {
  for (;;) {
    const frame = await client.next<{ type: string; code?: string }>();
    if (frame.type === 'chat' || frame.type === 'error') return frame;
  }
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
    for (let attempt = 0; ; attempt++) {
      sender.send({ message: `after ${attempt}` });
      const reply = await replyTo(sender);
      if (reply.type === 'chat') break;
      expect(reply).toMatchObject({ code: 'layer_unavailable' });
      if (Date.now() > deadline) throw new Error('fan-out did not resume within 15 s');
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    await expect(listener.nextOfType('chat')).resolves.toMatchObject({
      message: expect.stringMatching(/^after \d+$/),
    });
    // A new socket joins, too.
    const late = await ChatTestClient.connect(chat.wsUrl('/ws/chat/faults/?name=late'));
    await expect(late.greeted()).resolves.toBe(late);
    await late.close();
  }, 40_000);
});
