import type { ChannelLayer } from '../channel-layer/channel-layer.js';
import { DEFAULT_RESEND_POLICY, ResendMemory, ResendPolicy } from './resend-memory.js';

/** A chat message as kept in a room's history and sent on the wire (the `chat` frame). */
export interface ChatRecord {
  type: 'chat';
  message: string;
  room: string;
  user: string;
  /** Unique and increasing within its room: `<ms>-<seq>`; compare with {@link compareRecordIds}. */
  id: string;
  /** Milliseconds since the epoch, when the server accepted the message. */
  ts: number;
}

/**
 * The bytes a record counts for, against `historyBytes` and `maxHistoryBytes`: its message's and
 * user name's UTF-8 bytes plus 80 for the rest (id, time, room, framing). The same in every store,
 * so a bound means the same whichever store keeps the history.
 */
export function recordBytes(record: { message: string; user: string }): number {
  return Buffer.byteLength(record.message) + Buffer.byteLength(record.user) + 80;
}

/** What a store has counted since it was created, of this process's calls; read by metrics. */
export interface RoomStateStats {
  /** Rooms whose whole history was deleted to keep within `maxRooms` (or `maxHistoryBytes`). */
  historyRoomsEvicted: number;
  /** Records dropped from a room's history to keep it within `historyLimit` and `historyBytes`. */
  historyRecordsTrimmed: number;
  /** Appends not stored because their resend key was stored already, within the window. */
  resendsDeduplicated?: number;
}

/** A room and how many sockets are in it. */
export interface RoomSummary {
  room: string;
  members: number;
}

/**
 * What a room remembers beyond its group: the last messages (history) and who is there
 * (presence). This abstract class is the contract and the DI token. Implementations are in memory
 * (one process) or in Redis (every process sees the same rooms).
 *
 * - History keeps the last records of each room, oldest first; ids are unique and increase within
 *   a room. After each append the room's oldest records are dropped while it holds more than
 *   `historyLimit` records or more than `historyBytes` bytes ({@link recordBytes}); the newest
 *   record is always kept, even when it alone is larger than `historyBytes`.
 * - Rooms with history go least recently appended to first: when more than `maxRooms` rooms hold
 *   history, or they hold more than `maxHistoryBytes` in all (on Redis: per shard), the whole
 *   history of the room least recently appended to is deleted, until within bounds. Presence is never evicted: a room's members stay however old its history is.
 * - Presence counts members (one per socket) and reports user names, sorted, each once however
 *   many sockets (tabs) a user has.
 */
export abstract class RoomState {
  /**
   * Records trimmed and rooms evicted by this store since it was created, counted by the process
   * whose append caused them; read at scrape time. A store that counts nothing reports zeros.
   */
  readonly stats: Readonly<RoomStateStats> = { historyRoomsEvicted: 0, historyRecordsTrimmed: 0 };

  /**
   * How long and how many resend keys a room remembers; a store sets it from its options
   * (`resendWindowMs`, `maxResendIds`).
   */
  protected resendPolicy: ResendPolicy = DEFAULT_RESEND_POLICY;
  /** The clock resend windows are timed by (ms since the epoch). */
  protected resendClock: () => number = Date.now;
  private resends?: ResendMemory;

  /** Stamps `message` with an id and a time, keeps it in the room's history, returns the record. */
  abstract append(room: string, message: { message: string; user: string }): Promise<ChatRecord>;

  /**
   * Appends `message` as {@link append} does, then sends the record to the room's group on
   * `layer` as the layer message `{ ...record, type }`; resolves with the record. The default
   * does exactly that, in two steps. A store may do both in one step: `RedisRoomState` on a
   * `RedisChannelLayer` appends and publishes in one script, so every receiver gets a room's
   * messages in id order whichever process sent them. Rejects with the store's or the layer's
   * error (`ChannelLayerUnavailable`, ...); after a failed send the record may stay in history.
   *
   * With `resendKey` (the gateway's: the sender and the client's message id), the append is
   * idempotent: the same key in the same room again, within `resendWindowMs` and among the room's
   * last `maxResendIds` keys, stores and sends nothing and resolves with the first record once
   * that one is published (or rejects as it did). The default, in two steps, remembers a key in
   * this process when its record is stored, and asks {@link storedResend} and
   * {@link rememberResend} for what other processes did: a resend that reaches another process
   * while the first is still being sent may then be stored twice, never acknowledged unsent.
   * `RedisRoomState` on a `RedisChannelLayer` checks, appends, remembers and publishes in one
   * script, exactly once whichever process the resend reaches.
   */
  async appendAndSend(
    room: string,
    message: { message: string; user: string },
    layer: ChannelLayer,
    type: string,
    resendKey?: string,
  ): Promise<ChatRecord> {
    if (resendKey === undefined) {
      const record = await this.append(room, message);
      await layer.groupSend(room, { ...record, type });
      return record;
    }
    return this.once(room, resendKey, async () => {
      const earlier = await this.storedResend(room, resendKey, message);
      if (earlier) {
        this.countResend();
        return earlier;
      }
      const record = await this.append(room, message);
      await layer.groupSend(room, { ...record, type });
      await this.rememberResend(room, resendKey, record);
      return record;
    });
  }

  /**
   * Runs `task` unless `resendKey` ran in `room` in this process within the window: then its
   * result, once it has settled. A task that fails is forgotten, so the resend is tried again.
   */
  protected async once(
    room: string,
    resendKey: string,
    task: () => Promise<ChatRecord>,
  ): Promise<ChatRecord> {
    const resends = (this.resends ??= new ResendMemory(this.resendPolicy, this.resendClock));
    const earlier = resends.get(room, resendKey);
    if (earlier) {
      const record = await earlier;
      this.countResend();
      return record;
    }
    const done = task();
    resends.set(room, resendKey, done);
    try {
      return await done;
    } catch (error) {
      resends.delete(room, resendKey);
      throw error;
    }
  }

