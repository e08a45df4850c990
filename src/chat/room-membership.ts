import type { Logger } from '@nestjs/common';
import type { ChannelLayer, ChannelMessage } from '../channel-layer/channel-layer.js';
import { ChannelLayerUnavailable } from '../channel-layer/channel-layer.errors.js';
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
  /** Gaps the layer began in this process's deliveries: a join that saw one begin catches up. */
  private gapsBegun = 0;
  /** Rooms (groups) whose deliveries the layer lost and has not given back. */
  private readonly inGap = new Set<string>();

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
        return this.live(connection, message);
      }
      return connection.holdMessage(message);
    });
    const gaps = this.gapsBegun;
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
    if (this.inGap.has(room)) {
      // Its room's deliveries are lost now: it waits for them with the room's other sockets.
      connection.catchingUp = true;
    } else if (gaps !== this.gapsBegun) {
      // A gap began while it joined (and may have ended): what was sent then may be missing.
      const [failed] = await this.catchUpRoom(room, [connection]);
      if (failed) throw new ChannelLayerUnavailable('could not read what the join missed');
    } else {
      this.giveHeld(connection);
    }
    return true;
  }

  /**
   * The layer stopped delivering to `groups` (rooms) here ({@link ChannelLayer.onDeliveryGap}):
   * their sockets' room messages wait from now until it delivers again and {@link back} has given
   * them what they missed.
   */
  lost(groups: readonly string[], connections: Iterable<Connection>): void {
    this.gapsBegun++;
    for (const group of groups) this.inGap.add(group);
    for (const connection of connections) {
      if (!connection.closed && this.inGap.has(connection.room)) connection.catchingUp = true;
    }
  }

  /**
   * The layer delivers to `groups` again: each room's waiting sockets get the records of its
   * history newer than what each was given, then what arrived meanwhile, in id order and each
   * once, as a join does. A history read that fails {@link CATCH_UP_TRIES} times cannot say what
   * was missed: resolves with those sockets, for the caller to close.
   */
  async back(groups: readonly string[], connections: Iterable<Connection>): Promise<Connection[]> {
    for (const group of groups) this.inGap.delete(group);
    const wanted = new Set(groups);
    const byRoom = new Map<string, Connection[]>();
    for (const connection of connections) {
      if (connection.state !== ConnectionState.Joined || !connection.catchingUp) continue;
      if (!wanted.has(connection.room)) continue;
      const room = byRoom.get(connection.room);
      if (room) room.push(connection);
      else byRoom.set(connection.room, [connection]);
    }
    const failed = await Promise.all(
      [...byRoom].map(([room, members]) => this.catchUpRoom(room, members)),
    );
    return failed.flat();
  }

  /** Catches `members` up on `room`; resolves with those it could not (none, or all). */
  private async catchUpRoom(room: string, members: Connection[]): Promise<Connection[]> {
    for (const connection of members) connection.catchingUp = true;
    const records = await this.missedIn(room, oldestOf(members));
    if (!records) {
      for (const connection of members) {
        connection.catchingUp = false;
        // What it held would go out past the gap: dropped, and the socket is closed to resume.
        connection.heldMessages();
      }
      return members;
    }
    for (const record of records) {
      // One message per record for every socket, so its frame is encoded once.
      const message: ChannelMessage = { ...record, type: CHAT_MESSAGE };
      for (const connection of members) {
        if (connection.closed || !isNewer(record.id, connection.newest)) continue;
        this.metrics.caughtUp++;
        connection.caughtUp = true;
        this.give(connection, message);
      }
    }
    // A gap that began during the read keeps them waiting for its end.
    if (this.inGap.has(room)) return [];
    for (const connection of members) {
      connection.catchingUp = false;
      if (!connection.closed) this.giveHeld(connection);
    }
    return [];
  }

  /** The room's records after `since` (all it keeps without it); undefined if unreadable. */
  private async missedIn(
    room: string,
    since: string | undefined,
  ): Promise<ChatRecord[] | undefined> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.rooms.history(room, since);
      } catch (error) {
        if (attempt === CATCH_UP_TRIES) {
          this.metrics.catchUpsFailed++;
          this.logger.warn(
            `could not catch up ${room} after its delivery was lost; closing its sockets ` +
              `that waited, to resume from what they have: ${errorText(error)}`,
          );
          return undefined;
        }
        await new Promise((resolve) => setTimeout(resolve, 250 * 2 ** (attempt - 1)));
      }
    }
  }

  /**
   * A room message as the layer delivers it. After a catch-up, a chat message not newer than what
   * the socket was given is the live copy of a record the catch-up read (ids only grow, and every
   * record up to the newest read was in that read): not given twice. The first newer one ends it.
   */
  private live(connection: Connection, message: ChannelMessage): boolean {
    if (connection.caughtUp && message.type === CHAT_MESSAGE && typeof message.id === 'string') {
      if (!isNewer(message.id, connection.newest)) return true;
      connection.caughtUp = false;
    }
    return this.give(connection, message);
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
      if (!seen) this.live(connection, message);
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
