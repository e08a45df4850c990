import type { RedisHosts } from '../redis/redis-shards.js';
import type { RoomStateOptions } from './room-state.options.js';

/**
 * Options of `RedisRoomState`: the shared ones plus where and how it keeps rooms in Redis.
 * `historyLimit` and `historyBytes` bound each room; `maxRooms` and `maxHistoryBytes` bound the
 * rooms with history and their bytes in all on each shard (each Redis of `hosts`, or each bucket
 * of a cluster: a primary holding `k` of the `buckets` holds at most `k` times them).
 */
export interface RedisRoomStateOptions extends RoomStateOptions {
  /**
   * The Redis host(s): a URL, several URLs separated by commas or spaces, or a list of URLs,
   * ioredis options (`{ sentinels, name }` for a Sentinel group) or ioredis clients. With
   * several, rooms are spread over them by the layer's stable hash of their name; every process
   * must list the same hosts in the same order. Redis 6.2 or later.
   *
   * Or a Redis Cluster (7.0 or later), given as to the layer (see {@link RedisClusterHosts}):
   * each room's keys share its bucket's hash slot, and one script appends and publishes.
   * Clients you pass stay yours: `close()` leaves them open.
   * @default 'redis://127.0.0.1:6379'
   */
  hosts?: RedisHosts;
  /**
   * Prefix of every key; the store's keys are under `<prefix>:rooms:`. The same prefix as the
   * channel layer's keeps one app's keys together (the layer's `flush()` then clears rooms too).
   * @default 'asgi'
   */
  prefix?: string;
  /**
   * Milliseconds an operation may wait for Redis (a reply, or the first connection) before it
   * rejects with `ChannelLayerUnavailable`; while Redis is known to be down, at once.
   * @default 1000
   */
  timeout?: number;
  /**
   * Seconds a room's history outlives its last message; each message restarts the count.
   * @default 604800 (a week)
   */
  historyExpiry?: number;
  /**
   * Seconds between this process's heartbeats.
   * @default 5
   */
  heartbeatInterval?: number;
  /**
   * Seconds after its last heartbeat that a process counts as gone, and its members are dropped
   * from presence by the next sweep of any live process. Longer than `heartbeatInterval`; with
   * the defaults a process that dies is out of presence within 25 s.
   * @default 20
   */
  presenceTimeout?: number;
  /**
   * Seconds between sweeps for processes that went away without leaving.
   * @default 5
   */
  sweepInterval?: number;
}

/** DI token for {@link RedisRoomStateOptions}, when the store is built by Nest. */
export const REDIS_ROOM_STATE_OPTIONS = Symbol('REDIS_ROOM_STATE_OPTIONS');
