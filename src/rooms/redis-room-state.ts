import { Inject, Injectable, Logger, Optional } from '@nestjs/common';
import { ChannelLayer, ChannelMessage } from '../channel-layer/channel-layer.js';
import { ChannelLayerClosed } from '../channel-layer/channel-layer.errors.js';
import { positiveSeconds } from '../channel-layer/channel-names.js';
import { randomName } from '../channel-layer/random-name.js';
import { RedisChannelLayer } from '../channel-layer/redis-channel-layer.js';
import { Batches } from '../redis/batches.js';
import { RedisShard } from '../redis/redis-shard.js';
import { DEFAULT_REDIS_HOSTS, RedisShards, keyPrefix } from '../redis/redis-shards.js';
import { APPEND, APPEND_AND_SEND, REMEMBER } from './redis-history-scripts.js';
import { RedisPresence } from './redis-presence.js';
import { ANNOUNCE, CLAIM_ANNOUNCEMENT, ENTER, EXIT } from './redis-presence-scripts.js';
import { RoomKeys } from './redis-room-keys.js';
import { REDIS_ROOM_STATE_OPTIONS } from './redis-room-state.options.js';
import type { RedisRoomStateOptions } from './redis-room-state.options.js';
import { ChatRecord, RoomState, RoomStateStats, RoomSummary, recordBytes } from './room-state.js';
import { HistoryBounds, historyBounds } from './room-state.options.js';
import { resendPolicy } from './resend-memory.js';
import { errorText } from '../error-text.js';

export * from './redis-room-state.options.js';

/**
 * Joins (or leaves) of one room in one script at most: bounds the script's time and its reply
 * (a history read for each distinct point joins resume from).
 */
const BATCH = 100;

/** A join waiting for its room's batch. */
interface Join {
  readonly member: string;
  readonly user: string;
  readonly since: string | undefined;
}

/** The joins and leaves of one layer, batched per room. */
interface RoomBatches {
  readonly enter: Batches<Join, ChatRecord[] | undefined>;
  readonly exit: Batches<string, boolean>;
}

