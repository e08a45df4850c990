import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Server as TlsServer } from 'node:tls';
import { addressKey } from './client-address.js';
import { processRegistry } from '../process-registry.js';
import { observeUpgrades } from './chat-endpoint.js';
import { DESCRIPTOR_RESERVE, descriptorLimit } from './descriptor-limit.js';

/** What the guard enforces on every TCP connection of an HTTP server. */
export interface ConnectionGuardLimits {
  /** Milliseconds a connection may wait before its next request head; 0: no limit. */
  handshakeTimeoutMs: number;
  /** Connections of one TCP peer waiting to send a request head; 0: no limit. */
  maxPendingPerAddress: number;
}

/** Why the guard dropped a connection; the metric's label. */
export type GuardDrop = 'handshake_timeout' | 'pending_per_address' | 'max_connections';

interface Pending {
  since: number;
  peer: string;
}

/**
 * Holds every TCP connection of an HTTP server to a budget while it owes a request head: after
 * it connects, and again after each response on a kept-alive connection. It must send one (a page
 * request or a WebSocket upgrade) within `handshakeTimeoutMs`, and one peer may have at most
 * `maxPendingPerAddress` connections owing one. A connection that sits silent or trickles its head
 * would otherwise keep its descriptor for Node's `headersTimeout` (60 s, checked every 30 s).
 * While a request is served, or once it is a WebSocket, the connection is the app's and ws'.
 *
 * It also caps the server's connections at the process's descriptor limit less
 * {@link DESCRIPTOR_RESERVE} (`server.maxConnections`, unless the host set it), so a flood is
 * turned away at accept instead of leaving the process unable to open a file or a Redis socket.
 *
 * One per HTTP server, whichever module installs it first (see {@link guardConnections}).
 */
class ConnectionGuard {
  /** Connections owing a request head, oldest first (insertion order). */
  private readonly pending = new Map<Socket, Pending>();
  private readonly perPeer = new Map<string, number>();
  private timer?: NodeJS.Timeout;
  private readonly listeners = new Set<(reason: GuardDrop) => void>();
  /** TLS servers hand requests the TLS socket, which exists from `secureConnection` on. */
  private readonly connectionEvent: 'connection' | 'secureConnection';
  /** `server.maxConnections` before the guard set it, when it did. */
  private readonly hostMaxConnections?: { value: number | undefined };

  constructor(
    private readonly server: Server,
    private readonly limits: ConnectionGuardLimits,
  ) {
    this.connectionEvent = server instanceof TlsServer ? 'secureConnection' : 'connection';
    server.on(this.connectionEvent, this.onConnection);
    server.on('request', this.onRequest);
    server.on('upgrade', this.onUpgrade);
    server.on('drop', this.onDrop);
    const descriptors = descriptorLimit();
    if (!server.maxConnections && descriptors !== undefined) {
      this.hostMaxConnections = { value: server.maxConnections };
      server.maxConnections = Math.max(1, descriptors - DESCRIPTOR_RESERVE);
    }
    if (limits.handshakeTimeoutMs > 0) {
      const every = Math.max(50, Math.min(1000, limits.handshakeTimeoutMs / 4));
      this.timer = setInterval(() => this.expire(performance.now()), every).unref();
    }
  }

  /** Adds a listener; the returned function removes it and says whether any are left. */
  addListener(listener: (reason: GuardDrop) => void): () => boolean {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
      return this.listeners.size > 0;
    };
  }

  dispose(): void {
    clearInterval(this.timer);
    this.server.off(this.connectionEvent, this.onConnection);
    this.server.off('request', this.onRequest);
    this.server.off('upgrade', this.onUpgrade);
    this.server.off('drop', this.onDrop);
    if (this.hostMaxConnections) {
      Reflect.set(this.server, 'maxConnections', this.hostMaxConnections.value);
    }
    this.pending.clear();
    this.perPeer.clear();
  }

  private readonly onConnection = (socket: Socket): void => {
    if (this.owe(socket)) socket.once('close', this.onClose);
  };

  /** One listener for every socket: `this` is the socket that closed. */
  private readonly onClose = ((guard: ConnectionGuard) =>
    function (this: Socket): void {
      guard.settle(this);
    })(this);

  private readonly onRequest = (request: IncomingMessage, response: ServerResponse): void => {
    const { socket } = request;
    this.settle(socket);
    // Kept alive, the connection owes the next request head from the end of this response on.
    response.once('finish', () => {
      if (!socket.destroyed && !request.headers.upgrade) this.owe(socket);
    });
  };

  /** An upgrade settles for good: a WebSocket's life is ws' and the gateway's to bound. */
  private readonly onUpgrade = observeUpgrades((request: IncomingMessage): void => {
    this.settle(request.socket);
  });

  private readonly onDrop = (): void => this.dropped('max_connections');

  /** Starts the clock on `socket`; false when its peer owes too many heads already. */
  private owe(socket: Socket): boolean {
    const peer = addressKey(socket.remoteAddress);
    const count = (this.perPeer.get(peer) ?? 0) + 1;
    const cap = this.limits.maxPendingPerAddress;
    if (cap > 0 && count > cap) {
      socket.destroy();
      this.dropped('pending_per_address');
      return false;
    }
    this.perPeer.set(peer, count);
    this.pending.set(socket, { since: performance.now(), peer });
    return true;
  }

  private settle(socket: Socket): void {
    const entry = this.pending.get(socket);
    if (!entry) return;
    this.pending.delete(socket);
    const left = (this.perPeer.get(entry.peer) ?? 0) - 1;
    if (left > 0) this.perPeer.set(entry.peer, left);
    else this.perPeer.delete(entry.peer);
  }

  private expire(now: number): void {
    const deadline = now - this.limits.handshakeTimeoutMs;
    for (const [socket, entry] of this.pending) {
      if (entry.since > deadline) break;
      this.settle(socket);
      socket.destroy();
      this.dropped('handshake_timeout');
    }
  }

  private dropped(reason: GuardDrop): void {
    for (const listener of this.listeners) listener(reason);
  }
}

/** One guard per server and process, whichever of the package's builds installed it. */
const guards = processRegistry('connection-guards', () => new WeakMap<Server, ConnectionGuard>());

/**
 * Installs the guard on `server` once; later calls reuse it (and its limits) and only add
 * `onDrop`. Returns a function that removes this caller's listener, and the guard once nobody
 * listens. The guard listens to `upgrade` and answers none: install it only on a server whose
 * upgrades someone answers (the chat's endpoint does), and remove it when that one goes, or an
 * upgrade would hang unanswered.
 */
export function guardConnections(
  server: Server,
  limits: ConnectionGuardLimits,
  onDrop: (reason: GuardDrop) => void,
): () => void {
  let guard = guards.get(server);
  if (!guard) guards.set(server, (guard = new ConnectionGuard(server, limits)));
  const installed = guard;
  const off = installed.addListener(onDrop);
  return () => {
    if (off() || guards.get(server) !== installed) return;
    installed.dispose();
    guards.delete(server);
  };
}
