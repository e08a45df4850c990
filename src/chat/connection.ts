import { createHash } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import type { ChannelMessage } from '../channel-layer/channel-layer.js';
import type { ChatSession } from './chat-session.js';
import type { ChatConnectionInfo, ChatUser } from './chat.options.js';
import type { ProtocolError } from './chat.protocol.js';
import type { MessageProgress } from './message-deadline.js';
import type { Recipient } from './outbox.js';
import type { RateLimiter } from './rate-limiter.js';

/**
 * How long the task at the head of a socket's queue (or its join) may run before frames past
 * `maxPendingFrames` waiting behind it are refused.
 */
export const STUCK_MS = 5000;

/** Where a socket stands; it only moves forward. */
export enum ConnectionState {
  /** Open, joining its room: its frames and the room's messages wait for the greeting. */
  Joining,
  /** Greeted with its history: its frames are handled, the room's messages delivered. */
  Joined,
  /** The socket has closed: whatever it held is being (or has been) given back. */
  Closed,
}

/** What a connection is made of, from its handshake. */
export interface ConnectionInit {
  socket: WebSocket;
  stream: Duplex | undefined;
  address: string;
  session: ChatSession | ProtocolError;
  room: string;
  user: ChatUser | undefined;
  userName: string;
  info: ChatConnectionInfo | undefined;
  limiter: RateLimiter | undefined;
  progress: MessageProgress | undefined;
  /** Frames that may wait to be handled (held while joining, or behind a slow handler). */
  maxPendingFrames: number;
  /** Room messages it may hold while joining or in a delivery gap (`maxHeldMessages`). */
  maxHeldMessages: number;
}

/** One chat socket: who it is, where it stands, and what it holds of the layer and the room. */
export class Connection implements Recipient {
  state = ConnectionState.Joining;
  readonly socket: WebSocket;
  readonly stream: Duplex | undefined;
  /** Where the client is counted by the per-address limits. */
  readonly address: string;
  /** Room, name and resume point from the URL, or why they were refused. */
  readonly session: ChatSession | ProtocolError;
  /** The room, which is the socket's group. */
  readonly room: string;
  /** The user `authenticate` admitted, when the module has that hook. */
  readonly user: ChatUser | undefined;
  /** The name on this socket's chat messages and in presence. */
  readonly userName: string;
  /**
   * What hooks see; the user travels with the connection from the handshake on. Kept only when
   * the module has a hook: it holds the upgrade request.
   */
  readonly info: ChatConnectionInfo | undefined;
  /** The token bucket, unless the rate limit is off. */
  readonly limiter: RateLimiter | undefined;
  /** Its messages, counted for the message deadline, when it is on. */
  readonly progress: MessageProgress | undefined;
  dropped = 0;
  /**
   * The id of the newest room record this socket was given (its history's, a delivered chat
   * message's, or the point it resumed from): a catch-up gives it only what is newer.
   */
  newest?: string;
  /**
   * The room's messages wait (held) while the layer has lost their delivery, and then while a
   * catch-up reads what the socket missed.
   */
  catchingUp = false;
  /** A catch-up gave it records from history whose live copies may still come. */
  caughtUp = false;
  /**
   * Its layer channel, once it has one (and a handler attached to it), in the room's group and
   * presence: given back on leaving.
   */
  channel?: string;
  detach?: () => void;
  /** While joining: the client's frames, and the room's messages (both rare; allocated only then). */
  private frames?: unknown[];
  private messages?: ChannelMessage[];
  /** The last message in flight: the next waits for it, so each sender's order holds. */
  private sending?: Promise<void>;
  /** Frames held or queued, not yet handled. */
  private pending = 0;
  private readonly maxPending: number;
  private readonly maxHeld: number;
  /** When the task now running (or the join) began (performance.now()). */
  private busySince = performance.now();

  /** Whether the socket has closed; read after each await of a join, which it may outlive. */
  get closed(): boolean {
    return this.state === ConnectionState.Closed;
  }

  private stuck(): boolean {
    return this.pending >= this.maxPending && performance.now() - this.busySince > STUCK_MS;
  }

  constructor(init: ConnectionInit) {
    this.socket = init.socket;
    this.stream = init.stream;
    this.address = init.address;
    this.session = init.session;
    this.room = init.room;
    this.user = init.user;
    this.userName = init.userName;
    this.info = init.info;
    this.limiter = init.limiter;
    this.progress = init.progress;
    this.maxPending = init.maxPendingFrames;
    this.maxHeld = init.maxHeldMessages;
  }

  /**
   * A client frame that came while joining, handled once joined; `false` (and not held) when
   * `maxPendingFrames` wait already behind a join that has taken over {@link STUCK_MS}.
   */
  holdFrame(data: unknown): boolean {
    if (this.stuck()) return false;
    this.pending++;
    (this.frames ??= []).push(data);
    return true;
  }

  /**
   * A room message that came while joining or catching up, delivered after the history; `false`
   * (not held: refused as by a full channel) once `maxHeldMessages` wait.
   */
  holdMessage(message: ChannelMessage): boolean {
    const messages = (this.messages ??= []);
    if (messages.length >= this.maxHeld) return false;
    messages.push(message);
    return true;
  }

  /** The frames held while joining, once. */
  heldFrames(): unknown[] {
    const frames = this.frames ?? [];
    this.frames = undefined;
    this.pending -= frames.length;
    return frames;
  }

  /** The messages held while joining or catching up, once. */
  heldMessages(): ChannelMessage[] {
    const messages = this.messages ?? [];
    this.messages = undefined;
    return messages;
  }

  /**
   * The room store's resend key for the client's message `id`: who sent it (the user
   * `authenticate` admitted, else the name the socket chats as) and the id, hashed to a fixed
   * size whatever the user's id.
   */
  resendKey(id: string): string {
    const sender = this.user ? `u:${this.user.id}` : `n:${this.userName}`;
    return createHash('sha256').update(`${sender}\n${id}`).digest('base64url');
  }

  /**
   * Runs `task` after this connection's previous one has settled; `false` (and not run) when
   * `maxPendingFrames` wait already behind a task (a hook, a handler) running for over
   * {@link STUCK_MS}. Frames that arrive together (one TCP read) all count until their tasks
   * settle, a moment later: only a task that hangs makes the bound bite.
   */
  inOrder(task: () => Promise<void>): boolean {
    if (this.stuck()) return false;
    this.pending++;
    const release = (): void => {
      this.pending--;
      this.busySince = performance.now();
    };
    // Tasks answer their own failures; one that throws must neither break the chain nor reach
    // the process as an unhandled rejection.
    const run = (): Promise<void> => {
      this.busySince = performance.now();
      return task().then(release, release);
    };
    const previous = this.sending;
    this.sending = previous ? previous.then(run, run) : run();
    return true;
  }
}