/** Stream entries as ioredis returns them: `[id, [field, value, ...]]`. */
type StreamEntry = [string, string[]];
/** What APPEND and APPEND_AND_SEND report besides the id: records trimmed, rooms evicted. */
type Dropped = [trimmed: number, evicted: number];
/** What an append script answers: the id and what it dropped, or a resend's first id and ts. */
type Appended = [id: string, ...dropped: Dropped] | [resent: null, id: string, ts: number];

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
 * appends (Redis picks the id) and publishes the chat message on the room's group at once, so
 * every receiver, on every process, gets a room's messages in id order, and resuming from the
 * last id seen loses nothing.
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
  override readonly stats: RoomStateStats = {
    historyRoomsEvicted: 0,
    historyRecordsTrimmed: 0,
    resendsDeduplicated: 0,
  };

  private readonly logger = new Logger(RedisRoomState.name);
  private readonly bounds: HistoryBounds;
  private readonly now: () => number;
  /** `<prefix>:rooms`: every key of the store is under it. */
  private readonly root: string;
  /** Each shard's key layout, by its index. */
  private readonly shardKeys: RoomKeys[];
  private readonly historyTtlMs: number;
  private readonly shards: RedisShards;
  private readonly presence: RedisPresence;
  /** Joins and leaves batched per room, for each layer they run in. */
  private readonly batches = new WeakMap<RedisChannelLayer, RoomBatches>();
  private closing?: Promise<void>;

  constructor(@Optional() @Inject(REDIS_ROOM_STATE_OPTIONS) options: RedisRoomStateOptions = {}) {
    super();
    this.bounds = historyBounds(options);
    this.now = options.clock ?? Date.now;
    this.resendPolicy = resendPolicy(options);
    const prefix = keyPrefix(options.prefix);
    this.root = new RoomKeys(prefix).root;
    this.historyTtlMs = Math.round(
      positiveSeconds(options.historyExpiry ?? 604_800, 'historyExpiry') * 1000,
    );
    const heartbeatMs = positiveSeconds(options.heartbeatInterval ?? 5, 'heartbeatInterval') * 1000;
    const presenceTimeoutMs =
      positiveSeconds(options.presenceTimeout ?? 20, 'presenceTimeout') * 1000;
    if (presenceTimeoutMs <= heartbeatMs) {
      throw new TypeError('presenceTimeout must be longer than heartbeatInterval');
    }
    const sweepMs = positiveSeconds(options.sweepInterval ?? 5, 'sweepInterval') * 1000;

    this.shards = new RedisShards({
      hosts: options.hosts ?? DEFAULT_REDIS_HOSTS,
      timeout: options.timeout ?? 1000,
      owner: 'store',
      logger: this.logger,
      events: { recovered: (shard) => this.presence.recovered(shard) },
    });
    this.shardKeys = this.shards.all.map((shard) => new RoomKeys(prefix, shard.tag));
    this.presence = new RedisPresence({
      nodeId: this.nodeId,
      keysOf: (shard) => this.keysOf(shard),
      shards: this.shards,
      logger: this.logger,
      heartbeatMs,
      presenceTimeoutMs,
      sweepMs,
    });
  }

  async append(room: string, message: { message: string; user: string }): Promise<ChatRecord> {
    this.assertOpen();
    const ts = this.now();
    const shard = this.shards.of(room);
    const keys = this.keysOf(shard);
    const args = this.appendArgs(keys, room, message, ts, '');
    const reply = await shard.run(APPEND, keys.append(room), args);
    return this.appended(room, message, ts, reply as Appended).record;
  }

  /** A resend key stored in Redis within the window, by any process. */
  protected override async storedResend(
    room: string,
    resendKey: string,
    message: { message: string; user: string },
  ): Promise<ChatRecord | undefined> {
    const shard = this.shards.of(room);
    const key = this.keysOf(shard).resends(room);
    const seen = await shard.command((client) => client.hget(key, resendKey));
    const match = seen ? /^(\d+):(\d+):(.+)$/.exec(seen) : null;
    if (!match || Number(match[1]) + this.resendPolicy.windowMs <= this.now()) return undefined;
    const { message: text, user } = message;
    return { type: 'chat', message: text, room, user, id: match[3], ts: Number(match[2]) };
  }

  protected override async rememberResend(
    room: string,
    resendKey: string,
    record: ChatRecord,
  ): Promise<void> {
    const { windowMs, perRoom } = this.resendPolicy;
    if (perRoom === 0) return;
    const shard = this.shards.of(room);
    const keys = this.keysOf(shard).append(room).slice(5);
    await shard
      .run(REMEMBER, keys, [resendKey, record.ts, record.id, windowMs, perRoom])
      .catch((error: unknown) => {
        // The message is out; only a resend to another process could now be stored again.
        this.logger.warn(`could not remember a resend key of ${room}: ${errorText(error)}`);
      });
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
    resendKey?: string,
  ): Promise<ChatRecord> {
    this.assertOpen();
    if (layer instanceof RedisChannelLayer) {
      const ts = this.now();
      const { user } = message;
      const shard = this.shards.of(room);
      const keys = this.keysOf(shard);
      // The step fills in the id: Redis picks it as it appends.
      const sent = await layer.groupSendWith(
        room,
        { type, message: message.message, room, user, id: '', ts },
        {
          step: APPEND_AND_SEND,
          server: shard.server,
          keys: keys.append(room),
          args: this.appendArgs(keys, room, message, ts, resendKey ?? ''),
          field: 'id',
        },
      );
      if (sent) return this.appended(room, message, ts, sent as Appended).record;
    }
    return super.appendAndSend(room, message, layer, type, resendKey);
  }

  async history(room: string, since?: string): Promise<ChatRecord[]> {
    this.assertOpen();
    const { limit } = this.bounds;
    if (limit === 0) return [];
    const shard = this.shards.of(room);
    const key = this.keysOf(shard).history(room);
    // Newest first, so a stream left longer by an earlier, bigger limit still yields `limit`.
    const entries = (await shard.command((client) =>
      client.xrevrange(key, '+', rangeStart(since), 'COUNT', limit),
    )) as StreamEntry[];
    return this.records(room, entries);
  }

  /**
   * One script, one round trip, when `layer` can run the join in its `groupAddWith` (the room's
   * group and stream on one Redis): the group add, the presence join and the history read at
   * once, with the room's other joins that came while one was in flight; otherwise the three in
   * turn.
   */
  override async enter(
    room: string,
    member: string,
    user: string,
    layer: ChannelLayer,
    since?: string,
  ): Promise<ChatRecord[]> {
    this.assertOpen();
    if (layer instanceof RedisChannelLayer && this.canRunWith(layer, room, member)) {
      const history = await this.presence.joinWith(room, member, user, () =>
        this.batchesOf(layer).enter.add(room, { member, user, since }),
      );
      if (history !== undefined) return history;
    }
    return super.enter(room, member, user, layer, since);
  }

  /**
   * One script when `layer` can run the leave in its `groupDiscardWith`, as `enter`: the group
   * discard and the presence leave at once, with the room's other leaves that came while one was
   * in flight; otherwise the two at once.
   */
  override async exit(room: string, member: string, layer: ChannelLayer): Promise<void> {
    if (layer instanceof RedisChannelLayer && this.canRunWith(layer, room, member)) {
      const done = await this.presence.leaveWith(room, member, () =>
        this.batchesOf(layer).exit.add(room, member),
      );
      if (done) return;
    }
    return super.exit(room, member, layer);
  }

  /**
   * Checks, marks told and sends in one script when `layer` can run it in its `groupSendWith`;
   * otherwise checks and marks, then sends: then an announcement may reach members after a later
   * one, if its send is held up longer than the next change takes to be announced.
   */
  override async sendPresence(
    room: string,
    layer: ChannelLayer,
    type: string,
    names: number,
  ): Promise<boolean> {
    this.assertOpen();
    const shard = this.shards.of(room);
    const keys = [this.keysOf(shard).presence(room), this.keysOf(shard).versions(room)];
    const args = [names, JSON.stringify({ type, room }).slice(0, -1)];
    if (layer instanceof RedisChannelLayer) {
      const sent = await layer.groupSendWith(
        room,
        { type, room },
        { step: ANNOUNCE, server: shard.server, keys, args },
      );
      if (sent) return typeof sent[0] === 'string';
    }
    const frame = await shard.run(CLAIM_ANNOUNCEMENT, keys, args);
    if (typeof frame !== 'string') return false;
    await layer.groupSend(room, JSON.parse(frame) as ChannelMessage);
    return true;
  }

  async join(room: string, member: string, user: string): Promise<void> {
    this.assertOpen();
    await this.presence.join(room, member, user);
  }

  async leave(room: string, member: string): Promise<void> {
    await this.presence.leave(room, member);
  }

  async users(room: string): Promise<string[]> {
    this.assertOpen();
    return this.presence.users(room);
  }

  /** Reads only the rooms with members, of each shard; see `RoomState.rooms`. */
  async rooms(limit?: number): Promise<RoomSummary[]> {
    this.assertOpen();
    return this.presence.rooms(limit);
  }

  override onPresenceChange(listener: (room: string) => void): void {
    this.presence.onChange(listener);
  }

  /**
   * Deletes every key of this store's prefix (history, presence, heartbeats of all processes)
   * and forgets this process's members. For tests and resets, not for a running deployment.
   */
  async flush(): Promise<void> {
    this.assertOpen();
    this.presence.forgetAll();
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
    await this.presence.close();
    await this.shards.close();
  }

  // --- records ---------------------------------------------------------------------------------

  /** The record an append script stored, or the first one of its resend key. */
  private appended(
    room: string,
    message: { message: string; user: string },
    ts: number,
    reply: Appended,
  ): { record: ChatRecord; stored: boolean } {
    const { message: text, user } = message;
    if (reply[0] === null) {
      const [, id, first] = reply;
      this.countResend();
      return { record: { type: 'chat', message: text, room, user, id, ts: first }, stored: false };
    }
    const [id, ...dropped] = reply;
    this.count(dropped);
    return { record: { type: 'chat', message: text, room, user, id, ts }, stored: true };
  }

  private canRunWith(layer: RedisChannelLayer, room: string, member: string): boolean {
    return layer.canRunGroupStep(room, [member], this.shards.of(room).server);
  }

  private batchesOf(layer: RedisChannelLayer): RoomBatches {
    let batches = this.batches.get(layer);
    if (!batches) {
      batches = {
        enter: new Batches((room, joins) => this.enterAll(layer, room, joins), BATCH),
        exit: new Batches((room, members) => this.exitAll(layer, room, members), BATCH),
      };
      this.batches.set(layer, batches);
    }
    return batches;
  }

  /** One `ENTER` for `joins` of `room`; each join's history, or undefined for all if not run. */
  private async enterAll(
    layer: RedisChannelLayer,
    room: string,
    joins: Join[],
  ): Promise<Array<ChatRecord[] | undefined>> {
    const shard = this.shards.of(room);
    const keys = this.keysOf(shard);
    const args: Array<string | number> = [room, this.bounds.limit, joins.length];
    for (const join of joins) {
      args.push(this.presence.field(join.member), join.user, rangeStart(join.since));
    }
    const reply = await layer.groupAddWith(
      room,
      joins.map((join) => join.member),
      {
        step: ENTER,
        server: shard.server,
        keys: [...keys.members(room, this.nodeId), keys.history(room)],
        args,
      },
    );
    if (reply === undefined) return joins.map(() => undefined);
    const [reads, which] = reply as [StreamEntry[][], number[]];
    // Joins from the same point share the records, read once; each gets its own array.
    const histories = reads.map((entries) => this.records(room, entries));
    return which.map((at) => histories[at - 1].slice());
  }

  /** One `EXIT` for `members` of `room`; whether it ran, for each. */
  private async exitAll(
    layer: RedisChannelLayer,
    room: string,
    members: string[],
  ): Promise<boolean[]> {
    const shard = this.shards.of(room);
    const done = await layer.groupDiscardWith(room, members, {
      step: EXIT,
      server: shard.server,
      keys: this.keysOf(shard).members(room, this.nodeId),
      args: [room, members.length, ...members.map((member) => this.presence.field(member))],
    });
    return members.map(() => done !== undefined);
  }

  private keysOf(shard: RedisShard): RoomKeys {
    return this.shardKeys[shard.index];
  }

  /** ARGV of APPEND and APPEND_AND_SEND; `resendKey` '' for none. */
  private appendArgs(
    keys: RoomKeys,
    room: string,
    message: { message: string; user: string },
    ts: number,
    resendKey: string,
  ): Array<string | number> {
    return [
      this.bounds.limit,
      this.bounds.roomBytes,
      this.bounds.maxRooms,
      this.bounds.maxBytes,
      this.historyTtlMs,
      this.stored(message, ts),
      recordBytes(message),
      keys.root,
      room,
      resendKey,
      this.resendPolicy.windowMs,
      this.resendPolicy.perRoom,
      ts,
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

  /** Records of stream entries read newest first, oldest first. */
  private records(room: string, entries: StreamEntry[]): ChatRecord[] {
    const records: ChatRecord[] = [];
    for (let i = entries.length - 1; i >= 0; i--) {
      const record = this.toRecord(room, entries[i]);
      if (record) records.push(record);
    }
    return records;
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

  private assertOpen(): void {
    if (this.closing) throw new ChannelLayerClosed();
  }
}

/** Where a newest-first read of the records after `since` stops: exclusive of `since`. */
function rangeStart(since: string | undefined): string {
  return since === undefined ? '-' : `(${since}`;
}
