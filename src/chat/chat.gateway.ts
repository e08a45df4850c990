import type { IncomingMessage } from 'node:http';
import { HttpException, Inject, Logger, OnApplicationShutdown } from '@nestjs/common';
import {
  ConnectedSocket,
  MessageBody,
  OnGatewayConnection,
  OnGatewayDisconnect,
  OnGatewayInit,
  SubscribeMessage,
  WebSocketGateway,
} from '@nestjs/websockets';
import { GATEWAY_OPTIONS } from '@nestjs/websockets/constants';
import { WebSocket, WebSocketServer } from 'ws';
import { ChannelLayer, ChannelMessage } from '../channel-layer/channel-layer';
import { ChannelLayerUnavailable } from '../channel-layer/channel-layer.errors';
import { ChatMetrics } from './chat-metrics';
import { CHAT_WS_SERVER, RAW_FRAME_EVENT } from './chat-ws.adapter';
import { CHAT_MODULE_OPTIONS } from './chat.module-definition';
import {
  ChatConnectionInfo,
  ChatModuleOptions,
  ChatUser,
  ConnectionHook,
  ResolvedChatOptions,
  resolveChatOptions,
} from './chat.options';
import {
  CHAT_MESSAGE,
  CONNECTION_ESTABLISHED,
  ChatFrame,
  ChatMessageRejected,
  CloseCode,
  ErrorCode,
  MessagesDroppedFrame,
  ProtocolError,
  errorFrame,
  parseClientFrame,
} from './chat.protocol';
import { ResolvedConnectionPolicy, resolveConnectionPolicy } from './connection-policy';
import { Heartbeat } from './heartbeat';
import { OriginCheck, compileOriginCheck } from './origin-check';
import { RateLimiter, RateVerdict } from './rate-limiter';

/** One socket's membership: its layer channel and where it stands in joining. */
interface Connection {
  readonly socket: WebSocket;
  /** What hooks see; the user travels with the connection from the handshake on. */
  readonly info: ChatConnectionInfo;
  /** The sender name on this socket's chat messages. */
  readonly userName?: string;
  /** Frames waiting for an async `onMessage` hook, so each sender's order holds. */
  hookQueue?: Promise<void>;
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
}

/** ws' verifyClient callback: accept, or refuse with an HTTP status. */
type VerifyDone = (accept: boolean, status?: number, message?: string) => void;

// ws merges send options into a fresh object anyway; a shared constant keeps ours allocation-free.
const TEXT = { binary: false } as const;

/**
 * The seed's consumer: joins each socket to the group, turns each client frame into a
 * `groupSend`, and writes each group message to its socket. The path comes from the module's
 * options, so `ChatModule` registers a subclass per module and this constructor gives it its own
 * gateway metadata.
 */
