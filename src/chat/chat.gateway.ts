import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Duplex } from 'node:stream';
import {
  BeforeApplicationShutdown,
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  OnApplicationShutdown,
  Optional,
} from '@nestjs/common';
import { ApplicationConfig, DiscoveryService, HttpAdapterHost } from '@nestjs/core';
import { WebSocket } from 'ws';
import { ChannelLayer, ChannelMessage } from '../channel-layer/channel-layer.js';
import { ChannelLayerUnavailable } from '../channel-layer/channel-layer.errors.js';
import { ChatRecord, RoomState, compareRecordIds } from '../rooms/room-state.js';
import { ChatMetrics, ServerCloseReason } from './chat-metrics.js';
import { ChatSession, guestName, parseSession } from './chat-session.js';
import { ChatEndpoint } from './chat-endpoint.js';
import { CHAT_MODULE_OPTIONS } from './chat.module-definition.js';
import { LOBBY_ROUTE } from './lobby.js';
import { hostConflicts } from './host-conflicts.js';
import {
  ChatConnectionInfo,
  type ChatModuleOptions,
  ConnectionHook,
  ResolvedChatOptions,
  resolveChatOptions,
} from './chat.options.js';
import {
  CHAT_MESSAGE,
  CONNECTION_ESTABLISHED,
  HistoryFrame,
  PRESENCE_UPDATE,
  ChatMessageRejected,
  CloseCode,
  ErrorCode,
  MessagesDroppedFrame,
  ProtocolError,
  errorFrame,
  parseClientFrame,
  wireFrame,
} from './chat.protocol.js';
import { ResolvedConnectionPolicy, resolveConnectionPolicy } from './connection-policy.js';
import { Handshake, VerifyDone } from './handshake.js';
import { Heartbeat } from './heartbeat.js';
import { MessageDeadline, MessageProgress } from './message-deadline.js';
import { Outbox, encodeTextFrame } from './outbox.js';
import { RateLimiter, RateVerdict } from './rate-limiter.js';
import { errorText } from '../error-text.js';

/** One socket's membership: its layer channel and where it stands in joining. */
interface Connection {
  readonly socket: WebSocket;
  /** The socket's TCP stream, where the gateway writes its encoded frames (see `Outbox`). */
  readonly transport: Duplex;
  /**
   * What hooks see; the user travels with the connection from the handshake on. Kept only when
   * the module has a hook: it holds the upgrade request, about 1 KiB a socket.
   */
  readonly info?: ChatConnectionInfo;
  /** Room, name and resume point from the URL, or why they were refused. */
  readonly session: ChatSession | ProtocolError;
  /** The room, which is the socket's group. */
  readonly room: string;
  /** Where the client is counted by the per-address limits. */
  readonly address: string;
  /** The name on this socket's chat messages and in presence. */
  readonly userName: string;
  /** The last message in flight: the next waits for it, so each sender's order holds. */
  sending?: Promise<void>;
  /** Counted in the room's presence. */
  present?: boolean;
  channel?: string;
  detach?: () => void;
  /** Settles once the socket is in its group and greeted; frames wait for it. */
  joining?: Promise<void>;
  joined: boolean;
  closed: boolean;
  /** Group messages that arrived before the greeting went out (rare; allocated only then). */
  early?: ChannelMessage[];
  /** The token bucket, unless the rate limit is off. */
  readonly limiter?: RateLimiter;
  /** Chat messages dropped since the socket was last told; > 0 while it reads too slowly. */
  dropped: number;
  /** Its messages, counted for the message deadline, when it is on. */
  progress?: MessageProgress;
}

/** The layer message a presence change travels as. */
interface PresenceUpdate {
  type: typeof PRESENCE_UPDATE;
  room: string;
  users: string[];
  count: number;
  [key: string]: unknown;
}

/** Sockets per `presenceDelayMs` of spacing between a room's announcements: see `presenceTimer`. */
const PRESENCE_BATCH = 100;

/** The greeting as a whole WebSocket frame, encoded once. */
const GREETING_FRAME = encodeTextFrame(CONNECTION_ESTABLISHED);

