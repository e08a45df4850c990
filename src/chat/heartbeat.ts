import { WebSocket } from 'ws';

/** What a {@link Heartbeat} reports. */
export interface HeartbeatHooks {
  /** A socket was terminated because it missed a pong. */
  onTimeout?: (socket: WebSocket) => void;
  /** A watched socket answered a ping. */
  onPong?: (socket: WebSocket) => void;
}

/**
 * Pings every watched socket on one shared interval and terminates those that did not answer the
 * previous ping: a half-open TCP connection (a phone that left coverage, a pulled cable) never
 * sends a close, so without this its group membership would live for `groupExpiry`. Terminating
 * emits the socket's `close`, so the gateway's disconnect path frees what it held.
 *
 * One timer for all sockets and one shared `pong` listener: nothing is allocated per socket but
 * its entry in the map.
 */
export class Heartbeat {
  /** socket → answered the last ping. */
  private readonly sockets = new Map<WebSocket, boolean>();
  private timer?: NodeJS.Timeout;
  /** Any pong proves the peer still reads. Shared by all sockets: `this` is the emitting socket. */
  private readonly onPong: (this: WebSocket) => void;

  private readonly onTimeout: (socket: WebSocket) => void;

  /**
   * @param intervalMs milliseconds between pings; `0` disables the heartbeat.
   * @param hooks `onTimeout`: a socket was terminated for a missed pong (metrics, logs);
   *   `onPong`: a socket answered, so it has read everything queued before the ping.
   */
  constructor(
    readonly intervalMs: number,
    hooks: HeartbeatHooks = {},
  ) {
    const sockets = this.sockets;
    const onPong = hooks.onPong;
    this.onTimeout = hooks.onTimeout ?? (() => undefined);
    this.onPong = function (this: WebSocket) {
      if (!sockets.has(this)) return;
      sockets.set(this, true);
      onPong?.(this);
    };
  }

  /** Starts the interval (idempotent; a no-op when disabled). It never keeps the process alive. */
  start(): void {
    if (this.intervalMs <= 0 || this.timer) return;
    this.timer = setInterval(() => this.beat(), this.intervalMs).unref();
  }

  /** Stops the interval; watched sockets stay watched but are no longer pinged. */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Starts watching a newly opened socket. */
  watch(socket: WebSocket): void {
    if (this.intervalMs <= 0) return;
    this.sockets.set(socket, true);
    socket.on('pong', this.onPong);
  }

  /** Stops watching a socket that closed. */
  unwatch(socket: WebSocket): void {
    if (this.sockets.delete(socket)) socket.off('pong', this.onPong);
  }

  /** How many sockets are watched; for leak checks. */
  get size(): number {
    return this.sockets.size;
  }

  private beat(): void {
    for (const [socket, alive] of this.sockets) {
      if (!alive) {
        this.sockets.delete(socket);
        socket.off('pong', this.onPong);
        socket.terminate();
        this.onTimeout(socket);
      } else if (socket.readyState === WebSocket.OPEN) {
        this.sockets.set(socket, false);
        socket.ping();
      }
    }
  }
}
