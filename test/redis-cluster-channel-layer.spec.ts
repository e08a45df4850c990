import {
  ChannelMessage,
  InvalidChannelLayerInput,
  RedisChannelLayer,
  RedisChannelLayerOptions,
} from '../src/channel-layer/index.js';
import { bucketTags, clusterSlot } from '../src/redis/cluster-slots.js';
import { consistentHash } from '../src/redis/consistent-hash.js';
import { describeChannelLayerConformance, waitFor } from './channel-layer.conformance.js';
import { RedisClusterProcess, describeWithRedisCluster } from './redis-cluster-support.js';
import { uniquePrefix } from './redis-test-support.js';
import { hearingRoom } from './support/listening.js';

const msg = (text: string): ChannelMessage => ({ type: 'test.message', text });

describeWithRedisCluster(
  'RedisChannelLayer on a real Redis Cluster (3 primaries, 3 replicas)',
  () => {
    let cluster: RedisClusterProcess;
    const open: RedisChannelLayer[] = [];
    const layerOn = (prefix: string, options: RedisChannelLayerOptions = {}): RedisChannelLayer => {
      const layer = new RedisChannelLayer({
        hosts: { cluster: cluster.seeds },
        prefix,
        ...options,
      });
      open.push(layer);
      return layer;
    };

    beforeAll(async () => {
      cluster = await RedisClusterProcess.start();
    }, 30_000);

    /** Puts back what a test moved in the cluster. */
    let restoring: (() => Promise<void>) | undefined;

    afterEach(async () => {
      await Promise.all(open.splice(0).map((layer) => layer.close()));
      await restoring?.();
      restoring = undefined;
    });

    afterAll(async () => {
      await cluster?.stop();
    });

    describeChannelLayerConformance('RedisChannelLayer on a cluster', {
      create: (options?: RedisChannelLayerOptions) =>
        new RedisChannelLayer({
          ...options,
          hosts: { cluster: cluster.seeds },
          prefix: uniquePrefix(),
        }),
      advance: (seconds) => new Promise((resolve) => setTimeout(resolve, seconds * 1000)),
      expiry: 1,
    });

    it('follows a group’s slot to its new primary when the cluster is resharded', async () => {
      // Redis unsubscribes a moved slot's shard channels and keeps the connection: without
      // following the slot, b would hear nothing more while a's sends still succeed.
      const prefix = uniquePrefix();
      const [a, b] = [layerOn(prefix), layerOn(prefix)];
      const { inB, got } = await hearingRoom(a, b, 'room');
      const slot = clusterSlot(bucketTags(16)[consistentHash('room', 16)]);
      const from = await cluster.primaryOf(slot);
      const to = (await cluster.primaries()).find(({ port }) => port !== from)?.port as number;
      await cluster.moveSlot(slot, to);
      // Moved back afterwards: the other tests count on the buckets' even spread.
      restoring = () => cluster.moveSlot(slot, from);
      // Sends in the moment before b subscribes on the new primary reach nobody there; b hears
      // the group again within 5 s.
      await waitFor(async () => {
        await a.groupSend('room', msg('after')).catch(() => undefined);
        await new Promise((resolve) => setTimeout(resolve, 50));
        return got.includes('after');
      }, 5000);
      await expect(cluster.primaryOf(slot)).resolves.toBe(to);
      // The membership moved with the slot's keys.
      await expect(a.groupChannels('room')).resolves.toEqual([inB]);
      await a.groupSend('room', msg('last'));
      await waitFor(() => got.includes('last'));
    });

    it('computes the slots Redis computes, and spreads the buckets evenly over the primaries', async () => {
      const tags = bucketTags(16);
      const port = cluster.nodes[0].port;
      for (const key of [...tags, 'asgi:{b3.0}:g:room', 'plain-key', 'a{}b', 'ü{x}']) {
        const slot = await cluster.on(port, (redis) => redis.cluster('KEYSLOT', key));
        expect(clusterSlot(key)).toBe(Number(slot));
      }
      const owners = await Promise.all(tags.map((tag) => cluster.primaryOf(clusterSlot(tag))));
      const perPrimary = [...new Set(owners)].map((p) => owners.filter((o) => o === p).length);
      expect(perPrimary).toHaveLength(3);
      expect(Math.max(...perPrimary) - Math.min(...perPrimary)).toBeLessThanOrEqual(1);
    });

    it('takes the cluster as a redis+cluster:// URL', async () => {
      const prefix = uniquePrefix();
      const a = layerOn(prefix);
      const b = new RedisChannelLayer({ hosts: cluster.url, prefix });
      open.push(b);
      const channel = await a.newChannel();
      const got: unknown[] = [];
      a.attach(channel, (message) => void got.push(message.text));
      await a.groupAdd('room', channel);
      await b.groupSend('room', msg('over the url'));
      await waitFor(() => got.length === 1);
      expect(got).toEqual(['over the url']);
    });

    it('refuses a bad bucket count and a malformed cluster URL', () => {
      expect(
        () => new RedisChannelLayer({ hosts: { cluster: cluster.seeds, buckets: 0 } }),
      ).toThrow(InvalidChannelLayerInput);
      expect(() => new RedisChannelLayer({ hosts: 'redis+cluster:/nowhere' })).toThrow(
        InvalidChannelLayerInput,
      );
    });

    it('fans a group out by SPUBLISH on the shard that owns it only, never by PUBLISH', async () => {
      const prefix = uniquePrefix();
      const [a, b, sender] = [layerOn(prefix), layerOn(prefix), layerOn(prefix)];
      const group = 'sharded-room';
      const got: unknown[] = [];
      for (const layer of [a, b]) {
        const channel = await layer.newChannel('chat');
        layer.attach(channel, (message) => void got.push(message.text));
        await layer.groupAdd(group, channel);
      }
      await sender.groupSend(group, msg('warm up')); // loads the script everywhere it runs
      await waitFor(() => got.length === 2);
      await cluster.resetStats();
      for (let i = 0; i < 10; i++) await sender.groupSend(group, msg(`m${i}`));
      await waitFor(() => got.length === 22);

      const [owner, ...replicas] = await cluster.shardOf(
        clusterSlot(bucketTags(16)[consistentHash(group, 16)]),
      );
      const seen = await Promise.all(
        cluster.nodes.map(async (node) => ({
          port: node.port,
          publish: await cluster.calls(node.port, 'publish'),
          spublish: await cluster.calls(node.port, 'spublish'),
          evalsha: await cluster.calls(node.port, 'evalsha'),
        })),
      );
      // The shard's replicas get the script's effects, its SPUBLISH included, by replication
      // (a moment later: not counted here); the other shards see nothing of the group's traffic.
      expect(seen).toEqual(
        cluster.nodes.map((node) => ({
          port: node.port,
          publish: 0,
          spublish:
            node.port === owner ? 10 : replicas.includes(node.port) ? expect.any(Number) : 0,
          evalsha: node.port === owner ? 10 : 0,
        })),
      );
    });
  },
);
