import { Logger } from '@nestjs/common';
import { Cluster, ClusterNode, ClusterOptions, RedisOptions } from 'ioredis';
import { InvalidChannelLayerInput } from '../channel-layer/channel-layer.errors.js';
import { bucketTags, clusterSlot } from './cluster-slots.js';
import { consistentHash } from './consistent-hash.js';
import { RedisHost, RedisShard, RedisShardEvents } from './redis-shard.js';

/**
 * A Redis Cluster, as a store's `hosts`. Its names are spread over `buckets` buckets by the same
 * stable hash as over sharded hosts; each bucket's keys and shard channels carry one hash tag,
 * so every script's keys share a slot, and a group's messages go by sharded pub/sub on the shard
 * that owns its bucket. Redis 7.0 or later (SPUBLISH). Every process, and the channel layer and
 * room store of one app, must give the same `buckets`.
 */
export interface RedisClusterHosts {
  /**
   * Seed nodes (`host:port` strings or `{ host, port }`; any few of the cluster's, it finds the
   * rest), or a `Cluster` client you own: `close()` leaves it open, and it should have
   * `enableOfflineQueue: false`, `retryDelayOnFailover: 0` and `retryDelayOnClusterDown: 0`, as the
   * store's own has, or commands wait (or are resent) through a failover.
   */
  readonly cluster: ReadonlyArray<string | ClusterNode> | Cluster;
  /**
   * How many buckets (hash slots) the names are spread over: the most primaries that share the
   * load, and the unit of `RedisRoomState`'s `maxRooms` and `maxHistoryBytes`. At most 1024.
   * @default 16
   */
  readonly buckets?: number;
  /**
   * ioredis' cluster options (`natMap`, `redisOptions` for each node's password or TLS, `dnsLookup`,
   * `slotsRefreshInterval`). The store sets its fail-fast ones over yours; `scaleReads` is
   * ignored (reads go to primaries, so a read never misses a write just made).
   * @default {}
   */
  readonly options?: ClusterOptions;
}

/**
 * Where a store's Redis is: a URL, URLs separated by commas or spaces (client-side shards), a
 * `redis+cluster://` URL, a list of URLs, ioredis options or clients, or a cluster.
 */
export type RedisHosts = string | ReadonlyArray<RedisHost> | RedisClusterHosts;

/** What a Redis store (the channel layer, the room store) says about where its Redis is. */
export interface RedisShardsSettings {
  readonly hosts: RedisHosts;
  /** Milliseconds a command, or the first connection, may take before failing; positive. */
  readonly timeout: number;
  /** Names the store in errors about its options ("layer", "store"). */
  readonly owner: string;
  readonly events: RedisShardEvents;
  readonly logger: Logger;
}

/**
 * The Redis hosts a store spreads its names over, one {@link RedisShard} each. A name lives on the
 * shard {@link consistentHash} picks, so every process listing the same hosts in the same order
 * agrees on it; the channel layer and the room store pick alike.
 */
export class RedisShards {
  readonly all: readonly RedisShard[];
  /** The cluster the shards are buckets of, when this store created it (and so closes it). */
  private readonly ownCluster: Cluster | null = null;

  constructor(settings: RedisShardsSettings) {
    const { timeout, events, logger } = settings;
    if (!(timeout > 0)) throw new InvalidChannelLayerInput('timeout must be positive');
    const cluster = clusterOf(settings.hosts);
    if (cluster) {
      const buckets = cluster.buckets ?? 16;
      if (!Number.isInteger(buckets) || buckets < 1 || buckets > 1024) {
        throw new InvalidChannelLayerInput('buckets must be an integer from 1 to 1024');
      }
      const given = cluster.cluster instanceof Cluster ? cluster.cluster : null;
      const client = given ?? newCluster(cluster, timeout, settings.owner);
      if (!given) {
        this.ownCluster = client;
        client.on('error', () => undefined); // Surfaced as rejected commands.
      }
      // Each bucket listens for the cluster's ready, close and slot refreshes (the bound counts
      // listeners per event).
      client.setMaxListeners(client.getMaxListeners() + 2 * buckets);
      const label = labelOf(client);
      this.all = bucketTags(buckets).map(
        (tag, index) =>
          new RedisShard({
            index,
            host: { client, tag, slot: clusterSlot(tag), label },
            timeoutMs: timeout,
            events,
            logger,
          }),
      );
      return;
    }
    this.all = hostList(settings.hosts as string | ReadonlyArray<RedisHost>, settings.owner).map(
      (host, index) => new RedisShard({ index, host, timeoutMs: timeout, events, logger }),
    );
  }

