import type { Logger } from '@nestjs/common';
import type { ChannelLayer } from '../channel-layer/channel-layer.js';
import { errorText } from '../error-text.js';
import type { RoomState } from '../rooms/room-state.js';
import { PRESENCE_UPDATE } from './chat.protocol.js';

/** Sockets per `delayMs` of spacing between a room's announcements: see {@link Presence.due}. */
const PRESENCE_BATCH = 100;

/** What presence needs to know of the gateway's sockets. */
export interface PresenceSockets {
  /** Sockets of this gateway, in every room. */
  count(): number;
  /** Sockets of this gateway in `room`. */
  countIn(room: string): number;
}

/**
 * Tells a room who is in it, `delayMs` after a join or leave: changes in between share one
 * announcement, so a crowd arriving costs one frame per member, not one per arrival.
 */
export class Presence {
  /** Rooms with an announcement pending. */
  private readonly pending = new Map<string, NodeJS.Timeout>();
  /** When each room with members here was last told (performance.now()). */
  private readonly told = new Map<string, number>();
  private stopped = false;

  constructor(
    private readonly settings: { delayMs: number; names: number },
    private readonly rooms: RoomState,
    private readonly layer: ChannelLayer,
    private readonly sockets: PresenceSockets,
    private readonly logger: Logger,
  ) {}

  /** Someone joined or left `room` (here, or on another process as the room store saw). */
  changed(room: string): void {
    if (this.stopped || this.pending.has(room)) return;
    this.arm(room, this.settings.delayMs);
  }

  /** On shutdown: sockets still leave, but nobody is left to tell. */
  stop(): void {
    this.stopped = true;
    this.pending.forEach((timer) => clearTimeout(timer));
    this.pending.clear();
  }

  private arm(room: string, delayMs: number): void {
    this.pending.set(
      room,
      setTimeout(() => this.due(room), delayMs),
    );
  }

  /**
   * An announcement is one write per member, so each room's next one waits until `delayMs` per 100
   * sockets of this gateway (in every room) have passed since its last: all rooms together then
   * cost at most about 1,000 presence writes a second, however the sockets are spread. Checked
   * against the sockets at sending time, not when the change came: a crowd that keeps arriving
   * faster than that holds presence back until it slows, instead of costing a write per member
   * every few arrivals. With up to 100 sockets, every room is told `delayMs` after a change.
   */
  private due(room: string): void {
    const batches = Math.max(1, Math.ceil(this.sockets.count() / PRESENCE_BATCH));
    const now = performance.now();
    const wait = (this.told.get(room) ?? -Infinity) + this.settings.delayMs * batches - now;
    if (wait > 0) return this.arm(room, wait);
    this.pending.delete(room);
    if (this.sockets.countIn(room) > 0) this.told.set(room, now);
    else this.told.delete(room);
    void this.announce(room);
  }

  /**
   * Sent unless another process told the room of this change already (see
   * `RoomState.sendPresence`). A failure is logged: presence heals on the next change.
   */
  private async announce(room: string): Promise<void> {
    try {
      await this.rooms.sendPresence(room, this.layer, PRESENCE_UPDATE, this.settings.names);
    } catch (error) {
      this.logger.warn(`could not announce presence in ${room}: ${errorText(error)}`);
    }
  }
}
