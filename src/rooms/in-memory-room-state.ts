import {
  ChatRecord,
  RoomState,
  RoomStateStats,
  RoomSummary,
  compareRecordIds,
  recordBytes,
} from './room-state.js';
import { HistoryBounds, RoomStateOptions, historyBounds } from './room-state.options.js';
import { resendPolicy } from './resend-memory.js';

export type { RoomStateOptions } from './room-state.options.js';

/** A room's history, oldest first, and what it counts for (`recordBytes`). */
interface History {
  records: ChatRecord[];
  bytes: number;
}

/**
 * Rooms of one process, in memory: the default, like the in-memory channel layer. History and
 * presence are kept apart, so listing rooms walks only rooms with members, and evicting a room's
 * history leaves its members be.
 */
export class InMemoryRoomState extends RoomState {
  override readonly stats: RoomStateStats = {
    historyRoomsEvicted: 0,
    historyRecordsTrimmed: 0,
    resendsDeduplicated: 0,
  };
  private readonly bounds: HistoryBounds;
  private readonly now: () => number;
  /** Least recently appended to first: an append moves its room to the end. */
  private readonly histories = new Map<string, History>();
  /** Rooms with members: member → user name. */
  private readonly members = new Map<string, Map<string, string>>();
  /** `bytes` of every history. */
  private totalBytes = 0;
  private lastMs = 0;
  private seq = 0;

  constructor(options: RoomStateOptions = {}) {
    super();
    this.bounds = historyBounds(options);
    this.now = options.clock ?? Date.now;
    this.resendPolicy = resendPolicy(options);
    this.resendClock = this.now;
  }

  /** Client message ids remembered to catch resends, in every room; for metrics. */
  get resendIds(): number {
    return this.resendsHeld;
  }

  /** Rooms holding history, and their bytes in all; for metrics. */
  get historySize(): { rooms: number; bytes: number } {
    return { rooms: this.histories.size, bytes: this.totalBytes };
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
    if (this.bounds.limit > 0) this.keep(room, record);
    return record;
  }

  async history(room: string, since?: string): Promise<ChatRecord[]> {
    const records = this.histories.get(room)?.records ?? [];
    return since === undefined
      ? records.slice()
      : records.filter((record) => compareRecordIds(record.id, since) > 0);
  }

  async join(room: string, member: string, user: string): Promise<void> {
    let members = this.members.get(room);
    if (!members) this.members.set(room, (members = new Map()));
    members.set(member, user);
  }

  async leave(room: string, member: string): Promise<void> {
    const members = this.members.get(room);
    if (members?.delete(member) && members.size === 0) this.members.delete(room);
  }

  async users(room: string): Promise<string[]> {
    const members = this.members.get(room);
    return members ? [...new Set(members.values())].sort() : [];
  }

  async rooms(limit?: number): Promise<RoomSummary[]> {
    let summaries: RoomSummary[] = [];
    for (const [room, members] of this.members) summaries.push({ room, members: members.size });
    if (limit !== undefined && summaries.length > limit) {
      summaries = summaries
        .sort((a, b) => b.members - a.members || byName(a, b))
        .slice(0, Math.max(0, limit));
    }
    return summaries.sort(byName);
  }

  async close(): Promise<void> {
    this.histories.clear();
    this.members.clear();
    this.totalBytes = 0;
    this.clearResends();
  }

  /** Adds `record` to its room's history, then trims the room, then evicts rooms. */
  private keep(room: string, record: ChatRecord): void {
    let history = this.histories.get(room);
    if (history) this.histories.delete(room);
    else history = { records: [], bytes: 0 };
    this.histories.set(room, history);
    const size = recordBytes(record);
    history.records.push(record);
    history.bytes += size;
    this.totalBytes += size;
    const { records } = history;
    const { limit, roomBytes, maxRooms, maxBytes } = this.bounds;
    while (records.length > 1 && (records.length > limit || history.bytes > roomBytes)) {
      const dropped = recordBytes(records.shift() as ChatRecord);
      history.bytes -= dropped;
      this.totalBytes -= dropped;
      this.stats.historyRecordsTrimmed++;
    }
    // The room just written to is the newest, so it goes last, and only if it alone is too big.
    for (const [name, oldest] of this.histories) {
      if (this.histories.size <= maxRooms && this.totalBytes <= maxBytes) break;
      this.histories.delete(name);
      this.forgetResends(name);
      this.totalBytes -= oldest.bytes;
      this.stats.historyRoomsEvicted++;
    }
  }
}

function byName(a: RoomSummary, b: RoomSummary): number {
  return a.room.localeCompare(b.room);
}
