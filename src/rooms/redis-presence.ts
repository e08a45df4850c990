import { Logger } from '@nestjs/common';
import { errorText } from '../error-text.js';
import { LuaScript } from '../redis/lua-script.js';
import { RedisShard } from '../redis/redis-shard.js';
import { RedisShards } from '../redis/redis-shards.js';
import { BUSIEST, HEARTBEAT, JOIN, LEAVE, RESYNC, SWEEP } from './redis-presence-scripts.js';
import { RoomKeys } from './redis-room-keys.js';
import { RoomSummary } from './room-state.js';

/** Rooms one sweep visits per script call, and calls per sweep: bounded work per tick. */
const SWEEP_ROOMS = 100;
const SWEEP_ROUNDS = 10;

/** How `RedisRoomState` keeps presence; its options, checked. */
export interface RedisPresenceSettings {
  readonly nodeId: string;
  /** The key layout of a shard's rooms. */
  keysOf(shard: RedisShard): RoomKeys;
  readonly shards: RedisShards;
  readonly logger: Logger;
  readonly heartbeatMs: number;
  readonly presenceTimeoutMs: number;
  readonly sweepMs: number;
}

/**
 * Who is in each room, in Redis, as `RedisRoomState` describes it: this process's members, its
 * heartbeat on every shard, the registration again of its members when Redis lost them, and the
 * sweep of the members of processes that went away without leaving.
 */
export class RedisPresence {
  private readonly nodeId: string;
  private readonly keysOf: (shard: RedisShard) => RoomKeys;
  private readonly shards: RedisShards;
  private readonly logger: Logger;
  private readonly presenceTimeoutMs: number;
  private readonly listeners: Array<(room: string) => void> = [];
  /** This process's members, room → member → user: what it registers again after a loss. */
  private readonly local = new Map<string, Map<string, string>>();
  private readonly heartbeatTimer: NodeJS.Timeout;
  private readonly sweepTimer: NodeJS.Timeout;
  /** Shards with a heartbeat or resync in flight, so slow ones never pile up. */
  private readonly beating = new Set<RedisShard>();
  private sweeping = false;
  private closed = false;

  constructor(settings: RedisPresenceSettings) {
    this.nodeId = settings.nodeId;
    this.keysOf = (shard) => settings.keysOf(shard);
    this.shards = settings.shards;
    this.logger = settings.logger;
    this.presenceTimeoutMs = settings.presenceTimeoutMs;
    for (const shard of this.shards.all) void this.heartbeat(shard);
    this.heartbeatTimer = setInterval(() => {
      for (const shard of this.shards.all) void this.heartbeat(shard);
    }, settings.heartbeatMs).unref();
    this.sweepTimer = setInterval(() => void this.sweep(), settings.sweepMs).unref();
  }

  async join(room: string, member: string, user: string): Promise<void> {
    let members = this.local.get(room);
    if (!members) this.local.set(room, (members = new Map()));
    members.set(member, user);
    const shard = this.shards.of(room);
    try {
      await this.eval(shard, JOIN, this.keysOf(shard).members(room, this.nodeId), [
        room,
        this.field(member),
        user,
      ]);
    } catch (error) {
      // Not registered: don't bring it back on a resync. (A leave meanwhile already forgot it.)
      if (members.get(member) === user) this.forget(room, member);
      throw error;
    }
  }

  /**
   * A join made by `run`, a script with `field(member)` in it (`RedisRoomState.enter`): the member
   * is this process's from the start, so a resync meanwhile keeps it, and forgotten again when
   * `run` fails or does nothing (`undefined`). Scripts of run may be EVALSHA: a member's leave
   * waits until its join settled, so a NOSCRIPT retry cannot overtake it.
   */
  async joinWith<T>(room: string, member: string, user: string, run: () => Promise<T>): Promise<T> {
    let members = this.local.get(room);
    if (!members) this.local.set(room, (members = new Map()));
    members.set(member, user);
    let done: T | undefined;
    try {
      done = await run();
      return done;
    } finally {
      if (done === undefined && members.get(member) === user) this.forget(room, member);
    }
  }

  async leave(room: string, member: string): Promise<void> {
    // Forget first: even if Redis is away now, a resync will not bring the member back.
    this.forget(room, member);
    // Sockets leave their rooms while the app shuts down; once closed, the sweep drops the rest.
    if (this.closed) return;
    const shard = this.shards.of(room);
    await this.eval(shard, LEAVE, this.keysOf(shard).members(room, this.nodeId), [
      room,
      this.field(member),
    ]);
  }

  /**
   * A leave made by `run`, a script with `field(member)` in it (`RedisRoomState.exit`): forgotten
   * first, as by `leave`. Resolves with what `run` did; `false`, without running it, once closed.
   * Scripts of run may be EVALSHA: a NOSCRIPT retry that comes after later commands can only
   * remove a member that left already, as a member never joins again.
   */
  async leaveWith(room: string, member: string, run: () => Promise<boolean>): Promise<boolean> {
    this.forget(room, member);
    if (this.closed) return false;
    return run();
  }

  async users(room: string): Promise<string[]> {
    const shard = this.shards.of(room);
    const key = this.keysOf(shard).presence(room);
    const names = await shard.command((client) => client.hvals(key));
    // By their bytes, as the announcement's script sorts them.
    return [...new Set(names)].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  }

