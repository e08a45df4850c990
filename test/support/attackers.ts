import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { IncomingHttpHeaders, get } from 'node:http';
import { Socket, connect } from 'node:net';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import type { AppProcess } from './app-process.js';

/**
 * Whatever an attack opened and has not closed yet: a test that fails halfway leaves its sockets
 * and timers here, and `closeLeftovers()` (in afterEach) ends them, so jest exits on its own.
 */
const leftovers = new Set<() => Promise<void>>();

/** Ends every socket, client and watch still open. */
export async function closeLeftovers(): Promise<void> {
  const closers = [...leftovers];
  leftovers.clear();
  await Promise.all(closers.map((close) => close()));
}

/** One mebibyte, the unit every memory bound here is stated in. */
export const MiB = 1024 * 1024;

/**
 * Client source addresses, all on loopback: 127.0.0.1 is the test's own (metrics scrapes),
 * 127.0.0.2 the bystander that must keep chatting, and `attacker(i)` (127.0.1.1 on) one address per
 * attacker, so per-address caps can be shown to bite for one address and not for the others.
 */
export const BYSTANDER_ADDRESS = '127.0.0.2';

/** The `i`th attacker's source address: 127.0.1.1, 127.0.1.2, …, 127.0.1.250, 127.0.2.1, … */
export function attacker(i: number): string {
  return `127.0.${1 + Math.floor(i / 250)}.${1 + (i % 250)}`;
}

/** Where the app under attack listens. */
export class Target {
  readonly host: string;
  readonly port: number;
  readonly httpUrl: string;

  /** From the `ws://` URL `AppProcess.listening()` resolves with. */
  constructor(wsUrl: string) {
    const url = new URL(wsUrl);
    this.host = url.hostname;
    this.port = Number(url.port);
    this.httpUrl = `http://${url.host}`;
  }

  /** The path of a room (`/ws/chat/<room>/`), with an optional query string. */
  path(room: string, query = ''): string {
    return `/ws/chat/${room}/${query === '' ? '' : `?${query}`}`;
  }

  /** The `ws://` URL of a room. */
  room(room: string, query = ''): string {
    return `ws://${this.host}:${this.port}${this.path(room, query)}`;
  }
}

/** The server's resident set size in bytes (VmRSS of /proc/<pid>/status), or undefined once gone. */
export function rssOf(pid: number): number | undefined {
  try {
    const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** A handshake answered with an HTTP status instead of 101, with the response's headers. */
export class Refused extends Error {
  override readonly name = 'Refused';

  constructor(
    readonly status: number,
    readonly headers: IncomingHttpHeaders,
  ) {
    super(`handshake refused with HTTP ${status}`);
  }
}

/**
 * Opens a `ws` socket from `localAddress`; rejects with {@link Refused} when the server says no.
 * `onMessage` is attached before the handshake: the greeting and history arrive with the 101 and
 * would be gone by the time a listener added after `open` ran.
 */
export function openSocket(
  url: string,
  localAddress: string,
  onMessage?: (text: string) => void,
  timeoutMs = 10_000,
): Promise<WebSocket> {
  const socket = new WebSocket(url, { localAddress, handshakeTimeout: timeoutMs });
  // Resets after the handshake (a socket the server dropped) are expected here, not failures.
  socket.on('error', () => undefined);
  if (onMessage) socket.on('message', (data) => onMessage(String(data)));
  const close = (): Promise<void> => destroy(socket);
  leftovers.add(close);
  socket.once('close', () => leftovers.delete(close));
  return new Promise((resolve, reject) => {
    socket.once('open', () => resolve(socket));
    socket.once('unexpected-response', (request, response) => {
      leftovers.delete(close);
      reject(new Refused(response.statusCode ?? 0, response.headers));
      response.resume();
      request.destroy();
    });
    socket.once('error', reject);
  });
}

/** Resolves with the close code once `socket` has closed. */
export function closeCodeOf(socket: WebSocket): Promise<number> {
  if (socket.readyState === WebSocket.CLOSED) return Promise.resolve(1006);
  return new Promise((resolve) => socket.once('close', (code) => resolve(code)));
}

/** Closes `socket` at once (no closing handshake) and resolves when it is closed. */
export async function destroy(socket: WebSocket | Socket): Promise<void> {
  if (socket instanceof WebSocket) {
    if (socket.readyState === WebSocket.CLOSED) return;
    const closed = new Promise((resolve) => socket.once('close', resolve));
    socket.terminate();
    await closed;
  } else if (!socket.destroyed) {
    const closed = new Promise((resolve) => socket.once('close', resolve));
    socket.destroy();
    await closed;
  }
}

/** The TCP stream under a `ws` socket: pause it and the client stops reading. */
export function tcpOf(socket: WebSocket): Socket {
  return (socket as unknown as { _socket: Socket })._socket;
}

/** An HTTP response, read whole. */
export interface HttpAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** `GET path` on a fresh connection from `localAddress`; rejects after `timeoutMs`. */
export function httpGet(
  target: Target,
  path: string,
  localAddress = BYSTANDER_ADDRESS,
  timeoutMs = 2000,
): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const request = get(
      {
        host: target.host,
        port: target.port,
        path,
        localAddress,
        agent: false,
        timeout: timeoutMs,
      },
      (response) => {
        let body = '';
        response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
        response.on('end', () =>
          resolve({ status: response.statusCode ?? 0, headers: response.headers, body }),
        );
        response.on('error', reject);
      },
    );
    request.on('timeout', () =>
      request.destroy(new Error(`GET ${path}: no answer in ${timeoutMs} ms`)),
    );
    request.on('error', reject);
  });
}

