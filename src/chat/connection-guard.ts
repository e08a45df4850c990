import type { IncomingMessage, Server } from 'node:http';
import type { Socket } from 'node:net';
import { addressKey } from './client-address';

/** What the guard enforces on every TCP connection of an HTTP server. */
export interface ConnectionGuardLimits {
  /** Milliseconds a connection may take to send a complete request head; 0: no limit. */
  handshakeTimeoutMs: number;
  /** Connections of one TCP peer that have not sent a request head yet; 0: no limit. */
  maxPendingPerAddress: number;
}

/** Why the guard dropped a connection; the metric's label. */
export type GuardDrop = 'handshake_timeout' | 'pending_per_address';

interface Pending {
  arrived: number;
  peer: string;
}

/**
 * Holds TCP connections to a budget until they have sent a request head (an HTTP request or a
 * WebSocket upgrade): each must send one within `handshakeTimeoutMs`, and one peer may hold at
 * most `maxPendingPerAddress` such connections. A connection that sits silent after connecting
 * costs a descriptor, and without this it would keep it for Node's `headersTimeout` (60 s, checked
 * every 30 s). After its first request head a connection is Node's (keep-alive) or ws' to time.
 *
 * One per HTTP server, whichever module installs it first (see {@link guardConnections}).
 */
class ConnectionGuard {
  /** Connections still without a request head, oldest first (insertion order). */
  private readonly pending = new Map<Socket, Pending>();
  private readonly perPeer = new Map<string, number>();
  private timer?: NodeJS.Timeout;
  /** Counts drops, for the metrics of every module on this server. */
  private readonly listeners = new Set<(reason: GuardDrop) => void>();

  constructor(
    private readonly server: Server,
    private readonly limits: ConnectionGuardLimits,
  ) {
    server.on('connection', this.onConnection);
    server.on('request', this.onRequest);
    server.on('upgrade', this.onRequest);
    if (limits.handshakeTimeoutMs > 0) {
      const every = Math.max(50, Math.min(1000, limits.handshakeTimeoutMs / 4));
      this.timer = setInterval(() => this.expire(performance.now()), every).unref();
    }
  }

  /** Adds a listener; the returned function removes it and says whether any are left. */
  onDrop(listener: (reason: GuardDrop) => void): () => boolean {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
      return this.listeners.size > 0;
    };
  }

  /** Connections without a request head yet. */
  get size(): number {
    return this.pending.size;
  }

  dispose(): void {
    clearInterval(this.timer);
    this.server.off('connection', this.onConnection);
    this.server.off('request', this.onRequest);
    this.server.off('upgrade', this.onRequest);
    this.pending.clear();
    this.perPeer.clear();
  }

  /**
   * Listens to `upgrade` too, so a connection that became a WebSocket is settled: the chat's
   * adapter always listens there as well, so adding a listener changes nothing for Node, which
   * destroys upgrades of a server with no `upgrade` listener.
   */
  private readonly onConnection = (socket: Socket): void => {
    const peer = addressKey(socket.remoteAddress);
    const count = (this.perPeer.get(peer) ?? 0) + 1;
    const cap = this.limits.maxPendingPerAddress;
    if (cap > 0 && count > cap) {
      socket.destroy();
      this.dropped('pending_per_address');
      return;
    }
    this.perPeer.set(peer, count);
    this.pending.set(socket, { arrived: performance.now(), peer });
    socket.once('close', () => this.settle(socket));
  };

  private readonly onRequest = (request: IncomingMessage): void => {
    this.settle(request.socket);
  };

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
      if (entry.arrived > deadline) break;
      this.settle(socket);
      socket.destroy();
      this.dropped('handshake_timeout');
    }
  }

  private dropped(reason: GuardDrop): void {
    for (const listener of this.listeners) listener(reason);
  }
}

const guards = new WeakMap<Server, ConnectionGuard>();

/**
 * Installs the guard on `server` once; later calls reuse it (and its limits) and only add
 * `onDrop`. Returns a function that removes this caller's listener, and the guard once nobody
 * listens.
 */
export function guardConnections(
  server: Server,
  limits: ConnectionGuardLimits,
  onDrop: (reason: GuardDrop) => void,
): () => void {
  let guard = guards.get(server);
  if (!guard) guards.set(server, (guard = new ConnectionGuard(server, limits)));
  const installed = guard;
  const off = installed.onDrop(onDrop);
  return () => {
    if (off() || guards.get(server) !== installed) return;
    installed.dispose();
    guards.delete(server);
  };
}
