import {
  RedisChannelLayer,
  RedisRoomState,
  RedisRoomStateOptions,
  compareRecordIds,
} from '../src/index.js';
import { bucketTags, clusterSlot } from '../src/redis/cluster-slots.js';
import { consistentHash } from '../src/redis/consistent-hash.js';
import { waitFor } from './channel-layer.conformance.js';
import { RedisClusterProcess, describeWithRedisCluster } from './redis-cluster-support.js';
import { uniquePrefix } from './redis-test-support.js';
import { describeRoomStateConformance } from './room-state.conformance.js';

const FAST: RedisRoomStateOptions = {
  heartbeatInterval: 0.1,
  presenceTimeout: 0.5,
  sweepInterval: 0.1,
};

/** The first `count` room names `<stem><n>` whose bucket of 16 is (or, with `not`, isn't) `bucket`. */
function roomsIn(bucket: number, count: number, stem = 'room', not = false): string[] {
  const found: string[] = [];
  for (let n = 0; found.length < count; n++) {
    const room = `${stem}${n}`;
    if ((consistentHash(room, 16) === bucket) !== not) found.push(room);
  }
  return found;
}

describeWithRedisCluster('RedisRoomState on a real Redis Cluster (3 primaries, 3 replicas)', () => {
  let cluster: RedisClusterProcess;
  const open: Array<RedisRoomState | RedisChannelLayer> = [];
  const prefixOf = new WeakMap<object, string>();

  beforeAll(async () => {
    cluster = await RedisClusterProcess.start();
  }, 30_000);

  afterEach(async () => {
    await Promise.all(open.splice(0).map((each) => each.close()));
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  // One bucket: the suite's store-wide bounds (maxRooms 2 of rooms a, b, c) are then the
  // bucket's, and every script still runs on a cluster node, by slot, with SPUBLISH.
  describeRoomStateConformance('RedisRoomState on a cluster, one bucket', {
    create: (options) => {
      const prefix = uniquePrefix('rooms');
      const store = new RedisRoomState({
        ...options,
        hosts: { cluster: cluster.seeds, buckets: 1 },
        prefix,
      });
      prefixOf.set(store, prefix);
      return store;
    },
    layerFor: (store) =>
      new RedisChannelLayer({
        hosts: { cluster: cluster.seeds, buckets: 1 },
        prefix: prefixOf.get(store),
      }),
  });

  describe('with 16 buckets', () => {
    const hosts = (): { cluster: string[] } => ({ cluster: cluster.seeds });
    const storeOf = (prefix: string, options: RedisRoomStateOptions = {}): RedisRoomState => {
      const store = new RedisRoomState({ hosts: hosts(), prefix, ...FAST, ...options });
      open.push(store);
      return store;
    };

    it('keeps every key of a room in its bucket’s slot', async () => {
      const prefix = uniquePrefix('rooms');
      const store = storeOf(prefix, { historyLimit: 3 });
      const layer = new RedisChannelLayer({ hosts: hosts(), prefix });
      open.push(layer);
      await store.join('lobby', 'm1', 'ann');
      await store.appendAndSend(
        'lobby',
        { message: 'hi', user: 'ann' },
        layer,
        'chat.message',
        'k1',
      );
      const slot = clusterSlot(bucketTags(16)[consistentHash('lobby', 16)]);
      const owner = await cluster.primaryOf(slot);
      // The room's own keys and its bucket's bookkeeping (history, sizes, written, resends,
      // presence, active, the node's index; the group's members) all share the slot.
      const keys = await cluster.on(owner, (redis) => redis.keys(`${prefix}:*`));
      const tag = bucketTags(16)[consistentHash('lobby', 16)];
      const ofBucket = keys.filter((key) => key.includes(tag));
      expect(ofBucket.length).toBeGreaterThanOrEqual(8);
      for (const key of ofBucket) expect(clusterSlot(key)).toBe(slot);
      // Every other key there is another bucket's (heartbeats go to every bucket).
      const tags = new Set(bucketTags(16));
      for (const key of keys) expect(tags.has(/\{[^}]*\}/.exec(key)?.[0] ?? '')).toBe(true);
    });

    it('appends and publishes in one script on the room’s shard, so ids reach readers in order', async () => {
      const prefix = uniquePrefix('rooms');
      const [a, b] = [storeOf(prefix), storeOf(prefix)];
      const layers = [0, 1].map(() => new RedisChannelLayer({ hosts: hosts(), prefix }));
      open.push(...layers);
      const reader = await layers[0].newChannel();
      const ids: string[] = [];
      layers[0].attach(reader, (message) => void ids.push(String(message.id)));
      await layers[0].groupAdd('ordered', reader);
      await a.appendAndSend('ordered', { message: 'warm', user: 'ann' }, layers[0], 'chat.message');
      await waitFor(() => ids.length === 1);
      await cluster.resetStats();
      await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          (i % 2 ? a : b).appendAndSend(
            'ordered',
            { message: `m${i}`, user: 'ann' },
            layers[i % 2],
            'chat.message',
          ),
        ),
      );
      await waitFor(() => ids.length === 21);
      const sorted = [...ids].sort(compareRecordIds);
      expect(ids).toEqual(sorted);
      const [owner] = await cluster.shardOf(
        clusterSlot(bucketTags(16)[consistentHash('ordered', 16)]),
      );
      for (const node of cluster.nodes) {
        const evalsha = await cluster.calls(node.port, 'evalsha');
        expect(evalsha).toBe(node.port === owner ? 20 : 0);
      }
    });

    it('bounds maxRooms per bucket: rooms of other buckets never evict each other', async () => {
      const prefix = uniquePrefix('rooms');
      const store = storeOf(prefix, { maxRooms: 1 });
      const [first, second] = roomsIn(5, 2);
      const [elsewhere] = roomsIn(5, 1, 'other', true);
      await store.append(first, { message: 'one', user: 'ann' });
      await store.append(elsewhere, { message: 'two', user: 'ann' });
      await expect(store.history(first)).resolves.toHaveLength(1);
      await store.append(second, { message: 'three', user: 'ann' });
      await expect(store.history(first)).resolves.toEqual([]);
      await expect(store.history(second)).resolves.toHaveLength(1);
      await expect(store.history(elsewhere)).resolves.toHaveLength(1);
      expect(store.stats.historyRoomsEvicted).toBe(1);
    });

    it('lists rooms and presence across every bucket, and sweeps a dead process', async () => {
      const prefix = uniquePrefix('rooms');
      const [live, dead] = [storeOf(prefix), storeOf(prefix)];
      const rooms = [...roomsIn(1, 1), ...roomsIn(7, 1), ...roomsIn(12, 1)];
      for (const room of rooms) {
        await live.join(room, 'a', 'ann');
        await dead.join(room, 'b', 'bob');
      }
      await expect(live.rooms()).resolves.toEqual(
        rooms.map((room) => ({ room, members: 2 })).sort((x, y) => x.room.localeCompare(y.room)),
      );
      const heard: string[] = [];
      live.onPresenceChange((room) => heard.push(room));
      await dead.close();
      await waitFor(async () => (await live.users(rooms[2])).length === 1, 5000);
      for (const room of rooms) await expect(live.users(room)).resolves.toEqual(['ann']);
      await waitFor(() => rooms.every((room) => heard.includes(room)), 5000);
    });
  });
});