/** Quantiles of a sample, in its unit. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/**
 * A normal user in a room of its own, on its own address: says something every `intervalMs` and
 * times how long its message takes to come back through the room.
 */
export class Bystander {
  readonly latencies: number[] = [];
  sent = 0;
  closedWith?: number;
  private readonly inFlight = new Map<string, number>();
  private timer?: NodeJS.Timeout;
  private settle?: () => void;

  private constructor(private readonly socket: WebSocket) {
    socket.on('message', (data) => {
      const frame = JSON.parse(String(data)) as { type: string; message?: string };
      if (frame.type !== 'chat' || frame.message === undefined) return;
      const sentAt = this.inFlight.get(frame.message);
      if (sentAt === undefined) return;
      this.inFlight.delete(frame.message);
      this.latencies.push(performance.now() - sentAt);
      if (this.inFlight.size === 0) this.settle?.();
    });
    socket.once('close', (code) => {
      this.closedWith = code;
      this.settle?.();
    });
  }

  /** Joins `room` from {@link BYSTANDER_ADDRESS} and waits for its history frame. */
  static async join(target: Target, room = 'bystander'): Promise<Bystander> {
    let historyCame!: () => void;
    const history = new Promise<void>((resolve) => (historyCame = resolve));
    const socket = await openSocket(
      target.room(room, 'name=bystander'),
      BYSTANDER_ADDRESS,
      (text) => {
        if (text.startsWith('{"type":"history"')) historyCame();
      },
    );
    const bystander = new Bystander(socket);
    await history;
    return bystander;
  }

  /** 10 messages a second by default: well within every rate limit. */
  start(intervalMs = 100): void {
    this.timer = setInterval(() => {
      if (this.socket.readyState !== WebSocket.OPEN) return;
      const text = `probe-${this.sent++}`;
      this.inFlight.set(text, performance.now());
      this.socket.send(JSON.stringify({ message: text }));
    }, intervalMs);
  }

  /** Stops saying things and waits up to `graceMs` for the last ones to come back. */
  async stop(graceMs = 2000): Promise<BystanderReport> {
    clearInterval(this.timer);
    if (this.inFlight.size > 0 && this.closedWith === undefined) {
      await Promise.race([new Promise<void>((resolve) => (this.settle = resolve)), sleep(graceMs)]);
    }
    const latencies = this.latencies;
    return {
      sent: this.sent,
      received: latencies.length,
      lost: this.sent - latencies.length,
      p50Ms: Math.round(quantile(latencies, 0.5)),
      p99Ms: Math.round(quantile(latencies, 0.99)),
      maxMs: Math.round(Math.max(...latencies)),
      closedWith: this.closedWith,
    };
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await destroy(this.socket);
  }
}

