import type { Duplex } from 'node:stream';

/** First header byte of a whole text frame: FIN, no RSV bits, opcode 1 (RFC 6455, section 5.2). */
const FIN_TEXT = 0x81;

/**
 * A whole unmasked text frame (RFC 6455, section 5.2), after `prefix` (frames already encoded)
 * when given, in one buffer: one groupSend encodes once and every member's socket gets the same
 * bytes. The payload is written as UTF-8 straight into the frame. One allocation, where ws'
 * `Sender.frame` and the concatenations around it took three; a handshake builds one of these.
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

/**
 * Writes encoded frames straight to sockets' streams. ws' own `send` costs a header allocation and
 * a two-buffer `writev` per frame; here a fan-out writes one shared buffer per socket. A socket's
 * first frame in a loop turn goes out at once; later ones (a busy room's messages, arriving
 * together) are corked until the turn's poll phase is over and leave in one system call.
 *
 * Safe because ws writes every frame of a socket synchronously, in call order, to this same stream
 * unless an extension (permessage-deflate) or a Blob makes it queue: the chat's servers never
 * negotiate an extension (`perMessageDeflate: false` in the gateway's options), and the gateway
 * never sends a Blob.
 */
export class Outbox {
  /** Streams written to in this loop turn. */
  private readonly written = new Set<Duplex>();

  /** Writes `frame` (from {@link encodeTextFrame}) to an open socket's TCP stream. */
  write(transport: Duplex, frame: Buffer): void {
    if (!this.written.has(transport)) {
      if (this.written.size === 0) setImmediate(this.endTurn);
      this.written.add(transport);
    } else if (transport.writableCorked === 0) {
      corkUntilCheckPhase(transport);
    }
    transport.write(frame);
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
