import type { Duplex } from 'node:stream';
import * as ws from 'ws';
import type { WebSocket } from 'ws';

/** The part of ws' `Sender` we use: public at runtime (`WebSocket.Sender`), absent from @types/ws. */
interface FrameEncoder {
  frame(
    data: Buffer,
    options: { fin: boolean; rsv1: boolean; opcode: number; mask: boolean; readOnly: boolean },
  ): Buffer[];
}

const { Sender } = ws as unknown as { Sender: FrameEncoder };

/** Opcode of a text frame (RFC 6455, section 5.2). */
const TEXT_OPCODE = 1;

/**
 * A whole unmasked text frame, header and payload in one buffer, as ws' `Sender` encodes it: one
 * groupSend encodes once and every member's socket gets the same bytes.
 */
export function encodeTextFrame(payload: Buffer): Buffer {
  const options = { fin: true, rsv1: false, opcode: TEXT_OPCODE, mask: false, readOnly: false };
  return Buffer.concat(Sender.frame(payload, options));
}

/**
 * The stream an {@link Outbox} may write `socket`'s frames to: `stream`, the one ws was given in
 * `handleUpgrade`; undefined when it can't take encoded frames (an extension transforms them):
 * send through ws instead.
 */
export function transportFor(socket: WebSocket, stream: Duplex): Duplex | undefined {
  return socket.extensions === '' ? stream : undefined;
}

/**
 * Writes encoded frames straight to sockets' streams. ws' own `send` costs a header allocation and
 * a two-buffer `writev` per frame; here a fan-out writes one shared buffer per socket. A socket's
 * first frame in a loop turn goes out at once; later ones (a busy room's messages, arriving
 * together) are corked until the turn's poll phase is over and leave in one system call.
 *
 * Safe because ws writes every frame of a socket synchronously, in call order, to this same stream
 * unless an extension (permessage-deflate) or a Blob makes it queue: sockets with an extension take
 * the fallback, and the gateway never sends a Blob.
 */
export class Outbox {
  /** Streams written to in this loop turn. */
  private readonly written = new Set<Duplex>();

  /** Writes `frame` (from {@link encodeTextFrame}) to an open socket's {@link transportFor}. */
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
