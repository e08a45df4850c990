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
   * Bytes of history kept over all rooms (`recordBytes`; on Redis: per shard); past it, the
   * history of the rooms least recently appended to is deleted until within it, the room just
   * appended to last. Presence is not evicted.
   * @default 67108864 (64 MiB)
   */
  maxHistoryBytes?: number;
  /**
   * Milliseconds a client message id (`{"message":..., "id":...}`) is remembered in its room, so
   * the same id resent by the same user is not stored or delivered twice.
   * @default 300000 (5 minutes)
   */
  resendWindowMs?: number;
  /**
   * Client message ids a room remembers at most (the oldest is forgotten first): bounds what
   * resend ids hold, beside the history bounds. 0 remembers none (a resend is stored again).
   * @default 200
   */
  maxResendIds?: number;
  /**
   * Milliseconds since the epoch; swap it in tests.
   * @default Date.now
   */
  clock?: () => number;
}

/** The history bounds of {@link RoomStateOptions}, checked; the same rules in every store. */
export interface HistoryBounds {
  /** `historyLimit`: records per room. */
  readonly limit: number;
  /** `historyBytes`: bytes per room. */
  readonly roomBytes: number;
  /** `maxRooms`: rooms with history. */
  readonly maxRooms: number;
  /** `maxHistoryBytes`: bytes of history in all. */
  readonly maxBytes: number;
}

/** The bounds `options` set, with their defaults; a `TypeError` naming the option if one is off. */
export function historyBounds(options: RoomStateOptions): HistoryBounds {
  return {
    limit: atLeast(options.historyLimit ?? 50, 0, 'historyLimit'),
    roomBytes: atLeast(options.historyBytes ?? 262_144, 0, 'historyBytes'),
    maxRooms: atLeast(options.maxRooms ?? 10_000, 1, 'maxRooms'),
    maxBytes: atLeast(options.maxHistoryBytes ?? 67_108_864, 1, 'maxHistoryBytes'),
  };
}

function atLeast(value: number, min: number, name: string): number {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new TypeError(`${name} must be an integer >= ${min}`);
  }
  return value;
}
