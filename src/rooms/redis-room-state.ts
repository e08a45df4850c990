import { Inject, Injectable, Logger, Optional } from '@nestjs/common';
import { ChannelLayer } from '../channel-layer/channel-layer.js';
import { ChannelLayerClosed } from '../channel-layer/channel-layer.errors.js';
import { RedisChannelLayer } from '../channel-layer/redis-channel-layer.js';
import { positiveSeconds } from '../channel-layer/channel-names.js';
import { LuaScript } from '../redis/lua-script.js';
import { RedisHost, RedisShard } from '../redis/redis-shard.js';
import { DEFAULT_REDIS_HOSTS, RedisShards, keyPrefix } from '../redis/redis-shards.js';
import { RoomStateOptions } from './in-memory-room-state.js';
import { ChatRecord, RoomState, RoomStateStats, RoomSummary, recordBytes } from './room-state.js';
import {
  APPEND,
  APPEND_AND_SEND,
  BUSIEST,
  HEARTBEAT,
  JOIN,
  LEAVE,
  RESYNC,
  SWEEP,
} from './redis-room-scripts.js';
import { randomName } from '../channel-layer/random-name.js';
import { errorText } from '../error-text.js';

/**
 * Options of {@link RedisRoomState}: the shared ones plus where and how it keeps rooms in Redis.
 * `historyLimit` and `historyBytes` bound each room; `maxRooms` and `maxHistoryBytes` bound the
 * rooms with history and their bytes in all on each shard (each Redis of `hosts`).
 */
export interface RedisRoomStateOptions extends RoomStateOptions {
  /**
   * The Redis host(s): a URL, several URLs separated by commas or spaces, or a list of URLs,
   * ioredis options or ioredis clients. With several, rooms are spread over them by the layer's
   * stable hash of their name; every process must list the same hosts in the same order.
   * Clients you pass stay yours: `close()` leaves them open. Redis 6.2 or later.
   * @default 'redis://127.0.0.1:6379'
   */
  hosts?: string | ReadonlyArray<RedisHost>;
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

/** Rooms one sweep visits per script call, and calls per sweep: bounded work per tick. */
const SWEEP_ROOMS = 100;
const SWEEP_ROUNDS = 10;
/** Stream entries as ioredis returns them: `[id, [field, value, ...]]`. */
type StreamEntry = [string, string[]];
/** What APPEND and APPEND_AND_SEND report besides the id: records trimmed, rooms evicted. */
type Dropped = [trimmed: number, evicted: number];

/**
 * Rooms in Redis, so every process of an app sees the same history, ids and presence.
 *
 * - History is a Redis stream per room, trimmed on every append, oldest first, to at most
 *   `historyLimit` records and `historyBytes` bytes (`recordBytes`; the newest always stays):
 *   ids are the stream's (`<ms>-<seq>`, unique and increasing within the room whichever process
 *   appended), `since` reads with an exclusive range, and each record is stored serialized once.
 * - Each shard keeps the history of at most `maxRooms` rooms and at most `maxHistoryBytes` bytes
 *   of history in all (`recordBytes`): the append that takes a shard past either deletes, in the
 *   same script, the history of the rooms least recently written until within both; the room
 *   just written goes last, only when it alone holds more. An idle room's history expires after
 *   `historyExpiry`, and its bytes leave the shard's count at the shard's next append. Presence
 *   is never evicted. `stats` counts the records and rooms this process's appends dropped.
 * - Presence is a hash per room of `<node id>:<member>` → user name, and `R:active` counts the
 *   members of each room. Each process renews a heartbeat (a deadline in Redis' clock); every
 *   `sweepInterval` each process drops the members of processes whose deadline has passed and
 *   tells its `onPresenceChange` listeners, so a process killed without goodbye leaves presence
 *   within `presenceTimeout` + `sweepInterval`. `close()` says goodbye by ending its deadline at
 *   once: what it left behind goes at the next sweep of any process.
 * - A process that finds it was counted as gone (Redis restarted and lost everything, or it
 *   stalled past its deadline) registers its members again, and Redis coming back after an outage
 *   makes it do the same; both tell the listeners.
 * - While Redis is unreachable, operations reject promptly with `ChannelLayerUnavailable`.
 *
 * Cross-process order: the gateway calls `appendAndSend`, which on a `RedisChannelLayer` is one
 * script on one Redis (the append as the layer's `groupSendWith` step, `APPEND_AND_SEND`): it
 * appends (Redis picks the id) and publishes the chat message on the room's group at once, so every receiver, on every process, gets a room's messages in id order,
 * and resuming from the last id seen loses nothing. One round trip per message, not two.
 * It falls back to the two steps (append, then `groupSend`) when one script cannot do both:
 * the layer is not a `RedisChannelLayer`, overrides `groupSend`, or seals payloads
 * (`symmetricEncryptionKeys`); or the room's stream and the group's keys are on different
 * servers or databases (sharded hosts listed differently). Then two processes appending to one
 * room at once may have their messages reach a receiver in an order other than their ids (A gets
 * id 1, B gets id 2, B's send lands first), and a client that resumes from id 2 misses id 1 if it
 * never saw it; each sender's own messages still keep their order. Ordinary (not process-local)
 * members of the group get their push after the script, as with `groupSend`, so the guarantee is
 * for the process-local channels sockets use.
 */
@Injectable()
export class RedisRoomState extends RoomState {
  /** Unique per store instance; tags this process's members in Redis. */
  readonly nodeId = randomName(12);
  override readonly stats: RoomStateStats = { historyRoomsEvicted: 0, historyRecordsTrimmed: 0 };