  /** The shard that holds `name`. */
  of(name: string): RedisShard {
    const shards = this.all;
    return shards.length === 1 ? shards[0] : shards[consistentHash(name, shards.length)];
  }

  /** Deletes every key under `prefix` (checked by {@link keyPrefix}) on every shard. */
  async deleteUnder(prefix: string): Promise<void> {
    // ':' ends the prefix, so 'asgi' never matches the keys of 'asgi2'. A cluster's buckets
    // share its nodes: one of them SCANs every primary.
    const shards = this.all[0].tag === '' ? this.all : [this.all[0]];
    await Promise.all(shards.map((shard) => shard.deleteMatching(`${prefix}:*`)));
  }

  /** Closes every shard's connections (those it created), then the cluster if it made it. */
  async close(): Promise<void> {
    await Promise.all(this.all.map((shard) => shard.close()));
    const cluster = this.ownCluster;
    if (cluster && cluster.status !== 'end') {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1000);
        timer.unref();
        cluster.once('end', () => {
          clearTimeout(timer);
          resolve();
        });
        cluster.disconnect();
      });
    }
  }
}

/**
 * A store's key prefix, `asgi` by default: ASCII letters, digits, `-`, `_`, `.` or `:`, so it holds
 * no glob character and a `flush` SCAN matches its own keys only. Else `InvalidChannelLayerInput`.
 */
export function keyPrefix(prefix: string | undefined): string {
  const chosen = prefix ?? 'asgi';
  if (!/^[A-Za-z0-9\-_.:]+$/.test(chosen)) {
    throw new InvalidChannelLayerInput(
      "prefix must be ASCII letters, digits, '-', '_', '.' or ':'",
    );
  }
  return chosen;
}

/**
 * The cluster `hosts` names, if any: a {@link RedisClusterHosts}, or a URL
 * `redis+cluster://[user:password@]host:port,host:port[?buckets=16]` (`rediss+cluster://` for
 * TLS).
 */
export function clusterOf(hosts: RedisHosts): RedisClusterHosts | null {
  if (typeof hosts === 'object' && 'cluster' in hosts) return hosts;
  if (typeof hosts !== 'string') return null;
  const match = /^(rediss?)\+cluster:\/\/(?:([^@/]*)@)?([^/?]+)\/?(?:\?(.*))?$/.exec(hosts.trim());
  if (!match) {
    if (/\+cluster:/.test(hosts)) {
      throw new InvalidChannelLayerInput('a cluster URL is redis+cluster://host:port,host:port');
    }
    return null;
  }
  const [, scheme, auth, seeds, query] = match;
  const nodes = seeds.split(',').filter(Boolean);
  const redisOptions: NonNullable<ClusterOptions['redisOptions']> = {};
  if (auth) {
    const colon = auth.indexOf(':');
    const user = decodeURIComponent(colon === -1 ? '' : auth.slice(0, colon));
    const password = decodeURIComponent(colon === -1 ? auth : auth.slice(colon + 1));
    if (user) redisOptions.username = user;
    if (password) redisOptions.password = password;
  }
  if (scheme === 'rediss') redisOptions.tls = {};
  const params = new URLSearchParams(query ?? '');
  const buckets = params.has('buckets') ? Number(params.get('buckets')) : undefined;
  return { cluster: nodes, buckets, options: { redisOptions } };
}

