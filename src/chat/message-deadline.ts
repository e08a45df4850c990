import type { WebSocket } from 'ws';

/** What ws' receiver holds of a message still arriving; read, never written. */
interface ReceiverState {
  /** The opcode of a fragmented message in progress, 0 when none. */
  _fragmented: number;
  /** Bytes received and not yet parsed into a whole frame. */
  _bufferedBytes: number;
}

/** A socket's progress: the gateway counts its messages, the deadline reads them. */
export interface MessageProgress {
  /** Messages the socket has completed; the socket's owner increments it. */
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
  private readonly watched = new Map<WebSocket, MessageProgress>();
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

  /** Watches a newly opened socket: count its messages in what this returns (if anything). */
  watch(socket: WebSocket): MessageProgress | undefined {
    if (this.timeoutMs <= 0) return undefined;
    this.supported ??= receiverOf(socket) !== undefined;
    if (!this.supported) return undefined;
    const progress: MessageProgress = { messages: 0, messagesThen: 0 };
    this.watched.set(socket, progress);
    return progress;
  }

  unwatch(socket: WebSocket): void {
    this.watched.delete(socket);
  }

  private sweep(now: number): void {
    for (const [socket, progress] of this.watched) {
      const receiver = receiverOf(socket);
      if (!receiver || (receiver._fragmented === 0 && receiver._bufferedBytes === 0)) {
        progress.since = undefined;
        continue;
      }
      if (progress.since === undefined || progress.messages !== progress.messagesThen) {
        progress.since = now;
        progress.messagesThen = progress.messages;
        continue;
      }
      if (now - progress.since >= this.timeoutMs) {
        this.watched.delete(socket);
        this.onExpired(socket);
      }
    }
  }
}
