import { ChatRecord, RoomState, RoomSummary, compareRecordIds } from './room-state';

/** Options of the room stores. */
export interface RoomStateOptions {
  /**
   * Records kept per room.
   * @default 50
   */
  historyLimit?: number;
  /**
   * Bytes of history kept per room (`recordBytes` of each record): the oldest records go
   * while a room holds more; the newest is always kept.
   * @default 262144 (256 KiB)
   */
  historyBytes?: number;
  /**
   * Rooms whose history is kept (on Redis: per shard); past it, the history of the room least
   * recently appended to is deleted. Presence is not evicted.
   * @default 10000
   */
  maxRooms?: number;
  /**
   * In memory only: bytes of history kept over all rooms (`recordBytes`); past it, the
   * history of the room least recently appended to is deleted. `RedisRoomState` ignores it: there
   * `maxRooms` × `historyBytes` bounds each shard.
   * @default 67108864 (64 MiB)
   */
  maxHistoryBytes?: number;
  /**
   * Milliseconds since the epoch; swap it in tests.
   * @default Date.now
   */
  clock?: () => number;
}

interface Room {
  history: ChatRecord[];
  /** member → user name */
  members: Map<string, string>;
}

/** Rooms of one process, in memory: the default, like the in-memory channel layer. */
export class InMemoryRoomState extends RoomState {
  private readonly limit: number;
  private readonly now: () => number;
  private readonly byName = new Map<string, Room>();
  private lastMs = 0;
  private seq = 0;

  constructor(options: RoomStateOptions = {}) {
    super();
    this.limit = options.historyLimit ?? 50;
    if (!Number.isInteger(this.limit) || this.limit < 0) {
      throw new TypeError('historyLimit must be an integer >= 0');
    }
    this.now = options.clock ?? Date.now;
  }

  async append(room: string, message: { message: string; user: string }): Promise<ChatRecord> {
    const ts = this.now();
    // Ids are <ms>-<seq> like Redis stream ids, so both stores hand out the same shape.
    if (ts > this.lastMs) {
      this.lastMs = ts;
      this.seq = 0;
    } else {
      this.seq++;
    }
    const record: ChatRecord = {
      type: 'chat',
      message: message.message,
      room,
      user: message.user,
      id: `${this.lastMs}-${this.seq}`,
      ts,
    };
    if (this.limit > 0) {
      const state = this.roomOf(room);
      state.history.push(record);
      if (state.history.length > this.limit) state.history.shift();
    }
    return record;
  }

  async history(room: string, since?: string): Promise<ChatRecord[]> {
    const history = this.byName.get(room)?.history ?? [];
    return since === undefined
      ? history.slice()
      : history.filter((record) => compareRecordIds(record.id, since) > 0);
  }

  async join(room: string, member: string, user: string): Promise<void> {
    this.roomOf(room).members.set(member, user);
  }

  async leave(room: string, member: string): Promise<void> {
    const state = this.byName.get(room);
    state?.members.delete(member);
    if (state && state.members.size === 0 && state.history.length === 0) this.byName.delete(room);
  }

  async users(room: string): Promise<string[]> {
    const members = this.byName.get(room)?.members;
    return members ? [...new Set(members.values())].sort() : [];
  }

  async rooms(): Promise<RoomSummary[]> {
    const summaries: RoomSummary[] = [];
    for (const [room, state] of this.byName) {
      if (state.members.size > 0) summaries.push({ room, members: state.members.size });
    }
    return summaries.sort((a, b) => a.room.localeCompare(b.room));
  }

  async close(): Promise<void> {
    this.byName.clear();
  }

  private roomOf(room: string): Room {
    let state = this.byName.get(room);
    if (!state) this.byName.set(room, (state = { history: [], members: new Map() }));
    return state;
  }
}