/** A store's own `Cluster`: fails fast through a failover, like a plain shard's connections. */
function newCluster(hosts: RedisClusterHosts, timeoutMs: number, owner: string): Cluster {
  const nodes = hosts.cluster as ReadonlyArray<string | ClusterNode>;
  if (nodes.length === 0) throw new InvalidChannelLayerInput('cluster must name a seed node');
  const given = hosts.options ?? {};
  if (given.keyPrefix || given.redisOptions?.keyPrefix) {
    throw new InvalidChannelLayerInput(`use the ${owner}'s prefix option, not ioredis' keyPrefix`);
  }
  return new Cluster([...nodes], {
    slotsRefreshInterval: 1000,
    // As on a single server (`RedisShard`): one write per node per turn of the event loop.
    enableAutoPipelining: true,
    ...given,
    // Refuse commands while the cluster is not ready, and never resend one whose connection
    // dropped: a groupSend must be reported as failed, not delivered twice. A MOVED or ASK
    // redirect is still followed (Redis did not run the command).
    enableOfflineQueue: false,
    retryDelayOnFailover: 0,
    retryDelayOnClusterDown: 0,
    scaleReads: 'master',
    redisOptions: {
      connectTimeout: Math.max(timeoutMs, 1000),
      ...given.redisOptions,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      commandTimeout: timeoutMs,
    },
  });
}

/** The cluster's seed nodes as configured, for `server` and logs. */
function labelOf(cluster: Cluster): string {
  const seeds = (cluster as unknown as { startupNodes?: Array<string | ClusterNode> }).startupNodes;
  const spelled = (seeds ?? []).map((node) =>
    typeof node === 'string'
      ? node
      : typeof node === 'number'
        ? `:${node}`
        : `${node.host ?? ''}:${node.port ?? ''}`,
  );
  return spelled.join(',') || 'cluster';
}

/** The hosts to shard over, from a comma- or space-separated URL list or an array. */
function hostList(hosts: string | ReadonlyArray<RedisHost>, owner: string): RedisHost[] {
  const list =
    typeof hosts !== 'string'
      ? [...hosts]
      : /^rediss?\+sentinel:/.test(hosts.trim())
        ? [sentinelOf(hosts.trim())]
        : hosts.split(/[\s,]+/).filter(Boolean);
  if (list.length === 0) throw new InvalidChannelLayerInput('hosts must name at least one Redis');
  for (const host of list) {
    const options = typeof host === 'string' ? undefined : 'options' in host ? host.options : host;
    // ioredis would prefix our keys but not our pub/sub channels, the keys our scripts compute or
    // SCAN patterns.
    if (options?.keyPrefix) {
      throw new InvalidChannelLayerInput(
        `use the ${owner}'s prefix option, not ioredis' keyPrefix`,
      );
    }
  }
  return list;
}

/**
 * A Sentinel group from its URL:
 * `redis+sentinel://[user:password@]host:port,host:port/<primary name>[/<db>]`, the password
 * being the data nodes' (`rediss+sentinel://` for TLS to them). The client asks the sentinels
 * where the primary is on every connect and, told of a failover (`failoverDetector`), moves to
 * the new one at once.
 */
export function sentinelOf(url: string): RedisOptions {
  const match =
    /^(rediss?)\+sentinel:\/\/(?:([^@/]*)@)?([^/?]+)\/([A-Za-z0-9._-]+)(?:\/(\d+))?\/?$/.exec(url);
  if (!match) {
    throw new InvalidChannelLayerInput(
      'a Sentinel URL is redis+sentinel://host:port,host:port/<primary name>',
    );
  }
  const [, scheme, auth, hosts, name, db] = match;
  const sentinels = hosts.split(',').map((address) => {
    const colon = address.lastIndexOf(':');
    return colon === -1
      ? { host: address, port: 26379 }
      : { host: address.slice(0, colon), port: Number(address.slice(colon + 1)) };
  });
  const options: RedisOptions = { sentinels, name, failoverDetector: true };
  if (auth) {
    const colon = auth.indexOf(':');
    const user = decodeURIComponent(colon === -1 ? '' : auth.slice(0, colon));
    const password = decodeURIComponent(colon === -1 ? auth : auth.slice(colon + 1));
    if (user) options.username = user;
    if (password) options.password = password;
  }
  if (db) options.db = Number(db);
  if (scheme === 'rediss') options.tls = {};
  return options;
}

/** Where a store's Redis is when its options name none. */
export const DEFAULT_REDIS_HOSTS = 'redis://127.0.0.1:6379';
