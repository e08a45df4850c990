import type { Duplex } from 'node:stream';
import type { Logger } from '@nestjs/common';
import { WebSocket } from 'ws';
import type { ChatMetrics } from './chat-metrics.js';
import { AckFrame, ErrorCode, MessagesDroppedFrame, errorFrame } from './chat.protocol.js';

/** First header byte of a whole text frame: FIN, no RSV bits, opcode 1 (RFC 6455, section 5.2). */
const FIN_TEXT = 0x81;

/**
 * A whole unmasked text frame (RFC 6455, section 5.2), after `prefix` (frames already encoded)
 * when given, in one buffer, the payload written as UTF-8 straight into it.
 */
export function encodeTextFrame(payload: string, prefix?: Buffer): Buffer {
  const length = Buffer.byteLength(payload);
  const start = prefix ? prefix.length : 0;
  // The payload length takes 7 bits, or 126 then 16 bits, or 127 then 64 bits.
  const header = length < 126 ? 2 : length < 65536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(start + header + length);
  prefix?.copy(frame);
  frame[start] = FIN_TEXT;
  if (header === 2) {
    frame[start + 1] = length;
  } else if (header === 4) {
    frame[start + 1] = 126;
    frame.writeUInt16BE(length, start + 2);
  } else {
    frame[start + 1] = 127;
    frame.writeUInt16BE(0, start + 2);
    frame.writeUIntBE(length, start + 4, 6);
  }
  frame.write(payload, start + header);
  return frame;
}

/** A text frame to send: its JSON, encoded at most once however many sockets get it. */
export class TextFrame {
  private encoded?: Buffer;

  constructor(readonly text: string) {}

  /** The whole WebSocket frame, for sockets the outbox writes to directly. */
  get bytes(): Buffer {
    return (this.encoded ??= encodeTextFrame(this.text));
  }
}

/** A socket the outbox writes to, and its slow-reader count. */
export interface Recipient {
  readonly socket: WebSocket;
  /** Where its frames are written: its TCP stream (see {@link directStream}), or ws' `send`. */
  readonly stream: Duplex | undefined;
  /** Chat frames dropped since the socket was last told; > 0 while it reads too slowly. */
  dropped: number;
}

/**
 * `stream` (the TCP stream ws was given for `socket`) when encoded frames may be written to it
 * directly, else undefined. ws writes a socket's own frames (pongs, close) synchronously to that
 * stream, in call order, unless an extension is negotiated: permessage-deflate queues them behind
 * zlib, and frames written around ws would overtake them. (A Blob makes ws queue too: nothing
 * here sends one.)
 */
export function directStream(socket: WebSocket, stream: Duplex): Duplex | undefined {
  return socket.extensions === '' ? stream : undefined;
}

/** What one socket, and all of them together, may have queued. */
export interface SendBudget {
  maxBufferedBytes: number;
  maxTotalBufferedBytes: number;
}

/** Bytes queued for `sockets`, ws' and ours. */
export function bufferedBytes(sockets: Iterable<WebSocket>): number {
  let total = 0;
  for (const socket of sockets) total += socket.bufferedAmount;
  return total;
}

/**
 * The one writer of every frame the chat sends a socket: chat messages, greeting and history,
 * errors, notices, pongs. A socket that reads too slowly has its chat messages dropped, and is
 * told how many once it reads again; errors and pongs to it are skipped, so no client can make
 * the server queue more than the budget.
 *
 * Written directly to a socket's stream, one encoded buffer serves every member of a fan-out. A
 * socket's first frame of a loop turn goes out at once; later ones in the same turn (a busy room)
 * are corked until the turn's check phase and leave in one system call.
 */
export class Outbox {
  /** Streams written to in this loop turn. */
  private readonly written = new Set<Duplex>();
  private limit: number;

  constructor(
    private readonly budget: SendBudget,
    private readonly metrics: ChatMetrics,
    private readonly logger: Logger,
  ) {
    this.limit = budget.maxBufferedBytes;
  }

  /**
   * What one socket may have queued: `maxBufferedBytes`, or a sixteenth of it while all sockets
   * together hold more than `maxTotalBufferedBytes` (see {@link rebudget}).
   */
  get sendLimit(): number {
    return this.limit;
  }

  /**
   * A chat frame of a fan-out. A socket with more than `sendLimit` queued reads too slowly: its
   * messages are dropped (`false`, which the layer counts as a skip) until its queue has drained to
   * half the limit; then it is told how many it missed, before the next message.
   */
  deliver(to: Recipient, frame: TextFrame): boolean {
    const { socket } = to;
    if (socket.readyState !== WebSocket.OPEN) return true;
    const buffered = socket.bufferedAmount;
    if (to.dropped > 0) {
      if (buffered > this.limit / 2) return this.drop(to);
      this.tellDropped(to);
    } else if (buffered > this.limit) {
      return this.drop(to);
    }
    this.write(to, frame);
    this.metrics.deliveries++;
    return true;
  }

