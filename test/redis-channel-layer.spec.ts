import { Redis } from 'ioredis';
import {
  ChannelFull,
  ChannelLayerClosed,
  ChannelMessage,
  GroupDiscardStep,
  InvalidChannelLayerInput,
  RedisChannelLayer,
  RedisChannelLayerOptions,
} from '../src/channel-layer/index.js';
import { describeChannelLayerConformance, waitFor } from './channel-layer.conformance.js';
import { REDIS_URL, describeWithRedis, uniquePrefix } from './redis-test-support.js';

const msg = (text: string): ChannelMessage => ({ type: 'test.message', text });

describeWithRedis('RedisChannelLayer on a real Redis', () => {
  describeChannelLayerConformance('RedisChannelLayer', {
    // Each layer gets its own prefix: tests never see each other's keys.
    create: (options?: RedisChannelLayerOptions) =>
      new RedisChannelLayer({ ...options, hosts: REDIS_URL, prefix: uniquePrefix() }),
    // Expiry is kept by Redis, on its own clock: time has to really pass.
    advance: (seconds) => new Promise((resolve) => setTimeout(resolve, seconds * 1000)),
    expiry: 1,
  });

  let redis: Redis;
  const open: RedisChannelLayer[] = [];
  /** A layer as one app process would have it; layers sharing a prefix are one deployment. */
  const processOf = (prefix: string, options: RedisChannelLayerOptions = {}): RedisChannelLayer => {
    const layer = new RedisChannelLayer({ hosts: REDIS_URL, prefix, ...options });
    open.push(layer);
    return layer;
  };

  beforeAll(() => {
    redis = new Redis(REDIS_URL);
  });

  afterEach(async () => {
    await Promise.all(open.splice(0).map((layer) => layer.close()));
  });

  afterAll(async () => {
    await redis.quit();
  });

  describe('across processes sharing a prefix', () => {
    let prefix: string;
    let a: RedisChannelLayer;
    let b: RedisChannelLayer;

    beforeEach(() => {
      prefix = uniquePrefix();
      a = processOf(prefix);
      b = processOf(prefix);
    });

    it('delivers a direct send to a channel attached in another process', async () => {
      const channel = await a.newChannel();
      const got: unknown[] = [];
      a.attach(channel, (message) => void got.push(message.text));
      await b.send(channel, msg('one'));
      await b.send(channel, msg('two'));
      await waitFor(() => got.length === 2);
      expect(got).toEqual(['one', 'two']);
    });

    it('gives a channel attached later what was sent to it while nothing here listened', async () => {
      // b owns the channel but has nothing attached: it lets the send's wake pass, so the attach
      // that comes later must look in the queue itself.
      const warm = await b.newChannel();
      let detach = (): void => undefined;
      const warmed = new Promise((resolve) => (detach = b.attach(warm, resolve)));
      await a.send(warm, msg('warm'));
      await warmed;
      detach();
      const later = await b.newChannel();
      await a.send(later, msg('queued'));
      await new Promise((resolve) => setTimeout(resolve, 100)); // the wake reaches b, unused
      const heard = new Promise((resolve) =>
        b.attach(later, (message) => void resolve(message.text)),
      );
      await expect(heard).resolves.toBe('queued');
    });

    it("counts another process's channels on their part up to the bang", async () => {
      const owner = processOf(prefix, { capacity: 2 });
      const sender = processOf(prefix, { capacity: 2 });
      const first = await owner.newChannel();
      const second = await owner.newChannel();
      await sender.send(first, msg('1'));
      await sender.send(second, msg('2'));
      await expect(sender.send(first, msg('3'))).rejects.toBeInstanceOf(ChannelFull);
      await expect(owner.receive(second)).resolves.toEqual(msg('2'));
      await expect(owner.receive(first)).resolves.toEqual(msg('1'));
    });

    it('fans a groupSend out to every process once, in the order each sender sent', async () => {
      const got = new Map<string, unknown[]>();
      for (const layer of [a, b, a, b]) {
        const channel = await layer.newChannel('chat');
        got.set(channel, []);
        layer.attach(channel, (message) => void got.get(channel)?.push(message.text));
        await layer.groupAdd('room', channel);
      }
      for (let i = 0; i < 10; i++) await (i % 2 ? a : b).groupSend('room', msg(`m${i}`));
      await waitFor(() => [...got.values()].every((texts) => texts.length === 10));
      const expected = Array.from({ length: 10 }, (_, i) => `m${i}`);
      for (const texts of got.values()) expect(texts).toEqual(expected);
    });

    it("fans out to a process's channel that another process added to the group", async () => {
      const channel = await a.newChannel();
      const got: unknown[] = [];
      a.attach(channel, (message) => void got.push(message.text));
      await b.groupAdd('room', channel);
      // The owner hears of the membership by pub/sub; wait until it fans out.
      await waitFor(async () => {
        await b.groupSend('room', msg('hello'));
        await new Promise((resolve) => setTimeout(resolve, 20));
        return got.length > 0;
      });
      const before = got.length;
      await b.groupDiscard('room', channel);
      await new Promise((resolve) => setTimeout(resolve, 50));
      await b.groupSend('room', msg('after leaving'));
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(got.length).toBe(before);
      expect(got).not.toContain('after leaving');
    });

    it('shares an ordinary channel as a work queue: any process may receive', async () => {
      await a.send('jobs', msg('job 1'));
      const waiting = b.receive('jobs');
      await a.send('jobs', msg('job 2'));
      await expect(waiting).resolves.toEqual(msg('job 1'));
      await expect(a.receive('jobs')).resolves.toEqual(msg('job 2'));
    });

    it("keeps the live process's attached members and lets a dead one's expire", async () => {
      const live = processOf(prefix, { groupExpiry: 1 });
      const dead = processOf(prefix, { groupExpiry: 1 });
      const alive = await live.newChannel();
      const gone = await dead.newChannel();
      live.attach(alive, () => undefined);
      dead.attach(gone, () => undefined);
      await live.groupAdd('room', alive);
      await dead.groupAdd('room', gone);
      // A process that dies doesn't leave its groups; it just stops refreshing.
      await dead.close();
      await new Promise((resolve) => setTimeout(resolve, 1600));
      const observer = processOf(prefix);
      expect(await observer.groupChannels('room')).toEqual([alive]);
    });
  });

  describe('keys', () => {
    it('keeps everything under its prefix, and flush deletes only that', async () => {
      const prefix = uniquePrefix();
      const mine = processOf(prefix);
      // A prefix that starts with ours: a careless `MATCH prefix*` would take its keys too.
      const theirs = processOf(`${prefix}2`);
      for (const layer of [mine, theirs]) {
        await layer.send('chan', msg('queued'));
        await layer.groupAdd('room', 'chan');
        await layer.groupAdd('room', await layer.newChannel());
      }
      const mineKeys = await redis.keys(`${prefixOf(mine)}:*`);
      expect(mineKeys.sort()).toEqual(
        [
          `${prefixOf(mine)}:g:room`,
          `${prefixOf(mine)}:gl:room`,
          `${prefixOf(mine)}:q:chan`,
        ].sort(),
      );
      await mine.flush();
      expect(await redis.keys(`${prefixOf(mine)}:*`)).toEqual([]);
      expect(await redis.keys(`${prefixOf(theirs)}:*`)).toHaveLength(3);
      await expect(theirs.receive('chan')).resolves.toEqual(msg('queued'));
    });

    it('gives queues and groups TTLs, so abandoned data vanishes', async () => {
      const layer = processOf(uniquePrefix(), { expiry: 30, groupExpiry: 600 });
      await layer.send('chan', msg('queued'));
      await layer.groupAdd('room', 'chan');
      const prefix = prefixOf(layer);
      const queueTtl = await redis.pttl(`${prefix}:q:chan`);
      const groupTtl = await redis.pttl(`${prefix}:g:room`);
      expect(queueTtl).toBeGreaterThan(29_000);
      expect(queueTtl).toBeLessThanOrEqual(30_000);
      expect(groupTtl).toBeGreaterThan(599_000);
      expect(groupTtl).toBeLessThanOrEqual(600_000);
    });
  });

  describe('encryption at rest', () => {
    it('stores sealed messages: the plaintext never reaches Redis', async () => {
      const layer = processOf(uniquePrefix(), { symmetricEncryptionKeys: ['s3cret'] });
      await layer.send('chan', msg('top secret text'));
      await layer.groupAdd('room', 'member');
      await layer.groupSend('room', msg('top secret text'));
      const [queued] = await redis.lrange(`${prefixOf(layer)}:q:chan`, 0, -1);
      const [grouped] = await redis.lrange(`${prefixOf(layer)}:q:member`, 0, -1);
      for (const raw of [queued, grouped]) {
        expect(raw).toBeDefined();
        expect(raw).not.toContain('top secret');
        expect(raw).not.toContain('test.message');
      }
      await expect(layer.receive('chan')).resolves.toEqual(msg('top secret text'));
    });

    it('reads what was sealed with an older key after rotation', async () => {
      const prefix = uniquePrefix();
      const before = processOf(prefix, { symmetricEncryptionKeys: ['old key'] });
      const after = processOf(prefix, { symmetricEncryptionKeys: ['new key', 'old key'] });
      await before.send('chan', msg('from before'));
      await after.send('chan', msg('from after'));
      await expect(after.receive('chan')).resolves.toEqual(msg('from before'));
      await expect(after.receive('chan')).resolves.toEqual(msg('from after'));
    });

    it('fans out sealed group messages to attached channels in other processes', async () => {
      const prefix = uniquePrefix();
      const keys = { symmetricEncryptionKeys: ['k'] };
      const [sender, owner] = [processOf(prefix, keys), processOf(prefix, keys)];
      const channel = await owner.newChannel();
      const got: unknown[] = [];
      owner.attach(channel, (message) => void got.push(message.text));
      await owner.groupAdd('room', channel);
      await sender.groupSend('room', msg('sealed fan-out'));
      await waitFor(() => got.length === 1);
      expect(got).toEqual(['sealed fan-out']);
    });

    it('drops, rather than delivers, what no key of its own opens', async () => {
      const prefix = uniquePrefix();
      const stranger = processOf(prefix, { symmetricEncryptionKeys: ['other'] });
      const reader = processOf(prefix, { symmetricEncryptionKeys: ['mine'] });
      await stranger.send('chan', msg('unreadable'));
      await reader.send('chan', msg('readable'));
      await expect(reader.receive('chan')).resolves.toEqual(msg('readable'));
    });
  });

  describe('connections', () => {
    it('leaves clients it was given open, closes its own, and is safe to close twice', async () => {
      const given = new Redis(REDIS_URL);
      try {
        const layer = new RedisChannelLayer({ hosts: [given], prefix: uniquePrefix() });
        await layer.send('chan', msg('via your client'));
        const pending = layer.receive('never');
        await layer.close();
        await expect(pending).rejects.toBeInstanceOf(ChannelLayerClosed);
        await expect(layer.close()).resolves.toBeUndefined();
        await expect(layer.send('chan', msg('late'))).rejects.toBeInstanceOf(ChannelLayerClosed);
        expect(given.status).toBe('ready');
        await expect(given.ping()).resolves.toBe('PONG');
      } finally {
        await given.quit();
      }
    });

    it('answers ping while Redis does, and rejects it once closed', async () => {
      const layer = processOf(uniquePrefix());
      await expect(layer.ping()).resolves.toBeUndefined();
      await layer.close();
      await expect(layer.ping()).rejects.toBeInstanceOf(ChannelLayerClosed);
    });

    it('refuses options that would make it misbehave', () => {
      expect(() => new RedisChannelLayer({ capacity: 0 })).toThrow(InvalidChannelLayerInput);
      expect(() => new RedisChannelLayer({ expiry: 0 })).toThrow(/expiry/);
      expect(() => new RedisChannelLayer({ prefix: 'a*b' })).toThrow(/prefix/);
      expect(() => new RedisChannelLayer({ symmetricEncryptionKeys: [] })).toThrow(/Keys/);
      expect(() => new RedisChannelLayer({ hosts: ' ' })).toThrow(/hosts/);
      expect(() => new RedisChannelLayer({ hosts: [{ keyPrefix: 'x:' }] })).toThrow(/keyPrefix/);
    });

    it('refuses a group step of no channels or of more than Lua can take', async () => {
      const layer = processOf(uniquePrefix());
      const step = new GroupDiscardStep('local function step() return 1 end');
      const call = { step, server: '127.0.0.1:6379/0', keys: [], args: [] };
      const many = Array.from({ length: 1001 }, (_, i) => `chat.x!${i}`);
      await expect(layer.groupDiscardWith('room', [], call)).rejects.toThrow(/1 to 1000/);
      await expect(layer.groupDiscardWith('room', many, call)).rejects.toThrow(
        InvalidChannelLayerInput,
      );
    });
  });
});

/** The prefix a layer was given (tests peek at raw keys). */
function prefixOf(layer: RedisChannelLayer): string {
  return (layer as unknown as { prefix: string }).prefix;
}
