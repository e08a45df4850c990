import { Redis } from 'ioredis';
import {
  ChannelLayerUnavailable,
  RedisChannelLayer,
  RedisRoomState,
  RedisRoomStateOptions,
  compareRecordIds,
  recordBytes,
} from '../src/index.js';
import { consistentHash } from '../src/redis/consistent-hash.js';
import { waitFor } from './channel-layer.conformance.js';
import {
  REDIS_URL,
  RedisServerProcess,
  describeWithRedis,
  describeWithRedisServer,
  uniquePrefix,
} from './redis-test-support.js';
import { describeRoomStateConformance } from './room-state.conformance.js';

/** Short intervals, so a process's death is noticed within a second. */
const FAST: RedisRoomStateOptions = {
  heartbeatInterval: 0.1,
  presenceTimeout: 0.5,
  sweepInterval: 0.1,
};

/** Stores as app processes would have them; stores sharing a prefix are one deployment. */
function deployment(hosts: string | Redis[] = REDIS_URL) {
  const open: RedisRoomState[] = [];
  return {
    open,
    processOf(prefix: string, options: RedisRoomStateOptions = {}): RedisRoomState {
      const store = new RedisRoomState({ hosts, prefix, ...FAST, ...options });
      open.push(store);
      return store;
    },
    async closeAll(): Promise<void> {
      await Promise.all(open.splice(0).map((store) => store.close()));
    },
  };
}

/** Rooms whose presence changed, as the gateway would hear of them. */
function listen(store: RedisRoomState): string[] {
  const heard: string[] = [];
  store.onPresenceChange((room) => heard.push(room));
  return heard;
}

