import type { IncomingMessage, Server as HttpServer } from 'node:http';
import { createServer, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { INestApplicationContext } from '@nestjs/common';
import { WsAdapter } from '@nestjs/platform-ws';
import type { MessageMappingProperties } from '@nestjs/websockets';
import { isObservable } from 'rxjs';
import type { RawData, WebSocket, WebSocketServer } from 'ws';
import { CloseCode } from './chat.protocol.js';
import { corkUntilCheckPhase } from './outbox.js';

/** The event every raw frame is routed to, for gateways of a server without a socket sink. */
export const RAW_FRAME_EVENT = 'chat:frame';

/** Marks servers made by this adapter, so a gateway can tell it is mounted right. */
export const CHAT_WS_SERVER = Symbol('chat-ws-server');

/**
 * Takes a server's sockets in place of Nest's gateway plumbing: see {@link setSocketSink}. Calls
 * are made for sockets of that server only; `open` comes once a socket is accepted, after the
 * server's `connection` listeners; `close` once it has closed.
 */
export interface SocketSink {
  /**
   * `url`: the upgrade URL, already parsed for routing; `stream`: the TCP stream ws was given, for
   * writing pre-encoded frames (see `Outbox`).
   */
  open(socket: WebSocket, request: IncomingMessage, url: URL, stream: Duplex): void;
  /** A message: text as a string, binary as ws gives it; `bytes`: its payload's size. */
  frame(socket: WebSocket, data: string | RawData, bytes: number): void;
  /** A ping. The server's ws does not answer pings itself (`autoPong: false`): the sink does. */
  ping(socket: WebSocket, data: Buffer): void;
  /** A pong, solicited or not. */
  pong(socket: WebSocket, data: Buffer): void;
  close(socket: WebSocket): void;
}

/** A sink's socket listeners, made once: each reads its socket from `this`, the emitter. */
interface SinkListeners {
  message(this: WebSocket, data: RawData, isBinary: boolean): void;
  ping(this: WebSocket, data: Buffer): void;
  pong(this: WebSocket, data: Buffer): void;
  close(this: WebSocket): void;
}

const sinks = new WeakMap<WebSocketServer, { sink: SocketSink; listeners: SinkListeners }>();

function listenersOf(sink: SocketSink): SinkListeners {
  return {
    message(data, isBinary) {
      sink.frame(this, isBinary ? data : data.toString(), rawSize(data));
    },
    ping(data) {
      sink.ping(this, data);
    },
    pong(data) {
      sink.pong(this, data);
    },
    close() {
      sink.close(this);
    },
  };
}

/**
 * Hands `server`'s sockets to `sink`, past Nest's per-socket plumbing (an rxjs Subject and
 * subscriptions per connection) and its per-message pipeline (the proxy, guards, interceptors,
 * pipes and filters: a dozen promise hops per frame). The chat gateway has none of its own and its
 * hooks do their jobs; the bench measured the pipeline at 5-10 % of a 100-member room's CPU and
 * latency, and the connection plumbing at about 5 % of a handshake's.
 */
export function setSocketSink(server: WebSocketServer, sink: SocketSink): void {
  sinks.set(server, { sink, listeners: listenersOf(sink) });
}

/** Options of {@link ChatWsAdapter}. */
export interface ChatWsAdapterOptions {
  /**
   * Milliseconds shutdown waits for clients to answer the 1001 close before terminating them.
   * @default 2000
   */
  closeTimeoutMs?: number;
}

/** A server in the registry: Nest's normalized path, and our room prefix among ws' options. */
type RoutedServer = WebSocketServer & { path: string; options: { roomPath?: string } };

/**
 * Nest's `WsAdapter` for plain WebSocket frames. It differs in these places only:
 * - every frame reaches the gateway as is (`RAW_FRAME_EVENT`), instead of being dropped unless it
 *   is a `{"event","data"}` envelope;
 * - a gateway's path matches with and without its trailing slash (the seed's URL has one), and
 *   an unknown path gets a 404 instead of a hung-up socket; a gateway with a `roomPath` option
 *   also takes `<roomPath>/<room>/`;
 * - shutdown closes sockets with 1001 instead of terminating them without a close frame;
 * - each client gets one plain `message` listener instead of an rxjs pipeline, and the sockets of
 *   a server with a {@link SocketSink} go to it instead of to Nest.
 */
export class ChatWsAdapter extends WsAdapter {
  private readonly closeTimeoutMs: number;
  private readonly upgradeListeners = new Map<
    HttpServer,
    (request: IncomingMessage, socket: Duplex, head: Buffer) => void
  >();

  constructor(
    appOrHttpServer?: INestApplicationContext | object,
    options: ChatWsAdapterOptions = {},
  ) {
    super(appOrHttpServer, { messageParser: (data) => ({ event: RAW_FRAME_EVENT, data }) });
    this.closeTimeoutMs = options.closeTimeoutMs ?? 2000;
  }

  override create(
    port: number,
    options?: Record<string, unknown> & { path?: string },
  ): WebSocketServer {
    const server = super.create(port, options) as WebSocketServer;
    Object.defineProperty(server, CHAT_WS_SERVER, { value: true });
    return server;
  }

  /**
   * Nest's version builds an rxjs pipeline per client (`fromEvent` for close and message, `share`,
   * `first`, `mergeMap`, `takeUntil`): 7 KiB of heap held by every idle socket. This is one listener
   * with the same contract: each frame goes through the parser to its handler, which Nest built
   * with the gateway's guards, pipes, interceptors and filters; a non-nil result, or each value of
   * an Observable result, is sent as JSON while the socket is open. `transform` (Nest's
   * promise-to-Observable step) is not needed: the result is awaited here directly.
   */
  override bindMessageHandlers(
    client: WebSocket,
    handlers: MessageMappingProperties[],
    _transform?: unknown,
  ): void {
    client.on('message', (data: RawData, isBinary: boolean) => {
      let result: unknown;
      try {
        // As Nest's `fromEvent` saw it, through ws' MessageEvent: text frames as strings.
        const message = this.messageParser(isBinary ? data : data.toString());
        if (!message) return;
        const handler = handlers.find((candidate) => candidate.message === message.event);
        if (!handler) return;
        result = handler.callback(message.data, message.event);
      } catch {
        return; // as Nest's bindMessageHandler: a frame that does not parse is ignored
      }
      if (result instanceof Promise) {
        result.then(
          (value: unknown) => this.reply(client, value),
          (error: unknown) => this.logger.error(error),
        );
      } else {
        this.reply(client, result);
      }
    });
  }

  /** Nest's connection handling, for the sockets of servers without a sink (see `accept`). */
  override bindClientConnect(
    server: WebSocketServer,
    callback: (socket: WebSocket, request: IncomingMessage) => void,
  ): void {
    server.on('connection', (socket: WebSocket, request: IncomingMessage) => {
      if (!sinks.has(server)) callback(socket, request);
    });
  }

  /** Sends a handler's result, as Nest's `bindMessageHandlers` does. */
  private reply(client: WebSocket, result: unknown): void {
    if (isObservable(result)) {
      result.subscribe({
        next: (value) => this.reply(client, value),
        error: (error: unknown) => this.logger.error(error),
      });
    } else if (result !== undefined && result !== null && client.readyState === client.OPEN) {
      client.send(JSON.stringify(result));
    }
  }

  /** A client's protocol error (bad UTF-8, oversized frame) is its problem, not a server error. */
  override bindErrorHandler(server: WebSocketServer): WebSocketServer {
    server.on('connection', (socket: WebSocket) =>
      socket.on('error', (error: Error & { code?: string }) =>
        this.logger.debug(`socket closed on a client error: ${error.code ?? error.message}`),
      ),
    );
    server.on('error', (error: Error) => this.logger.error(error));
    return server;
  }

  protected override ensureHttpServerExists(
    port: number,
    httpServer: HttpServer = createServer(),
  ): HttpServer | undefined {
    if (this.httpServersRegistry.has(port)) return undefined;
    this.httpServersRegistry.set(port, httpServer);
    const listener = (request: IncomingMessage, socket: Duplex, head: Buffer): void =>
      this.routeUpgrade(port, request, socket, head);
    httpServer.on('upgrade', listener);
    this.upgradeListeners.set(httpServer, listener);
    return httpServer;
  }

  /**
   * Takes our upgrade listeners off the HTTP servers: one the host passed in outlives the adapter.
   * Nest 12's own `dispose` does so only for the listeners it added itself; Nest 11's for none.
   */
  override async dispose(): Promise<void> {
    for (const [server, listener] of this.upgradeListeners) server.off('upgrade', listener);
    this.upgradeListeners.clear();
    await super.dispose();
  }

  override async close(server: WebSocketServer): Promise<void> {
    // Closing first stops new handshakes (ws answers them 503); it completes once every client
    // has gone, so a socket that joins during the grace period cannot hold shutdown up.
    const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
    const clients = [...server.clients];
    const closed = clients.map(
      (client) => new Promise<void>((resolve) => client.once('close', () => resolve())),
    );
    for (const client of clients) client.close(CloseCode.GoingAway, 'server shutting down');
    const timer = setTimeout(
      () => clients.forEach((client) => client.terminate()),
      this.closeTimeoutMs,
    );
    await Promise.all(closed);
    clearTimeout(timer);
    await serverClosed;
  }

  private routeUpgrade(port: number, request: IncomingMessage, socket: Duplex, head: Buffer): void {
    let url: URL;
    try {
      url = new URL(request.url ?? '/', 'ws://localhost');
    } catch {
      return rejectUpgrade(socket, 400);
    }
    const pathname = url.pathname;
    const path = pathname.length > 1 && pathname.endsWith('/') ? pathname.slice(0, -1) : pathname;
    const servers = (this.wsServersRegistry.get(port) ?? []) as RoutedServer[];
    const server = servers.find(
      (candidate) => candidate.path === path || isRoomPath(candidate.options.roomPath, path),
    );
    if (!server) return rejectUpgrade(socket, 404);
    // The 101, and the greeting and history a gateway writes in the microtasks after it, leave
    // in one system call. A slower handshake (async `authenticate`, a Redis layer) has its 101
    // flushed at the check phase; a refusal's `end()` flushes at once.
    corkUntilCheckPhase(socket);
    server.handleUpgrade(request, socket, head, (ws: WebSocket) =>
      accept(server, ws, request, url, socket),
    );
  }
}

/** A socket `server` accepted: to its `connection` listeners, then to its sink if it has one. */
function accept(
  server: WebSocketServer,
  socket: WebSocket,
  request: IncomingMessage,
  url: URL,
  stream: Duplex,
): void {
  const sunk = sinks.get(server);
  if (sunk) {
    const { listeners } = sunk;
    socket.on('message', listeners.message);
    socket.on('ping', listeners.ping);
    socket.on('pong', listeners.pong);
    socket.on('close', listeners.close);
  }
  server.emit('connection', socket, request);
  sunk?.sink.open(socket, request, url, stream);
}

/** A message's payload bytes, whichever of ws' `binaryType` shapes it came in. */
function rawSize(data: RawData): number {
  if (Array.isArray(data)) return data.reduce((sum, chunk) => sum + chunk.length, 0);
  return data.byteLength;
}

/** `<roomPath>/<one segment>`: the Channels tutorial's `/ws/chat/<room>/`. */
function isRoomPath(roomPath: string | undefined, path: string): boolean {
  if (!roomPath || !path.startsWith(`${roomPath}/`)) return false;
  const room = path.slice(roomPath.length + 1);
  return room.length > 0 && !room.includes('/');
}

function rejectUpgrade(socket: Duplex, status: number): void {
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`,
  );
}
