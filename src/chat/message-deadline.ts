import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';

/** What ws' receiver holds of a message still arriving; read, never written. */
interface ReceiverState {
  /** The opcode of a fragmented message in progress, 0 when none. */
  _fragmented: number;
  /** Bytes received and not yet parsed into a whole frame. */
  _bufferedBytes: number;
  /** Payload bytes of the fragments of the message in progress. */
  _messageLength: number;
}

/** A socket's progress: the gateway counts its messages, the deadline reads them. */
export interface MessageProgress {
  /** Messages the socket has completed; the socket's owner increments it. */
  messages: number;
  /** When it was first seen holding an unfinished message (ms, monotonic)... */
  since?: number;
  /** ...and how many messages it had completed by then. */
  messagesThen: number;
  /** Bytes ws holds for it of a message not yet complete, as last counted. */
  held: number;
}

function receiverOf(socket: WebSocket): ReceiverState | undefined {
  const receiver = (socket as unknown as { _receiver?: Partial<ReceiverState> })._receiver;
  return receiver &&
    typeof receiver._fragmented === 'number' &&
    typeof receiver._bufferedBytes === 'number' &&
    typeof receiver._messageLength === 'number'
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
 * message in between, is ended: within 1.5 × `timeoutMs` of its first byte. And since many sockets
 * can each hold a frame's worth at once, the bytes all of them hold are counted as they arrive:
 * the socket whose bytes take the total past `maxHeldBytes` is ended at once. One shared timer,
 * and a few numbers per socket. What ws holds is read from its receiver's fields (ws 8); should a
 * ws release lack them, `supported` is false and neither bound is enforced.
 */
export class MessageDeadline {
  private readonly watched = new Map<WebSocket, MessageProgress>();
  private timer?: NodeJS.Timeout;
  /** Whether this ws exposes what the deadline reads; checked on the first socket. */
  supported?: boolean;
  /** Bytes of unfinished messages all watched sockets hold. */
  held = 0;

  /**
   * @param timeoutMs how long a message may take to arrive; 0: no deadline.
   * @param maxHeldBytes how many bytes of unfinished messages all sockets together may hold: the
   *   socket whose bytes take the total past it is handed to `onOverBudget` as they arrive.
   */
  constructor(
    readonly timeoutMs: number,
    private readonly maxHeldBytes: number,
    private readonly onExpired: (socket: WebSocket) => void,
    private readonly onOverBudget: (socket: WebSocket) => void,
  ) {}

  start(): void {
    if (this.timeoutMs <= 0 || this.timer) return;
    this.timer = setInterval(() => this.sweep(performance.now()), this.timeoutMs / 2).unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * Watches a newly opened socket, whose TCP stream is `stream`: count its messages in what this
   * returns (if anything). Its stream's bytes are counted as they arrive, after ws has read them.
   */
  watch(socket: WebSocket, stream: Duplex): MessageProgress | undefined {
    this.supported ??= receiverOf(socket) !== undefined;
    if (!this.supported) return undefined;
    const progress: MessageProgress = { messages: 0, messagesThen: 0, held: 0 };
    this.watched.set(socket, progress);
    stream.on('data', () => this.arrived(socket, progress));
    return progress;
  }

  unwatch(socket: WebSocket): void {
    const progress = this.watched.get(socket);
    if (!progress) return;
    this.watched.delete(socket);
    this.held -= progress.held;
  }

  /** Counts what `socket` holds once ws has read its latest bytes. */
  private arrived(socket: WebSocket, progress: MessageProgress): void {
    const receiver = receiverOf(socket);
    if (!receiver || !this.watched.has(socket)) return;
    const held = receiver._bufferedBytes + receiver._messageLength;
    this.held += held - progress.held;
    progress.held = held;
    if (held > 0 && this.held > this.maxHeldBytes) this.onOverBudget(socket);
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
