import type { Logger } from '@nestjs/common';
import type { ChannelLayer, ChannelMessage } from '../channel-layer/channel-layer.js';
import { errorText } from '../error-text.js';
import { ChatRecord, RoomState, compareRecordIds } from '../rooms/room-state.js';
import type { ChatMetrics } from './chat-metrics.js';
import { userGroup } from './chat-rooms.js';
import type { ChatSession } from './chat-session.js';
import { CHAT_MESSAGE, CONNECTION_ESTABLISHED, HistoryFrame } from './chat.protocol.js';
import { Connection, ConnectionState } from './connection.js';
import { Outbox, TextFrame } from './outbox.js';
import type { Presence } from './presence.js';

/** History reads a catch-up tries (250, 500 ms apart) before it leaves the gap. */
const CATCH_UP_TRIES = 3;

/** Whether record `id` is newer than `newest` (anything is, when nothing was given). */
function isNewer(id: string, newest: string | undefined): boolean {
  return newest === undefined || compareRecordIds(id, newest) > 0;
}

/** Where a catch-up of `members` reads from: the oldest of their newest records, if all have one. */
function oldestOf(members: readonly Connection[]): string | undefined {
  let oldest: string | undefined;
  for (const { newest } of members) {
    if (newest === undefined) return undefined;
    if (oldest === undefined || compareRecordIds(newest, oldest) < 0) oldest = newest;
  }
  return oldest;
}

/** The seed's greeting, encoded once for every socket. */
const GREETING = new TextFrame(CONNECTION_ESTABLISHED);

/**
 * A socket's way into its room and out again: its layer channel in the room's group, its name in
 * presence, and the greeting with the history it resumes from.
 */
export class RoomMembership {
  constructor(
    private readonly layer: ChannelLayer,
    private readonly rooms: RoomState,
    private readonly presence: Presence,
    private readonly outbox: Outbox,
    private readonly metrics: ChatMetrics,
    private readonly logger: Logger,
    /** A join's greeting and history together queue at most this (`maxBufferedBytes`). */
    private readonly maxGreetingBytes: number,
    /** Where the room's messages for a joined socket go. */
    private readonly deliver: (connection: Connection, message: ChannelMessage) => boolean,
  ) {}

  /**
   * Joins the room, then greets: greeting, history, then whatever arrived meanwhile (presence,
   * messages newer than the history), so the client sees no gap and no duplicate. `false` when the
   * socket closed while joining (what it held is given back); throws when the layer or the room
   * store fails, with what it held still to give back by {@link leave}.
   */
  async join(connection: Connection, session: ChatSession): Promise<boolean> {
    const { room } = connection;
    const channel = await this.layer.newChannel('chat');
    connection.channel = channel;
    connection.detach = this.layer.attach(channel, (message) => {
      if (connection.state === ConnectionState.Joined && !connection.catchingUp) {
        return this.give(connection, message);
      }
      connection.holdMessage(message);
      return true;
    });
    const started = performance.now();
    // The room's group, presence and history in one call (one round trip on Redis), the user's
    // group beside it. Both settle before a failure is thrown, so the leave that follows gives
    // back all they did.
    const [entered, added] = await Promise.allSettled([
      this.rooms.enter(room, channel, connection.userName, this.layer, session.since),
      connection.user ? this.layer.groupAdd(userGroup(connection.user.id), channel) : undefined,
    ]);
    this.metrics.layerOperation('group_add', performance.now() - started);
    if (entered.status === 'rejected') throw entered.reason;
    this.presence.changed(room);
    if (added.status === 'rejected') throw added.reason;
    const history = entered.value;
    if (connection.closed) return this.leftWhileJoining(connection);
    connection.state = ConnectionState.Joined;
    this.metrics.roomJoined(room);
    this.outbox.greet(connection, [GREETING, this.historyFrame(connection, history)]);
    connection.newest = history.length > 0 ? history[history.length - 1].id : session.since;
    this.giveHeld(connection);
    return true;
  }

  /**
   * Gives the joined sockets of `groups` (rooms) the room messages the layer may have lost on
   * the way (it said so: {@link ChannelLayer.onMissed}): each room's records newer than what its
   * sockets were given, read from the room's history, then what arrived meanwhile, in id order
   * and without duplicates. The room's messages wait for it, at most as long as the history
   * read (tried up to {@link CATCH_UP_TRIES} times): a read that fails leaves the gap, logged
   * and counted (`chat_catch_ups_failed_total`).
   */
  async catchUp(groups: readonly string[], connections: Iterable<Connection>): Promise<void> {
    const wanted = new Set(groups);
    const byRoom = new Map<string, Connection[]>();
    for (const connection of connections) {
      if (connection.state !== ConnectionState.Joined || connection.catchingUp) continue;
      if (!wanted.has(connection.room)) continue;
      const room = byRoom.get(connection.room);
      if (room) room.push(connection);
      else byRoom.set(connection.room, [connection]);
    }
    await Promise.all([...byRoom].map(([room, members]) => this.catchUpRoom(room, members)));
  }

