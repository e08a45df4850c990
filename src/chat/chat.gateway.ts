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
import {
  ApplicationConfig,
  DiscoveryService,
  HttpAdapterHost,
  MetadataScanner,
  Reflector,
} from '@nestjs/core';
import { WebSocket } from 'ws';
import { ChannelLayer, ChannelMessage } from '../channel-layer/channel-layer.js';
import { ChannelLayerUnavailable } from '../channel-layer/channel-layer.errors.js';
import { errorText } from '../error-text.js';
import { RoomState } from '../rooms/room-state.js';
import { ChatMetrics } from './chat-metrics.js';
import { ChatSession, guestName, parseSession } from './chat-session.js';
import { ChatEndpoint } from './chat-endpoint.js';
import { CHAT_MODULE_OPTIONS } from './chat.module-definition.js';
import {
  ChatConnectionInfo,
  type ChatModuleOptions,
  ResolvedChatOptions,
  resolveChatOptions,
} from './chat.options.js';
import {
  CHAT_MESSAGE,
  CloseCode,
  ErrorCode,
  ProtocolError,
  parseClientFrame,
} from './chat.protocol.js';
import { ChatEvents, TOO_MANY_WAITING } from './chat-events.js';
import { ChatHooks } from './chat-hooks.js';
import { Connection, ConnectionState } from './connection.js';
import { resolveConnectionPolicy } from './connection-policy.js';
import { Handshake, VerifyDone } from './handshake.js';
import { FanOutFrame } from './fan-out-frame.js';
import { hostConflicts } from './host-conflicts.js';
import { LOBBY_ROUTE } from './lobby.js';
import { Outbox, bufferedBytes, directStream } from './outbox.js';
import { Presence } from './presence.js';
import { RoomMembership } from './room-membership.js';
import { SocketLimits } from './socket-limits.js';

/**
 * The seed's consumer: joins each socket to its room's group, turns each client frame into a
 * `groupSend`, and writes each group message to its socket. Its sockets come from its own
 * endpoint on the app's HTTP server (`ChatEndpoint`), not through a Nest gateway and adapter, so
 * the host's adapter and gateways are left as they are.
 *
 * The hot path, top to bottom below: `onFrame` → `receive` → `publish` → the room store and the
 * layer → `deliver` on every member (its frame made once, `FanOutFrame`) → `Outbox.deliver`.
 */