/** What the bystander saw. */
export interface BystanderReport {
  sent: number;
  received: number;
  lost: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Set if its socket closed during the attack (it must not). */
  closedWith?: number;
}

/** What the server did while under attack. */
export interface WatchReport {
  /** The process was still running and answering when the watch stopped. */
  alive: boolean;
  seconds: number;
  rss: { beforeMiB: number; peakMiB: number; afterMiB: number };
  bystander: BystanderReport;
  /** `GET /health` polled from the bystander's address every 200 ms. */
  health: { polls: number; failures: string[]; maxMs: number };
}

/**
 * Watches a server during an attack: its RSS every 100 ms, `/health` every 200 ms, and a
 * bystander chatting in another room. `signal` aborts when the RSS passes `abortRssBytes` or the
 * process exits, so an attack that works on a server without the bounds ends before it takes the
 * test machine's memory.
 */
export class Watch {
  private readonly controller = new AbortController();
  readonly signal: AbortSignal = this.controller.signal;
  private readonly started = performance.now();
  private peak: number;
  private readonly rssTimer: NodeJS.Timeout;
  private readonly health = { polls: 0, failures: [] as string[], maxMs: 0 };
  private readonly polling: Promise<void>;
  private stopped = false;
  private exited = false;

  private constructor(
    private readonly app: AppProcess,
    private readonly target: Target,
    private readonly bystander: Bystander,
    private readonly before: number,
    abortRssBytes: number,
  ) {
    this.peak = before;
    void app.exited.then(() => {
      this.exited = true;
      this.controller.abort(new Error('the server exited'));
    });
    this.rssTimer = setInterval(() => {
      const rss = rssOf(app.pid);
      if (rss === undefined) return;
      this.peak = Math.max(this.peak, rss);
      if (rss > abortRssBytes && !this.signal.aborted) {
        this.controller.abort(new Error(`RSS ${Math.round(rss / MiB)} MiB: attack stopped`));
      }
    }, 100);
    this.polling = this.pollHealth();
    bystander.start();
    leftovers.add(this.leftover);
  }

  /** Joins the bystander and starts watching. */
  static async start(app: AppProcess, target: Target, abortRssBytes = 1024 * MiB): Promise<Watch> {
    const bystander = await Bystander.join(target);
    return new Watch(app, target, bystander, rssOf(app.pid) ?? 0, abortRssBytes);
  }

  /** True once `seconds` have passed since the watch started, or the attack must stop. */
  over(seconds: number): boolean {
    return this.signal.aborted || performance.now() - this.started > seconds * 1000;
  }

  private async pollHealth(): Promise<void> {
    while (!this.stopped) {
      const started = performance.now();
      try {
        const answer = await httpGet(this.target, '/health');
        if (answer.status !== 200) this.health.failures.push(`HTTP ${answer.status}`);
      } catch (error) {
        this.health.failures.push(error instanceof Error ? error.message : String(error));
      }
      this.health.polls++;
      this.health.maxMs = Math.max(this.health.maxMs, Math.round(performance.now() - started));
      await sleep(200);
    }
  }

  private readonly leftover = async (): Promise<void> => {
    await this.stop();
  };

  /** Stops watching and reports; the bystander leaves. */
  async stop(): Promise<WatchReport> {
    leftovers.delete(this.leftover);
    const bystander = await this.bystander.stop();
    this.stopped = true;
    await this.polling;
    clearInterval(this.rssTimer);
    await this.bystander.close();
    const after = rssOf(this.app.pid);
    let answers = false;
    if (!this.exited && after !== undefined) {
      answers = await httpGet(this.target, '/health').then(
        (answer) => answer.status === 200,
        () => false,
      );
    }
    return {
      alive: !this.exited && answers,
      seconds: Math.round((performance.now() - this.started) / 100) / 10,
      rss: {
        beforeMiB: Math.round(this.before / MiB),
        peakMiB: Math.round(this.peak / MiB),
        afterMiB: Math.round((after ?? 0) / MiB),
      },
      bystander,
      health: this.health,
    };
  }
}