  private readonly logger = new Logger(RedisRoomState.name);
  private readonly limit: number;
  private readonly roomBytes: number;
  private readonly maxRooms: number;
  private readonly maxBytes: number;
  private readonly now: () => number;
  private readonly root: string;
  private readonly historyTtlMs: number;
  private readonly presenceTimeoutMs: number;
  private readonly shards: RedisShards;
  private readonly listeners: Array<(room: string) => void> = [];
  /** This process's members, room → member → user: what it registers again after a loss. */
  private readonly local = new Map<string, Map<string, string>>();
  private readonly heartbeatTimer: NodeJS.Timeout;
  private readonly sweepTimer: NodeJS.Timeout;
  /** Shards with a heartbeat or resync in flight, so slow ones never pile up. */
  private readonly beating = new Set<RedisShard>();
  private sweeping = false;
  private closing?: Promise<void>;

  constructor(@Optional() @Inject(REDIS_ROOM_STATE_OPTIONS) options: RedisRoomStateOptions = {}) {
    super();
    this.limit = options.historyLimit ?? 50;
    if (!Number.isInteger(this.limit) || this.limit < 0) {
      throw new TypeError('historyLimit must be an integer >= 0');
    }
    this.roomBytes = options.historyBytes ?? 262_144;
    if (!Number.isSafeInteger(this.roomBytes) || this.roomBytes < 0) {
      throw new TypeError('historyBytes must be an integer >= 0');
    }
    this.maxRooms = options.maxRooms ?? 10_000;
    if (!Number.isSafeInteger(this.maxRooms) || this.maxRooms < 1) {
      throw new TypeError('maxRooms must be an integer >= 1');
    }
    this.maxBytes = options.maxHistoryBytes ?? 67_108_864;
    if (!Number.isSafeInteger(this.maxBytes) || this.maxBytes < 1) {
      throw new TypeError('maxHistoryBytes must be an integer >= 1');
    }
    this.now = options.clock ?? Date.now;
    this.root = `${keyPrefix(options.prefix)}:rooms`;
    this.historyTtlMs = Math.round(
      positiveSeconds(options.historyExpiry ?? 604_800, 'historyExpiry') * 1000,
    );
    const heartbeatMs = positiveSeconds(options.heartbeatInterval ?? 5, 'heartbeatInterval') * 1000;
    this.presenceTimeoutMs =
      positiveSeconds(options.presenceTimeout ?? 20, 'presenceTimeout') * 1000;
    if (this.presenceTimeoutMs <= heartbeatMs) {
      throw new TypeError('presenceTimeout must be longer than heartbeatInterval');
    }
    const sweepMs = positiveSeconds(options.sweepInterval ?? 5, 'sweepInterval') * 1000;

    this.shards = new RedisShards({
      hosts: options.hosts ?? DEFAULT_REDIS_HOSTS,
      timeout: options.timeout ?? 1000,
      owner: 'store',
      logger: this.logger,
      events: {
        // Redis may have lost our members, or kept some we left while it was away.
        recovered: (shard) => void this.heartbeat(shard, true),
      },
    });
    for (const shard of this.shards.all) void this.heartbeat(shard);
    this.heartbeatTimer = setInterval(() => {
      for (const shard of this.shards.all) void this.heartbeat(shard);
    }, heartbeatMs).unref();
    this.sweepTimer = setInterval(() => void this.sweep(), sweepMs).unref();
  }

  async append(room: string, message: { message: string; user: string }): Promise<ChatRecord> {
    this.assertOpen();
    const ts = this.now();
    const [id, ...dropped] = (await this.shardOf(room).run(
      APPEND,
      this.appendKeys(room),
      this.appendArgs(room, message, ts),
    )) as [string, ...Dropped];
    this.count(dropped);
    return { type: 'chat', message: message.message, room, user: message.user, id, ts };
  }

