import type { WebSocket } from 'ws';

/** What ws' receiver holds of a message still arriving; read, never written. */
interface ReceiverState {
  /** The opcode of a fragmented message in progress, 0 when none. */
  _fragmented: number;
  /** Bytes received and not yet parsed into a whole frame. */
  _bufferedBytes: number;
}

/** A socket's progress as the deadline last saw it. */
interface Watch {
  /** Messages the socket has completed. */
  messages: number;
  /** When it was first seen holding an unfinished message (ms, monotonic)... */
  since?: number;
  /** ...and how many messages it had completed by then. */
  messagesThen: number;
}

function receiverOf(socket: WebSocket): ReceiverState | undefined {
  const receiver = (socket as unknown as { _receiver?: Partial<ReceiverState> })._receiver;
  return receiver &&
    typeof receiver._fragmented === 'number' &&
    typeof receiver._bufferedBytes === 'number'
    ? (receiver as ReceiverState)
    : undefined;
}

/**
 * Ends sockets that leave a message unfinished: a fragmented message whose last fragment does not
 * come, or one frame whose bytes trickle in. ws holds such a message's bytes (up to the frame size
 * limit) until it completes, and pings keep the socket alive meanwhile, so without this a client
 * could pin that memory for as long as it likes.
 *
 * A socket that holds part of a message at two sweeps `timeoutMs` apart, without completing any
 * message in between, is ended: within 1.5 × `timeoutMs` of its first byte. One shared timer, and
 * two numbers per socket. What ws holds is read from its receiver's fields (ws 8); should a ws
 * release lack them, `supported` is false and the deadline does nothing.
 */
export class MessageDeadline {
  private readonly watched = new Map<WebSocket, Watch>();
  private timer?: NodeJS.Timeout;
  /** Whether this ws exposes what the deadline reads; checked on the first socket. */
  supported?: boolean;

  constructor(
    readonly timeoutMs: number,
    private readonly onExpired: (socket: WebSocket) => void,
  ) {}

  start(): void {
    if (this.timeoutMs <= 0 || this.timer) return;
    this.timer = setInterval(() => this.sweep(performance.now()), this.timeoutMs / 2).unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  watch(socket: WebSocket): void {
    if (this.timeoutMs <= 0) return;
    this.supported ??= receiverOf(socket) !== undefined;
    if (this.supported) this.watched.set(socket, { messages: 0, messagesThen: 0 });
  }

  unwatch(socket: WebSocket): void {
    this.watched.delete(socket);
  }

  /** The socket completed a message (text or binary). */
  completed(socket: WebSocket): void {
    const watch = this.watched.get(socket);
    if (watch) watch.messages++;
  }

  private sweep(now: number): void {
    for (const [socket, watch] of this.watched) {
      const receiver = receiverOf(socket);
      if (!receiver || (receiver._fragmented === 0 && receiver._bufferedBytes === 0)) {
        watch.since = undefined;
        continue;
      }
      if (watch.since === undefined || watch.messages !== watch.messagesThen) {
        watch.since = now;
        watch.messagesThen = watch.messages;
        continue;
      }
      if (now - watch.since >= this.timeoutMs) {
        this.watched.delete(socket);
        this.onExpired(socket);
      }
    }
  }
}
