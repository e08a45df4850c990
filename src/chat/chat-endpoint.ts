import type { IncomingMessage, Server as HttpServer } from 'node:http';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import type { RawData, ServerOptions, WebSocket } from 'ws';
import { processRegistry } from '../process-registry.js';
import { withoutTrailingSlash } from './chat.options.js';
import { CloseCode } from './chat.protocol.js';

/**
 * What takes one endpoint's sockets. `open` comes once a socket is accepted; `close` once it has
 * closed; in between, its frames, pings and pongs, each with the socket as first argument.
 */
export interface SocketSink {
  /**
   * `url`: the upgrade URL, already parsed for routing; `stream`: the TCP stream ws was given, for
   * writing pre-encoded frames (see `Outbox`). It comes corked, the 101 in it: the sink uncorks
   * it once, when it has written the socket's first frames, so that they leave in one system
   * call with the 101 however long it took to make them (a join on Redis is a round trip). Only
   * a refusal ends it sooner.
   */
  open(socket: WebSocket, request: IncomingMessage, url: URL, stream: Duplex): void;
  /** A message: text as a string, binary as ws gives it; `bytes`: its payload's size. */
  frame(socket: WebSocket, data: string | RawData, bytes: number): void;
  /** A ping. The endpoint's ws does not answer pings itself (`autoPong: false`): the sink does. */
  ping(socket: WebSocket, data: Buffer): void;
  /** A pong, solicited or not. */
  pong(socket: WebSocket, data: Buffer): void;
  /**
   * A client's protocol error (bad UTF-8, an oversized frame): ws closes the socket with the
   * matching code, then `close` comes. Without this listener the error would reach the process.
   */
  error(socket: WebSocket, error: Error & { code?: string }): void;
  close(socket: WebSocket): void;
}

/** Where an endpoint answers: its path (no trailing slash), and `<roomPath>/<room>` if set. */
export interface EndpointRoute {
  path: string;
  roomPath?: string;
}

/** Whether `path` (without its trailing slash) is `route`'s: its path, or `<roomPath>/<room>`. */
export function routeMatches({ path: own, roomPath }: EndpointRoute, path: string): boolean {
  if (path === own) return true;
  if (!roomPath || !path.startsWith(`${roomPath}/`)) return false;
  const room = path.slice(roomPath.length + 1);
  return room.length > 0 && !room.includes('/');
}

type UpgradeListener = (request: IncomingMessage, socket: Duplex, head: Buffer) => void;

/** Listeners that only watch upgrades (they answer none): the router leaves them be. */
const observers = processRegistry('upgrade-observers', () => new WeakSet<object>());

/** Marks `listener` as one that watches upgrades without answering them, and returns it. */
export function observeUpgrades<T extends (request: IncomingMessage) => void>(listener: T): T {
  observers.add(listener);
  return listener;
}

/**
 * One ChatModule's WebSocket endpoint, on the app's own HTTP server and port. It is not a Nest
 * gateway and needs no adapter: the host's adapter (Nest's `WsAdapter`, Socket.IO, none) and its
 * gateways go on as without us, since the upgrades that are not ours reach them untouched.
 */
export class ChatEndpoint {
  private readonly server: WebSocketServer;
  private detach?: () => void;
  /** Socket listeners made once for all sockets: each reads its socket from `this`. */
  private readonly listeners: {
    message(this: WebSocket, data: RawData, isBinary: boolean): void;
    ping(this: WebSocket, data: Buffer): void;
    pong(this: WebSocket, data: Buffer): void;
    error(this: WebSocket, error: Error): void;
    close(this: WebSocket): void;
  };

  constructor(
    readonly route: EndpointRoute,
    options: Pick<ServerOptions, 'maxPayload' | 'verifyClient'>,
    private readonly sink: SocketSink,
  ) {
    this.server = new WebSocketServer({
      ...options,
      noServer: true,
      // Frames are written pre-encoded to the TCP stream (Outbox): ws would queue a compressed
      // socket's own frames behind zlib, and ours would overtake them.
      perMessageDeflate: false,
      // Pings are answered by the sink, within the rate limit and the send budget.
      autoPong: false,
    });
    this.listeners = {
      message(data, isBinary) {
        sink.frame(this, isBinary ? data : data.toString(), rawSize(data));
      },
      ping(data) {
        sink.ping(this, data);
      },
      pong(data) {
        sink.pong(this, data);
      },
      error(error) {
        sink.error(this, error);
      },
      close() {
        sink.close(this);
      },
    };
  }

  /** Starts taking this route's upgrades on `httpServer`; throws if another endpoint has it. */
  attach(httpServer: HttpServer): void {
    this.detach = UpgradeRouter.of(httpServer).add(this);
  }

  /** Whether `path` (already without its trailing slash) is this endpoint's. */
  matches(path: string): boolean {
    return routeMatches(this.route, path);
  }

  upgrade(request: IncomingMessage, socket: Duplex, head: Buffer, url: URL): void {
    // The 101 waits in the corked stream for the sink's first frames (see `SocketSink.open`); a
    // refusal's `end()` flushes at once.
    socket.cork();
    this.server.handleUpgrade(request, socket, head, (ws: WebSocket) => {
      const { listeners } = this;
      ws.on('error', listeners.error);
      ws.on('message', listeners.message);
      ws.on('ping', listeners.ping);
      ws.on('pong', listeners.pong);
      ws.on('close', listeners.close);
      this.sink.open(ws, request, url, socket);
    });
  }