@Injectable()
export class ChatGateway
  implements OnApplicationBootstrap, BeforeApplicationShutdown, OnApplicationShutdown
{
  private readonly logger = new Logger('ChatGateway');
  private readonly options: ResolvedChatOptions;
  private readonly limits: SocketLimits;
  private readonly handshake: Handshake;
  private readonly outbox: Outbox;
  private readonly presence: Presence;
  private readonly membership: RoomMembership;
  private readonly endpoint: ChatEndpoint;
  private readonly hooks: ChatHooks;
  private readonly events: ChatEvents;
  private readonly connections = new Map<WebSocket, Connection>();
  /** Disconnected sockets still leaving their group: shutdown waits for them. */
  private readonly leaving = new Set<Promise<void>>();
  /** The frame of the message being fanned out, made once for all its members. */
  private readonly fanOut = new FanOutFrame();

  constructor(
    private readonly layer: ChannelLayer,
    @Inject(CHAT_MODULE_OPTIONS) options: ChatModuleOptions,
    private readonly metrics: ChatMetrics,
    private readonly rooms: RoomState,
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly reflector: Reflector,
    @Optional() private readonly adapterHost?: HttpAdapterHost,
    @Optional() private readonly appConfig?: ApplicationConfig,
    @Optional() @Inject(LOBBY_ROUTE) private readonly lobbyRoute?: string,
  ) {
    this.options = resolveChatOptions(options);
    const policy = resolveConnectionPolicy(options, this.options.maxFrameBytes);
    this.hooks = new ChatHooks(options, this.logger);
    this.handshake = new Handshake(
      policy,
      options.maxConnections !== undefined,
      {
        authenticate: options.authenticate,
        canJoin: options.canJoin,
        roomOf: (request) => {
          const session = this.sessionOf(new URL(request.url ?? '/', 'ws://localhost'));
          return session instanceof ProtocolError ? undefined : session.room;
        },
      },
      metrics,
    );
    this.outbox = new Outbox(this.options, metrics, this.logger);
    this.events = new ChatEvents(layer, this.outbox, this.logger);
    this.presence = new Presence(
      { delayMs: this.options.presenceDelayMs, names: this.options.presenceNames },
      rooms,
      layer,
      { count: () => this.connections.size, countIn: (room) => metrics.socketsIn(room) },
      this.logger,
    );
    this.membership = new RoomMembership(
      layer,
      rooms,
      this.presence,
      this.outbox,
      metrics,
      this.logger,
      this.options.maxBufferedBytes,
      (connection, message) => this.deliver(connection, message),
    );
    this.limits = new SocketLimits(
      policy,
      this.options.maxUnfinishedBytes,
      this.outbox,
      metrics,
      this.logger,
      this.connections,
    );
    metrics.measureSendBuffers(() => bufferedBytes(this.connections.keys()));
    metrics.measureSendLimit(() => this.outbox.sendLimit);
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
    this.events.discover(this.discovery, this.scanner, this.reflector);
    const httpServer = this.adapterHost?.httpAdapter?.getHttpServer() as HttpServer | undefined;
    if (!httpServer || typeof httpServer.on !== 'function') {
      // An application context (a script, a worker, a unit test) has no HTTP server: ChatRooms
      // and the layer work, and there is no endpoint to serve.
      this.logger.warn(`no HTTP server in this app: ${this.options.path} is not served`);
      return;
    }
    this.endpoint.attach(httpServer);
    this.limits.start();
    this.handshake.start(httpServer);
    // Presence changes no socket here caused (a process that died, seen by the room store).
    this.rooms.onPresenceChange((room) => this.presence.changed(room));
    // Room messages the layer lost on the way here (its subscriptions were lost, then are back).
    this.layer.onDeliveryGap({
      lost: (groups) => this.membership.lost(groups, this.connections.values()),
      back: (groups) => {
        this.catchUp(groups).catch((error: unknown) => {
          this.logger.warn(`could not catch up after a lost delivery: ${errorText(error)}`);
        });
      },
    });
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
    this.presence.stop();
    this.limits.stop();
    await Promise.all(this.leaving);
  }

  // The hot path: one client frame to every member's socket.

  /** Every client message, from the endpoint (text as a string); `bytes`: its payload's size. */
  private onFrame(socket: WebSocket, data: unknown, bytes: number): void {
    const connection = this.connections.get(socket);
    if (!connection) return;
    this.metrics.framesReceived++;
    if (connection.progress) connection.progress.messages++;
    if (!this.limits.withinRate(connection, bytes)) return;
    if (connection.state === ConnectionState.Joined) this.receive(connection, data);
    else if (connection.state === ConnectionState.Joining && !connection.holdFrame(data)) {
      this.outbox.error(connection, ErrorCode.RateLimited, TOO_MANY_WAITING);
    }
  }

  /** The seed's `receive`: one client frame → one `groupSend`, in each sender's order. */
  private receive(connection: Connection, data: unknown): void {
    const frame = parseClientFrame(data);
    if (frame instanceof ProtocolError) {
      // In order with the frames before it, as their acks are.
      this.answer(connection, frame.code, frame.message, frame.id);
      return;
    }
    if (frame.kind === 'event') {
      this.events.receive(connection, frame);
      return;
    }
    const { message: text, id } = frame;
    const max = this.options.maxMessageBytes;
    // UTF-8 takes at least a byte per UTF-16 unit and at most three.
    if (text.length > max || (text.length * 3 > max && Buffer.byteLength(text) > max)) {
      this.answer(
        connection,
        ErrorCode.MessageTooLong,
        `message not sent: longer than ${max} bytes`,
        id,
      );
      return;
    }
    if (!connection.inOrder(() => this.publish(connection, text, id))) {
      this.outbox.error(connection, ErrorCode.RateLimited, TOO_MANY_WAITING, id);
    }
  }

  /** An error about a client frame, after the answers to the frames before it. */
  private answer(connection: Connection, code: ErrorCode, why: string, id?: string): void {
    if (!connection.inOrder(async () => this.outbox.error(connection, code, why, id))) {
      this.outbox.error(connection, ErrorCode.RateLimited, TOO_MANY_WAITING, id);
    }
  }

  /**
   * The host's hook, then `appendAndSend`: the record (id, time) in history, and to the group.
   * `id`: the client's, to acknowledge.
   */
  private async publish(connection: Connection, text: string, id?: string): Promise<void> {
    const message = this.hooks.checksMessages
      ? await this.hooks.message(connection.info as ChatConnectionInfo, text)
      : text;
    if (typeof message !== 'string') {
      if (connection.socket.readyState === WebSocket.OPEN) {
        this.outbox.error(connection, message.code, message.message, id);
      }
      return;
    }
    const started = performance.now();
    try {
      const record = await this.rooms.appendAndSend(
        connection.room,
        { message, user: connection.userName },
        this.layer,
        CHAT_MESSAGE,
        id === undefined ? undefined : connection.resendKey(id),
      );
      this.metrics.layerOperation('group_send', performance.now() - started);
      if (id !== undefined) this.outbox.ack(connection, id, record.id);
    } catch (error) {
      this.reportSendFailure(connection, error, id);
    }
  }

  /** The layer's push delivery to one joined socket: a message's `type` picks its frame. */
  private deliver(connection: Connection, message: ChannelMessage): boolean {
    const frame = this.fanOut.of(message);
    if (!frame) {
      this.logger.warn(`no handler for message type ${message.type}`);
      return true;
    }
    const { except } = this.fanOut;
    if (except !== undefined && except === connection.channel) return true;
    return this.outbox.deliver(connection, frame);
  }

  // A connection's life: open, join, close, leave.

  private onOpen(socket: WebSocket, request: IncomingMessage, url: URL, stream: Duplex): void {
    const { user, address } = this.handshake.admitted(request);
    const session = this.sessionOf(url);
    const room = session instanceof ProtocolError ? this.options.group : session.room;
    const connection = new Connection({
      socket,
      stream: directStream(socket, stream),
      address,
      session,
      room,
      user,
      // The host's user wins over ?name=, so nobody chats under someone else's login.
      userName:
        (user ? (user.name ?? user.id) : undefined) ??
        (session instanceof ProtocolError ? undefined : session.name) ??
        guestName(),
      info: this.hooks.any ? { user, group: room, request } : undefined,
      ...this.limits.watch(socket, stream),
      maxPendingFrames: this.options.maxPendingFrames,
      maxHeldMessages: this.options.maxHeldMessages,
    });
    this.connections.set(socket, connection);
    this.handshake.opened(address);
    this.metrics.connectionOpened();
    // Called from ws' upgrade callback: a rejection here would reach the process.
    this.join(connection, stream).catch((error: unknown) =>
      this.logger.error(`socket could not join ${room}: ${errorText(error)}`),
    );
  }

  private sessionOf(url: URL): ChatSession | ProtocolError {
    return parseSession(url, { roomPath: this.options.roomPath, defaultRoom: this.options.group });
  }

  /**
   * Joins and greets, then lets the 101 and the greeting out of `stream` together (see
   * `SocketSink.open`), then runs `onConnect` and handles the frames that came meanwhile.
   */
  private async join(connection: Connection, stream: Duplex): Promise<void> {
    const joined = await this.enter(connection).finally(() => stream.uncork());
    if (!joined) return;
    await this.hooks.connected(connection.info);
    for (const data of connection.heldFrames()) {
      if (connection.state === ConnectionState.Joined) this.receive(connection, data);
    }
  }

  /** Joins and greets; false when refused, failed or closed meanwhile (told, and given back). */
  private async enter(connection: Connection): Promise<boolean> {
    const { session, socket } = connection;
    if (session instanceof ProtocolError) {
      this.outbox.error(connection, session.code, session.message);
      this.limits.closeFor(socket, 'invalid_session', CloseCode.PolicyViolation, session.code);
      return false;
    }
    try {
      return await this.membership.join(connection, session);
    } catch (error) {
      await this.failJoin(connection, error);
      return false;
    }
  }

  /** Catches up the rooms of `groups`; a socket that cannot be is told and closed, as a join. */
  private async catchUp(groups: readonly string[]): Promise<void> {
    const failed = await this.membership.back(groups, this.connections.values());
    for (const connection of failed) {
      this.closeForLayer(
        connection,
        'messages may have been missed; reconnect and resume with ?since=',
      );
    }
  }

  private async failJoin(connection: Connection, error: unknown): Promise<void> {
    this.logger.error(`socket could not join ${connection.room}: ${errorText(error)}`);
    await this.membership.leave(connection);
    this.closeForLayer(connection, 'could not join the room; try again later');
  }

  /** Tells an open socket why (`layer_unavailable`) and closes it 1013, to come back later. */
  private closeForLayer(connection: Connection, why: string): void {
    if (connection.socket.readyState !== WebSocket.OPEN) return;
    this.outbox.error(connection, ErrorCode.LayerUnavailable, why);
    this.limits.closeFor(
      connection.socket,
      'layer_unavailable',
      CloseCode.TryAgainLater,
      'channel layer unavailable',
    );
  }

  private onClose(socket: WebSocket): void {
    const connection = this.connections.get(socket);
    if (!connection) return;
    this.connections.delete(socket);
    this.handshake.closed(connection.address);
    this.metrics.connectionClosed();
    this.limits.unwatch(socket);
    const joined = connection.state === ConnectionState.Joined;
    connection.state = ConnectionState.Closed;
    // A socket still joining leaves where the join notices it closed.
    if (!joined) return;
    this.metrics.roomLeft(connection.room);
    const left = this.membership
      .leave(connection)
      .then(() => this.hooks.disconnected(connection.info));
    this.leaving.add(left);
    void left.finally(() => this.leaving.delete(left));
  }

  // Control frames, limits and failures.

  /** A ping counts against the rate limit like any frame; the outbox answers it. */
  private onPing(socket: WebSocket, data: Buffer): void {
    if (!this.onControl(socket, data.length) || socket.readyState !== WebSocket.OPEN) return;
    this.outbox.pong(this.connections.get(socket) as Connection, data);
  }

  /** A control frame: `false` when the rate limit refused it (or the socket is not ours). */
  private onControl(socket: WebSocket, bytes: number): boolean {
    const connection = this.connections.get(socket);
    if (!connection) return false;
    this.metrics.framesReceived++;
    return this.limits.withinRate(connection, bytes);
  }

  private reportSendFailure(connection: Connection, error: unknown, id?: string): void {
    if (connection.socket.readyState !== WebSocket.OPEN) return;
    if (error instanceof ChannelLayerUnavailable) {
      this.outbox.error(
        connection,
        ErrorCode.LayerUnavailable,
        'message not sent: channel layer unavailable',
        id,
      );
    } else {
      this.logger.error(`groupSend failed: ${errorText(error)}`);
      this.outbox.error(connection, ErrorCode.InternalError, 'message not sent: server error', id);
    }
  }
}
