import { createServer, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import { Outbox, encodeTextFrame } from './outbox.js';

interface Accepted {
  socket: WebSocket;
  transport: Duplex;
}

/** A loopback ws server handing out each accepted socket with its stream, as the chat's endpoint does. */
async function listen(): Promise<{
  http: Server;
  url: string;
  accepted: () => Promise<Accepted>;
}> {
  const wss = new WebSocketServer({ noServer: true });
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

  /** A client on `server`, open, and the server's side of it. */
  async function connect(): Promise<Accepted> {
    const accepted = server.accepted();
    client = new WebSocket(server.url);
    await new Promise((resolve) => client.once('open', resolve));
    return accepted;
  }

  afterEach(async () => {
    client?.terminate();
    await new Promise((resolve) => server?.http.close(resolve));
    server?.http.closeAllConnections();
  });

  it('delivers frames of every header size, interleaved with ws sends, in call order', async () => {
    server = await listen();
    const { socket, transport } = await connect();
    // 7-bit, 16-bit and 64-bit payload lengths, each at its boundary.
    const texts = [0, 125, 126, 65535, 65536].map((size, i) => `${i}`.padEnd(size, 'x'));
    const got = received(client, texts.length + 1);
    const outbox = new Outbox();
    for (const [i, text] of texts.entries()) {
      outbox.write(transport, encodeTextFrame(text));
      if (i === 2) socket.send('through ws');
    }
    const expected = [...texts.slice(0, 3), 'through ws', ...texts.slice(3)];
    expect(await got).toEqual(expected);
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
    new Outbox().write(transport, frames as Buffer);
    expect(await got).toEqual(texts);
  });

  it("writes a socket's first frame of a loop turn at once, and holds the rest of the turn", async () => {
    server = await listen();
    const { transport } = await connect();
    const got = received(client, 3);
    const outbox = new Outbox();
    outbox.write(transport, encodeTextFrame('a'));
    expect(transport.writableCorked).toBe(0);
    expect(transport.writableLength).toBe(0);
    for (const text of ['b', 'c']) outbox.write(transport, encodeTextFrame(text));
    expect(transport.writableCorked).toBe(1);
    expect(transport.writableLength).toBe(6);
    await new Promise((resolve) => setImmediate(resolve));
    expect(transport.writableCorked).toBe(0);
    expect(await got).toEqual(['a', 'b', 'c']);
  });
});