  /**
   * One script when `layer` can run the append in its `groupSendWith` (see the class comment):
   * appends the record and publishes it to the room's group, as `groupSend({ ...record, type })`
   * would, at once; otherwise the two steps.
   */
  override async appendAndSend(
    room: string,
    message: { message: string; user: string },
    layer: ChannelLayer,
    type: string,
  ): Promise<ChatRecord> {
    this.assertOpen();
    if (layer instanceof RedisChannelLayer) {
      const ts = this.now();
      const { user } = message;
      // The step fills in the id: Redis picks it as it appends.
      const sent = (await layer.groupSendWith(
        room,
        { type, message: message.message, room, user, id: '', ts },
        {
          step: APPEND_AND_SEND,
          server: this.shardOf(room).server,
          keys: this.appendKeys(room),
          args: this.appendArgs(room, message, ts),
          field: 'id',
        },
      )) as [string, ...Dropped] | undefined;
      if (sent) {
        const [id, ...dropped] = sent;
        this.count(dropped);
        return { type: 'chat', message: message.message, room, user, id, ts };
      }
    }
    return super.appendAndSend(room, message, layer, type);
  }

  async history(room: string, since?: string): Promise<ChatRecord[]> {
    this.assertOpen();
    if (this.limit === 0) return [];
    const key = this.historyKey(room);
    // Newest first, so a stream left longer by an earlier, bigger limit still yields `limit`.
    const entries = (await this.shardOf(room).command((client) =>
      client.xrevrange(key, '+', since === undefined ? '-' : `(${since}`, 'COUNT', this.limit),
    )) as StreamEntry[];
    const records: ChatRecord[] = [];
    for (let i = entries.length - 1; i >= 0; i--) {
      const record = this.toRecord(room, entries[i]);
      if (record) records.push(record);
    }
    return records;
  }

