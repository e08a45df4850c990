import { createHash } from 'node:crypto';

/** A Lua script, named by the SHA-1 that `EVALSHA` knows it by. */
export class LuaScript {
  /** The SHA-1 that `EVALSHA` names the script by. */
  readonly sha: string;
  private shardedScript?: LuaScript;

  constructor(readonly lua: string) {
    this.sha = createHash('sha1').update(lua).digest('hex');
  }

  /**
   * The script as a Redis Cluster runs it: its `PUBLISH`es as `SPUBLISH`, so a message goes to
   * the subscribers of its shard channel on the shard that owns the script's slot (the channel
   * carries the same hash tag as the keys), not to every node over the cluster bus. The script
   * itself when it publishes nothing.
   */
  get sharded(): LuaScript {
    this.shardedScript ??= this.lua.includes(PUBLISH)
      ? new LuaScript(this.lua.replaceAll(PUBLISH, "redis.call('SPUBLISH'"))
      : this;
    return this.shardedScript;
  }
}

/** How every script of ours publishes: the one spelling {@link LuaScript.sharded} rewrites. */
const PUBLISH = "redis.call('PUBLISH'";

/**
 * Lua that sets `clock` to Redis' `TIME` and `now` to it in milliseconds. Scripts take time from
 * Redis, so processes with skewed clocks still agree on what has expired and who is gone.
 */
export const NOW = `
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
`;
