import { createHash } from 'node:crypto';

/** A Lua script, named by the SHA-1 that `EVALSHA` knows it by. */
export class LuaScript {
  /** The SHA-1 that `EVALSHA` names the script by. */
  readonly sha: string;

  constructor(readonly lua: string) {
    this.sha = createHash('sha1').update(lua).digest('hex');
  }
}

/**
 * Lua that sets `clock` to Redis' `TIME` and `now` to it in milliseconds. Scripts take time from
 * Redis, so processes with skewed clocks still agree on what has expired and who is gone.
 */
export const NOW = `
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
`;