/** WebSocket opcodes. */
export const Opcode = {
  Continuation: 0x0,
  Text: 0x1,
  Close: 0x8,
  Ping: 0x9,
  Pong: 0xa,
} as const;

/** One client frame as RFC 6455 puts it on the wire: masked, with FIN as given. */
export function clientFrame(opcode: number, payload: Buffer | string, fin = true): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const length = body.length;
  const header = length < 126 ? 2 : length < 65536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(header + 4 + length);
  frame[0] = (fin ? 0x80 : 0) | opcode;
  if (length < 126) {
    frame[1] = 0x80 | length;
  } else if (length < 65536) {
    frame[1] = 0x80 | 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 0x80 | 127;
    frame.writeBigUInt64BE(BigInt(length), 2);
  }
  const mask = randomBytes(4);
  mask.copy(frame, header);
  for (let i = 0; i < length; i++) frame[header + 4 + i] = body[i] ^ mask[i & 3];
  return frame;
}

/** A server frame, as a raw client reads it. */
export interface ServerFrame {
  opcode: number;
  payload: Buffer;
}

/**
 * A TCP connection that speaks the protocol by hand: for what a `ws` client would never send
 * (unfinished fragments, trickled frames, pings without reading). It reads the server's frames
 * (unless paused) and records the close frame's code.
 */
export class RawClient {
  /** HTTP status of the handshake's answer, once read. */
  status?: number;
  /** The code of the server's close frame, if one arrived. */
  closeCode?: number;
  closeReason?: string;
  /** performance.now() when the server's close frame arrived. */
  closeFrameAt?: number;
  /** Counts of text frames with an error code, e.g. `rate_limited`. */
  readonly errors = new Map<string, number>();
  /** Resolves with performance.now() when the TCP connection has closed. */
  readonly closed: Promise<number>;
  private buffered: Buffer = Buffer.alloc(0);
  private inHead = true;

  private constructor(readonly tcp: Socket) {
    tcp.on('error', () => undefined); // resets are how the server drops a connection
    this.closed = new Promise((resolve) => tcp.once('close', () => resolve(performance.now())));
    const close = (): Promise<void> => destroy(tcp);
    leftovers.add(close);
    tcp.once('close', () => leftovers.delete(close));
    tcp.on('data', (chunk: Buffer) => this.read(chunk));
  }

  /** A TCP connection from `localAddress` that has sent nothing yet. */
  static async connect(target: Target, localAddress: string): Promise<RawClient> {
    const tcp = connect({ host: target.host, port: target.port, localAddress });
    const client = new RawClient(tcp);
    await Promise.race([
      once(tcp, 'connect'),
      client.closed.then(() => {
        throw new Error(`connection from ${localAddress} closed before it opened`);
      }),
    ]);
    return client;
  }

  /**
   * A socket past a valid upgrade to `path`. With `read: false` it stops reading right after the
   * response head: whatever the server sends next stays on the server's side.
   */
  static async upgrade(
    target: Target,
    path: string,
    localAddress: string,
    { read = true }: { read?: boolean } = {},
  ): Promise<RawClient> {
    const client = await RawClient.connect(target, localAddress);
    client.tcp.write(
      `GET ${path} HTTP/1.1\r\nHost: ${target.host}:${target.port}\r\nUpgrade: websocket\r\n` +
        `Connection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n` +
        'Sec-WebSocket-Version: 13\r\n\r\n',
    );
    await Promise.race([
      new Promise<void>((resolve) => {
        const check = (): void => {
          if (client.status === undefined) return;
          client.tcp.off('data', check);
          if (!read) client.tcp.pause();
          resolve();
        };
        client.tcp.on('data', check);
      }),
      client.closed,
    ]);
    if (client.status !== 101) throw new Refused(client.status ?? 0, {});
    return client;
  }

  /** Writes `data`; resolves when the kernel took it (or the connection is gone). */
  async write(data: Buffer): Promise<void> {
    if (this.tcp.destroyed) return;
    if (!this.tcp.write(data)) {
      await Promise.race([once(this.tcp, 'drain'), this.closed]).catch(() => undefined);
    }
  }

