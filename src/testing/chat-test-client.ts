import type { ClientRequestArgs } from 'node:http';
import WebSocket from 'ws';
import type { ServerFrame } from '../chat/chat.protocol.js';

/** How a {@link ChatTestClient} connects and waits. */
export interface ChatTestClientOptions {
  /**
   * Milliseconds any single wait (open, next frame, close) may take before it fails.
   * @default 5000
   */
  timeoutMs?: number;
  /** Extra handshake headers, e.g. `cookie` or `authorization`. */
  headers?: Record<string, string>;
  /** The handshake's Origin header. */
  origin?: string;
}

/** How a socket ended. */
export interface CloseInfo {
  code: number;
  reason: string;
}

/** A handshake the server refused, with its HTTP status. */
export class HandshakeRefused extends Error {
  override readonly name = 'HandshakeRefused';

  constructor(readonly status: number) {
    super(`handshake refused with HTTP ${status}`);
  }
}

/**
 * A WebSocket client for tests, in the spirit of Channels' `WebsocketCommunicator`: connect, send,
 * take frames in order with a timeout, and fail with a message that says what was awaited.
 */
export class ChatTestClient {
  /** Resolves when the socket has closed, with its close code and reason. */
  readonly closed: Promise<CloseInfo>;
  private readonly frames: unknown[] = [];
  private readonly waiters: Array<{ take(frame: unknown): void; fail(error: Error): void }> = [];
  /** Set once the socket closed: no frame can come any more. */
  private ended?: CloseInfo;

  private constructor(
    readonly socket: WebSocket,
    private readonly timeoutMs: number,
  ) {
    socket.on('message', (data, isBinary) => {
      const frame: unknown = isBinary ? data : JSON.parse(String(data));
      const waiter = this.waiters.shift();
      if (waiter) waiter.take(frame);
      else this.frames.push(frame);
    });
    this.closed = new Promise((resolve) =>
      socket.once('close', (code, reason) => {
        this.ended = { code, reason: String(reason) };
        for (const waiter of this.waiters.splice(0)) waiter.fail(this.closedError());
        resolve(this.ended);
      }),
    );
  }

  /** Opens a socket to `url`; rejects with {@link HandshakeRefused} when the server says no. */
  static connect(url: string, options: ChatTestClientOptions = {}): Promise<ChatTestClient> {
    const timeoutMs = options.timeoutMs ?? 5000;
    const requestOptions: ClientRequestArgs & { origin?: string } = {
      headers: options.headers,
      origin: options.origin,
    };
    const socket = new WebSocket(url, requestOptions);
    const client = new ChatTestClient(socket, timeoutMs);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.terminate();
        reject(new Error(`no connection to ${url} within ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('open', () => {
        clearTimeout(timer);
        resolve(client);
      });
      socket.once('unexpected-response', (_request, response) => {
        clearTimeout(timer);
        socket.terminate();
        reject(new HandshakeRefused(response.statusCode ?? 0));
      });
      socket.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
  }

  /** Sends an object as JSON, or a string or buffer as is. */
  send(frame: object | string | Buffer): void {
    if (Buffer.isBuffer(frame)) this.socket.send(frame, { binary: true });
    else this.socket.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /** The next frame, in arrival order; rejects at once when the socket closed before one came. */
  next<T = ServerFrame>(timeoutMs = this.timeoutMs): Promise<T> {
    if (this.frames.length > 0) return Promise.resolve(this.frames.shift() as T);
    if (this.ended) return Promise.reject(this.closedError());
    return new Promise<T>((resolve, reject) => {
      const waiter = {
        take: (frame: unknown): void => {
          clearTimeout(timer);
          resolve(frame as T);
        },
        fail: (error: Error): void => {
          clearTimeout(timer);
          reject(error);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        reject(new Error(`no frame within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  /** The next frame of `type`, skipping others (presence, history, ...) on the way. */
  async nextOfType<T extends { type: string } = ServerFrame>(type: string): Promise<T> {
    const deadline = Date.now() + this.timeoutMs;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${type} frame within ${this.timeoutMs} ms`);
      const frame = await this.next<T>(left).catch(() => {
        throw new Error(`no ${type} frame within ${this.timeoutMs} ms`);
      });
      if (frame.type === type) return frame;
    }
  }

  /** Waits for the seed's greeting; fails if the first frame is anything else. */
  async greeted(): Promise<this> {
    const frame = await this.next<{ type: string }>();
    if (frame.type !== 'connection_established') {
      throw new Error(`expected connection_established first, got ${JSON.stringify(frame)}`);
    }
    return this;
  }

  /**
   * Resolves if no frame (of `type`, when given; others are taken and ignored) arrives within
   * `ms`; rejects with the frame otherwise. Absence can only be shown by waiting: keep `ms` short.
   */
  async expectSilence(ms = 200, type?: string): Promise<void> {
    const deadline = Date.now() + ms;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) return;
      const frame = await this.next<{ type?: string }>(left).then(
        (received) => received,
        () => undefined,
      );
      if (frame === undefined) return;
      if (type === undefined || frame.type === type) {
        throw new Error(`unexpected frame ${JSON.stringify(frame)}`);
      }
    }
  }

  /** Frames received and not yet taken. */
  get pending(): readonly unknown[] {
    return this.frames;
  }

  /** Closes (politely, or with `code`) and resolves once closed. */
  async close(code = 1000): Promise<CloseInfo> {
    if (
      this.socket.readyState === WebSocket.OPEN ||
      this.socket.readyState === WebSocket.CONNECTING
    ) {
      this.socket.close(code);
    }
    const timer = setTimeout(() => this.socket.terminate(), this.timeoutMs);
    const info = await this.closed;
    clearTimeout(timer);
    return info;
  }

  /** Resolves with the close code once the server closes the socket. */
  async closedByServer(timeoutMs = this.timeoutMs): Promise<CloseInfo> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`socket still open after ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    try {
      return await Promise.race([this.closed, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  private closedError(): Error {
    const { code, reason } = this.ended ?? { code: 0, reason: '' };
    return new Error(`socket closed (${code}${reason ? ` ${reason}` : ''}) before a frame came`);
  }
}
