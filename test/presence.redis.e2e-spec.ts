import type { PresenceFrame } from '../src/index.js';
import { ChatTestClient } from '../src/testing/index.js';
import { describeWithRedis, REDIS_URL, uniquePrefix } from './redis-test-support.js';
import { AppProcess, buildApp } from './support/app-process.js';
import { drain, presenceOf } from './support/frames.js';

describeWithRedis('Presence on two app processes on one Redis (node dist/main.js)', () => {
  const apps: AppProcess[] = [];
  const clients: ChatTestClient[] = [];
  let urls: string[];

  beforeAll(async () => {
    await buildApp();
    const env = { CHANNEL_LAYER: 'redis', REDIS_URL, REDIS_PREFIX: uniquePrefix('presence') };
    apps.push(new AppProcess(env), new AppProcess(env));
    urls = await Promise.all(apps.map((app) => app.listening()));
  });

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.close()));
    for (const app of apps) app.kill();
  });

  async function join(app: number, name: string): Promise<ChatTestClient> {
    const url = urls[app].replace('/ws/socket-server/', `/ws/chat/lobby/?name=${name}`);
    const client = await ChatTestClient.connect(url);
    clients.push(client);
    return client.greeted();
  }

  /** The presence frames `client` gets until the room has been quiet for a while. */
  async function presenceFrames(client: ChatTestClient): Promise<PresenceFrame[]> {
    const frames = await drain(client, 600);
    return frames.filter((frame): frame is PresenceFrame => frame.type === 'presence');
  }

  it('sends each member one frame per change, though both processes saw it', async () => {
    const obs = await join(0, 'obs');
    await presenceOf(obs, ['obs']);
    // Two joins within one presence delay, one on each process: each process announces its own.
    const [cat, dog] = await Promise.all([join(0, 'cat'), join(1, 'dog')]);
    const told = { type: 'presence', room: 'lobby', users: ['cat', 'dog', 'obs'], count: 3 };
    for (const client of [obs, cat, dog]) {
      await expect(presenceFrames(client)).resolves.toEqual([told]);
    }

    await cat.close();
    const left = { ...told, users: ['dog', 'obs'], count: 2 };
    for (const client of [obs, dog]) {
      await expect(presenceFrames(client)).resolves.toEqual([left]);
    }
  });
});
