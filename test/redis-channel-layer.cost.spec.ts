import { Redis } from 'ioredis';
import { RedisChannelLayer } from '../src/channel-layer/index.js';
import { waitFor } from './channel-layer.conformance.js';
import { RedisServerProcess, describeWithRedisServer, uniquePrefix } from './redis-test-support.js';

describeWithRedisServer('RedisChannelLayer groupSend cost', () => {
  let server: RedisServerProcess;
  let stats: Redis;
  let sender: RedisChannelLayer;
  let processes: RedisChannelLayer[];
  let prefix: string;

  beforeAll(async () => {
    // A private server: nobody else's commands in its counters.
    server = await RedisServerProcess.start();
    stats = new Redis(server.url);
    prefix = uniquePrefix();
    sender = new RedisChannelLayer({ hosts: server.url, prefix });
    processes = [0, 1].map(() => new RedisChannelLayer({ hosts: server.url, prefix }));
  });

  afterAll(async () => {
    await Promise.all([sender, ...processes].map((layer) => layer.close()));
    await stats.quit();
    await server.stop();
  });

  /** Attached members spread over two processes, as sockets of one room would be. */
  async function roomOf(group: string, size: number): Promise<number[]> {
    const counts = new Array<number>(size).fill(0);
    for (let i = 0; i < size; i++) {
      const layer = processes[i % 2];
      const channel = await layer.newChannel('chat');
      layer.attach(channel, () => void counts[i]++);
      await layer.groupAdd(group, channel);
    }
    return counts;
  }

  /** Redis commands (including those run inside scripts) that `sends` groupSends cost. */
  async function commandsFor(
    group: string,
    counts: number[],
    sends: number,
  ): Promise<Map<string, number>> {
    await sender.groupSend(group, { type: 'warm.up' }); // loads the script, subscriptions settle
    await waitFor(() => counts.every((count) => count === 1));
    await stats.config('RESETSTAT');
    for (let i = 0; i < sends; i++) await sender.groupSend(group, { type: 'chat.message', i });
    await waitFor(() => counts.every((count) => count === 1 + sends));
    return commandStats(await stats.info('commandstats'));
  }

  it('costs the same Redis commands for a room of 500 as for a room of 5', async () => {
    const big = await commandsFor('big', await roomOf('big', 500), 10);
    const small = await commandsFor('small', await roomOf('small', 5), 10);
    expect(big).toEqual(small);
    // One script call and one publish per groupSend: the message crossed Redis once.
    expect(big.get('evalsha')).toBe(10);
    expect(big.get('publish')).toBe(10);
    const perSend = [...big.values()].reduce((sum, calls) => sum + calls, 0) / 10;
    expect(perSend).toBeLessThanOrEqual(5);
  });

  it('attaches a channel at no Redis command once its process has caught up', async () => {
    const layer = new RedisChannelLayer({ hosts: server.url, prefix });
    try {
      // The first attach looks in the queue (its send is delivered through it or a wake).
      const first = await layer.newChannel('chat');
      const got: unknown[] = [];
      layer.attach(first, (message) => void got.push(message.text));
      await sender.send(first, { type: 'test.message', text: 'one' });
      await waitFor(() => got.length === 1);
      const second = await layer.newChannel('chat');
      await stats.config('RESETSTAT');
      layer.attach(second, (message) => void got.push(message.text));
      await sender.send(second, { type: 'test.message', text: 'two' });
      await waitFor(() => got.length === 2);
      // The send's script and the POP its wake made; none for the attach.
      expect(commandStats(await stats.info('commandstats')).get('evalsha')).toBe(2);
      expect(got).toEqual(['one', 'two']);
    } finally {
      await layer.close();
    }
  });
});

/** `cmdstat_<name>:calls=<n>,...` lines → name → calls, leaving out the measuring itself. */
function commandStats(info: string): Map<string, number> {
  const calls = new Map<string, number>();
  for (const match of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    if (/^(info|config)/.test(match[1])) continue;
    calls.set(match[1], Number(match[2]));
  }
  return calls;
}