  async destroy(): Promise<void> {
    await destroy(this.tcp);
  }

  private read(chunk: Buffer): void {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    if (this.inHead) {
      const end = this.buffered.indexOf('\r\n\r\n');
      if (end === -1) return;
      this.status = Number(
        /^HTTP\/1\.1 (\d{3})/.exec(this.buffered.toString('latin1', 0, 12))?.[1],
      );
      this.buffered = this.buffered.subarray(end + 4);
      this.inHead = false;
    }
    for (;;) {
      const frame = this.nextFrame();
      if (!frame) return;
      if (frame.opcode === Opcode.Close) {
        this.closeFrameAt ??= performance.now();
        this.closeCode = frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : 1005;
        this.closeReason = frame.payload.toString('utf8', 2);
        // A client's side of the closing handshake, so the server may end the connection.
        if (!this.tcp.destroyed)
          this.tcp.end(clientFrame(Opcode.Close, frame.payload.subarray(0, 2)));
      } else if (frame.opcode === Opcode.Text) {
        const code = /"code":"([a-z_]+)"/.exec(frame.payload.toString('utf8', 0, 200))?.[1];
        if (code) this.errors.set(code, (this.errors.get(code) ?? 0) + 1);
      }
    }
  }

  private nextFrame(): ServerFrame | undefined {
    const data = this.buffered;
    if (data.length < 2) return undefined;
    let length = data[1] & 0x7f;
    let offset = 2;
    if (length === 126) {
      if (data.length < 4) return undefined;
      length = data.readUInt16BE(2);
      offset = 4;
    } else if (length === 127) {
      if (data.length < 10) return undefined;
      length = Number(data.readBigUInt64BE(2));
      offset = 10;
    }
    if (data.length < offset + length) return undefined;
    const frame = { opcode: data[0] & 0x0f, payload: data.subarray(offset, offset + length) };
    this.buffered = data.subarray(offset + length);
    return frame;
  }
}

/**
 * Pings from a `ws` client as fast as its TCP stream takes them, 125-byte payloads (the most a
 * ping may carry, so the most a pong returns), until `stop()` says so or the connection is gone.
 * Whether the client reads its pongs is up to the caller (pause `tcpOf(socket)` for one that
 * doesn't). Resolves with the pings sent.
 */
export async function pingFlood(socket: WebSocket, stop: () => boolean): Promise<number> {
  const tcp = tcpOf(socket);
  const payload = Buffer.alloc(125, 'p');
  let sent = 0;
  while (!stop() && socket.readyState === WebSocket.OPEN && !tcp.destroyed) {
    for (let i = 0; i < 50; i++) socket.ping(payload);
    sent += 50;
    // At most ~10,000 pings a second: 500 times the rate limit, while framing them in JS leaves
    // the test process (and so the bystander's clock) some of its core; the raw flooders bring
    // the volume.
    if (tcp.writableLength > 256 * 1024) {
      await Promise.race([once(tcp, 'drain'), sleep(100)]).catch(() => undefined);
    } else {
      await sleep(5);
    }
  }
  return sent;
}

/** The same from a raw TCP client writing masked ping frames and never reading a byte. */
export async function rawPingFlood(client: RawClient, stop: () => boolean): Promise<number> {
  const pings = Buffer.concat(
    Array.from({ length: 100 }, () => clientFrame(Opcode.Ping, Buffer.alloc(125, 'p'))),
  );
  let sent = 0;
  while (!stop() && !client.tcp.destroyed) {
    if (!client.tcp.write(pings)) {
      await Promise.race([once(client.tcp, 'drain'), client.closed, sleep(100)]).catch(
        () => undefined,
      );
    } else {
      await nextTurn();
    }
    sent += 100;
  }
  return sent;
}

/** Runs `task` for each of `items`, at most `limit` at a time. */
export async function eachLimit<T>(
  items: readonly T[],
  limit: number,
  task: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const index = next++;
        await task(items[index], index);
      }
    }),
  );
}

export { sleep };