/**
 * The seed's consumer: joins each socket to the group, turns each client frame into a
 * `groupSend`, and writes each group message to its socket. Its sockets come from its own
 * endpoint on the app's HTTP server (`ChatEndpoint`), not through a Nest gateway and adapter, so
 * the host's adapter and gateways are left as they are.
 */
@Injectable()
export class ChatGateway
  implements OnApplicationBootstrap, BeforeApplicationShutdown, OnApplicationShutdown
{
  private readonly logger = new Logger('ChatGateway');
  private readonly options: ResolvedChatOptions;
  private readonly policy: ResolvedConnectionPolicy;
  private readonly heartbeat: Heartbeat;
  private readonly deadline: MessageDeadline;
  private readonly handshake: Handshake;
  /** Whether any hook needs the connection's info (and so its upgrade request). */
  private readonly hooked: boolean;
  /** Disconnected sockets still leaving their group: shutdown waits for them. */
  private readonly leaving = new Set<Promise<void>>();
  private readonly connections = new Map<WebSocket, Connection>();
  /** Rooms with a presence announcement pending. */
  private readonly presenceDue = new Map<string, NodeJS.Timeout>();
  /** When each room with members here was last told (performance.now()). */
  private readonly presenceSent = new Map<string, number>();
  /**
   * What one socket may have queued: `maxBufferedBytes`, or a sixteenth of it while all sockets
   * together hold more than `maxTotalBufferedBytes` (see `budgetSends`).
   */
  private sendLimit: number;
  private budgetTimer?: NodeJS.Timeout;
  /** Set on shutdown: sockets still leave, but nobody is left to tell. */
  private closing = false;
  /** The last layer message encoded: every member of one groupSend gets the same object. */
  private lastMessage?: ChannelMessage;
  private lastFrame?: Buffer;
  private readonly outbox = new Outbox();
  private readonly endpoint: ChatEndpoint;

  constructor(
    private readonly layer: ChannelLayer,
    @Inject(CHAT_MODULE_OPTIONS) options: ChatModuleOptions,
    private readonly metrics: ChatMetrics,
    private readonly rooms: RoomState,
    private readonly discovery: DiscoveryService,
    @Optional() private readonly adapterHost?: HttpAdapterHost,
    @Optional() private readonly appConfig?: ApplicationConfig,
    @Optional() @Inject(LOBBY_ROUTE) private readonly lobbyRoute?: string,
  ) {
    this.options = resolveChatOptions(options);
    this.policy = resolveConnectionPolicy(options, this.options.maxFrameBytes);
    this.sendLimit = this.options.maxBufferedBytes;
    this.handshake = new Handshake(
      this.policy,
      options.maxConnections !== undefined,
      this.options.authenticate,
      metrics,
    );
    this.deadline = new MessageDeadline(
      this.policy.messageTimeoutMs,
      this.options.maxUnfinishedBytes,
      (socket) =>
        this.closeFor(socket, 'message_timeout', CloseCode.PolicyViolation, 'message timeout'),
      (socket) =>
        this.closeFor(socket, 'unfinished_budget', CloseCode.TryAgainLater, 'server busy'),
    );
    this.hooked = Boolean(options.onConnect ?? options.onDisconnect ?? options.onMessage);
    this.heartbeat = new Heartbeat(this.policy.heartbeatIntervalMs, {
      onTimeout: () => {
        this.metrics.closedByServer('heartbeat_timeout');
        this.logger.debug('terminated a socket that missed a heartbeat');
      },
      onPong: (socket) => this.drained(socket),
    });
    metrics.measureSendBuffers(() => this.sendBufferBytes());
    metrics.measureSendLimit(() => this.sendLimit);
    metrics.measureUnfinished(() => this.deadline.held);
    this.endpoint = new ChatEndpoint(
      { path: this.options.path, roomPath: this.options.roomPath },
      {
        maxPayload: this.options.maxFrameBytes,
        verifyClient: (info: { req: IncomingMessage }, done: VerifyDone) =>
          this.handshake.verify(info.req, done),
      },
      {
        open: (socket, request, url, stream) => this.onOpen(socket, request, url, stream),
        frame: (socket, data, bytes) => this.onFrame(socket, data, bytes),
        ping: (socket, data) => this.onPing(socket, data),
        pong: (socket, data) => this.onControl(socket, data.length),
        error: (_socket, error) =>
          this.logger.debug(`socket closed on a client error: ${error.code ?? error.message}`),
        close: (socket) => this.onClose(socket),
      },
    );
  }

  /**
   * The endpoint goes up on the app's HTTP server once every module (and the host's gateways,
   * whose upgrade listeners it takes over) is initialised, before the app listens.
   */
  onApplicationBootstrap(): void {
    const conflicts = hostConflicts(
      this.discovery,
      { path: this.options.path, roomPath: this.options.roomPath },
      this.lobbyRoute,
      this.appConfig,
    );
    if (conflicts.length > 0) throw new Error(`ChatModule: ${conflicts.join('; ')}`);
    const httpServer = this.adapterHost?.httpAdapter?.getHttpServer() as HttpServer | undefined;
    if (!httpServer || typeof httpServer.on !== 'function') {
      // An application context (a script, a worker, a unit test) has no HTTP server: ChatRooms
      // and the layer work, and there is no endpoint to serve.
      this.logger.warn(`no HTTP server in this app: ${this.options.path} is not served`);
      return;
    }
    this.endpoint.attach(httpServer);
    this.heartbeat.start();
    this.deadline.start();
    this.budgetTimer = setInterval(() => this.budgetSends(), 1000).unref();
    if (this.deadline.supported === false) {
      this.logger.warn(
        'this ws release hides its receiver: messageTimeoutMs and maxUnfinishedBytes are not enforced',
      );
    }
    this.handshake.start(httpServer);
    // Presence changes no socket here caused (a process that died, seen by the room store).
    this.rooms.onPresenceChange((room) => this.schedulePresence(room));
  }

  /**
   * Before Nest closes its adapters and the HTTP server: each socket is closed with 1001 and given
   * `closeTimeoutMs` to answer while new handshakes get 503, so the HTTP server's close does not
   * wait on them. Then the endpoint and the TCP guard leave the server together: the guard
   * answers no upgrade, and must not be left alone with them.
   */
  async beforeApplicationShutdown(): Promise<void> {
    // An endpoint that was never attached has no socket and no route: closing it costs nothing.
    await this.endpoint.close(this.options.closeTimeoutMs);
    this.handshake.stop();
  }

  /** Runs before the module closes the layer: sockets closed by shutdown finish leaving first. */
  async onApplicationShutdown(): Promise<void> {
    this.closing = true;
    this.heartbeat.stop();
    this.deadline.stop();
    clearInterval(this.budgetTimer);
    this.presenceDue.forEach((timer) => clearTimeout(timer));
    this.presenceDue.clear();
    await Promise.all(this.leaving);
  }

  private onOpen(socket: WebSocket, request: IncomingMessage, url: URL, stream: Duplex): void {
    const { user, address } = this.handshake.admitted(request);
    const session = parseSession(url, {
      roomPath: this.options.roomPath,
      defaultRoom: this.options.group,
    });
    const room = session instanceof ProtocolError ? this.options.group : session.room;
    const connection: Connection = {
      socket,
      transport: stream,
      address,
      info: this.hooked ? { user, group: room, request } : undefined,
      session,
      room,
      // The host's user wins over ?name=, so nobody chats under someone else's login.
      userName:
        (user ? (user.name ?? user.id) : undefined) ??
        (session instanceof ProtocolError ? undefined : session.name) ??
        guestName(),
      joined: false,
      closed: false,
      limiter: this.policy.rateLimit
        ? new RateLimiter(this.policy.rateLimit, performance.now())
        : undefined,
      dropped: 0,
    };
    this.connections.set(socket, connection);
    this.handshake.opened(address);
    this.metrics.connectionOpened();
    this.heartbeat.watch(socket);
    connection.progress = this.deadline.watch(socket, stream);
    // Called from ws' upgrade callback: a throw or rejection here would reach the process, so
    // every failure ends in failJoin.
    connection.joining = this.join(connection).catch((error: unknown) =>
      this.failJoin(connection, error),
    );
  }

  private onClose(socket: WebSocket): void {
    const connection = this.connections.get(socket);
    if (!connection) return;
    this.connections.delete(socket);
    this.handshake.closed(connection.address);
    this.metrics.connectionClosed();
    this.heartbeat.unwatch(socket);
    this.deadline.unwatch(socket);
    connection.closed = true;
    if (!connection.joined) return;
    const left = this.leave(connection).then(() =>
      this.notify(this.options.onDisconnect, connection),
    );
    this.leaving.add(left);
    void left.finally(() => this.leaving.delete(left));
  }

  /** Every client message, from the endpoint (text as a string); `bytes`: its payload's size. */
  private onFrame(socket: WebSocket, data: unknown, bytes: number): void {
    const connection = this.connections.get(socket);
    if (!connection) return;
    this.metrics.framesReceived++;
    if (connection.progress) connection.progress.messages++;
    if (connection.limiter && !this.withinRate(connection, connection.limiter, bytes)) return;
    if (connection.joined) this.receive(connection, data);
    else void connection.joining?.then(() => connection.joined && this.receive(connection, data));
  }

  /**
   * A ping counts against the rate limit like any frame, and is answered only while the socket
   * reads: a pong queued for a socket past `maxBufferedBytes` would grow server memory.
   */
  private onPing(socket: WebSocket, data: Buffer): void {
    if (!this.onControl(socket, data.length) || socket.readyState !== WebSocket.OPEN) return;
    if (socket.bufferedAmount > this.sendLimit) this.metrics.pongsSkipped++;
    else socket.pong(data);
  }

  /** A control frame: `false` when the rate limit refused it (or the socket is not ours). */
  private onControl(socket: WebSocket, bytes: number): boolean {
    const connection = this.connections.get(socket);
    if (!connection) return false;
    this.metrics.framesReceived++;
    return !connection.limiter || this.withinRate(connection, connection.limiter, bytes);
  }

  /** The seed's `receive`: one client frame → one `groupSend`. */
  private receive(connection: Connection, data: unknown): void {
    const frame = parseClientFrame(data);
    if (frame instanceof ProtocolError) {
      this.sendError(connection.socket, frame.code, frame.message);
      return;
    }
    const text = frame.message;
    const max = this.options.maxMessageBytes;
    // UTF-8 takes at least a byte per UTF-16 unit and at most three.
    if (text.length > max || (text.length * 3 > max && Buffer.byteLength(text) > max)) {
      this.sendError(
        connection.socket,
        ErrorCode.MessageTooLong,
        `message not sent: longer than ${max} bytes`,
      );
      return;
    }
    // Recording (and the host's hook) is async: chain per connection so a sender's messages keep
    // their order.
    const previous = connection.sending;
    connection.sending = previous
      ? previous.then(() => this.publish(connection, frame.message))
      : this.publish(connection, frame.message);
  }

  /** The host's hook, then `appendAndSend`: the record (id, time) in history, and to the group. */
  private async publish(connection: Connection, text: string): Promise<void> {
    const { socket } = connection;
    let message = text;
    const hook = this.options.onMessage;
    if (hook) {
      try {
        message = await hook({ ...(connection.info as ChatConnectionInfo), message: text });
        if (typeof message !== 'string') throw new TypeError('onMessage must return a string');
      } catch (error) {
        if (socket.readyState !== WebSocket.OPEN) return;
        if (error instanceof ChatMessageRejected) {
          socket.send(errorFrame(error.code, error.message));
          this.metrics.errorSent(error.code);
        } else {
          this.logger.error(`onMessage hook failed: ${errorText(error)}`);
          this.sendError(socket, ErrorCode.InternalError, 'message not sent: server error');
        }
        return;
      }
    }
    const started = performance.now();
    try {
      await this.rooms.appendAndSend(
        connection.room,
        { message, user: connection.userName },
        this.layer,
        CHAT_MESSAGE,
      );
      this.metrics.layerOperation('group_send', performance.now() - started);
    } catch (error) {
      this.reportSendFailure(connection, error);
    }
  }

  /** The rate limit: `false` when the frame must not be handled (refused, or the socket closed). */
  private withinRate(connection: Connection, limiter: RateLimiter, bytes: number): boolean {
    const verdict = limiter.take(performance.now(), bytes);
    if (verdict === RateVerdict.Allowed) return true;
    this.metrics.rateLimitRefused(limiter.refusedBy);
    const { socket } = connection;
    if (socket.readyState !== WebSocket.OPEN) return false;
    if (verdict === RateVerdict.Refused) {
      const what = limiter.refusedBy === 'bytes' ? 'too many bytes' : 'too many frames';
      this.sendError(socket, ErrorCode.RateLimited, `${what}: this one was not handled`);
    } else {
      this.logger.warn(`closed ${connection.channel ?? 'a socket'}: it kept over the rate limit`);
      this.closeFor(socket, 'rate_limited', CloseCode.PolicyViolation, 'rate limit exceeded');
    }
    return false;
  }

  /**
   * Closes a socket for cause, and stops reading it: whatever it sends after is not worth the
   * CPU. A peer that does not answer the close is cut a second later, instead of holding its
   * socket for ws' 30 s close timeout.
   */
  private closeFor(
    socket: WebSocket,
    reason: ServerCloseReason,
    code: CloseCode,
    why: string,
  ): void {
    if (socket.readyState !== WebSocket.OPEN) return;
    this.metrics.closedByServer(reason);
    socket.close(code, why);
    socket.pause();
    setTimeout(() => socket.terminate(), 1000).unref();
  }

  /** The layer's push delivery for one socket: a message's `type` picks its handler. */
  private dispatch(connection: Connection, message: ChannelMessage): boolean {
    if (!connection.joined) {
      (connection.early ??= []).push(message);
      return true;
    }
    const frame = this.frameOf(message);
    if (frame) return this.write(connection, frame);
    this.logger.warn(`no handler for message type ${message.type}`);
    return true;
  }

  /**
   * The message's wire frame, serialized and encoded once per groupSend: members share the
   * message object, so memoize on it. Undefined for a type with no handler.
   */
  private frameOf(message: ChannelMessage): Buffer | undefined {
    if (message !== this.lastMessage) {
      const frame = wireFrame(message);
      if (!frame) return undefined;
      this.lastFrame = encodeTextFrame(JSON.stringify(frame));
      this.lastMessage = message;
    }
    return this.lastFrame;
  }

  /**
   * Writes a chat frame. A socket with more than `sendLimit` queued reads too slowly: its
   * messages are dropped (and `false` makes the layer count a skip) until its queue has drained
   * to half the limit; then it is told how many it missed, before the next message.
   */
  private write(connection: Connection, frame: Buffer): boolean {
    const { socket } = connection;
    if (socket.readyState !== WebSocket.OPEN) return true;
    const buffered = socket.bufferedAmount;
    if (connection.dropped > 0) {
      if (buffered > this.sendLimit / 2) return this.drop(connection);
      this.tellDropped(connection);
    } else if (buffered > this.sendLimit) {
      return this.drop(connection);
    }
    this.outbox.write(connection.transport, frame);
    this.metrics.deliveries++;
    return true;
  }

  private drop(connection: Connection): false {
    connection.dropped++;
    this.metrics.dropped++;
    return false;
  }

  /** A pong: the socket read everything queued before the ping, so tell it what it missed. */
  private drained(socket: WebSocket): void {
    const connection = this.connections.get(socket);
    if (!connection || connection.dropped === 0 || socket.readyState !== WebSocket.OPEN) return;
    if (socket.bufferedAmount <= this.sendLimit / 2) this.tellDropped(connection);
  }

  private tellDropped(connection: Connection): void {
    const count = connection.dropped;
    connection.dropped = 0;
    const frame: MessagesDroppedFrame = {
      type: 'error',
      code: ErrorCode.MessagesDropped,
      message: `${count} messages were dropped: this connection read too slowly`,
      count,
    };
    connection.socket.send(JSON.stringify(frame));
    this.metrics.errorSent(ErrorCode.MessagesDropped);
  }

  /** An error frame, unless the socket has `maxBufferedBytes` queued: then it would not read it. */
  private sendError(socket: WebSocket, code: ErrorCode, message: string): void {
    if (socket.bufferedAmount > this.sendLimit) {
      this.metrics.errorsSkipped++;
      return;
    }
    socket.send(errorFrame(code, message));
    this.metrics.errorSent(code);
  }

  /**
   * Once a second: while every socket's queue together is over `maxTotalBufferedBytes`, each
   * socket may queue a sixteenth of `maxBufferedBytes` (at least 16 KiB), so slow readers by the
   * thousand cannot hold the process's memory; back to the full allowance under half the total.
   */
  private budgetSends(): void {
    if (this.connections.size === 0) return;
    const total = this.sendBufferBytes();
    const full = this.options.maxBufferedBytes;
    if (total > this.options.maxTotalBufferedBytes) {
      if (this.sendLimit === full)
        this.logger.warn(`sockets hold ${total} bytes queued: tightening`);
      this.sendLimit = Math.max(16 * 1024, Math.floor(full / 16));
    } else if (total < this.options.maxTotalBufferedBytes / 2) {
      this.sendLimit = full;
    }
  }

  /** Bytes queued for every socket; read at scrape time and by `budgetSends`. */
  private sendBufferBytes(): number {
    let total = 0;
    for (const socket of this.connections.keys()) total += socket.bufferedAmount;
    return total;
  }

  /**
   * Joins the room, then greets: greeting, history, then whatever arrived meanwhile (presence,
   * messages newer than the history), so the client sees no gap and no duplicate.
   */
  private async join(connection: Connection): Promise<void> {
    const { session, room, socket } = connection;
    if (session instanceof ProtocolError) {
      this.sendError(socket, session.code, session.message);
      this.metrics.closedByServer('invalid_session');
      socket.close(CloseCode.PolicyViolation, session.code);
      return;
    }
    const channel = await this.layer.newChannel('chat');
    connection.channel = channel;
    connection.detach = this.layer.attach(channel, (message) => this.dispatch(connection, message));
    const started = performance.now();
    await this.layer.groupAdd(room, channel);
    this.metrics.layerOperation('group_add', performance.now() - started);
    if (connection.closed) return this.leave(connection);
    connection.present = true;
    await this.rooms.join(room, channel, connection.userName);
    this.schedulePresence(room);
    const history = await this.rooms.history(room, session.since);
    if (connection.closed) return this.leave(connection);
    connection.joined = true;
    this.metrics.roomJoined(room);
    const historyFrame: HistoryFrame = {
      type: 'history',
      room,
      user: connection.userName,
      messages: history,
    };
    // Greeting and history in one buffer and one write.
    let frames = encodeTextFrame(JSON.stringify(historyFrame), GREETING_FRAME);
    if (frames.length > this.options.maxBufferedBytes) {
      historyFrame.messages = this.newestWithin(history, this.options.maxBufferedBytes - 1024);
      frames = encodeTextFrame(JSON.stringify(historyFrame), GREETING_FRAME);
    }
    this.outbox.write(connection.transport, frames);
    this.metrics.controlFramesSent += 2;
    const early = connection.early;
    connection.early = undefined;
    const newest = history.length > 0 ? history[history.length - 1].id : undefined;
    for (const message of early ?? []) {
      const seen =
        newest !== undefined &&
        typeof message.id === 'string' &&
        compareRecordIds(message.id, newest) <= 0;
      if (!seen) this.dispatch(connection, message);
    }
    await this.notify(this.options.onConnect, connection);
  }

  /**
   * The newest records whose JSON fits in `bytes`, so a join queues no more than a slow reader
   * may (`maxBufferedBytes`): the store bounds a room's history by `historyBytes`, but a store
   * shared with processes of other settings may hold more, and JSON escapes can make a record's
   * frame several times its text.
   */
  private newestWithin(history: ChatRecord[], bytes: number): ChatRecord[] {
    let total = 0;
    for (let i = history.length - 1; i >= 0; i--) {
      total += Buffer.byteLength(JSON.stringify(history[i])) + 1;
      if (total > bytes) {
        this.metrics.joinHistoryTrimmed += i + 1;
        return history.slice(i + 1);
      }
    }
    return history;
  }

  /**
   * Tells a room who is in it, `presenceDelayMs` after a join or leave: changes in between share
   * one announcement, so a crowd arriving costs one frame per member, not one per arrival.
   */
  private schedulePresence(room: string): void {
    if (this.closing || this.presenceDue.has(room)) return;
    this.armPresence(room, this.options.presenceDelayMs);
  }

  private armPresence(room: string, delayMs: number): void {
    this.presenceDue.set(
      room,
      setTimeout(() => this.presenceTimer(room), delayMs),
    );
  }

  /**
   * An announcement is one write per member, so each room's next one waits until
   * `presenceDelayMs` per 100 sockets of this gateway (in every room) have passed since its last:
   * all rooms together then cost at most about 1,000 presence writes a second, however the sockets
   * are spread (ten rooms of 100 filling at once cost as much as one room of 1,000). Checked
   * against the sockets at sending time, not when the change came: a crowd that keeps arriving
   * faster than that holds presence back until it slows, instead of costing a write per member
   * every few arrivals. With up to 100 sockets, every room is told `presenceDelayMs` after a change.
   */
  private presenceTimer(room: string): void {
    const sockets = this.connections.size;
    const spacing = this.options.presenceDelayMs * Math.max(1, Math.ceil(sockets / PRESENCE_BATCH));
    const wait = (this.presenceSent.get(room) ?? -Infinity) + spacing - performance.now();
    if (wait > 0) return this.armPresence(room, wait);
    this.presenceDue.delete(room);
    if (this.metrics.socketsIn(room) > 0) this.presenceSent.set(room, performance.now());
    else this.presenceSent.delete(room);
    void this.announcePresence(room);
  }

  /** A failure is logged: presence heals on the next change. */
  private async announcePresence(room: string): Promise<void> {
    try {
      const users = await this.rooms.users(room);
      const frame: PresenceUpdate = { type: PRESENCE_UPDATE, room, users, count: users.length };
      if (users.length > this.options.presenceNames) {
        frame.users = users.slice(0, this.options.presenceNames);
      }
      await this.layer.groupSend(room, frame);
    } catch (error) {
      this.logger.warn(`could not announce presence in ${room}: ${errorText(error)}`);
    }
  }

  private async notify(hook: ConnectionHook | undefined, connection: Connection): Promise<void> {
    if (!hook) return;
    try {
      await hook(connection.info as ChatConnectionInfo);
    } catch (error) {
      this.logger.error(`connection hook failed: ${errorText(error)}`);
    }
  }

  private async leave(connection: Connection): Promise<void> {
    const { room, channel } = connection;
    if (connection.joined) this.metrics.roomLeft(room);
    connection.joined = false;
    connection.detach?.();
    if (!channel) return;
    // Group and presence are left separately: one failing (Redis away) must not keep the other.
    try {
      const started = performance.now();
      await this.layer.groupDiscard(room, channel);
      this.metrics.layerOperation('group_discard', performance.now() - started);
    } catch (error) {
      this.logger.warn(`could not leave group ${room}: ${errorText(error)}`);
    }
    if (!connection.present) return;
    connection.present = false;
    try {
      await this.rooms.leave(room, channel);
    } catch (error) {
      this.logger.warn(`could not leave presence of ${room}: ${errorText(error)}`);
    }
    this.schedulePresence(room);
  }

  private async failJoin(connection: Connection, error: unknown): Promise<void> {
    this.logger.error(`socket could not join ${connection.room}: ${errorText(error)}`);
    await this.leave(connection);
    const { socket } = connection;
    if (socket.readyState !== WebSocket.OPEN) return;
    this.sendError(socket, ErrorCode.LayerUnavailable, 'could not join the room; try again later');
    this.metrics.closedByServer('layer_unavailable');
    socket.close(CloseCode.TryAgainLater, 'channel layer unavailable');
  }

  private reportSendFailure(connection: Connection, error: unknown): void {
    const { socket } = connection;
    if (socket.readyState !== WebSocket.OPEN) return;
    if (error instanceof ChannelLayerUnavailable) {
      this.sendError(
        socket,
        ErrorCode.LayerUnavailable,
        'message not sent: channel layer unavailable',
      );
    } else {
      this.logger.error(`groupSend failed: ${errorText(error)}`);
      this.sendError(socket, ErrorCode.InternalError, 'message not sent: server error');
    }
  }
}
