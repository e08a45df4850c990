import { createServer, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { Logger } from '@nestjs/common';
import { WebSocket, WebSocketServer } from 'ws';
import { InMemoryChannelLayer } from '../channel-layer/in-memory-channel-layer.js';
import { InMemoryRoomState } from '../rooms/in-memory-room-state.js';
import { ChatMetrics } from './chat-metrics.js';
import { Outbox, Recipient, TextFrame, directStream, encodeTextFrame } from './outbox.js';

interface Accepted {
  socket: WebSocket;
  transport: Duplex;
}

/** A loopback ws server handing out each accepted socket with its stream, as the chat's endpoint does. */
async function listen(perMessageDeflate = false): Promise<{
  http: Server;
  url: string;
  accepted: () => Promise<Accepted>;
}> {
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate });
  const waiting: ((accepted: Accepted) => void)[] = [];
  const http = createServer();
  http.on('upgrade', (request, transport: Duplex, head: Buffer) =>
    wss.handleUpgrade(request, transport, head, (socket) =>
      waiting.shift()?.({ socket, transport }),
    ),
  );
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const { port } = http.address() as AddressInfo;
  return {
    http,
    url: `ws://127.0.0.1:${port}/`,
    accepted: () => new Promise((resolve) => waiting.push(resolve)),
  };
}

function received(client: WebSocket, count: number): Promise<string[]> {
  const texts: string[] = [];
  return new Promise((resolve) =>
    client.on('message', (data: Buffer, isBinary: boolean) => {
      expect(isBinary).toBe(false);
      texts.push(data.toString());
      if (texts.length === count) resolve(texts);
    }),
  );
}

describe('Outbox', () => {
  let server: Awaited<ReturnType<typeof listen>>;
  let client: WebSocket;
  let metrics: ChatMetrics;
  let outbox: Outbox;

  beforeEach(() => {
    metrics = new ChatMetrics(new InMemoryChannelLayer(), new InMemoryRoomState());
    outbox = new Outbox(
      { maxBufferedBytes: 1 << 20, maxTotalBufferedBytes: 1 << 26 },
      metrics,
      new Logger('Outbox'),
    );
  });

  /** A client on `server`, open, and the server's side of it as the gateway keeps it. */
  async function connect(
    options: { perMessageDeflate?: boolean } = {},
  ): Promise<Recipient & { transport: Duplex }> {
    const accepted = server.accepted();
    client = new WebSocket(server.url, options);
    await new Promise((resolve) => client.once('open', resolve));
    const { socket, transport } = await accepted;
    return { socket, transport, stream: directStream(socket, transport), dropped: 0 };
  }

  afterEach(async () => {
    client?.terminate();
    await new Promise((resolve) => server?.http.close(resolve));
    server?.http.closeAllConnections();
  });

  it('delivers frames of every header size, interleaved with ws sends, in call order', async () => {
    server = await listen();
    const to = await connect();
    expect(to.stream).toBe(to.transport);
    // 7-bit, 16-bit and 64-bit payload lengths, each at its boundary.
    const texts = [0, 125, 126, 65535, 65536].map((size, i) => `${i}`.padEnd(size, 'x'));
    const got = received(client, texts.length + 1);
    for (const [i, text] of texts.entries()) {
      outbox.deliver(to, new TextFrame(text));
      if (i === 2) to.socket.send('through ws');
    }
    const expected = [...texts.slice(0, 3), 'through ws', ...texts.slice(3)];
    expect(await got).toEqual(expected);
    expect(metrics.deliveries).toBe(texts.length);
  });

  it('goes through ws, in order with its own sends, on a socket that negotiated compression', async () => {
    server = await listen(true);
    const to = await connect({ perMessageDeflate: true });
    expect(to.socket.extensions).toContain('permessage-deflate');
    expect(to.stream).toBeUndefined();
    const texts = ['a'.repeat(2000), 'b', 'c'.repeat(70_000), 'd'];
    const got = received(client, texts.length + 1);
    outbox.greet(to, [new TextFrame(texts[0]), new TextFrame(texts[1])]);
    to.socket.send('through ws');
    outbox.deliver(to, new TextFrame(texts[2]));
    outbox.error(to, 'some_code', texts[3]);
    const [first, second, third, fourth, fifth] = await got;
    expect([first, second, third, fourth]).toEqual([texts[0], texts[1], 'through ws', texts[2]]);
    expect(JSON.parse(fifth)).toEqual({ type: 'error', code: 'some_code', message: texts[3] });
  });

  it('encodes a string payload by its UTF-8 length, after the frames it is given', async () => {
    server = await listen();
    const { transport } = await connect();
    // 63 characters but 126 bytes: the header must come from the byte length (16-bit form).
    const wide = 'é'.repeat(63);
    const texts = ['first', wide, 'ü'.repeat(40_000), 'last ✓'];
    const got = received(client, texts.length);
    const frames = texts.reduce<Buffer | undefined>(
      (before, text) => encodeTextFrame(text, before),
      undefined,
    );
    transport.write(frames as Buffer);
    expect(await got).toEqual(texts);
  });

  it("writes a socket's first frame of a loop turn at once, and holds the rest of the turn", async () => {
    server = await listen();
    const to = await connect();
    const got = received(client, 3);
    outbox.deliver(to, new TextFrame('a'));
    expect(to.transport.writableCorked).toBe(0);
    expect(to.transport.writableLength).toBe(0);
    for (const text of ['b', 'c']) outbox.deliver(to, new TextFrame(text));
    expect(to.transport.writableCorked).toBe(1);
    expect(to.transport.writableLength).toBe(6);
    await new Promise((resolve) => setImmediate(resolve));
    expect(to.transport.writableCorked).toBe(0);
    expect(await got).toEqual(['a', 'b', 'c']);
  });

  it('writes a greeting and its history in one write', async () => {
    server = await listen();
    const to = await connect();
    const got = received(client, 2);
    const writes: number[] = [];
    const writev = to.transport._writev?.bind(to.transport);
    expect(writev).toBeDefined();
    to.transport._writev = (chunks, callback) => {
      writes.push(chunks.length);
      writev?.(chunks, callback);
    };
    outbox.greet(to, [new TextFrame('hello'), new TextFrame('history')]);
    expect(await got).toEqual(['hello', 'history']);
    expect(writes).toEqual([2]);
  });
});