  /** Frames every socket gets however full its queue (the greeting and history), in one write. */
  greet(to: Recipient, frames: readonly TextFrame[]): void {
    const { stream } = to;
    stream?.cork();
    for (const frame of frames) this.write(to, frame);
    stream?.uncork();
    this.metrics.controlFramesSent += frames.length;
  }

  /**
   * An error frame (`id`: the client frame's it answers), unless the socket has `sendLimit`
   * queued: then it would not read it.
   */
  error(to: Recipient, code: ErrorCode | string, message: string, id?: string): void {
    // Nothing after ws has sent or seen a close frame (RFC 6455, section 5.5.1).
    if (to.socket.readyState !== WebSocket.OPEN) return;
    if (to.socket.bufferedAmount > this.limit) {
      this.metrics.errorsSkipped++;
      return;
    }
    this.write(to, new TextFrame(errorFrame(code, message, id)));
    this.metrics.errorSent(code);
  }

  /** Acknowledges the client frame `id` (a chat message: `messageId`, its record's id). */
  ack(to: Recipient, id: string, messageId?: string): void {
    const frame: AckFrame = { type: 'ack', id };
    if (messageId !== undefined) frame.message_id = messageId;
    this.reply(to, new TextFrame(JSON.stringify(frame)));
  }

  /**
   * A frame for this socket alone (an ack, an event handler's reply), unless it has `sendLimit`
   * queued: a client that does not read must not grow the server's memory by sending.
   */
  reply(to: Recipient, frame: TextFrame): void {
    if (to.socket.readyState !== WebSocket.OPEN) return;
    if (to.socket.bufferedAmount > this.limit) {
      this.metrics.repliesSkipped++;
      return;
    }
    this.write(to, frame);
    this.metrics.controlFramesSent++;
  }

  /** A ping's answer, unless the socket has `sendLimit` queued: it would only grow the queue. */
  pong(to: Recipient, data: Buffer): void {
    if (to.socket.bufferedAmount > this.limit) this.metrics.pongsSkipped++;
    else to.socket.pong(data);
  }

  /** A pong came: the socket read everything queued before the ping, so tell it what it missed. */
  drained(to: Recipient): void {
    const { socket } = to;
    if (to.dropped === 0 || socket.readyState !== WebSocket.OPEN) return;
    if (socket.bufferedAmount <= this.limit / 2) this.tellDropped(to);
  }

  /**
   * Once a second: while all sockets together queue more than `maxTotalBufferedBytes`, each may
   * queue a sixteenth of `maxBufferedBytes` (at least 16 KiB), so slow readers by the thousand
   * cannot hold the process's memory; back to the full allowance under half the total.
   */
  rebudget(sockets: Iterable<WebSocket>): void {
    const total = bufferedBytes(sockets);
    const { maxBufferedBytes: full, maxTotalBufferedBytes: most } = this.budget;
    if (total > most) {
      if (this.limit === full) this.logger.warn(`sockets hold ${total} bytes queued: tightening`);
      this.limit = Math.max(16 * 1024, Math.floor(full / 16));
    } else if (total < most / 2) {
      this.limit = full;
    }
  }

  private drop(to: Recipient): false {
    to.dropped++;
    this.metrics.dropped++;
    return false;
  }

  private tellDropped(to: Recipient): void {
    const count = to.dropped;
    to.dropped = 0;
    const frame: MessagesDroppedFrame = {
      type: 'error',
      code: ErrorCode.MessagesDropped,
      message: `${count} messages were dropped: this connection read too slowly`,
      count,
    };
    this.write(to, new TextFrame(JSON.stringify(frame)));
    this.metrics.errorSent(ErrorCode.MessagesDropped);
  }

  private write(to: Recipient, frame: TextFrame): void {
    const { stream } = to;
    if (!stream) {
      to.socket.send(frame.text);
      return;
    }
    if (!this.written.has(stream)) {
      if (this.written.size === 0) setImmediate(this.endTurn);
      this.written.add(stream);
    } else if (stream.writableCorked === 0) {
      corkUntilCheckPhase(stream);
    }
    stream.write(frame.bytes);
  }

  private readonly endTurn = (): void => this.written.clear();
}

/** Streams corked by {@link corkUntilCheckPhase}, uncorked together. */
let held: Duplex[] = [];

/**
 * Corks `stream` until this loop turn's check phase, so what is written to it meanwhile leaves in
 * one system call. The check phase runs right after the poll phase: every socket read in this turn
 * has been handled by then, so a batch is complete and nothing waits longer than that.
 */
export function corkUntilCheckPhase(stream: Duplex): void {
  stream.cork();
  if (held.push(stream) === 1) setImmediate(releaseHeld);
}

function releaseHeld(): void {
  const streams = held;
  held = [];
  for (const stream of streams) stream.uncork();
}