  /**
   * The record other processes stored under `resendKey` within the window (`message` is what
   * was resent); none by default.
   */
  protected async storedResend(
    room: string,
    resendKey: string,
    message: { message: string; user: string },
  ): Promise<ChatRecord | undefined> {
    void room;
    void resendKey;
    void message;
    return undefined;
  }

  /** Tells other processes `record` was stored and sent under `resendKey`; nothing by default. */
  protected async rememberResend(
    room: string,
    resendKey: string,
    record: ChatRecord,
  ): Promise<void> {
    void room;
    void resendKey;
    void record;
  }

  /** Resend keys this process remembers; for metrics. */
  protected get resendsHeld(): number {
    return this.resends?.size ?? 0;
  }

  /** Forgets every resend key of `room` (its history is gone); for stores that evict. */
  protected forgetResends(room: string): void {
    this.resends?.forgetRoom(room);
  }

  protected countResend(): void {
    const stats = this.stats as RoomStateStats;
    stats.resendsDeduplicated = (stats.resendsDeduplicated ?? 0) + 1;
  }

  /**
   * A socket's way into a room, in one call: adds `member`, a channel of `layer`, to the room's
   * group there, then to its presence as `user`, then reads its history after `since` (all of it
   * without). A message sent to the group after the add reaches the channel, and one sent before
   * it is in the history returned: the caller that drops what it receives up to the newest id
   * returned sees no gap and no duplicate. The default does the three in turn; `RedisRoomState`
   * on a `RedisChannelLayer` does them in one script, one round trip, together with the room's
   * other joins that came while one was in flight. Rejects with the store's or the layer's error,
   * the member then still to be discarded from the group and left; leave only once this has
   * settled.
   */
  async enter(
    room: string,
    member: string,
    user: string,
    layer: ChannelLayer,
    since?: string,
  ): Promise<ChatRecord[]> {
    await layer.groupAdd(room, member);
    await this.join(room, member, user);
    return this.history(room, since);
  }

  /**
   * A socket's way out of a room, in one call: discards `member` from the room's group on `layer`
   * and removes it from presence. Both are tried whatever the other does (one failing, Redis
   * away, must not keep the other); rejects with the first failure. The default does the two at
   * once; `RedisRoomState` on a `RedisChannelLayer` does them in one script, together with the
   * room's other leaves that came while one was in flight.
   */
  async exit(room: string, member: string, layer: ChannelLayer): Promise<void> {
    const [discarded, left] = await Promise.allSettled([
      layer.groupDiscard(room, member),
      this.leave(room, member),
    ]);
    if (discarded.status === 'rejected') throw discarded.reason;
    if (left.status === 'rejected') throw left.reason;
  }

  /**
   * Tells the room who is in it: sends `{ type, room, users, count }` (at most `names` of its user
   * names, sorted, each once; `count` of them all) to the room's group on `layer`, unless it was
   * sent since the room's members last changed, by any process sharing the store. Every process
   * that saw a change may call this; the members get one frame for it. Resolves true when it
   * sent. The default, and the in-memory store, which one process holds, send every time;
   * `RedisRoomState` checks and sends in one script on a `RedisChannelLayer`.
   */
  async sendPresence(
    room: string,
    layer: ChannelLayer,
    type: string,
    names: number,
  ): Promise<boolean> {
    const users = await this.users(room);
    await layer.groupSend(room, { type, room, users: users.slice(0, names), count: users.length });
    return true;
  }

  /** The room's history, oldest first; only records after `since` when given. */
  abstract history(room: string, since?: string): Promise<ChatRecord[]>;

  /** Adds a member (one socket) with its user name. */
  abstract join(room: string, member: string, user: string): Promise<void>;

  /** Removes a member. */
  abstract leave(room: string, member: string): Promise<void>;

  /** The room's user names, sorted, each once. */
  abstract users(room: string): Promise<string[]>;

  /**
   * Rooms with at least one member, sorted by name: all of them, or with `limit` only the `limit`
   * with the most members (between rooms with as many, the first by name). It never walks rooms
   * without members, however many hold history.
   */
  abstract rooms(limit?: number): Promise<RoomSummary[]>;

  /**
   * Registers a listener for presence changes this process did not cause (a process that died
   * without leaving, noticed by another); the gateway tells the room.
   */
  onPresenceChange(listener: (room: string) => void): void {
    void listener;
  }

  /** Releases what the store holds. Safe to call twice. */
  abstract close(): Promise<void>;

  /** Drops the resend keys this process remembers; for a store's `close`. */
  protected clearResends(): void {
    this.resends?.clear();
  }
}

/** Orders record ids (`<ms>-<seq>`); negative when `a` came first. */
export function compareRecordIds(a: string, b: string): number {
  const [aMs, aSeq] = splitId(a);
  const [bMs, bSeq] = splitId(b);
  return aMs !== bMs ? aMs - bMs : aSeq - bSeq;
}

/** True for ids of the `<ms>-<seq>` form. */
export function isRecordId(id: unknown): id is string {
  return typeof id === 'string' && /^\d{1,16}-\d{1,16}$/.test(id);
}

function splitId(id: string): [number, number] {
  const dash = id.indexOf('-');
  return [Number(id.slice(0, dash)), Number(id.slice(dash + 1))];
}