  /**
   * Closes every socket with 1001 (Nest's adapter terminates them without a close frame) and
   * terminates those that do not answer within `graceMs`; meanwhile ws answers new handshakes on
   * this route 503, those still being authenticated included. Then it stops taking upgrades.
   * Resolves once every socket has closed.
   */
  async close(graceMs: number): Promise<void> {
    // First, so that no handshake completes after the clients are listed.
    const serverClosed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    const clients = [...this.server.clients];
    const closed = clients.map(
      (client) => new Promise<void>((resolve) => client.once('close', () => resolve())),
    );
    for (const client of clients) client.close(CloseCode.GoingAway, 'server shutting down');
    const timer = setTimeout(() => clients.forEach((client) => client.terminate()), graceMs);
    await Promise.all(closed);
    clearTimeout(timer);
    await serverClosed;
    this.detach?.();
    this.detach = undefined;
  }
}

/** One router per HTTP server: the one that holds its `upgrade` event. */
const routers = processRegistry('upgrade-routers', () => new WeakMap<HttpServer, UpgradeRouter>());

/**
 * The one `upgrade` listener of an HTTP server with chat endpoints on it. It takes the upgrades of
 * their paths, and hands every other upgrade to the listeners that were there (the host's
 * adapters), which it holds in their place: Nest's `WsAdapter` destroys upgrades of paths it does
 * not know, so it must never see ours. A listener added later is taken over in the same way, in
 * the tick it was added in; one that only watches ({@link observeUpgrades}) stays where it is. A
 * listener taken over cannot be removed with `server.off` until the last endpoint is gone, when
 * the server gets its listeners back.
 */
class UpgradeRouter {
  private readonly endpoints: ChatEndpoint[] = [];
  private readonly others: UpgradeListener[] = [];
  private readonly dispatch: UpgradeListener = (request, socket, head) =>
    this.route(request, socket, head);
  private readonly adopt = (): void => {
    for (const listener of this.server.listeners('upgrade') as UpgradeListener[]) {
      if (listener === this.dispatch || observers.has(listener)) continue;
      this.server.off('upgrade', listener);
      this.others.push(listener);
    }
  };
  /** `newListener` comes before the listener is added: it is taken over once it is there. */
  private readonly added = (event: string | symbol): void => {
    if (event === 'upgrade') process.nextTick(this.adopt);
  };

  private constructor(private readonly server: HttpServer) {}

  static of(server: HttpServer): UpgradeRouter {
    let router = routers.get(server);
    if (!router) {
      router = new UpgradeRouter(server);
      routers.set(server, router);
    }
    return router;
  }

  add(endpoint: ChatEndpoint): () => void {
    const { path, roomPath } = endpoint.route;
    for (const other of this.endpoints) {
      if (other.matches(path) || endpoint.matches(other.route.path)) {
        throw new Error(
          `ChatModule: two ChatModules on the path ${path}; give each its own \`path\``,
        );
      }
      if (roomPath !== undefined && roomPath === other.route.roomPath) {
        throw new Error(
          `ChatModule: two ChatModules on the room path ${roomPath}; give each its own \`roomPath\``,
        );
      }
    }
    if (this.endpoints.length === 0) {
      this.adopt();
      this.server.on('upgrade', this.dispatch);
      this.server.on('newListener', this.added);
    }
    this.endpoints.push(endpoint);
    return () => this.remove(endpoint);
  }

  private remove(endpoint: ChatEndpoint): void {
    const at = this.endpoints.indexOf(endpoint);
    if (at >= 0) this.endpoints.splice(at, 1);
    if (this.endpoints.length > 0) return;
    // The last endpoint gone: the server's listeners are as they were, without us.
    this.server.off('newListener', this.added);
    this.server.off('upgrade', this.dispatch);
    for (const listener of this.others.splice(0)) this.server.on('upgrade', listener);
    routers.delete(this.server);
  }

  private route(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    let url: URL | undefined;
    try {
      url = new URL(request.url ?? '/', 'ws://localhost');
    } catch {
      url = undefined;
    }
    if (url) {
      const { pathname } = url;
      const path = withoutTrailingSlash(pathname);
      const endpoint = this.endpoints.find((candidate) => candidate.matches(path));
      if (endpoint) return endpoint.upgrade(request, socket, head, url);
    }
    if (this.others.length === 0) return rejectUpgrade(socket, url ? 404 : 400);
    for (const listener of this.others) listener.call(this.server, request, socket, head);
  }
}

/** A message's payload bytes, whichever of ws' `binaryType` shapes it came in. */
function rawSize(data: RawData): number {
  if (Array.isArray(data)) return data.reduce((sum, chunk) => sum + chunk.length, 0);
  return data.byteLength;
}

function rejectUpgrade(socket: Duplex, status: number): void {
  // Node took its own error listener off the socket before emitting `upgrade`: a reset while the
  // answer is written must not reach the process.
  socket.on('error', () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`,
  );
}