describeWithRedis('RedisRoomState on a real Redis', () => {
  // Every store of this run lives under `base`; afterAll deletes what they left.
  const base = uniquePrefix('rooms');
  let count = 0;
  const freshPrefix = (): string => `${base}-${count++}`;
  let redis: Redis;
  const stores = deployment();

  beforeAll(() => {
    redis = new Redis(REDIS_URL);
  });

  afterEach(() => stores.closeAll());

  afterAll(async () => {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${base}*`, 'COUNT', 1000);
      if (keys.length > 0) await redis.unlink(...keys);
      cursor = next;
    } while (cursor !== '0');
    await redis.quit();
  });

  /** The prefix each conformance store was made with, for the layer paired with it. */
  const prefixOf = new WeakMap<object, string>();
  describeRoomStateConformance('RedisRoomState', {
    create: (options) => {
      const prefix = freshPrefix();
      const store = new RedisRoomState({ ...options, hosts: REDIS_URL, prefix });
      prefixOf.set(store, prefix);
      return store;
    },
    layerFor: (store) => new RedisChannelLayer({ hosts: REDIS_URL, prefix: prefixOf.get(store) }),
  });

  describe('in Redis', () => {
    it('keeps a room’s history in one stream under the prefix, a record and its size an entry, with a TTL', async () => {
      const prefix = freshPrefix();
      const store = stores.processOf(prefix, { historyLimit: 3, historyExpiry: 60 });
      for (let i = 0; i < 5; i++) await store.append('r', { message: `m${i}`, user: 'ann' });
      const newestSent = { message: 'm4', user: 'ann' };
      const key = `${prefix}:rooms:h:r`;
      await expect(redis.type(key)).resolves.toBe('stream');
      await expect(redis.xlen(key)).resolves.toBe(3);
      const [[id, fields]] = await redis.xrevrange(key, '+', '-', 'COUNT', 1);
      expect(fields).toEqual(['r', expect.any(String), 'b', String(recordBytes(newestSent))]);
      expect(JSON.parse(fields[1])).toEqual({ message: 'm4', user: 'ann', ts: expect.any(Number) });
      const [newest] = await store.history('r', undefined).then((records) => records.slice(-1));
      expect(newest.id).toBe(id);
      const ttl = await redis.pttl(key);
      expect(ttl).toBeGreaterThan(50_000);
      expect(ttl).toBeLessThanOrEqual(60_000);
    });

    it('keeps each room’s byte count and the shard’s total exact, with the streams’ TTL', async () => {
      const prefix = freshPrefix();
      const store = stores.processOf(prefix, { historyBytes: 1000, historyExpiry: 60 });
      const sent = Array.from({ length: 12 }, (_, i) => ({
        message: 'x'.repeat(20 + 37 * i),
        user: i % 2 === 0 ? 'ann' : 'zoë',
      }));
      for (const message of sent) await store.append('r', message);
      await store.append('s', sent[0]);
      const kept = await store.history('r');
      const bytes = kept.reduce((sum, record) => sum + recordBytes(record), 0);
      expect(bytes).toBeLessThanOrEqual(1000);
      await expect(redis.hgetall(`${prefix}:rooms:sizes`)).resolves.toEqual({
        r: String(bytes),
        s: String(recordBytes(sent[0])),
      });
      await expect(redis.get(`${prefix}:rooms:bytes`)).resolves.toBe(
        String(bytes + recordBytes(sent[0])),
      );
      for (const key of ['sizes', 'bytes']) {
        const ttl = await redis.pttl(`${prefix}:rooms:${key}`);
        expect(ttl).toBeGreaterThan(50_000);
        expect(ttl).toBeLessThanOrEqual(60_000);
      }
      expect(store.stats.historyRecordsTrimmed).toBe(sent.length - kept.length);
    });

    it('counts a stream with no recorded size once, then keeps it, and deletes its old count', async () => {
      const prefix = freshPrefix();
      const store = stores.processOf(prefix, { historyBytes: 1000 });
      for (let i = 0; i < 3; i++) await store.append('r', { message: `m${i}`, user: 'ann' });
      // As a store that kept a count per room in `R:hb:<room>` left it.
      await redis.hdel(`${prefix}:rooms:sizes`, 'r');
      await redis.set(`${prefix}:rooms:bytes`, 0);
      await redis.set(`${prefix}:rooms:hb:r`, 3 * (2 + 3 + 80));
      await store.append('r', { message: 'm3', user: 'ann' });
      await expect(redis.hget(`${prefix}:rooms:sizes`, 'r')).resolves.toBe(String(4 * 85));
      await expect(redis.get(`${prefix}:rooms:bytes`)).resolves.toBe(String(4 * 85));
      await expect(redis.exists(`${prefix}:rooms:hb:r`)).resolves.toBe(0);
      await store.append('r', { message: 'm4', user: 'ann' });
      await expect(redis.get(`${prefix}:rooms:bytes`)).resolves.toBe(String(5 * 85));
    });

    it('counts the shard’s total again from the room sizes when it is missing', async () => {
      const prefix = freshPrefix();
      const store = stores.processOf(prefix);
      await store.append('a', { message: 'm1', user: 'ann' });
      await store.append('b', { message: 'm1', user: 'ann' });
      await redis.del(`${prefix}:rooms:bytes`);
      await store.append('c', { message: 'm1', user: 'ann' });
      await expect(redis.get(`${prefix}:rooms:bytes`)).resolves.toBe(String(3 * 85));
    });

    it('deletes an evicted room’s keys and keeps at most maxRooms rooms in its index', async () => {
      const prefix = freshPrefix();
      const store = stores.processOf(prefix, { maxRooms: 3 });
      for (const room of ['a', 'b', 'c', 'd', 'e']) {
        await store.append(room, { message: 'hi', user: 'ann' });
      }
      await expect(redis.zrange(`${prefix}:rooms:written`, 0, -1)).resolves.toEqual([
        'c',
        'd',
        'e',
      ]);
      await expect(
        redis.hkeys(`${prefix}:rooms:sizes`).then((rooms) => rooms.sort()),
      ).resolves.toEqual(['c', 'd', 'e']);
      await expect(redis.get(`${prefix}:rooms:bytes`)).resolves.toBe(String(3 * (2 + 3 + 80)));
      for (const room of ['a', 'b']) {
        await expect(redis.exists(`${prefix}:rooms:h:${room}`)).resolves.toBe(0);
      }
      await expect(redis.exists(`${prefix}:rooms:h:c`)).resolves.toBe(1);
      expect(store.stats.historyRoomsEvicted).toBe(2);
    });

    it('evicts for every process alike: the bound is the shard’s, not a process’s', async () => {
      const prefix = freshPrefix();
      const a = stores.processOf(prefix, { maxRooms: 2 });
      const b = stores.processOf(prefix, { maxRooms: 2 });
      await a.append('one', { message: 'hi', user: 'ann' });
      await b.append('two', { message: 'hi', user: 'bob' });
      await a.append('three', { message: 'hi', user: 'ann' });
      await expect(b.history('one')).resolves.toEqual([]);
      expect([a.stats.historyRoomsEvicted, b.stats.historyRoomsEvicted]).toEqual([1, 0]);
    });

    it('counts the bytes of every process’s appends against one total per shard', async () => {
      const prefix = freshPrefix();
      const a = stores.processOf(prefix, { maxHistoryBytes: 200 });
      const b = stores.processOf(prefix, { maxHistoryBytes: 200 });
      await a.append('one', { message: 'hi', user: 'ann' }); // 85 bytes
      await b.append('two', { message: 'hi', user: 'bob' }); // 170
      await a.append('three', { message: 'hi', user: 'ann' }); // 255: one goes
      await expect(b.history('one')).resolves.toEqual([]);
      await expect(b.history('two')).resolves.toHaveLength(1);
      await expect(redis.get(`${prefix}:rooms:bytes`)).resolves.toBe(String(2 * 85));
      expect([a.stats.historyRoomsEvicted, b.stats.historyRoomsEvicted]).toEqual([1, 0]);
    });

    it('bounds each shard’s bytes with maxHistoryBytes, not their sum', async () => {
      const prefix = freshPrefix();
      const hosts = ['/0', '/1'].map(
        (db) => Object.assign(new URL(REDIS_URL), { pathname: db }).href,
      );
      const store = new RedisRoomState({ ...FAST, hosts, prefix, maxHistoryBytes: 200 });
      stores.open.push(store);
      const names = Array.from({ length: 40 }, (_, i) => `room-${i}`);
      const [x1, x2] = names.filter((room) => consistentHash(room, 2) === 0);
      const [y1, y2] = names.filter((room) => consistentHash(room, 2) === 1);
      try {
        // Two rooms of 85 bytes on each shard: 340 in all, 170 per shard.
        for (const room of [x1, y1, x2, y2]) await store.append(room, { message: 'hi', user: 'a' });
        expect(store.stats.historyRoomsEvicted).toBe(0);
        for (const room of [x1, y1, x2, y2])
          await expect(store.history(room)).resolves.toHaveLength(1);
        await store.append(x2, { message: 'hi', user: 'a' }); // 255 on the first shard: x1 goes
        await expect(store.history(x1)).resolves.toEqual([]);
        await expect(store.history(y1)).resolves.toHaveLength(1);
        expect(store.stats.historyRoomsEvicted).toBe(1);
      } finally {
        await store.flush(); // the afterAll cleans database 0 only
      }
    });

    it('hands out later ids in a room written again in the millisecond it was evicted', async () => {
      const prefix = freshPrefix();
      const store = stores.processOf(prefix, { maxRooms: 1 });
      const seen: string[] = [];
      // Rooms take turns, so each append evicts the other room's history and recreates its own.
      for (let i = 0; i < 20; i++) {
        seen.push((await store.append(i % 2 === 0 ? 'x' : 'y', { message: 'hi', user: 'a' })).id);
      }
      const xs = seen.filter((_, i) => i % 2 === 0);
      expect([...xs].sort(compareRecordIds)).toEqual(xs);
      expect(new Set(xs).size).toBe(xs.length);
    });

    it('forgets in its index the rooms whose history expired', async () => {
      const prefix = freshPrefix();
      const store = stores.processOf(prefix, { historyExpiry: 0.2 });
      await store.append('old', { message: 'hi', user: 'ann' });
      await waitFor(async () => (await redis.exists(`${prefix}:rooms:h:old`)) === 0, 2000);
      await store.append('new', { message: 'hi', user: 'ann' });
      await expect(redis.zrange(`${prefix}:rooms:written`, 0, -1)).resolves.toEqual(['new']);
      expect(store.stats.historyRoomsEvicted).toBe(0);
    });

    it('takes an expired room’s bytes out of the total, so they evict nobody', async () => {
      const prefix = freshPrefix();
      const store = stores.processOf(prefix, { historyExpiry: 0.3, maxHistoryBytes: 300 });
      const hi = { message: 'hi', user: 'ann' }; // 85 bytes
      await store.append('old', hi);
      await store.append('old', hi);
      await waitFor(async () => (await redis.exists(`${prefix}:rooms:h:old`)) === 0, 2000);
      await store.append('new', hi);
      await expect(redis.hgetall(`${prefix}:rooms:sizes`)).resolves.toEqual({ new: '85' });
      await expect(redis.get(`${prefix}:rooms:bytes`)).resolves.toBe('85');
      // 3 × 85 = 255: within 300 only if old's 170 left the total.
      await store.append('other', hi);
      await store.append('new', hi);
      await expect(store.history('new')).resolves.toHaveLength(2);
      await expect(store.history('other')).resolves.toHaveLength(1);
      expect(store.stats.historyRoomsEvicted).toBe(0);
    });

    it('counts a room written again after its history expired from zero', async () => {
      const prefix = freshPrefix();
      const store = stores.processOf(prefix, { historyExpiry: 0.3 });
      const hi = { message: 'hi', user: 'ann' };
      await store.append('r', hi);
      await store.append('r', hi);
      await waitFor(async () => (await redis.exists(`${prefix}:rooms:h:r`)) === 0, 2000);
      await store.append('r', hi);
      await expect(redis.hgetall(`${prefix}:rooms:sizes`)).resolves.toEqual({ r: '85' });
      await expect(redis.get(`${prefix}:rooms:bytes`)).resolves.toBe('85');
    });

    it('lists the busiest rooms over every shard', async () => {
      const prefix = freshPrefix();
      // Two databases of one Redis as two shards.
      const hosts = ['/0', '/1'].map(
        (db) => Object.assign(new URL(REDIS_URL), { pathname: db }).href,
      );
      const store = new RedisRoomState({ ...FAST, hosts, prefix });
      stores.open.push(store);
      const sizes: Array<[string, number]> = [];
      for (let i = 0; i < 12; i++) sizes.push([`room-${String(i).padStart(2, '0')}`, (i % 4) + 1]);
      for (const [room, members] of sizes) {
        for (let i = 0; i < members; i++) await store.join(room, `${room}-${i}`, 'ann');
      }
      const busiest = sizes
        .slice()
        .sort((x, y) => y[1] - x[1] || (x[0] < y[0] ? -1 : 1))
        .slice(0, 5)
        .map(([room, members]) => ({ room, members }))
        .sort((x, y) => x.room.localeCompare(y.room));
      try {
        await expect(store.rooms(5)).resolves.toEqual(busiest);
        await expect(store.rooms()).resolves.toHaveLength(12);
      } finally {
        await store.flush(); // the afterAll cleans database 0 only
      }
    });

    it('puts every key under <prefix>:rooms:', async () => {
      const prefix = freshPrefix();
      const store = stores.processOf(prefix);
      await store.append('r', { message: 'hi', user: 'ann' });
      await store.join('r', 'tab-1', 'ann');
      const keys = await redis.keys(`${prefix}*`);
      expect(keys.length).toBeGreaterThan(0);
      expect(keys.every((key) => key.startsWith(`${prefix}:rooms:`))).toBe(true);
    });
  });

  describe('across processes sharing a prefix', () => {
    let prefix: string;
    let a: RedisRoomState;
    let b: RedisRoomState;

    beforeEach(() => {
      prefix = freshPrefix();
      a = stores.processOf(prefix);
      b = stores.processOf(prefix);
    });

    it('shares one history whose ids increase whichever process appended', async () => {
      const appended = [];
      for (let i = 0; i < 10; i++) {
        const store = i % 2 === 0 ? a : b;
        appended.push(await store.append('r', { message: `m${i}`, user: 'ann' }));
      }
      for (let i = 1; i < appended.length; i++) {
        expect(compareRecordIds(appended[i - 1].id, appended[i].id)).toBeLessThan(0);
      }
      await expect(a.history('r')).resolves.toEqual(appended);
      await expect(b.history('r')).resolves.toEqual(appended);
    });

    it('gives concurrent appends of two processes distinct ids, history in id order', async () => {
      const records = await Promise.all(
        Array.from({ length: 40 }, (_, i) =>
          (i % 2 === 0 ? a : b).append('r', { message: `m${i}`, user: 'ann' }),
        ),
      );
      expect(new Set(records.map((record) => record.id)).size).toBe(40);
      const ids = (await a.history('r')).map((record) => record.id);
      expect(ids).toHaveLength(40);
      expect([...ids].sort(compareRecordIds)).toEqual(ids);
    });

    it('resumes since an id another process handed out', async () => {
      const seen = await a.append('r', { message: 'seen', user: 'ann' });
      const missed = await b.append('r', { message: 'missed', user: 'bob' });
      await expect(b.history('r', seen.id)).resolves.toEqual([missed]);
    });

    it('shows the members of both processes in users() and rooms()', async () => {
      await a.join('r', 'a-tab', 'ann');
      await b.join('r', 'b-tab-1', 'bob');
      await b.join('r', 'b-tab-2', 'ann');
      await expect(a.users('r')).resolves.toEqual(['ann', 'bob']);
      await expect(b.rooms()).resolves.toEqual([{ room: 'r', members: 3 }]);
      await a.leave('r', 'a-tab');
      await expect(b.users('r')).resolves.toEqual(['ann', 'bob']);
      await b.leave('r', 'b-tab-2');
      await expect(a.users('r')).resolves.toEqual(['bob']);
      await expect(a.rooms()).resolves.toEqual([{ room: 'r', members: 1 }]);
    });

    it('keeps a live process’s members well past the presence timeout', async () => {
      const heard = listen(b);
      await a.join('r', 'a-tab', 'ann');
      await new Promise((resolve) => setTimeout(resolve, 1500));
      await expect(b.users('r')).resolves.toEqual(['ann']);
      expect(heard).toEqual([]);
    });

    it('drops what a closed process left at the next sweep, and tells the others', async () => {
      const heard = listen(b);
      await a.join('r', 'a-tab', 'ann');
      await b.join('r', 'b-tab', 'bob');
      // A goodbye without leaving: the gateway leaves first, but a host may not.
      await a.close();
      await waitFor(() => heard.includes('r'), 2000);
      await expect(b.users('r')).resolves.toEqual(['bob']);
      await expect(b.rooms()).resolves.toEqual([{ room: 'r', members: 1 }]);
    });

    it('registers its members again when Redis lost them, and says so', async () => {
      const heard = listen(a);
      await a.join('r', 'a-tab', 'ann');
      await a.join('s', 'a-tab-2', 'ann');
      await b.join('r', 'b-tab', 'bob');
      // As after a restart of a Redis that persists nothing.
      const keys = await redis.keys(`${prefix}:*`);
      await redis.unlink(...keys);
      // Rooms are registered again one after another: wait for both.
      await waitFor(async () => (await b.users('r')).includes('ann'), 2000);
      await waitFor(async () => (await b.users('s')).includes('ann'), 2000);
      await expect(b.users('s')).resolves.toEqual(['ann']);
      await waitFor(() => heard.includes('r') && heard.includes('s'), 2000);
      // b's own members come back on its own heartbeat.
      await waitFor(async () => (await a.users('r')).length === 2, 2000);
      await expect(a.rooms()).resolves.toEqual([
        { room: 'r', members: 2 },
        { room: 's', members: 1 },
      ]);
    });
  });

  describe('a connection that drops while Redis keeps its data', () => {
    let client: Redis;
    afterEach(() => {
      if (client?.status !== 'end') client?.disconnect();
    });

    it('forgets, once reconnected, a member whose leave could not reach Redis', async () => {
      const prefix = freshPrefix();
      client = new Redis(REDIS_URL, { enableOfflineQueue: false, maxRetriesPerRequest: 0 });
      const a = new RedisRoomState({ ...FAST, hosts: [client], prefix });
      stores.open.push(a);
      const b = stores.processOf(prefix);
      const heard = listen(a);
      await a.join('r', 'a-tab-1', 'ann');
      await a.join('r', 'a-tab-2', 'carl');
      // The connection drops and comes back at once; the leave falls in between.
      client.disconnect(true);
      await expect(a.leave('r', 'a-tab-1')).rejects.toBeInstanceOf(ChannelLayerUnavailable);
      await expect(b.users('r')).resolves.toEqual(['ann', 'carl']);
      await waitFor(() => heard.includes('r'), 3000);
      await expect(b.users('r')).resolves.toEqual(['carl']);
      await expect(b.rooms()).resolves.toEqual([{ room: 'r', members: 1 }]);
    });
  });

  describe('a process killed without goodbye', () => {
    let client: Redis;
    afterEach(() => {
      if (client?.status !== 'end') client?.disconnect();
    });

    it('is dropped from presence within the timeout, and the survivors are told', async () => {
      const prefix = freshPrefix();
      // The doomed process runs on a connection the test owns, so the test can cut it.
      client = new Redis(REDIS_URL, { enableOfflineQueue: false, maxRetriesPerRequest: 0 });
      const doomed = new RedisRoomState({ ...FAST, hosts: [client], prefix });
      stores.open.push(doomed);
      const survivor = stores.processOf(prefix);
      const heard = listen(survivor);
      await doomed.join('r', 'd-tab-1', 'dan');
      await doomed.join('other', 'd-tab-2', 'dan');
      await survivor.join('r', 's-tab', 'sue');
      await expect(survivor.users('r')).resolves.toEqual(['dan', 'sue']);

      // Killed: its connection is gone, nothing said goodbye, its timers find no Redis.
      client.disconnect();
      const killedAt = Date.now();
      await waitFor(() => heard.includes('r') && heard.includes('other'), 3000);
      // presenceTimeout 0.5 s + one sweep of 0.1 s, with room for a slow machine.
      expect(Date.now() - killedAt).toBeLessThan(1500);
      await expect(survivor.users('r')).resolves.toEqual(['sue']);
      await expect(survivor.users('other')).resolves.toEqual([]);
      await expect(survivor.rooms()).resolves.toEqual([{ room: 'r', members: 1 }]);
      // Its heartbeat is forgotten too, once nothing of it is left.
      await expect(redis.zscore(`${prefix}:rooms:nodes`, doomed.nodeId)).resolves.toBeNull();
    });
  });

  describe('connections', () => {
    it('leaves clients it was given open', async () => {
      const client = new Redis(REDIS_URL);
      const store = new RedisRoomState({ hosts: [client], prefix: freshPrefix() });
      await store.join('r', 'tab', 'ann');
      await store.close();
      await expect(client.ping()).resolves.toBe('PONG');
      await client.quit();
    });

    it('refuses calls after close, except leaving', async () => {
      const store = stores.processOf(freshPrefix());
      await store.close();
      await expect(store.leave('r', 'tab')).resolves.toBeUndefined();
      await expect(store.users('r')).rejects.toThrow(/closed/);
    });

    it('refuses options that would make it misbehave', () => {
      expect(() => new RedisRoomState({ prefix: 'a b' })).toThrow(/prefix/);
      expect(() => new RedisRoomState({ heartbeatInterval: 10, presenceTimeout: 10 })).toThrow(
        /presenceTimeout/,
      );
      expect(() => new RedisRoomState({ historyLimit: -1 })).toThrow(/historyLimit/);
      expect(() => new RedisRoomState({ sweepInterval: 0 })).toThrow(/sweepInterval/);
      expect(() => new RedisRoomState({ historyBytes: -1 })).toThrow(/historyBytes/);
      expect(() => new RedisRoomState({ maxRooms: 0 })).toThrow(/maxRooms/);
      expect(() => new RedisRoomState({ maxHistoryBytes: 0 })).toThrow(/maxHistoryBytes/);
    });
  });
});

describeWithRedisServer('RedisRoomState when Redis goes away and comes back', () => {
  let server: RedisServerProcess;
  const stores = deployment();

  beforeAll(async () => {
    server = await RedisServerProcess.start();
  });

  afterAll(async () => {
    await stores.closeAll();
    await server?.stop();
  });

  it('rejects promptly while Redis is away, then registers its members again', async () => {
    const prefix = uniquePrefix('rooms-faults');
    const a = new RedisRoomState({ ...FAST, hosts: server.url, prefix, timeout: 500 });
    stores.open.push(a);
    const heard = listen(a);
    await a.join('r', 'a-tab', 'ann');
    await a.join('r', 'c-tab', 'carl');
    await a.append('r', { message: 'before', user: 'ann' });

    await server.stop();
    for (const call of [
      () => a.append('r', { message: 'during', user: 'ann' }),
      () => a.history('r'),
      () => a.join('r', 'b-tab', 'bob'),
      () => a.leave('r', 'a-tab'),
      () => a.users('r'),
      () => a.rooms(),
    ]) {
      const started = Date.now();
      await expect(call()).rejects.toBeInstanceOf(ChannelLayerUnavailable);
      expect(Date.now() - started).toBeLessThan(1000);
    }

    await server.restart(); // empty, as a Redis that persists nothing
    // carl is back; ann left and bob never joined while Redis was away.
    await waitFor(() => heard.includes('r'), 10_000);
    await expect(a.users('r')).resolves.toEqual(['carl']);
    await expect(a.rooms()).resolves.toEqual([{ room: 'r', members: 1 }]);
    await expect(a.history('r')).resolves.toEqual([]);
  });
});
