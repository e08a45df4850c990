import type { ChannelLayerOptions } from './channel-layer.js';
import type { RedisHosts } from '../redis/redis-shards.js';

/** Options of `RedisChannelLayer`: the shared ones plus channels_redis' own. */
export interface RedisChannelLayerOptions extends ChannelLayerOptions {
  /**
   * The Redis host(s): a URL, several URLs separated by commas or spaces, or a list of URLs,
   * ioredis options (`{ sentinels, name }` for a Sentinel group) or ioredis clients. With
   * several, channels and groups are sharded over them by a stable hash of their name; every
   * process must list the same hosts in the same order. Redis 6.2 or later.
   *
   * Or a Redis Cluster (7.0 or later): `{ cluster: ['h1:7000', 'h2:7000'], buckets: 16 }` or
   * `'redis+cluster://h1:7000,h2:7000'`; names are spread over `buckets` hash slots and groups
   * fan out by sharded pub/sub (see {@link RedisClusterHosts}).
   * Clients you pass stay yours: `close()` leaves them open.
   * @default 'redis://127.0.0.1:6379'
   */
  hosts?: RedisHosts;
  /**
   * Prefix of every key and pub/sub channel, so several apps can share one Redis; `flush()` only
   * deletes keys under it. Pub/sub ignores the database number: apps sharing a Redis need
   * distinct prefixes even on different databases. (Use this, not ioredis' `keyPrefix`.)
   * @default 'asgi'
   */
  prefix?: string;
  /**
   * Secrets to encrypt messages at rest in Redis with (AES-256-GCM). The first encrypts, all
   * decrypt: rotate by putting the new secret first, drop the old one after `expiry`. Every
   * process sharing the prefix needs the same list.
   * @default undefined (messages stored as plain JSON)
   */
  symmetricEncryptionKeys?: readonly string[];
  /**
   * Milliseconds an operation may wait for Redis (a reply, or the first connection) before it
   * rejects with `ChannelLayerUnavailable`. While Redis is known to be down, operations reject at
   * once. Applies to connections the layer creates; clients you pass keep their own settings.
   * @default 1000
   */
  timeout?: number;
  /**
   * Seconds between refreshes of the memberships of attached channels, which keep them alive in
   * Redis while members of dead processes expire.
   * @default groupExpiry / 3, at most 300
   */
  membershipRefresh?: number;
}

/** DI token for {@link RedisChannelLayerOptions}, when the layer is built by Nest. */
export const REDIS_CHANNEL_LAYER_OPTIONS = Symbol('REDIS_CHANNEL_LAYER_OPTIONS');