  private async catchUpRoom(room: string, members: Connection[]): Promise<void> {
    for (const connection of members) connection.catchingUp = true;
    const records = await this.missedIn(room, oldestOf(members));
    for (const record of records) {
      // One message per record for every socket, so its frame is encoded once.
      const message: ChannelMessage = { ...record, type: CHAT_MESSAGE };
      for (const connection of members) {
        if (connection.closed || !isNewer(record.id, connection.newest)) continue;
        this.metrics.caughtUp++;
        this.give(connection, message);
      }
    }
    for (const connection of members) {
      connection.catchingUp = false;
      if (!connection.closed) this.giveHeld(connection);
    }
  }

  /** The room's records after `since` (all it keeps without it); none if it cannot be read. */
  private async missedIn(room: string, since: string | undefined): Promise<ChatRecord[]> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.rooms.history(room, since);
      } catch (error) {
        if (attempt === CATCH_UP_TRIES) {
          this.metrics.catchUpsFailed++;
          this.logger.warn(
            `could not catch up ${room} after its delivery was lost; its sockets may have ` +
              `missed messages: ${errorText(error)}`,
          );
          return [];
        }
        await new Promise((resolve) => setTimeout(resolve, 250 * 2 ** (attempt - 1)));
      }
    }
  }

  /** A room message to a joined socket, which then counts as given it. */
  private give(connection: Connection, message: ChannelMessage): boolean {
    if (message.type === CHAT_MESSAGE && typeof message.id === 'string') {
      connection.newest = message.id;
    }
    return this.deliver(connection, message);
  }

  /** The messages held while joining or catching up, but those the socket was given already. */
  private giveHeld(connection: Connection): void {
    for (const message of connection.heldMessages()) {
      const seen =
        message.type === CHAT_MESSAGE &&
        typeof message.id === 'string' &&
        !isNewer(message.id, connection.newest);
      if (!seen) this.give(connection, message);
    }
  }

  /**
   * Gives back what the connection holds: its channel's handler, its room's group and presence
   * (`RoomState.exit`), its user's group. Each is given back on its own: one failing (Redis away)
   * must not keep the other.
   */
  async leave(connection: Connection): Promise<void> {
    const { room, channel } = connection;
    connection.detach?.();
    connection.detach = undefined;
    if (!channel) return;
    connection.channel = undefined;
    const started = performance.now();
    const [exited, discarded] = await Promise.allSettled([
      this.rooms.exit(room, channel, this.layer),
      connection.user ? this.layer.groupDiscard(userGroup(connection.user.id), channel) : undefined,
    ]);
    this.metrics.layerOperation('group_discard', performance.now() - started);
    if (exited.status === 'rejected') {
      this.logger.warn(`could not leave ${room}: ${errorText(exited.reason)}`);
    }
    if (discarded.status === 'rejected') {
      this.logger.warn(`could not leave a user's group: ${errorText(discarded.reason)}`);
    }
    this.presence.changed(room);
  }

  private async leftWhileJoining(connection: Connection): Promise<false> {
    await this.leave(connection);
    return false;
  }

  /**
   * The history frame, with only the newest records whose JSON fits beside the greeting in
   * `maxGreetingBytes`: the store bounds a room's history by `historyBytes`, but a store shared
   * with processes of other settings may hold more, and JSON escapes can make a record's frame
   * several times its text.
   */
  private historyFrame(connection: Connection, history: ChatRecord[]): TextFrame {
    const frame: HistoryFrame = {
      type: 'history',
      room: connection.room,
      user: connection.userName,
      messages: history,
    };
    const whole = new TextFrame(JSON.stringify(frame));
    if (GREETING.bytes.length + whole.bytes.length <= this.maxGreetingBytes) return whole;
    let total = 0;
    const room = this.maxGreetingBytes - 1024;
    for (let i = history.length - 1; i >= 0; i--) {
      total += Buffer.byteLength(JSON.stringify(history[i])) + 1;
      if (total > room) {
        this.metrics.joinHistoryTrimmed += i + 1;
        frame.messages = history.slice(i + 1);
        break;
      }
    }
    return new TextFrame(JSON.stringify(frame));
  }
}
