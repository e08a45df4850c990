import type { ChatRecord } from './room-state.js';

/** How long, and how many, client message ids a room remembers so a resend is not stored twice. */
export interface ResendPolicy {
  /** Milliseconds an id is remembered after its message was stored. */
  readonly windowMs: number;
  /** Ids a room remembers at most; the oldest is forgotten first. */
  readonly perRoom: number;
}

/** The defaults of `resendWindowMs` and `maxResendIds`. */
export const DEFAULT_RESEND_POLICY: ResendPolicy = { windowMs: 300_000, perRoom: 200 };

/** `resendWindowMs` and `maxResendIds`, checked; a `TypeError` naming the option if one is off. */
export function resendPolicy(options: {
  resendWindowMs?: number;
  maxResendIds?: number;
}): ResendPolicy {
  const windowMs = options.resendWindowMs ?? DEFAULT_RESEND_POLICY.windowMs;
  const perRoom = options.maxResendIds ?? DEFAULT_RESEND_POLICY.perRoom;
  if (!Number.isSafeInteger(windowMs) || windowMs < 1) {
    throw new TypeError('resendWindowMs must be an integer >= 1');
  }
  if (!Number.isSafeInteger(perRoom) || perRoom < 0) {
    throw new TypeError('maxResendIds must be an integer >= 0');
  }
  return { windowMs, perRoom };
}

interface Remembered {
  at: number;
  record: Promise<ChatRecord>;
}

/**
 * The ids of one process's recent appends, per room, in the order stored. A room holds at most
 * `perRoom` of them, each for `windowMs`; rooms whose last id left the window are dropped by the
 * next append of any room, so memory follows what was appended lately, not every room ever.
 * The record is kept as a promise, so a resend that arrives while the first is still being
 * stored waits for it.
 */
export class ResendMemory {
  /** Least recently written room first; `last`: when it was. */
  private readonly rooms = new Map<string, { ids: Map<string, Remembered>; last: number }>();

  constructor(
    private readonly policy: ResendPolicy,
    private readonly now: () => number,
  ) {}

  /** The record stored under `key` in `room` within the window, if any. */
  get(room: string, key: string): Promise<ChatRecord> | undefined {
    const remembered = this.rooms.get(room)?.ids.get(key);
    if (!remembered || remembered.at + this.policy.windowMs <= this.now()) return undefined;
    return remembered.record;
  }

  /** Remembers `record` under `key`; forgets what fell out of the window or past the bound. */
  set(room: string, key: string, record: Promise<ChatRecord>): void {
    const { perRoom, windowMs } = this.policy;
    if (perRoom === 0) return;
    const now = this.now();
    const entry = this.rooms.get(room) ?? { ids: new Map<string, Remembered>(), last: now };
    this.rooms.delete(room);
    this.rooms.set(room, entry);
    entry.last = now;
    const { ids } = entry;
    ids.delete(key);
    ids.set(key, { at: now, record });
    for (const [id, old] of ids) {
      if (ids.size <= perRoom && old.at + windowMs > now) break;
      ids.delete(id);
    }
    for (const [name, oldest] of this.rooms) {
      if (name === room || oldest.last + windowMs > now) break;
      this.rooms.delete(name);
    }
  }

  delete(room: string, key: string): void {
    this.rooms.get(room)?.ids.delete(key);
  }

  /** Forgets a room whose history is gone. */
  forgetRoom(room: string): void {
    this.rooms.delete(room);
  }

  clear(): void {
    this.rooms.clear();
  }

  /** Ids remembered, in every room; for metrics. */
  get size(): number {
    let total = 0;
    for (const { ids } of this.rooms.values()) total += ids.size;
    return total;
  }
}