  /**
   * Reads only `R:active` (rooms with members) of each shard: all of it, or with `limit` each
   * shard's busiest `limit` (O(log n + limit) there), merged into the busiest `limit` overall.
   */
  async rooms(limit?: number): Promise<RoomSummary[]> {
    if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 0)) {
      throw new TypeError('limit must be an integer >= 0');
    }
    if (limit === 0) return [];
    const replies = await Promise.all(
      this.shards.all.map((shard) => {
        const active = this.keysOf(shard).active();
        return (
          limit === undefined
            ? shard.command((client) => client.zrange(active, 0, -1, 'WITHSCORES'))
            : shard.run(BUSIEST, [active], [limit])
        ) as Promise<string[]>;
      }),
    );
    let summaries: RoomSummary[] = [];
    for (const reply of replies) {
      for (let i = 0; i < reply.length; i += 2) {
        const members = Number(reply[i + 1]);
        if (members > 0) summaries.push({ room: reply[i], members });
      }
    }
    if (limit !== undefined && summaries.length > limit) {
      // Ties go by name as each shard's sorted set orders them: room names are ASCII, so by code
      // unit.
      summaries = summaries
        .sort((a, b) => b.members - a.members || (a.room < b.room ? -1 : a.room > b.room ? 1 : 0))
        .slice(0, limit);
    }
    return summaries.sort((a, b) => a.room.localeCompare(b.room));
  }

  onChange(listener: (room: string) => void): void {
    this.listeners.push(listener);
  }

  /** Forgets this process's members (their keys are being deleted). */
  forgetAll(): void {
    this.local.clear();
  }

  /** Redis may have lost our members, or kept some we left while it was away: resync. */
  recovered(shard: RedisShard): void {
    void this.heartbeat(shard, true);
  }

  /**
   * Stops the heartbeat and sweep and ends this process's deadline (goodbye: any members still
   * registered go at the next sweep of another process).
   */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.heartbeatTimer);
    clearInterval(this.sweepTimer);
    this.local.clear();
    await Promise.all(
      this.shards.all.map((shard) => {
        const keys = this.keysOf(shard);
        // Best effort: with Redis away, the deadline simply runs out.
        return this.eval(
          shard,
          HEARTBEAT,
          [keys.nodes(), keys.index(this.nodeId)],
          [this.nodeId, 0],
        ).catch(() => undefined);
      }),
    );
  }

  /**
   * Renews this process's deadline on `shard`; registers its members again when Redis had
   * counted it as gone, or when `resync` says Redis may disagree with what it should hold.
   */
  private async heartbeat(shard: RedisShard, resync = false): Promise<void> {
    if (this.closed || (this.beating.has(shard) && !resync)) return;
    this.beating.add(shard);
    try {
      const keys = this.keysOf(shard);
      const lost = await this.eval(
        shard,
        HEARTBEAT,
        [keys.nodes(), keys.index(this.nodeId)],
        [this.nodeId, this.presenceTimeoutMs],
      );
      if ((lost === 1 || resync) && !this.closed) await this.resync(shard);
    } catch (error) {
      this.logger.debug(`heartbeat on Redis ${shard.address} failed: ${errorText(error)}`);
    } finally {
      this.beating.delete(shard);
    }
  }

  /** Makes every room of `shard` hold exactly this process's members there. */
  private async resync(shard: RedisShard): Promise<void> {
    // Rooms Redis still lists for this process (some it may have left meanwhile), and its own.
    const keys = this.keysOf(shard);
    const index = keys.index(this.nodeId);
    const known = await shard.command((client) => client.hkeys(index));
    const rooms = new Set(known);
    for (const room of this.local.keys()) if (this.shards.of(room) === shard) rooms.add(room);
    for (const room of rooms) {
      if (this.closed) return;
      const args: string[] = [room, this.nodeId];
      for (const [member, user] of this.local.get(room) ?? []) args.push(member, user);
      const changed = await this.eval(shard, RESYNC, keys.members(room, this.nodeId), args);
      if (changed === 1) this.tell(room);
    }
    if (rooms.size > 0) {
      this.logger.log(`registered this process's members in ${rooms.size} room(s) again`);
    }
  }

  /** Drops the members of processes whose heartbeat ran out, a bounded number of rooms a time. */
  private async sweep(): Promise<void> {
    if (this.closed || this.sweeping) return;
    this.sweeping = true;
    try {
      for (const shard of this.shards.all) {
        const keys = this.keysOf(shard);
        for (let round = 0; round < SWEEP_ROUNDS && !this.closed; round++) {
          const swept = (await this.eval(
            shard,
            SWEEP,
            [keys.nodes(), keys.active()],
            [keys.root, SWEEP_ROOMS, this.nodeId],
          )) as [string, string[]] | null;
          if (!swept) break;
          const [node, rooms] = swept;
          if (rooms.length > 0) {
            this.logger.log(`dropped members of gone process ${node} from ${rooms.length} room(s)`);
          }
          for (const room of rooms) this.tell(room);
        }
      }
    } catch (error) {
      this.logger.debug(`presence sweep failed: ${errorText(error)}`);
    } finally {
      this.sweeping = false;
    }
  }

  /**
   * Runs a presence script with EVAL, not EVALSHA: a NOSCRIPT retry would send it again after
   * later commands, and a join or resync overtaken by a leave would bring a member back.
   */
  private eval(
    shard: RedisShard,
    script: LuaScript,
    keys: readonly string[],
    args: ReadonlyArray<string | number>,
  ): Promise<unknown> {
    return shard.command((client) => client.eval(script.lua, keys.length, ...keys, ...args));
  }

  private tell(room: string): void {
    for (const listener of this.listeners) {
      try {
        listener(room);
      } catch (error) {
        this.logger.error(`presence listener failed: ${errorText(error)}`);
      }
    }
  }

  private forget(room: string, member: string): void {
    const members = this.local.get(room);
    if (members?.delete(member) && members.size === 0) this.local.delete(room);
  }

  /** A member's field in a room's presence. */
  field(member: string): string {
    return `${this.nodeId}:${member}`;
  }
}
