import { ChatFrame } from '../src/index.js';
import { ChatTestClient } from '../src/testing/index.js';
import { describeWithRedis, REDIS_URL, uniquePrefix } from './redis-test-support.js';
import { AppProcess, buildApp } from './support/app-process.js';
import { echoOf, presenceOf } from './support/frames.js';

type Chat = Required<ChatFrame>;

describeWithRedis('Two app processes on Redis, one of them SIGKILLed (node dist/main.js)', () => {
  const apps: AppProcess[] = [];
  const clients: ChatTestClient[] = [];

  beforeAll(async () => {
    await buildApp();
  });

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.close()));
    for (const app of apps) app.kill();
  });

  it('keeps the survivor serving, loses nothing acknowledged, and drops the dead from presence', async () => {
    const env = {
      CHANNEL_LAYER: 'redis',
      REDIS_URL,
      REDIS_PREFIX: uniquePrefix('kill'),
      RATE_LIMIT_PER_SECOND: '0',
    };
    const a = new AppProcess(env);
    const b = new AppProcess(env);
    apps.push(a, b);
    const [urlA, urlB] = await Promise.all([a.listening(), b.listening()]);
    const room = (url: string, name: string): string =>
      url.replace('/ws/socket-server/', `/ws/chat/kill/?name=${name}`);
    // Clients on the timeout of the wait below: presence may take up to 25 s to converge.
    const join = async (url: string): Promise<ChatTestClient> => {
      const client = await ChatTestClient.connect(url, { timeoutMs: 30_000 });
      clients.push(client);
      return client.greeted();
    };
    const ann = await join(room(urlA, 'ann'));
    const bob = await join(room(urlB, 'bob'));
    await presenceOf(ann, ['ann', 'bob']);

    // Acknowledged: each sender saw its own message come back through the room.
    bob.send({ message: 'said on B' });
    ann.send({ message: 'said on A' });
    await Promise.all([echoOf(bob, 'said on B'), echoOf(ann, 'said on A')]);

    b.kill();
    await expect(b.exited).resolves.toMatchObject({ signal: 'SIGKILL' });

    // The survivor keeps serving: old and new clients chat, and a late joiner gets the history.
    const cid = await join(room(urlA, 'cid'));
    ann.send({ message: 'after the kill' });
    await expect(cid.nextOfType('chat')).resolves.toMatchObject({ message: 'after the kill' });
    const late = await ChatTestClient.connect(room(urlA, 'late'));
    clients.push(late);
    await late.greeted();
    const history = await late.nextOfType<{ type: 'history'; messages: Chat[] }>('history');
    expect(history.messages.map((m) => m.message)).toEqual(
      expect.arrayContaining(['said on B', 'said on A', 'after the kill']),
    );

    // Presence converges: bob's process died without goodbye; within 30 s he is gone.
    const started = Date.now();
    await presenceOf(ann, ['ann', 'cid', 'late']);
    expect(Date.now() - started).toBeLessThan(30_000);
  }, 60_000);
});
