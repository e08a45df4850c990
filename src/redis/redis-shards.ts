import { Logger } from '@nestjs/common';
import { InvalidChannelLayerInput } from '../channel-layer/channel-layer.errors.js';
import { consistentHash } from './consistent-hash.js';
import { RedisHost, RedisShard, RedisShardEvents } from './redis-shard.js';

/** What a Redis store (the channel layer, the room store) says about where its Redis is. */
export interface RedisShardsSettings {
  /** A URL, URLs separated by commas or spaces, or a list of URLs, ioredis options or clients. */
  readonly hosts: string | ReadonlyArray<RedisHost>;
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

  constructor(settings: RedisShardsSettings) {
    const { timeout, events, logger } = settings;
    if (!(timeout > 0)) throw new InvalidChannelLayerInput('timeout must be positive');
    this.all = hostList(settings.hosts, settings.owner).map(
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
    // ':' ends the prefix, so 'asgi' never matches the keys of 'asgi2'.
    await Promise.all(this.all.map((shard) => shard.deleteMatching(`${prefix}:*`)));
  }

  /** Closes every shard's connections (those it created). */
  async close(): Promise<void> {
    await Promise.all(this.all.map((shard) => shard.close()));
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

/** The hosts to shard over, from a comma- or space-separated URL list or an array. */
function hostList(hosts: string | ReadonlyArray<RedisHost>, owner: string): RedisHost[] {
  const list = typeof hosts === 'string' ? hosts.split(/[\s,]+/).filter(Boolean) : [...hosts];
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

/** Where a store's Redis is when its options name none. */
export const DEFAULT_REDIS_HOSTS = 'redis://127.0.0.1:6379';