@WebSocketGateway()
export class ChatGateway
  implements OnGatewayInit, OnGatewayConnection, OnGatewayDisconnect, OnApplicationShutdown
{
  private readonly logger = new Logger('ChatGateway');
  private readonly options: ResolvedChatOptions;
  private readonly policy: ResolvedConnectionPolicy;
  private readonly originAllowed: OriginCheck;
  private readonly heartbeat: Heartbeat;
  /** Disconnected sockets still leaving their group: shutdown waits for them. */
  private readonly leaving = new Set<Promise<void>>();
  private readonly connections = new Map<WebSocket, Connection>();
  /** Users admitted by `authenticate`, from the handshake until the socket opens. */
  private readonly admitted = new WeakMap<IncomingMessage, ChatUser>();
  /** The last chat message serialized: every member of one groupSend gets the same object. */
  private lastChat?: ChannelMessage;
  private lastChatFrame = Buffer.alloc(0);

  constructor(
    private readonly layer: ChannelLayer,
    @Inject(CHAT_MODULE_OPTIONS) options: ChatModuleOptions,
    private readonly metrics: ChatMetrics,
  ) {
    this.options = resolveChatOptions(options);
    this.policy = resolveConnectionPolicy(options);
    this.originAllowed = compileOriginCheck(this.policy);
    this.heartbeat = new Heartbeat(this.policy.heartbeatIntervalMs, {
      onTimeout: () => {
        this.metrics.closedByServer('heartbeat_timeout');
        this.logger.debug('terminated a socket that missed a heartbeat');
      },
      onPong: (socket) => this.drained(socket),
    });
    metrics.measureSendBuffers(() => this.sendBufferBytes());
    Reflect.defineMetadata(
      GATEWAY_OPTIONS,
      {
        path: this.options.path,
        maxPayload: this.options.maxFrameBytes,
        verifyClient: (info: { req: IncomingMessage }, done: VerifyDone) =>
          this.verify(info.req, done),
      },
      new.target,
    );
  }

  afterInit(server: WebSocketServer): void {
    if (!(CHAT_WS_SERVER in server)) {
      const hint = 'call app.useWebSocketAdapter(new ChatWsAdapter(app)) before app.listen()';
      this.logger.error(`ChatModule needs ChatWsAdapter: ${hint}`);
      throw new Error(`ChatModule needs ChatWsAdapter: ${hint}`);
    }
    this.heartbeat.start();
  }

  /** Runs before the module closes the layer: sockets closed by shutdown finish leaving first. */
  async onApplicationShutdown(): Promise<void> {
    this.heartbeat.stop();
    await Promise.all(this.leaving);
  }

  handleConnection(socket: WebSocket, request: IncomingMessage): void {
    const user = this.admitted.get(request);
    const connection: Connection = {
      socket,
      info: { user, group: this.options.group, request },
      userName: user ? (user.name ?? user.id) : undefined,
      joined: false,
      closed: false,
      limiter: this.policy.rateLimit
        ? new RateLimiter(this.policy.rateLimit, performance.now())
        : undefined,
      dropped: 0,
    };
    this.connections.set(socket, connection);
    this.metrics.connectionOpened();
    this.heartbeat.watch(socket);
    // Nest calls this from an rxjs subscriber: a throw or rejection here would reach the
    // process, so every failure ends in failJoin.
    connection.joining = this.join(connection).catch((error: unknown) =>
      this.failJoin(connection, error),
    );
  }

  handleDisconnect(socket: WebSocket): void {
    const connection = this.connections.get(socket);
    if (!connection) return;
    this.connections.delete(socket);
    this.metrics.connectionClosed();
    this.heartbeat.unwatch(socket);
    connection.closed = true;
    if (!connection.joined) return;
    const left = this.leave(connection).then(() =>
      this.notify(this.options.onDisconnect, connection),
    );
    this.leaving.add(left);
    void left.finally(() => this.leaving.delete(left));
  }

  @SubscribeMessage(RAW_FRAME_EVENT)
  onFrame(@ConnectedSocket() socket: WebSocket, @MessageBody() data: unknown): void {
    const connection = this.connections.get(socket);
    if (!connection) return;
    this.metrics.framesReceived++;
    if (connection.limiter && !this.withinRate(connection, connection.limiter)) return;
    if (connection.joined) this.receive(connection, data);
    else void connection.joining?.then(() => connection.joined && this.receive(connection, data));
  }

  /** The seed's `receive`: one client frame → one `groupSend`. */
  private receive(connection: Connection, data: unknown): void {
    const frame = parseClientFrame(data);
    if (frame instanceof ProtocolError) {
      this.sendError(connection.socket, frame.code, frame.message);
      return;
    }
    if (!this.options.onMessage) return this.broadcast(connection, frame.message);
    // The hook may be async: chain per connection so a sender's messages keep their order.
    connection.hookQueue = (connection.hookQueue ?? Promise.resolve()).then(() =>
      this.screen(connection, frame.message),
    );
  }

  private async screen(connection: Connection, message: string): Promise<void> {
    const hook = this.options.onMessage;
    let screened: string;
    try {
      screened = await (hook as NonNullable<typeof hook>)({ ...connection.info, message });
      if (typeof screened !== 'string') throw new TypeError('onMessage must return a string');
    } catch (error) {
      if (connection.socket.readyState !== WebSocket.OPEN) return;
      if (error instanceof ChatMessageRejected) {
        connection.socket.send(errorFrame(error.code, error.message));
      } else {
        this.logger.error(`onMessage hook failed: ${describe(error)}`);
        connection.socket.send(
          errorFrame(ErrorCode.InternalError, 'message not sent: server error'),
        );
      }
      return;
    }
    this.broadcast(connection, screened);
  }

  private broadcast(connection: Connection, message: string): void {
    const user = connection.userName;
    const started = performance.now();
    this.layer
      .groupSend(
        this.options.group,
        user === undefined
          ? { type: CHAT_MESSAGE, message }
          : { type: CHAT_MESSAGE, message, user },
      )
      .then(
        () => this.metrics.layerOperation('group_send', performance.now() - started),
        (error: unknown) => this.reportSendFailure(connection, error),
      );
  }

  /** The rate limit: `false` when the frame must not be handled (refused, or the socket closed). */
  private withinRate(connection: Connection, limiter: RateLimiter): boolean {
    const verdict = limiter.take(performance.now());
    if (verdict === RateVerdict.Allowed) return true;
    const { socket } = connection;
    if (socket.readyState !== WebSocket.OPEN) return false;
    if (verdict === RateVerdict.Refused) {
      this.sendError(socket, ErrorCode.RateLimited, 'too many frames: this one was not handled');
    } else {
      this.metrics.closedByServer('rate_limited');
      this.logger.warn(`closed ${connection.channel ?? 'a socket'}: it kept over the rate limit`);
      socket.close(CloseCode.PolicyViolation, 'rate limit exceeded');
    }
    return false;
  }

  /** The layer's push delivery for one socket: a message's `type` picks its handler. */
  private dispatch(connection: Connection, message: ChannelMessage): boolean {
    if (!connection.joined) {
      (connection.early ??= []).push(message);
      return true;
    }
    switch (message.type) {
      case CHAT_MESSAGE:
        return this.write(connection, this.chatFrame(message));
      default:
        this.logger.warn(`no handler for message type ${message.type}`);
        return true;
    }
  }

  /** Serializes once per groupSend: members share the message object, so memoize on it. */
  private chatFrame(message: ChannelMessage): Buffer {
    if (message !== this.lastChat) {
      const frame: ChatFrame = { type: 'chat', message: String(message.message) };
      if (typeof message.user === 'string') frame.user = message.user;
      this.lastChatFrame = Buffer.from(JSON.stringify(frame));
      this.lastChat = message;
    }
    return this.lastChatFrame;
  }

  /**
   * Writes a chat frame. A socket with more than `maxBufferedBytes` queued reads too slowly: its
   * messages are dropped (and `false` makes the layer count a skip) until its queue has drained
   * to half the limit; then it is told how many it missed, before the next message.
   */
  private write(connection: Connection, frame: Buffer): boolean {
    const { socket } = connection;
    if (socket.readyState !== WebSocket.OPEN) return true;
    const buffered = socket.bufferedAmount;
    if (connection.dropped > 0) {
      if (buffered > this.options.maxBufferedBytes / 2) return this.drop(connection);
      this.tellDropped(connection);
    } else if (buffered > this.options.maxBufferedBytes) {
      return this.drop(connection);
    }
    socket.send(frame, TEXT);
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
    if (socket.bufferedAmount <= this.options.maxBufferedBytes / 2) this.tellDropped(connection);
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

  private sendError(socket: WebSocket, code: ErrorCode, message: string): void {
    socket.send(errorFrame(code, message));
    this.metrics.errorSent(code);
  }

  /** Bytes queued for every socket; read at scrape time only. */
  private sendBufferBytes(): number {
    let total = 0;
    for (const socket of this.connections.keys()) total += socket.bufferedAmount;
    return total;
  }

  private async join(connection: Connection): Promise<void> {
    const channel = await this.layer.newChannel('chat');
    connection.channel = channel;
    connection.detach = this.layer.attach(channel, (message) => this.dispatch(connection, message));
    const started = performance.now();
    await this.layer.groupAdd(this.options.group, channel);
    this.metrics.layerOperation('group_add', performance.now() - started);
    if (connection.closed) return this.leave(connection);
    connection.joined = true;
    this.metrics.roomJoined(this.options.group);
    connection.socket.send(CONNECTION_ESTABLISHED);
    this.metrics.controlFramesSent++;
    const early = connection.early;
    connection.early = undefined;
    early?.forEach((message) => this.dispatch(connection, message));
    await this.notify(this.options.onConnect, connection);
  }

  /** The handshake: its Origin first (403, as Channels' OriginValidator), then `authenticate`. */
  private verify(request: IncomingMessage, done: VerifyDone): void {
    if (!this.originAllowed(request.headers.origin, request.headers.host)) {
      this.metrics.handshakeRefused('origin');
      this.logger.debug(
        `refused a handshake from origin ${JSON.stringify(request.headers.origin)}`,
      );
      return done(false, 403, 'Forbidden');
    }
    if (!this.options.authenticate) return done(true);
    void this.admit(request, done);
  }

  /** The handshake's verdict, from the host's `authenticate` hook. */
  private async admit(request: IncomingMessage, done: VerifyDone): Promise<void> {
    try {
      const user = await (
        this.options.authenticate as NonNullable<ChatModuleOptions['authenticate']>
      )(request);
      if (!user) return done(false, 401, 'Unauthorized');
      this.admitted.set(request, user);
      done(true);
    } catch (error) {
      if (error instanceof HttpException) return done(false, error.getStatus(), error.message);
      this.logger.error(`authenticate hook failed: ${describe(error)}`);
      done(false, 500, 'Internal Server Error');
    }
  }

  private async notify(hook: ConnectionHook | undefined, connection: Connection): Promise<void> {
    if (!hook) return;
    try {
      await hook(connection.info);
    } catch (error) {
      this.logger.error(`connection hook failed: ${describe(error)}`);
    }
  }

  private async leave(connection: Connection): Promise<void> {
    if (connection.joined) this.metrics.roomLeft(this.options.group);
    connection.joined = false;
    connection.detach?.();
    if (!connection.channel) return;
    try {
      const started = performance.now();
      await this.layer.groupDiscard(this.options.group, connection.channel);
      this.metrics.layerOperation('group_discard', performance.now() - started);
    } catch (error) {
      this.logger.warn(`could not leave group ${this.options.group}: ${describe(error)}`);
    }
  }

  private async failJoin(connection: Connection, error: unknown): Promise<void> {
    this.logger.error(`socket could not join ${this.options.group}: ${describe(error)}`);
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
      this.logger.error(`groupSend failed: ${describe(error)}`);
      this.sendError(socket, ErrorCode.InternalError, 'message not sent: server error');
    }
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
