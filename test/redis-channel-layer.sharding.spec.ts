import { Redis } from 'ioredis';
import { ChannelMessage, RedisChannelLayer, nonLocalName } from '../src/channel-layer/index.js';
import { consistentHash, crc32 } from '../src/redis/consistent-hash.js';
import { waitFor } from './channel-layer.conformance.js';
import { RedisServerProcess, describeWithRedisServer, uniquePrefix } from './redis-test-support.js';

const msg = (text: string): ChannelMessage => ({ type: 'test.message', text });

describe('consistentHash', () => {
  it("places names as channels_redis' consistent_hash does", () => {
    // Values from Python: binascii.crc32(name) and channels_redis' ring arithmetic.
    expect(crc32('room')).toBe(1923043739);
    expect(crc32('specific.abc!')).toBe(4124610115);
    const places = (name: string): number[] => [2, 3, 5].map((n) => consistentHash(name, n));
    expect(places('room')).toEqual([0, 0, 0]);
    expect(places('lobby')).toEqual([0, 1, 1]);
    expect(places('specific.abc!')).toEqual([1, 2, 4]);
    expect(places('asgi')).toEqual([1, 2, 4]);
    expect(consistentHash('anything', 1)).toBe(0);
  });
});

describeWithRedisServer('RedisChannelLayer sharded over two Redis servers', () => {
  const servers: RedisServerProcess[] = [];
  const raw: Redis[] = [];
  const open: RedisChannelLayer[] = [];
  let prefix: string;

  const layer = (): RedisChannelLayer => {
    // Every process lists the same hosts in the same order.
    const made = new RedisChannelLayer({ hosts: servers.map((server) => server.url), prefix });
    open.push(made);
    return made;
  };
  const keysOn = (shard: number): Promise<string[]> => raw[shard].keys(`${prefix}:*`);

  beforeAll(async () => {
    servers.push(await RedisServerProcess.start(), await RedisServerProcess.start());
    raw.push(...servers.map((server) => new Redis(server.url)));
  });

  beforeEach(() => {
    prefix = uniquePrefix();
  });

  afterEach(async () => {
    await Promise.all(open.splice(0).map((each) => each.close()));
  });

  afterAll(async () => {
    await Promise.all(raw.map((client) => client.quit()));
    await Promise.all(servers.map((server) => server.stop()));
  });

  it("routes a process-local channel by its part up to the '!', on send and on receive", async () => {
    const owner = layer();
    const sender = layer();
    const channels: string[] = [];
    for (let i = 0; i < 24; i++) channels.push(await owner.newChannel());
    const home = consistentHash(nonLocalName(channels[0]), 2);
    // The test only proves something if hashing whole names would scatter these channels over
    // both shards (what channels_redis does on send).
    const byFullName = new Set(channels.map((channel) => consistentHash(channel, 2)));
    expect(byFullName).toEqual(new Set([0, 1]));

    for (const channel of channels) await sender.send(channel, msg(channel));
    expect(await keysOn(home)).toEqual([`${prefix}:q:${nonLocalName(channels[0])}`]);
    expect(await keysOn(1 - home)).toEqual([]);
    for (const channel of channels)
      await expect(owner.receive(channel)).resolves.toEqual(msg(channel));
  });

  it('spreads groups and channels over both shards and still delivers everywhere', async () => {
    const a = layer();
    const b = layer();
    const groups = Array.from({ length: 12 }, (_, i) => `room-${i}`);
    const plain = Array.from({ length: 12 }, (_, i) => `worker-${i}`);
    const got = new Map<string, unknown[]>();
    for (const group of groups) {
      for (const process of [a, b]) {
        const channel = await process.newChannel('chat');
        got.set(channel, []);
        process.attach(channel, (message) => void got.get(channel)?.push(message.text));
        await process.groupAdd(group, channel);
      }
      for (const channel of plain) await a.groupAdd(group, channel);
    }
    for (const group of groups) await b.groupSend(group, msg(group));

    await waitFor(() => [...got.values()].every((texts) => texts.length === 1));
    for (const worker of plain) {
      const received: unknown[] = [];
      for (let i = 0; i < groups.length; i++) received.push((await a.receive(worker)).text);
      expect(received).toEqual(groups);
    }
    // Both servers held a share of the groups and queues.
    expect((await keysOn(0)).length).toBeGreaterThan(0);
    expect((await keysOn(1)).length).toBeGreaterThan(0);
    const placed = groups.map((group) => consistentHash(group, 2));
    for (const [index, group] of groups.entries()) {
      expect(await raw[placed[index]].exists(`${prefix}:gl:${group}`)).toBe(1);
      expect(await raw[1 - placed[index]].exists(`${prefix}:gl:${group}`)).toBe(0);
    }
  });
});