  async join(room: string, member: string, user: string): Promise<void> {
    this.assertOpen();
    let members = this.local.get(room);
    if (!members) this.local.set(room, (members = new Map()));
    members.set(member, user);
    try {
      await this.eval(this.shardOf(room), JOIN, this.presenceKeys(room), [
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

  async leave(room: string, member: string): Promise<void> {
    // Forget first: even if Redis is away now, a resync will not bring the member back.
    this.forget(room, member);
    // Sockets leave their rooms while the app shuts down; once closed, the sweep drops the rest.
    if (this.closing) return;
    await this.eval(this.shardOf(room), LEAVE, this.presenceKeys(room), [room, this.field(member)]);
  }

  async users(room: string): Promise<string[]> {
    this.assertOpen();
    const names = await this.shardOf(room).command((client) =>
      client.hvals(this.presenceKey(room)),
    );
    return [...new Set(names)].sort();
  }

  /**
   * Reads only `R:active` (rooms with members) of each shard: all of it, or with `limit` each
   * shard's busiest `limit` (O(log n + limit) there), merged into the busiest `limit` overall.
   */
  async rooms(limit?: number): Promise<RoomSummary[]> {
    this.assertOpen();
    if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 0)) {
      throw new TypeError('limit must be an integer >= 0');
    }
    if (limit === 0) return [];
    const replies = await Promise.all(
      this.shards.all.map(
        (shard) =>
          (limit === undefined
            ? shard.command((client) => client.zrange(this.activeKey(), 0, -1, 'WITHSCORES'))
            : shard.run(BUSIEST, [this.activeKey()], [limit])) as Promise<string[]>,
      ),
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

  override onPresenceChange(listener: (room: string) => void): void {
    this.listeners.push(listener);
  }

  /**
   * Deletes every key of this store's prefix (history, presence, heartbeats of all processes)
   * and forgets this process's members. For tests and resets, not for a running deployment.
   */
  async flush(): Promise<void> {
    this.assertOpen();
    this.local.clear();
    await this.shards.deleteUnder(this.root);
  }

  /**
   * Stops the heartbeat and sweep, ends this process's deadline (goodbye: any members still
   * registered go at the next sweep of another process) and closes the connections it opened.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    clearInterval(this.heartbeatTimer);
    clearInterval(this.sweepTimer);
    this.local.clear();
    await Promise.all(
      this.shards.all.map((shard) =>
        // Best effort: with Redis away, the deadline simply runs out.
        this.eval(shard, HEARTBEAT, [this.nodesKey(), this.indexKey()], [this.nodeId, 0]).catch(
          () => undefined,
        ),
      ),
    );
    await this.shards.close();
  }

  // --- heartbeat, resync, sweep ----------------------------------------------------------------

  /**
   * Renews this process's deadline on `shard`; registers its members again when Redis had
   * counted it as gone, or when `resync` says Redis may disagree with what it should hold.
   */
  private async heartbeat(shard: RedisShard, resync = false): Promise<void> {
    if (this.closing || (this.beating.has(shard) && !resync)) return;
    this.beating.add(shard);
    try {
      const lost = await this.eval(
        shard,
        HEARTBEAT,
        [this.nodesKey(), this.indexKey()],
        [this.nodeId, this.presenceTimeoutMs],
      );
      if ((lost === 1 || resync) && !this.closing) await this.resync(shard);
    } catch (error) {
      this.logger.debug(`heartbeat on Redis ${shard.address} failed: ${errorText(error)}`);
    } finally {
      this.beating.delete(shard);
    }
  }

  /** Makes every room of `shard` hold exactly this process's members there. */
  private async resync(shard: RedisShard): Promise<void> {
    // Rooms Redis still lists for this process (some it may have left meanwhile), and its own.
    const known = await shard.command((client) => client.hkeys(this.indexKey()));
    const rooms = new Set(known);
    for (const room of this.local.keys()) if (this.shardOf(room) === shard) rooms.add(room);
    for (const room of rooms) {
      if (this.closing) return;
      const args: string[] = [room, this.nodeId];
      for (const [member, user] of this.local.get(room) ?? []) args.push(member, user);
      const changed = await this.eval(shard, RESYNC, this.presenceKeys(room), args);
      if (changed === 1) this.tell(room);
    }
    if (rooms.size > 0) {
      this.logger.log(`registered this process's members in ${rooms.size} room(s) again`);
    }
  }

  /** Drops the members of processes whose heartbeat ran out, a bounded number of rooms a time. */
  private async sweep(): Promise<void> {
    if (this.closing || this.sweeping) return;
    this.sweeping = true;
    try {
      for (const shard of this.shards.all) {
        for (let round = 0; round < SWEEP_ROUNDS && !this.closing; round++) {
          const swept = (await this.eval(
            shard,
            SWEEP,
            [this.nodesKey(), this.activeKey()],
            [this.root, SWEEP_ROOMS, this.nodeId],
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
   * later commands, and a join or resync overtaken by a leave would bring a member back. These are
   * not the hot path; `append` uses EVALSHA.
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

  // --- records, keys, shards -------------------------------------------------------------------

  /** KEYS of APPEND, and the first of APPEND_AND_SEND. */
  private appendKeys(room: string): string[] {
    const root = this.root;
    return [
      this.historyKey(room),
      `${root}:sizes`,
      `${root}:bytes`,
      `${root}:written`,
      `${root}:evicted-id`,
    ];
  }

  /** ARGV of APPEND, and the first of APPEND_AND_SEND. */
  private appendArgs(
    room: string,
    message: { message: string; user: string },
    ts: number,
  ): Array<string | number> {
    return [
      this.limit,
      this.roomBytes,
      this.maxRooms,
      this.maxBytes,
      this.historyTtlMs,
      this.stored(message, ts),
      recordBytes(message),
      this.root,
      room,
    ];
  }

  private count([trimmed, evicted]: Dropped): void {
    this.stats.historyRecordsTrimmed += trimmed;
    this.stats.historyRoomsEvicted += evicted;
  }

  /** A record as the stream keeps it (its id is the entry's, its room the key's). */
  private stored(message: { message: string; user: string }, ts: number): string {
    return JSON.stringify({ message: message.message, user: message.user, ts });
  }

  private toRecord(room: string, [id, fields]: StreamEntry): ChatRecord | undefined {
    const at = fields.indexOf('r');
    try {
      const stored = JSON.parse(fields[at + 1]) as { message: string; user: string; ts: number };
      return { type: 'chat', message: stored.message, room, user: stored.user, id, ts: stored.ts };
    } catch {
      this.logger.warn(`skipped history entry ${id} of ${room}: it could not be read`);
      return undefined;
    }
  }

  private forget(room: string, member: string): void {
    const members = this.local.get(room);
    if (members?.delete(member) && members.size === 0) this.local.delete(room);
  }

  private shardOf(room: string): RedisShard {
    return this.shards.of(room);
  }

  private field(member: string): string {
    return `${this.nodeId}:${member}`;
  }

  private historyKey(room: string): string {
    return `${this.root}:h:${room}`;
  }

  private presenceKey(room: string): string {
    return `${this.root}:p:${room}`;
  }

  /** KEYS of JOIN, LEAVE and RESYNC. */
  private presenceKeys(room: string): string[] {
    return [this.presenceKey(room), this.activeKey(), this.indexKey()];
  }

  private activeKey(): string {
    return `${this.root}:active`;
  }

  private nodesKey(): string {
    return `${this.root}:nodes`;
  }

  private indexKey(): string {
    return `${this.root}:n:${this.nodeId}`;
  }

  private assertOpen(): void {
    if (this.closing) throw new ChannelLayerClosed();
  }
}
