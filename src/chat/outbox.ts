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

/** Each accepted WebSocket's TCP stream, recorded by the adapter at the upgrade. */
const transports = new WeakMap<WebSocket, Duplex>();

/** Records the stream ws was given for `socket` in `handleUpgrade`. */
export function bindTransport(socket: WebSocket, transport: Duplex): void {
  transports.set(socket, transport);
}

/**
 * Writes encoded frames straight to sockets' streams, corked until the end of the event loop's
 * poll phase. ws' own `send` costs a header allocation and a two-buffer `writev` per frame; here a
 * fan-out writes one shared buffer per socket, and every frame a socket gets in one loop turn (a
 * busy room's messages, arriving together) leaves in one system call.
 *
 * Safe because ws writes every frame of a socket synchronously, in call order, to this same stream
 * unless an extension (permessage-deflate) makes it queue: sockets with one take the fallback.
 */
export class Outbox {
  private corked: Duplex[] = [];
  private scheduled = false;

  /**
   * Queues `frame` (from {@link encodeTextFrame}) for `socket`, which must be open. `false` when
   * the socket can't take encoded frames: send the payload through ws instead.
   */
  write(socket: WebSocket, frame: Buffer): boolean {
    const transport = transports.get(socket);
    if (!transport || socket.extensions !== '') return false;
    if (transport.writableCorked === 0) {
      transport.cork();
      this.corked.push(transport);
      if (!this.scheduled) {
        this.scheduled = true;
        // The check phase runs right after the poll phase: every socket read in this turn has
        // been handled, so the batch is complete and no frame waits longer than that.
        setImmediate(this.flush);
      }
    }
    transport.write(frame);
    return true;
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    const corked = this.corked;
    this.corked = [];
    for (const transport of corked) transport.uncork();
  };
}
