import type { IncomingMessage } from 'node:http';
import { HttpException, Inject, Logger } from '@nestjs/common';
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
  ProtocolError,
  errorFrame,
  parseClientFrame,
} from './chat.protocol';

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
export class ChatGateway implements OnGatewayInit, OnGatewayConnection, OnGatewayDisconnect {
  private readonly logger = new Logger('ChatGateway');
  private readonly options: ResolvedChatOptions;
  private readonly connections = new Map<WebSocket, Connection>();
  /** Users admitted by `authenticate`, from the handshake until the socket opens. */
  private readonly admitted = new WeakMap<IncomingMessage, ChatUser>();
  /** The last chat message serialized: every member of one groupSend gets the same object. */
  private lastChat?: ChannelMessage;
  private lastChatFrame = Buffer.alloc(0);

  constructor(
    private readonly layer: ChannelLayer,
    @Inject(CHAT_MODULE_OPTIONS) options: ChatModuleOptions,
  ) {
    this.options = resolveChatOptions(options);
    Reflect.defineMetadata(
      GATEWAY_OPTIONS,
      {
        path: this.options.path,
        maxPayload: this.options.maxFrameBytes,
        verifyClient: this.options.authenticate
          ? (info: { req: IncomingMessage }, done: VerifyDone) => void this.admit(info.req, done)
          : undefined,
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
  }

  handleConnection(socket: WebSocket, request: IncomingMessage): void {
    const user = this.admitted.get(request);
    const connection: Connection = {
      socket,
      info: { user, group: this.options.group, request },
      userName: user ? (user.name ?? user.id) : undefined,
      joined: false,
      closed: false,
    };
    this.connections.set(socket, connection);
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
    connection.closed = true;
    if (!connection.joined) return;
    void this.leave(connection).then(() => this.notify(this.options.onDisconnect, connection));
  }

  @SubscribeMessage(RAW_FRAME_EVENT)
  onFrame(@ConnectedSocket() socket: WebSocket, @MessageBody() data: unknown): void {
    const connection = this.connections.get(socket);
    if (!connection) return;
    if (connection.joined) this.receive(connection, data);
    else void connection.joining?.then(() => connection.joined && this.receive(connection, data));
  }

  /** The seed's `receive`: one client frame → one `groupSend`. */
  private receive(connection: Connection, data: unknown): void {
    const frame = parseClientFrame(data);
    if (frame instanceof ProtocolError) {
      connection.socket.send(frame.toFrame());
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
    this.layer
      .groupSend(
        this.options.group,
        user === undefined
          ? { type: CHAT_MESSAGE, message }
          : { type: CHAT_MESSAGE, message, user },
      )
      .catch((error: unknown) => this.reportSendFailure(connection, error));
  }

  /** The layer's push delivery for one socket: a message's `type` picks its handler. */
  private dispatch(connection: Connection, message: ChannelMessage): boolean {
    if (!connection.joined) {
      (connection.early ??= []).push(message);
      return true;
    }
    switch (message.type) {
      case CHAT_MESSAGE:
        return this.write(connection.socket, this.chatFrame(message));
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

  /** Writes a frame; `false` when the socket's send buffer is full, so the layer counts a skip. */
  private write(socket: WebSocket, frame: Buffer): boolean {
    if (socket.readyState !== WebSocket.OPEN) return true;
    if (socket.bufferedAmount > this.options.maxBufferedBytes) return false;
    socket.send(frame, TEXT);
    return true;
  }

  private async join(connection: Connection): Promise<void> {
    const channel = await this.layer.newChannel('chat');
    connection.channel = channel;
    connection.detach = this.layer.attach(channel, (message) => this.dispatch(connection, message));
    await this.layer.groupAdd(this.options.group, channel);
    if (connection.closed) return this.leave(connection);
    connection.joined = true;
    connection.socket.send(CONNECTION_ESTABLISHED);
    const early = connection.early;
    connection.early = undefined;
    early?.forEach((message) => this.dispatch(connection, message));
    await this.notify(this.options.onConnect, connection);
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
    connection.joined = false;
    connection.detach?.();
    if (!connection.channel) return;
    try {
      await this.layer.groupDiscard(this.options.group, connection.channel);
    } catch (error) {
      this.logger.warn(`could not leave group ${this.options.group}: ${describe(error)}`);
    }
  }

  private async failJoin(connection: Connection, error: unknown): Promise<void> {
    this.logger.error(`socket could not join ${this.options.group}: ${describe(error)}`);
    await this.leave(connection);
    const { socket } = connection;
    if (socket.readyState !== WebSocket.OPEN) return;
    socket.send(errorFrame(ErrorCode.LayerUnavailable, 'could not join the room; try again later'));
    socket.close(CloseCode.TryAgainLater, 'channel layer unavailable');
  }

  private reportSendFailure(connection: Connection, error: unknown): void {
    const { socket } = connection;
    if (socket.readyState !== WebSocket.OPEN) return;
    if (error instanceof ChannelLayerUnavailable) {
      socket.send(
        errorFrame(ErrorCode.LayerUnavailable, 'message not sent: channel layer unavailable'),
      );
    } else {
      this.logger.error(`groupSend failed: ${describe(error)}`);
      socket.send(errorFrame(ErrorCode.InternalError, 'message not sent: server error'));
    }
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
